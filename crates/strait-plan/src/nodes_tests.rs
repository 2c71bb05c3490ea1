use super::*;
use crate::tests::node;

fn local() -> LocalNode {
    LocalNode {
        name: "b".into(),
        underlay_ip: Ipv4Addr::new(10, 0, 0, 2),
        underlay_prefix: 24,
        underlay_dev: "eth0".into(),
        underlay_mtu: 1500,
    }
}

fn cluster() -> Ipv4Net {
    "10.42.0.0/16".parse().unwrap()
}

#[test]
fn peers_sorted_by_name_local_excluded() {
    let snap = Snapshot {
        nodes: vec![
            node("c", &["10.42.3.0/24"], &["10.0.0.3"]),
            node("b", &["10.42.2.0/24"], &["10.0.0.2"]),
            node(
                "a",
                &["10.42.1.0/24", "10.42.11.0/24"],
                &["fd00::1", "10.0.0.1"],
            ),
        ],
        ..Default::default()
    };
    let mut warnings = Vec::new();
    let nodes = collect(cluster(), &local(), &snap, &mut warnings).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(
        nodes.local,
        [PodCidr {
            field: "spec.podCIDRs[0]".into(),
            cidr: "10.42.2.0/24".parse().unwrap()
        }]
    );
    assert_eq!(
        nodes.peers,
        [
            Peer {
                name: "a".into(),
                underlay_ip: Ipv4Addr::new(10, 0, 0, 1),
                pod_cidrs: vec![
                    "10.42.1.0/24".parse().unwrap(),
                    "10.42.11.0/24".parse().unwrap()
                ],
            },
            Peer {
                name: "c".into(),
                underlay_ip: Ipv4Addr::new(10, 0, 0, 3),
                pod_cidrs: vec!["10.42.3.0/24".parse().unwrap()],
            },
        ]
    );
}

#[test]
fn not_ready_peers_are_warnings() {
    let snap = Snapshot {
        nodes: vec![
            node("b", &["10.42.2.0/24"], &["10.0.0.2"]),
            node("x", &[], &["10.0.0.9"]),
            node("y", &["10.42.9.0/24"], &[]),
            node("z", &["10.42.10.0/24", "fd00:42:10::/64"], &["fd00::10"]),
        ],
        ..Default::default()
    };
    let mut warnings = Vec::new();
    let nodes = collect(cluster(), &local(), &snap, &mut warnings).unwrap();
    assert!(nodes.peers.is_empty());
    assert_eq!(
        warnings,
        [
            "node \"z\": spec.podCIDRs[1] fd00:42:10::/64 left out: IPv6 pod networking is not supported yet",
            "node \"x\" has no IPv4 podCIDR yet; not routed",
            "node \"y\" has no IPv4 InternalIP; not routed",
            "node \"z\" has no IPv4 InternalIP; not routed",
        ]
    );
}

#[test]
fn overlap_check_finds_nested_cidrs_past_a_disjoint_one() {
    // 10.42.0.0/20 holds 10.42.8.0/24; 10.42.1.0/24 (also inside) sorts
    // between them and is what the check meets first.
    let snap = Snapshot {
        nodes: vec![
            node("b", &["10.42.0.0/20"], &["10.0.0.2"]),
            node("c", &["10.42.8.0/24"], &["10.0.0.3"]),
            node("d", &["10.42.1.0/24"], &["10.0.0.4"]),
        ],
        ..Default::default()
    };
    let err = collect(cluster(), &local(), &snap, &mut Vec::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "node \"b\": spec.podCIDRs[0] 10.42.0.0/20 overlaps spec.podCIDRs[0] 10.42.1.0/24 of node \"d\""
    );
}
