//! The strait node agent: reads the cluster from a source (a manifest
//! directory or the Kubernetes API, see [`source`]), compiles this node's Plan and
//! makes the kernel match it, again and again, so drift is repaired.
//!
//! It owns the objects listed in docs/lab-agent-plan.md and touches nothing
//! else.

pub mod apply;
pub mod cni_conf;
pub mod discover;
pub mod doctor;
pub mod drop_feed;
pub mod flows;
pub mod health_check;
pub mod http;
pub mod malloc_policy;
pub mod metrics;
pub mod nft_load;
pub mod nft_update;
pub mod node_file;
pub mod policy_log;
pub mod policy_metrics;
pub mod readiness;
pub mod run;
pub mod source;
pub mod stale_flows;
pub mod trace_state;
pub mod watch;
