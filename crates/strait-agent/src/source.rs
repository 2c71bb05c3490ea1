//! Where the agent reads the cluster from: a manifest directory (the lab,
//! clusterless hosts) or the Kubernetes API. Both give the same
//! [`Snapshot`]; the rest of the loop (compile, apply) does not know which.
//!
//! The API source has two states the manifest store has not: before its
//! first full list there is no snapshot (the agent stays not ready and
//! touches nothing), and while the API is unreachable the last snapshot is
//! kept (the kernel keeps what it has, drift is still repaired) but the
//! agent reports not ready.

use crate::watch::Watch;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use strait_kube::KubeSource;
use strait_model::{ManifestStore, Snapshot};

pub enum Source {
    Manifests {
        dir: PathBuf,
        /// inotify on the directory and the config's directory; `None`
        /// means polling a fingerprint of the directory instead.
        watch: Option<Watch>,
        event: bool,
        print: Vec<(String, u64, Option<SystemTime>)>,
    },
    Kube {
        source: KubeSource,
        seen: u64,
        /// Whether the last look found the source ready, to notice its
        /// return after an outage.
        was_ready: bool,
    },
}

/// A cheap fingerprint of the manifest directory: names, sizes, mtimes.
fn fingerprint(dir: &Path) -> Vec<(String, u64, Option<SystemTime>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    Some((
                        e.file_name().to_string_lossy().into_owned(),
                        m.len(),
                        m.modified().ok(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl Source {
    /// The manifest directory `dir`; `config` is watched too so config
    /// edits wake the loop.
    pub fn manifests(dir: &Path, config: &Path) -> Source {
        let config_dir = config
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let watch = match Watch::new(&[dir, config_dir]) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!(
                    "strait-agent: no inotify watch ({e}): polling {} instead",
                    dir.display()
                );
                None
            }
        };
        Source::Manifests {
            dir: dir.to_path_buf(),
            watch,
            event: false,
            print: fingerprint(dir),
        }
    }

    /// The Kubernetes API, connected as `connect` says.
    pub fn kube(connect: strait_kube::Connect) -> Result<Source, String> {
        let source = KubeSource::start(connect)?;
        Ok(Source::Kube {
            seen: source.generation(),
            source,
            was_ready: false,
        })
    }

    /// What `opts` asks for.
    pub fn open(opts: &crate::run::Options) -> Result<Source, String> {
        match &opts.kube {
            Some(connect) => Source::kube(connect.clone()),
            None => Ok(Source::manifests(&opts.manifests, &opts.config)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Manifests { dir, .. } => format!("manifests in {}", dir.display()),
            Source::Kube { source, .. } => format!("the Kubernetes API at {}", source.server()),
        }
    }

    /// The cluster as the source has it now.
    pub fn load(&self) -> Result<Snapshot, String> {
        match self {
            Source::Manifests { dir, .. } => ManifestStore::load(dir).map_err(|e| e.to_string()),
            Source::Kube { source, .. } => match source.snapshot() {
                Some((_, snap)) => Ok(snap),
                None => Err(format!(
                    "waiting for the first full list from {}: {}",
                    source.server(),
                    source.status().problems.join("; ")
                )),
            },
        }
    }

    /// Why the source is not ready, or `None` when it is. The manifest
    /// store is always ready.
    pub fn not_ready(&self) -> Option<String> {
        match self {
            Source::Manifests { .. } => None,
            Source::Kube { source, .. } => {
                let status = source.status();
                (!status.ready()).then(|| status.problems.join("; "))
            }
        }
    }

    /// (whether the source changed since the last call, whether it just
    /// came back after an outage: the caller then resyncs fully).
    pub fn changed(&mut self) -> (bool, bool) {
        match self {
            Source::Manifests {
                dir,
                watch,
                event,
                print,
            } => match watch {
                Some(_) => (std::mem::take(event), false),
                None => {
                    let now = fingerprint(dir);
                    let changed = now != *print;
                    *print = now;
                    (changed, false)
                }
            },
            Source::Kube {
                source,
                seen,
                was_ready,
            } => {
                let generation = source.generation();
                let changed = generation != *seen;
                *seen = generation;
                let ready = source.status().ready();
                let back = ready && !*was_ready;
                *was_ready = ready;
                (changed || back, back)
            }
        }
    }

    /// Kubernetes mode: blocks until every kind has been listed once, so
    /// the first sync sees the whole cluster (`/readyz` says 503 meanwhile
    /// and nothing is touched); says so every 10 s while it waits.
    pub fn wait_first_list(&mut self, log: impl Fn(String)) {
        let Source::Kube { source, .. } = self else {
            return;
        };
        let started = std::time::Instant::now();
        let mut next = Duration::from_secs(10);
        while source.snapshot().is_none() {
            source.wait(source.generation(), Duration::from_millis(200));
            if started.elapsed() >= next {
                next += Duration::from_secs(10);
                log(format!(
                    "still waiting for the first full list from {}: {}",
                    source.server(),
                    source.status().problems.join("; ")
                ));
            }
        }
    }

    /// Sleeps up to `timeout`, less if the source changes.
    pub fn wait(&mut self, timeout: Duration) {
        match self {
            Source::Manifests {
                watch: Some(w),
                event,
                ..
            } => *event |= w.wait(timeout),
            Source::Manifests { watch: None, .. } => std::thread::sleep(timeout),
            Source::Kube { source, seen, .. } => {
                source.wait(*seen, timeout);
            }
        }
    }
}
