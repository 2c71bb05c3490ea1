//! `strait agent` in Kubernetes mode, as a process in two node namespaces,
//! reading a fake API server (real HTTP, the API's list/watch wire format)
//! through a kubeconfig: routes for both nodes, the CNI conflist only once
//! ready, the last state kept (and not ready) while the API is away, a full
//! resync when it returns, and `--cleanup`.

use serde_json::json;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use strait_kube::fake_api::FakeApi;
use strait_lab::Netns;

const LISTEN: &str = "127.0.0.1:9590";

fn node(name: &str, ip: &str, cidr: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
           "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
           "status": {"addresses": [{"type": "InternalIP", "address": ip}]}})
}

/// An agent process; killed (and reaped) on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Cluster {
    // Field order is drop order: agents and the API before the namespaces.
    agents: Vec<Agent>,
    api: FakeApi,
    nodes: Vec<Netns>,
    _switch: Netns,
    dir: tempfile::TempDir,
}

fn setup() -> Cluster {
    let (switch, nodes) =
        strait_lab::switched_hosts("stksw", "stknode", &["192.0.2.11/24", "192.0.2.12/24"])
            .unwrap();
    switch
        .exec_ok(&["ip", "addr", "add", "192.0.2.1/24", "dev", "br0"])
        .unwrap();
    // The API server lives in the switch namespace, reachable from both.
    let api = switch
        .run(|| FakeApi::start_on("192.0.2.1".parse().unwrap()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("agent.yaml"),
        "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\nbackend: host-gw\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("kubeconfig"), api.kubeconfig()).unwrap();
    for i in 1..=2 {
        let bin = dir.path().join(format!("bin-{i}"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("strait-cni"), "").unwrap();
    }
    Cluster {
        agents: Vec::new(),
        api,
        nodes,
        _switch: switch,
        dir,
    }
}

fn args(dir: &Path, i: usize) -> Vec<String> {
    let p = |s: String| dir.join(s).display().to_string();
    vec![
        "agent".into(),
        "--config".into(),
        p("agent.yaml".into()),
        "--kubeconfig".into(),
        p("kubeconfig".into()),
        "--node-name".into(),
        format!("node-{i}"),
        "--listen".into(),
        LISTEN.into(),
        "--node-file".into(),
        p(format!("node-{i}.json")),
        "--cni-conf-dir".into(),
        p(format!("net.d-{i}")),
        "--cni-bin-dir".into(),
        p(format!("bin-{i}")),
    ]
}

fn conflist(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("net.d-{i}/10-strait.conflist"))
}

fn start_agent(c: &Cluster, i: usize) -> Agent {
    let log = std::fs::File::create(c.dir.path().join(format!("agent-{i}.log"))).unwrap();
    let mut cmd = c.nodes[i - 1].command(env!("CARGO_BIN_EXE_strait"));
    cmd.args(args(c.dir.path(), i))
        .stdout(Stdio::null())
        .stderr(log);
    Agent(cmd.spawn().expect("spawn strait agent"))
}

/// The HTTP status of /readyz inside the node's namespace (0: no answer).
fn readyz(ns: &Netns) -> u16 {
    ns.run(|| {
        let Ok(mut s) = std::net::TcpStream::connect(LISTEN) else {
            return 0;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    })
    .unwrap()
}

fn routes(ns: &Netns) -> String {
    ns.exec_ok(&["ip", "route", "show", "proto", "90"]).unwrap()
}

fn wait_for(c: &Cluster, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        if Instant::now() > deadline {
            let logs: String = (1..=2)
                .map(|i| {
                    std::fs::read_to_string(c.dir.path().join(format!("agent-{i}.log")))
                        .unwrap_or_default()
                })
                .collect();
            panic!("timed out waiting for {what}; agent logs:\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn agents_read_the_api_program_two_nodes_and_ride_out_an_outage() {
    let mut c = setup();
    let dir = c.dir.path().to_path_buf();
    // The API is down when the agents start: nothing is programmed, no
    // conflist, not ready.
    c.api.set_up(false);
    c.api.apply(node("node-1", "192.0.2.11", "10.42.1.0/24"));
    c.api.apply(node("node-2", "192.0.2.12", "10.42.2.0/24"));
    c.agents.push(start_agent(&c, 1));
    c.agents.push(start_agent(&c, 2));
    wait_for(&c, "the agents to serve /readyz", || {
        c.nodes.iter().all(|n| readyz(n) == 503)
    });
    std::thread::sleep(Duration::from_secs(2));
    for (i, n) in c.nodes.iter().enumerate() {
        assert_eq!(readyz(n), 503);
        assert!(!conflist(&dir, i + 1).exists(), "conflist before ready");
        assert_eq!(routes(n), "", "programmed before the first list");
    }

    // The API comes up: both nodes sync, route to each other, publish.
    c.api.set_up(true);
    wait_for(&c, "both agents ready", || {
        c.nodes.iter().all(|n| readyz(n) == 200)
    });
    assert!(routes(&c.nodes[0]).contains("10.42.2.0/24 via 192.0.2.12 dev eth0"));
    assert!(routes(&c.nodes[1]).contains("10.42.1.0/24 via 192.0.2.11 dev eth0"));
    for i in 1..=2 {
        let text = std::fs::read_to_string(conflist(&dir, i)).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["plugins"][0]["type"], "strait-cni");
        assert_eq!(doc["plugins"][1]["type"], "portmap");
    }
    let node_file = std::fs::read_to_string(dir.join("node-1.json")).unwrap();
    assert!(node_file.contains("10.42.1.0/24"), "{node_file}");

    // A change arrives over the watch.
    c.api.apply(node("node-3", "192.0.2.13", "10.42.3.0/24"));
    wait_for(&c, "node-3's route on node-1", || {
        routes(&c.nodes[0]).contains("10.42.3.0/24 via 192.0.2.13")
    });

    // Outage: not ready, nothing flushed, the conflist stays, drift is
    // still repaired from the kept snapshot.
    c.api.set_up(false);
    wait_for(&c, "not ready during the outage", || {
        c.nodes.iter().all(|n| readyz(n) == 503)
    });
    let kept = routes(&c.nodes[0]);
    assert!(
        kept.contains("10.42.2.0/24") && kept.contains("10.42.3.0/24"),
        "{kept}"
    );
    assert!(conflist(&dir, 1).exists());
    let nft = c.nodes[0]
        .exec_ok(&["nft", "list", "table", "inet", "strait"])
        .unwrap();
    assert!(nft.contains("masquerade"), "{nft}");
    c.nodes[0]
        .exec_ok(&["ip", "route", "del", "10.42.2.0/24"])
        .unwrap();
    wait_for(&c, "drift repaired while the API is away", || {
        routes(&c.nodes[0]).contains("10.42.2.0/24 via 192.0.2.12")
    });

    // Changed while away (node-3 left without an event anyone saw): the
    // resync after the outage shows it.
    c.api
        .delete_silently(strait_model::Kind::Node, "", "node-3");
    c.api.set_up(true);
    wait_for(&c, "ready again, node-3 gone", || {
        readyz(&c.nodes[0]) == 200 && !routes(&c.nodes[0]).contains("10.42.3.0/24")
    });

    // --cleanup removes the conflist and the routes.
    c.agents.clear();
    let out = c.nodes[0]
        .command(env!("CARGO_BIN_EXE_strait"))
        .args(args(&dir, 1))
        .arg("--cleanup")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!conflist(&dir, 1).exists());
    assert_eq!(routes(&c.nodes[0]), "");
}
