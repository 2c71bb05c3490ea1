//! NetworkPolicy benchmark, in one run:
//!
//! - Compile + apply at scale: a generated cluster (50 nodes x 100 pods, 50
//!   namespaces, N policies mixing pod, namespace and ipBlock peers, named
//!   ports and port ranges, ingress and egress), compiled for one node with
//!   `strait_plan::compile`, rendered and loaded with one `nft -f` into a
//!   fresh namespace; then one pod label change the way the agent syncs it
//!   (compile, diff, one transaction).
//! - New-connection rate: in a lab, TCP connect/accept/close from a client
//!   pod to a server pod selected by N policies and to one selected by none
//!   (same node, same path otherwise), both at once in each round (so
//!   machine noise hits both alike), the median per-round ratio reported.
//!   Before measuring, a pod no policy admits must be blocked from the
//!   selected server, so the numbers are of a path that is really policed.

use super::report::{machine, write_section};
use crate::plugins::strait_cni_dir;
use serde_json::json;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strait_lab::{probe, run_in_netns, Binaries, Cluster, LabPaths, Netns, Proto, Topology};
use strait_model::{AgentConfig, Object, Snapshot};
use strait_plan::LocalNode;

const NODES: usize = 50;
const NAMESPACES: usize = 50;

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value, what: &str) -> T {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("generated {what}: {e}"))
}

/// The generated cluster. `relabel` moves one pod of the local node to
/// another app label (the "one change"): pod 1, selected by five allow
/// policies before (app a1) and by none after.
pub fn snapshot(policies: usize, pods: usize, relabel: bool) -> Snapshot {
    let mut objects = Vec::new();
    for n in 0..NODES {
        objects.push(Object::Node(obj(
            json!({
                "metadata": {"name": format!("node-{n}")},
                "spec": {"podCIDR": format!("10.42.{n}.0/24")},
                "status": {"addresses": [{"type": "InternalIP", "address": format!("10.0.{}.{}", n / 250, 1 + n % 250)}]}
            }),
            "node",
        )));
    }
    for j in 0..NAMESPACES {
        objects.push(Object::Namespace(obj(
            json!({"metadata": {"name": format!("ns-{j}"), "labels": {
                "team": format!("t{}", j % 5),
                "env": if j % 2 == 0 { "prod" } else { "dev" }
            }}}),
            "namespace",
        )));
    }
    let per_node = pods.div_ceil(NODES).max(1);
    for k in 0..pods {
        let (node, slot) = (k / per_node, k % per_node);
        let app = if relabel && k == 1 {
            "moved".to_owned()
        } else {
            format!("a{}", k % 200)
        };
        let tier = ["front", "back", "db"][k % 3];
        objects.push(Object::Pod(obj(
            json!({
                "metadata": {"name": format!("p-{k}"), "namespace": format!("ns-{}", k % NAMESPACES),
                    "labels": {"app": app, "tier": tier}},
                "spec": {"nodeName": format!("node-{node}"), "containers": [{"name": "c", "image": "x",
                    "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}]}]},
                "status": {"phase": "Running", "podIP": format!("10.42.{}.{}", node % 250, 2 + slot % 250),
                    "conditions": [{"type": "Ready", "status": "True"}]}
            }),
            "pod",
        )));
    }
    for m in 0..policies {
        let spec = if m % 10 == 0 {
            // A default deny of the namespace.
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
        } else {
            json!({
                "podSelector": {"matchLabels": {"app": format!("a{}", m % 200)}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{
                    "from": [
                        {"podSelector": {"matchLabels": {"tier": "front"}},
                         "namespaceSelector": {"matchLabels": {"team": format!("t{}", m % 5)}}},
                        {"ipBlock": {"cidr": format!("192.168.{}.0/24", m % 250),
                                     "except": [format!("192.168.{}.128/25", m % 250)]}}
                    ],
                    "ports": [{"port": "http"}, {"port": 9000, "endPort": 9100, "protocol": "TCP"}]
                }],
                "egress": [{
                    "to": [{"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}}],
                    "ports": [{"port": 5432, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]
                }]
            })
        };
        objects.push(Object::NetworkPolicy(obj(
            json!({"metadata": {"name": format!("np-{m}"), "namespace": format!("ns-{}", m % NAMESPACES)}, "spec": spec}),
            "policy",
        )));
    }
    Snapshot::from_objects(objects)
}

struct Sync {
    compile: Duration,
    render: Duration,
    apply: Duration,
    table: strait_plan::nft::Table,
}

/// One sync as the agent does it: compile, then the element diff against
/// `previous` when only elements changed, else the whole table.
fn sync(
    ns: &Netns,
    cfg: &AgentConfig,
    local: &LocalNode,
    snap: &Snapshot,
    previous: Option<&strait_plan::nft::Table>,
) -> Result<Sync, String> {
    let t = Instant::now();
    let plan = strait_plan::compile(cfg, local, snap).map_err(|e| e.to_string())?;
    let compile = t.elapsed();
    let t = Instant::now();
    let text = match previous.and_then(|old| strait_plan::nft::incremental::changes(old, &plan.nft))
    {
        Some(diff) => diff,
        None => strait_plan::nft::render(&plan.nft),
    };
    let render = t.elapsed();
    let apply = run_in_netns(&ns.path(), move || -> Result<Duration, String> {
        let t = Instant::now();
        strait_kernel::nft::apply(&text).map_err(|e| e.to_string())?;
        Ok(t.elapsed())
    })
    .map_err(|e| e.to_string())??;
    Ok(Sync {
        compile,
        render,
        apply,
        table: std::sync::Arc::unwrap_or_clone(plan.nft),
    })
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn scale(policies: usize, pods: usize) -> Result<String, String> {
    let cfg = AgentConfig::from_yaml(
        "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\nbackend: host-gw\n",
    )
    .map_err(|e| e.to_string())?;
    let local = LocalNode {
        name: "node-0".into(),
        underlay_ip: "10.0.0.1".parse().map_err(|e| format!("{e}"))?,
        underlay_prefix: 16,
        underlay_dev: "eth0".into(),
        underlay_mtu: 1500,
    };
    let ns = Netns::unique("stbpol").map_err(|e| e.to_string())?;
    for argv in [
        &["ip", "link", "add", "eth0", "type", "bridge"][..],
        &["ip", "addr", "add", "10.0.0.1/16", "dev", "eth0"],
        &["ip", "link", "set", "eth0", "up"],
    ] {
        ns.exec_ok(argv).map_err(|e| e.to_string())?;
    }
    eprintln!("bench: compile + apply {policies} policies over {pods} pods ...");
    let full = sync(&ns, &cfg, &local, &snapshot(policies, pods, false), None)?;
    let one = sync(
        &ns,
        &cfg,
        &local,
        &snapshot(policies, pods, true),
        Some(&full.table),
    )?;
    let total = full.compile + full.render + full.apply;
    let one_total = one.compile + one.render + one.apply;
    let kib = strait_plan::nft::render(&full.table).len() as f64 / 1024.0;
    Ok(format!(
        "| {policies} policies over {pods} pods ({NODES} nodes, {NAMESPACES} namespaces) | {} ({} compile + {} render + {} nft) | {} ({} + {} + {}) | {kib:.0} KiB |",
        ms(total),
        ms(full.compile),
        ms(full.render),
        ms(full.apply),
        ms(one_total),
        ms(one.compile),
        ms(one.render),
        ms(one.apply),
    ))
}

/// Accepts connections on `listener` until `stop`: one line, then close.
fn serve(listener: TcpListener, stop: Arc<AtomicBool>) {
    // `run` wakes the blocked accept() with one last connection after
    // setting `stop`.
    while !stop.load(Ordering::Relaxed) {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.write_all(b"ok\n");
        }
    }
}

/// Makes `close` send a reset (SO_LINGER 0). At tens of thousands of
/// connections a second the client's ports come round again within a
/// second or two; a reset leaves no TIME_WAIT socket on the server and only
/// a short-lived CLOSE conntrack entry, so a reused port starts a clean
/// new flow instead of now and then stalling a SYN for a second.
fn reset_on_close(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a live, sized linger.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Connections per second from inside `client` to `to` for `secs`: connect,
/// read the line up to the server's close, close with a reset.
fn rate(client: &Path, to: SocketAddr, secs: f64) -> Result<f64, String> {
    run_in_netns(client, move || -> Result<f64, String> {
        let t = Instant::now();
        let mut n = 0u64;
        let mut buf = [0u8; 16];
        // At least one connection (a zero-second run wakes a server).
        loop {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))
                .map_err(|e| format!("connect {to}: {e}"))?;
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            while matches!(s.read(&mut buf), Ok(k) if k > 0) {}
            reset_on_close(&s);
            n += 1;
            if t.elapsed().as_secs_f64() >= secs {
                break;
            }
        }
        Ok(n as f64 / t.elapsed().as_secs_f64())
    })
    .map_err(|e| e.to_string())?
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn connection_rate(
    c: &Cluster,
    policies: usize,
    secs: f64,
    rounds: usize,
) -> Result<(String, String), String> {
    let lab = "benchpol";
    let mut topo = Topology::default_lab();
    topo.name = lab.into();
    c.up(&topo, Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let pod = |name: &str, labels: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: bench, labels: {{{labels}}}}}\nspec: {{nodeName: node-1, containers: [{{name: c, image: x}}]}}\n---\n")
    };
    let pods = pod("client", "app: client")
        + &pod("intruder", "app: intruder")
        + &pod("selected", "role: selected")
        + &pod("unselected", "role: other");
    c.apply(lab, &pods, "bench").map_err(|e| e.to_string())?;
    let rec = |n: &str| {
        c.pod_record(lab, "bench", n)
            .ok_or_else(|| format!("no pod {n}"))
    };
    let (client, intruder, sel, unsel) = (
        rec("client")?,
        rec("intruder")?,
        rec("selected")?,
        rec("unselected")?,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut servers = Vec::new();
    for r in [&sel, &unsel] {
        let l = run_in_netns(&PathBuf::from(format!("/run/netns/{}", r.netns)), || {
            TcpListener::bind("0.0.0.0:8080")
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("bind 8080 in {}: {e}", r.name))?;
        let stop = stop.clone();
        servers.push(std::thread::spawn(move || serve(l, stop)));
    }
    // N policies select the server; only the last admits the client.
    let mut yaml = String::new();
    for i in 0..policies {
        let from = if i + 1 == policies {
            "{podSelector: {matchLabels: {app: client}}}".to_owned()
        } else {
            format!("{{ipBlock: {{cidr: 10.200.{}.{}/32}}}}", i / 250, i % 250)
        };
        let _ = write!(
            yaml,
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np-{i}, namespace: bench}}\nspec:\n  podSelector: {{matchLabels: {{role: selected}}}}\n  ingress:\n  - from: [{from}]\n    ports: [{{port: 8080, protocol: TCP}}]\n---\n"
        );
    }
    let written = Instant::now();
    c.apply(lab, &yaml, "bench-policies")
        .map_err(|e| e.to_string())?;
    let path = |ns: &str| PathBuf::from(format!("/run/netns/{ns}"));
    let sel_addr: SocketAddr = format!("{}:8080", sel.ip)
        .parse()
        .map_err(|e| format!("{e}"))?;
    let unsel_addr: SocketAddr = format!("{}:8080", unsel.ip)
        .parse()
        .map_err(|e| format!("{e}"))?;
    // The policies are in force once the intruder is turned away.
    let mut enforced = None;
    while written.elapsed() < Duration::from_secs(30) {
        let r = probe(
            &path(&intruder.netns),
            sel_addr.ip(),
            8080,
            Proto::Tcp,
            Duration::from_millis(300),
        )
        .map_err(|e| e.to_string())?;
        if r.answer().is_none() {
            enforced = Some(written.elapsed());
            break;
        }
    }
    // ... and the client, admitted by the last policy, gets through.
    let admitted = enforced.is_some()
        && probe(
            &path(&client.netns),
            sel_addr.ip(),
            8080,
            Proto::Tcp,
            Duration::from_millis(1000),
        )
        .map_err(|e| e.to_string())?
        .answer()
        .is_some();
    let mut with = Vec::new();
    let mut without = Vec::new();
    let mut measured = Ok(());
    if admitted {
        for _ in 0..rounds {
            // Both servers at once, one client thread each: whatever else
            // the machine does in that second slows both alike, so the
            // per-round ratio is what compares.
            let (cp, cp2) = (path(&client.netns), path(&client.netns));
            let a = std::thread::spawn(move || rate(&cp, sel_addr, secs));
            let b = std::thread::spawn(move || rate(&cp2, unsel_addr, secs));
            let joined = |h: std::thread::JoinHandle<Result<f64, String>>| {
                h.join()
                    .unwrap_or_else(|_| Err("rate thread panicked".into()))
            };
            match (joined(a), joined(b)) {
                (Ok(a), Ok(b)) => {
                    with.push(a);
                    without.push(b);
                }
                (Err(e), _) | (_, Err(e)) => {
                    measured = Err(e);
                    break;
                }
            }
        }
    }
    // Stop the servers: wake each blocked accept() from inside its own pod
    // (loopback, which no policy sees).
    stop.store(true, Ordering::Relaxed);
    for r in [&sel, &unsel] {
        let _ = rate(
            &path(&r.netns),
            "127.0.0.1:8080".parse().expect("address"),
            0.0,
        );
    }
    for s in servers {
        let _ = s.join();
    }
    measured?;
    let last_failure = || {
        let log = std::fs::read_to_string(c.node_dir(lab, "node-1").join("agent.log"))
            .unwrap_or_default();
        log.lines()
            .rev()
            .find(|l| l.contains("sync failed"))
            .map(|l| l.chars().take(300).collect::<String>())
            .unwrap_or_else(|| "no failed sync in the agent's log".into())
    };
    let Some(enforced) = enforced else {
        return Err(format!(
            "{policies} policies were not enforced within 30 s (pod bench/intruder still reaches the selected server); node-1's agent: {}",
            last_failure()
        ));
    };
    if !admitted {
        return Err(format!(
            "with {policies} policies the client admitted by the last one cannot connect to the selected server; node-1's agent: {}",
            last_failure()
        ));
    }
    let ratios: Vec<f64> = with.iter().zip(&without).map(|(a, b)| a / b).collect();
    let ratio = median(&mut ratios.clone());
    let (mw, mo) = (median(&mut with.clone()), median(&mut without.clone()));
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let table = format!(
        "| server pod | median connections/s | samples |\n|---|---|---|\n\
         | selected by {policies} policies (the last admits the client) | {mw:.0} | {} |\n\
         | selected by none | {mo:.0} | {} |",
        list(&with),
        list(&without)
    );
    let summary = format!(
        "With {policies} policies selecting the server the new-connection rate is {:.1}% of the unselected server's \
         (median of the per-round ratios {}; target: within 10%). \
         The {policies} policies were enforced {:.2} s after they were written (an unadmitted pod turned away).",
        100.0 * ratio,
        ratios
            .iter()
            .map(|r| format!("{:.0}%", 100.0 * r))
            .collect::<Vec<_>>()
            .join(", "),
        enforced.as_secs_f64()
    );
    Ok((table, summary))
}

pub fn run(
    policies: usize,
    pods: usize,
    secs: f64,
    rounds: usize,
    write: Option<PathBuf>,
) -> Result<(), String> {
    if policies == 0 || pods == 0 || rounds == 0 || secs <= 0.0 {
        return Err(format!(
            "--policies, --pods, --rounds and --seconds must be positive; got {policies}, {pods}, {rounds}, {secs}"
        ));
    }
    let scale_row = scale(policies, pods)?;
    let dir = strait_cni_dir(None)?;
    let root = PathBuf::from(format!("/run/strait-bench-policy-{}", std::process::id()));
    let c = Cluster::new(LabPaths::new(&root), Binaries::in_dir(&dir));
    eprintln!("bench: new-connection rate through a pod selected by {policies} policies ...");
    let rate = connection_rate(&c, policies, secs, rounds);
    let _ = c.fabric.down("benchpol");
    let _ = std::fs::remove_dir_all(&root);
    // A failed rate measurement is reported in the section, not hidden.
    let (rate_table, rate_summary) = match rate {
        Ok(r) => r,
        Err(e) => (
            "New-connection rate: not measured.".to_owned(),
            format!("Why: {e}"),
        ),
    };
    let table = format!(
        "| generated cluster | full sync (compile + render + nft) | one pod label change: out of five policies (compile + diff + nft) | nft input of the full sync |\n|---|---|---|---|\n{scale_row}"
    );
    let summary = "Target: compile + apply of 1,000 policies over 5,000 pods under 2 s.";
    println!("{table}\n\n{summary}\n\n{rate_table}\n\n{rate_summary}");
    if let Some(file) = write {
        let body = format!(
            "## NetworkPolicy: compile + apply at scale, new-connection rate\n\n\
             Command: `sudo ./scripts/bench policy` (= `strait bench policy --policies {policies} --pods {pods} --seconds {secs} --rounds {rounds} --write docs/benchmarks.md`, release build)\n\n\
             Machine: {}\n\n{table}\n\n{summary}\n\n{rate_table}\n\n{rate_summary}\n\n\
             The generated cluster: {NODES} nodes with {} pods each over {NAMESPACES} namespaces; every tenth policy a default deny of its namespace, \
             the others select an app label and allow ingress from a pod AND namespace selector and an ipBlock with except, on a named port and a port range, \
             and egress to namespaces chosen by matchExpressions on two ports; compiled for node-0 and loaded into a fresh namespace. \
             The rate: a client pod on node-1 connecting to two server pods on node-1 at the same time, one client thread per server \
             (an in-process accept loop per server that writes one line and closes; the client then closes with a reset, so reused client ports meet no TIME_WAIT), {rounds} rounds of {secs} s; \
             samples are listed in round order, so the i-th of each row ran together.",
            machine(),
            pods.div_ceil(NODES)
        );
        write_section(&file, "policy", &body)?;
        eprintln!("bench: wrote {}", file.display());
    }
    Ok(())
}
