//! `strait`: the command line of the strait pod network.

mod bench;
mod demo;
mod lab;
mod lab_debug;
mod node_debug;
mod plugins;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "strait", version, about = "strait: a Kubernetes pod network")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Two pods in network namespaces, networked by strait-cni, pinging each
    /// other; everything is removed afterwards.
    Demo {
        /// Directory holding the strait-cni binary (default: next to strait).
        #[arg(long)]
        cni_bin_dir: Option<PathBuf>,
    },
    /// The node agent: programs this node's pod network from a source and
    /// keeps it programmed.
    Agent(AgentArgs),
    /// A whole cluster in network namespaces on this machine.
    Lab {
        /// The lab's name (its namespaces are `<lab>-...`).
        #[arg(long, default_value = lab::DEFAULT_LAB, global = true)]
        lab: String,
        #[command(subcommand)]
        cmd: lab::LabCmd,
    },
    /// Explain a packet's path from FROM to TO over the nodes' Plans (docs/trace.md).
    Trace(node_debug::NodeTraceArgs),
    /// Check this node against its Plan and strait's needs; exit 1 on a problem.
    Doctor(node_debug::DoctorArgs),
    /// Live connection events on this node, with pod names (docs/trace.md).
    Flows(node_debug::FlowsArgs),
    /// Benchmarks against the named peer, in one run.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
}

#[derive(clap::Args)]
struct AgentArgs {
    /// Agent configuration (YAML or JSON; see docs/lab-agent-plan.md).
    #[arg(long)]
    config: PathBuf,
    /// Directory of Kubernetes manifests to read the cluster from. Without
    /// it the agent reads the Kubernetes API (Kubernetes mode).
    #[arg(long, conflicts_with = "kubeconfig")]
    manifests: Option<PathBuf>,
    /// Kubeconfig for the Kubernetes API (default: the pod's service
    /// account in a pod, else $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Replaces the config's clusterCIDR (the cluster's pod network).
    #[arg(long)]
    cluster_cidr: Option<ipnet::IpNet>,
    /// Where to publish the CNI conflist once ready (Kubernetes mode
    /// default: /etc/cni/net.d; with --manifests only when given).
    #[arg(long)]
    cni_conf_dir: Option<PathBuf>,
    /// Where strait-cni must be installed before the conflist is published.
    #[arg(long, default_value = "/opt/cni/bin")]
    cni_bin_dir: PathBuf,
    /// This node's name (default: $NODE_NAME).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:9590")]
    listen: std::net::SocketAddr,
    /// Where to publish the node file strait-cni reads.
    #[arg(long, default_value = "/run/strait/node.json")]
    node_file: PathBuf,
    /// Longest time between two syncs, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Longest time between two full nftables rewrites, in seconds. A
    /// table deleted or replaced outside the agent is noticed on every sync
    /// (its stamp); the full rewrite repairs what the stamp cannot show (an
    /// element or rule edited by hand), and costs over a second at 10,000
    /// Services.
    #[arg(long, default_value_t = 300)]
    resync_s: u64,
    /// Sync once and exit.
    #[arg(long)]
    once: bool,
    /// Remove everything the agent owns on this node, then exit.
    #[arg(long)]
    cleanup: bool,
}

fn agent(a: AgentArgs) -> Result<(), String> {
    let kube = match (&a.manifests, a.kubeconfig) {
        (Some(_), _) => None,
        (None, Some(path)) => Some(strait_kube::Connect::Kubeconfig(path)),
        (None, None) => Some(strait_kube::Connect::Infer),
    };
    let cni = match (&kube, a.cni_conf_dir) {
        (_, Some(conf_dir)) => Some(strait_agent::cni_conf::CniConf {
            conf_dir,
            bin_dir: a.cni_bin_dir,
        }),
        (Some(_), None) => Some(strait_agent::cni_conf::CniConf {
            conf_dir: "/etc/cni/net.d".into(),
            bin_dir: a.cni_bin_dir,
        }),
        (None, None) => None,
    };
    let opts = strait_agent::run::Options {
        config: a.config,
        manifests: a.manifests.unwrap_or_default(),
        kube,
        cluster_cidr: a.cluster_cidr,
        cni,
        node_name: a.node_name,
        listen: a.listen,
        node_file: a.node_file,
        interval: std::time::Duration::from_millis(a.interval_ms),
        resync: std::time::Duration::from_secs(a.resync_s),
        once: a.once,
    };
    if a.cleanup {
        strait_agent::run::cleanup(&opts)
    } else {
        strait_agent::run::run(opts)
    }
}

/// An exit code chosen by the command (trace: 1 not answered; doctor: 1
/// a problem found), or 2 with the message when it could not run.
fn exit(r: Result<i32, String>) -> ExitCode {
    match r {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("strait: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Demo { cni_bin_dir } => demo::run(cni_bin_dir),
        Cmd::Agent(args) => agent(args),
        Cmd::Trace(a) => return exit(node_debug::trace(&a)),
        Cmd::Doctor(a) => return exit(node_debug::doctor(&a)),
        Cmd::Flows(a) => return exit(node_debug::flows(&a)),
        Cmd::Lab { lab, cmd } => {
            // Lab commands choose their own exit codes (probe: 0, 1, 2).
            return match lab::run(&lab, cmd) {
                Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
                Err(e) => {
                    eprintln!("strait: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Cmd::Bench { which } => bench::run(which),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strait: {e}");
            ExitCode::FAILURE
        }
    }
}
