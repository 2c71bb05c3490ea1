//! Endpoints of a Service port, read from its EndpointSlices, and the
//! ones traffic may go to (kube-proxy's selection rule).

use super::*;

/// One endpoint of a service port, as read from an EndpointSlice (its node
/// name borrowed from the slice: 100,000 endpoints are read per compile).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint<'a> {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub node: Option<&'a str>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

/// The endpoints traffic may go to (kube-proxy's rule): restricted to
/// `local_node` when given; the ready ones, or, when none is ready, the
/// serving and terminating ones. Sorted, without duplicate (ip, port).
pub fn select_endpoints(all: &[Endpoint<'_>], local_node: Option<&str>) -> Vec<(Ipv4Addr, u16)> {
    let eligible = |e: &&Endpoint| local_node.is_none_or(|n| e.node == Some(n));
    let mut out: Vec<(Ipv4Addr, u16)> = all
        .iter()
        .filter(eligible)
        .filter(|e| e.ready)
        .map(|e| (e.ip, e.port))
        .collect();
    if out.is_empty() {
        out = all
            .iter()
            .filter(eligible)
            .filter(|e| e.serving && e.terminating)
            .map(|e| (e.ip, e.port))
            .collect();
    }
    out.sort();
    out.dedup();
    out
}

pub(super) fn proto_of(p: Option<&str>) -> Option<L4Proto> {
    match p.unwrap_or("TCP") {
        "TCP" => Some(L4Proto::Tcp),
        "UDP" => Some(L4Proto::Udp),
        "SCTP" => Some(L4Proto::Sctp),
        _ => None,
    }
}

pub(super) fn port_u16(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p != 0)
}

/// Endpoints of the Service port named `port_name` with `proto`, from the
/// service's slices (each slice says the resolved port per port name).
pub(super) fn endpoints_for<'a>(
    slices: &[&'a Arc<Slice>],
    port_name: &str,
    proto: L4Proto,
) -> Vec<Endpoint<'a>> {
    let mut out = Vec::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(port) = slice.ports.iter().find_map(|p| {
            let same_name = p.name.as_deref().unwrap_or("") == port_name;
            let same_proto = proto_of(p.protocol.as_deref()) == Some(proto);
            if same_name && same_proto {
                p.port.and_then(port_u16)
            } else {
                None
            }
        }) else {
            continue;
        };
        for e in &slice.endpoints {
            let c = e.conditions;
            let ready = c.ready != Some(false);
            // kube-proxy's reading: nil ready and nil serving mean true.
            let serving = c.serving != Some(false);
            let terminating = c.terminating.unwrap_or(false);
            for a in &e.addresses {
                if let IpAddr::V4(ip) = *a {
                    out.push(Endpoint {
                        ip,
                        port,
                        node: e.node_name.as_deref(),
                        ready,
                        serving,
                        terminating,
                    });
                }
            }
        }
    }
    out
}
