//! The agent's command-line overrides of its config file.

use std::time::Duration;
use strait_agent::run::{load_options_config, Options};

fn options(dir: &std::path::Path, cluster_cidr: Option<&str>) -> Options {
    Options {
        config: dir.join("agent.yaml"),
        manifests: dir.join("manifests"),
        node_name: "node-1".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        node_file: dir.join("node.json"),
        interval: Duration::from_secs(1),
        resync: Duration::from_secs(30),
        once: true,
        kube: None,
        cluster_cidr: cluster_cidr.map(|c| c.parse().unwrap()),
        cni: None,
    }
}

#[test]
fn cluster_cidr_flag_replaces_the_configs_and_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("agent.yaml"),
        "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\n",
    )
    .unwrap();
    let cfg = load_options_config(&options(dir.path(), None)).unwrap();
    assert_eq!(cfg.cluster_cidr.to_string(), "10.42.0.0/16");
    let cfg = load_options_config(&options(dir.path(), Some("10.244.0.0/16"))).unwrap();
    assert_eq!(cfg.cluster_cidr.to_string(), "10.244.0.0/16");
    let err = load_options_config(&options(dir.path(), Some("10.43.0.0/17"))).unwrap_err();
    assert!(
        err.starts_with("--cluster-cidr 10.43.0.0/17 with --config "),
        "{err}"
    );
    assert!(err.contains("overlaps clusterCIDR 10.43.0.0/17"), "{err}");
}
