//! The agent's Prometheus metrics.

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Everything /metrics and /readyz report; shared by the loop and the HTTP
/// thread.
pub struct Metrics {
    registry: Registry,
    pub syncs: Counter,
    pub sync_errors: Counter,
    pub sync_seconds: Histogram,
    pub owned: Family<KindLabel, Gauge>,
    pub ready: AtomicBool,
    /// Why not ready, for /readyz (empty: no successful sync yet).
    not_ready: std::sync::Mutex<String>,
    /// `strait_policy_*` (a registry of its own for the prefix).
    policy_registry: Registry,
    pub policy_drops: Arc<crate::policy_metrics::PolicyDrops>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("strait_agent");
        let syncs = Counter::default();
        let sync_errors = Counter::default();
        let sync_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        let owned = Family::<KindLabel, Gauge>::default();
        registry.register(
            "syncs",
            "Completed syncs of the kernel to the plan",
            syncs.clone(),
        );
        registry.register("sync_errors", "Syncs that failed", sync_errors.clone());
        registry.register(
            "sync_duration_seconds",
            "Time to compile and apply one sync",
            sync_seconds.clone(),
        );
        registry.register(
            "owned_objects",
            "Kernel objects the agent owns, by kind",
            owned.clone(),
        );
        let mut policy_registry = Registry::with_prefix("strait_policy");
        let policy_drops = Arc::new(crate::policy_metrics::PolicyDrops::default());
        policy_registry.register(
            "dropped_packets",
            "Packets dropped by NetworkPolicy, per policy selecting the pod and direction",
            policy_drops.family.clone(),
        );
        Arc::new(Metrics {
            policy_registry,
            policy_drops,
            registry,
            syncs,
            sync_errors,
            sync_seconds,
            owned,
            ready: AtomicBool::new(false),
            not_ready: std::sync::Mutex::new(String::new()),
        })
    }

    pub fn set_owned(&self, kind: &str, n: usize) {
        self.owned
            .get_or_create(&KindLabel { kind: kind.into() })
            .set(n as i64);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Not ready, and why (shown by /readyz).
    pub fn set_not_ready(&self, why: &str) {
        self.ready.store(false, Ordering::Relaxed);
        *self.not_ready.lock().unwrap_or_else(|p| p.into_inner()) = why.to_string();
    }

    /// Why not ready, as /readyz says it.
    pub fn not_ready_reason(&self) -> String {
        let why = self.not_ready.lock().unwrap_or_else(|p| p.into_inner());
        if why.is_empty() {
            "no successful sync yet".into()
        } else {
            why.clone()
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &self.policy_registry);
        let _ = encode_eof(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_metrics() {
        let m = Metrics::new();
        m.syncs.inc();
        m.set_owned("route", 3);
        let text = m.render();
        assert!(text.contains("strait_agent_syncs_total 1"), "{text}");
        assert!(
            text.contains("strait_agent_owned_objects{kind=\"route\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("strait_agent_sync_duration_seconds_bucket"),
            "{text}"
        );
        m.policy_drops.update(&[("pol-in.ns.web".into(), 3)]);
        let text = m.render();
        assert!(
            text.contains(
                "strait_policy_dropped_packets_total{policy=\"ns/web\",direction=\"ingress\"} 3"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
