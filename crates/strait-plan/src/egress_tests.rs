use super::*;
use crate::nft::{render, Family};
use std::net::Ipv4Addr;

fn cfg(extra: &str) -> AgentConfig {
    AgentConfig::from_yaml(&format!(
        "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\n{extra}"
    ))
    .unwrap()
}

fn table(cfg: &AgentConfig) -> (Table, Vec<String>) {
    let mut t = Table::new(Family::Inet, "strait");
    let mut w = Vec::new();
    let IpNet::V4(cluster) = cfg.cluster_cidr else {
        panic!()
    };
    add_to_table(cfg, cluster, &mut t, &mut w);
    t.validate().unwrap();
    (t, w)
}

/// A tiny evaluator for IPv4 address matches: what one base chain decides
/// for a packet (the rule's comment, or "policy"). Enough to check the
/// egress semantics; `strait trace` will do this for real.
fn decide(t: &Table, chain: &str, src: Ipv4Addr, dst: Ipv4Addr) -> String {
    let in_addrs = |addrs: &Addrs, ip: Ipv4Addr| match addrs {
        Addrs::Set(name) => t
            .set(name)
            .unwrap()
            .elements
            .iter()
            .any(|e| e.contains(&std::net::IpAddr::V4(ip))),
        Addrs::Cidrs(list) => list.iter().any(|e| e.contains(&std::net::IpAddr::V4(ip))),
    };
    let chain = t.chain(chain).unwrap();
    for rule in &chain.rules {
        let hit = rule.matches.iter().all(|m| match m {
            Match::SaddrIn { addrs, negate, .. } => in_addrs(addrs, src) != *negate,
            Match::DaddrIn { addrs, negate, .. } => in_addrs(addrs, dst) != *negate,
            other => panic!("not evaluated here: {other:?}"),
        });
        if hit && rule.verdict != Verdict::Continue {
            return format!(
                "{:?}: {}",
                rule.verdict,
                rule.comment.as_deref().unwrap_or("")
            );
        }
    }
    "policy".to_string()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn masquerade_only_what_leaves_the_cluster() {
    let (t, w) = table(&cfg("nonMasqueradeCIDRs: [192.168.0.0/16]\n"));
    assert!(w.is_empty());
    let post = |s, d| decide(&t, POSTROUTING_CHAIN, ip(s), ip(d));
    assert_eq!(
        post("10.42.1.5", "10.42.2.7"),
        "Return: pod to pod: keep the pod address"
    );
    assert_eq!(
        post("10.42.1.5", "192.168.2.10"),
        "Return: to nonMasqueradeCIDRs: keep the pod address"
    );
    assert_eq!(
        post("10.42.1.5", "8.8.8.8"),
        "Masquerade { fully_random: true }: pod to outside the cluster: masquerade"
    );
    // The node's own traffic is never touched.
    assert_eq!(post("10.0.0.1", "8.8.8.8"), "policy");
    assert_eq!(post("10.0.0.1", "10.42.2.7"), "policy");
}

#[test]
fn forward_accepts_to_and_from_pods() {
    let (t, _) = table(&cfg(""));
    let fwd = |s, d| decide(&t, FORWARD_CHAIN, ip(s), ip(d));
    assert_eq!(fwd("10.42.1.5", "8.8.8.8"), "Accept: from pods");
    assert_eq!(fwd("8.8.8.8", "10.42.1.5"), "Accept: to pods");
    assert_eq!(fwd("10.0.0.9", "8.8.8.8"), "policy");
}

#[test]
fn nested_and_ipv6_non_masquerade_cidrs() {
    let c = cfg("nonMasqueradeCIDRs: [192.168.2.0/24, 'fd00::/8', 192.168.0.0/16, 10.0.0.0/8, 10.0.0.0/8]\n");
    let mut w = Vec::new();
    let kept = no_masquerade_cidrs(&c, &mut w);
    assert_eq!(
        kept,
        vec![
            "10.0.0.0/8".parse::<Ipv4Net>().unwrap(),
            "192.168.0.0/16".parse().unwrap()
        ]
    );
    assert_eq!(
        w,
        ["nonMasqueradeCIDRs[1] fd00::/8 left out: IPv6 pod networking is not supported yet"]
    );
    let (t, _) = table(&c);
    assert!(render(&t).contains("elements = { 10.0.0.0/8, 192.168.0.0/16 }"));
}

#[test]
fn node_routes_keep_config_order_and_have_no_device() {
    let c = cfg("nodeRoutes: [{to: 192.168.2.0/24, via: 10.0.0.254}, {to: 172.20.0.0/16, via: 10.0.0.253}]\n");
    let lines: Vec<String> = node_routes(&c).iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "192.168.2.0/24 via 10.0.0.254",
            "172.20.0.0/16 via 10.0.0.253"
        ]
    );
}
