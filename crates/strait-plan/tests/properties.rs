//! Property tests of `compile`: it never panics on arbitrary node sets
//! (random, overlapping, malformed pod CIDRs and addresses, duplicate names,
//! odd local facts), and its result (plan or error) does not depend on the
//! order of the snapshot's nodes.

use proptest::prelude::*;
use std::net::Ipv4Addr;
use strait_model::k8s::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus};
use strait_model::{AgentConfig, Snapshot};
use strait_plan::{compile, LocalNode};

fn cidr() -> impl Strategy<Value = String> {
    prop_oneof![
        // Inside the cluster CIDR, often overlapping each other.
        4 => (0u32..256, 16u8..=32).prop_map(|(x, p)| {
            let addr = Ipv4Addr::from(0x0a2a_0000 | (x << 8));
            format!("{addr}/{p}")
        }),
        // Anywhere, host bits and all.
        1 => (any::<u32>(), 0u8..=32).prop_map(|(a, p)| format!("{}/{p}", Ipv4Addr::from(a))),
        1 => (any::<u16>(), 48u8..=128).prop_map(|(x, p)| format!("fd00:{x:x}::/{p}")),
        1 => Just("garbage".to_string()),
    ]
}

fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u32..4, 1u32..255).prop_map(|(net, host)| format!("10.0.{net}.{host}")),
        1 => any::<u32>().prop_map(|a| Ipv4Addr::from(a).to_string()),
        1 => any::<u16>().prop_map(|x| format!("fd00::{x:x}")),
        1 => Just("not-an-ip".to_string()),
    ]
}

/// Node `i`: usually named `n{i}` with its own /24 and an address on
/// 10.0.0.0/24 (so many cases compile), sometimes anything at all.
fn node(i: usize) -> impl Strategy<Value = Node> {
    let own_cidr = format!("10.42.{i}.0/24");
    let own_ip = format!("10.0.0.{}", i + 1);
    (
        prop_oneof![9 => Just(i), 1 => 0usize..6],
        prop_oneof![
            6 => Just(vec![own_cidr]),
            1 => Just(Vec::new()),
            2 => proptest::collection::vec(cidr(), 0..3),
        ],
        proptest::option::of(cidr()),
        prop_oneof![
            6 => Just(vec![own_ip]),
            2 => proptest::collection::vec(address(), 0..3),
        ],
    )
        .prop_map(|(name, cidrs, single, addrs)| {
            let mut n = Node::default();
            n.metadata.name = Some(format!("n{name}"));
            n.spec = Some(NodeSpec {
                pod_cidrs: Some(cidrs),
                pod_cidr: single,
                ..Default::default()
            });
            n.status = Some(NodeStatus {
                addresses: Some(
                    addrs
                        .into_iter()
                        .map(|a| NodeAddress {
                            type_: "InternalIP".into(),
                            address: a,
                        })
                        .collect(),
                ),
                ..Default::default()
            });
            n
        })
}

fn config() -> impl Strategy<Value = AgentConfig> {
    (any::<bool>(), proptest::option::of(576u32..10000)).prop_map(|(hostgw, mtu)| {
        let mut text = String::from(
            "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\nnonMasqueradeCIDRs: [192.168.0.0/16]\n",
        );
        if hostgw {
            text.push_str("backend: host-gw\n");
        }
        if let Some(m) = mtu {
            text.push_str(&format!("mtu: {m}\n"));
        }
        AgentConfig::from_yaml(&text).unwrap()
    })
}

fn local() -> impl Strategy<Value = LocalNode> {
    (
        1u32..255,
        prop_oneof![8 => Just(24u8), 2 => 0u8..=34],
        prop_oneof![8 => Just(1500u32), 2 => 0u32..10000],
    )
        .prop_map(|(host, prefix, mtu)| LocalNode {
            name: "n0".into(),
            underlay_ip: Ipv4Addr::new(10, 0, 0, host as u8),
            underlay_prefix: prefix,
            underlay_dev: "eth0".into(),
            underlay_mtu: mtu,
        })
}

fn nodes_and_shuffle() -> impl Strategy<Value = (Vec<Node>, Vec<Node>)> {
    (0usize..8)
        .prop_flat_map(|n| (0..n).map(node).collect::<Vec<_>>())
        .prop_flat_map(|nodes| (Just(nodes.clone()), Just(nodes).prop_shuffle()))
}

fn snap(nodes: Vec<Node>) -> Snapshot {
    Snapshot {
        nodes,
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compile_is_total_and_order_independent(
        cfg in config(),
        local in local(),
        (nodes, shuffled) in nodes_and_shuffle(),
    ) {
        let a = compile(&cfg, &local, &snap(nodes));
        let b = compile(&cfg, &local, &snap(shuffled));
        prop_assert_eq!(&a, &b);
        if let Ok(plan) = a {
            plan.nft.validate().unwrap();
            prop_assert_eq!(plan.to_string(), b.unwrap().to_string());
            prop_assert!(plan.routes.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(!plan.node_file.pod_cidrs.is_empty());
            for (gw, cidr) in plan.bridge.addresses.iter().zip(&plan.node_file.pod_cidrs) {
                prop_assert!(cidr.contains(&gw.addr()) && gw.prefix_len() == cidr.prefix_len());
            }
        }
    }
}

/// Enough valid nodes that compile succeeds: the Ok path is exercised too.
#[test]
fn many_valid_nodes_compile() {
    let nodes: Vec<Node> = (0..200u32)
        .map(|i| {
            let mut n = Node::default();
            n.metadata.name = Some(format!("n{i}"));
            n.spec = Some(NodeSpec {
                pod_cidr: Some(format!("10.42.{i}.0/24")),
                ..Default::default()
            });
            n.status = Some(NodeStatus {
                addresses: Some(vec![NodeAddress {
                    type_: "InternalIP".into(),
                    address: format!("10.0.{}.{}", i / 200, i % 200 + 1),
                }]),
                ..Default::default()
            });
            n
        })
        .collect();
    let cfg =
        AgentConfig::from_yaml("clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\n").unwrap();
    let local = LocalNode {
        name: "n0".into(),
        underlay_ip: Ipv4Addr::new(10, 0, 0, 1),
        underlay_prefix: 24,
        underlay_dev: "eth0".into(),
        underlay_mtu: 1500,
    };
    let mut reversed = nodes.clone();
    reversed.reverse();
    let plan = compile(&cfg, &local, &snap(nodes)).unwrap();
    // 199 peers, plus the service CIDR route onto the bridge.
    assert_eq!(plan.routes.len(), 200);
    assert_eq!(plan.fdb.len(), 199);
    assert_eq!(plan, compile(&cfg, &local, &snap(reversed)).unwrap());
}
