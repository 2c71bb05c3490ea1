//! Routes in the main table.

use crate::netlink::{Netlink, NetlinkError};
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

/// A route as we install and compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: u32,
}

fn route_addr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(v) => RouteAddress::Inet(v),
        IpAddr::V6(v) => RouteAddress::Inet6(v),
    }
}

fn message(r: &RouteSpec) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = if r.dst.addr().is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    msg.header.destination_prefix_length = r.dst.prefix_len();
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Boot;
    msg.header.kind = RouteType::Unicast;
    // A route without a gateway reaches its destination on the link itself.
    msg.header.scope = if r.gateway.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    if r.dst.prefix_len() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(route_addr(r.dst.network())));
    }
    if let Some(gw) = r.gateway {
        msg.attributes.push(RouteAttribute::Gateway(route_addr(gw)));
    }
    msg.attributes.push(RouteAttribute::Oif(r.oif));
    msg
}

fn describe(r: &RouteSpec) -> String {
    match r.gateway {
        Some(gw) => format!("{} via {gw}", r.dst),
        None => format!("{} on the link", r.dst),
    }
}

/// Adds a route; an identical one already present is fine.
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

/// Routes of the main table, both families.
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
            if m.header.table != RouteHeader::RT_TABLE_MAIN {
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
                out.push(RouteSpec { dst, gateway, oif });
            }
        }
    }
    Ok(out)
}
