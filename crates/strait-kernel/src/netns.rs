//! Entering network namespaces safely.
//!
//! `setns` changes only the calling thread. The plugin is single-threaded
//! and enters a pod's namespace exactly once, to open a netlink socket there,
//! then returns to its own namespace at once; everything after that drives
//! the pod from host code through that socket (the idea netavark uses).

use crate::netlink::Netlink;
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::io;
use std::path::Path;

/// An open handle on a network namespace (keeps it alive while held).
pub struct NetnsHandle {
    pub file: File,
}

impl NetnsHandle {
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        Ok(NetnsHandle { file })
    }

    /// A netlink socket that lives in this namespace.
    pub fn netlink(&self) -> io::Result<Netlink> {
        let home = File::open("/proc/thread-self/ns/net")?;
        setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        let opened = Netlink::open();
        if let Err(e) = setns(&home, CloneFlags::CLONE_NEWNET) {
            // Carrying on in the pod's namespace would change the wrong
            // host; stop here rather than risk it.
            eprintln!("strait-cni: cannot return to the host network namespace: {e}");
            std::process::abort();
        }
        opened
    }
}
