//! Named network namespaces (`ip netns`), removed when dropped.

use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// A name no other test or process on this machine is using: the prefix, our
/// pid and a counter (namespace names are limited only by the filesystem).
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace under /run/netns, deleted on drop (processes still
/// inside keep it alive until they exit, as with `ip netns del`).
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates the namespace with its loopback up, as a runtime does.
    pub fn new(name: impl Into<String>) -> io::Result<Self> {
        let name = name.into();
        run_ok(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn unique(prefix: &str) -> io::Result<Self> {
        Self::new(unique_name(prefix))
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// A command that will run inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `argv` inside the namespace; output whatever the exit status.
    pub fn exec(&self, argv: &[&str]) -> io::Result<Output> {
        let (program, rest) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        self.command(program).args(rest).output()
    }

    /// Runs `argv` inside the namespace and fails unless it exits 0.
    pub fn exec_ok(&self, argv: &[&str]) -> io::Result<String> {
        let (program, rest) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        run_ok(self.command(program).args(rest))
    }

    /// Runs `f` on a fresh thread that has entered this namespace, so sockets
    /// it opens live here. The caller's thread never changes namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
        run_in_netns(&self.path(), f)
    }
}

/// Hosts on one L2 segment, for tests: a namespace `<switch_prefix>-...`
/// holding bridge `br0` (up) and, per address (`ip/prefix`), a namespace
/// `<host_prefix>-...` whose `eth0` has that address and is a veth into the
/// bridge (`eth0` and `lo` up). Everything goes when the values drop.
pub fn switched_hosts(
    switch_prefix: &str,
    host_prefix: &str,
    addrs: &[&str],
) -> io::Result<(Netns, Vec<Netns>)> {
    let switch = Netns::unique(switch_prefix)?;
    switch.exec_ok(&["ip", "link", "add", "br0", "type", "bridge"])?;
    switch.exec_ok(&["ip", "link", "set", "br0", "up"])?;
    let mut hosts = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let host = Netns::unique(host_prefix)?;
        // Port names only need to be unique inside the switch namespace.
        let port = format!("p{i}");
        switch.exec_ok(&[
            "ip", "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &host.name,
        ])?;
        switch.exec_ok(&["ip", "link", "set", &port, "master", "br0", "up"])?;
        host.exec_ok(&["ip", "addr", "add", addr, "dev", "eth0"])?;
        host.exec_ok(&["ip", "link", "set", "eth0", "up"])?;
        host.exec_ok(&["ip", "link", "set", "lo", "up"])?;
        hosts.push(host);
    }
    Ok((switch, hosts))
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs `f` on a fresh thread that has entered the network namespace at
/// `path` (`/run/netns/NAME` or `/proc/PID/ns/net`); the caller's thread
/// never changes namespace. Fails if the namespace cannot be entered.
pub fn run_in_netns<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let file = File::open(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("opening namespace {}: {e}", path.display()),
        )
    })?;
    let shown = path.display().to_string();
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| io::Error::other(format!("entering namespace {shown}: {e}")))?;
        Ok(f())
    })
    .join()
    .map_err(|_| io::Error::other("thread inside the namespace panicked"))?
}

/// Runs a command; its stdout on success, stderr in the error otherwise.
pub fn run_ok(cmd: &mut Command) -> io::Result<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{:?} failed ({}): {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
