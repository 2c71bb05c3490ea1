//! Route lookups: a node's table is its Plan's routes, the connected routes
//! of its addresses (underlay subnet, bridge subnets) and the routes it
//! holds besides (`host_routes`); longest prefix wins. Routers and hosts
//! have connected routes and their static ones.

use crate::world::{BoxView, NodeView};
use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr};

/// Where a route lookup sends the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub dev: String,
    pub gateway: Option<Ipv4Addr>,
    /// The matched route as `ip route` prints it, and where it came from.
    pub text: String,
}

fn v4(net: &IpNet) -> Option<Ipv4Net> {
    match net {
        IpNet::V4(n) => Some(*n),
        IpNet::V6(_) => None,
    }
}

/// The node's connected routes: (subnet, device).
fn connected(node: &NodeView) -> Vec<(Ipv4Net, String)> {
    let mut out = Vec::new();
    if let Ok(n) = Ipv4Net::new(node.local.underlay_ip, node.local.underlay_prefix) {
        out.push((n.trunc(), node.local.underlay_dev.clone()));
    }
    for a in &node.plan.bridge.addresses {
        if let Some(n) = v4(a) {
            out.push((n.trunc(), node.plan.bridge.name.clone()));
        }
    }
    out
}

/// Whether `ip` is one of the node's own addresses.
pub fn is_local(node: &NodeView, ip: Ipv4Addr) -> bool {
    ip == node.local.underlay_ip
        || ip.is_loopback()
        || node
            .plan
            .bridge
            .addresses
            .iter()
            .any(|a| a.addr() == IpAddr::V4(ip))
        || node
            .plan
            .vxlan
            .as_ref()
            .is_some_and(|v| v.address.addr() == IpAddr::V4(ip))
}

/// The address a packet leaving by `dev` gets as source (masquerade and
/// locally generated packets): the device's first address.
pub fn dev_address(node: &NodeView, dev: &str) -> Ipv4Addr {
    let first = |a: &IpNet| match a.addr() {
        IpAddr::V4(v) => Some(v),
        IpAddr::V6(_) => None,
    };
    if dev == node.plan.bridge.name {
        if let Some(a) = node.plan.bridge.addresses.iter().find_map(first) {
            return a;
        }
    }
    if let Some(v) = node.plan.vxlan.as_ref().filter(|v| v.name == dev) {
        if let Some(a) = first(&v.address) {
            return a;
        }
    }
    node.local.underlay_ip
}

/// The route the node takes to `dst`, or why there is none.
pub fn lookup(node: &NodeView, dst: Ipv4Addr) -> Result<Hop, String> {
    let conn = connected(node);
    // (prefix length, order, hop)
    let mut best: Option<(u8, Hop)> = None;
    let mut consider = |net: Ipv4Net, hop: Hop| {
        if net.contains(&dst) && best.as_ref().is_none_or(|(len, _)| net.prefix_len() > *len) {
            best = Some((net.prefix_len(), hop));
        }
    };
    let plan_routes = node.plan.routes.iter().map(|r| (r, "strait"));
    let host_routes = node.host_routes.iter().map(|r| (r, "node"));
    let mut unresolved = None;
    for (r, origin) in plan_routes.chain(host_routes) {
        let Some(net) = v4(&r.dst) else { continue };
        let gateway = match r.gateway {
            Some(IpAddr::V4(g)) => Some(g),
            Some(IpAddr::V6(_)) => continue,
            None => None,
        };
        let dev = match (&r.dev, gateway) {
            (Some(d), _) => d.clone(),
            (None, Some(g)) => match conn.iter().find(|(n, _)| n.contains(&g)) {
                Some((_, d)) => d.clone(),
                None => {
                    if net.contains(&dst) {
                        unresolved = Some(format!(
                            "route {r} ({origin}): gateway {g} is on no connected network"
                        ));
                    }
                    continue;
                }
            },
            (None, None) => continue,
        };
        let text = format!("{r} ({origin} route)");
        consider(net, Hop { dev, gateway, text });
    }
    for (net, dev) in &conn {
        consider(
            *net,
            Hop {
                dev: dev.clone(),
                gateway: None,
                text: format!("{net} dev {dev} (connected)"),
            },
        );
    }
    match best {
        Some((_, hop)) => Ok(hop),
        None => Err(unresolved.unwrap_or_else(|| {
            "nothing in the table covers it (no matching route, no default route); add one, e.g. in the agent config's nodeRoutes".to_string()
        })),
    }
}

/// A router's or host's next hop to `dst` (the address itself when it is
/// on a connected network), and the route as text.
pub fn box_lookup(b: &BoxView, dst: Ipv4Addr) -> Option<(Ipv4Addr, String)> {
    let mut best: Option<(u8, Ipv4Addr, String)> = None;
    for a in &b.addresses {
        let net = a.trunc();
        if net.contains(&dst) && best.as_ref().is_none_or(|(l, _, _)| net.prefix_len() > *l) {
            best = Some((net.prefix_len(), dst, format!("{net} (connected)")));
        }
    }
    for (net, via) in &b.routes {
        if net.contains(&dst) && best.as_ref().is_none_or(|(l, _, _)| net.prefix_len() > *l) {
            best = Some((net.prefix_len(), *via, format!("{net} via {via}")));
        }
    }
    best.map(|(_, next, text)| (next, text))
}
