//! What an isolated pod allows, as elements of three nft sets keyed by
//! `pod . atom` (see `atoms`): `any` (every protocol and port, a rule
//! without ports), `ports` (`. proto . port`, one exact port: the common
//! case) and `ranges` (`. proto . port-range`, `endPort` ranges and a
//! protocol's whole port space). The first two are exact-match hash sets,
//! whose lookup costs the same however many elements they hold; only
//! `ranges` is an interval (pipapo) set, whose lookup grows with its
//! elements. Per atom the ports are already one union (sorted, disjoint
//! ranges per protocol), so `ranges` elements never overlap, which pipapo
//! requires. Also the peer map `address-range : atom`. [`allows`] reads
//! them the way the data path does, for tests.

use super::intervals::Interval;
use super::ports::Ports;
use crate::nft::KeyVec;
use crate::nft::{Key, L4Proto};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The elements of one direction's three allow sets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Allow {
    /// `pod . atom`: every protocol and port.
    pub any: Vec<KeyVec>,
    /// `pod . atom . proto . port`.
    pub ports: Vec<KeyVec>,
    /// `pod . atom . proto . port-range` (first < last).
    pub ranges: Vec<KeyVec>,
}

/// Adds the allow-set elements of `pod` to `out`.
pub fn keys(pod: Ipv4Addr, allowed: &BTreeMap<u32, Ports>, out: &mut Allow) {
    for (atom, ports) in allowed {
        let atom = Key::Mark(*atom);
        match ports {
            Ports::All => out.any.push(smallvec::smallvec![Key::Ipv4(pod), atom]),
            Ports::Some(map) => {
                for (proto, ranges) in map {
                    for (a, b) in ranges {
                        let (list, port) = if a == b {
                            (&mut out.ports, Key::Port(*a))
                        } else {
                            (&mut out.ranges, Key::PortRange(*a, *b))
                        };
                        list.push(smallvec::smallvec![
                            Key::Ipv4(pod),
                            atom,
                            Key::Proto(*proto),
                            port
                        ]);
                    }
                }
            }
        }
    }
}

/// The peer map's elements.
pub fn peer_elements(peers: &[(Interval, u32)]) -> Vec<(KeyVec, crate::nft::MapData)> {
    peers
        .iter()
        .map(|(i, atom)| {
            (
                smallvec::smallvec![Key::Ipv4Range(i.first(), i.last())],
                crate::nft::MapData::Mark(*atom),
            )
        })
        .collect()
}

/// Whether (peer, proto, port) is allowed for `pod`: the peer's atom from
/// the peer map (none: 0), then the three allow-set lookups.
pub fn allows(
    peers: &[(KeyVec, crate::nft::MapData)],
    sets: &Allow,
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
    let (pod, atom) = (Key::Ipv4(pod), Key::Mark(atom));
    sets.any.iter().any(|e| e[..] == [pod, atom])
        || sets.ports.contains(&smallvec::smallvec![
            pod,
            atom,
            Key::Proto(proto),
            Key::Port(port)
        ])
        || sets.ranges.iter().any(|e| {
            e[..2] == [pod, atom]
                && e[2] == Key::Proto(proto)
                && matches!(e[3], Key::PortRange(a, b) if a <= port && port <= b)
        })
}
