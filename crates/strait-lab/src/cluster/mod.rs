//! The lab as a cluster: the fabric (namespaces, switches, router, hosts)
//! plus one `strait agent` per node reading the lab's manifest directory,
//! pods made the way a runtime makes them (a namespace, then CNI ADD of
//! strait-cni with the node's conflist), and echo servers in pods and
//! external hosts.
//!
//! Files under `<root>/<lab>/`: `agent.yaml`, `manifests/` (what the agents
//! read), `nodes/<node>/{node.json,ipam/,agent.log}`, `pods/` (one record per
//! pod), `logs/`. Processes are started detached inside lab namespaces, so
//! `down` finds and stops them by namespace even after a crash.

mod manage;
pub mod objects;
mod pods;
mod services;

pub use manage::{Endpoint, Status};
pub use pods::PodRecord;

use crate::fabric::{Fabric, FabricState, LabPaths, Target};
use crate::netns::run_in_netns;
use crate::topology::{NsKind, Topology};
use crate::LabError;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The port each node's agent serves /readyz on, inside the node namespace.
pub const AGENT_PORT: u16 = 9590;

/// The programs the lab runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The `strait` binary (agent, echo server).
    pub strait: PathBuf,
    /// The directory holding `strait-cni`.
    pub cni_dir: PathBuf,
}

impl Binaries {
    /// `strait` and `strait-cni` next to each other in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Binaries {
            strait: dir.join("strait"),
            cni_dir: dir.to_path_buf(),
        }
    }
}

pub struct Cluster {
    pub fabric: Fabric,
    pub paths: LabPaths,
    pub bins: Binaries,
    /// Agents read the Kubernetes API through this kubeconfig instead of
    /// the manifest directory (the lab's Kubernetes-mode variant: an API
    /// server mirroring the manifest directory must serve it).
    pub kubeconfig: Option<PathBuf>,
}

fn err(msg: impl Into<String>) -> LabError {
    LabError::Cluster(msg.into())
}

impl Cluster {
    pub fn new(paths: LabPaths, bins: Binaries) -> Self {
        Cluster {
            fabric: Fabric::new(paths.clone()),
            paths,
            bins,
            kubeconfig: None,
        }
    }

    pub fn dir(&self, lab: &str) -> PathBuf {
        self.paths.lab_dir(lab)
    }

    pub fn manifests(&self, lab: &str) -> PathBuf {
        self.dir(lab).join("manifests")
    }

    pub fn node_dir(&self, lab: &str, node: &str) -> PathBuf {
        self.dir(lab).join("nodes").join(node)
    }

    /// Builds the fabric, starts an agent per node and the external hosts'
    /// echo servers, and returns when every agent is ready. On failure the
    /// whole lab is taken down again.
    pub fn up(&self, topo: &Topology, timeout: Duration) -> Result<FabricState, LabError> {
        let state = self.fabric.up(topo)?;
        match self.start(topo, &state, timeout) {
            Ok(()) => Ok(state),
            Err(e) => {
                let _ = self.fabric.down(&topo.name);
                Err(e)
            }
        }
    }

    fn start(
        &self,
        topo: &Topology,
        state: &FabricState,
        timeout: Duration,
    ) -> Result<(), LabError> {
        let lab = &topo.name;
        for d in ["manifests", "pods", "logs"] {
            let p = self.dir(lab).join(d);
            std::fs::create_dir_all(&p).map_err(LabError::io("create", &p))?;
        }
        let agent_yaml = self.dir(lab).join("agent.yaml");
        let text = serde_yaml::to_string(&topo.agent_config()).map_err(|e| err(e.to_string()))?;
        std::fs::write(&agent_yaml, text).map_err(LabError::io("write", &agent_yaml))?;
        objects::write_nodes(&self.manifests(lab), topo)?;

        for node in &topo.nodes {
            self.start_agent(topo, &node.name)?;
        }
        for net in &topo.external_networks {
            for host in &net.hosts {
                let netns = topo.netns(NsKind::Host, &host.name);
                self.start_echo(
                    lab,
                    &netns,
                    &format!("host/{}", host.name),
                    &[80],
                    &[80],
                    &[],
                )?;
            }
        }
        for node in &topo.nodes {
            let path = state.netns_path(&Target::Node(node.name.clone()))?;
            wait_ready(&path, timeout).map_err(|e| {
                let log = std::fs::read_to_string(self.node_dir(lab, &node.name).join("agent.log"))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                err(format!(
                    "agent of {} did not become ready: {e}; its log ends with:\n  {}",
                    node.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n  ")
                ))
            })?;
        }
        Ok(())
    }

    /// Starts `strait agent` (detached) inside a node's namespace.
    pub fn start_agent(&self, topo: &Topology, node: &str) -> Result<(), LabError> {
        let lab = &topo.name;
        let dir = self.node_dir(lab, node);
        std::fs::create_dir_all(&dir).map_err(LabError::io("create", &dir))?;
        let netns = topo.netns(NsKind::Node, node);
        let source = match &self.kubeconfig {
            // Kubernetes mode; the conflist goes to the node's directory,
            // never the machine's /etc/cni/net.d.
            Some(kubeconfig) => vec![
                "--kubeconfig".into(),
                kubeconfig.display().to_string(),
                "--cni-conf-dir".into(),
                dir.join("net.d").display().to_string(),
                "--cni-bin-dir".into(),
                self.bins.cni_dir.display().to_string(),
            ],
            None => vec![
                "--manifests".into(),
                self.manifests(lab).display().to_string(),
            ],
        };
        let args = [
            vec![
                self.bins.strait.display().to_string(),
                "agent".into(),
                "--config".into(),
                self.dir(lab).join("agent.yaml").display().to_string(),
            ],
            source,
            vec![
                "--node-name".into(),
                node.into(),
                "--listen".into(),
                format!("127.0.0.1:{AGENT_PORT}"),
                "--node-file".into(),
                dir.join("node.json").display().to_string(),
            ],
        ]
        .concat();
        spawn_detached(&netns, &args, &dir.join("agent.log"))
    }

    /// Pids of the agent processes running in a node's namespace.
    pub fn agent_pids(&self, topo: &Topology, node: &str) -> Vec<i32> {
        let path = PathBuf::from("/run/netns").join(topo.netns(NsKind::Node, node));
        crate::fabric::netns_pids(&[path])
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| {
                        let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                        args.iter().any(|a| *a == b"agent")
                            && args.iter().any(|a| *a == b"--node-name")
                    })
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Waits until a node's agent answers /readyz with 200.
    pub fn wait_agent(
        &self,
        topo: &Topology,
        node: &str,
        timeout: Duration,
    ) -> Result<(), LabError> {
        let path = PathBuf::from("/run/netns").join(topo.netns(NsKind::Node, node));
        wait_ready(&path, timeout).map_err(|e| err(format!("agent of {node}: {e}")))
    }

    /// Starts an echo server (detached) inside `netns`.
    pub fn start_echo(
        &self,
        lab: &str,
        netns: &str,
        label: &str,
        tcp: &[u16],
        udp: &[u16],
        sctp: &[u16],
    ) -> Result<(), LabError> {
        let list = |p: &[u16]| p.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
        let mut args = vec![
            self.bins.strait.display().to_string(),
            "lab".into(),
            "serve".into(),
            "--label".into(),
            label.into(),
        ];
        for (flag, ports) in [("--tcp", tcp), ("--udp", udp), ("--sctp", sctp)] {
            if !ports.is_empty() {
                args.push(flag.into());
                args.push(list(ports));
            }
        }
        let base = self
            .dir(lab)
            .join("logs")
            .join(format!("echo-{}", label.replace('/', "_")));
        let ready = base.with_extension("ready");
        let _ = std::fs::remove_file(&ready);
        args.push("--ready-file".into());
        args.push(ready.display().to_string());
        spawn_detached(netns, &args, &base.with_extension("log"))?;
        // Return only once it listens: a pod is up when `apply` returns.
        let start = Instant::now();
        while !ready.exists() {
            if start.elapsed() > Duration::from_secs(10) {
                let log = std::fs::read_to_string(base.with_extension("log")).unwrap_or_default();
                return Err(err(format!(
                    "echo server {label} in {netns} did not start: {}",
                    log.trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Whether each node's agent answers /readyz with 200.
    pub fn agent_ready(&self, state: &FabricState, node: &str) -> bool {
        state
            .netns_path(&Target::Node(node.into()))
            .map(|p| readyz(&p).unwrap_or(false))
            .unwrap_or(false)
    }
}

/// Starts `argv` inside `netns`, detached (its own session, reparented to
/// init), output appended to `log`.
fn spawn_detached(netns: &str, argv: &[String], log: &Path) -> Result<(), LabError> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(LabError::io("open log", log))?;
    let err_out = out.try_clone().map_err(LabError::io("open log", log))?;
    let status = Command::new("setsid")
        .args(["-f", "ip", "netns", "exec", netns])
        .args(argv)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err_out)
        .status()
        .map_err(|e| err(format!("start {} in {netns}: {e}", argv[0])))?;
    if !status.success() {
        return Err(err(format!(
            "start {} in {netns}: {status}",
            argv.join(" ")
        )));
    }
    Ok(())
}

fn readyz(netns: &Path) -> std::io::Result<bool> {
    run_in_netns(netns, || -> std::io::Result<bool> {
        let mut s = TcpStream::connect_timeout(
            &([127, 0, 0, 1], AGENT_PORT).into(),
            Duration::from_millis(500),
        )?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: agent\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out.starts_with("HTTP/1.1 200"))
    })?
}

fn wait_ready(netns: &Path, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    let mut last = String::from("no answer yet");
    while start.elapsed() < timeout {
        match readyz(netns) {
            Ok(true) => return Ok(()),
            Ok(false) => last = "/readyz answers 503 (no successful sync yet)".into(),
            Err(e) => last = format!("/readyz: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("after {:?}: {last}", timeout))
}
