//! Cross-node routing: how pod traffic reaches a peer's pod CIDR.
//!
//! - host-gw: per peer pod CIDR, a route via the peer's underlay address on
//!   the underlay device. Every peer must be on this node's underlay subnet.
//! - vxlan (flannel's design, no multicast, nothing published): one device,
//!   `strait.vxlan`, holding this node's pod CIDR network address as a /32;
//!   per peer pod CIDR an onlink route via the CIDR's network address and a
//!   permanent neighbour entry mapping that address to the peer's VTEP MAC;
//!   per peer one FDB entry sending that MAC to the peer's underlay address.
//!   A VTEP MAC is `0a:58:` + the 4 bytes of the underlay IPv4 address, so
//!   every node computes every peer's MAC.
//!
//! Owns only these decisions; which peers exist is [`crate::nodes`]'s job.

use crate::error::PlanError;
use crate::nodes::Peer;
use crate::plan::{FdbPlan, LocalNode, Mac, NeighbourPlan, RoutePlan, VxlanPlan};
use crate::VXLAN_DEV;
use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr};
use strait_model::VxlanConfig;

/// The first two bytes of every VTEP MAC (locally administered, unicast).
pub const VTEP_MAC_PREFIX: [u8; 2] = [0x0a, 0x58];

/// The VTEP MAC of the node with this underlay address.
pub fn vtep_mac(ip: Ipv4Addr) -> Mac {
    let [a, b, c, d] = ip.octets();
    [VTEP_MAC_PREFIX[0], VTEP_MAC_PREFIX[1], a, b, c, d]
}

/// The routing part of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Routing {
    pub vxlan: Option<VxlanPlan>,
    pub routes: Vec<RoutePlan>,
    pub neighbours: Vec<NeighbourPlan>,
    pub fdb: Vec<FdbPlan>,
}

/// The local underlay subnet, e.g. 10.0.0.0/24.
pub fn underlay_subnet(local: &LocalNode) -> Result<Ipv4Net, PlanError> {
    Ipv4Net::new(local.underlay_ip, local.underlay_prefix)
        .map(|n| n.trunc())
        .map_err(|_| PlanError::LocalNode {
            field: "underlay prefix".to_string(),
            message: format!("/{} is not an IPv4 prefix length", local.underlay_prefix),
        })
}

/// host-gw: `peerPodCIDR via peerUnderlayIP dev <underlay>` per peer.
pub fn host_gw(local: &LocalNode, peers: &[Peer]) -> Result<Routing, PlanError> {
    let subnet = underlay_subnet(local)?;
    let mut routes = Vec::new();
    for peer in peers {
        if !subnet.contains(&peer.underlay_ip) {
            return Err(PlanError::PeerNotOnLink {
                node: peer.name.clone(),
                ip: peer.underlay_ip,
                subnet: subnet.to_string(),
            });
        }
        for cidr in &peer.pod_cidrs {
            routes.push(RoutePlan {
                dst: IpNet::V4(*cidr),
                gateway: Some(IpAddr::V4(peer.underlay_ip)),
                dev: Some(local.underlay_dev.clone()),
                onlink: false,
            });
        }
    }
    Ok(Routing {
        vxlan: None,
        routes,
        neighbours: Vec::new(),
        fdb: Vec::new(),
    })
}

/// vxlan: the device, and per peer its routes, neighbours and FDB entry.
/// `local_cidr` is this node's (first IPv4) pod CIDR; `mtu` the device MTU.
pub fn vxlan(
    cfg: &VxlanConfig,
    local: &LocalNode,
    local_cidr: Ipv4Net,
    peers: &[Peer],
    mtu: u32,
) -> Routing {
    let dev = VXLAN_DEV.to_string();
    let device = VxlanPlan {
        name: dev.clone(),
        vni: cfg.vni,
        port: cfg.port,
        local: local.underlay_ip,
        underlay_dev: local.underlay_dev.clone(),
        mtu,
        mac: vtep_mac(local.underlay_ip),
        address: IpNet::V4(Ipv4Net::from(local_cidr.network())),
    };
    let mut routing = Routing {
        vxlan: Some(device),
        ..Routing::default()
    };
    for peer in peers {
        let mac = vtep_mac(peer.underlay_ip);
        for cidr in &peer.pod_cidrs {
            let gateway = IpAddr::V4(cidr.network());
            routing.routes.push(RoutePlan {
                dst: IpNet::V4(*cidr),
                gateway: Some(gateway),
                dev: Some(dev.clone()),
                onlink: true,
            });
            routing.neighbours.push(NeighbourPlan {
                ip: gateway,
                mac,
                dev: dev.clone(),
            });
        }
        routing.fdb.push(FdbPlan {
            mac,
            dst: IpAddr::V4(peer.underlay_ip),
            dev: dev.clone(),
        });
    }
    routing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::local;

    fn peer(name: &str, ip: [u8; 4], cidrs: &[&str]) -> Peer {
        Peer {
            name: name.into(),
            underlay_ip: Ipv4Addr::from(ip),
            pod_cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn vtep_mac_is_prefix_plus_address() {
        assert_eq!(
            vtep_mac(Ipv4Addr::new(192, 168, 1, 254)),
            [0x0a, 0x58, 192, 168, 1, 254]
        );
    }

    #[test]
    fn host_gw_routes_via_peer() {
        let r = host_gw(&local(), &[peer("b", [10, 0, 0, 2], &["10.42.2.0/24"])]).unwrap();
        let lines: Vec<String> = r.routes.iter().map(ToString::to_string).collect();
        assert_eq!(lines, ["10.42.2.0/24 via 10.0.0.2 dev eth0"]);
        assert!(r.vxlan.is_none() && r.neighbours.is_empty() && r.fdb.is_empty());
    }

    #[test]
    fn host_gw_rejects_off_subnet_peer() {
        let err = host_gw(&local(), &[peer("c", [10, 0, 1, 3], &["10.42.3.0/24"])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "node \"c\": InternalIP 10.0.1.3 is not on this node's underlay subnet 10.0.0.0/24; host-gw needs every node on one L2 segment (use backend: vxlan)"
        );
    }

    #[test]
    fn bad_underlay_prefix_is_an_error_not_a_panic() {
        let mut l = local();
        l.underlay_prefix = 33;
        assert_eq!(
            host_gw(&l, &[]).unwrap_err().to_string(),
            "this node's underlay prefix: /33 is not an IPv4 prefix length"
        );
    }

    #[test]
    fn vxlan_per_peer_route_neighbour_fdb() {
        let peers = [
            peer("b", [10, 0, 0, 2], &["10.42.2.0/24"]),
            peer("c", [10, 9, 0, 3], &["10.42.3.0/24", "10.42.30.0/24"]),
        ];
        let r = vxlan(
            &VxlanConfig::default(),
            &local(),
            "10.42.1.0/24".parse().unwrap(),
            &peers,
            1450,
        );
        assert_eq!(
            r.vxlan.as_ref().unwrap().to_string(),
            "strait.vxlan id 1 dstport 8472 local 10.0.0.1 dev eth0 nolearning mtu 1450 address 0a:58:0a:00:00:01"
        );
        assert_eq!(
            r.vxlan.as_ref().unwrap().address.to_string(),
            "10.42.1.0/32"
        );
        let text = |v: &[String]| v.join("\n");
        assert_eq!(
            text(&r.routes.iter().map(ToString::to_string).collect::<Vec<_>>()),
            "10.42.2.0/24 via 10.42.2.0 dev strait.vxlan onlink\n\
             10.42.3.0/24 via 10.42.3.0 dev strait.vxlan onlink\n\
             10.42.30.0/24 via 10.42.30.0 dev strait.vxlan onlink"
        );
        assert_eq!(
            text(
                &r.neighbours
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
            "10.42.2.0 lladdr 0a:58:0a:00:00:02 dev strait.vxlan nud permanent\n\
             10.42.3.0 lladdr 0a:58:0a:09:00:03 dev strait.vxlan nud permanent\n\
             10.42.30.0 lladdr 0a:58:0a:09:00:03 dev strait.vxlan nud permanent"
        );
        assert_eq!(
            text(&r.fdb.iter().map(ToString::to_string).collect::<Vec<_>>()),
            "0a:58:0a:00:00:02 dst 10.0.0.2 dev strait.vxlan self permanent\n\
             0a:58:0a:09:00:03 dst 10.9.0.3 dev strait.vxlan self permanent"
        );
    }
}
