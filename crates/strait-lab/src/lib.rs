//! The runtime side of strait's tests, demo, benchmarks and lab: named
//! network namespaces that clean up after themselves, a CNI runtime that runs
//! a plugin or a conflist the way libcni does, and the lab itself — a whole
//! cluster's network (nodes, router, switches, external hosts) in namespaces,
//! with an echo server and probes to test it (and hand-built SCTP INITs over
//! raw sockets where the kernel has SCTP NAT but no SCTP stack).
//!
//! It never changes the machine's own namespace: every namespace it makes is
//! new, and every command it runs on the "host" side runs inside one of them.

pub mod check;
pub mod cluster;
pub mod cni;
pub mod echo;
pub mod error;
pub mod fabric;
pub mod netns;
pub mod probe;
pub mod sctp_raw;
pub mod topology;

pub use check::{parse_expectations, run_check, Expect, Expectation, Outcome};
pub use cluster::{Binaries, Cluster, PodRecord};
pub use cni::{CniCall, CniOutput, Conflist};
pub use echo::EchoServer;
pub use error::LabError;
pub use fabric::{DownReport, Fabric, FabricState, LabPaths, Target};
pub use netns::{run_in_netns, switched_hosts, unique_name, Netns};
pub use probe::{probe, ProbeResult, Proto};
pub use topology::Topology;
