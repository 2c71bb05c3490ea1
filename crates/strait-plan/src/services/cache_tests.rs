//! The compile cache gives the tables a compile from scratch gives, over
//! random edits of a snapshot whose unchanged objects keep their `Arc`
//! (as the sources hand them over), and rebuilds only what changed.

use super::*;
use crate::nft::Family;
use proptest::prelude::*;
use serde_json::json;
use strait_model::manifest::Kind;
use strait_model::Object;

/// Draws from proptest's seeded generator (the proptest case is the seed).
struct Draw(proptest::test_runner::TestRng);

impl Draw {
    fn new(seed: u64) -> Draw {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        Draw(proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &bytes,
        ))
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const NAMESPACES: [&str; 2] = ["a", "b"];

/// A Service from a small universe, so addresses, NodePorts and chain
/// names collide between Services (first claim wins).
fn service(r: &mut Draw, ns: &str, name: &str) -> Object {
    let mut ports = vec![json!({"name": "http", "port": 80 + r.below(2), "protocol": "TCP"})];
    if r.chance(40) {
        let mut p = json!({"name": "dns", "port": 53, "protocol": "UDP"});
        if r.chance(50) {
            p["nodePort"] = json!(30000 + r.below(3));
        }
        ports.push(p);
    }
    let mut spec = json!({
        "clusterIP": format!("10.43.0.{}", 1 + r.below(8)),
        "ports": ports,
    });
    if r.chance(10) {
        spec["clusterIP"] = json!("None");
    }
    if r.chance(5) {
        spec["clusterIP"] = json!("10.99.0.1");
    }
    if r.chance(30) {
        spec["externalIPs"] = json!([format!("192.168.9.{}", 1 + r.below(3))]);
    }
    if r.chance(30) {
        spec["sessionAffinity"] = json!("ClientIP");
    }
    if r.chance(30) {
        spec["externalTrafficPolicy"] = json!("Local");
    }
    if r.chance(20) {
        spec["internalTrafficPolicy"] = json!("Local");
    }
    let mut svc = json!({"metadata": {"name": name, "namespace": ns}, "spec": spec});
    if r.chance(20) {
        svc["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.168.9.9"}]}});
    }
    Object::Service(serde_json::from_value(svc).unwrap())
}

fn slice(r: &mut Draw, ns: &str, name: &str, service: &str) -> Object {
    let endpoints: Vec<_> = (0..r.below(4))
        .map(|_| {
            let node = format!("node-{}", 1 + r.below(2));
            json!({
                "addresses": [format!("10.42.{}.{}", 1 + r.below(2), 2 + r.below(6))],
                "nodeName": node,
                "conditions": {"ready": r.chance(70), "serving": r.chance(80), "terminating": r.chance(20)},
            })
        })
        .collect();
    let mut ports = vec![json!({"name": "http", "port": 8080, "protocol": "TCP"})];
    if r.chance(60) {
        ports.push(json!({"name": "dns", "port": 5353, "protocol": "UDP"}));
    }
    Object::EndpointSlice(
        serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {SERVICE_NAME_LABEL: service},
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": ports,
        }))
        .unwrap(),
    )
}

fn names(r: &mut Draw) -> (&'static str, String) {
    (
        NAMESPACES[r.below(2) as usize],
        format!("svc-{}", r.below(8)),
    )
}

/// One edit, as a source would make it: only the edited object gets a new
/// `Arc`.
fn edit(r: &mut Draw, snap: &mut Snapshot) {
    let (ns, name) = names(r);
    match r.below(7) {
        0 | 1 => {
            snap.apply(service(r, ns, &name));
        }
        2 => {
            snap.delete(Kind::Service, Some(ns), &name);
        }
        3 | 4 => {
            let slice_name = format!("{name}-{}", r.below(2));
            // Now and then a slice names another Service.
            let owner = if r.chance(15) { names(r).1 } else { name };
            snap.apply(slice(r, ns, &slice_name, &owner));
        }
        5 => {
            let slice_name = format!("{name}-{}", r.below(2));
            snap.delete(Kind::EndpointSlice, Some(ns), &slice_name);
        }
        _ => {
            // The same object again, as a new allocation.
            if !snap.services.is_empty() && r.chance(50) {
                let i = r.below(snap.services.len() as u64) as usize;
                snap.services[i] = Arc::new(Service::clone(&snap.services[i]));
            } else if !snap.endpoint_slices.is_empty() {
                let i = r.below(snap.endpoint_slices.len() as u64) as usize;
                snap.endpoint_slices[i] = Arc::new(Slice::clone(&snap.endpoint_slices[i]));
            }
        }
    }
}

/// The service tables of `node` (its pods: 10.42.<n>.0/24).
fn tables(snap: &Snapshot, node: u8, cache: &mut ServiceCache) -> (Table, Vec<String>) {
    let mut t = Table::new(Family::Inet, "strait");
    let mut warnings = Vec::new();
    add_to_table(
        Some("10.43.0.0/16".parse().unwrap()),
        &format!("node-{node}"),
        &[format!("10.42.{node}.0/24").parse().unwrap()],
        snap,
        &mut t,
        &mut warnings,
        cache,
    );
    (t, warnings)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn cached_compiles_equal_fresh_ones(seed in any::<u64>()) {
        let mut r = Draw::new(seed);
        let mut snap = Snapshot::default();
        let mut cache = ServiceCache::default();
        for step in 0..60 {
            for _ in 0..=r.below(3) {
                edit(&mut r, &mut snap);
            }
            // Now and then the node view changes (the cache starts over).
            let node = if r.chance(10) { 2 } else { 1 };
            let cached = tables(&snap, node, &mut cache);
            let fresh = tables(&snap, node, &mut ServiceCache::default());
            prop_assert_eq!(&cached.0, &fresh.0, "step {}", step);
            prop_assert_eq!(&cached.1, &fresh.1, "step {}", step);
        }
    }
}

/// Service `s` of [`big`]: one ClusterIP each, no affinity (so every
/// piece is cacheable).
fn plain_service(r: &mut Draw, s: usize) -> Object {
    let mut svc = service(r, "a", &format!("svc-{s:05}"));
    if let Object::Service(svc) = &mut svc {
        let spec = svc.spec.as_mut().unwrap();
        spec.cluster_ip = Some(format!("10.43.{}.{}", s / 250, 1 + s % 250));
        spec.session_affinity = None;
    }
    svc
}

fn big(services: usize) -> Snapshot {
    let mut r = Draw::new(7);
    let mut snap = Snapshot::default();
    for s in 0..services {
        let name = format!("svc-{s:05}");
        snap.apply(plain_service(&mut r, s));
        snap.apply(slice(&mut r, "a", &format!("{name}-0"), &name));
    }
    snap
}

#[test]
fn only_what_changed_is_built_again() {
    let mut snap = big(300);
    let mut cache = ServiceCache::default();
    tables(&snap, 1, &mut cache);
    assert_eq!(
        cache.last_use(),
        CacheUse {
            built: 300,
            reused: 0
        }
    );
    // Nothing changed (a snapshot's clone shares every object).
    let same = snap.clone();
    tables(&same, 1, &mut cache);
    assert_eq!(
        cache.last_use(),
        CacheUse {
            built: 0,
            reused: 300
        }
    );
    // One slice changes; then one Service; then one goes.
    let mut r = Draw::new(11);
    snap.apply(slice(&mut r, "a", "svc-00123-0", "svc-00123"));
    tables(&snap, 1, &mut cache);
    assert_eq!(cache.last_use().built, 1);
    snap.apply(plain_service(&mut r, 7));
    tables(&snap, 1, &mut cache);
    assert_eq!(cache.last_use().built, 1);
    snap.delete(Kind::Service, Some("a"), "svc-00008");
    let (cached, _) = tables(&snap, 1, &mut cache);
    assert_eq!(
        cache.last_use(),
        CacheUse {
            built: 0,
            reused: 299
        }
    );
    assert_eq!(cached, tables(&snap, 1, &mut ServiceCache::default()).0);
    // Another node: everything again.
    tables(&snap, 2, &mut cache);
    assert_eq!(cache.last_use().built, 299);
}
