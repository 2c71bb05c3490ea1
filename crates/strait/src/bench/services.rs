//! Service proxy scale benchmark against kube-proxy's iptables layout, in
//! the same run, for N Services x 10 endpoints:
//!
//! - full sync: strait = compile the Plan + render + one `nft -f`
//!   transaction; kube-proxy layout = one `iptables-restore` of
//!   KUBE-SERVICES / KUBE-SVC-* / KUBE-SEP-* (written by the generator
//!   below, the shape kube-proxy's iptables mode writes).
//! - one endpoint change: strait = what the agent does today (compile,
//!   render, one transaction replacing the table); kube-proxy layout =
//!   `iptables-restore --noflush` of the changed service's chains only.
//!
//! Each side loads into a fresh network namespace of its own.

use super::report::{machine, write_section};
use serde_json::json;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
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

fn snapshot(n: usize, changed: bool) -> Snapshot {
    let mut objects = Vec::with_capacity(2 * n + 101);
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
    for s in 0..n {
        let name = format!("svc-{s}");
        objects.push(Object::Service(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "bench"},
                "spec": {"clusterIP": cluster_ip(s), "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}
            }))
            .expect("service"),
        ));
        let eps: Vec<serde_json::Value> = (0..10)
            .map(|e| {
                // The "change": the last service's first endpoint moves.
                let ip = if changed && s == n - 1 && e == 0 {
                    "10.42.250.250".to_owned()
                } else {
                    endpoint_ip(s, e)
                };
                json!({"addresses": [ip], "conditions": {"ready": true}})
            })
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

struct StraitTimes {
    compile: Duration,
    render: Duration,
    apply: Duration,
}

/// One sync as the agent does it: compile, then either the element diff
/// against `previous` (when only elements changed) or the whole table.
fn strait_sync(
    netns: &Netns,
    cfg: &AgentConfig,
    local: &LocalNode,
    snap: &Snapshot,
    previous: Option<&strait_plan::nft::Table>,
) -> Result<(StraitTimes, strait_plan::nft::Table), String> {
    let start = Instant::now();
    let plan = strait_plan::compile(cfg, local, snap).map_err(|e| e.to_string())?;
    let compile = start.elapsed();
    let start = Instant::now();
    let text = match previous.and_then(|old| strait_plan::nft::incremental::changes(old, &plan.nft))
    {
        Some(diff) => diff,
        None => strait_plan::nft::render(&plan.nft),
    };
    let render = start.elapsed();
    let apply = run_in_netns(&netns.path(), move || -> Result<Duration, String> {
        let start = Instant::now();
        strait_kernel::nft::apply(&text).map_err(|e| e.to_string())?;
        Ok(start.elapsed())
    })
    .map_err(|e| e.to_string())??;
    Ok((
        StraitTimes {
            compile,
            render,
            apply,
        },
        plan.nft,
    ))
}

/// Peak RSS (MiB) of `strait agent --once` syncing `n` Services into a
/// fresh namespace: the agent's own memory (VmHWM; nft, its child, is not
/// counted).
fn agent_peak_rss_mib(n: usize) -> Result<f64, String> {
    let dir = std::env::temp_dir().join(format!("strait-bench-rss-{}", std::process::id()));
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).map_err(|e| e.to_string())?;
    let mut text = String::new();
    for obj in snapshot(n, false).objects() {
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

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

pub fn run(sizes: &[usize], write: Option<PathBuf>) -> Result<(), String> {
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
        "| Services (x10 endpoints) | strait full sync (compile + render + nft) | kube-proxy layout: iptables-restore | ratio | strait one endpoint change (compile + diff + nft) | iptables-restore --noflush of one service |\n|---|---|---|---|---|---|\n",
    );
    let mut notes = Vec::new();
    for &n in sizes {
        eprintln!("bench: {n} services ...");
        let snap = snapshot(n, false);
        let changed = snapshot(n, true);
        let ns_strait = Netns::unique("stbsvc").map_err(|e| e.to_string())?;
        let ns_ipt = Netns::unique("stbsvc").map_err(|e| e.to_string())?;
        let (full, loaded) = strait_sync(&ns_strait, &cfg, &local, &snap, None)?;
        let (one, _) = strait_sync(&ns_strait, &cfg, &local, &changed, Some(&loaded))?;
        let ipt_full = restore(&ns_ipt, iptables_ruleset(n, None, false), false)?;
        let ipt_one = restore(&ns_ipt, iptables_ruleset(n, Some(n - 1), true), true)?;
        let strait_total = full.compile + full.render + full.apply;
        let one_total = one.compile + one.render + one.apply;
        let _ = writeln!(
            table,
            "| {n} | {} ({} + {} + {}) | {} | {:.1}x | {} | {} |",
            ms(strait_total),
            ms(full.compile),
            ms(full.render),
            ms(full.apply),
            ms(ipt_full),
            ipt_full.as_secs_f64() / strait_total.as_secs_f64(),
            ms(one_total),
            ms(ipt_one)
        );
        notes.push(n);
    }
    eprintln!("bench: agent peak memory at 10,000 services ...");
    let rss = agent_peak_rss_mib(10_000)?;
    let _ = writeln!(table, "\nAgent peak RSS syncing 10,000 Services x 10 endpoints (`strait agent --once`, nft not counted): {rss:.0} MiB (target under 64 MiB).");
    let summary = "Targets: a full sync of 10,000 Services under 1 s and at least 10x faster than iptables-restore; one change under 50 ms. \
        A full sync compiles the whole Plan and replaces the table in one transaction; one endpoint change is what the agent does: \
        compile, diff the tables, send only the changed map elements (one transaction).";
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
