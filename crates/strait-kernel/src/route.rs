//! Routes in the main table.
//!
//! Every route carries a protocol number: the CNI plugin uses `boot` (what
//! `ip route add` uses), the agent its own number, so it can list, compare
//! and delete exactly the routes it owns and never anyone else's.

use crate::netlink::{Netlink, NetlinkError};
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

/// `RTPROT_BOOT`, what routes made by hand and by strait-cni carry.
pub const PROTO_BOOT: u8 = 3;

/// A route as we install and compare it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteSpec {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    /// Output interface index; 0 lets the kernel pick from the gateway.
    pub oif: u32,
    pub protocol: u8,
    /// The gateway is on the link even though no address says so (VXLAN).
    pub onlink: bool,
}

impl RouteSpec {
    /// A `boot` route without onlink: what strait-cni installs.
    pub fn new(dst: IpNet, gateway: Option<IpAddr>, oif: u32) -> Self {
        RouteSpec {
            dst,
            gateway,
            oif,
            protocol: PROTO_BOOT,
            onlink: false,
        }
    }
}

fn route_addr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(v) => RouteAddress::Inet(v),
        IpAddr::V6(v) => RouteAddress::Inet6(v),
    }
}

fn family(dst: &IpNet) -> AddressFamily {
    if dst.addr().is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn message(r: &RouteSpec) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family(&r.dst);
    msg.header.destination_prefix_length = r.dst.prefix_len();
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::from(r.protocol);
    msg.header.kind = RouteType::Unicast;
    // A route without a gateway reaches its destination on the link itself.
    msg.header.scope = if r.gateway.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    if r.onlink {
        msg.header.flags = RouteFlags::Onlink;
    }
    if r.dst.prefix_len() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(route_addr(r.dst.network())));
    }
    if let Some(gw) = r.gateway {
        msg.attributes.push(RouteAttribute::Gateway(route_addr(gw)));
    }
    if r.oif != 0 {
        msg.attributes.push(RouteAttribute::Oif(r.oif));
    }
    msg
}

pub fn describe(r: &RouteSpec) -> String {
    let mut s = r.dst.to_string();
    if let Some(gw) = r.gateway {
        s.push_str(&format!(" via {gw}"));
    }
    if r.oif != 0 {
        s.push_str(&format!(" oif {}", r.oif));
    }
    if r.onlink {
        s.push_str(" onlink");
    }
    s
}

/// Adds a route; one already present for the destination is left alone.
pub fn add(nl: &mut Netlink, r: &RouteSpec) -> Result<(), NetlinkError> {
    match nl.execute(
        RouteNetlinkMessage::NewRoute(message(r)),
        NLM_F_CREATE | NLM_F_EXCL,
        || format!("add route {}", describe(r)),
    ) {
        Err(e) if e.is(libc::EEXIST) => Ok(()),
        other => other,
    }
}

/// Adds a route or replaces the one for the same destination.
pub fn replace(nl: &mut Netlink, r: &RouteSpec) -> Result<(), NetlinkError> {
    nl.execute(
        RouteNetlinkMessage::NewRoute(message(r)),
        NLM_F_CREATE | NLM_F_REPLACE,
        || format!("replace route {}", describe(r)),
    )
}

/// Deletes a route; one already gone is not an error.
pub fn delete(nl: &mut Netlink, r: &RouteSpec) -> Result<(), NetlinkError> {
    match nl.execute(RouteNetlinkMessage::DelRoute(message(r)), 0, || {
        format!("delete route {}", describe(r))
    }) {
        Err(e) if e.is(libc::ESRCH) => Ok(()),
        other => other,
    }
}

/// Unicast routes of the main table, both families.
pub fn list(nl: &mut Netlink) -> Result<Vec<RouteSpec>, NetlinkError> {
    let mut out = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut req = RouteMessage::default();
        req.header.address_family = family;
        let answers = nl.dump(RouteNetlinkMessage::GetRoute(req), || "list routes".into())?;
        for m in answers {
            let RouteNetlinkMessage::NewRoute(m) = m else {
                continue;
            };
            if m.header.table != RouteHeader::RT_TABLE_MAIN || m.header.kind != RouteType::Unicast {
                continue;
            }
            let mut dst = None;
            let mut gateway = None;
            let mut oif = 0;
            for a in &m.attributes {
                match a {
                    RouteAttribute::Destination(RouteAddress::Inet(v)) => {
                        dst = Some(IpAddr::V4(*v))
                    }
                    RouteAttribute::Destination(RouteAddress::Inet6(v)) => {
                        dst = Some(IpAddr::V6(*v))
                    }
                    RouteAttribute::Gateway(RouteAddress::Inet(v)) => {
                        gateway = Some(IpAddr::V4(*v))
                    }
                    RouteAttribute::Gateway(RouteAddress::Inet6(v)) => {
                        gateway = Some(IpAddr::V6(*v))
                    }
                    RouteAttribute::Oif(i) => oif = *i,
                    _ => {}
                }
            }
            let dst = dst.unwrap_or(if family == AddressFamily::Inet {
                IpAddr::from([0u8; 4])
            } else {
                IpAddr::from([0u16; 8])
            });
            if let Ok(dst) = IpNet::new(dst, m.header.destination_prefix_length) {
                out.push(RouteSpec {
                    dst,
                    gateway,
                    oif,
                    protocol: u8::from(m.header.protocol),
                    onlink: m.header.flags.contains(RouteFlags::Onlink),
                });
            }
        }
    }
    Ok(out)
}
