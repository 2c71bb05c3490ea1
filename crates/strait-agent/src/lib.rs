//! The strait node agent: reads the cluster from a source (a manifest
//! directory now, the Kubernetes API later), compiles this node's Plan and
//! makes the kernel match it, again and again, so drift is repaired.
//!
//! It owns the objects listed in docs/lab-agent-plan.md and touches nothing
//! else.

pub mod apply;
pub mod discover;
pub mod health_check;
pub mod http;
pub mod metrics;
pub mod node_file;
pub mod policy_log;
pub mod policy_metrics;
pub mod run;
pub mod stale_flows;
pub mod watch;
