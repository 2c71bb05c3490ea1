//! What an isolated pod allows, as elements of an nft interval
//! concatenation set: `pod . atom . proto . port-range` (see `atoms`), and
//! the peer map `address-range : atom`. Per atom the ports are already one
//! union (sorted, disjoint ranges per protocol), so elements never overlap,
//! which the kernel's pipapo set requires. [`allows`] reads them the way
//! the data path does, for tests.

use super::intervals::Interval;
use super::ports::Ports;
use crate::nft::{Key, L4Proto};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The allow-set elements of `pod`.
pub fn keys(pod: Ipv4Addr, allowed: &BTreeMap<u32, Ports>, out: &mut Vec<Vec<Key>>) {
    for (atom, ports) in allowed {
        let atom = Key::Mark(*atom);
        match ports {
            Ports::All => out.push(vec![
                Key::Ipv4(pod),
                atom,
                Key::ProtoRange(0, u8::MAX),
                Key::PortRange(0, u16::MAX),
            ]),
            Ports::Some(map) => {
                for (proto, ranges) in map {
                    for (a, b) in ranges {
                        out.push(vec![
                            Key::Ipv4(pod),
                            atom,
                            Key::Proto(*proto),
                            Key::PortRange(*a, *b),
                        ]);
                    }
                }
            }
        }
    }
}

/// The peer map's elements.
pub fn peer_elements(peers: &[(Interval, u32)]) -> Vec<(Vec<Key>, crate::nft::MapData)> {
    peers
        .iter()
        .map(|(i, atom)| {
            (
                vec![Key::Ipv4Range(i.first(), i.last())],
                crate::nft::MapData::Mark(*atom),
            )
        })
        .collect()
}

fn proto_number(proto: L4Proto) -> u8 {
    match proto {
        L4Proto::Tcp => 6,
        L4Proto::Udp => 17,
        L4Proto::Sctp => 132,
        L4Proto::Icmp => 1,
        L4Proto::Icmpv6 => 58,
    }
}

/// Whether (peer, proto, port) is allowed for `pod`: the peer's atom from
/// the peer map (none: 0), then the allow-set lookup.
pub fn allows(
    peers: &[(Vec<Key>, crate::nft::MapData)],
    elements: &[Vec<Key>],
    pod: Ipv4Addr,
    peer: Ipv4Addr,
    proto: L4Proto,
    port: u16,
) -> bool {
    let atom = peers
        .iter()
        .find_map(|(k, v)| match (k[0], v) {
            (Key::Ipv4Range(a, b), crate::nft::MapData::Mark(m)) if a <= peer && peer <= b => {
                Some(*m)
            }
            _ => None,
        })
        .unwrap_or(0);
    let n = proto_number(proto);
    elements.iter().any(|e| {
        let proto_ok = match e[2] {
            Key::Proto(p) => p == proto,
            Key::ProtoRange(a, b) => a <= n && n <= b,
            _ => false,
        };
        e[0] == Key::Ipv4(pod)
            && e[1] == Key::Mark(atom)
            && proto_ok
            && matches!(e[3], Key::PortRange(a, b) if a <= port && port <= b)
    })
}
