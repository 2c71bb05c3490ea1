//! A real container runtime: podman (CNI backend, libcni inside) runs a
//! container on a strait-cni network, inside a node namespace of the test's
//! own. Recipe: shared/recipes/podman-cni.md.

mod common;

use common::plugin_dir;
use std::path::Path;
use std::process::Command;
use strait_lab::Netns;

fn rootfs(dir: &Path) {
    let bin = dir.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static is installed");
    for applet in ["sh", "ip", "ping", "cat", "sleep"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
}

#[test]
fn podman_runs_a_container_on_a_strait_network() {
    let w = tempfile::tempdir().unwrap();
    let dir = w.path();
    rootfs(dir);
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(plugin_dir().join("strait-cni"), plugins.join("strait-cni")).unwrap();
    let conf_dir = dir.join("cni-conf");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let ipam_dir = dir.join("ipam");
    std::fs::write(
        conf_dir.join("straitnet.conflist"),
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "straitnet",
            "plugins": [
                {"type": "strait-cni", "ipam": {"ranges": [[{"subnet": "10.89.0.0/24"}]], "dataDir": ipam_dir}},
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let containers_conf = dir.join("containers.conf");
    std::fs::write(
        &containers_conf,
        format!(
            "[network]\ncni_plugin_dirs = [\"{}\", \"/usr/lib/cni\"]\n",
            plugins.display()
        ),
    )
    .unwrap();

    let node = Netns::unique("stpod").unwrap();
    let d = dir.display();
    // crun needs a pure cgroup2 mount and modest rlimits on these machines;
    // the private mount namespace keeps that change to this command.
    let script = format!(
        "mount --make-rprivate / && (umount -l /sys/fs/cgroup 2>/dev/null; true) && \
         mount -t cgroup2 none /sys/fs/cgroup && \
         podman --root {d}/root --runroot {d}/runroot --cgroup-manager cgroupfs \
           --network-backend cni --cni-config-dir {d}/cni-conf run --rm --cgroups disabled \
           --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 -p 18082:80 \
           --network straitnet --rootfs {d}/rootfs \
           /bin/sh -c 'ip -4 addr show eth0; ping -c 1 -W 2 10.89.0.1 && echo GATEWAY-OK'"
    );
    let out = Command::new("ip")
        .args([
            "netns", "exec", &node.name, "unshare", "-m", "sh", "-c", &script,
        ])
        .env("CONTAINERS_CONF", &containers_conf)
        .output()
        .expect("run podman");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "podman failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("inet 10.89.0.2/24"), "{stdout}");
    assert!(stdout.contains("GATEWAY-OK"), "{stdout}");

    // --rm ran DEL: the address is free again and the veth is gone.
    let held: Vec<_> = std::fs::read_dir(ipam_dir.join("straitnet"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    assert!(held.is_empty(), "addresses still held after --rm: {held:?}");
    let links = node.exec_ok(&["ip", "-o", "link"]).unwrap();
    assert!(!links.contains("stv"), "{links}");
    let nat = node.exec_ok(&["iptables-save", "-t", "nat"]).unwrap();
    assert!(!nat.contains("18082"), "portmap rules left: {nat}");
}
