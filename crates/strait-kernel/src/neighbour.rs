//! Permanent neighbour entries (IP -> MAC) and VXLAN forwarding-database
//! entries (MAC -> remote VTEP), as the VXLAN backend needs them.
//!
//! An FDB entry on a VXLAN device must carry NTF_SELF (the device's own
//! table, not a bridge's) or the kernel answers EOPNOTSUPP.

use crate::netlink::{Netlink, NetlinkError};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

pub type Mac = [u8; 6];

/// One entry: `ip` on `ifindex` is at `mac` (neighbour), or `mac` is reached
/// through the VTEP at `ip` (FDB).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub ifindex: u32,
    pub ip: IpAddr,
    pub mac: Mac,
}

fn addr(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(v) => NeighbourAddress::Inet(v),
        IpAddr::V6(v) => NeighbourAddress::Inet6(v),
    }
}

fn message(e: &Entry, fdb: bool) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.ifindex = e.ifindex;
    m.header.state = NeighbourState::Permanent;
    m.header.kind = RouteType::Unspec;
    if fdb {
        m.header.family = AddressFamily::Bridge;
        m.header.flags = NeighbourFlags::Own;
    } else {
        m.header.family = if e.ip.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
    }
    m.attributes
        .push(NeighbourAttribute::Destination(addr(e.ip)));
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(e.mac.to_vec()));
    m
}

fn mac_of(bytes: &[u8]) -> Option<Mac> {
    bytes.try_into().ok()
}

fn parse(m: &NeighbourMessage) -> Option<Entry> {
    let mut ip = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => ip = Some(IpAddr::V4(*v)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v)) => {
                ip = Some(IpAddr::V6(*v))
            }
            // In AF_BRIDGE (FDB) dumps the family does not say the address
            // family, so the crate hands the VTEP address over as bytes.
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                ip = match b.len() {
                    4 => <[u8; 4]>::try_from(b.as_slice()).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(b.as_slice()).ok().map(IpAddr::from),
                    _ => None,
                }
            }
            NeighbourAttribute::LinkLayerAddress(b) => mac = mac_of(b),
            _ => {}
        }
    }
    Some(Entry {
        ifindex: m.header.ifindex,
        ip: ip?,
        mac: mac?,
    })
}

fn list(nl: &mut Netlink, ifindex: u32, fdb: bool) -> Result<Vec<Entry>, NetlinkError> {
    let mut req = NeighbourMessage::default();
    req.header.family = if fdb {
        AddressFamily::Bridge
    } else {
        AddressFamily::Unspec
    };
    let answers = nl.dump(RouteNetlinkMessage::GetNeighbour(req), || {
        format!("list {} entries", if fdb { "FDB" } else { "neighbour" })
    })?;
    Ok(answers
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewNeighbour(m)
                if m.header.ifindex == ifindex && m.header.state == NeighbourState::Permanent =>
            {
                parse(m)
            }
            _ => None,
        })
        .collect())
}

fn describe(e: &Entry, fdb: bool) -> String {
    let mac = crate::link::format_mac(&e.mac);
    if fdb {
        format!("FDB {mac} dst {} on ifindex {}", e.ip, e.ifindex)
    } else {
        format!("neighbour {} lladdr {mac} on ifindex {}", e.ip, e.ifindex)
    }
}

/// Permanent neighbours on one interface.
pub fn neighbours(nl: &mut Netlink, ifindex: u32) -> Result<Vec<Entry>, NetlinkError> {
    list(nl, ifindex, false)
}

/// Permanent FDB entries with a remote (VXLAN) on one interface.
pub fn fdb(nl: &mut Netlink, ifindex: u32) -> Result<Vec<Entry>, NetlinkError> {
    list(nl, ifindex, true)
}

/// Adds or replaces a permanent neighbour.
pub fn set_neighbour(nl: &mut Netlink, e: &Entry) -> Result<(), NetlinkError> {
    nl.execute(
        RouteNetlinkMessage::NewNeighbour(message(e, false)),
        NLM_F_CREATE | NLM_F_REPLACE,
        || format!("set {}", describe(e, false)),
    )
}

/// Adds or replaces a VXLAN FDB entry.
pub fn set_fdb(nl: &mut Netlink, e: &Entry) -> Result<(), NetlinkError> {
    nl.execute(
        RouteNetlinkMessage::NewNeighbour(message(e, true)),
        NLM_F_CREATE | NLM_F_REPLACE,
        || format!("set {}", describe(e, true)),
    )
}

fn delete(nl: &mut Netlink, e: &Entry, fdb: bool) -> Result<(), NetlinkError> {
    match nl.execute(
        RouteNetlinkMessage::DelNeighbour(message(e, fdb)),
        0,
        || format!("delete {}", describe(e, fdb)),
    ) {
        Err(err) if err.is(libc::ENOENT) => Ok(()),
        other => other,
    }
}

pub fn delete_neighbour(nl: &mut Netlink, e: &Entry) -> Result<(), NetlinkError> {
    delete(nl, e, false)
}

pub fn delete_fdb(nl: &mut Netlink, e: &Entry) -> Result<(), NetlinkError> {
    delete(nl, e, true)
}
