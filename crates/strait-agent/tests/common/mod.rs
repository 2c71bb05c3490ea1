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
