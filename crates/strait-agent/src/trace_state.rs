//! What `strait trace` and `strait doctor` read on a node: after every
//! compile, the agent publishes its inputs in `<node file's dir>/state/`
//! (`/run/strait/state/` by default), each file written atomically:
//!
//! - `config.json`: the agent config in force.
//! - `local-node.json`: this node's [`LocalNode`] (underlay address,
//!   prefix, device, MTU).
//! - `snapshot.yaml`: the cluster snapshot, one JSON document per object,
//!   separated by `---` (readable by `strait_model::parse_manifests`).
//!
//! The tools compile any node's Plan from these with `strait_plan::compile`
//! (peers' LocalNodes derived from their Node objects). Failing to write is
//! logged by the caller and never fails a sync.

use crate::node_file::{write_if_changed, write_stream_if_changed};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use strait_model::{AgentConfig, Snapshot};
use strait_plan::LocalNode;

pub const CONFIG_FILE: &str = "config.json";
pub const LOCAL_NODE_FILE: &str = "local-node.json";
pub const SNAPSHOT_FILE: &str = "snapshot.yaml";

/// The state directory beside the node file.
pub fn dir_for(node_file: &Path) -> PathBuf {
    node_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("state")
}

/// `---` and one JSON document per object, straight from the snapshot's
/// lists into `out` (neither a copy of the objects nor the whole text in
/// memory: at 10,000 Services the text is 10 MB).
fn write_snapshot(out: &mut dyn Write, snap: &Snapshot) -> std::io::Result<()> {
    fn push<T: serde::Serialize>(out: &mut dyn Write, list: &[T]) -> std::io::Result<()> {
        for o in list {
            out.write_all(b"---\n")?;
            serde_json::to_writer(&mut *out, o)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
    push(out, &snap.namespaces)?;
    push(out, &snap.nodes)?;
    push(out, &snap.pods)?;
    push(out, &snap.services)?;
    push(out, &snap.endpoint_slices)?;
    push(out, &snap.network_policies)
}

/// Writes the three files into `dir`.
pub fn write(
    dir: &Path,
    cfg: &AgentConfig,
    local: &LocalNode,
    snap: &Snapshot,
) -> Result<(), String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{}/{what}: {e}", dir.display());
    let cfg_text = serde_json::to_string_pretty(cfg).map_err(|e| fail(CONFIG_FILE, &e))?;
    let local_text = serde_json::to_string_pretty(local).map_err(|e| fail(LOCAL_NODE_FILE, &e))?;
    for (name, text) in [(CONFIG_FILE, cfg_text), (LOCAL_NODE_FILE, local_text)] {
        write_if_changed(&dir.join(name), &text).map_err(|e| fail(name, &e))?;
    }
    write_stream_if_changed(&dir.join(SNAPSHOT_FILE), |out| write_snapshot(out, snap))
        .map_err(|e| fail(SNAPSHOT_FILE, &e))?;
    Ok(())
}

/// [`write`] into [`dir_for`]`(node_file)`; a failure is logged, not
/// returned (the sync goes on).
pub fn publish(node_file: &Path, cfg: &AgentConfig, local: &LocalNode, snap: &Snapshot) {
    if let Err(e) = write(&dir_for(node_file), cfg, local, snap) {
        eprintln!("strait-agent: trace state not written: {e}");
    }
}

/// One state to write.
struct Job {
    node_file: PathBuf,
    cfg: AgentConfig,
    local: LocalNode,
    snap: Arc<Snapshot>,
}

/// Where [`Publisher::publish`] writes: at once (the default, for one-shot
/// syncs), or on a thread of its own that writes the latest state handed
/// over and skips the ones it had no time for.
#[derive(Default)]
pub struct Publisher {
    /// The background thread's slot; `None`: write at once.
    slot: Option<Arc<(Mutex<Option<Job>>, Condvar)>>,
}

impl Publisher {
    pub fn background() -> Publisher {
        let slot: Arc<(Mutex<Option<Job>>, Condvar)> = Arc::default();
        let theirs = Arc::clone(&slot);
        let spawned = std::thread::Builder::new()
            .name("trace-state".into())
            .spawn(move || loop {
                let (lock, ready) = &*theirs;
                let held = lock.lock().unwrap_or_else(|e| e.into_inner());
                let job = ready
                    .wait_while(held, |next| next.is_none())
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                if let Some(job) = job {
                    publish(&job.node_file, &job.cfg, &job.local, &job.snap);
                }
            });
        match spawned {
            Ok(_) => Publisher { slot: Some(slot) },
            Err(e) => {
                eprintln!("strait-agent: trace state written inline (no thread: {e})");
                Publisher::default()
            }
        }
    }

    /// Writes (or hands over) the state of one compile.
    pub fn publish(
        &self,
        node_file: &Path,
        cfg: &AgentConfig,
        local: &LocalNode,
        snap: &Arc<Snapshot>,
    ) {
        match &self.slot {
            None => publish(node_file, cfg, local, snap),
            Some(slot) => {
                let (lock, ready) = &**slot;
                *lock.lock().unwrap_or_else(|e| e.into_inner()) = Some(Job {
                    node_file: node_file.to_path_buf(),
                    cfg: cfg.clone(),
                    local: local.clone(),
                    snap: Arc::clone(snap),
                });
                ready.notify_one();
            }
        }
    }
}

/// What [`write`] wrote, read back.
pub fn read(dir: &Path) -> Result<(AgentConfig, LocalNode, Snapshot), String> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| {
            format!(
                "{}/{name}: {e} (is the agent running on this node? it writes this after every sync)",
                dir.display()
            )
        })
    };
    let cfg: AgentConfig = serde_json::from_str(&read(CONFIG_FILE)?)
        .map_err(|e| format!("{}/{CONFIG_FILE}: {e}", dir.display()))?;
    cfg.validate()
        .map_err(|e| format!("{}/{CONFIG_FILE}: {e}", dir.display()))?;
    let local: LocalNode = serde_json::from_str(&read(LOCAL_NODE_FILE)?)
        .map_err(|e| format!("{}/{LOCAL_NODE_FILE}: {e}", dir.display()))?;
    let objects = strait_model::parse_manifests(&read(SNAPSHOT_FILE)?, SNAPSHOT_FILE)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok((cfg, local, Snapshot::from_objects(objects)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(cluster_ip: &str) -> (AgentConfig, LocalNode, Snapshot) {
        let cfg = AgentConfig::from_yaml("clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\nnonMasqueradeCIDRs: [192.168.2.0/24]\n").unwrap();
        let local = LocalNode {
            name: "node-1".into(),
            underlay_ip: "192.168.1.11".parse().unwrap(),
            underlay_prefix: 24,
            underlay_dev: "eth0".into(),
            underlay_mtu: 1500,
        };
        let snap = Snapshot::from_objects(
            strait_model::parse_manifests(
                &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: node-1}}\nspec: {{podCIDR: 10.42.1.0/24}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: demo}}\nspec: {{clusterIP: {cluster_ip}, ports: [{{port: 80}}]}}\n"),
                "t",
            )
            .unwrap(),
        );
        (cfg, local, snap)
    }

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, local, snap) = inputs("10.43.0.10");
        write(dir.path(), &cfg, &local, &snap).unwrap();
        let (c, l, s) = read(dir.path()).unwrap();
        assert_eq!((c, l, s), (cfg, local, snap));
        let err = read(&dir.path().join("nope")).unwrap_err();
        assert!(err.contains("is the agent running"), "{err}");
    }

    /// The background writer ends with the last state handed over.
    #[test]
    fn the_background_writer_writes_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let node_file = dir.path().join("node.json");
        let publisher = Publisher::background();
        let mut last = None;
        for i in 1..=20 {
            let (cfg, local, snap) = inputs(&format!("10.43.0.{i}"));
            let snap = Arc::new(snap);
            publisher.publish(&node_file, &cfg, &local, &snap);
            last = Some((cfg, local, snap));
        }
        let (cfg, local, snap) = last.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Ok(read_back) = read(&dir_for(&node_file)) {
                if read_back == (cfg.clone(), local.clone(), Snapshot::clone(&snap)) {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the last state was not written within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
