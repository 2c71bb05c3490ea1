//! Shared by the agent's root tests.

use std::path::Path;
use std::time::Duration;
use strait_agent::run::Options;

/// A one-shot agent for `node` over `dir/agent.yaml` and `dir/manifests`,
/// publishing its node file as `dir/<node>.json`.
pub fn once_options(dir: &Path, node: &str) -> Options {
    Options {
        config: dir.join("agent.yaml"),
        manifests: dir.join("manifests"),
        node_name: node.into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        node_file: dir.join(format!("{node}.json")),
        interval: Duration::from_secs(1),
        resync: Duration::from_secs(30),
        once: true,
        kube: None,
        cluster_cidr: None,
        cni: None,
    }
}

/// A namespace standing in for node-1 (`eth0`, a bridge, at 10.0.0.1/24,
/// up) and a directory with an empty `manifests/` and a host-gw
/// `agent.yaml` (cluster 10.42.0.0/16, services 10.43.0.0/16).
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn one_node(prefix: &str) -> (strait_lab::Netns, tempfile::TempDir) {
    let ns = strait_lab::Netns::unique(prefix).unwrap();
    for argv in [
        &["ip", "link", "add", "eth0", "type", "bridge"][..],
        &["ip", "addr", "add", "10.0.0.1/24", "dev", "eth0"],
        &["ip", "link", "set", "eth0", "up"],
    ] {
        ns.exec_ok(argv).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::write(
        dir.path().join("agent.yaml"),
        "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\nbackend: host-gw\n",
    )
    .unwrap();
    (ns, dir)
}
