//! A fake Kubernetes API server for tests: plain HTTP/1.1 on 127.0.0.1,
//! speaking the API's list and watch wire format for the six collections
//! strait reads. Lists are JSON with `metadata.resourceVersion`; watches
//! are chunked streams of `{"type": ..., "object": ...}` lines (ADDED,
//! MODIFIED, DELETED, BOOKMARK, ERROR with a 410 Status).
//!
//! What it does not do: authentication, pagination (`limit` is ignored, so
//! every list is one page), label/field selectors, server-side apply. The
//! test controls it from synchronous code: change objects, send bookmarks,
//! expire watches (410), and take the server down and up on the same port.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use strait_model::{Kind, Object};
use tokio::sync::watch;

mod wire;
use wire::serve;

/// The collection URL of a kind (cluster-wide, as the watchers use them).
pub fn collection(kind: Kind) -> &'static str {
    match kind {
        Kind::Namespace => "/api/v1/namespaces",
        Kind::Node => "/api/v1/nodes",
        Kind::Pod => "/api/v1/pods",
        Kind::Service => "/api/v1/services",
        Kind::EndpointSlice => "/apis/discovery.k8s.io/v1/endpointslices",
        Kind::NetworkPolicy => "/apis/networking.k8s.io/v1/networkpolicies",
    }
}

struct WatchEvent {
    rv: u64,
    kind: Kind,
    kind_of_event: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    rv: u64,
    /// (kind, namespace, name) -> object with its resourceVersion.
    objects: BTreeMap<(Kind, String, String), Value>,
    events: Vec<WatchEvent>,
    /// Watches opened at or before this count get a 410 and are closed.
    expired: u64,
    /// Watches opened at or before this count end cleanly (a timeout).
    ended: u64,
    bookmarks: u64,
    up: bool,
    /// The listening socket exists (set by the server task).
    listening: bool,
    watches_opened: u64,
    open_watches: usize,
    /// Per open watch: the resourceVersion up to which it has written
    /// (and flushed) events.
    positions: BTreeMap<u64, u64>,
    requests: Vec<String>,
}

/// The running server. Dropping it stops it.
pub struct FakeApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    bump: watch::Sender<u64>,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn key_of(obj: &Value) -> Result<(Kind, String, String), String> {
    let kind_name = obj["kind"].as_str().unwrap_or_default();
    let kind = Kind::from_name(kind_name).ok_or_else(|| format!("kind {kind_name:?}"))?;
    let name = obj["metadata"]["name"]
        .as_str()
        .ok_or("metadata.name missing")?
        .to_string();
    let ns = if kind.is_namespaced() {
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string()
    } else {
        String::new()
    };
    Ok((kind, ns, name))
}

impl FakeApi {
    /// Starts serving on a free port of 127.0.0.1.
    pub fn start() -> FakeApi {
        FakeApi::start_on(std::net::Ipv4Addr::LOCALHOST.into())
    }

    /// Starts serving on a free port of `ip`, in the network namespace of
    /// the calling thread (the server's thread inherits it).
    pub fn start_on(ip: std::net::IpAddr) -> FakeApi {
        let std_listener = std::net::TcpListener::bind((ip, 0))
            .unwrap_or_else(|e| panic!("fake API: bind {ip}: {e}"));
        let addr = std_listener.local_addr().expect("local_addr");
        drop(std_listener);
        FakeApi::start_at(addr)
    }

    /// Starts serving on `addr` if it can be bound now (in the calling
    /// thread's network namespace).
    pub fn try_start_at(addr: SocketAddr) -> Result<FakeApi, String> {
        drop(std::net::TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?);
        Ok(FakeApi::start_at(addr))
    }

    fn start_at(addr: SocketAddr) -> FakeApi {
        let state = Arc::new(Mutex::new(State {
            up: true,
            ..State::default()
        }));
        let (bump, bumps) = watch::channel(0u64);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                tokio::select! {
                    _ = stopped => {}
                    _ = serve(addr, st, bumps) => {}
                }
            });
        });
        let api = FakeApi {
            addr,
            state,
            bump,
            thread: Some(thread),
            stop: Some(stop),
        };
        api.wait_listening(true);
        api
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.bump.send_modify(|g| *g += 1);
    }

    fn wait_listening(&self, listening: bool) {
        for _ in 0..500 {
            if self.lock().listening == listening {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!(
            "fake API at {} never became listening={listening}",
            self.addr
        );
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig pointing at this server, without credentials.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\nusers:\n- name: nobody\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: nobody}}\ncurrent-context: fake\n",
            self.url()
        )
    }

    /// Creates or replaces an object (a JSON or YAML-derived value with
    /// `kind` and `metadata.name`); watches get ADDED or MODIFIED.
    pub fn apply(&self, mut obj: Value) {
        let key = key_of(&obj).unwrap_or_else(|e| panic!("fake API apply: {e}: {obj}"));
        let mut s = self.lock();
        s.rv += 1;
        let rv = s.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        if key.0.is_namespaced() {
            obj["metadata"]["namespace"] = json!(key.1);
        }
        let kind_of_event = if s.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        s.objects.insert(key.clone(), obj.clone());
        s.events.push(WatchEvent {
            rv,
            kind: key.0,
            kind_of_event,
            object: obj,
        });
        drop(s);
        self.changed();
    }

    /// Makes the served objects equal `snap`'s: applies what is new or
    /// different, deletes what is gone (each as a watch event). The lab's
    /// Kubernetes-mode variant mirrors its manifest directory this way.
    pub fn mirror(&self, snap: &strait_model::Snapshot) {
        let mut wanted = BTreeMap::new();
        for o in snap.objects() {
            let value = match &o {
                Object::Namespace(x) => serde_json::to_value(x),
                Object::Node(x) => serde_json::to_value(x),
                Object::Pod(x) => serde_json::to_value(x),
                Object::Service(x) => serde_json::to_value(x),
                Object::EndpointSlice(x) => serde_json::to_value(x),
                Object::NetworkPolicy(x) => serde_json::to_value(x),
            };
            let Ok(value) = value else { continue };
            if let Ok(key) = key_of(&value) {
                wanted.insert(key, value);
            }
        }
        let (stale, changed) = {
            let s = self.lock();
            let stale: Vec<_> = s
                .objects
                .keys()
                .filter(|k| !wanted.contains_key(*k))
                .cloned()
                .collect();
            let changed: Vec<Value> = wanted
                .iter()
                .filter(|(k, v)| {
                    s.objects.get(*k).is_none_or(|old| {
                        let mut old = old.clone();
                        if let Some(m) = old["metadata"].as_object_mut() {
                            m.remove("resourceVersion");
                        }
                        old != **v
                    })
                })
                .map(|(_, v)| v.clone())
                .collect();
            (stale, changed)
        };
        for (kind, ns, name) in stale {
            self.delete(kind, &ns, &name);
        }
        for v in changed {
            self.apply(v);
        }
    }

    /// Deletes an object; watches get DELETED. Returns whether it existed.
    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        self.remove(kind, namespace, name, true)
    }

    /// Deletes an object without telling open watches, as if the event was
    /// lost in a compaction window: only a relist shows it.
    pub fn delete_silently(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        self.remove(kind, namespace, name, false)
    }

    fn remove(&self, kind: Kind, namespace: &str, name: &str, tell: bool) -> bool {
        let ns = if kind.is_namespaced() { namespace } else { "" };
        let mut s = self.lock();
        let Some(mut obj) = s.objects.remove(&(kind, ns.to_string(), name.to_string())) else {
            return false;
        };
        s.rv += 1;
        let rv = s.rv;
        if tell {
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            s.events.push(WatchEvent {
                rv,
                kind,
                kind_of_event: "DELETED",
                object: obj,
            });
        }
        drop(s);
        self.changed();
        true
    }

    /// Sends a BOOKMARK with the current resourceVersion on every open
    /// watch that asked for bookmarks.
    pub fn bookmark(&self) {
        self.lock().bookmarks += 1;
        self.changed();
    }

    /// Ends every open watch with a `410 Gone` ERROR event (what the API
    /// server does when its watch cache no longer holds the version).
    pub fn expire_watches(&self) {
        let mut s = self.lock();
        s.expired = s.watches_opened;
        drop(s);
        self.changed();
    }

    /// Ends every open watch cleanly, as the API server does when a
    /// watch's `timeoutSeconds` runs out; clients resume from their last
    /// resourceVersion (or bookmark) without a list.
    pub fn end_watches(&self) {
        let mut s = self.lock();
        s.ended = s.watches_opened;
        drop(s);
        self.changed();
    }

    /// Takes the server down (open connections are cut, new ones refused)
    /// or brings it back on the same port.
    pub fn set_up(&self, up: bool) {
        self.lock().up = up;
        self.changed();
        self.wait_listening(up);
    }

    /// Every request line served so far ("GET /api/v1/nodes?watch=true&...").
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// Waits until every open watch has written every event made so far
    /// (or `timeout` passed); true if they have.
    pub fn wait_delivered(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            {
                let s = self.lock();
                if s.positions.values().all(|p| *p >= s.rv) {
                    return true;
                }
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Watches streaming right now.
    pub fn open_watches(&self) -> usize {
        self.lock().open_watches
    }

    /// How many list (not watch) requests of `kind` were served.
    pub fn lists_of(&self, kind: Kind) -> usize {
        let path = collection(kind);
        self.requests()
            .iter()
            .filter(|r| {
                r.split(['?', ' ']).nth(1).is_some_and(|p| p == path)
                    && !r.contains("watch=true")
                    && !r.contains("watch=1")
            })
            .count()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
