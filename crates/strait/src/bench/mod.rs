//! `strait bench ...`: benchmarks that compare strait with a named peer in
//! the same run and write their results into docs/benchmarks.md.

mod cni;
mod lab;
mod policy;
mod report;
mod services;

use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Which {
    /// CNI ADD/DEL latency and parallel rate: strait-cni vs the reference
    /// bridge + host-local plugins.
    Cni {
        /// Pods per run.
        #[arg(long, default_value_t = 200)]
        pods: usize,
        /// Concurrent plugin processes in the parallel phase.
        #[arg(long, default_value_t = 16)]
        parallel: usize,
        /// Directory holding strait-cni (default: next to strait).
        #[arg(long)]
        cni_bin_dir: Option<PathBuf>,
        /// Write the results into this markdown file (its CNI section).
        #[arg(long)]
        write: Option<PathBuf>,
    },
    /// Pod-to-pod throughput (host-gw, vxlan) vs a raw veth pair, and node
    /// join convergence with simulated nodes.
    Lab {
        /// Seconds per iperf3 run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Interleaved rounds per path (six: with three, single runs on a
        /// shared 2-core machine gave host-gw anywhere from 82% to 99%).
        #[arg(long, default_value_t = 6)]
        rounds: usize,
        /// Simulated nodes already in the cluster.
        #[arg(long, default_value_t = 100)]
        nodes: usize,
        #[arg(long)]
        write: Option<PathBuf>,
    },
    /// NetworkPolicy: compile + apply of many policies over many pods, and
    /// the new-connection rate through a pod selected by them vs by none.
    Policy {
        #[arg(long, default_value_t = 1000)]
        policies: usize,
        #[arg(long, default_value_t = 5000)]
        pods: usize,
        /// Seconds per connection-rate round.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Rounds (each measures both servers at once).
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        #[arg(long)]
        write: Option<PathBuf>,
    },
    /// Service sync time at scale vs kube-proxy's iptables layout.
    Services {
        /// Numbers of Services (10 endpoints each).
        #[arg(long, value_delimiter = ',', default_value = "1000,10000,30000")]
        sizes: Vec<usize>,
        #[arg(long)]
        write: Option<PathBuf>,
        /// Only measure the agent's peak RSS syncing this many Services
        /// (prints it; no sync timings, nothing written).
        #[arg(long, conflicts_with = "write")]
        rss_only: Option<usize>,
    },
}

pub fn run(which: Which) -> Result<(), String> {
    match which {
        Which::Cni {
            pods,
            parallel,
            cni_bin_dir,
            write,
        } => cni::run(pods, parallel, cni_bin_dir, write),
        Which::Lab {
            seconds,
            rounds,
            nodes,
            write,
        } => lab::run(seconds, rounds, nodes, write),
        Which::Services {
            rss_only: Some(n), ..
        } => services::rss_only(n),
        Which::Services { sizes, write, .. } => services::run(&sizes, write),
        Which::Policy {
            policies,
            pods,
            seconds,
            rounds,
            write,
        } => policy::run(policies, pods, seconds, rounds, write),
    }
}
