//! `ports` of a policy rule: which protocols and destination ports it
//! allows towards one destination pod. Numeric ports, `endPort` ranges and
//! named ports (the destination pod's `containerPorts` with that name and
//! protocol); TCP, UDP and SCTP. A rule without `ports` allows every
//! protocol and port (ICMP too); a rule with ports allows only those.

use crate::nft::L4Proto;
use std::collections::BTreeMap;
use strait_model::k8s::api::core::v1::Pod;
use strait_model::k8s::api::networking::v1::NetworkPolicyPort;
use strait_model::k8s::apimachinery::pkg::util::intstr::IntOrString;

/// Every port a protocol has (`th dport 0-65535`).
pub const ALL_PORTS: (u16, u16) = (0, u16::MAX);

/// What a rule allows towards one destination.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ports {
    /// Every protocol and port (a rule without `ports`).
    All,
    /// Per protocol, sorted, disjoint, non-adjacent inclusive port ranges;
    /// an empty map allows nothing.
    Some(BTreeMap<L4Proto, Vec<(u16, u16)>>),
}

impl Ports {
    pub fn none() -> Ports {
        Ports::Some(BTreeMap::new())
    }

    pub fn one(proto: L4Proto, first: u16, last: u16) -> Ports {
        Ports::Some(BTreeMap::from([(proto, vec![(first, last)])]))
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Ports::Some(m) if m.is_empty())
    }

    /// Allows what either allows.
    pub fn union(&self, other: &Ports) -> Ports {
        match (self, other) {
            (Ports::All, _) | (_, Ports::All) => Ports::All,
            (Ports::Some(a), Ports::Some(b)) => {
                let mut out = a.clone();
                for (proto, ranges) in b {
                    let merged = out.entry(*proto).or_default();
                    merged.extend(ranges);
                    *merged = merge_ranges(std::mem::take(merged));
                }
                Ports::Some(out)
            }
        }
    }
}

/// Sorts and merges overlapping or adjacent port ranges.
pub fn merge_ranges(mut list: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    list.sort();
    let mut out: Vec<(u16, u16)> = Vec::with_capacity(list.len());
    for (a, b) in list {
        match out.last_mut() {
            Some(last) if u32::from(last.1) + 1 >= u32::from(a) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `TCP` (the default), `UDP` or `SCTP`.
pub fn protocol(p: &NetworkPolicyPort, field: &str) -> Result<L4Proto, String> {
    match p.protocol.as_deref() {
        None | Some("TCP") => Ok(L4Proto::Tcp),
        Some("UDP") => Ok(L4Proto::Udp),
        Some("SCTP") => Ok(L4Proto::Sctp),
        Some(other) => Err(format!(
            "{field}.protocol {other:?} is not TCP, UDP or SCTP"
        )),
    }
}

/// Whether the entry names its port (then it depends on the destination).
pub fn is_named(p: &NetworkPolicyPort) -> bool {
    matches!(p.port, Some(IntOrString::String(_)))
}

/// What one `ports` entry allows towards `dest` (None: not a pod, e.g. an
/// ipBlock peer, where a named port resolves to nothing).
pub fn resolve(p: &NetworkPolicyPort, dest: Option<&Pod>, field: &str) -> Result<Ports, String> {
    let proto = protocol(p, field)?;
    let number = |n: i32, what: &str| -> Result<u16, String> {
        u16::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{field}.{what} {n} is not a port (1-65535)"))
    };
    match (&p.port, p.end_port) {
        (None, None) => Ok(Ports::one(proto, ALL_PORTS.0, ALL_PORTS.1)),
        (None, Some(_)) => Err(format!("{field}.endPort needs a numeric port")),
        (Some(IntOrString::Int(n)), end) => {
            let first = number(*n, "port")?;
            let last = match end {
                None => first,
                Some(e) => {
                    let last = number(e, "endPort")?;
                    if last < first {
                        return Err(format!("{field}.endPort {last} is below port {first}"));
                    }
                    last
                }
            };
            Ok(Ports::one(proto, first, last))
        }
        (Some(IntOrString::String(_)), Some(_)) => {
            Err(format!("{field}.endPort cannot go with a named port"))
        }
        (Some(IntOrString::String(name)), None) => {
            if name.is_empty() {
                return Err(format!("{field}.port is an empty name"));
            }
            Ok(named(name, proto, dest))
        }
    }
}

/// The ports named `name` for `proto` in `pod`'s containers (nothing for
/// no pod, or a pod without such a port).
fn named(name: &str, proto: L4Proto, pod: Option<&Pod>) -> Ports {
    let mut out = Ports::none();
    let containers = pod
        .and_then(|p| p.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    for c in containers {
        for cp in c.ports.iter().flatten() {
            let cp_proto = match cp.protocol.as_deref() {
                None | Some("TCP") => L4Proto::Tcp,
                Some("UDP") => L4Proto::Udp,
                Some("SCTP") => L4Proto::Sctp,
                Some(_) => continue,
            };
            if cp.name.as_deref() == Some(name) && cp_proto == proto {
                if let Ok(port) = u16::try_from(cp.container_port) {
                    if port > 0 {
                        out = out.union(&Ports::one(proto, port, port));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "ports_tests.rs"]
mod tests;
