//! strait-model: what strait's compilers read.
//!
//! - [`config`]: the agent config (`AgentConfig`), parsed and validated.
//! - [`manifest`]: Kubernetes manifests -> [`Object`]s of the kinds strait reads.
//! - [`endpoint_slice`]: the snapshot's slim EndpointSlice ([`Slice`]).
//! - [`snapshot`]: the cluster as a node sees it ([`Snapshot`]), sorted.
//! - [`store`]: a directory of manifests -> [`Snapshot`].
//! - [`node`]: pod CIDRs and the InternalIP of a Node.
//!
//! This crate never touches the kernel. Only [`store`] reads files.
//!
//! Kubernetes objects are `k8s-openapi` types, re-exported as [`k8s`] so the
//! crates downstream use the same version; the snapshot keeps EndpointSlices
//! as the smaller [`Slice`] (most of the agent's memory at scale).

pub mod config;
pub mod endpoint_slice;
pub mod error;
pub mod manifest;
pub mod node;
pub mod snapshot;
pub mod store;

pub use config::{AgentConfig, Backend, NodeRoute, VxlanConfig};
pub use endpoint_slice::Slice;
pub use error::ModelError;
pub use k8s_openapi as k8s;
pub use manifest::{for_each_manifest, namespace_and_name, parse_manifests, Kind, Object};
pub use node::{node_internal_ip, node_name, node_pod_cidr_fields, node_pod_cidrs};
pub use snapshot::Snapshot;
pub use store::ManifestStore;
