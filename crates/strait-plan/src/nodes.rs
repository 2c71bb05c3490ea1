//! The cluster's nodes as the routing compilers need them: this node's pod
//! CIDRs and, per ready peer, its pod CIDRs and underlay address. Owns the
//! checks across nodes (duplicates, CIDRs outside the cluster CIDR or with
//! host bits, overlaps) and the warnings for peers that are not ready yet.
//!
//! IPv4 only for now: IPv6 pod CIDRs are left out with a warning.

use crate::error::{PlanError, PodCidrRef};
use crate::plan::LocalNode;
use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr};
use strait_model::k8s::api::core::v1::Node;
use strait_model::{node_internal_ip, node_name, node_pod_cidr_fields, Snapshot};

/// A pod CIDR and the Node field it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCidr {
    pub field: String,
    pub cidr: Ipv4Net,
}

/// A node this one routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub underlay_ip: Ipv4Addr,
    pub pod_cidrs: Vec<Ipv4Net>,
}

/// The validated view of the snapshot's nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nodes {
    /// This node's IPv4 pod CIDRs, in the Node's order (at least one).
    pub local: Vec<PodCidr>,
    /// Peers with pod CIDRs and an IPv4 InternalIP, sorted by name.
    pub peers: Vec<Peer>,
}

/// Reads and checks every node of `snap` against `cluster`.
pub fn collect(
    cluster: Ipv4Net,
    local: &LocalNode,
    snap: &Snapshot,
    warnings: &mut Vec<String>,
) -> Result<Nodes, PlanError> {
    let mut nodes: Vec<&Node> = snap.nodes.iter().collect();
    nodes.sort_by(|a, b| node_name(a).cmp(node_name(b)));
    for group in nodes.chunk_by(|a, b| node_name(a) == node_name(b)) {
        if group.len() > 1 {
            return Err(PlanError::DuplicateNode {
                node: node_name(group[0]).to_string(),
                count: group.len(),
            });
        }
    }

    let mut cidrs_by_node = Vec::with_capacity(nodes.len());
    for node in &nodes {
        cidrs_by_node.push(pod_cidrs(cluster, node, warnings)?);
    }
    check_overlaps(&nodes, &cidrs_by_node)?;

    let Some(index) = nodes.iter().position(|n| node_name(n) == local.name) else {
        return Err(PlanError::LocalNodeMissing {
            node: local.name.clone(),
        });
    };
    let local_cidrs = cidrs_by_node[index].clone();
    if local_cidrs.is_empty() {
        return Err(PlanError::LocalNodeNoPodCidr {
            node: local.name.clone(),
        });
    }
    if let Some(small) = local_cidrs.iter().find(|c| c.cidr.prefix_len() > 30) {
        return Err(PlanError::LocalPodCidrTooSmall {
            node: local.name.clone(),
            field: small.field.clone(),
            cidr: small.cidr.to_string(),
        });
    }
    if let Some(IpAddr::V4(ip)) = node_internal_ip(nodes[index]) {
        if ip != local.underlay_ip {
            warnings.push(format!(
                "node {:?} (this node): InternalIP {ip} differs from the underlay address {}; peers reach this node at {ip}",
                local.name, local.underlay_ip
            ));
        }
    }

    let mut peers = Vec::new();
    for (node, cidrs) in nodes.iter().zip(cidrs_by_node) {
        let name = node_name(node);
        if name == local.name {
            continue;
        }
        if cidrs.is_empty() {
            warnings.push(format!("node {name:?} has no IPv4 podCIDR yet; not routed"));
            continue;
        }
        let underlay_ip = match node_internal_ip(node) {
            Some(IpAddr::V4(ip)) => ip,
            _ => {
                warnings.push(format!("node {name:?} has no IPv4 InternalIP; not routed"));
                continue;
            }
        };
        if underlay_ip == local.underlay_ip {
            warnings.push(format!(
                "node {name:?} claims this node's underlay address {underlay_ip}; not routed"
            ));
            continue;
        }
        peers.push(Peer {
            name: name.to_string(),
            underlay_ip,
            pod_cidrs: cidrs.into_iter().map(|c| c.cidr).collect(),
        });
    }
    Ok(Nodes {
        local: local_cidrs,
        peers,
    })
}

/// A node's usable pod CIDRs: parsed, IPv4, no host bits, inside `cluster`.
fn pod_cidrs(
    cluster: Ipv4Net,
    node: &Node,
    warnings: &mut Vec<String>,
) -> Result<Vec<PodCidr>, PlanError> {
    let name = node_name(node);
    let fail = |field: &str, value: &str, problem: String| PlanError::NodeField {
        node: name.to_string(),
        field: field.to_string(),
        value: value.to_string(),
        problem,
    };
    let mut out = Vec::new();
    for (field, raw) in node_pod_cidr_fields(node) {
        let net: IpNet = raw
            .parse()
            .map_err(|_| fail(&field, raw, "is not a CIDR".to_string()))?;
        let IpNet::V4(net) = net else {
            warnings.push(format!(
                "node {name:?}: {field} {net} left out: IPv6 pod networking is not supported yet"
            ));
            continue;
        };
        if net.trunc() != net {
            return Err(fail(&field, raw, "has host bits set".to_string()));
        }
        if !cluster.contains(&net) {
            return Err(fail(
                &field,
                raw,
                format!("is outside clusterCIDR {cluster}"),
            ));
        }
        out.push(PodCidr { field, cidr: net });
    }
    Ok(out)
}

/// Every pair of overlapping pod CIDRs is an error; the first pair in
/// (address, prefix, node name) order is reported, whatever the input order.
fn check_overlaps(nodes: &[&Node], cidrs: &[Vec<PodCidr>]) -> Result<(), PlanError> {
    let mut all: Vec<(Ipv4Net, &str, &str)> = nodes
        .iter()
        .zip(cidrs)
        .flat_map(|(n, list)| {
            list.iter()
                .map(move |c| (c.cidr, node_name(n), c.field.as_str()))
        })
        .collect();
    all.sort();
    // CIDRs either nest or are disjoint. Sorted by network address, if any
    // CIDR contains a later one, it also contains the next one's network
    // (that lies between the two), so comparing neighbours finds an overlap whenever there is one.
    let mut prev_item: Option<&(Ipv4Net, &str, &str)> = None;
    for item in &all {
        if let Some(prev) = prev_item {
            if prev.0.contains(&item.0.network()) {
                let side = |(cidr, node, field): &(Ipv4Net, &str, &str)| PodCidrRef {
                    node: node.to_string(),
                    field: field.to_string(),
                    cidr: cidr.to_string(),
                };
                return Err(PlanError::PodCidrOverlap(Box::new([
                    side(prev),
                    side(item),
                ])));
            }
        }
        prev_item = Some(item);
    }
    Ok(())
}

#[cfg(test)]
#[path = "nodes_tests.rs"]
mod tests;
