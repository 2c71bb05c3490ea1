//! The lab fixture shared by the end-to-end suites: a lab of its own per
//! test (unique name, own state directory), torn down on drop.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use strait_lab::topology::NsKind;
use strait_lab::{probe, Binaries, Cluster, LabPaths, ProbeResult, Proto, Topology};

pub struct Lab {
    pub cluster: Cluster,
    pub topo: Topology,
    _api: Option<LabApi>,
    _dir: tempfile::TempDir,
}

/// With `STRAIT_LAB_SOURCE=kube` the agents run in Kubernetes mode: a fake
/// API server in the lab's router namespace (on its node-network address,
/// port 6443) serves the lab's manifest directory, mirrored into it on
/// every change (inotify), and the agents read it through a kubeconfig. The suites run
/// unchanged either way.
pub fn kube_mode() -> bool {
    std::env::var("STRAIT_LAB_SOURCE").as_deref() == Ok("kube")
}

pub struct LabApi {
    api: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<strait_kube::fake_api::FakeApi>>>>,
    manifests: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LabApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lab_api(cluster: &mut Cluster, topo: &Topology, dir: &std::path::Path) -> LabApi {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let addr = std::net::SocketAddr::from((topo.router.underlay_ip, 6443));
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster: {{server: \"http://{addr}\"}}\nusers:\n- name: nobody\n  user: {{}}\ncontexts:\n- name: lab\n  context: {{cluster: lab, user: nobody}}\ncurrent-context: lab\n"
        ),
    )
    .unwrap();
    cluster.kubeconfig = Some(kubeconfig);
    let router = PathBuf::from("/run/netns").join(topo.netns(NsKind::Router, "router"));
    let manifests = cluster.manifests(&topo.name);
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let shared = Arc::new(std::sync::Mutex::new(None));
    let api_slot = shared.clone();
    let watched = manifests.clone();
    let thread = std::thread::spawn(move || {
        let manifests = watched;
        // The router namespace and its address appear during `up`.
        let api = loop {
            if stopped.load(Ordering::Relaxed) {
                return;
            }
            let started = strait_lab::run_in_netns(&router, move || {
                strait_kube::fake_api::FakeApi::try_start_at(addr)
            });
            if let Ok(Ok(api)) = started {
                let api = Arc::new(api);
                *api_slot.lock().unwrap() = Some(api.clone());
                break api;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // inotify, as the manifest-mode agents use: a write is mirrored
        // as soon as it lands.
        let watch = loop {
            match strait_agent::watch::Watch::new(&[&manifests]) {
                Ok(w) => break w,
                // The directory is made a moment after the namespaces.
                Err(_) if !stopped.load(Ordering::Relaxed) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(_) => return,
            }
        };
        while !stopped.load(Ordering::Relaxed) {
            if let Ok(snap) = strait_model::ManifestStore::load(&manifests) {
                api.mirror(&snap);
            }
            watch.wait(Duration::from_millis(50));
        }
    });
    LabApi {
        api: shared,
        manifests,
        stop,
        thread: Some(thread),
    }
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
    let mut cluster = Cluster::new(LabPaths::new(dir.path()), bins());
    let api = kube_mode().then(|| lab_api(&mut cluster, &topo, dir.path()));
    cluster
        .up(&topo, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("lab up: {e}"));
    if api.is_some() {
        for node in &topo.nodes {
            let log = cluster.node_dir(&topo.name, &node.name).join("agent.log");
            let log = std::fs::read_to_string(log).unwrap_or_default();
            assert!(
                log.contains("reading the Kubernetes API at http://"),
                "{}: not in Kubernetes mode:\n{log}",
                node.name
            );
        }
    }
    Lab {
        cluster,
        topo,
        _api: api,
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
        self.settle_api();
    }

    /// Kubernetes mode: the API has sent everything just written to every
    /// watch, and the agents have had a moment to sync it (manifest-mode
    /// agents see a write through inotify as it lands; this keeps the
    /// suites' timing assumptions the same).
    pub fn settle_api(&self) {
        let Some(lab_api) = &self._api else { return };
        let api = lab_api.api.lock().unwrap().clone();
        if let Some(api) = api {
            if let Ok(snap) = strait_model::ManifestStore::load(&lab_api.manifests) {
                api.mirror(&snap);
            }
            assert!(
                api.wait_delivered(Duration::from_secs(10)),
                "API watches stuck"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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
