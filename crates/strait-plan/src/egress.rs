//! Egress: how pod traffic leaves the cluster network.
//!
//! - Masquerade (nft `postrouting` NAT chain): traffic from the cluster CIDR
//!   keeps its source address towards the cluster CIDR and towards
//!   `nonMasqueradeCIDRs`, and is masqueraded (fully random ports) to
//!   everything else. Three rules, so each path has its own counter.
//! - Forwarding (nft `forward` filter chain): traffic to or from the cluster
//!   CIDR is accepted.
//! - Node routes: each `nodeRoutes` entry becomes a route `to via via`.
//!
//! Owns the egress sets and chains of the `inet strait` table; other
//! concerns (services, policy) add their own.

use crate::nft::{
    Addrs, BaseChain, Chain, ChainType, Hook, IpFamily, Match, Policy, Rule, Set, SetKind, Table,
    Verdict,
};
use crate::plan::RoutePlan;
use ipnet::{IpNet, Ipv4Net};
use strait_model::AgentConfig;

/// The set holding the cluster CIDR.
pub const CLUSTER_SET: &str = "cluster-cidrs";
/// The set holding `nonMasqueradeCIDRs`.
pub const NO_MASQUERADE_SET: &str = "no-masquerade";
pub const FORWARD_CHAIN: &str = "forward";
pub const POSTROUTING_CHAIN: &str = "postrouting";
/// nft's `filter` priority.
pub const PRIORITY_FILTER: i32 = 0;
/// nft's `srcnat` priority.
pub const PRIORITY_SRCNAT: i32 = 100;

/// `nodeRoutes` as routes (the kernel picks the device from `via`).
pub fn node_routes(cfg: &AgentConfig) -> Vec<RoutePlan> {
    cfg.node_routes
        .iter()
        .map(|r| RoutePlan {
            dst: r.to,
            gateway: Some(r.via),
            dev: None,
            onlink: false,
        })
        .collect()
}

/// The IPv4 `nonMasqueradeCIDRs` with every CIDR that lies inside another
/// one dropped (nft refuses overlapping interval elements). IPv6 entries
/// are left out with a warning.
pub fn no_masquerade_cidrs(cfg: &AgentConfig, warnings: &mut Vec<String>) -> Vec<Ipv4Net> {
    let mut v4 = Vec::new();
    for (i, net) in cfg.non_masquerade_cidrs.iter().enumerate() {
        match net {
            IpNet::V4(n) => v4.push(*n),
            IpNet::V6(n) => warnings.push(format!(
                "nonMasqueradeCIDRs[{i}] {n} left out: IPv6 pod networking is not supported yet"
            )),
        }
    }
    v4.sort();
    v4.dedup();
    let mut kept: Vec<Ipv4Net> = Vec::with_capacity(v4.len());
    for n in v4 {
        // Sorted by network address, a container comes before what it holds.
        if !kept.iter().any(|k| k.contains(&n)) {
            kept.push(n);
        }
    }
    kept
}

fn addr_set(name: &str, elements: Vec<Ipv4Net>, comment: &str) -> Set {
    Set {
        name: name.to_string(),
        kind: SetKind::Ipv4Addr,
        interval: true,
        elements: elements.into_iter().map(IpNet::V4).collect(),
        comment: Some(comment.to_string()),
        timeout: None,
    }
}

fn saddr(set: &str) -> Match {
    Match::SaddrIn {
        family: IpFamily::V4,
        addrs: Addrs::Set(set.to_string()),
        negate: false,
    }
}

fn daddr(set: &str) -> Match {
    Match::DaddrIn {
        family: IpFamily::V4,
        addrs: Addrs::Set(set.to_string()),
        negate: false,
    }
}

fn rule(matches: Vec<Match>, verdict: Verdict, comment: &str) -> Rule {
    Rule {
        matches,
        verdict,
        statements: Vec::new(),
        counter: true,
        comment: Some(comment.to_string()),
    }
}

/// Adds the egress sets and chains to `table`.
pub fn add_to_table(
    cfg: &AgentConfig,
    cluster: Ipv4Net,
    table: &mut Table,
    warnings: &mut Vec<String>,
) {
    table
        .sets
        .push(addr_set(CLUSTER_SET, vec![cluster], "clusterCIDR"));
    table.sets.push(addr_set(
        NO_MASQUERADE_SET,
        no_masquerade_cidrs(cfg, warnings),
        "nonMasqueradeCIDRs",
    ));
    table.chains.push(Chain {
        name: FORWARD_CHAIN.to_string(),
        base: Some(BaseChain {
            kind: ChainType::Filter,
            hook: Hook::Forward,
            priority: PRIORITY_FILTER,
            policy: Policy::Accept,
        }),
        rules: vec![
            rule(vec![saddr(CLUSTER_SET)], Verdict::Accept, "from pods"),
            rule(vec![daddr(CLUSTER_SET)], Verdict::Accept, "to pods"),
        ],
    });
    table.chains.push(Chain {
        name: POSTROUTING_CHAIN.to_string(),
        base: Some(BaseChain {
            kind: ChainType::Nat,
            hook: Hook::Postrouting,
            priority: PRIORITY_SRCNAT,
            policy: Policy::Accept,
        }),
        rules: vec![
            rule(
                vec![saddr(CLUSTER_SET), daddr(CLUSTER_SET)],
                Verdict::Return,
                "pod to pod: keep the pod address",
            ),
            rule(
                vec![saddr(CLUSTER_SET), daddr(NO_MASQUERADE_SET)],
                Verdict::Return,
                "to nonMasqueradeCIDRs: keep the pod address",
            ),
            rule(
                vec![saddr(CLUSTER_SET)],
                Verdict::Masquerade { fully_random: true },
                "pod to outside the cluster: masquerade",
            ),
        ],
    });
}

#[cfg(test)]
#[path = "egress_tests.rs"]
mod tests;
