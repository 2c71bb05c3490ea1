//! The lab fixture shared by the end-to-end suites: a lab of its own per
//! test (unique name, own state directory), torn down on drop.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use strait_lab::{probe, Binaries, Cluster, LabPaths, ProbeResult, Proto, Topology};

pub struct Lab {
    pub cluster: Cluster,
    pub topo: Topology,
    _dir: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.cluster.fabric.down(&self.topo.name);
    }
}

pub fn bins() -> Binaries {
    let strait = PathBuf::from(env!("CARGO_BIN_EXE_strait"));
    let dir = strait.parent().unwrap().to_path_buf();
    assert!(
        dir.join("strait-cni").is_file(),
        "strait-cni is not built next to strait in {} (run the workspace tests: cargo test --workspace)",
        dir.display()
    );
    Binaries {
        strait,
        cni_dir: dir,
    }
}

pub fn lab_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "e{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The default topology under a unique name, changed by `edit`.
pub fn up(edit: impl FnOnce(&mut Topology)) -> Lab {
    let mut topo = Topology::default_lab();
    topo.name = lab_name();
    edit(&mut topo);
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::new(LabPaths::new(dir.path()), bins());
    cluster
        .up(&topo, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("lab up: {e}"));
    Lab {
        cluster,
        topo,
        _dir: dir,
    }
}

pub fn pod(ns: &str, name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  nodeName: {node}\n  containers:\n  - name: c\n    image: echo\n    ports: [{{containerPort: 80}}, {{containerPort: 80, protocol: UDP}}]\n---\n"
    )
}

impl Lab {
    pub fn apply(&self, yaml: &str) {
        self.cluster
            .apply(&self.topo.name, yaml, "test.yaml")
            .unwrap_or_else(|e| panic!("apply: {e}"));
    }

    pub fn probe(&self, from: &str, to: &str, port: u16, proto: Proto) -> ProbeResult {
        let state = self.cluster.fabric.state(&self.topo.name).unwrap();
        let src = self.cluster.endpoint(&state, from).unwrap();
        let dst = self.cluster.endpoint(&state, to).unwrap();
        probe(
            &src.netns,
            dst.ip.unwrap(),
            port,
            proto,
            Duration::from_millis(1500),
        )
        .unwrap()
    }

    /// The answer line, or a panic naming what happened instead.
    pub fn reach(&self, from: &str, to: &str, port: u16, proto: Proto) -> String {
        match self.probe(from, to, port, proto) {
            ProbeResult::Answered(line) => line,
            other => panic!("{from} -> {to} {proto}/{port}: {other}"),
        }
    }

    pub fn pod_ip(&self, ns: &str, name: &str) -> String {
        self.cluster
            .pod_record(&self.topo.name, ns, name)
            .unwrap()
            .ip
    }

    pub fn node_exec(&self, node: &str, argv: &[&str]) -> String {
        let state = self.cluster.fabric.state(&self.topo.name).unwrap();
        let out = state
            .exec(&strait_lab::Target::Node(node.into()), argv)
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls `f` until it holds or `secs` pass.
    pub fn eventually(&self, secs: u64, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("not within {secs}s: {what}");
    }
}
