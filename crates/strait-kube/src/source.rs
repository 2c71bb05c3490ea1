//! The Kubernetes API as a source: one kube-runtime watcher per kind, on a
//! thread of its own (the agent's loop is synchronous), feeding [`Shared`].
//!
//! kube-runtime's watcher does the protocol: paged lists, `resourceVersion`
//! on every watch, bookmarks (`allowWatchBookmarks`), relisting on
//! `410 Gone`. What this file adds: after any other error the watcher is
//! restarted from a fresh list (after kube's default backoff, 0.8 s doubling
//! to 30 s), so that every outage ends with a full resync and a definite
//! "listed" signal that turns readiness back on. A resumed watch on an idle
//! cluster would otherwise give no sign that the API is back.

use crate::state::{trim, Shared, Status};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::watcher::{self, DefaultBackoff, Event};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use strait_model::{Kind, Object, Snapshot};
use tokio::sync::oneshot;

/// Where the API server and credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connect {
    /// A kubeconfig file (`--kubeconfig`).
    Kubeconfig(PathBuf),
    /// In a pod: the service account (`KUBERNETES_SERVICE_HOST` is set);
    /// elsewhere `$KUBECONFIG` or `~/.kube/config`.
    Infer,
    /// A plain URL without credentials (tests, `kubectl proxy`).
    Url(String),
}

async fn config(connect: &Connect) -> Result<kube::Config, String> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    match connect {
        Connect::Kubeconfig(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))
        }
        Connect::Infer if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
            kube::Config::incluster().map_err(|e| format!("in-cluster config: {e}"))
        }
        Connect::Infer => kube::Config::infer()
            .await
            .map_err(|e| format!("no kubeconfig and not in a pod: {e}")),
        Connect::Url(url) => {
            let uri = url
                .parse()
                .map_err(|e| format!("API server URL {url:?}: {e}"))?;
            Ok(kube::Config::new(uri))
        }
    }
}

/// The running source. Dropping it stops the watchers.
pub struct KubeSource {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    server: String,
}

impl KubeSource {
    /// Connects (config errors are returned here) and starts the watchers.
    pub fn start(connect: Connect) -> Result<KubeSource, String> {
        let shared = Arc::new(Shared::default());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<String, String>>();
        let inner = shared.clone();
        let thread = std::thread::Builder::new()
            .name("strait-kube".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("tokio runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let client = match config(&connect).await.and_then(|c| {
                        let url = c.cluster_url.to_string();
                        Client::try_from(c)
                            .map(|client| (client, url))
                            .map_err(|e| format!("Kubernetes client: {e}"))
                    }) {
                        Ok((client, url)) => {
                            let _ = ready_tx.send(Ok(url));
                            client
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    tokio::select! {
                        _ = stop_rx => {}
                        _ = watch_all(client, inner) => {}
                    }
                });
            })
            .map_err(|e| format!("starting the Kubernetes watcher thread: {e}"))?;
        let server = ready_rx
            .recv()
            .map_err(|_| "the Kubernetes watcher thread ended early".to_string())??;
        Ok(KubeSource {
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
            server,
        })
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// The cluster once every kind has been listed (`None` before), with the
    /// generation it was taken at.
    pub fn snapshot(&self) -> Option<(u64, Snapshot)> {
        self.shared.snapshot()
    }

    /// Bumped on every change (object or status).
    pub fn generation(&self) -> u64 {
        self.shared.generation()
    }

    /// Sleeps until the generation moves past `seen` or `timeout` passed.
    pub fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        self.shared.wait(seen, timeout)
    }
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn watch_all(client: Client, shared: Arc<Shared>) {
    tokio::join!(
        watch_kind::<Namespace>(
            client.clone(),
            shared.clone(),
            Kind::Namespace,
            Object::Namespace
        ),
        watch_kind::<Node>(client.clone(), shared.clone(), Kind::Node, Object::Node),
        watch_kind::<Pod>(client.clone(), shared.clone(), Kind::Pod, Object::Pod),
        watch_kind::<Service>(
            client.clone(),
            shared.clone(),
            Kind::Service,
            Object::Service
        ),
        watch_kind::<EndpointSlice>(
            client.clone(),
            shared.clone(),
            Kind::EndpointSlice,
            Object::EndpointSlice
        ),
        watch_kind::<NetworkPolicy>(client, shared, Kind::NetworkPolicy, Object::NetworkPolicy),
    );
}

/// Whether a watcher error is a watch's "your resourceVersion is too old"
/// (410 Gone): routine after etcd compaction, answered by a relist at once
/// (a list itself never asks for an old version, so a 410 there is an
/// error like any other and waits for the backoff).
fn is_gone(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::WatchError(s) => s.code == 410,
        watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 410,
        _ => false,
    }
}

async fn watch_kind<K>(client: Client, shared: Arc<Shared>, kind: Kind, wrap: fn(K) -> Object)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let api: Api<K> = Api::all(client);
    let mut backoff = DefaultBackoff::default();
    loop {
        let mut stream = std::pin::pin!(watcher::watcher(api.clone(), watcher::Config::default()));
        // A full list is gathered in a scratch snapshot, so each object is
        // trimmed (and an EndpointSlice made slim) as it arrives instead of
        // the whole list waiting in its k8s-openapi form.
        let mut listing = Snapshot::default();
        let error = loop {
            match stream.next().await {
                Some(Ok(Event::Init)) => listing = Snapshot::default(),
                Some(Ok(Event::InitApply(o))) => {
                    listing.apply(trim(wrap(o)));
                }
                Some(Ok(Event::InitDone)) => {
                    shared.replace(kind, std::mem::take(&mut listing));
                    kube::runtime::utils::Backoff::reset(&mut backoff);
                }
                Some(Ok(Event::Apply(o))) => shared.apply(wrap(o)),
                Some(Ok(Event::Delete(o))) => {
                    shared.delete(kind, o.namespace().as_deref(), &o.name_any())
                }
                Some(Err(e)) => break Some(e),
                // kube's watcher never ends; if it did, start over.
                None => break None,
            }
        };
        if error.as_ref().is_some_and(is_gone) {
            continue;
        }
        let message = error.map_or_else(|| "watch stream ended".into(), |e| e.to_string());
        shared.failed(kind, message);
        let wait = backoff.next().unwrap_or(Duration::from_secs(30));
        tokio::time::sleep(wait).await;
    }
}
