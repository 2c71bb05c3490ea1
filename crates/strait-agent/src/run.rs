//! The agent loop: source -> snapshot -> compile -> apply, on every change
//! of the source and at least once a second (so drift is repaired within
//! seconds), with the nft table rewritten in full every `resync`.
//!
//! Kernel state outlives the agent: stopping or restarting it changes
//! nothing that is right, and a new agent's first sync is a no-op diff.

use crate::apply::Applier;
use crate::metrics::Metrics;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use strait_model::{AgentConfig, ManifestStore};

#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    pub manifests: PathBuf,
    pub node_name: String,
    pub listen: SocketAddr,
    pub node_file: PathBuf,
    /// Longest time between two syncs.
    pub interval: Duration,
    /// Longest time between two full nft rewrites.
    pub resync: Duration,
    /// Sync once and exit (for tests and scripts).
    pub once: bool,
}

fn log(msg: impl AsRef<str>) {
    eprintln!("strait-agent: {}", msg.as_ref());
}

pub fn load_config(path: &Path) -> Result<AgentConfig, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    AgentConfig::from_yaml(&text).map_err(|e| format!("--config {}: {e}", path.display()))
}

/// A cheap fingerprint of the manifest directory: names, sizes, mtimes.
fn fingerprint(dir: &Path) -> Vec<(String, u64, Option<SystemTime>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    Some((
                        e.file_name().to_string_lossy().into_owned(),
                        m.len(),
                        m.modified().ok(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What one sync did and what it wants served beside the kernel state.
#[derive(Debug, Default)]
pub struct Synced {
    pub changes: Vec<String>,
    pub health_checks: std::collections::BTreeMap<u16, crate::health_check::Check>,
    pub udp_endpoints: crate::stale_flows::UdpEndpoints,
}

/// What the periodic syncs reuse between source changes: the snapshot, and
/// the Plan compiled from it for one local node. A one-second sync then
/// only diffs the kernel against the kept Plan; it neither re-reads the
/// source nor recompiles (nor logs the same warnings again).
#[derive(Default)]
pub struct Cache {
    snap: Option<strait_model::Snapshot>,
    plan: Option<(strait_plan::LocalNode, strait_plan::Plan)>,
}

/// One sync from scratch: load, compile, apply.
pub fn sync_once(
    cfg: &AgentConfig,
    opts: &Options,
    applier: &mut Applier,
    nl: &mut strait_kernel::Netlink,
    full: bool,
    metrics: Option<&Metrics>,
) -> Result<Synced, String> {
    sync_cached(cfg, opts, &mut Cache::default(), applier, nl, full, metrics)
}

/// One sync, reusing what `cache` holds.
pub fn sync_cached(
    cfg: &AgentConfig,
    opts: &Options,
    cache: &mut Cache,
    applier: &mut Applier,
    nl: &mut strait_kernel::Netlink,
    full: bool,
    metrics: Option<&Metrics>,
) -> Result<Synced, String> {
    let snap = match cache.snap.take() {
        Some(s) => s,
        None => {
            cache.plan = None;
            ManifestStore::load(&opts.manifests).map_err(|e| e.to_string())?
        }
    };
    let result = sync_snapshot(
        cfg,
        opts,
        &snap,
        &mut cache.plan,
        applier,
        nl,
        full,
        metrics,
    );
    cache.snap = Some(snap);
    result
}

#[allow(clippy::too_many_arguments)]
fn sync_snapshot(
    cfg: &AgentConfig,
    opts: &Options,
    snap: &strait_model::Snapshot,
    compiled: &mut Option<(strait_plan::LocalNode, strait_plan::Plan)>,
    applier: &mut Applier,
    nl: &mut strait_kernel::Netlink,
    full: bool,
    metrics: Option<&Metrics>,
) -> Result<Synced, String> {
    let me = snap
        .nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(opts.node_name.as_str()))
        .ok_or_else(|| format!("node {} is not in the source yet", opts.node_name))?;
    let ip = match strait_model::node_internal_ip(me) {
        Some(IpAddr::V4(v4)) => v4,
        Some(other) => {
            return Err(format!(
                "node {}: InternalIP {other} is not IPv4 (IPv6 underlays are not supported yet)",
                opts.node_name
            ))
        }
        None => return Err(format!("node {} has no InternalIP address", opts.node_name)),
    };
    let local = crate::discover::local_node(nl, &opts.node_name, ip)?;
    if compiled.as_ref().is_none_or(|(l, _)| *l != local) {
        let plan = strait_plan::compile(cfg, &local, snap).map_err(|e| e.to_string())?;
        for w in &plan.warnings {
            log(format!("warning: {w}"));
        }
        *compiled = Some((local, plan));
    }
    let Some((_, plan)) = compiled.as_ref() else {
        return Err("no plan compiled".into());
    };
    // Policy drop counters are read before the apply: a rewrite of the
    // table restarts them at zero, so nothing counted before is lost.
    let policed = !plan.nft.counters.is_empty();
    if let (Some(m), true) = (metrics, policed) {
        match crate::policy_metrics::read_counters(strait_plan::NFT_TABLE) {
            Ok(read) => m.policy_drops.update(&read),
            Err(e) => log(format!("policy drop counters not read: {e}")),
        }
    }
    let report = applier.apply(plan, full).map_err(|e| e.to_string())?;
    if let Some(m) = metrics {
        m.set_owned("route", report.routes);
        m.set_owned("fdb", report.fdb);
        m.set_owned("neighbour", report.neighbours);
        m.set_owned("nft_table", 1);
        if full || report.changes.iter().any(|c| c.ends_with("rewritten")) {
            m.policy_drops.restarted();
        }
    }
    Ok(Synced {
        changes: report.changes,
        health_checks: crate::health_check::wanted(snap, &opts.node_name),
        udp_endpoints: crate::stale_flows::udp_endpoints(snap),
    })
}

/// Size and mtime of the config file, to notice edits.
fn config_stamp(path: &Path) -> Option<(u64, Option<SystemTime>)> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.len(), m.modified().ok()))
}

pub fn run(opts: Options) -> Result<(), String> {
    let mut cfg = load_config(&opts.config)?;
    let mut cfg_stamp = config_stamp(&opts.config);
    let metrics = Metrics::new();
    let bound = crate::http::serve(opts.listen, metrics.clone())
        .map_err(|e| format!("--listen {}: {e}", opts.listen))?;
    log(format!(
        "node {}: serving /healthz /readyz /metrics on {bound}",
        opts.node_name
    ));
    let mut applier = Applier::new(&opts.node_file).map_err(|e| e.to_string())?;
    let mut nl = strait_kernel::Netlink::open().map_err(|e| format!("netlink: {e}"))?;
    // inotify on the source directory and the config's directory; polling
    // the directory is the fallback where a watch cannot be set.
    let config_dir = opts
        .config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let watch = match crate::watch::Watch::new(&[&opts.manifests, config_dir]) {
        Ok(w) => Some(w),
        Err(e) => {
            log(format!(
                "no inotify watch ({e}): polling {} instead",
                opts.manifests.display()
            ));
            None
        }
    };
    let describer = std::sync::Arc::new(std::sync::Mutex::new(
        crate::policy_log::Describer::default(),
    ));
    match crate::policy_log::DropLog::open(strait_plan::policy::LOG_GROUP) {
        Ok(l) => crate::policy_log::spawn(l, describer.clone()),
        Err(e) => log(format!("no policy drop log (nfnetlink_log): {e}")),
    }
    let mut event = false;
    let mut cache = Cache::default();
    let mut health_checks = crate::health_check::HealthChecks::default();
    let mut udp_before: Option<crate::stale_flows::UdpEndpoints> = None;
    let mut last_print = fingerprint(&opts.manifests);
    let mut last_sync: Option<Instant> = None;
    let mut last_full: Option<Instant> = None;
    let mut last_error: Option<String> = None;
    loop {
        let now = Instant::now();
        // An edited config is picked up without a restart; a broken one is
        // reported and the last good one stays in force.
        let stamp = config_stamp(&opts.config);
        let mut config_changed = false;
        if stamp != cfg_stamp {
            cfg_stamp = stamp;
            match load_config(&opts.config) {
                Ok(new) => {
                    log(format!("config {} reloaded", opts.config.display()));
                    cfg = new;
                    config_changed = true;
                }
                Err(e) => log(format!(
                    "config not reloaded, keeping the previous one: {e}"
                )),
            }
        }
        let changed = match &watch {
            Some(_) => std::mem::take(&mut event),
            None => {
                let print = fingerprint(&opts.manifests);
                let changed = print != last_print;
                last_print = print;
                changed
            }
        };
        let due = last_sync.is_none_or(|t| now.duration_since(t) >= opts.interval);
        if changed || due || config_changed {
            let full = last_full.is_none_or(|t| now.duration_since(t) >= opts.resync);
            let started = Instant::now();
            let recompiled = changed || config_changed || full || cache.plan.is_none();
            if changed || config_changed || full {
                cache = Cache::default();
            }
            match sync_cached(
                &cfg,
                &opts,
                &mut cache,
                &mut applier,
                &mut nl,
                full,
                Some(&metrics),
            ) {
                Ok(synced) => {
                    let changes = synced.changes;
                    if let (true, Some(snap), Some((_, plan))) =
                        (recompiled, &cache.snap, &cache.plan)
                    {
                        let d = crate::policy_log::Describer::new(&plan.nft, snap);
                        *describer.lock().unwrap_or_else(|e| e.into_inner()) = d;
                    }
                    for problem in health_checks.update(synced.health_checks) {
                        log(problem);
                    }
                    if let Some(before) = &udp_before {
                        for (addr, port, ep) in
                            crate::stale_flows::stale(before, &synced.udp_endpoints)
                        {
                            match strait_kernel::conntrack::delete_udp_flows(addr, port, ep) {
                                Ok(0) => {}
                                Ok(n) => log(format!(
                                    "deleted {n} stale UDP flows {addr}:{port} -> {ep}"
                                )),
                                Err(e) => {
                                    log(format!("stale UDP flows {addr}:{port} -> {ep}: {e}"))
                                }
                            }
                        }
                    }
                    udp_before = Some(synced.udp_endpoints);
                    metrics.syncs.inc();
                    metrics
                        .sync_seconds
                        .observe(started.elapsed().as_secs_f64());
                    if !metrics.is_ready() {
                        log(format!("node {}: first sync done, ready", opts.node_name));
                    }
                    metrics.set_ready(true);
                    for c in &changes {
                        log(c);
                    }
                    last_error = None;
                    if full {
                        last_full = Some(now);
                    }
                }
                Err(e) => {
                    metrics.sync_errors.inc();
                    // Keep what is programmed: never flush on a failed sync.
                    if last_error.as_deref() != Some(e.as_str()) {
                        log(format!("sync failed (kernel state kept): {e}"));
                    }
                    last_error = Some(e.clone());
                    if opts.once {
                        return Err(e);
                    }
                }
            }
            last_sync = Some(now);
            if opts.once {
                return Ok(());
            }
        }
        // Sleep until the next periodic sync, an event, or (for the config
        // stamp and the polling fallback) 100 ms at most.
        let wait = Duration::from_millis(100);
        match &watch {
            Some(w) => event = w.wait(wait),
            None => std::thread::sleep(wait),
        }
    }
}

/// `strait agent --cleanup`: removes everything the agent owns.
pub fn cleanup(opts: &Options) -> Result<(), String> {
    let bridge = load_config(&opts.config)
        .map(|c| c.bridge.clone())
        .unwrap_or_else(|_| "strait0".into());
    let mut applier = Applier::new(&opts.node_file).map_err(|e| e.to_string())?;
    match applier.cleanup(&bridge) {
        Ok(done) => {
            for d in done {
                log(d);
            }
            Ok(())
        }
        Err(failed) => Err(format!("cleanup incomplete: {}", failed.join("; "))),
    }
}
