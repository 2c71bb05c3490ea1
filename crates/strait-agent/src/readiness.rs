//! What `/readyz` says and when the CNI conflist is published.
//!
//! Ready means: the last sync programmed the kernel, the source is ready
//! (the API's first full list arrived and no watch is failing), and, in
//! Kubernetes mode, strait-cni is installed. The conflist is written the
//! first time all of that holds and kept afterwards (see
//! [`crate::cni_conf`] for why an outage does not remove it).

use crate::metrics::Metrics;
use crate::run::Options;
use crate::source::Source;
use strait_model::AgentConfig;

fn log(msg: impl AsRef<str>) {
    eprintln!("strait-agent: {}", msg.as_ref());
}

fn set(opts: &Options, metrics: &Metrics, why_not: Option<String>) {
    match why_not {
        None => {
            if !metrics.is_ready() {
                let first = metrics.syncs.get() <= 1;
                let what = if first {
                    "first sync done"
                } else {
                    "synced again"
                };
                log(format!("node {}: {what}, ready", opts.node_name));
            }
            metrics.set_ready(true);
        }
        Some(why) => {
            if metrics.is_ready() {
                log(format!("node {}: not ready: {why}", opts.node_name));
            }
            metrics.set_not_ready(&why);
        }
    }
}

/// After a successful sync.
pub fn update(opts: &Options, cfg: &AgentConfig, source: &Source, metrics: &Metrics) {
    let mut why_not = source.not_ready();
    if let (None, Some(cni)) = (&why_not, &opts.cni) {
        why_not = cni.missing_plugin();
        if why_not.is_none() {
            match cni.publish(&cfg.bridge, &opts.node_file) {
                Ok(true) => log(format!("published {}", cni.path().display())),
                Ok(false) => {}
                Err(e) => why_not = Some(e),
            }
        }
    }
    set(opts, metrics, why_not);
}

/// After a failed sync: the kernel keeps what it has, readiness goes.
pub fn failed(opts: &Options, source: &Source, metrics: &Metrics) {
    let why = source
        .not_ready()
        .unwrap_or_else(|| "the last sync failed".into());
    set(opts, metrics, Some(why));
}
