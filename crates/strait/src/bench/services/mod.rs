//! Service proxy scale benchmark against kube-proxy's iptables layout, in
//! the same run, for N Services x 10 endpoints:
//!
//! - full sync: strait = compile the Plan + the agent's applier writing the
//!   whole table (render, one `nft -f` transaction); kube-proxy layout = one
//!   `iptables-restore` of KUBE-SERVICES / KUBE-SVC-* / KUBE-SEP-* (written
//!   by the generator below, the shape kube-proxy's iptables mode writes).
//! - one endpoint change, and a Service moving to an endpoint count no
//!   other Service has: strait = compile + the applier's incremental
//!   transaction; kube-proxy layout = `iptables-restore --noflush` of the
//!   changed service's chains only.
//! - at 10,000: new TCP connections per second to the last Service, against
//!   a namespace holding that Service alone ([`conn_rate`]).
//!
//! Each side loads into a fresh network namespace of its own.

mod conn_rate;

use super::report::{machine, write_section};
use serde_json::json;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use strait_agent::apply::Applier;
use strait_lab::{run_in_netns, Netns};
use strait_model::{AgentConfig, Object, Snapshot};
use strait_plan::LocalNode;

fn endpoint_ip(svc: usize, ep: usize) -> String {
    // Endpoints spread over 200 peer nodes (10.42.2-201.x); the "change"
    // moves one to 10.42.250.250, an address no endpoint has.
    let n = svc * 10 + ep;
    format!("10.42.{}.{}", 2 + (n / 250) % 200, 2 + n % 250)
}

fn cluster_ip(svc: usize) -> String {
    format!("10.43.{}.{}", (svc + 10) / 250, 1 + (svc + 10) % 250)
}

/// What differs from the plain snapshot, always in the last Service.
#[derive(Clone, Copy, PartialEq)]
enum Change {
    None,
    /// Its first endpoint moves to 10.42.250.250, an address no endpoint has.
    MoveEndpoint,
    /// It gets an 11th endpoint (10.42.250.251): a group no Service is in.
    AddEndpoint,
}

fn snapshot(n: usize, change: Change) -> Snapshot {
    snapshot_of(0..n, n - 1, change)
}

/// The nodes, and Services `services` (with their EndpointSlices); `last`
/// is the one `change` applies to.
fn snapshot_of(services: impl Iterator<Item = usize>, last: usize, change: Change) -> Snapshot {
    let mut objects = Vec::new();
    let node = |name: String, ip: String, cidr: String| -> Object {
        Object::Node(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"podCIDR": cidr},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}]}
            }))
            .expect("node"),
        )
    };
    objects.push(node(
        "node-1".into(),
        "10.0.0.1".into(),
        "10.42.1.0/24".into(),
    ));
    for i in 0..200 {
        objects.push(node(
            format!("peer-{i}"),
            format!("10.0.{}.{}", 1 + i / 250, 2 + i % 250),
            format!("10.42.{}.0/24", 2 + i),
        ));
    }
    for s in services {
        let name = format!("svc-{s}");
        objects.push(Object::Service(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "bench"},
                "spec": {"clusterIP": cluster_ip(s), "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}
            }))
            .expect("service"),
        ));
        let mut ips: Vec<String> = (0..10).map(|e| endpoint_ip(s, e)).collect();
        if s == last {
            match change {
                Change::None => {}
                Change::MoveEndpoint => ips[0] = "10.42.250.250".to_owned(),
                Change::AddEndpoint => ips.push("10.42.250.251".to_owned()),
            }
        }
        let eps: Vec<serde_json::Value> = ips
            .iter()
            .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
            .collect();
        objects.push(Object::EndpointSlice(
            serde_json::from_value(json!({
                "metadata": {"name": format!("{name}-1"), "namespace": "bench", "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "endpoints": eps,
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
            }))
            .expect("slice"),
        ));
    }
    Snapshot::from_objects(objects)
}

fn kube_proxy_chain(prefix: &str, s: usize, e: Option<usize>) -> String {
    // kube-proxy names chains by a hash; any unique 16 characters will do.
    match e {
        None => format!("{prefix}-{s:012X}"),
        Some(e) => format!("{prefix}-{s:09X}{e:03X}"),
    }
}

/// The iptables-restore input kube-proxy's iptables mode would write.
fn iptables_ruleset(n: usize, only: Option<usize>, changed: bool) -> String {
    let mut out = String::from("*nat\n");
    let services: Vec<usize> = match only {
        Some(s) => vec![s],
        None => (0..n).collect(),
    };
    if only.is_none() {
        out.push_str(
            ":KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n",
        );
    }
    for &s in &services {
        let _ = writeln!(out, ":{} - [0:0]", kube_proxy_chain("KUBE-SVC", s, None));
        for e in 0..10 {
            let _ = writeln!(out, ":{} - [0:0]", kube_proxy_chain("KUBE-SEP", s, Some(e)));
        }
    }
    if only.is_none() {
        out.push_str(
            "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
        );
        out.push_str(
            "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
        );
        out.push_str("-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n");
        out.push_str("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n");
        out.push_str("-A KUBE-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE\n");
        for s in 0..n {
            let _ = writeln!(
                out,
                "-A KUBE-SERVICES -d {}/32 -p tcp -m comment --comment \"bench/svc-{s}:http cluster IP\" -m tcp --dport 80 -j {}",
                cluster_ip(s),
                kube_proxy_chain("KUBE-SVC", s, None)
            );
        }
    }
    for &s in &services {
        let svc = kube_proxy_chain("KUBE-SVC", s, None);
        for e in 0..10 {
            let sep = kube_proxy_chain("KUBE-SEP", s, Some(e));
            if e < 9 {
                let p = 1.0 / (10 - e) as f64;
                let _ = writeln!(out, "-A {svc} -m comment --comment \"bench/svc-{s}:http\" -m statistic --mode random --probability {p:.11} -j {sep}");
            } else {
                let _ = writeln!(
                    out,
                    "-A {svc} -m comment --comment \"bench/svc-{s}:http\" -j {sep}"
                );
            }
            let ip = if changed && s == n - 1 && e == 0 {
                "10.42.250.250".to_owned()
            } else {
                endpoint_ip(s, e)
            };
            let _ = writeln!(
                out,
                "-A {sep} -s {ip}/32 -m comment --comment \"bench/svc-{s}:http\" -j KUBE-MARK-MASQ"
            );
            let _ = writeln!(out, "-A {sep} -p tcp -m comment --comment \"bench/svc-{s}:http\" -m tcp -j DNAT --to-destination {ip}:8080");
        }
    }
    out.push_str("COMMIT\n");
    out
}

fn restore(netns: &Netns, text: String, noflush: bool) -> Result<Duration, String> {
    let path = netns.path();
    run_in_netns(&path, move || -> Result<Duration, String> {
        let start = Instant::now();
        let mut cmd = Command::new("iptables-restore");
        if noflush {
            cmd.arg("--noflush");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("iptables-restore (install the iptables package): {e}"))?;
        child
            .stdin
            .take()
            .ok_or("no stdin")?
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "iptables-restore failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(start.elapsed())
    })
    .map_err(|e| e.to_string())?
}

/// One strait sync: compile the Plan, then what the agent's applier does
/// with its table (an incremental transaction with the stamp adjusted, or
/// the whole table stamped, rendered and loaded).
struct StraitTimes {
    compile: Duration,
    apply: Duration,
    /// What the applier reported (rewrite, or how many element updates).
    report: Vec<String>,
}

impl StraitTimes {
    fn total(&self) -> Duration {
        self.compile + self.apply
    }
}

/// The agent's applier for one namespace; lives on that namespace's
/// threads (its netlink socket and the `nft` it runs belong there).
struct NsApplier {
    ns: Netns,
    applier: Option<Applier>,
    /// The agent's compile cache, kept from sync to sync as the agent does.
    cache: strait_plan::CompileCache,
}

impl NsApplier {
    fn new(prefix: &str) -> Result<Self, String> {
        let ns = Netns::unique(prefix).map_err(|e| e.to_string())?;
        let file = std::env::temp_dir().join(format!("strait-bench-{}.json", ns.name));
        let applier = run_in_netns(&ns.path(), move || Applier::new(&file))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(NsApplier {
            ns,
            applier: Some(applier),
            cache: strait_plan::CompileCache::default(),
        })
    }

    /// Compile `snap` and sync its table as the agent would (`full`: the
    /// whole table, as on a first sync or a periodic resync).
    fn sync(
        &mut self,
        cfg: &AgentConfig,
        local: &LocalNode,
        snap: &Snapshot,
        full: bool,
    ) -> Result<StraitTimes, String> {
        let start = Instant::now();
        let plan = strait_plan::compile_cached(cfg, local, snap, &mut self.cache)
            .map_err(|e| e.to_string())?;
        let compile = start.elapsed();
        let used = self.cache.services.last_use();
        let mut applier = self.applier.take().ok_or("applier lost")?;
        let (applier, result) = run_in_netns(&self.ns.path(), move || {
            let start = Instant::now();
            let mut report = strait_agent::apply::Report::default();
            let r = applier
                .sync_nft(&plan.nft, full, &mut report)
                .map(|()| (start.elapsed(), report.changes));
            (applier, r)
        })
        .map_err(|e| e.to_string())?;
        self.applier = Some(applier);
        let (apply, mut report) = result.map_err(|e| e.to_string())?;
        report.push(format!(
            "compile: {} Services built, {} from the cache",
            used.built, used.reused
        ));
        Ok(StraitTimes {
            compile,
            apply,
            report,
        })
    }
}

/// Peak RSS (MiB) of `strait agent --once` syncing `n` Services into a
/// fresh namespace: the agent's own memory (VmHWM; nft, its child, is not
/// counted).
fn agent_peak_rss_mib(n: usize) -> Result<f64, String> {
    let dir = std::env::temp_dir().join(format!("strait-bench-rss-{}", std::process::id()));
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).map_err(|e| e.to_string())?;
    let mut text = String::new();
    for obj in snapshot(n, Change::None).objects() {
        let value = match &obj {
            Object::Node(o) => serde_json::to_value(o),
            Object::Service(o) => serde_json::to_value(o),
            Object::EndpointSlice(o) => serde_json::to_value(o),
            _ => continue,
        }
        .map_err(|e| e.to_string())?;
        text.push_str(&serde_json::to_string(&value).map_err(|e| e.to_string())?);
        text.push_str("\n---\n");
    }
    std::fs::write(manifests.join("all.yaml"), text).map_err(|e| e.to_string())?;
    std::fs::write(
        dir.join("agent.yaml"),
        "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\nbackend: host-gw\n",
    )
    .map_err(|e| e.to_string())?;
    let ns = Netns::unique("stbrss").map_err(|e| e.to_string())?;
    // The node's underlay address lives on a bridge (this kernel has no dummy).
    for argv in [
        &["ip", "link", "add", "eth0", "type", "bridge"][..],
        &["ip", "addr", "add", "10.0.0.1/16", "dev", "eth0"],
        &["ip", "link", "set", "eth0", "up"],
    ] {
        ns.exec_ok(argv).map_err(|e| e.to_string())?;
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let (dir2, path) = (dir.clone(), ns.path());
    let result = run_in_netns(&path, move || -> Result<f64, String> {
        let child = Command::new(exe)
            .args([
                "agent",
                "--once",
                "--node-name",
                "node-1",
                "--listen",
                "127.0.0.1:0",
            ])
            .arg("--config")
            .arg(dir2.join("agent.yaml"))
            .arg("--manifests")
            .arg(dir2.join("manifests"))
            .arg("--node-file")
            .arg(dir2.join("node.json"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        // VmHWM of the agent's own (post-exec) address space, polled until
        // it exits: wait4's ru_maxrss would include the forked copy of this
        // (large) benchmark process from before the exec.
        let mut child = child;
        let status_file = format!("/proc/{}/status", child.id());
        let mut peak_kib = 0u64;
        loop {
            if let Ok(text) = std::fs::read_to_string(&status_file) {
                if let Some(kib) = text
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    peak_kib = peak_kib.max(kib);
                }
            }
            match child.try_wait().map_err(|e| e.to_string())? {
                Some(st) if st.success() => break,
                Some(st) => return Err(format!("strait agent --once failed: {st}")),
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        Ok(peak_kib as f64 / 1024.0)
    })
    .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// `strait bench services --rss-only N`: just [`agent_peak_rss_mib`].
pub fn rss_only(n: usize) -> Result<(), String> {
    let rss = agent_peak_rss_mib(n)?;
    println!("Agent peak RSS syncing {n} Services x 10 endpoints (`strait agent --once`, nft not counted): {rss:.1} MiB");
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Rounds of the connection-rate comparison.
const RATE_ROUNDS: usize = 120;
/// One window of the connection-rate comparison.
const RATE_WINDOW: Duration = Duration::from_millis(250);
/// How many times the one-endpoint change is measured (there and back).
const CHANGE_ROUNDS: usize = 5;
/// The pause before each measured change.
const SETTLE: Duration = Duration::from_millis(300);

pub fn run(sizes: &[usize], write: Option<PathBuf>) -> Result<(), String> {
    // The agent's allocator policy, so the compile runs as in the agent.
    strait_agent::malloc_policy::return_large_allocations();
    let cfg = AgentConfig::from_yaml(
        "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\nbackend: host-gw\n",
    )
    .map_err(|e| e.to_string())?;
    let local = LocalNode {
        name: "node-1".into(),
        underlay_ip: "10.0.0.1".parse().map_err(|e| format!("{e}"))?,
        underlay_prefix: 16,
        underlay_dev: "eth0".into(),
        underlay_mtu: 1500,
    };
    let mut table = String::from(
        "| Services (x10 endpoints) | strait full sync, no table yet (compile + apply) | strait full resync, table present (compile + apply) | kube-proxy layout: iptables-restore | ratio (first sync; resync) | strait one endpoint change, median (compile + apply) | a Service moves to a new endpoint-count group | iptables-restore --noflush of one service |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut rates = None;
    let mut incremental_reports = Vec::new();
    for &n in sizes {
        eprintln!("bench: {n} services ...");
        let snap = snapshot(n, Change::None);
        // The changed snapshots share every unchanged object with `snap`,
        // as the agent's sources hand them over (a watcher replaces what an
        // event names; the manifest store's next read is matched against
        // the last, `Snapshot::share_unchanged`).
        let mut moved = snapshot(n, Change::MoveEndpoint);
        moved.share_unchanged(&snap);
        let mut grown = snapshot(n, Change::AddEndpoint);
        grown.share_unchanged(&snap);
        let mut strait = NsApplier::new("stbsvc")?;
        let ns_ipt = Netns::unique("stbsvc").map_err(|e| e.to_string())?;
        let full = strait.sync(&cfg, &local, &snap, true)?;
        // One endpoint moves and moves back, CHANGE_ROUNDS times: the
        // median change (one sample is at the mercy of this machine).
        let mut changes = Vec::new();
        for _ in 0..CHANGE_ROUNDS {
            // A change arrives after the last sync has settled (the
            // applier frees the table it replaced on a thread of its own).
            std::thread::sleep(SETTLE);
            changes.push(strait.sync(&cfg, &local, &moved, false)?);
            std::thread::sleep(SETTLE);
            strait.sync(&cfg, &local, &snap, false)?;
        }
        changes.sort_by_key(|c| c.total());
        let (fastest, slowest) = (changes[0].total(), changes[changes.len() - 1].total());
        let one = changes.swap_remove(changes.len() / 2);
        let group = strait.sync(&cfg, &local, &grown, false)?;
        // Back to the plain Services (the new group goes again), so the
        // connection rate below goes through the 100,000-element map.
        let back = strait.sync(&cfg, &local, &snap, false)?;
        // The periodic resync: the whole table again, atomically, over the
        // one the kernel holds.
        let resync = strait.sync(&cfg, &local, &snap, true)?;
        incremental_reports.push(format!(
            "{n}: first sync: {}; endpoint change: {}; new group: {}; group removed: {}; resync: {}",
            full.report.join(", "),
            one.report.join(", "),
            group.report.join(", "),
            back.report.join(", "),
            resync.report.join(", ")
        ));
        let ipt_full = restore(&ns_ipt, iptables_ruleset(n, None, false), false)?;
        let ipt_one = restore(&ns_ipt, iptables_ruleset(n, Some(n - 1), true), true)?;
        let _ = writeln!(
            table,
            "| {n} | {} ({} + {}) | {} ({} + {}) | {} | {:.1}x; {:.1}x | {} ({} + {}); {CHANGE_ROUNDS} runs {}-{} | {} ({} + {}) | {} |",
            ms(full.total()),
            ms(full.compile),
            ms(full.apply),
            ms(resync.total()),
            ms(resync.compile),
            ms(resync.apply),
            ms(ipt_full),
            ipt_full.as_secs_f64() / full.total().as_secs_f64(),
            ipt_full.as_secs_f64() / resync.total().as_secs_f64(),
            ms(one.total()),
            ms(one.compile),
            ms(one.apply),
            ms(fastest).trim_end_matches(" ms"),
            ms(slowest),
            ms(group.total()),
            ms(group.compile),
            ms(group.apply),
            ms(ipt_one)
        );
        // At 10,000 (the target), or at the largest size asked for.
        if n == 10_000 || (n == sizes[sizes.len() - 1] && !sizes.contains(&10_000)) {
            eprintln!("bench: connection rate, {n} Services vs one ...");
            let mut single = NsApplier::new("stbsvc")?;
            single.sync(
                &cfg,
                &local,
                &snapshot_of([n - 1].into_iter(), n - 1, Change::None),
                true,
            )?;
            let endpoints: Vec<std::net::Ipv4Addr> = (0..10)
                .map(|e| endpoint_ip(n - 1, e).parse().expect("an address"))
                .collect();
            conn_rate::prepare(&strait.ns, &endpoints, 8080)?;
            conn_rate::prepare(&single.ns, &endpoints, 8080)?;
            let target = std::net::SocketAddrV4::new(
                cluster_ip(n - 1).parse().map_err(|e| format!("{e}"))?,
                80,
            );
            let comparison =
                conn_rate::compare(&strait.ns, &single.ns, target, RATE_ROUNDS, RATE_WINDOW)?;
            rates = Some((n, comparison));
        }
    }
    if let Some((rate_n, c)) = rates {
        let ratios: Vec<String> = c
            .cpu_ratios
            .iter()
            .map(|r| format!("{:.0}%", r * 100.0))
            .collect();
        let _ = writeln!(
            table,
            "\nNew TCP connections to the last Service's ClusterIP (a node process; endpoints local; {RATE_ROUNDS} rounds of two back-to-back {} ms windows, \
             order alternating), {rate_n} Services vs that Service alone, per second of the client's CPU time: median of the per-round ratios \
             {:+.1}% (target within 10%; rounds: {}); medians {:.0} vs {:.0}. Per second of wall time: {:+.1}% ({:.0} vs {:.0}, shared machine).",
            RATE_WINDOW.as_millis(),
            (c.cpu_ratio - 1.0) * 100.0,
            ratios.join(", "),
            c.a.cpu,
            c.b.cpu,
            (c.wall_ratio - 1.0) * 100.0,
            c.a.wall,
            c.b.wall
        );
    }
    eprintln!("bench: agent peak memory at 10,000 services ...");
    let rss = agent_peak_rss_mib(10_000)?;
    let _ = writeln!(table, "\nAgent peak RSS syncing 10,000 Services x 10 endpoints (`strait agent --once`, nft not counted): {rss:.0} MiB (target under 64 MiB).");
    let summary = format!("Targets: a full sync of 10,000 Services under 1 s and at least 10x faster than iptables-restore; one change under 50 ms. \
        Both strait columns are the agent's own path once its snapshot holds the change: compile the whole Plan, then its applier \
        (`Applier::sync_nft`: diff the table against the last one, which it shares with the last Plan, adjust the stamp by the changed \
        elements, send one transaction). Both full syncs (the first, with no table in the kernel, and the periodic resync over the \
        table the kernel holds) take one path: nft compiles the skeleton (chains, rules, declarations) into a dormant build table, \
        the agent reads it back through netlink and writes it under the real name, with every set and map element and the build \
        table's deletion, as one netlink transaction (strait-agent `nft_load`). An endpoint change is element updates and the \
        new stamp, written by the agent as one netlink batch on a socket it keeps open (strait-agent `nft_update`); a Service \
        moving to an endpoint count no other Service has also needs the new group's map and chain, and goes through `nft -f`. \
        The one-change column is the median of {CHANGE_ROUNDS} changes (an endpoint moves and moves back), with their range. \
        The bench process uses the agent's allocator policy (strait-agent `malloc_policy`). \
        What the applier reported: {}.", incremental_reports.join("; "));
    println!("{table}\n{summary}");
    if let Some(file) = write {
        let body = format!(
            "## Services: sync time at scale vs kube-proxy's iptables layout\n\n\
             Command: `sudo ./scripts/bench services` (= `strait bench services --write docs/benchmarks.md`, release build)\n\n\
             Machine: {}\n\n{table}\n{summary}\n\n\
             Each side loads into a fresh namespace of its own. The iptables side is the KUBE-SERVICES / KUBE-SVC-* / KUBE-SEP-* \
             layout kube-proxy's iptables mode writes (one rule per service in KUBE-SERVICES, a statistic-mode rule per endpoint, \
             a mark and a DNAT rule per endpoint chain), loaded with this machine's `iptables-restore` ({}).",
            machine(),
            iptables_version()
        );
        write_section(&file, "services", &body)?;
        eprintln!("bench: wrote {}", file.display());
    }
    Ok(())
}

fn iptables_version() -> String {
    Command::new("iptables-restore")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "unknown version".into())
}
