use super::*;

fn err(text: &str) -> String {
    parse_manifests(text, "pods.yaml").unwrap_err().to_string()
}

fn parse(text: &str) -> Vec<Object> {
    parse_manifests(text, "pods.yaml").unwrap()
}

const ALL_KINDS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: a}}
---
apiVersion: v1
kind: Node
metadata: {name: node-a}
spec: {podCIDR: 10.42.1.0/24, podCIDRs: [10.42.1.0/24]}
status: {addresses: [{type: InternalIP, address: 10.0.0.1}, {type: Hostname, address: node-a}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {nodeName: node-a, containers: [{name: web, image: busybox, ports: [{containerPort: 80}]}]}
status: {podIP: 10.42.1.5, podIPs: [{ip: 10.42.1.5}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {clusterIP: 10.43.0.10, selector: {app: web}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.42.1.5]}]
ports: [{port: 80, protocol: TCP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress]}
"#;

#[test]
fn every_kind_parses_with_defaults() {
    let objects = parse(ALL_KINDS);
    let described: Vec<String> = objects.iter().map(Object::describe).collect();
    assert_eq!(
        described,
        [
            "Namespace shop",
            "Node node-a",
            "Pod shop/web",
            "Service default/web",
            "EndpointSlice default/web-1",
            "NetworkPolicy shop/deny",
        ]
    );
    let Object::Namespace(ns) = &objects[0] else {
        panic!()
    };
    let labels = ns.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["kubernetes.io/metadata.name"], "shop");
    assert_eq!(labels["team"], "a");
    let Object::Service(svc) = &objects[3] else {
        panic!()
    };
    assert_eq!(
        svc.spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("10.43.0.10")
    );
    let Object::EndpointSlice(slice) = &objects[4] else {
        panic!()
    };
    assert_eq!(slice.endpoints[0].addresses, ["10.42.1.5"]);
    assert_eq!(objects[1].namespace(), None);
    assert_eq!(objects[2].name(), "web");
    assert_eq!(objects[5].kind(), Kind::NetworkPolicy);
}

#[test]
fn json_documents_parse() {
    let objects = parse(r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}"#);
    assert_eq!(objects[0].describe(), "Namespace x");
}

#[test]
fn empty_documents_are_skipped_but_counted() {
    let objects = parse("---\n# only a comment\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n{}\n---\n");
    assert_eq!(objects.len(), 1);
    assert!(parse("").is_empty());
    assert!(parse("# nothing\n").is_empty());
    assert_eq!(
        err("---\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n\n---\nkind: Deployment\n"),
        "pods.yaml, document 4: kind \"Deployment\" is not supported (supported: Namespace, Node, Pod, Service, EndpointSlice, NetworkPolicy)"
    );
}

#[test]
fn unsupported_kind_names_origin_document_and_kind() {
    assert_eq!(
        err("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"),
        "pods.yaml, document 2: kind \"Deployment\" is not supported (supported: Namespace, Node, Pod, Service, EndpointSlice, NetworkPolicy)"
    );
    // Kinds are case-sensitive, as in Kubernetes.
    assert_eq!(
        err("apiVersion: v1\nkind: pod\nmetadata: {name: a}\n"),
        "pods.yaml, document 1: kind \"pod\" is not supported (supported: Namespace, Node, Pod, Service, EndpointSlice, NetworkPolicy)"
    );
}

#[test]
fn wrong_api_version() {
    assert_eq!(
        err("apiVersion: v2\nkind: Pod\nmetadata: {name: a}\n"),
        "pods.yaml, document 1: apiVersion \"v2\" is not supported for kind Pod (expected \"v1\")"
    );
    assert_eq!(
        err("apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: a}\n"),
        "pods.yaml, document 1: apiVersion \"discovery.k8s.io/v1beta1\" is not supported for kind EndpointSlice (expected \"discovery.k8s.io/v1\")"
    );
}

#[test]
fn missing_or_bad_header_fields() {
    assert_eq!(
        err("apiVersion: v1\nmetadata: {name: a}\n"),
        "pods.yaml, document 1: has no kind"
    );
    assert_eq!(
        err("kind: Pod\nmetadata: {name: a}\n"),
        "pods.yaml, document 1: has no apiVersion"
    );
    assert_eq!(
        err("apiVersion: v1\nkind: [Pod]\n"),
        "pods.yaml, document 1: kind is not a string"
    );
    assert_eq!(
        err("- a\n- b\n"),
        "pods.yaml, document 1: is not a mapping (a Kubernetes object)"
    );
}

#[test]
fn missing_name() {
    assert_eq!(
        err("apiVersion: v1\nkind: Pod\nmetadata: {namespace: x}\n"),
        "pods.yaml, document 1: Pod has no metadata.name"
    );
    assert_eq!(
        err("apiVersion: v1\nkind: Node\n"),
        "pods.yaml, document 1: Node has no metadata.name"
    );
}

#[test]
fn yaml_syntax_error() {
    assert_eq!(
        err("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\nfoo: [\n"),
        "pods.yaml, document 2: invalid YAML: did not find expected node content at line 6 column 1, while parsing a flow node"
    );
}

#[test]
fn type_errors_name_object_and_path() {
    assert_eq!(
        err("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: 1}]}\n"),
        "pods.yaml, document 1: Pod \"a\": spec.containers[0].name: invalid type: integer `1`, expected a string"
    );
}

#[test]
fn node_fields_are_checked() {
    assert_eq!(
        err("apiVersion: v1\nkind: Node\nmetadata: {name: b}\nspec: {podCIDR: 10.42.1.0/33}\n"),
        "pods.yaml, document 1: Node \"b\": spec.podCIDR: 10.42.1.0/33 is not a CIDR (address/prefix, e.g. 10.42.0.0/16)"
    );
    assert_eq!(
        err("apiVersion: v1\nkind: Node\nmetadata: {name: b}\nstatus: {addresses: [{type: InternalIP, address: 10.0.0.300}]}\n"),
        "pods.yaml, document 1: Node \"b\": status.addresses[0].address: 10.0.0.300 is not an IP address"
    );
}

#[test]
fn cluster_scoped_objects_lose_a_namespace() {
    let objects = parse("apiVersion: v1\nkind: Node\nmetadata: {name: a, namespace: x}\n");
    assert_eq!(objects[0].namespace(), None);
}

#[test]
fn kind_helpers() {
    assert_eq!("Pod".parse::<Kind>().unwrap(), Kind::Pod);
    assert_eq!(
        "Deployment".parse::<Kind>().unwrap_err(),
        "kind \"Deployment\" is not supported (supported: Namespace, Node, Pod, Service, EndpointSlice, NetworkPolicy)"
    );
    assert_eq!(Kind::NetworkPolicy.api_version(), "networking.k8s.io/v1");
    assert_eq!(Kind::EndpointSlice.to_string(), "EndpointSlice");
    assert!(Kind::Pod.is_namespaced());
    assert!(!Kind::Node.is_namespaced());
    assert!(!Kind::Namespace.is_namespaced());
}

#[test]
fn yaml_anchors_and_merge_keys() {
    let objects = parse(
        "apiVersion: v1\nkind: Pod\nmetadata: &m {name: a, labels: {app: x}}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  <<: {name: b, labels: {app: y}}\n  namespace: z\n",
    );
    assert_eq!(objects[0].describe(), "Pod default/a");
    assert_eq!(objects[1].describe(), "Pod z/b");
    assert_eq!(objects[1].metadata().labels.as_ref().unwrap()["app"], "y");
}
