//! The agent loop: source -> snapshot -> compile -> apply, on every change
//! of the source and at least once a second (so drift is repaired within
//! seconds), with the nft table rewritten in full every `resync`; a table
//! deleted or replaced outside the agent is noticed by its stamp on every
//! sync.
//!
//! Kernel state outlives the agent: stopping or restarting it changes
//! nothing that is right, and a new agent's first sync is a no-op diff.

use crate::apply::Applier;
use crate::metrics::Metrics;
use crate::source::Source;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use strait_model::AgentConfig;

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
    /// Read the cluster from the Kubernetes API instead of `manifests`.
    pub kube: Option<strait_kube::Connect>,
    /// Replaces the config's clusterCIDR (`--cluster-cidr`).
    pub cluster_cidr: Option<ipnet::IpNet>,
    /// Publish the CNI conflist here once ready, remove it on cleanup.
    pub cni: Option<crate::cni_conf::CniConf>,
}

fn log(msg: impl AsRef<str>) {
    eprintln!("strait-agent: {}", msg.as_ref());
}

pub fn load_config(path: &Path) -> Result<AgentConfig, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    AgentConfig::from_yaml(&text).map_err(|e| format!("--config {}: {e}", path.display()))
}

/// The config file with the command line's overrides (`--cluster-cidr`).
pub fn load_options_config(opts: &Options) -> Result<AgentConfig, String> {
    let mut cfg = load_config(&opts.config)?;
    if let Some(cidr) = opts.cluster_cidr {
        cfg.cluster_cidr = cidr;
        cfg.validate().map_err(|e| {
            format!(
                "--cluster-cidr {cidr} with --config {}: {e}",
                opts.config.display()
            )
        })?;
    }
    Ok(cfg)
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
/// source nor recompiles (nor logs the same warnings again). The compile
/// cache outlives both: the next snapshot shares every unchanged object
/// with the last, and the compile reuses what it made of them.
#[derive(Default)]
pub struct Cache {
    snap: Option<Arc<strait_model::Snapshot>>,
    plan: Option<(strait_plan::LocalNode, strait_plan::Plan)>,
    compile: strait_plan::CompileCache,
    /// Writes the trace state after each new Plan.
    publisher: crate::trace_state::Publisher,
    /// The snapshot before the source changed: the next one takes its
    /// objects where they are equal (the manifest store reads every file
    /// again), so the compile cache can tell what changed.
    previous: Option<Arc<strait_model::Snapshot>>,
}

impl Cache {
    /// A cache whose trace state is written on a thread of its own (the
    /// running agent: at 10,000 Services the file takes 50 ms, which an
    /// endpoint change should not wait for).
    pub fn publishing_in_background() -> Cache {
        Cache {
            publisher: crate::trace_state::Publisher::background(),
            ..Cache::default()
        }
    }

    /// Forget the snapshot and the Plan (the source or config changed, or
    /// a full resync is due); the compile cache stays.
    pub fn forget_inputs(&mut self) {
        self.previous = self.snap.take().or(self.previous.take());
        self.plan = None;
    }
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
    let source = Source::open(opts)?;
    sync_cached(
        cfg,
        opts,
        &source,
        &mut Cache::default(),
        applier,
        nl,
        full,
        metrics,
    )
}

/// One sync, reusing what `cache` holds.
#[allow(clippy::too_many_arguments)]
pub fn sync_cached(
    cfg: &AgentConfig,
    opts: &Options,
    source: &Source,
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
            let mut snap = source.load()?;
            if let Some(before) = cache.previous.take() {
                snap.share_unchanged(&before);
            }
            Arc::new(snap)
        }
    };
    let result = sync_snapshot(
        cfg,
        opts,
        &snap,
        &mut cache.plan,
        &mut cache.compile,
        &cache.publisher,
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
    snap: &Arc<strait_model::Snapshot>,
    compiled: &mut Option<(strait_plan::LocalNode, strait_plan::Plan)>,
    compile_cache: &mut strait_plan::CompileCache,
    publisher: &crate::trace_state::Publisher,
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
    let recompiled = compiled.as_ref().is_none_or(|(l, _)| *l != local);
    if recompiled {
        let plan = strait_plan::compile_cached(cfg, &local, snap, compile_cache)
            .map_err(|e| e.to_string())?;
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
    let applied = applier.apply(plan, full).map_err(|e| e.to_string());
    // The tools' view of this node follows the kernel, not the other way
    // round: written after the apply, whatever its outcome.
    if recompiled {
        if let Some((local, _)) = compiled.as_ref() {
            publisher.publish(&opts.node_file, cfg, local, snap);
        }
    }
    let report = applied?;
    if let Some(m) = metrics {
        m.set_owned("route", report.routes);
        m.set_owned("fdb", report.fdb);
        m.set_owned("neighbour", report.neighbours);
        m.set_owned("nft_table", 1);
        if report.nft_reloaded {
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
    crate::malloc_policy::return_large_allocations();
    let mut cfg = load_options_config(&opts)?;
    let mut cfg_stamp = config_stamp(&opts.config);
    let mut source = Source::open(&opts)?;
    log(format!(
        "node {}: reading {}",
        opts.node_name,
        source.describe()
    ));
    let metrics = Metrics::new();
    let bound = crate::http::serve(opts.listen, metrics.clone())
        .map_err(|e| format!("--listen {}: {e}", opts.listen))?;
    log(format!(
        "node {}: serving /healthz /readyz /metrics on {bound}",
        opts.node_name
    ));
    let mut applier = Applier::new(&opts.node_file).map_err(|e| e.to_string())?;
    let mut nl = strait_kernel::Netlink::open().map_err(|e| format!("netlink: {e}"))?;
    source.wait_first_list(log);
    let describer = std::sync::Arc::new(std::sync::Mutex::new(
        crate::policy_log::Describer::default(),
    ));
    match crate::policy_log::DropLog::open(strait_plan::policy::LOG_GROUP) {
        Ok(l) => crate::policy_log::spawn(l, describer.clone()),
        Err(e) => log(format!("no policy drop log (nfnetlink_log): {e}")),
    }
    let feed = crate::drop_feed::socket_path(&crate::trace_state::dir_for(&opts.node_file));
    if let Err(e) = crate::drop_feed::listen(&feed) {
        log(format!(
            "no drop feed for strait flows at {}: {e}",
            feed.display()
        ));
    }
    let mut cache = Cache::publishing_in_background();
    let mut health_checks = crate::health_check::HealthChecks::default();
    let mut udp_before: Option<crate::stale_flows::UdpEndpoints> = None;
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
            match load_options_config(&opts) {
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
        // A source that comes back after an outage reports a change: the
        // sync after it rewrites everything (full).
        let (changed, back) = source.changed();
        let due = last_sync.is_none_or(|t| now.duration_since(t) >= opts.interval);
        if changed || due || config_changed {
            let full = back || last_full.is_none_or(|t| now.duration_since(t) >= opts.resync);
            let started = Instant::now();
            let recompiled = changed || config_changed || full || cache.plan.is_none();
            if changed || config_changed || full {
                cache.forget_inputs();
            }
            match sync_cached(
                &cfg,
                &opts,
                &source,
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
                    crate::readiness::update(&opts, &cfg, &source, &metrics);
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
                    crate::readiness::failed(&opts, &source, &metrics);
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
        source.wait(Duration::from_millis(100));
    }
}

/// `strait agent --cleanup`: removes everything the agent owns.
pub fn cleanup(opts: &Options) -> Result<(), String> {
    let bridge = load_config(&opts.config)
        .map(|c| c.bridge.clone())
        .unwrap_or_else(|_| "strait0".into());
    let mut applier = Applier::new(&opts.node_file).map_err(|e| e.to_string())?;
    if let Some(cni) = &opts.cni {
        if cni.remove()? {
            log(format!("removed {}", cni.path().display()));
        }
    }
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
