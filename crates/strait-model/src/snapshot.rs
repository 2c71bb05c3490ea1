//! The cluster as one node sees it: every object strait reads, as
//! k8s-openapi types, each list sorted by (namespace, name) so equal inputs
//! give equal snapshots whatever order they arrived in. Both sources (the
//! manifest store and, later, the Kubernetes API) produce this; nothing
//! downstream knows which one did.

use crate::manifest::{Kind, Object, DEFAULT_NAMESPACE};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub nodes: Vec<Node>,
    pub namespaces: Vec<Namespace>,
    pub pods: Vec<Pod>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub network_policies: Vec<NetworkPolicy>,
}

/// The sort key of an object: (namespace or "", name).
fn key<T: Metadata<Ty = ObjectMeta>>(o: &T) -> (&str, &str) {
    let m = o.metadata();
    (
        m.namespace.as_deref().unwrap_or(""),
        m.name.as_deref().unwrap_or(""),
    )
}

/// Inserts or replaces `obj` in a sorted list; returns the replaced object.
fn upsert<T: Metadata<Ty = ObjectMeta>>(list: &mut Vec<T>, obj: T) -> Option<T> {
    match list.binary_search_by(|o| key(o).cmp(&key(&obj))) {
        Ok(i) => Some(std::mem::replace(&mut list[i], obj)),
        Err(i) => {
            list.insert(i, obj);
            None
        }
    }
}

fn remove<T: Metadata<Ty = ObjectMeta>>(list: &mut Vec<T>, ns: &str, name: &str) -> Option<T> {
    list.binary_search_by(|o| key(o).cmp(&(ns, name)))
        .ok()
        .map(|i| list.remove(i))
}

fn sort_dedup<T: Metadata<Ty = ObjectMeta>>(list: &mut Vec<T>) {
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
            Object::Service(o) => upsert(&mut self.services, o).map(Object::Service),
            Object::EndpointSlice(o) => {
                upsert(&mut self.endpoint_slices, o).map(Object::EndpointSlice)
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
            Kind::Service => remove(&mut self.services, ns, name).map(Object::Service),
            Kind::EndpointSlice => {
                remove(&mut self.endpoint_slices, ns, name).map(Object::EndpointSlice)
            }
            Kind::NetworkPolicy => {
                remove(&mut self.network_policies, ns, name).map(Object::NetworkPolicy)
            }
        }
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
    ) -> impl Iterator<Item = &'a EndpointSlice> + 'a {
        self.endpoint_slices.iter().filter(move |s| {
            s.metadata.namespace.as_deref() == Some(namespace)
                && s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/service-name"))
                    .map(String::as_str)
                    == Some(name)
        })
    }

    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        find_by_key(&self.nodes, "", name)
    }

    /// Every object, kinds in [`Kind::ALL`] order, each kind sorted.
    pub fn objects(&self) -> Vec<Object> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self.namespaces.iter().cloned().map(Object::Namespace));
        out.extend(self.nodes.iter().cloned().map(Object::Node));
        out.extend(self.pods.iter().cloned().map(Object::Pod));
        out.extend(self.services.iter().cloned().map(Object::Service));
        out.extend(
            self.endpoint_slices
                .iter()
                .cloned()
                .map(Object::EndpointSlice),
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

fn find_by_key<'a, T: Metadata<Ty = ObjectMeta>>(
    list: &'a [T],
    ns: &str,
    name: &str,
) -> Option<&'a T> {
    match list.binary_search_by(|o| key(o).cmp(&(ns, name))) {
        Ok(i) => Some(&list[i]),
        // A hand-built snapshot may be unsorted: fall back to a scan.
        Err(_) => list.iter().find(|o| key(*o) == (ns, name)),
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
