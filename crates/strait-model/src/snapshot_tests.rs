use super::*;
use crate::manifest::parse_manifests;

fn objects(text: &str) -> Vec<Object> {
    parse_manifests(text, "test").unwrap()
}

const PODS: &str = "
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: z}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: z}
---
apiVersion: v1
kind: Pod
metadata: {name: c}
---
apiVersion: v1
kind: Node
metadata: {name: n2}
---
apiVersion: v1
kind: Node
metadata: {name: n1}
";

fn pod_keys(s: &Snapshot) -> Vec<String> {
    s.pods
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap(),
                p.metadata.name.as_deref().unwrap()
            )
        })
        .collect()
}

#[test]
fn sorted_by_namespace_then_name() {
    let snap = Snapshot::from_objects(objects(PODS));
    assert_eq!(pod_keys(&snap), ["default/c", "z/a", "z/b"]);
    let nodes: Vec<_> = snap.nodes.iter().map(crate::node_name).collect();
    assert_eq!(nodes, ["n1", "n2"]);
}

#[test]
fn order_of_input_does_not_matter() {
    let mut reversed = objects(PODS);
    reversed.reverse();
    assert_eq!(
        Snapshot::from_objects(objects(PODS)),
        Snapshot::from_objects(reversed)
    );
}

#[test]
fn apply_replaces_and_returns_the_old_object() {
    let mut snap = Snapshot::from_objects(objects(PODS));
    let newer =
        objects("apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: z, labels: {v: '2'}}\n");
    let old = snap.apply(newer[0].clone()).unwrap();
    assert_eq!(old.describe(), "Pod z/a");
    assert!(old.metadata().labels.is_none());
    assert_eq!(snap.pods.len(), 3);
    assert_eq!(snap.pods[1].metadata.labels.as_ref().unwrap()["v"], "2");
    // A new object is inserted in order.
    let added = objects("apiVersion: v1\nkind: Pod\nmetadata: {name: aa, namespace: z}\n");
    assert!(snap.apply(added[0].clone()).is_none());
    assert_eq!(pod_keys(&snap), ["default/c", "z/a", "z/aa", "z/b"]);
}

#[test]
fn apply_normalizes_hand_built_objects() {
    let mut snap = Snapshot::default();
    let mut ns = k8s_openapi::api::core::v1::Namespace::default();
    ns.metadata.name = Some("shop".into());
    snap.apply(Object::Namespace(ns));
    let labels = snap.namespaces[0].metadata.labels.as_ref().unwrap();
    assert_eq!(labels["kubernetes.io/metadata.name"], "shop");
    let mut pod = Pod::default();
    pod.metadata.name = Some("p".into());
    snap.apply(Object::Pod(pod));
    assert_eq!(pod_keys(&snap), ["default/p"]);
}

#[test]
fn delete_by_kind_namespace_name() {
    let mut snap = Snapshot::from_objects(objects(PODS));
    assert_eq!(
        snap.delete(Kind::Pod, None, "c").unwrap().describe(),
        "Pod default/c"
    );
    assert_eq!(
        snap.delete(Kind::Pod, Some("z"), "b").unwrap().describe(),
        "Pod z/b"
    );
    assert!(snap.delete(Kind::Pod, Some("z"), "b").is_none());
    assert!(snap.delete(Kind::Pod, Some("other"), "a").is_none());
    // Namespace is ignored for cluster-scoped kinds.
    assert_eq!(
        snap.delete(Kind::Node, Some("z"), "n1").unwrap().describe(),
        "Node n1"
    );
    assert!(snap.delete(Kind::Service, None, "x").is_none());
    assert_eq!(pod_keys(&snap), ["z/a"]);
    assert_eq!(snap.len(), 2);
}

#[test]
fn sort_restores_order_and_keeps_the_last_duplicate() {
    let mut snap = Snapshot::default();
    for o in objects(PODS) {
        if let Object::Pod(p) = o {
            snap.pods.push(p);
        }
    }
    let mut dup = snap.pods[0].clone();
    dup.metadata.labels = Some([("last".to_string(), "yes".to_string())].into());
    snap.pods.push(dup);
    snap.sort();
    assert_eq!(pod_keys(&snap), ["default/c", "z/a", "z/b"]);
    assert!(snap.pods[2].metadata.labels.is_some());
}

#[test]
fn node_lookup_and_objects() {
    let mut snap = Snapshot::from_objects(objects(PODS));
    assert_eq!(crate::node_name(snap.node("n2").unwrap()), "n2");
    assert!(snap.node("n3").is_none());
    let kinds: Vec<_> = snap.objects().iter().map(|o| o.describe()).collect();
    assert_eq!(
        kinds,
        ["Node n1", "Node n2", "Pod default/c", "Pod z/a", "Pod z/b"]
    );
    // Unsorted hand-built lists are still searched.
    snap.nodes.reverse();
    assert!(snap.node("n1").is_some());
    assert!(!snap.is_empty());
}

const SERVICES: &str = "
apiVersion: v1
kind: Service
metadata: {name: a, namespace: x}
spec: {clusterIP: 10.43.0.1, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: x}
spec: {clusterIP: 10.43.0.2, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: a-1, namespace: x, labels: {kubernetes.io/service-name: a}}
addressType: IPv4
endpoints: [{addresses: [10.42.1.2]}]
";

#[test]
fn an_equal_object_keeps_its_arc() {
    let mut snap = Snapshot::from_objects(objects(SERVICES));
    let before = Arc::clone(&snap.services[0]);
    let again = objects(SERVICES).remove(0);
    assert!(snap.apply(again).is_some());
    assert!(Arc::ptr_eq(&before, &snap.services[0]));
    // A changed one gets a new Arc.
    let changed = objects(&SERVICES.replace("10.43.0.1", "10.43.0.9")).remove(0);
    snap.apply(changed);
    assert!(!Arc::ptr_eq(&before, &snap.services[0]));
}

#[test]
fn a_snapshot_read_again_shares_what_did_not_change() {
    let before = Snapshot::from_objects(objects(SERVICES));
    let mut again = Snapshot::from_objects(objects(&SERVICES.replace("10.43.0.2", "10.43.0.7")));
    assert!(!Arc::ptr_eq(&before.services[0], &again.services[0]));
    again.share_unchanged(&before);
    assert!(Arc::ptr_eq(&before.services[0], &again.services[0]));
    assert!(!Arc::ptr_eq(&before.services[1], &again.services[1]));
    assert_eq!(
        again.services[1]
            .spec
            .as_ref()
            .unwrap()
            .cluster_ip
            .as_deref(),
        Some("10.43.0.7")
    );
    assert!(Arc::ptr_eq(
        &before.endpoint_slices[0],
        &again.endpoint_slices[0]
    ));
    // Objects only one side has are left alone.
    let mut fewer = Snapshot::from_objects(objects(SERVICES).into_iter().skip(1));
    fewer.share_unchanged(&before);
    assert_eq!(fewer.services.len(), 1);
    assert!(Arc::ptr_eq(&before.services[1], &fewer.services[0]));
}
