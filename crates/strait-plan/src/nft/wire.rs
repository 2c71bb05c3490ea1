//! Set and map elements as the kernel stores them: the bytes of an
//! nftables element key and its data, for the agent to write through
//! netlink instead of asking `nft` to parse 100,000 lines of text (see
//! `strait_kernel::nft_batch`).
//!
//! The layout is nftables' register layout: a single-component key is the
//! value's own bytes (an IPv4 address 4, a protocol 1, a port 2 in network
//! order); in a concatenation every component is padded with zeros to 4
//! bytes. Integers that nft keeps in host byte order (`numgen`, marks) are
//! written in host order. Only sets and maps without `flags interval` are
//! written this way: interval sets need the kernel's range encoding, which
//! stays nft's job.

use super::incremental::Element;
use super::ir::{ConcatSet, Key, Map, MapData, Set, Table, Verdict};
use crate::nft::KeyVec;
use std::net::IpAddr;

/// What an element maps to (mirrors `strait_kernel::nft_batch::ElementData`;
/// this crate does not depend on the kernel crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireData<'a> {
    None,
    /// At most 8 bytes: a mark, or an address and port.
    Value(&'a [u8]),
    Verdict {
        code: i32,
        chain: Option<&'a str>,
    },
}

/// Verdict codes (`include/uapi/linux/netfilter/nf_tables.h`, `NF_*`).
const NF_DROP: i32 = 0;
const NF_ACCEPT: i32 = 1;
const NFT_CONTINUE: i32 = -1;
const NFT_JUMP: i32 = -3;
const NFT_GOTO: i32 = -4;
const NFT_RETURN: i32 = -5;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("element of {set}: {what} cannot be written as set element bytes")]
    Unsupported { set: String, what: String },
}

/// Whether the elements of this set are written through netlink (and left
/// out of the rendered skeleton).
pub fn set_by_netlink(set: &Set) -> bool {
    !set.interval && set.timeout.is_none()
}

pub fn concat_set_by_netlink(set: &ConcatSet) -> bool {
    !set.interval
}

pub fn map_by_netlink(map: &Map) -> bool {
    !map.interval
}

/// The sets and maps whose elements are written through netlink: (name,
/// element count), in the table's order.
fn netlink_lists(table: &Table) -> impl Iterator<Item = (&str, usize)> {
    let sets = table.sets.iter().filter(|s| set_by_netlink(s));
    let concat = table
        .concat_sets
        .iter()
        .filter(|s| concat_set_by_netlink(s));
    let maps = table.maps.iter().filter(|m| map_by_netlink(m));
    sets.map(|s| (s.name.as_str(), s.elements.len()))
        .chain(concat.map(|s| (s.name.as_str(), s.elements.len())))
        .chain(maps.map(|m| (m.name.as_str(), m.elements.len())))
}

/// Whether set or map `name` of `table` is one whose elements are written
/// through netlink (false for an unknown name).
pub fn by_netlink(table: &Table, name: &str) -> bool {
    netlink_lists(table).any(|(n, _)| n == name)
}

/// How many elements [`for_each_element`] visits.
pub fn element_count(table: &Table) -> usize {
    netlink_lists(table).map(|(_, n)| n).sum()
}

/// Calls `f(set, key, data)` for every element of every set and map that
/// [`super::render_skeleton`] leaves out, in the table's order.
pub fn for_each_element(
    table: &Table,
    mut f: impl FnMut(&str, &[u8], WireData<'_>),
) -> Result<(), WireError> {
    let mut key = Vec::with_capacity(32);
    for set in table.sets.iter().filter(|s| set_by_netlink(s)) {
        let mut elements: Vec<IpAddr> = set.elements.iter().map(|n| n.addr()).collect();
        elements.sort();
        elements.dedup();
        for addr in elements {
            addr_bytes(addr, &mut key);
            f(&set.name, &key, WireData::None);
        }
    }
    for set in table
        .concat_sets
        .iter()
        .filter(|s| concat_set_by_netlink(s))
    {
        let mut elements: Vec<&KeyVec> = set.elements.iter().collect();
        elements.sort();
        elements.dedup();
        for element in elements {
            key_bytes(&set.name, element, &mut key)?;
            f(&set.name, &key, WireData::None);
        }
    }
    for map in table.maps.iter().filter(|m| map_by_netlink(m)) {
        for (k, data) in &map.elements {
            key_bytes(&map.name, k, &mut key)?;
            let mut value = [0u8; 8];
            let data = data_bytes(&map.name, data, &mut value)?;
            f(&map.name, &key, data);
        }
    }
    Ok(())
}

/// One element of an incremental change: its key into `key`, and its data
/// (held in `value` when it is one).
pub fn element<'a>(
    set: &str,
    e: &Element<'a>,
    key: &mut Vec<u8>,
    value: &'a mut [u8; 8],
) -> Result<WireData<'a>, WireError> {
    match e {
        Element::Addr(a) => {
            addr_bytes(*a, key);
            Ok(WireData::None)
        }
        Element::Key(k) => {
            key_bytes(set, k, key)?;
            Ok(WireData::None)
        }
        Element::Mapping(k, data) => {
            key_bytes(set, k, key)?;
            data_bytes(set, data, value)
        }
    }
}

fn addr_bytes(addr: IpAddr, out: &mut Vec<u8>) {
    out.clear();
    match addr {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

/// A map element's data: a verdict, or a value written into `value`.
fn data_bytes<'a>(
    set: &str,
    data: &'a MapData,
    value: &'a mut [u8; 8],
) -> Result<WireData<'a>, WireError> {
    Ok(match data {
        MapData::Verdict(v) => verdict(set, v)?,
        MapData::AddrPort(a, p) => {
            value[..4].copy_from_slice(&a.octets());
            value[4..6].copy_from_slice(&p.to_be_bytes());
            WireData::Value(&value[..8])
        }
        MapData::Mark(m) => {
            value[..4].copy_from_slice(&m.to_ne_bytes());
            WireData::Value(&value[..4])
        }
    })
}

/// The key's bytes into `out` (cleared first).
pub fn key_bytes(set: &str, key: &[Key], out: &mut Vec<u8>) -> Result<(), WireError> {
    out.clear();
    let concat = key.len() > 1;
    for part in key {
        let start = out.len();
        match *part {
            Key::Ipv4(a) => out.extend_from_slice(&a.octets()),
            Key::Proto(p) => out.push(p.number()),
            Key::Port(p) => out.extend_from_slice(&p.to_be_bytes()),
            Key::Index(i) => out.extend_from_slice(&i.to_ne_bytes()),
            Key::Mark(m) => out.extend_from_slice(&m.to_ne_bytes()),
            Key::Ipv4Range(..) | Key::ProtoRange(..) | Key::PortRange(..) => {
                return Err(WireError::Unsupported {
                    set: set.to_owned(),
                    what: format!("the range {part:?}"),
                })
            }
        }
        if concat {
            while !(out.len() - start).is_multiple_of(4) {
                out.push(0);
            }
        }
    }
    Ok(())
}

fn verdict<'a>(set: &str, v: &'a Verdict) -> Result<WireData<'a>, WireError> {
    let (code, chain) = match v {
        Verdict::Accept => (NF_ACCEPT, None),
        Verdict::Drop => (NF_DROP, None),
        Verdict::Return => (NFT_RETURN, None),
        Verdict::Continue => (NFT_CONTINUE, None),
        Verdict::Jump(c) => (NFT_JUMP, Some(c.as_str())),
        Verdict::Goto(c) => (NFT_GOTO, Some(c.as_str())),
        other => {
            return Err(WireError::Unsupported {
                set: set.to_owned(),
                what: format!("the verdict {other:?}"),
            })
        }
    };
    Ok(WireData::Verdict { code, chain })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::L4Proto;
    use std::net::Ipv4Addr;

    #[test]
    fn concatenations_pad_every_component_to_four_bytes() {
        let mut out = Vec::new();
        key_bytes(
            "m",
            &[
                Key::Ipv4(Ipv4Addr::new(10, 43, 0, 1)),
                Key::Proto(L4Proto::Udp),
                Key::Port(53),
                Key::Index(7),
            ],
            &mut out,
        )
        .unwrap();
        let mut want = vec![10, 43, 0, 1, 17, 0, 0, 0, 0, 53, 0, 0];
        want.extend_from_slice(&7u32.to_ne_bytes());
        assert_eq!(out, want);
    }

    #[test]
    fn a_single_component_is_its_own_length() {
        let mut out = Vec::new();
        key_bytes("s", &[Key::Port(8080)], &mut out).unwrap();
        assert_eq!(out, vec![0x1f, 0x90]);
        key_bytes("s", &[Key::Proto(L4Proto::Tcp)], &mut out).unwrap();
        assert_eq!(out, vec![6]);
    }

    #[test]
    fn ranges_are_refused_with_the_set_named() {
        let mut out = Vec::new();
        let err = key_bytes("allow", &[Key::PortRange(1, 2)], &mut out).unwrap_err();
        assert!(err.to_string().contains("allow"), "{err}");
    }
}
