//! The compile cache: each Service's [`Piece`] from the last compile, kept
//! while the Service and its EndpointSlices are the same objects.
//!
//! Sources keep one `Arc` per object until the object changes (the
//! Kubernetes watchers replace only what an event names, and a snapshot's
//! clone shares them all), so "the same" is a pointer comparison. The cache
//! holds the `Arc`s it compared, so an address cannot be reused while it is
//! kept. The slices that changed since the last compile (compared with the
//! last snapshot's list) name the Services whose pieces are built again.
//! One endpoint change at 10,000 Services then rebuilds one piece and
//! plays the others back, instead of reading 100,000 endpoints again. A
//! different node view (name, pod CIDRs, service CIDR) empties the cache.

use super::*;
use std::sync::Arc;

/// What a piece depends on besides its Service and slices.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct NodeView {
    pub(super) name: String,
    pub(super) local_pods: Vec<ipnet::Ipv4Net>,
    pub(super) service_cidr: Option<ipnet::Ipv4Net>,
}

/// One Service as compiled last time.
struct Entry {
    service: Arc<Service>,
    piece: Piece,
}

/// Pieces of the last compile, for the next (see the module docs). Owned
/// by whoever compiles repeatedly (the agent); [`crate::compile`] starts
/// with an empty one, and a cached compile gives the same Plan.
#[derive(Default)]
pub struct ServiceCache {
    node: NodeView,
    /// The last snapshot's EndpointSlices.
    slices: Vec<Arc<Slice>>,
    /// The last compile's cacheable pieces, in the order of its Services.
    entries: Vec<Entry>,
    last: CacheUse,
    /// The sizes of the last compile's lists.
    pub(super) sizes: Sizes,
}

/// More Services to build than this: index the slices by Service, instead
/// of looking through them once per Service.
const SCAN_LIMIT: usize = 8;

/// How many Service pieces the last compile built and took from the cache.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheUse {
    pub built: usize,
    pub reused: usize,
}

/// Services whose slices changed: names by namespace.
type Dirty = BTreeMap<String, BTreeSet<String>>;

/// (namespace, Service name) of a slice, when it names a Service.
fn owner(s: &Slice) -> Option<(&str, &str)> {
    Some((&s.namespace, s.label(SERVICE_NAME_LABEL)?))
}

/// Slices by address (a set of the `Arc`s one list holds).
fn addresses(list: &[Arc<Slice>]) -> foldhash::HashSet<*const Slice> {
    list.iter().map(Arc::as_ptr).collect()
}

/// The slices of each Service, by (namespace, name).
type Index<'a> = foldhash::HashMap<(&'a str, &'a str), Vec<&'a Arc<Slice>>>;

fn index(slices: &[Arc<Slice>]) -> Index<'_> {
    let mut by_service = Index::with_capacity_and_hasher(slices.len(), Default::default());
    for s in slices {
        if let Some(key) = owner(s) {
            by_service.entry(key).or_default().push(s);
        }
    }
    by_service
}

impl ServiceCache {
    /// How the last compile used the cache.
    pub fn last_use(&self) -> CacheUse {
        self.last
    }

    /// The Services whose slices differ between the last snapshot and
    /// `now` (by namespace); `now` becomes the last.
    fn changed_slices(&mut self, now: &[Arc<Slice>]) -> Dirty {
        let mut dirty = Dirty::new();
        let unchanged = self.slices.len() == now.len()
            && self.slices.iter().zip(now).all(|(a, b)| Arc::ptr_eq(a, b));
        if unchanged {
            return dirty;
        }
        let (was, is) = (addresses(&self.slices), addresses(now));
        let gone = self.slices.iter().filter(|s| !is.contains(&Arc::as_ptr(s)));
        let new = now.iter().filter(|s| !was.contains(&Arc::as_ptr(s)));
        for (ns, svc) in gone.chain(new).filter_map(|s| owner(s)) {
            dirty
                .entry(ns.to_string())
                .or_default()
                .insert(svc.to_string());
        }
        self.slices = now.to_vec();
        dirty
    }

    /// The pieces of `services` (sorted by namespace and name) over the
    /// slices of `snap`: from the cache where the Service and its slices
    /// are unchanged, built with `build` otherwise; each is handed to
    /// `take` in order. The cache then holds exactly these Services.
    pub(super) fn pieces(
        &mut self,
        node: &NodeView,
        snap: &Snapshot,
        services: &[&Arc<Service>],
        mut build: impl FnMut(&Service, &[&Arc<Slice>]) -> Piece,
        mut take: impl FnMut(&Piece),
    ) {
        if self.node != *node {
            *self = ServiceCache {
                node: node.clone(),
                ..ServiceCache::default()
            };
        }
        // A few Services to build: look through the slices for each. Many
        // (the first compile, a re-list): index them once, up front when
        // the cache is empty, else when the count passes SCAN_LIMIT.
        let mut by_service = self
            .entries
            .is_empty()
            .then(|| index(&snap.endpoint_slices));
        let dirty = self.changed_slices(&snap.endpoint_slices);
        let mut old = std::mem::take(&mut self.entries);
        self.entries.reserve(old.len());
        let mut old = old.drain(..).peekable();
        let mut used = CacheUse::default();
        for &service in services {
            let key = strait_model::namespace_and_name(&service.metadata);
            // Entries of Services that are gone come first in the order.
            while old.peek().is_some_and(|e| {
                !Arc::ptr_eq(&e.service, service)
                    && strait_model::namespace_and_name(&e.service.metadata) < key
            }) {
                old.next();
            }
            let clean = || !dirty.get(key.0).is_some_and(|names| names.contains(key.1));
            let piece = match old.next_if(|e| Arc::ptr_eq(&e.service, service)) {
                Some(entry) if clean() => {
                    used.reused += 1;
                    entry.piece
                }
                _ => {
                    used.built += 1;
                    if used.built > SCAN_LIMIT && by_service.is_none() {
                        by_service = Some(index(&snap.endpoint_slices));
                    }
                    let slices = match &by_service {
                        Some(index) => index.get(&key).cloned().unwrap_or_default(),
                        None => snap
                            .endpoint_slices
                            .iter()
                            .filter(|s| owner(s) == Some(key))
                            .collect(),
                    };
                    build(service, &slices)
                }
            };
            take(&piece);
            // A sessionAffinity piece names chains after the Services
            // before it: built again each time.
            if piece.cacheable() {
                self.entries.push(Entry {
                    service: Arc::clone(service),
                    piece,
                });
            }
        }
        self.entries.shrink_to_fit();
        self.last = used;
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
