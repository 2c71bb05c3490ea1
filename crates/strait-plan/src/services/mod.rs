//! Services: the kube-proxy job, compiled into the `inet strait` table
//! (after kube-proxy's nftables mode).
//!
//! - Dispatch is O(1) in the number of services: chain `services` sets the
//!   masquerade mark from sets of (address . proto . port) / (proto . port)
//!   (`masq-*`: externalTrafficPolicy Cluster; `node-masq-*`: this node to
//!   eTP Local), sends pods and this node to `service-dispatch`, checks
//!   `external-local-ips` / `external-local-nodeports` (eTP Local from
//!   outside: this node's endpoints, or drop) and then goes to
//!   `service-dispatch`, which looks up `ip daddr . meta l4proto . th dport`
//!   in map `service-ips` (ClusterIPs, externalIPs, load-balancer ingress
//!   IPs) and, for local destinations, `meta l4proto . th dport` in
//!   `service-nodeports`. Base chains `nat-prerouting` (forwarded traffic)
//!   and `nat-output` (node processes, hostNetwork pods) jump to it.
//! - Load balancing is grouped by endpoint count N, not per service (each
//!   kernel set object costs about a millisecond to create, and a big map
//!   referenced by many rules is re-validated per rule): one map
//!   `eps-n<N>` (`key . numgen random mod N : endpoint . port`) and one
//!   chain `lb-n<N>` (`dnat ip to key . numgen random mod N map
//!   @eps-n<N>`) per distinct N, per view (`-local`: this node's endpoints)
//!   and per key (`np-`: NodePorts, keyed by proto . port). So the number of
//!   sets, maps, chains and rules does not grow with services; each big map
//!   is referenced by one rule.
//! - Hairpin: set `hairpin` (`endpoint . endpoint`) and a postrouting rule
//!   `ip saddr . ip daddr @hairpin masquerade` (after DNAT).
//! - Service addresses with no endpoints are rejected at once (maps
//!   `no-endpoint-services` / `no-endpoint-nodeports`, chain
//!   `endpoints-check` from filter base chains after DNAT: prerouting at
//!   priority -90, output at -10; chain `reject-chain`), and so is what is
//!   still addressed into the service CIDR after DNAT (no Service has that
//!   address or port). Traffic from outside the cluster to the service CIDR
//!   is marked for masquerade, so the endpoint answers through this node.
//! - Marked traffic (bit [`MASQUERADE_MARK`]) is masqueraded by the first
//!   rule of the egress postrouting chain; INVALID forwarded packets are
//!   dropped (they would leave un-NATed).
//!
//! Owns those maps and chains; nothing is emitted when the snapshot has no
//! Service with a ClusterIP, so a cluster without Services keeps the egress
//! table as it was. IPv4 only. sessionAffinity ClientIP keeps per-service
//! chains: one dynamic set per (service chain, endpoint) with the affinity
//! timeout; a known client goes straight to its endpoint chain (`sep-...`,
//! a DNAT), a new one is remembered on the way.

use crate::egress::{CLUSTER_SET, POSTROUTING_CHAIN};
use crate::nft::KeyVec;
use crate::nft::{
    Addrs, BaseChain, Chain, ChainType, ConcatSet, CtState, FibAddr, Hook, IpFamily, Key, KeyExpr,
    KeyType, L4Proto, Map, MapData, MapValue, Match, Policy, RejectWith, Rule, Set, SetKind,
    Statement, Table, Verdict,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use strait_model::k8s::api::core::v1::Service;
use strait_model::{Slice, Snapshot};

/// The mark bit that asks postrouting to masquerade.
pub const MASQUERADE_MARK: u32 = 0x4000;
pub const SERVICE_IPS_MAP: &str = "service-ips";
pub const SERVICE_NODEPORTS_MAP: &str = "service-nodeports";
pub const EXTERNAL_LOCAL_IPS_MAP: &str = "external-local-ips";
pub const EXTERNAL_LOCAL_NODEPORTS_MAP: &str = "external-local-nodeports";
pub const HAIRPIN_SET: &str = "hairpin";
/// The service CIDR and every ClusterIP outside it (a cluster with more
/// than one ServiceCIDR): where off-cluster traffic is masqueraded and what
/// is left after DNAT is rejected.
pub const SERVICE_ADDRESSES_SET: &str = "service-addresses";
pub const MASQ_IPS_SET: &str = "masq-ips";
pub const MASQ_NODEPORTS_SET: &str = "masq-nodeports";
pub const NODE_MASQ_IPS_SET: &str = "node-masq-ips";
pub const NODE_MASQ_NODEPORTS_SET: &str = "node-masq-nodeports";
pub const SERVICE_DISPATCH_CHAIN: &str = "service-dispatch";
pub const NO_ENDPOINT_SERVICES_MAP: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS_MAP: &str = "no-endpoint-nodeports";
pub const SERVICES_CHAIN: &str = "services";
pub const ENDPOINTS_CHECK_CHAIN: &str = "endpoints-check";
pub const REJECT_CHAIN: &str = "reject-chain";
/// nft's `dstnat` priority.
pub const PRIORITY_DSTNAT: i32 = -100;
/// Before the egress `forward` chain (priority 0).
pub const PRIORITY_SERVICE_FILTER: i32 = -10;
/// Just after DNAT in prerouting (the no-endpoint and service CIDR checks).
pub const PRIORITY_POST_DNAT: i32 = PRIORITY_DSTNAT + 10;
/// Longest per-service chain name before it is shortened with a hash.
pub const MAX_CHAIN_NAME: usize = 64;
/// The EndpointSlice label naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

mod built;
mod cache;
mod emit;
mod endpoints;
mod group;
mod names;
mod parts;
mod piece;
mod service;

use built::{Built, Sizes};
use cache::NodeView;
pub use cache::{CacheUse, ServiceCache};
use emit::emit;
use endpoints::{endpoints_for, port_u16, proto_of};
pub use endpoints::{select_endpoints, Endpoint};
use group::Group;
pub(crate) use names::fnv1a;
use names::ChainOwners;
pub use names::{endpoint_chain_name, service_chain_name};
use parts::*;
use piece::{Op, Piece, SvcKey, Target};
use service::add_service;

fn v4(s: &str) -> Option<Ipv4Addr> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Some(a),
        _ => None,
    }
}

/// Adds the service maps and chains to `table` (which already holds the
/// egress chains). Nothing when no Service has a ClusterIP. `service_cidr`
/// (the config's, when IPv4) and the ClusterIPs outside it (Kubernetes
/// 1.33+ can allocate from several ServiceCIDRs; the agent is configured
/// with one): traffic from outside the cluster to them is masqueraded, and
/// new connections to an address in them that no Service port took (after
/// DNAT) are rejected. Returns the IPv4 ClusterIPs outside `service_cidr`
/// (for [`outside_cluster_ip_routes`]). `cache` holds each Service's piece
/// for the next call (see [`ServiceCache`]).
#[allow(clippy::too_many_arguments)]
pub fn add_to_table(
    service_cidr: Option<ipnet::Ipv4Net>,
    local_node: &str,
    local_pods: &[ipnet::Ipv4Net],
    snap: &Snapshot,
    table: &mut Table,
    warnings: &mut Vec<String>,
    cache: &mut ServiceCache,
) -> BTreeSet<Ipv4Addr> {
    // The snapshot keeps Services sorted by (namespace, name), which is
    // unique; a hand-built one may not be.
    fn key(s: &Service) -> (&str, &str) {
        strait_model::namespace_and_name(&s.metadata)
    }
    let mut services: Vec<&Arc<Service>> = snap.services.iter().collect();
    if !services.is_sorted_by(|a, b| key(a) <= key(b)) {
        services.sort_by(|a, b| key(a).cmp(&key(b)));
    }
    let node = NodeView {
        name: local_node.to_string(),
        local_pods: local_pods.to_vec(),
        service_cidr,
    };
    let mut built = Built {
        local_pods: local_pods.to_vec(),
        service_cidr,
        ..Built::with_room(cache.sizes.clone())
    };
    let mut owners = ChainOwners::default();
    let mut any = false;
    cache.pieces(
        &node,
        snap,
        &services,
        |svc, svc_slices| {
            let (ns, name) = strait_model::namespace_and_name(&svc.metadata);
            add_service(&node, ns, name, svc, svc_slices, &mut owners)
        },
        |piece| any |= built.add_piece(piece, warnings),
    );
    cache.sizes = built.sizes();
    if !any {
        return BTreeSet::new();
    }
    let outside = built.outside_cidr.clone();
    emit(built, table);
    outside
}

#[cfg(test)]
mod tests;

/// Routes onto the pod bridge for ClusterIPs outside the service CIDR
/// (from [`add_to_table`]), for the reason [`service_cidr_route`] gives.
pub fn outside_cluster_ip_routes(
    cfg: &strait_model::AgentConfig,
    outside: &BTreeSet<Ipv4Addr>,
) -> Vec<crate::RoutePlan> {
    outside
        .iter()
        .map(|&ip| crate::RoutePlan {
            dst: ipnet::IpNet::V4(ipnet::Ipv4Net::from(ip)),
            gateway: None,
            dev: Some(cfg.bridge.clone()),
            onlink: false,
        })
        .collect()
}

/// A route for the whole service CIDR onto the pod bridge. Locally
/// generated packets are routed before the OUTPUT hook DNATs them, so a node
/// without a default route (or whose default route points elsewhere) would
/// fail `connect()` to a ClusterIP with "network unreachable" before the
/// Service rules ever see the packet; with this route the packet reaches
/// the OUTPUT hook and is re-routed to the endpoint after DNAT.
pub fn service_cidr_route(cfg: &strait_model::AgentConfig) -> crate::RoutePlan {
    crate::RoutePlan {
        dst: cfg.service_cidr,
        gateway: None,
        dev: Some(cfg.bridge.clone()),
        onlink: false,
    }
}
