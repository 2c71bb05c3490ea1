//! The NetworkPolicy truth-table harness, modelled on the upstream
//! Kubernetes netpol e2e model: namespaces x, y, z (labelled `ns: <name>`;
//! the lab adds `kubernetes.io/metadata.name`), pods a, b, c in each
//! (labelled `pod: <name>`), every pod serving TCP and UDP (and SCTP where
//! the kernel has it) on 80 and 81 (named `serve-80-tcp`, ...), spread over
//! both nodes. One lab per backend
//! is reused across cases: a case deletes the previous case's objects,
//! applies its own, waits until every agent has synced twice since (so
//! the kernel holds what the manifests say), then runs
//! `strait lab check -f <matrix>` and keeps every difference.
//!
//! Expected tables are written by hand from the Kubernetes semantics with
//! [`Reach`], never derived from what strait does.
#![allow(dead_code)]

use crate::common::{self, Lab};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use strait_lab::topology::Backend;
use strait_lab::Target;

pub const NAMESPACES: [&str; 3] = ["x", "y", "z"];
pub const PODS: [&str; 3] = ["a", "b", "c"];
pub const PORTS: [u16; 2] = [80, 81];
/// TCP and UDP, and SCTP where the kernel has it (as upstream adds SCTP
/// servers when the cluster supports them).
pub fn protos() -> Vec<&'static str> {
    if strait_lab::echo::sctp_supported() {
        vec!["tcp", "udp", "sctp"]
    } else {
        vec!["tcp", "udp"]
    }
}

/// A blocked probe is a dropped one: it waits this long for an answer.
const PROBE_TIMEOUT_MS: u64 = 400;
const PROBE_PARALLEL: usize = 64;
/// Longest wait for the agents to sync or a matrix to converge (generous:
/// a loaded 2-core machine can stall an agent for seconds). Not a
/// pass/fail threshold on speed: the time taken is printed.
const DEADLINE: Duration = Duration::from_secs(45);

/// `x/a` -> `pod/x/a`.
pub fn pod(short: &str) -> String {
    format!("pod/{short}")
}

/// Every model pod, `pod/x/a` ... `pod/z/c`.
pub fn all_pods() -> Vec<String> {
    NAMESPACES
        .iter()
        .flat_map(|ns| PODS.iter().map(move |p| format!("pod/{ns}/{p}")))
        .collect()
}

/// The node a model pod runs on: alternating, so each namespace has pods
/// on both nodes and every pair of nodes carries traffic.
pub fn node_of(ns: &str, name: &str) -> &'static str {
    let i = NAMESPACES.iter().position(|n| *n == ns).unwrap_or(0) * 3
        + PODS.iter().position(|p| *p == name).unwrap_or(0);
    if i % 2 == 0 {
        "node-1"
    } else {
        "node-2"
    }
}

/// One cell of a truth table.
pub struct Cell<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub port: u16,
    pub proto: &'a str,
}

/// An expected truth table (upstream's Reachability): start from a
/// default, then overlay what the policies imply.
#[derive(Clone)]
pub struct Reach {
    pub from: Vec<String>,
    pub to: Vec<String>,
    pub ports: Vec<u16>,
    pub protos: Vec<String>,
    cells: BTreeMap<(String, String, u16, String), bool>,
}

impl Reach {
    pub fn new(from: Vec<String>, to: Vec<String>, ports: &[u16], protos: &[&str]) -> Self {
        let mut cells = BTreeMap::new();
        for f in &from {
            for t in &to {
                for port in ports {
                    for proto in protos {
                        cells.insert((f.clone(), t.clone(), *port, proto.to_string()), true);
                    }
                }
            }
        }
        Reach {
            from,
            to,
            ports: ports.to_vec(),
            protos: protos.iter().map(|p| p.to_string()).collect(),
            cells,
        }
    }

    /// The 9x9 pod matrix on 80/81 over [`protos`], everything reachable.
    pub fn pods() -> Self {
        Reach::new(all_pods(), all_pods(), &PORTS, &protos())
    }

    /// Sets every cell `pred` holds for.
    pub fn set(&mut self, v: bool, pred: impl Fn(&Cell) -> bool) -> &mut Self {
        for ((f, t, port, proto), cell) in self.cells.iter_mut() {
            if pred(&Cell {
                from: f,
                to: t,
                port: *port,
                proto,
            }) {
                *cell = v;
            }
        }
        self
    }

    /// FROM -> TO on every port and protocol.
    pub fn expect(&mut self, from: &str, to: &str, v: bool) -> &mut Self {
        let (from, to) = (pod(from), pod(to));
        self.set(v, |c| c.from == from && c.to == to)
    }

    /// Everything into `to` (`x/a`).
    pub fn all_ingress(&mut self, to: &str, v: bool) -> &mut Self {
        let to = pod(to);
        self.set(v, |c| c.to == to)
    }

    /// Everything out of `from`.
    pub fn all_egress(&mut self, from: &str, v: bool) -> &mut Self {
        let from = pod(from);
        self.set(v, |c| c.from == from)
    }

    /// A pod talking to itself never leaves it (upstream ignores loopback).
    pub fn allow_loopback(&mut self) -> &mut Self {
        self.set(true, |c| c.from == c.to)
    }

    pub fn blocked(&self) -> usize {
        self.cells.values().filter(|v| !**v).count()
    }

    /// The `lab check` matrix file (docs/lab.md).
    pub fn to_yaml(&self) -> String {
        let list = |v: &[String]| v.join(", ");
        let mut out = format!(
            "from: [{}]\nto: [{}]\nports: [{}]\nprotos: [{}]\nexpect: reach\nexcept:\n",
            list(&self.from),
            list(&self.to),
            self.ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            list(&self.protos)
        );
        for ((f, t, port, proto), v) in &self.cells {
            if !v {
                let _ = writeln!(
                    out,
                    "- {{from: {f}, to: {t}, port: {port}, proto: {proto}, expect: blocked}}"
                );
            }
        }
        if self.blocked() == 0 {
            out = out.replace("except:\n", "except: []\n");
        }
        out
    }
}

/// A model pod's manifest with extra labels.
pub fn pod_yaml(ns: &str, name: &str, extra: &[(&str, &str)]) -> String {
    let mut labels = format!("pod: {name}");
    for (k, v) in extra {
        let _ = write!(labels, ", {k}: {v}");
    }
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{{labels}}}}}\nspec:\n  nodeName: {}\n  containers:\n  - name: c\n    image: agnhost\n    ports:\n    - {{name: serve-80-tcp, containerPort: 80}}\n    - {{name: serve-81-tcp, containerPort: 81}}\n    - {{name: serve-80-udp, containerPort: 80, protocol: UDP}}\n    - {{name: serve-81-udp, containerPort: 81, protocol: UDP}}\n{}---\n",
        node_of(ns, name),
        if protos().contains(&"sctp") {
            "    - {name: serve-80-sctp, containerPort: 80, protocol: SCTP}\n    - {name: serve-81-sctp, containerPort: 81, protocol: SCTP}\n"
        } else {
            ""
        }
    )
}

/// A model namespace's manifest with extra labels.
pub fn namespace_yaml(ns: &str, extra: &[(&str, &str)]) -> String {
    let mut labels = format!("ns: {ns}");
    for (k, v) in extra {
        let _ = write!(labels, ", {k}: {v}");
    }
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{{labels}}}}}\n---\n"
    )
}

/// The lab under test plus what the current case applied, and every
/// disagreement found so far.
pub struct Suite {
    pub lab: Lab,
    pub backend: &'static str,
    current: String,
    failures: Vec<String>,
    work: tempfile::TempDir,
    started: Instant,
}

impl Suite {
    /// A lab on `backend` with the model's namespaces and pods, plus a
    /// hostNetwork pod `h/hn` on node-2 (its namespace implied).
    pub fn up(backend: Backend) -> Suite {
        let started = Instant::now();
        let name = match backend {
            Backend::Vxlan => "vxlan",
            Backend::HostGw => "host-gw",
        };
        let lab = common::up(|t| t.backend = backend);
        let mut yaml = String::new();
        for ns in NAMESPACES {
            yaml.push_str(&namespace_yaml(ns, &[]));
        }
        for ns in NAMESPACES {
            for p in PODS {
                yaml.push_str(&pod_yaml(ns, p, &[]));
            }
        }
        yaml.push_str(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: hn, namespace: h, labels: {pod: a}}\nspec:\n  nodeName: node-2\n  hostNetwork: true\n  containers: [{name: c, image: x, ports: [{containerPort: 8080}]}]\n",
        );
        lab.apply(&yaml);
        eprintln!(
            "[{name}] lab {} up with the model in {:.1}s",
            lab.topo.name,
            started.elapsed().as_secs_f64()
        );
        Suite {
            lab,
            backend: name,
            current: String::new(),
            failures: Vec::new(),
            work: tempfile::tempdir().unwrap(),
            started,
        }
    }

    pub fn lab_name(&self) -> &str {
        &self.lab.topo.name
    }

    pub fn ip(&self, short: &str) -> String {
        let (ns, name) = short.split_once('/').unwrap();
        self.lab.pod_ip(ns, name)
    }

    /// `strait_agent_syncs_total` of a node's agent.
    fn syncs(&self, node: &str) -> Option<u64> {
        self.metrics(node)?
            .lines()
            .find(|l| l.starts_with("strait_agent_syncs_total "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }

    /// A node agent's /metrics page.
    pub fn metrics(&self, node: &str) -> Option<String> {
        let state = self.lab.cluster.fabric.state(self.lab_name()).ok()?;
        let path = state.netns_path(&Target::Node(node.into())).ok()?;
        let text = strait_lab::run_in_netns(&path, || -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(
                &([127, 0, 0, 1], strait_lab::cluster::AGENT_PORT).into(),
                Duration::from_secs(1),
            )?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })
        .ok()?
        .ok()?;
        Some(text)
    }

    pub fn agent_log(&self, node: &str) -> String {
        std::fs::read_to_string(
            self.lab
                .cluster
                .node_dir(self.lab_name(), node)
                .join("agent.log"),
        )
        .unwrap_or_default()
    }

    /// The drops of the current case are visible: `node`'s agent counts
    /// them under `policy` (ns/name) and `direction`, and logs a line
    /// containing `log_part` that names the policy.
    pub fn expect_drop_evidence(
        &mut self,
        case: &str,
        node: &str,
        policy: &str,
        direction: &str,
        log_part: &str,
    ) {
        let t0 = Instant::now();
        let (label_p, label_d) = (
            format!("policy=\"{policy}\""),
            format!("direction=\"{direction}\""),
        );
        let counted = |m: &str| {
            m.lines().any(|l| {
                l.starts_with("strait_policy_dropped_packets_total")
                    && l.contains(&label_p)
                    && l.contains(&label_d)
                    && l.split_whitespace()
                        .last()
                        .and_then(|v| v.parse::<f64>().ok())
                        .is_some_and(|v| v > 0.0)
            })
        };
        let logged = |log: &str| {
            log.lines()
                .any(|l| l.contains("policy drop") && l.contains(log_part) && l.contains(policy))
        };
        let (mut c, mut l) = (false, false);
        while t0.elapsed() < DEADLINE && !(c && l) {
            c = c || self.metrics(node).is_some_and(|m| counted(&m));
            l = l || logged(&self.agent_log(node));
            std::thread::sleep(Duration::from_millis(100));
        }
        if !c {
            self.fail(
                case,
                format!(
                    "{node}: no strait_policy_dropped_packets_total{{{label_p},{label_d}}} above 0"
                ),
            );
        }
        if !l {
            self.fail(
                case,
                format!(
                    "{node}: no agent log line \"policy drop ... {log_part} ...\" naming {policy}"
                ),
            );
        }
    }

    /// Stops a node's agent (SIGTERM, as a restart does), checks `m` while
    /// it is down, starts it again and checks `m` once it has synced: what
    /// was denied stays denied throughout.
    pub fn restart_agent(&mut self, name: &str, node: &str, m: &Reach) {
        let pids = self.lab.cluster.agent_pids(&self.lab.topo, node);
        assert!(!pids.is_empty(), "{node} has no agent running");
        for pid in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let t0 = Instant::now();
        while !self.lab.cluster.agent_pids(&self.lab.topo, node).is_empty() {
            assert!(t0.elapsed() < DEADLINE, "{node}'s agent ignores SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Err(e) = self.run_check(m) {
            self.fail(name, format!("while {node}'s agent is stopped: {e}"));
        }
        self.lab
            .cluster
            .start_agent(&self.lab.topo, node)
            .unwrap_or_else(|e| panic!("restart {node}'s agent: {e}"));
        self.lab
            .cluster
            .wait_agent(&self.lab.topo, node, DEADLINE)
            .unwrap_or_else(|e| panic!("{e}"));
        if self.settle(name) {
            if let Err(e) = self.run_check(m) {
                self.fail(name, format!("after {node}'s agent restarted: {e}"));
            }
        }
        eprintln!(
            "[{}] {name}: {:.1}s",
            self.backend,
            t0.elapsed().as_secs_f64()
        );
    }

    /// Waits until every agent has completed two syncs since now: the
    /// second one started after the manifests were written.
    fn settle(&mut self, what: &str) -> bool {
        let nodes: Vec<String> = self.lab.topo.nodes.iter().map(|n| n.name.clone()).collect();
        let start: Vec<Option<u64>> = nodes.iter().map(|n| self.syncs(n)).collect();
        let t0 = Instant::now();
        while t0.elapsed() < DEADLINE {
            let done = nodes
                .iter()
                .zip(&start)
                .all(|(n, s0)| match (s0, self.syncs(n)) {
                    (Some(a), Some(b)) => b >= a + 2,
                    _ => false,
                });
            if done {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let logs: Vec<String> = nodes
            .iter()
            .map(|n| {
                let log = std::fs::read_to_string(
                    self.lab
                        .cluster
                        .node_dir(self.lab_name(), n)
                        .join("agent.log"),
                )
                .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                format!(
                    "{n}: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                )
            })
            .collect();
        self.fail(
            what,
            format!(
                "the agents did not sync twice within {DEADLINE:?}; logs end: {}",
                logs.join("; ")
            ),
        );
        false
    }

    fn fail(&mut self, case: &str, msg: String) {
        let line = format!("[{}] {case}: {msg}", self.backend);
        eprintln!("{line}");
        self.failures.push(line);
    }

    /// Runs `strait lab check -f` on the matrix; Ok when it matches, Err
    /// with the differing rows otherwise.
    fn run_check(&self, reach: &Reach) -> Result<(), String> {
        self.forget_udp_flows();
        let file: PathBuf = self.work.path().join("expect.yaml");
        std::fs::write(&file, reach.to_yaml()).unwrap();
        let stdout = match self.lab_check(&file, PROBE_TIMEOUT_MS, PROBE_PARALLEL) {
            None => return Ok(()),
            Some(stdout) => stdout,
        };
        // A cell expected to answer that timed out among 64 parallel probes
        // with a short timeout may only have been slow (a loaded machine):
        // those cells are probed again, few at a time with a long timeout.
        // Nothing else is retried: an answer where a block was expected,
        // or a refusal, is a difference as it stands.
        let mut rows: Vec<&str> = stdout.lines().filter(|l| l.contains("DIFFERS")).collect();
        let slow: Vec<&str> = rows
            .iter()
            .copied()
            .filter(|l| l.contains(" reach ") && l.contains("timed out"))
            .collect();
        if !slow.is_empty() {
            let retry: String = slow
                .iter()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() >= 4).then(|| {
                        let port = match f[2] {
                            "-" => String::new(),
                            p => format!(" port: {p},"),
                        };
                        format!(
                            "- {{from: {}, to: {},{port} proto: {}, expect: reach}}\n",
                            f[0], f[1], f[3]
                        )
                    })
                })
                .collect();
            let again: PathBuf = self.work.path().join("expect-again.yaml");
            std::fs::write(&again, retry).unwrap();
            let still = self
                .lab_check(&again, 3000, 4)
                .map(|out| {
                    out.lines()
                        .filter(|l| l.contains("DIFFERS"))
                        .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            eprintln!(
                "[{}] {} cells expected to answer timed out; probed again with 3 s: {} still differ",
                self.backend,
                slow.len(),
                still.len()
            );
            rows.retain(|l| {
                !slow.contains(l)
                    || still.contains(&l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
            });
            if rows.is_empty() {
                return Ok(());
            }
        }
        Err(format!(
            "{} of {} cells differ:\n    {}",
            rows.len(),
            stdout
                .lines()
                .filter(|l| l.starts_with("pod/")
                    || l.starts_with("node/")
                    || l.starts_with("host/"))
                .count(),
            rows.join("\n    ")
        ))
    }

    /// `strait lab check -f file`: None when every cell is as expected,
    /// else its output (the table with the differing rows marked).
    fn lab_check(
        &self,
        file: &std::path::Path,
        timeout_ms: u64,
        parallel: usize,
    ) -> Option<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_strait"))
            .env("STRAIT_LAB_DIR", &self.lab.cluster.paths.root)
            .args(["lab", "--lab", self.lab_name(), "check", "-f"])
            .arg(file)
            .args([
                "--timeout-ms",
                &timeout_ms.to_string(),
                "--parallel",
                &parallel.to_string(),
            ])
            .output()
            .expect("run strait lab check");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        match out.status.code() {
            Some(0) => None,
            Some(1) if stdout.contains("differ") => Some(stdout),
            _ => panic!(
                "strait lab check failed to run: {}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// Deletes every UDP conntrack entry on the nodes. The tables are about
    /// new flows; a UDP probe that happens to reuse the source port of an
    /// earlier, then allowed probe (still in conntrack for up to 120 s)
    /// would ride that flow, which is stateful behaviour, not a new flow.
    /// TCP needs nothing: earlier probes closed their connections, and a
    /// new SYN on a closed tuple is a new flow.
    fn forget_udp_flows(&self) {
        let Ok(state) = self.lab.cluster.fabric.state(self.lab_name()) else {
            return;
        };
        for n in &self.lab.topo.nodes {
            let out = state
                .exec(
                    &Target::Node(n.name.clone()),
                    &["conntrack", "-D", "-p", "udp"],
                )
                .expect("run conntrack (install the conntrack package)");
            let err = String::from_utf8_lossy(&out.stderr);
            // Exit 1 with "0 flow entries" when there was nothing to delete.
            assert!(
                out.status.success() || err.contains("flow entries"),
                "conntrack -D in {}: {err}",
                n.name
            );
        }
    }

    fn swap_objects(&mut self, yaml: &str) {
        if !self.current.is_empty() {
            let old = std::mem::take(&mut self.current);
            self.lab
                .cluster
                .delete(self.lab_name(), &old, "previous case")
                .unwrap_or_else(|e| panic!("delete the previous case's objects: {e}"));
        }
        if !yaml.trim().is_empty() {
            self.lab.apply(yaml);
        }
        self.current = yaml.to_owned();
    }

    /// A case: replace the previous case's objects with `yaml`, wait for
    /// the agents, check every matrix once.
    pub fn case(&mut self, name: &str, yaml: &str, matrices: &[Reach]) {
        let t0 = Instant::now();
        self.swap_objects(yaml);
        if !self.settle(name) {
            return;
        }
        for m in matrices {
            if let Err(e) = self.run_check(m) {
                self.fail(name, e);
            }
        }
        eprintln!(
            "[{}] {name}: {:.1}s",
            self.backend,
            t0.elapsed().as_secs_f64()
        );
    }

    /// A change within a case (labels, a deletion): apply or delete
    /// `yaml`, poll the matrix until it matches (printing how long that
    /// took), then check it again once the agents have settled.
    pub fn change(&mut self, name: &str, apply: Option<&str>, delete: Option<&str>, m: &Reach) {
        let t0 = Instant::now();
        if let Some(y) = delete {
            self.lab
                .cluster
                .delete(self.lab_name(), y, name)
                .unwrap_or_else(|e| panic!("{name}: delete: {e}"));
            self.current.clear();
        }
        if let Some(y) = apply {
            self.lab.apply(y);
        }
        let mut last = Err(String::new());
        while t0.elapsed() < DEADLINE {
            last = self.run_check(m);
            if last.is_ok() {
                break;
            }
        }
        match last {
            Ok(()) => eprintln!(
                "[{}] {name}: matrix matched {:.2}s after the change (incl. one check of {} probes)",
                self.backend,
                t0.elapsed().as_secs_f64(),
                m.cells.len()
            ),
            Err(e) => {
                self.fail(name, format!("not converged within {DEADLINE:?}: {e}"));
                return;
            }
        }
        if self.settle(name) {
            if let Err(e) = self.run_check(m) {
                self.fail(name, format!("matched once, then: {e}"));
            }
        }
    }

    /// Panics with every disagreement found.
    pub fn finish(self) {
        eprintln!(
            "[{}] suite done in {:.1}s, {} failing checks",
            self.backend,
            self.started.elapsed().as_secs_f64(),
            self.failures.len()
        );
        if !self.failures.is_empty() {
            panic!(
                "strait disagrees with Kubernetes semantics:\n{}",
                self.failures.join("\n")
            );
        }
    }
}
