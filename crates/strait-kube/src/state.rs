//! What the watchers have seen, shared with the agent's (synchronous) loop:
//! one [`Snapshot`] plus, per kind, whether its first full list arrived and
//! whether its watch is healthy. A generation counter and a condvar let the
//! agent sleep until something changed.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;
use strait_model::{Kind, Object, Snapshot};

/// The readiness of the source, as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Every kind has been listed in full at least once.
    pub synced: bool,
    /// No watch is failing right now.
    pub connected: bool,
    /// Why not ready: kinds not listed yet and the last error of each
    /// failing watch.
    pub problems: Vec<String>,
}

impl Status {
    pub fn ready(&self) -> bool {
        self.synced && self.connected
    }
}

#[derive(Default)]
struct KindState {
    listed: bool,
    error: Option<String>,
}

#[derive(Default)]
struct Inner {
    snap: Snapshot,
    kinds: [KindState; 6],
    generation: u64,
}

#[derive(Default)]
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    changed: Condvar,
}

fn index(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// Drops what no compiler reads and what makes API objects large:
/// `managedFields` (server-side apply bookkeeping, often most of an object).
pub(crate) fn trim(mut obj: Object) -> Object {
    obj.metadata_mut().managed_fields = None;
    obj
}

/// Replaces `snap`'s list of `kind` with `from`'s (the other lists of
/// `from` are dropped).
fn replace_kind(snap: &mut Snapshot, kind: Kind, mut from: Snapshot) {
    from.shrink_to_fit();
    // A re-list hands over every object again: keep the ones that did not
    // change as they were (the compile cache knows them by address).
    from.share_unchanged(snap);
    match kind {
        Kind::Namespace => snap.namespaces = from.namespaces,
        Kind::Node => snap.nodes = from.nodes,
        Kind::Pod => snap.pods = from.pods,
        Kind::Service => snap.services = from.services,
        Kind::EndpointSlice => snap.endpoint_slices = from.endpoint_slices,
        Kind::NetworkPolicy => snap.network_policies = from.network_policies,
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking watcher task cannot leave the snapshot half-written
        // (every change is one call), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self, mut inner: MutexGuard<'_, Inner>) {
        inner.generation += 1;
        drop(inner);
        self.changed.notify_all();
    }

    /// A full list of `kind` arrived (gathered in `listing`, each object
    /// [`trim`]med): it replaces what was kept, atomically.
    pub(crate) fn replace(&self, kind: Kind, listing: Snapshot) {
        let mut inner = self.lock();
        replace_kind(&mut inner.snap, kind, listing);
        let k = &mut inner.kinds[index(kind)];
        k.listed = true;
        k.error = None;
        self.bump(inner);
    }

    pub(crate) fn apply(&self, obj: Object) {
        let mut inner = self.lock();
        inner.snap.apply(trim(obj));
        self.bump(inner);
    }

    pub(crate) fn delete(&self, kind: Kind, namespace: Option<&str>, name: &str) {
        let mut inner = self.lock();
        inner.snap.delete(kind, namespace, name);
        self.bump(inner);
    }

    /// A watch of `kind` failed; what was kept stays until the next list.
    pub(crate) fn failed(&self, kind: Kind, error: String) {
        let mut inner = self.lock();
        inner.kinds[index(kind)].error = Some(error);
        self.bump(inner);
    }

    pub(crate) fn status(&self) -> Status {
        let inner = self.lock();
        let mut problems = Vec::new();
        for (kind, k) in Kind::ALL.iter().zip(&inner.kinds) {
            if let Some(e) = &k.error {
                problems.push(format!("{}: {e}", kind.as_str()));
            } else if !k.listed {
                problems.push(format!("{}: not listed yet", kind.as_str()));
            }
        }
        Status {
            synced: inner.kinds.iter().all(|k| k.listed),
            connected: inner.kinds.iter().all(|k| k.error.is_none()),
            problems,
        }
    }

    /// The snapshot once every kind has been listed; `None` before.
    pub(crate) fn snapshot(&self) -> Option<(u64, Snapshot)> {
        let inner = self.lock();
        inner
            .kinds
            .iter()
            .all(|k| k.listed)
            .then(|| (inner.generation, inner.snap.clone()))
    }

    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Waits until the generation differs from `seen` or `timeout` passed;
    /// returns the current generation.
    pub(crate) fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let inner = self.lock();
        let (inner, _) = self
            .changed
            .wait_timeout_while(inner, timeout, |i| i.generation == seen)
            .unwrap_or_else(|p| p.into_inner());
        inner.generation
    }
}
