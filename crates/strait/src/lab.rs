//! `strait lab ...`: a whole cluster in network namespaces on this machine
//! (docs/lab.md). Argument handling only; the work is in strait-lab.

use crate::plugins::strait_cni_dir;
use clap::Subcommand;
use std::path::PathBuf;
use std::time::Duration;
use strait_lab::{
    parse_expectations, probe, run_check, Binaries, Cluster, Expect, Expectation, Fabric,
    FabricState, LabPaths, ProbeResult, Proto, Topology,
};

pub const DEFAULT_LAB: &str = "strait";

#[derive(Subcommand)]
pub enum LabCmd {
    /// Build the topology (default: two nodes, a router, legacy-db) and start
    /// an agent per node; returns when every agent is ready. The lab is
    /// named by `--lab`, else by the topology file's `name`.
    Up {
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
    },
    /// Remove everything the lab made (idempotent, also after a crash).
    Down,
    /// Nodes, pods, external hosts and agent health.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Run a command in node/NAME, pod/NAMESPACE/NAME, host/NAME or router.
    Exec {
        target: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Apply Kubernetes manifests (Namespace, Pod, Service, EndpointSlice, NetworkPolicy).
    Apply {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Delete the objects named in manifests (pods with CNI DEL).
    Delete {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Probe TO from FROM; exit 0 answered, 1 refused or timed out, 2 usage.
    Probe {
        from: String,
        to: String,
        #[arg(long, default_value_t = 80)]
        port: u16,
        #[arg(long, default_value = "tcp")]
        proto: String,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Probe a matrix (default: every pod to every pod port and every
    /// external host) and compare with expectations; exit 1 on a difference.
    Check {
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// How long a probe waits for an answer (a dropped one times out).
        #[arg(long, default_value_t = 1500)]
        timeout_ms: u64,
        /// Probes in flight at once (the output keeps the file's order).
        #[arg(long, default_value_t = 32)]
        parallel: usize,
    },
    /// Up with the default topology, apply a sample workload, check.
    Demo,
    /// Explain a packet's path from FROM to TO over the nodes' Plans (docs/trace.md).
    Trace(crate::lab_debug::TraceArgs),
    /// Run `strait doctor` in node NODE (docs/trace.md).
    Doctor(crate::lab_debug::LabDoctorArgs),
    /// Run `strait flows` in node NODE (docs/trace.md).
    Flows(crate::lab_debug::LabFlowsArgs),
    /// (internal) The echo server lab pods and hosts run.
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        label: String,
        #[arg(long, value_delimiter = ',')]
        tcp: Vec<u16>,
        #[arg(long, value_delimiter = ',')]
        udp: Vec<u16>,
        #[arg(long, value_delimiter = ',')]
        sctp: Vec<u16>,
        /// Written once every socket is bound.
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
}

/// Where labs keep their state: `/run/strait/lab`, or `$STRAIT_LAB_DIR`
/// (the test suites' labs live in directories of their own).
fn lab_paths() -> LabPaths {
    LabPaths::new(
        std::env::var_os("STRAIT_LAB_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/run/strait/lab")),
    )
}

fn cluster() -> Result<Cluster, String> {
    let dir = strait_cni_dir(None)?;
    Ok(Cluster::new(lab_paths(), Binaries::in_dir(&dir)))
}

/// Exit code and message of a lab command.
pub fn run(lab: &str, cmd: LabCmd) -> Result<i32, String> {
    match cmd {
        LabCmd::Serve {
            label,
            tcp,
            udp,
            sctp,
            ready_file,
        } => {
            let _server = strait_lab::EchoServer::start(&label, &tcp, &udp, &sctp)
                .map_err(|e| e.to_string())?;
            if let Some(f) = ready_file {
                std::fs::write(&f, "ready\n").map_err(|e| format!("{}: {e}", f.display()))?;
            }
            loop {
                std::thread::park();
            }
        }
        LabCmd::Up { file } => {
            let mut topo = match file {
                Some(f) => Topology::load(&f).map_err(|e| e.to_string())?,
                None => Topology::default_lab(),
            };
            // `--lab NAME` names the lab: the default topology always takes
            // it, a topology file's own `name` yields to an explicit one.
            if topo.name == DEFAULT_LAB || lab != DEFAULT_LAB {
                topo.name = lab.to_string();
                topo.validate().map_err(|e| format!("--lab: {e}"))?;
            }
            up(&topo)?;
            Ok(0)
        }
        LabCmd::Down => {
            let report = Fabric::new(lab_paths())
                .down(lab)
                .map_err(|e| e.to_string())?;
            println!(
                "lab {lab} is down: {} namespaces removed, {} processes stopped",
                report.namespaces.len(),
                report.killed.len()
            );
            Ok(0)
        }
        LabCmd::Status { json } => {
            let status = cluster()?.status(lab).map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).unwrap_or_default()
                );
            } else {
                println!("lab {} (backend {})", status.lab, status.backend);
                for n in &status.nodes {
                    let ready = if n.agent_ready { "ready" } else { "NOT READY" };
                    println!(
                        "  node/{:<10} {:<15} pods {:<16} agent {ready}",
                        n.name, n.underlay_ip, n.pod_cidr
                    );
                }
                for p in &status.pods {
                    let hn = if p.host_network { " (hostNetwork)" } else { "" };
                    println!(
                        "  pod/{}/{:<12} {:<15} on {}{hn}",
                        p.namespace, p.name, p.ip, p.node
                    );
                }
                for h in &status.hosts {
                    println!("  host/{:<10} {:<15} on {}", h.name, h.ip, h.network);
                }
            }
            Ok(0)
        }
        LabCmd::Exec { target, command } => {
            let c = cluster()?;
            let state = FabricState::load(&c.paths, lab).map_err(|e| e.to_string())?;
            let ep = c.endpoint(&state, &target).map_err(|e| e.to_string())?;
            if ep.netns.as_os_str().is_empty() {
                return Err(format!(
                    "{target}: not a place to run a command in (use node/, pod/, host/ or router)"
                ));
            }
            let netns = ep
                .netns
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let status = std::process::Command::new("ip")
                .args(["netns", "exec", &netns])
                .args(&command)
                .status()
                .map_err(|e| format!("run {}: {e}", command[0]))?;
            Ok(status.code().unwrap_or(1))
        }
        LabCmd::Apply { file } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            for d in cluster()?
                .apply(lab, &text, &file.display().to_string())
                .map_err(|e| e.to_string())?
            {
                println!("applied {d}");
            }
            Ok(0)
        }
        LabCmd::Delete { file } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            for d in cluster()?
                .delete(lab, &text, &file.display().to_string())
                .map_err(|e| e.to_string())?
            {
                println!("deleted {d}");
            }
            Ok(0)
        }
        LabCmd::Probe {
            from,
            to,
            port,
            proto,
            timeout_ms,
        } => {
            let proto: Proto = match proto.parse() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("strait: --proto {proto:?}: {e}");
                    return Ok(2);
                }
            };
            let c = cluster()?;
            let state = FabricState::load(&c.paths, lab).map_err(|e| e.to_string())?;
            let r = probe_once(
                &c,
                &state,
                &from,
                &to,
                port,
                proto,
                Duration::from_millis(timeout_ms),
            )?;
            match &r {
                ProbeResult::Answered(_) if proto == Proto::Icmp => {
                    println!("ok");
                    Ok(0)
                }
                ProbeResult::Answered(line) => {
                    println!("{}", line.trim_end());
                    Ok(0)
                }
                other => {
                    println!("{other}");
                    Ok(1)
                }
            }
        }
        LabCmd::Check {
            file,
            timeout_ms,
            parallel,
        } => check(lab, file, Duration::from_millis(timeout_ms), parallel),
        LabCmd::Demo => demo(),
        LabCmd::Trace(a) => crate::lab_debug::trace(&cluster()?, lab, &a),
        LabCmd::Doctor(a) => crate::lab_debug::doctor(&cluster()?, lab, &a),
        LabCmd::Flows(a) => crate::lab_debug::flows(&cluster()?, lab, &a),
    }
}

fn up(topo: &Topology) -> Result<(), String> {
    let c = cluster()?;
    eprintln!(
        "lab {}: building namespaces and starting agents ...",
        topo.name
    );
    c.up(topo, Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let status = c.status(&topo.name).map_err(|e| e.to_string())?;
    println!("lab {} is up (backend {}):", topo.name, status.backend);
    for n in &status.nodes {
        println!(
            "  node/{} {} pods {} agent ready",
            n.name, n.underlay_ip, n.pod_cidr
        );
    }
    for h in &status.hosts {
        println!("  host/{} {} ({})", h.name, h.ip, h.network);
    }
    Ok(())
}

fn probe_once(
    c: &Cluster,
    state: &FabricState,
    from: &str,
    to: &str,
    port: u16,
    proto: Proto,
    timeout: Duration,
) -> Result<ProbeResult, String> {
    let src = c.endpoint(state, from).map_err(|e| e.to_string())?;
    if src.netns.as_os_str().is_empty() {
        return Err(format!(
            "{from}: a probe must start from node/, pod/, host/ or router"
        ));
    }
    let dst = c.endpoint(state, to).map_err(|e| e.to_string())?;
    let ip = dst.ip.ok_or_else(|| format!("{to}: has no address"))?;
    probe(&src.netns, ip, port, proto, timeout).map_err(|e| e.to_string())
}

fn default_matrix(c: &Cluster, lab: &str) -> Vec<Expectation> {
    let pods = c.pod_records(lab);
    let mut rows = Vec::new();
    for from in &pods {
        let from_t = format!("pod/{}/{}", from.namespace, from.name);
        for to in &pods {
            let to_t = format!("pod/{}/{}", to.namespace, to.name);
            let mut any = false;
            for (proto, ports) in [("tcp", &to.tcp), ("udp", &to.udp)] {
                for p in ports.iter() {
                    any = true;
                    rows.push(Expectation {
                        from: from_t.clone(),
                        to: to_t.clone(),
                        port: Some(*p),
                        proto: proto.into(),
                        expect: Expect::Reach,
                    });
                }
            }
            if !any {
                rows.push(Expectation {
                    from: from_t.clone(),
                    to: to_t.clone(),
                    port: None,
                    proto: "icmp".into(),
                    expect: Expect::Reach,
                });
            }
        }
        for (svc, port, proto, has_endpoints) in service_ports(c, lab) {
            rows.push(Expectation {
                from: from_t.clone(),
                to: svc,
                port: Some(port),
                proto,
                expect: if has_endpoints {
                    Expect::Reach
                } else {
                    Expect::Blocked
                },
            });
        }
        if let Ok(state) = FabricState::load(&c.paths, lab) {
            for net in &state.topology.external_networks {
                for h in &net.hosts {
                    rows.push(Expectation {
                        from: from_t.clone(),
                        to: format!("host/{}", h.name),
                        port: Some(80),
                        proto: "tcp".into(),
                        expect: Expect::Reach,
                    });
                }
            }
        }
    }
    rows
}

/// Every (svc/NS/NAME, port, proto, has ready endpoints) of Services with a
/// ClusterIP. A Service without ready endpoints must reject.
fn service_ports(c: &Cluster, lab: &str) -> Vec<(String, u16, String, bool)> {
    let Ok(snap) = strait_model::ManifestStore::load(c.manifests(lab)) else {
        return vec![];
    };
    let mut out = Vec::new();
    for svc in &snap.services {
        let Some(spec) = &svc.spec else { continue };
        if spec
            .cluster_ip
            .as_deref()
            .is_none_or(|ip| ip.is_empty() || ip == "None")
        {
            continue;
        }
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let ready = snap
            .slices_for(&ns, &name)
            .flat_map(|s| s.endpoints.iter())
            .any(|e| e.conditions.ready != Some(false));
        for p in spec.ports.iter().flatten() {
            let proto = p
                .protocol
                .clone()
                .unwrap_or_else(|| "TCP".into())
                .to_lowercase();
            if let Ok(port) = u16::try_from(p.port) {
                out.push((format!("svc/{ns}/{name}"), port, proto, ready));
            }
        }
    }
    out
}

fn check(
    lab: &str,
    file: Option<PathBuf>,
    timeout: Duration,
    parallel: usize,
) -> Result<i32, String> {
    let c = cluster()?;
    let state = FabricState::load(&c.paths, lab).map_err(|e| e.to_string())?;
    let rows = match file {
        Some(f) => {
            let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            parse_expectations(&text).map_err(|e| format!("{}: {e}", f.display()))?
        }
        None => default_matrix(&c, lab),
    };
    if rows.is_empty() {
        println!("nothing to check: apply some pods first");
        return Ok(0);
    }
    let outcomes = run_check(&c, &state, &rows, timeout, parallel)?;
    println!(
        "{:<28} {:<28} {:>5} {:<5} {:<8} {:<8} detail",
        "FROM", "TO", "PORT", "PROTO", "EXPECT", "OBSERVED"
    );
    let mut bad = 0;
    for o in &outcomes {
        let mark = if o.as_expected() {
            ""
        } else {
            bad += 1;
            "  <-- DIFFERS"
        };
        let r = &o.row;
        println!(
            "{:<28} {:<28} {:>5} {:<5} {:<8} {:<8} {}{mark}",
            r.from,
            r.to,
            r.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            r.proto,
            r.expect.as_str(),
            o.observed().as_str(),
            o.detail(timeout)
        );
    }
    println!(
        "\n{} checked, {} as expected, {} differ",
        rows.len(),
        rows.len() - bad,
        bad
    );
    Ok(if bad == 0 { 0 } else { 1 })
}

const DEMO_WORKLOAD: &str = include_str!("../../../examples/lab/demo-workload.yaml");

fn demo() -> Result<i32, String> {
    let topo = Topology::default_lab();
    let fabric = Fabric::new(lab_paths());
    if fabric.state(&topo.name).is_ok() {
        eprintln!("lab {}: already up, replacing it", topo.name);
        fabric.down(&topo.name).map_err(|e| e.to_string())?;
    }
    up(&topo)?;
    let c = cluster()?;
    println!("\napplying examples/lab/demo-workload.yaml ...");
    for d in c
        .apply(&topo.name, DEMO_WORKLOAD, "demo-workload.yaml")
        .map_err(|e| e.to_string())?
    {
        println!("  {d}");
    }
    println!("\nchecking every pod -> every pod port and -> legacy-db:80 ...\n");
    let code = check(&topo.name, None, Duration::from_millis(1500), 32)?;
    println!(
        "\nThe lab is still up. Explore it:\n  strait lab status\n  strait lab probe pod/demo/client host/legacy-db --port 80\n  strait lab exec node/node-1 -- ip route\n  strait lab exec pod/demo/web-1 -- ip addr\nTear it down with:\n  strait lab down"
    );
    Ok(code)
}
