//! Turns what a pod allows — peer address intervals, each with the
//! protocols and ports allowed from/to it — into elements of an nft
//! interval concatenation set (`pod . peer-range . proto . port-range`).
//! The kernel's pipapo set refuses overlapping elements, so the peers are
//! first cut into disjoint intervals, each carrying the union of what the
//! rules covering it allow, and neighbours that allow the same are merged.

use super::intervals::{merge, Interval};
use super::ports::Ports;
use crate::nft::{Key, L4Proto};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Disjoint, sorted intervals with what each allows (never nothing).
pub fn disjoint(entries: Vec<(Interval, Ports)>) -> Vec<(Interval, Ports)> {
    let mut groups: BTreeMap<Ports, Vec<Interval>> = BTreeMap::new();
    for (i, p) in entries {
        if !p.is_none() {
            groups.entry(p).or_default().push(i);
        }
    }
    let groups: Vec<(Ports, Vec<Interval>)> =
        groups.into_iter().map(|(p, l)| (p, merge(l))).collect();
    if groups.len() <= 1 {
        return groups
            .into_iter()
            .flat_map(|(p, list)| list.into_iter().map(move |i| (i, p.clone())))
            .collect();
    }
    // Every point where some group's coverage starts or stops.
    let mut cuts: Vec<u64> = groups
        .iter()
        .flat_map(|(_, l)| {
            l.iter()
                .flat_map(|i| [u64::from(i.lo), u64::from(i.hi) + 1])
        })
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut cursor = vec![0usize; groups.len()];
    let mut out: Vec<(Interval, Ports)> = Vec::new();
    for w in cuts.windows(2) {
        let (lo, hi) = (w[0] as u32, (w[1] - 1) as u32);
        let mut allowed: Option<Ports> = None;
        for (g, (ports, list)) in groups.iter().enumerate() {
            // Cuts only grow, so each group's cursor only moves forward.
            while cursor[g] < list.len() && list[cursor[g]].hi < lo {
                cursor[g] += 1;
            }
            if list.get(cursor[g]).is_some_and(|i| i.contains(lo)) {
                allowed = Some(match allowed {
                    None => ports.clone(),
                    Some(a) => a.union(ports),
                });
            }
        }
        let Some(allowed) = allowed else { continue };
        match out.last_mut() {
            Some((last, p)) if *p == allowed && u64::from(last.hi) + 1 == u64::from(lo) => {
                last.hi = hi;
            }
            _ => out.push((Interval { lo, hi }, allowed)),
        }
    }
    out
}

/// The set elements `pod . peer . proto . port` for `pod`.
pub fn keys(pod: Ipv4Addr, allowed: &[(Interval, Ports)], out: &mut Vec<Vec<Key>>) {
    for (i, ports) in allowed {
        let peer = Key::Ipv4Range(i.first(), i.last());
        match ports {
            Ports::All => out.push(vec![
                Key::Ipv4(pod),
                peer,
                Key::ProtoRange(0, u8::MAX),
                Key::PortRange(0, u16::MAX),
            ]),
            Ports::Some(map) => {
                for (proto, ranges) in map {
                    for (a, b) in ranges {
                        out.push(vec![
                            Key::Ipv4(pod),
                            peer,
                            Key::Proto(*proto),
                            Key::PortRange(*a, *b),
                        ]);
                    }
                }
            }
        }
    }
}

/// Whether the elements allow (peer, proto, port) for `pod`: what the
/// kernel's lookup does, for tests.
pub fn allows(
    elements: &[Vec<Key>],
    pod: Ipv4Addr,
    peer: Ipv4Addr,
    proto: L4Proto,
    port: u16,
) -> bool {
    let proto_num = match proto {
        L4Proto::Tcp => 6,
        L4Proto::Udp => 17,
        L4Proto::Sctp => 132,
        L4Proto::Icmp => 1,
        L4Proto::Icmpv6 => 58,
    };
    elements.iter().any(|e| {
        let pod_ok = e[0] == Key::Ipv4(pod);
        let peer_ok = matches!(e[1], Key::Ipv4Range(a, b) if a <= peer && peer <= b);
        let proto_ok = match e[2] {
            Key::Proto(p) => p == proto,
            Key::ProtoRange(a, b) => a <= proto_num && proto_num <= b,
            _ => false,
        };
        let port_ok = matches!(e[3], Key::PortRange(a, b) if a <= port && port <= b);
        pod_ok && peer_ok && proto_ok && port_ok
    })
}

#[cfg(test)]
#[path = "elements_tests.rs"]
mod tests;
