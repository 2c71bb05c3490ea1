//! Which policy and rule decide one packet, for `strait trace`. The table
//! merges every rule selecting a pod into one allow set, so the kernel
//! cannot say which rule matched; this evaluates the policies selecting
//! the pod for the one packet, with the compiler's own selectors, peers
//! and ports, and names the first rule that allows it, or every policy
//! that selects the pod when none does.

use super::cluster::{Cluster, PodRef};
use super::ports::{self, Ports};
use super::rules::{self, Direction, Namespaces, Peer, Policy, Rule};
use crate::nft::L4Proto;
use std::net::Ipv4Addr;
use strait_model::Snapshot;

/// The policy and rule that allow a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedBy {
    /// `namespace/name`.
    pub policy: String,
    /// 0-based index into `spec.ingress` / `spec.egress`.
    pub rule: usize,
}

/// What the policies say about one packet in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub direction: Direction,
    /// The policed pod (`namespace/name`): the destination for ingress,
    /// the source for egress.
    pub pod: String,
    /// Every policy of this direction selecting the pod (`namespace/name`),
    /// in snapshot order; empty: the pod is not isolated.
    pub selecting: Vec<String>,
    /// The first (policy, rule) allowing the packet; `None` with a
    /// non-empty `selecting`: dropped.
    pub allowed_by: Option<AllowedBy>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.selecting.is_empty() || self.allowed_by.is_some()
    }

    /// `allowed by x/allow-from-y ingress rule 1 (spec.ingress[0])`,
    /// `selected by x/deny-all (ingress); no rule allows ...` (the peer and
    /// what are the caller's), `not isolated for ingress`.
    pub fn summary(&self) -> String {
        let d = self.direction.as_str();
        match (&self.allowed_by, self.selecting.is_empty()) {
            (_, true) => format!("{} is not isolated for {d}", self.pod),
            (Some(a), false) => format!(
                "allowed by {} {d} rule {} (spec.{d}[{}])",
                a.policy,
                a.rule + 1,
                a.rule
            ),
            (None, false) => format!("selected by {} ({d})", self.selecting.join(", ")),
        }
    }
}

fn key(p: &PodRef) -> String {
    format!(
        "{}/{}",
        p.namespace,
        p.pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// Whether `ports` allows `proto`/`port` (ICMP only by a rule without ports).
fn ports_allow(ports: &Ports, proto: L4Proto, port: u16) -> bool {
    match ports {
        Ports::All => true,
        Ports::Some(m) => m
            .get(&proto)
            .is_some_and(|r| r.iter().any(|(a, b)| (*a..=*b).contains(&port))),
    }
}

/// Whether `peer` (a cluster pod or not) is one of the rule's peers.
fn peer_matches(cluster: &Cluster, rule: &Rule, peer_ip: Ipv4Addr, peer: Option<&PodRef>) -> bool {
    let Some(peers) = &rule.peers else {
        return true;
    };
    peers.iter().any(|p| match p {
        Peer::Nothing => false,
        Peer::Block(b) => b.iter().any(|i| i.contains(u32::from(peer_ip))),
        Peer::Pods { namespaces, pods } => peer.is_some_and(|pp| {
            let ns_ok = match namespaces {
                Namespaces::Own(ns) => pp.namespace == ns.as_str(),
                Namespaces::Matching(s) => s.matches(&cluster.namespace_labels(pp.namespace)),
            };
            ns_ok && pods.matches(pp.labels)
        }),
    })
}

/// Whether the rule's ports allow the packet; ports are the destination
/// pod's (named ports), `None` when the destination is not a pod.
fn rule_ports_allow(rule: &Rule, dest: Option<&PodRef>, proto: L4Proto, port: u16) -> bool {
    if rule.ports.is_empty() {
        return true;
    }
    rule.ports.iter().any(|(field, p)| {
        ports::resolve(p, dest.map(|d| d.pod), field)
            .is_ok_and(|allowed| ports_allow(&allowed, proto, port))
    })
}

/// What the policies say about `src` -> `dst` (`proto`, destination
/// `port`; 0 without ports) in direction `d`. `None` when the policed
/// address (the destination for ingress, the source for egress) is not a
/// pod policies can select.
pub fn decide(
    snap: &Snapshot,
    d: Direction,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: L4Proto,
    port: u16,
) -> Option<Decision> {
    let cluster = Cluster::new(snap);
    let by_ip = |ip: Ipv4Addr| cluster.pods.iter().find(|p| p.ip == ip);
    let (pod_ip, peer_ip) = match d {
        Direction::Ingress => (dst, src),
        Direction::Egress => (src, dst),
    };
    let pod = by_ip(pod_ip)?;
    let peer = by_ip(peer_ip);
    let dest = match d {
        Direction::Ingress => Some(pod),
        Direction::Egress => peer,
    };
    let mut warnings = Vec::new();
    let policies: Vec<Policy> = snap
        .network_policies
        .iter()
        .filter_map(|np| rules::parse(np, &mut warnings))
        .collect();
    let mut out = Decision {
        direction: d,
        pod: key(pod),
        selecting: Vec::new(),
        allowed_by: None,
    };
    for p in &policies {
        let Some(list) = p.rules(d) else { continue };
        if p.namespace != pod.namespace || !p.selector.matches(pod.labels) {
            continue;
        }
        out.selecting.push(p.key());
        if out.allowed_by.is_some() {
            continue;
        }
        if let Some(r) = list.iter().position(|r| {
            peer_matches(&cluster, r, peer_ip, peer) && rule_ports_allow(r, dest, proto, port)
        }) {
            out.allowed_by = Some(AllowedBy {
                policy: p.key(),
                rule: r,
            });
        }
    }
    Some(out)
}

#[cfg(test)]
#[path = "provenance_tests.rs"]
mod tests;
