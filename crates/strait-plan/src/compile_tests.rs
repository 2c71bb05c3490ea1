use super::*;
use std::net::Ipv4Addr;
use strait_model::k8s::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus};

pub(crate) fn node(name: &str, cidrs: &[&str], ips: &[&str]) -> Node {
    let mut n = Node::default();
    n.metadata.name = Some(name.to_string());
    n.spec = Some(NodeSpec {
        pod_cidrs: Some(cidrs.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    });
    n.status = Some(NodeStatus {
        addresses: Some(
            ips.iter()
                .map(|ip| NodeAddress {
                    type_: "InternalIP".to_string(),
                    address: ip.to_string(),
                })
                .collect(),
        ),
        ..Default::default()
    });
    n
}

fn cfg(extra: &str) -> AgentConfig {
    AgentConfig::from_yaml(&format!(
        "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\n{extra}"
    ))
    .unwrap()
}

pub(crate) fn local() -> LocalNode {
    LocalNode {
        name: "a".into(),
        underlay_ip: Ipv4Addr::new(10, 0, 0, 1),
        underlay_prefix: 24,
        underlay_dev: "eth0".into(),
        underlay_mtu: 1500,
    }
}

fn snap(nodes: Vec<Node>) -> Snapshot {
    Snapshot {
        nodes,
        ..Default::default()
    }
}

fn two_nodes() -> Vec<Node> {
    vec![
        node("a", &["10.42.1.0/24"], &["10.0.0.1"]),
        node("b", &["10.42.2.0/24"], &["10.0.0.2"]),
    ]
}

fn err(cfg: &AgentConfig, local: &LocalNode, nodes: Vec<Node>) -> String {
    compile(cfg, local, &snap(nodes)).unwrap_err().to_string()
}

#[test]
fn local_node_missing() {
    assert_eq!(
        err(
            &cfg(""),
            &local(),
            vec![node("b", &["10.42.2.0/24"], &["10.0.0.2"])]
        ),
        "node \"a\" (this node) is not in the snapshot"
    );
}

#[test]
fn local_node_without_pod_cidr() {
    assert_eq!(
        err(&cfg(""), &local(), vec![node("a", &[], &["10.0.0.1"])]),
        "node \"a\" (this node) has no IPv4 podCIDR (spec.podCIDR / spec.podCIDRs)"
    );
    assert_eq!(
        err(
            &cfg(""),
            &local(),
            vec![node("a", &["fd00:42::/64"], &["10.0.0.1"])]
        ),
        "node \"a\" (this node) has no IPv4 podCIDR (spec.podCIDR / spec.podCIDRs)"
    );
}

#[test]
fn local_pod_cidr_too_small() {
    assert_eq!(
        err(&cfg(""), &local(), vec![node("a", &["10.42.1.0/31"], &[])]),
        "node \"a\" (this node): spec.podCIDRs[0] 10.42.1.0/31 is too small for a bridge gateway and pods (at most /30)"
    );
}

#[test]
fn pod_cidr_outside_cluster() {
    let mut nodes = two_nodes();
    nodes.push(node("c", &["10.99.3.0/24"], &["10.0.0.3"]));
    assert_eq!(
        err(&cfg(""), &local(), nodes),
        "node \"c\": spec.podCIDRs[0] 10.99.3.0/24 is outside clusterCIDR 10.42.0.0/16"
    );
}

#[test]
fn pod_cidr_with_host_bits_or_garbage() {
    let mut nodes = two_nodes();
    nodes.push(node("c", &["10.42.3.1/24"], &["10.0.0.3"]));
    assert_eq!(
        err(&cfg(""), &local(), nodes),
        "node \"c\": spec.podCIDRs[0] 10.42.3.1/24 has host bits set"
    );
    let mut nodes = two_nodes();
    let mut c = Node::default();
    c.metadata.name = Some("c".into());
    c.spec = Some(NodeSpec {
        pod_cidr: Some("10.42.3.0".into()),
        ..Default::default()
    });
    nodes.push(c);
    assert_eq!(
        err(&cfg(""), &local(), nodes),
        "node \"c\": spec.podCIDR 10.42.3.0 is not a CIDR"
    );
}

#[test]
fn overlapping_pod_cidrs_name_both_nodes() {
    let mut nodes = two_nodes();
    nodes.push(node("c", &["10.42.2.128/25"], &["10.0.0.3"]));
    assert_eq!(
        err(&cfg(""), &local(), nodes),
        "node \"b\": spec.podCIDRs[0] 10.42.2.0/24 overlaps spec.podCIDRs[0] 10.42.2.128/25 of node \"c\""
    );
    // Equal CIDRs: reported in node-name order, whatever the input order.
    let mut nodes = two_nodes();
    nodes.insert(0, node("z", &["10.42.1.0/24"], &["10.0.0.26"]));
    assert_eq!(
        err(&cfg(""), &local(), nodes),
        "node \"a\": spec.podCIDRs[0] 10.42.1.0/24 overlaps spec.podCIDRs[0] 10.42.1.0/24 of node \"z\""
    );
    // Nodes that are not routed (no InternalIP) are still checked.
    let mut nodes = two_nodes();
    nodes.push(node("c", &["10.42.0.0/23"], &[]));
    assert_eq!(
        err(&cfg(""), &local(), nodes),
        "node \"c\": spec.podCIDRs[0] 10.42.0.0/23 overlaps spec.podCIDRs[0] 10.42.1.0/24 of node \"a\""
    );
}

#[test]
fn duplicate_node_names() {
    let mut nodes = two_nodes();
    nodes.push(node("b", &["10.42.9.0/24"], &["10.0.0.9"]));
    assert_eq!(
        err(&cfg(""), &local(), nodes),
        "node \"b\" appears 2 times in the snapshot"
    );
}

#[test]
fn ipv6_cluster_cidr() {
    let c = AgentConfig::from_yaml("clusterCIDR: 'fd00:42::/48'\nserviceCIDR: 'fd00:43::/108'\n")
        .unwrap();
    assert_eq!(
        err(&c, &local(), two_nodes()),
        "clusterCIDR: fd00:42::/48 is IPv6; strait supports IPv4 pod networks only for now"
    );
}

#[test]
fn unvalidated_config_is_checked() {
    let mut c = cfg("");
    c.service_cidr = "10.42.0.0/24".parse().unwrap();
    assert_eq!(
        err(&c, &local(), two_nodes()),
        "agent config: serviceCIDR: 10.42.0.0/24 overlaps clusterCIDR 10.42.0.0/16"
    );
}

#[test]
fn bridge_name_conflicts() {
    assert_eq!(
        err(&cfg("bridge: strait.vxlan\n"), &local(), two_nodes()),
        "agent config: bridge: strait.vxlan is the VXLAN device's name"
    );
    assert_eq!(
        err(&cfg("bridge: eth0\n"), &local(), two_nodes()),
        "agent config: bridge: eth0 is the underlay interface"
    );
}

#[test]
fn bad_local_facts() {
    let mut l = local();
    l.underlay_dev = "".into();
    assert_eq!(
        err(&cfg(""), &l, two_nodes()),
        "this node's underlay device: \"\" is not an interface name"
    );
    let mut l = local();
    l.underlay_prefix = 40;
    assert_eq!(
        err(&cfg(""), &l, two_nodes()),
        "this node's underlay prefix: /40 is not an IPv4 prefix length"
    );
}

#[test]
fn mtu_rules() {
    let plan = |c: &AgentConfig, underlay: u32| {
        let mut l = local();
        l.underlay_mtu = underlay;
        compile(c, &l, &snap(two_nodes()))
    };
    let p = plan(&cfg(""), 1500).unwrap();
    assert_eq!(
        (p.node_file.mtu, p.bridge.mtu, p.vxlan.unwrap().mtu),
        (1450, 1450, 1450)
    );
    let p = plan(&cfg("mtu: 9000\n"), 1500).unwrap();
    assert_eq!((p.node_file.mtu, p.vxlan.unwrap().mtu), (8950, 8950));
    let p = plan(&cfg("backend: host-gw\n"), 1500).unwrap();
    assert_eq!((p.node_file.mtu, p.bridge.mtu), (1500, 1500));
    assert!(p.vxlan.is_none());
    let p = plan(&cfg("backend: host-gw\nmtu: 1400\n"), 9000).unwrap();
    assert_eq!(p.node_file.mtu, 1400);
    assert_eq!(
        plan(&cfg(""), 100).unwrap_err().to_string(),
        "this node's MTU: an underlay MTU of 100 gives pods 50 with vxlan (pods need 68-65535)"
    );
    assert_eq!(
        plan(&cfg(""), 0).unwrap_err().to_string(),
        "this node's MTU: an underlay MTU of 0 gives pods 0 with vxlan (pods need 68-65535)"
    );
    assert!(plan(&cfg("backend: host-gw\n"), 70000).is_err());
}

#[test]
fn warnings_for_suspicious_nodes() {
    let nodes = vec![
        node("a", &["10.42.1.0/24"], &["10.0.0.5"]),
        node("b", &["10.42.2.0/24"], &["10.0.0.1"]),
        node("c", &["10.42.3.0/24"], &["10.0.0.3"]),
    ];
    let p = compile(&cfg(""), &local(), &snap(nodes)).unwrap();
    assert_eq!(
        p.warnings,
        [
            "node \"a\" (this node): InternalIP 10.0.0.5 differs from the underlay address 10.0.0.1; peers reach this node at 10.0.0.5",
            "node \"b\" claims this node's underlay address 10.0.0.1; not routed",
        ]
    );
    assert_eq!(p.fdb.len(), 1);
}

#[test]
fn several_local_pod_cidrs() {
    let nodes = vec![
        node("a", &["10.42.1.0/24", "10.42.100.0/30"], &["10.0.0.1"]),
        node("b", &["10.42.2.0/24"], &["10.0.0.2"]),
    ];
    let p = compile(&cfg(""), &local(), &snap(nodes)).unwrap();
    let addrs: Vec<String> = p.bridge.addresses.iter().map(ToString::to_string).collect();
    assert_eq!(addrs, ["10.42.1.1/24", "10.42.100.1/30"]);
    assert_eq!(p.node_file.pod_cidrs.len(), 2);
    assert_eq!(p.vxlan.unwrap().address.to_string(), "10.42.1.0/32");
}

#[test]
fn single_node_cluster() {
    let p = compile(
        &cfg(""),
        &local(),
        &snap(vec![node("a", &["10.42.0.0/16"], &[])]),
    )
    .unwrap();
    // No peers: the only route is the service CIDR onto the bridge.
    let routes: Vec<String> = p.routes.iter().map(|r| r.to_string()).collect();
    assert_eq!(routes, vec!["10.43.0.0/16 dev strait0"]);
    assert!(p.fdb.is_empty() && p.neighbours.is_empty());
    assert_eq!(p.bridge.addresses[0].to_string(), "10.42.0.1/16");
}

#[test]
fn deterministic_and_order_independent() {
    let c = cfg("nonMasqueradeCIDRs: [192.168.0.0/16]\nnodeRoutes: [{to: 192.168.2.0/24, via: 10.0.0.254}]\n");
    let mut nodes = two_nodes();
    nodes.push(node("c", &["10.42.3.0/24"], &["10.0.0.3"]));
    nodes.push(node("d", &[], &["10.0.0.4"]));
    let first = compile(&c, &local(), &snap(nodes.clone())).unwrap();
    nodes.reverse();
    let second = compile(&c, &local(), &snap(nodes)).unwrap();
    assert_eq!(first, second);
    assert_eq!(first.to_string(), second.to_string());
    assert_eq!(
        serde_json::to_string(&first).unwrap(),
        serde_json::to_string(&second).unwrap()
    );
}

#[test]
fn plan_serialises_to_json() {
    let p = compile(&cfg(""), &local(), &snap(two_nodes())).unwrap();
    let v: serde_json::Value = serde_json::to_value(&p).unwrap();
    assert_eq!(
        v["node_file"],
        serde_json::json!({"podCIDRs": ["10.42.1.0/24"], "mtu": 1450, "gsoMaxSize": 64000})
    );
    assert_eq!(v["vxlan"]["mac"], "0a:58:0a:00:00:01");
    assert_eq!(v["nft"]["family"], "inet");
    assert_eq!(v["sysctls"]["net/ipv4/ip_forward"], "1");
}

#[test]
fn constants() {
    assert_eq!(STRAIT_ROUTE_PROTO, 90);
    assert_eq!(BRIDGE_DEFAULT, "strait0");
    assert_eq!(VXLAN_DEV, "strait.vxlan");
    assert_eq!(NFT_TABLE, "strait");
}
