//! Many plugin processes at once, and plugin processes killed mid-ADD: no
//! address is ever given to two live attachments, and GC recovers every
//! address a dead ADD held.

mod common;

use common::*;
use serde_json::json;
use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;
use strait_lab::Netns;

#[test]
fn two_hundred_parallel_adds_get_distinct_reachable_addresses() {
    let node = Node::new();
    let conf = node.conf("1.0.0", json!({}));
    let pods: Vec<Netns> = (0..200).map(|_| Netns::unique("stp").unwrap()).collect();
    // Start all 200 processes before waiting for any.
    let children: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut child = node
                .call("ADD", &format!("par{i}"), p, "eth0")
                .process("strait-cni")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(conf.to_string().as_bytes())
                .unwrap();
            child
        })
        .collect();
    let mut ips = HashSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(ips.insert(first_ip(&v)), "address handed out twice: {v}");
    }
    assert_eq!(ips.len(), 200);
    assert_eq!(node.allocated().len(), 200);
    // Every pod answers from the bridge side.
    let unreachable: Vec<_> = ips
        .iter()
        .filter(|ip| {
            !node
                .ns
                .exec(&["ping", "-c", "1", "-W", "1", ip])
                .unwrap()
                .status
                .success()
        })
        .collect();
    assert!(unreachable.is_empty(), "unreachable pods: {unreachable:?}");
}

/// Kills ADD with SIGKILL at each named point between kernel changes and at
/// random moments, then GCs with the attachments that completed.
#[test]
fn kill_nine_during_add_never_duplicates_or_loses_an_address() {
    let node = Node::new();
    // A small range so a leak would show as exhaustion: 13 addresses.
    let conf = node.conf(
        "1.1.0",
        json!({"ipam": {"dataDir": node.data_dir(), "ranges": [[{"subnet": "10.81.0.0/28"}]]}}),
    );
    let mut pods = Vec::new();
    let mut valid: Vec<(String, usize)> = Vec::new();
    let points = [
        "after-ipam",
        "before-veth",
        "after-veth",
        "after-pod-address",
        "before-result",
    ];
    let mut attempt = 0;
    // Round 1: every named point, twice.
    for point in points.iter().chain(points.iter()) {
        let pod = Netns::unique("stp").unwrap();
        let mut call = node.call("ADD", &format!("k{attempt}"), &pod, "eth0");
        call.extra_env
            .push(("STRAIT_CNI_TEST_KILL_AT".into(), (*point).into()));
        let out = call.exec("strait-cni", &conf).unwrap();
        assert!(out.killed, "{point}: the plugin was not killed: {out:?}");
        pods.push(pod);
        attempt += 1;
    }
    // Round 2: SIGKILL at pseudo-random moments (a fixed LCG, so a failure
    // reproduces), some ADDs finishing first.
    let mut seed: u64 = 0x5eed;
    for _ in 0..20 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_micros((seed >> 33) % 4000);
        let pod = Netns::unique("stp").unwrap();
        let id = format!("k{attempt}");
        let mut child = node
            .call("ADD", &id, &pod, "eth0")
            .process("strait-cni")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let _ = child
                .stdin
                .take()
                .unwrap()
                .write_all(conf.to_string().as_bytes());
        }
        std::thread::sleep(delay);
        // `ip netns exec` execs the plugin in place, so this pid is the plugin.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            valid.push((id, pods.len()));
        }
        pods.push(pod);
        attempt += 1;
        // Keep room: release the finished ones as a runtime would on pod delete.
        if valid.len() > 4 {
            let (id, idx) = valid.remove(0);
            assert!(node.run("DEL", &id, &pods[idx], &conf).exit_ok);
        }
    }

    // No address held twice, and no allocation file is malformed.
    let dir = node.dir.path().join("ipam").join("testnet");
    let mut owners = HashSet::new();
    for ip in node.allocated() {
        let content = std::fs::read_to_string(dir.join(&ip)).unwrap();
        let (id, ifname) = content.split_once("\r\n").expect("well-formed allocation");
        assert!(!id.is_empty() && ifname == "eth0", "{ip}: {content:?}");
        assert!(owners.insert(id.to_owned()), "{id} holds two addresses");
    }

    // GC with the attachments that completed recovers everything else.
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!(valid
        .iter()
        .map(|(id, _)| json!({"containerID": id, "ifname": "eth0"}))
        .collect::<Vec<_>>());
    let out = node.run("GC", "", &pods[0], &gc);
    assert!(out.exit_ok, "{out:?}");
    assert_eq!(node.allocated().len(), valid.len());
    assert_eq!(
        node.links("stv").len(),
        valid.len(),
        "GC left dead attachments' veths"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Every address not held by a valid attachment can be allocated again.
    let free = 13 - valid.len();
    let mut fresh = HashSet::new();
    for i in 0..free {
        let pod = Netns::unique("stp").unwrap();
        let out = node.run("ADD", &format!("fresh{i}"), &pod, &conf);
        assert!(out.exit_ok, "address {i} of {free} lost for good: {out:?}");
        assert!(fresh.insert(first_ip(&out.json())));
        pods.push(pod);
    }
    let pod = Netns::unique("stp").unwrap();
    assert_eq!(
        node.run("ADD", "one-too-many", &pod, &conf).json()["code"],
        102
    );
}
