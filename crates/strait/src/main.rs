//! `strait`: the command line of the strait pod network.

mod bench;
mod demo;
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
    /// Benchmarks against the named peer, in one run.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Demo { cni_bin_dir } => demo::run(cni_bin_dir),
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
