//! strait-plan: pure compilers from what a node knows to what its kernel
//! should hold.
//!
//! [`compile`]`(&AgentConfig, &LocalNode, &Snapshot) -> Plan` is a pure
//! function: no kernel, no files, no clock; the same input gives the same
//! plan, byte for byte (everything is sorted). The agent applies a plan;
//! `strait trace` will evaluate one.
//!
//! Modules, one concern each:
//! - [`plan`]: the plan's types and [`LocalNode`].
//! - [`nodes`]: the snapshot's nodes, checked (CIDRs, overlaps, readiness).
//! - [`routing`]: host-gw and vxlan routes, neighbours, FDB, the MTU rule.
//! - [`egress`]: masquerade, forward accept, node routes.
//! - [`services`]: Services (the kube-proxy job) in the nft table.
//! - [`policy`]: NetworkPolicy in the nft table's forward hook.
//! - [`sysctl`]: forwarding and reverse-path filtering.
//! - [`nft`]: the nftables IR and its renderer.
//! - `text`: the stable text rendering of a plan (`Display for Plan`).
//!
//! IPv4 only for now: IPv6 pod CIDRs and `nonMasqueradeCIDRs` are left out
//! with a warning, and an IPv6 cluster CIDR is an error.

pub mod egress;
pub mod error;
pub mod nft;
pub mod nodes;
pub mod plan;
pub mod policy;
pub mod routing;
pub mod services;
pub mod sysctl;
mod text;

pub use error::PlanError;
pub use plan::{
    format_mac, BridgePlan, FdbPlan, LocalNode, Mac, NeighbourPlan, NodeFile, Plan, RoutePlan,
    VxlanPlan,
};

use ipnet::{IpNet, Ipv4Net};
use strait_model::{AgentConfig, Backend, Snapshot};

/// The protocol number of every route the agent installs (`ip route show
/// proto 90`); routes with another protocol are never touched.
pub const STRAIT_ROUTE_PROTO: u8 = 0x5a;
/// The default pod bridge name (the config's `bridge`).
pub const BRIDGE_DEFAULT: &str = strait_model::config::DEFAULT_BRIDGE;
/// The VXLAN device.
pub const VXLAN_DEV: &str = "strait.vxlan";
/// The nft table (family `inet`).
pub const NFT_TABLE: &str = "strait";
/// VXLAN encapsulation overhead over IPv4: outer IP 20 + UDP 8 + VXLAN 8 +
/// inner Ethernet 14.
pub const VXLAN_OVERHEAD: u32 = 50;
/// The pods' `gso_max_size` with VXLAN. A pod's TCP builds segments up to
/// its interface's limit (64 KiB by default); VXLAN adds 50 bytes, and an
/// encapsulated segment over the underlay device's own limit (64 KiB on
/// veths and most NICs) is segmented in software on the way out. 64,000
/// leaves room for the encapsulation and the TCP stack's header allowance
/// (65,486 was still too big): measured on the lab, pod-to-pod VXLAN
/// throughput went from ~72% to ~90% of a raw veth pair.
pub const VXLAN_POD_GSO_MAX_SIZE: u32 = 64_000;
/// The smallest pod MTU accepted (the IPv4 minimum).
pub const MIN_POD_MTU: u32 = 68;
/// The largest MTU accepted.
pub const MAX_MTU: u32 = 65535;

/// The pod MTU: the underlay MTU for host-gw, 50 less for vxlan.
pub fn pod_mtu(backend: Backend, underlay_mtu: u32) -> Result<u32, PlanError> {
    let mtu = match backend {
        Backend::HostGw => underlay_mtu,
        Backend::Vxlan => underlay_mtu.saturating_sub(VXLAN_OVERHEAD),
    };
    if mtu < MIN_POD_MTU || underlay_mtu > MAX_MTU {
        return Err(PlanError::LocalNode {
            field: "MTU".to_string(),
            message: format!(
                "an underlay MTU of {underlay_mtu} gives pods {mtu} with {backend} (pods need {MIN_POD_MTU}-{MAX_MTU})"
            ),
        });
    }
    Ok(mtu)
}

fn check_inputs(cfg: &AgentConfig, local: &LocalNode) -> Result<Ipv4Net, PlanError> {
    cfg.validate()
        .map_err(|e| PlanError::Config(e.to_string()))?;
    let IpNet::V4(cluster) = cfg.cluster_cidr else {
        return Err(PlanError::Ipv6ClusterCidr(cfg.cluster_cidr.to_string()));
    };
    if !strait_model::config::valid_interface_name(&local.underlay_dev) {
        return Err(PlanError::LocalNode {
            field: "underlay device".to_string(),
            message: format!("{:?} is not an interface name", local.underlay_dev),
        });
    }
    for (name, what) in [
        (VXLAN_DEV, "the VXLAN device's name"),
        (local.underlay_dev.as_str(), "the underlay interface"),
    ] {
        if cfg.bridge == name {
            return Err(PlanError::Config(format!("bridge: {name} is {what}")));
        }
    }
    routing::underlay_subnet(local)?;
    Ok(cluster)
}

/// Compiles the plan for `local` from the config and the cluster snapshot.
pub fn compile(cfg: &AgentConfig, local: &LocalNode, snap: &Snapshot) -> Result<Plan, PlanError> {
    compile_cached(cfg, local, snap, &mut CompileCache::default())
}

/// What one compile keeps for the next: the per-Service pieces
/// ([`services::ServiceCache`]). The agent owns one for its life; the Plan
/// is the same with or without it.
#[derive(Default)]
pub struct CompileCache {
    pub services: services::ServiceCache,
}

/// [`compile`], reusing what `cache` kept of the last compile where its
/// inputs are the same objects (and keeping this compile's for the next).
pub fn compile_cached(
    cfg: &AgentConfig,
    local: &LocalNode,
    snap: &Snapshot,
    cache: &mut CompileCache,
) -> Result<Plan, PlanError> {
    let cluster = check_inputs(cfg, local)?;
    let mut warnings = Vec::new();
    let nodes = nodes::collect(cluster, local, snap, &mut warnings)?;
    let mtu = pod_mtu(cfg.backend, cfg.mtu.unwrap_or(local.underlay_mtu))?;

    let routing = match cfg.backend {
        Backend::HostGw => routing::host_gw(local, &nodes.peers)?,
        Backend::Vxlan => routing::vxlan(&cfg.vxlan, local, nodes.local[0].cidr, &nodes.peers, mtu),
    };
    let mut routes = routing.routes;
    routes.extend(egress::node_routes(cfg));
    let service_cidr = match cfg.service_cidr {
        IpNet::V4(v4) => Some(v4),
        IpNet::V6(_) => None,
    };
    routes.push(services::service_cidr_route(cfg));
    let mut neighbours = routing.neighbours;
    neighbours.sort();
    neighbours.dedup();
    let mut fdb = routing.fdb;
    fdb.sort();
    fdb.dedup();

    let mut table = nft::Table::new(nft::Family::Inet, NFT_TABLE);
    egress::add_to_table(cfg, cluster, &mut table, &mut warnings);
    let local_pods: Vec<ipnet::Ipv4Net> = nodes.local.iter().map(|c| c.cidr).collect();
    let outside_cidr = services::add_to_table(
        service_cidr,
        &local.name,
        &local_pods,
        snap,
        &mut table,
        &mut warnings,
        &mut cache.services,
    );
    policy::add_to_table(&local.name, snap, &mut table, &mut warnings);
    table.validate()?;
    routes.extend(services::outside_cluster_ip_routes(cfg, &outside_cidr));
    routes.sort();
    routes.dedup();

    let local_cidrs: Vec<IpNet> = nodes.local.iter().map(|c| IpNet::V4(c.cidr)).collect();
    let gateways = nodes
        .local
        .iter()
        .map(|c| {
            // At most /30 (checked), so network + 1 is a host address.
            let gw = std::net::Ipv4Addr::from(u32::from(c.cidr.network()) + 1);
            IpNet::V4(Ipv4Net::new(gw, c.cidr.prefix_len()).expect("prefix of a valid net"))
        })
        .collect();
    Ok(Plan {
        node_file: NodeFile {
            pod_cidrs: local_cidrs,
            mtu,
            gso_max_size: (cfg.backend == Backend::Vxlan).then_some(VXLAN_POD_GSO_MAX_SIZE),
        },
        sysctls: sysctl::sysctls(&cfg.bridge, routing.vxlan.as_ref().map(|v| v.name.as_str())),
        bridge: BridgePlan {
            name: cfg.bridge.clone(),
            mtu,
            addresses: gateways,
        },
        vxlan: routing.vxlan,
        routes,
        neighbours,
        fdb,
        nft: std::sync::Arc::new(table),
        warnings,
    })
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
