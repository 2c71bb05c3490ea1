//! The cluster as one node sees it: every object strait reads, as
//! k8s-openapi types (EndpointSlices as the slimmer [`Slice`]), each list
//! sorted by (namespace, name) so equal inputs give equal snapshots
//! whatever order they arrived in. Both sources (the manifest store and the
//! Kubernetes API) produce this; nothing downstream knows which one did.

use crate::endpoint_slice::Slice;
use crate::manifest::{Kind, Object, DEFAULT_NAMESPACE};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;
use std::sync::Arc;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub nodes: Vec<Node>,
    pub namespaces: Vec<Namespace>,
    pub pods: Vec<Pod>,
    /// Shared: a snapshot's clone and the next snapshot of a source keep
    /// the same `Arc` for an object that did not change, which is how the
    /// compiler's cache (strait-plan `CompileCache`) knows what did.
    pub services: Vec<Arc<Service>>,
    pub endpoint_slices: Vec<Arc<Slice>>,
    pub network_policies: Vec<NetworkPolicy>,
}

/// What a snapshot list is sorted by: (namespace or "", name).
trait Keyed {
    fn key(&self) -> (&str, &str);
}

fn meta_key(m: &ObjectMeta) -> (&str, &str) {
    (
        m.namespace.as_deref().unwrap_or(""),
        m.name.as_deref().unwrap_or(""),
    )
}

/// The k8s-openapi kinds, by their metadata (one impl each: a blanket
/// impl over `Metadata` would rule out the one for `Arc`).
macro_rules! keyed_by_metadata {
    ($($t:ty),*) => {$(
        impl Keyed for $t {
            fn key(&self) -> (&str, &str) {
                meta_key(self.metadata())
            }
        }
    )*};
}
keyed_by_metadata!(Node, Namespace, Pod, Service, NetworkPolicy);

impl Keyed for Slice {
    fn key(&self) -> (&str, &str) {
        (&self.namespace, &self.name)
    }
}

impl<T: Keyed> Keyed for Arc<T> {
    fn key(&self) -> (&str, &str) {
        (**self).key()
    }
}

fn key<T: Keyed>(o: &T) -> (&str, &str) {
    o.key()
}

/// Inserts or replaces `obj` in a sorted list; returns the replaced object
/// (an equal object stays, and `obj` is returned: a shared one keeps its
/// `Arc`).
fn upsert<T: Keyed + PartialEq>(list: &mut Vec<T>, obj: T) -> Option<T> {
    // Sources usually hand objects over in order: try the end first.
    if list.last().is_none_or(|l| key(l) < key(&obj)) {
        list.push(obj);
        return None;
    }
    match list.binary_search_by(|o| key(o).cmp(&key(&obj))) {
        Ok(i) if list[i] == obj => Some(obj),
        Ok(i) => Some(std::mem::replace(&mut list[i], obj)),
        Err(i) => {
            list.insert(i, obj);
            None
        }
    }
}

/// Where `list` and `before` (both sorted) hold equal objects under one
/// key, `list` takes `before`'s `Arc`.
fn share<T: Keyed + PartialEq>(list: &mut [Arc<T>], before: &[Arc<T>]) {
    let mut old = before.iter().peekable();
    for o in list.iter_mut() {
        while old.next_if(|b| key(*b) < key(o)).is_some() {}
        if let Some(b) = old.next_if(|b| key(*b) == key(o)) {
            if !Arc::ptr_eq(b, o) && **b == **o {
                *o = Arc::clone(b);
            }
        }
    }
}

fn remove<T: Keyed>(list: &mut Vec<T>, ns: &str, name: &str) -> Option<T> {
    list.binary_search_by(|o| key(o).cmp(&(ns, name)))
        .ok()
        .map(|i| list.remove(i))
}

fn sort_dedup<T: Keyed>(list: &mut Vec<T>) {
    // Stable sort, then keep the last of equal keys: later objects win.
    list.sort_by(|a, b| key(a).cmp(&key(b)));
    let mut out: Vec<T> = Vec::with_capacity(list.len());
    for o in list.drain(..) {
        if out.last().is_some_and(|l| key(l) == key(&o)) {
            out.pop();
        }
        out.push(o);
    }
    *list = out;
}

impl Snapshot {
    /// A snapshot of `objects`; a later object with the same kind,
    /// namespace and name replaces an earlier one.
    pub fn from_objects(objects: impl IntoIterator<Item = Object>) -> Self {
        let mut snap = Snapshot::default();
        for o in objects {
            snap.apply(o);
        }
        snap
    }

    /// Adds or replaces an object (after applying the API server's defaults,
    /// see [`Object::normalize`]); returns the object it replaced.
    pub fn apply(&mut self, mut obj: Object) -> Option<Object> {
        obj.normalize();
        match obj {
            Object::Namespace(o) => upsert(&mut self.namespaces, o).map(Object::Namespace),
            Object::Node(o) => upsert(&mut self.nodes, o).map(Object::Node),
            Object::Pod(o) => upsert(&mut self.pods, o).map(Object::Pod),
            Object::Service(o) => upsert(&mut self.services, Arc::new(o))
                .map(|old| Object::Service(Arc::unwrap_or_clone(old))),
            Object::EndpointSlice(o) => {
                upsert(&mut self.endpoint_slices, Arc::new(Slice::from_k8s(o)))
                    .map(|old| Object::EndpointSlice(old.to_k8s()))
            }
            Object::NetworkPolicy(o) => {
                upsert(&mut self.network_policies, o).map(Object::NetworkPolicy)
            }
        }
    }

    /// Removes an object and returns it. `namespace` is ignored for
    /// cluster-scoped kinds and defaults to `default` for namespaced ones.
    pub fn delete(&mut self, kind: Kind, namespace: Option<&str>, name: &str) -> Option<Object> {
        let ns = if kind.is_namespaced() {
            namespace
                .filter(|n| !n.is_empty())
                .unwrap_or(DEFAULT_NAMESPACE)
        } else {
            ""
        };
        match kind {
            Kind::Namespace => remove(&mut self.namespaces, ns, name).map(Object::Namespace),
            Kind::Node => remove(&mut self.nodes, ns, name).map(Object::Node),
            Kind::Pod => remove(&mut self.pods, ns, name).map(Object::Pod),
            Kind::Service => remove(&mut self.services, ns, name)
                .map(|old| Object::Service(Arc::unwrap_or_clone(old))),
            Kind::EndpointSlice => remove(&mut self.endpoint_slices, ns, name)
                .map(|old| Object::EndpointSlice(old.to_k8s())),
            Kind::NetworkPolicy => {
                remove(&mut self.network_policies, ns, name).map(Object::NetworkPolicy)
            }
        }
    }

    /// Takes `before`'s `Arc` for every Service and EndpointSlice equal to
    /// one there (a source that read everything again, such as a re-list
    /// or the manifest store, so the compile cache sees what did not
    /// change).
    pub fn share_unchanged(&mut self, before: &Snapshot) {
        share(&mut self.services, &before.services);
        share(&mut self.endpoint_slices, &before.endpoint_slices);
    }

    /// Restores the invariant on a hand-built snapshot: every list sorted by
    /// (namespace, name), the last of duplicates kept.
    pub fn sort(&mut self) {
        sort_dedup(&mut self.nodes);
        sort_dedup(&mut self.namespaces);
        sort_dedup(&mut self.pods);
        sort_dedup(&mut self.services);
        sort_dedup(&mut self.endpoint_slices);
        sort_dedup(&mut self.network_policies);
    }

    /// The EndpointSlices of a Service: same namespace, labelled
    /// `kubernetes.io/service-name: <name>` (how Kubernetes links them).
    pub fn slices_for<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Slice> + 'a {
        self.endpoint_slices.iter().map(|s| &**s).filter(move |s| {
            s.namespace == namespace && s.label("kubernetes.io/service-name") == Some(name)
        })
    }

    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        find_by_key(&self.nodes, "", name)
    }

    /// Gives back the spare capacity of every list (a list grown one object
    /// at a time has up to half its length spare, kept for the snapshot's
    /// life).
    pub fn shrink_to_fit(&mut self) {
        self.nodes.shrink_to_fit();
        self.namespaces.shrink_to_fit();
        self.pods.shrink_to_fit();
        self.services.shrink_to_fit();
        self.endpoint_slices.shrink_to_fit();
        self.network_policies.shrink_to_fit();
    }

    /// Every object, kinds in [`Kind::ALL`] order, each kind sorted
    /// (EndpointSlices as [`Slice::to_k8s`] gives them).
    pub fn objects(&self) -> Vec<Object> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self.namespaces.iter().cloned().map(Object::Namespace));
        out.extend(self.nodes.iter().cloned().map(Object::Node));
        out.extend(self.pods.iter().cloned().map(Object::Pod));
        out.extend(
            self.services
                .iter()
                .map(|s| Object::Service(Service::clone(s))),
        );
        out.extend(
            self.endpoint_slices
                .iter()
                .map(|s| Object::EndpointSlice(s.to_k8s())),
        );
        out.extend(
            self.network_policies
                .iter()
                .cloned()
                .map(Object::NetworkPolicy),
        );
        out
    }

    /// Number of objects of all kinds.
    pub fn len(&self) -> usize {
        self.nodes.len()
            + self.namespaces.len()
            + self.pods.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.network_policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn find_by_key<'a, T: Keyed>(list: &'a [T], ns: &str, name: &str) -> Option<&'a T> {
    match list.binary_search_by(|o| key(o).cmp(&(ns, name))) {
        Ok(i) => Some(&list[i]),
        // A hand-built snapshot may be unsorted: fall back to a scan.
        Err(_) => list.iter().find(|o| key(*o) == (ns, name)),
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
