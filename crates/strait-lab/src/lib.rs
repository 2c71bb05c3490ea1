//! The runtime side of strait's tests, demo and benchmarks: named network
//! namespaces that clean up after themselves, and a CNI runtime that runs a
//! plugin or a conflist the way libcni does.
//!
//! It never changes the machine's own namespace: every namespace it makes is
//! new, and every command it runs on the "host" side runs inside one of them.

pub mod cni;
pub mod netns;

pub use cni::{CniCall, CniOutput, Conflist};
pub use netns::{unique_name, Netns};
