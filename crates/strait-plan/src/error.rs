//! Why a plan could not be compiled. Every message names the node (or the
//! config field) and the value at fault; nothing here is a warning (those go
//! to `Plan.warnings`).

use std::net::Ipv4Addr;

/// Where a pod CIDR came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCidrRef {
    pub node: String,
    /// `spec.podCIDR` or `spec.podCIDRs[i]`.
    pub field: String,
    pub cidr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("node {node:?} (this node) is not in the snapshot")]
    LocalNodeMissing { node: String },

    #[error("node {node:?} (this node) has no IPv4 podCIDR (spec.podCIDR / spec.podCIDRs)")]
    LocalNodeNoPodCidr { node: String },

    #[error("node {node:?} (this node): {field} {cidr} is too small for a bridge gateway and pods (at most /30)")]
    LocalPodCidrTooSmall {
        node: String,
        field: String,
        cidr: String,
    },

    #[error("node {node:?} appears {count} times in the snapshot")]
    DuplicateNode { node: String, count: usize },

    /// A field of a Node has a value strait cannot use.
    #[error("node {node:?}: {field} {value} {problem}")]
    NodeField {
        node: String,
        field: String,
        value: String,
        problem: String,
    },

    /// Two pod CIDRs overlap (in (address, prefix, node name) order).
    #[error("node {:?}: {} {} overlaps {} {} of node {:?}", .0[0].node, .0[0].field, .0[0].cidr, .0[1].field, .0[1].cidr, .0[1].node)]
    PodCidrOverlap(Box<[PodCidrRef; 2]>),

    #[error("node {node:?}: InternalIP {ip} is not on this node's underlay subnet {subnet}; host-gw needs every node on one L2 segment (use backend: vxlan)")]
    PeerNotOnLink {
        node: String,
        ip: Ipv4Addr,
        subnet: String,
    },

    /// The agent config does not validate (see `AgentConfig::validate`).
    #[error("agent config: {0}")]
    Config(String),

    #[error("clusterCIDR: {0} is IPv6; strait supports IPv4 pod networks only for now")]
    Ipv6ClusterCidr(String),

    /// The facts the agent passed in are not usable.
    #[error("this node's {field}: {message}")]
    LocalNode { field: String, message: String },

    /// A compiler produced an nft table nft would reject (a bug in strait).
    #[error("internal error, please report: {0}")]
    Nft(#[from] crate::nft::NftError),
}
