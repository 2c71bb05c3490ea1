//! Interface addresses.

use crate::netlink::{Netlink, NetlinkError};
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

fn family(addr: IpAddr) -> AddressFamily {
    if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// The request naming `addr` on interface `index`.
fn message(index: u32, addr: IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family(addr.addr());
    msg.header.prefix_len = addr.prefix_len();
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(addr.addr()));
    msg.attributes.push(AddressAttribute::Address(addr.addr()));
    msg
}

/// Adds an address. IPv6 addresses skip duplicate address detection: the
/// allocator already guarantees uniqueness, and DAD would leave the address
/// unusable for a second or more after ADD returns. Already present is fine.
pub fn add(nl: &mut Netlink, index: u32, ifname: &str, addr: IpNet) -> Result<(), NetlinkError> {
    let mut msg = message(index, addr);
    if addr.addr().is_ipv6() {
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match nl.execute(
        RouteNetlinkMessage::NewAddress(msg),
        NLM_F_CREATE | NLM_F_EXCL,
        || format!("add address {addr} to {ifname}"),
    ) {
        Err(e) if e.is(libc::EEXIST) => Ok(()),
        other => other,
    }
}

/// Addresses on one interface (both families).
pub fn list(nl: &mut Netlink, index: u32) -> Result<Vec<IpNet>, NetlinkError> {
    Ok(all(nl)?
        .into_iter()
        .filter(|(i, _)| *i == index)
        .map(|(_, a)| a)
        .collect())
}

/// Every address in the namespace with its interface index.
pub fn all(nl: &mut Netlink) -> Result<Vec<(u32, IpNet)>, NetlinkError> {
    let answers = nl.dump(
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        || "list addresses".into(),
    )?;
    let mut out = Vec::new();
    for m in answers {
        let RouteNetlinkMessage::NewAddress(m) = m else {
            continue;
        };
        for a in &m.attributes {
            if let AddressAttribute::Address(ip) = a {
                if let Ok(net) = IpNet::new(*ip, m.header.prefix_len) {
                    out.push((m.header.index, net));
                }
            }
        }
    }
    Ok(out)
}

/// Removes an address; one already gone is not an error.
pub fn delete(nl: &mut Netlink, index: u32, ifname: &str, addr: IpNet) -> Result<(), NetlinkError> {
    let msg = message(index, addr);
    match nl.execute(RouteNetlinkMessage::DelAddress(msg), 0, || {
        format!("delete address {addr} from {ifname}")
    }) {
        Err(e) if e.is(libc::EADDRNOTAVAIL) => Ok(()),
        other => other,
    }
}
