//! The Kubernetes source against a fake API server speaking the real wire
//! format over HTTP: lists, chunked watch streams (ADDED, MODIFIED,
//! DELETED, BOOKMARK, ERROR 410), outages. kube-rs is the client, unmocked.

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use strait_kube::fake_api::{collection, FakeApi};
use strait_kube::rbac::ACCESS;
use strait_kube::{Connect, KubeSource};
use strait_model::{Kind, ManifestStore, Snapshot};

const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {kubernetes.io/hostname: node-a}}
spec: {podCIDR: 10.42.0.0/24, podCIDRs: [10.42.0.0/24]}
status: {addresses: [{type: InternalIP, address: 192.168.50.10}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-b}
spec: {podCIDR: 10.42.1.0/24, podCIDRs: [10.42.1.0/24]}
status: {addresses: [{type: InternalIP, address: 192.168.50.11}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {nodeName: node-a, containers: [{name: web, image: busybox, ports: [{containerPort: 8080}]}]}
status: {phase: Running, podIP: 10.42.0.5, podIPs: [{ip: 10.42.0.5}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: shop, labels: {app: web}}
spec: {nodeName: node-b, containers: [{name: web, image: busybox}]}
status: {phase: Running, podIP: 10.42.1.7, podIPs: [{ip: 10.42.1.7}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.43.0.20
  clusterIPs: [10.43.0.20]
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
  - addresses: [10.42.0.5]
    conditions: {ready: true}
    nodeName: node-a
  - addresses: [10.42.1.7]
    conditions: {ready: true}
    nodeName: node-b
ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {app: shop}}}], ports: [{port: 8080, protocol: TCP}]}]
"#;

fn objects(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
        .collect()
}

fn serve(yaml: &str) -> FakeApi {
    let api = FakeApi::start();
    for o in objects(yaml) {
        api.apply(o);
    }
    api
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The snapshot without `resourceVersion`s (the API sets them, manifests
/// have none; nothing downstream reads them).
fn without_versions(mut snap: Snapshot) -> Snapshot {
    let objects = snap.objects().into_iter().map(|mut o| {
        let meta = match &mut o {
            strait_model::Object::Namespace(x) => &mut x.metadata,
            strait_model::Object::Node(x) => &mut x.metadata,
            strait_model::Object::Pod(x) => &mut x.metadata,
            strait_model::Object::Service(x) => &mut x.metadata,
            strait_model::Object::EndpointSlice(x) => &mut x.metadata,
            strait_model::Object::NetworkPolicy(x) => &mut x.metadata,
        };
        meta.resource_version = None;
        o
    });
    snap = Snapshot::from_objects(objects);
    snap
}

fn ready_snapshot(src: &KubeSource) -> Snapshot {
    wait_for("the first full sync", || {
        src.status().ready().then(|| src.snapshot()).flatten()
    })
    .1
}

fn start(api: &FakeApi) -> KubeSource {
    KubeSource::start(Connect::Url(api.url())).expect("start the source")
}

#[test]
fn snapshot_equals_the_manifest_stores_for_the_same_objects() {
    let api = serve(CLUSTER);
    let src = start(&api);
    let from_api = without_versions(ready_snapshot(&src));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cluster.yaml"), CLUSTER).unwrap();
    let from_files = ManifestStore::load(dir.path()).unwrap();
    assert_eq!(from_api.len(), 8);
    assert_eq!(from_api, from_files);
    assert!(src.status().problems.is_empty(), "{:?}", src.status());
}

#[test]
fn not_ready_until_every_kind_is_listed() {
    let api = serve(CLUSTER);
    api.set_up(false);
    let src = start(&api);
    std::thread::sleep(Duration::from_millis(300));
    let status = src.status();
    assert!(!status.synced && !status.ready(), "{status:?}");
    assert!(src.snapshot().is_none());
    assert_eq!(status.problems.len(), 6, "{status:?}");
    api.set_up(true);
    assert_eq!(ready_snapshot(&src).len(), 8);
}

#[test]
fn watch_events_change_the_snapshot() {
    let api = serve(CLUSTER);
    let src = start(&api);
    ready_snapshot(&src);
    wait_for("six open watches", || {
        (api.open_watches() == 6).then_some(())
    });

    // MODIFIED: node-b gets a new pod CIDR.
    let mut node_b = objects(CLUSTER)[2].clone();
    node_b["spec"] = json!({"podCIDR": "10.42.9.0/24", "podCIDRs": ["10.42.9.0/24"]});
    api.apply(node_b);
    // ADDED: a pod; DELETED: another.
    api.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "db-1", "namespace": "shop", "labels": {"app": "db"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "db", "image": "x"}]},
        "status": {"podIP": "10.42.0.9", "podIPs": [{"ip": "10.42.0.9"}]}}));
    assert!(api.delete(Kind::Pod, "shop", "web-2"));

    let snap = wait_for("the watch events", || {
        let (_, s) = src.snapshot()?;
        let b = s.node("node-b")?;
        let moved = b.spec.as_ref()?.pod_cidr.as_deref() == Some("10.42.9.0/24");
        let pods: Vec<_> = s
            .pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        (moved && pods == ["db-1", "web-1"]).then_some(s)
    });
    assert_eq!(snap.nodes.len(), 2);
    // One list per kind: the events came over the watches.
    for kind in Kind::ALL {
        assert_eq!(api.lists_of(kind), 1, "{kind:?}");
    }
    // Every watch resumed from the list's resourceVersion, with bookmarks.
    let watches: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.contains("watch=true"))
        .collect();
    assert_eq!(watches.len(), 6, "{watches:?}");
    for w in &watches {
        assert!(w.contains("allowWatchBookmarks=true"), "{w}");
        assert!(w.ends_with("resourceVersion=8 HTTP/1.1"), "{w}");
    }
}

#[test]
fn a_bookmark_moves_the_resume_point_without_a_list() {
    let api = serve(CLUSTER);
    let src = start(&api);
    ready_snapshot(&src);
    wait_for("six open watches", || {
        (api.open_watches() == 6).then_some(())
    });
    // A Pod change moves the global resourceVersion to 9; the Node watch
    // sees no event, only the bookmark carrying 9.
    api.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "late", "namespace": "shop"}, "spec": {"containers": []}}));
    api.bookmark();
    wait_for("the pod event", || {
        src.snapshot()?
            .1
            .pods
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some("late"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(200));
    api.end_watches();
    let node_watch = format!("GET {}?", collection(Kind::Node));
    let resumed = wait_for("the node watch to resume", || {
        let w: Vec<_> = api
            .requests()
            .into_iter()
            .filter(|r| r.starts_with(&node_watch) && r.contains("watch=true"))
            .collect();
        (w.len() == 2).then(|| w[1].clone())
    });
    // The list was at 8; only the bookmark told the Node watch about 9.
    assert!(resumed.ends_with("resourceVersion=9 HTTP/1.1"), "{resumed}");
    assert_eq!(api.lists_of(Kind::Node), 1);
    assert!(src.status().ready());
}

#[test]
fn gone_relists_and_replaces_the_kept_objects() {
    let api = serve(CLUSTER);
    let src = start(&api);
    let before = ready_snapshot(&src);
    wait_for("six open watches", || {
        (api.open_watches() == 6).then_some(())
    });
    // An event lost in a compaction window: only a relist shows it.
    assert!(api.delete_silently(Kind::Pod, "shop", "web-1"));
    api.expire_watches();
    let after = wait_for("the relist", || {
        let (_, s) = src.snapshot()?;
        (s.pods.len() == 1 && (Kind::ALL.iter().all(|k| api.lists_of(*k) == 2))).then_some(s)
    });
    assert_eq!(after.pods[0].metadata.name.as_deref(), Some("web-2"));
    // Nothing else was dropped on the way.
    assert_eq!(after.len(), before.len() - 1);
    assert_eq!(after.nodes, before.nodes);
    assert_eq!(after.network_policies, before.network_policies);
    assert!(src.status().ready(), "{:?}", src.status());
}

#[test]
fn an_outage_keeps_the_snapshot_reports_not_ready_and_resyncs() {
    let api = serve(CLUSTER);
    let src = start(&api);
    let before = ready_snapshot(&src);
    api.set_up(false);
    let status = wait_for("not ready", || {
        let s = src.status();
        (!s.connected).then_some(s)
    });
    assert!(status.synced && !status.ready(), "{status:?}");
    assert!(
        status.problems.iter().any(|p| p.contains("error")),
        "{status:?}"
    );
    // What was seen is kept while the API is away.
    assert_eq!(src.snapshot().unwrap().1, before);

    // Changed while we were away; seen after the resync.
    api.apply(json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-c"}, "spec": {"podCIDR": "10.42.2.0/24"}}));
    api.delete_silently(Kind::Service, "shop", "web");
    api.set_up(true);
    let after = wait_for("ready again with the new objects", || {
        let (_, s) = src.snapshot()?;
        (src.status().ready() && s.nodes.len() == 3).then_some(s)
    });
    assert!(after.services.is_empty());
    assert!(Kind::ALL.iter().all(|k| api.lists_of(*k) >= 2));
}

#[test]
fn the_source_only_lists_and_watches_what_rbac_declares() {
    let api = serve(CLUSTER);
    let src = start(&api);
    ready_snapshot(&src);
    let declared: Vec<String> = Kind::ALL
        .iter()
        .map(|k| collection(*k).to_string())
        .collect();
    for (group, resource, verbs) in ACCESS {
        assert_eq!(verbs, ["list", "watch"]);
        let prefix = if group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{group}/v1")
        };
        assert!(
            declared.contains(&format!("{prefix}/{resource}")),
            "{resource}"
        );
    }
    for r in api.requests() {
        let path = r.split(['?', ' ']).nth(1).unwrap_or_default().to_string();
        assert!(r.starts_with("GET "), "{r}");
        assert!(declared.contains(&path), "undeclared request {r}");
    }
}

#[test]
fn mirroring_a_snapshot_twice_changes_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cluster.yaml"), CLUSTER).unwrap();
    let snap = ManifestStore::load(dir.path()).unwrap();
    let api = FakeApi::start();
    api.mirror(&snap);
    let src = start(&api);
    assert_eq!(without_versions(ready_snapshot(&src)), snap);
    let generation = src.generation();
    api.mirror(&snap);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        src.generation(),
        generation,
        "an unchanged mirror sent events"
    );
    let mut smaller = snap.clone();
    smaller
        .pods
        .retain(|p| p.metadata.name.as_deref() != Some("web-2"));
    api.mirror(&smaller);
    wait_for("the mirrored delete", || {
        (src.snapshot()?.1.pods.len() == 1).then_some(())
    });
}
