//! Tearing a lab down whatever state it is in (after a crash, a kill -9, a
//! half-built `up`, a corrupt state file): processes inside its namespaces
//! are killed, its namespaces deleted, its state directory removed.

use super::{Fabric, NETNS_DIR};
use crate::error::LabError;
use crate::topology::is_lab_netns;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What `down` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownReport {
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
    /// Processes that were still inside them and were signalled.
    pub killed: Vec<i32>,
}

impl Fabric {
    /// Removes lab `lab` whatever state it is in: every process inside one of
    /// its namespaces is sent SIGTERM, then SIGKILL if still there after a
    /// short wait; every namespace `<lab>-<kind>...` is deleted; the state
    /// directory is removed. Reads no state file; running it again is a no-op.
    pub fn down(&self, lab: &str) -> Result<DownReport, LabError> {
        if lab.is_empty() || lab.contains('/') || lab.contains('-') {
            return Err(LabError::topology(
                "name",
                format!("{lab:?} is not a lab name"),
            ));
        }
        let names = lab_namespaces(lab)?;
        let paths: Vec<PathBuf> = names.iter().map(|n| Path::new(NETNS_DIR).join(n)).collect();
        let killed = kill_all(&paths);
        let mut failures = Vec::new();
        for name in &names {
            let out = Command::new("ip").args(["netns", "del", name]).output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) if !Path::new(NETNS_DIR).join(name).exists() => {
                    let _ = o; // deleted concurrently: that is what we wanted
                }
                Ok(o) => failures.push(format!(
                    "{name}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        let dir = self.paths.lab_dir(lab);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LabError::io("removing lab directory", &dir)(e)),
        }
        if !failures.is_empty() {
            return Err(LabError::Command {
                what: format!("removing lab {lab}"),
                command: "ip netns del".into(),
                detail: failures.join("; "),
            });
        }
        Ok(DownReport {
            namespaces: names,
            killed,
        })
    }
}

/// The names in /run/netns that belong to lab `lab`, sorted.
pub fn lab_namespaces(lab: &str) -> Result<Vec<String>, LabError> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io("listing namespaces", NETNS_DIR)(e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| is_lab_netns(lab, n))
        .collect();
    names.sort();
    Ok(names)
}

/// The processes whose network namespace is one of `paths` (what
/// `ip netns pids` prints), never this process.
pub fn netns_pids(paths: &[PathBuf]) -> Vec<i32> {
    let ids: Vec<(u64, u64)> = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let me = std::process::id() as i32;
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc_dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me && pid > 1)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| ids.contains(&(m.dev(), m.ino())))
                .unwrap_or(false)
        })
        .collect()
}

/// SIGTERM to every process in the namespaces, up to 1 s for them to go,
/// then SIGKILL and up to 2 s more. Returns the processes signalled.
fn kill_all(paths: &[PathBuf]) -> Vec<i32> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let first = netns_pids(paths);
    if first.is_empty() {
        return first;
    }
    for &pid in &first {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let wait = |limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            let left = netns_pids(paths);
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let left = wait(Duration::from_secs(1));
    for &pid in &left {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    if !left.is_empty() {
        wait(Duration::from_secs(2));
    }
    let mut all = first;
    for pid in left {
        if !all.contains(&pid) {
            all.push(pid);
        }
    }
    all
}
