//! Fixture for root lab tests: a lab with a name no other test (or a user's
//! `strait` lab) uses, its state under a temporary directory, and `down` on
//! drop, so a failing test still removes everything it made.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use strait_lab::{probe, Fabric, FabricState, LabPaths, ProbeResult, Proto, Target, Topology};

/// `t<pid><n>`: unique per test process and per call.
pub fn lab_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The default topology under a unique lab name.
pub fn topology() -> Topology {
    let mut t = Topology::default_lab();
    t.name = lab_name();
    t
}

pub struct TestLab {
    pub fabric: Fabric,
    pub state: FabricState,
    pub dir: tempfile::TempDir,
}

impl TestLab {
    pub fn up(topo: &Topology) -> TestLab {
        let dir = tempfile::tempdir().expect("tempdir");
        let fabric = Fabric::new(LabPaths::new(dir.path()));
        // Remove anything a killed earlier run with this name left behind.
        fabric.down(&topo.name).expect("pre-clean");
        let state = match fabric.up(topo) {
            Ok(s) => s,
            Err(e) => {
                let _ = fabric.down(&topo.name);
                panic!("lab up: {e}");
            }
        };
        TestLab { fabric, state, dir }
    }

    pub fn lab(&self) -> &str {
        &self.state.lab
    }

    pub fn target(s: &str) -> Target {
        s.parse().expect("target")
    }

    /// Probes from a lab member.
    pub fn probe(&self, from: &str, to: &str, port: u16, proto: Proto) -> ProbeResult {
        self.probe_within(from, to, port, proto, Duration::from_secs(2))
    }

    pub fn probe_within(
        &self,
        from: &str,
        to: &str,
        port: u16,
        proto: Proto,
        timeout: Duration,
    ) -> ProbeResult {
        let path = self.state.netns_path(&Self::target(from)).expect("member");
        let to: IpAddr = to.parse().expect("address");
        probe(&path, to, port, proto, timeout).expect("probe could be made")
    }

    /// Runs a command in a member; its stdout, failing the test on error.
    pub fn exec(&self, target: &str, argv: &[&str]) -> String {
        let out = self.state.exec(&Self::target(target), argv).expect("exec");
        assert!(
            out.status.success(),
            "{argv:?} in {target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        if let Err(e) = self.fabric.down(&self.state.lab) {
            eprintln!("lab down {}: {e}", self.state.lab);
        }
    }
}

/// Every namespace on the machine whose name starts with `<lab>-`.
pub fn namespaces_of(lab: &str) -> Vec<String> {
    let prefix = format!("{lab}-");
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}
