//! strait-kube: the Kubernetes API as a source of the cluster [`Snapshot`]
//! (the other source is the manifest store in strait-model).
//!
//! - [`source`]: the watchers ([`KubeSource`]) and how they connect.
//! - [`rbac`]: the API access the source needs, which `deploy/strait.yaml`
//!   must grant exactly.
//! - [`fake_api`]: an HTTP server speaking the API's list/watch wire format,
//!   for tests (no API server can be installed where the tests run).
//!
//! [`Snapshot`]: strait_model::Snapshot

pub mod fake_api;
pub mod rbac;
pub mod source;
mod state;

pub use source::{Connect, KubeSource};
pub use state::Status;
