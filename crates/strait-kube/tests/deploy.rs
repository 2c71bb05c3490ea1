//! deploy/strait.yaml: every document parses into its k8s-openapi type and
//! serialises back to the same document (so a misspelt or misplaced field,
//! which the API server would silently drop, fails here); the ClusterRole
//! grants exactly the access the source declares; the DaemonSet runs the
//! agent as the docs say.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use strait_kube::rbac::ACCESS;

const DEPLOY: &str = include_str!("../../../deploy/strait.yaml");

fn documents() -> Vec<Value> {
    documents_of(DEPLOY)
}

fn documents_of(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Parses `doc` as `T` and checks that serialising it gives `doc` back.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> T {
    let name = format!("{} {}", doc["kind"], doc["metadata"]["name"]);
    let typed: T = serde_path_to_error::deserialize(doc.clone())
        .unwrap_or_else(|e| panic!("{name}: {} at {}", e.inner(), e.path()));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, doc,
        "{name}: fields lost or changed by the round trip"
    );
    typed
}

fn typed<T: DeserializeOwned + Serialize>(kind: &str) -> T {
    let docs = documents();
    let doc = docs
        .iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in deploy/strait.yaml"));
    round_trip(doc)
}

#[test]
fn strait_yaml_holds_the_six_documents_kubectl_apply_needs() {
    let docs = documents();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "DaemonSet"
        ]
    );
}

#[test]
fn every_manifest_in_deploy_round_trips() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            continue;
        }
        for doc in documents_of(&std::fs::read_to_string(&path).unwrap()) {
            check_document(&doc);
            seen += 1;
        }
    }
    assert!(seen >= 6, "{seen} documents in {}", dir.display());
}

fn check_document(doc: &Value) {
    match doc["kind"].as_str().unwrap() {
        "Namespace" => drop(round_trip::<Namespace>(doc)),
        "ServiceAccount" => drop(round_trip::<ServiceAccount>(doc)),
        "ClusterRole" => drop(round_trip::<ClusterRole>(doc)),
        "ClusterRoleBinding" => drop(round_trip::<ClusterRoleBinding>(doc)),
        "ConfigMap" => drop(round_trip::<ConfigMap>(doc)),
        "DaemonSet" => drop(round_trip::<DaemonSet>(doc)),
        other => panic!("no round-trip check for kind {other}: add its type here"),
    }
}

#[test]
fn a_misspelt_field_fails_the_round_trip() {
    let mut doc = documents()
        .into_iter()
        .find(|d| d["kind"] == "DaemonSet")
        .unwrap();
    doc["spec"]["template"]["spec"]["tolleration"] = serde_json::json!([]);
    let result = std::panic::catch_unwind(|| round_trip::<DaemonSet>(&doc));
    assert!(result.is_err(), "a misspelt field went unnoticed");
}

#[test]
fn the_cluster_role_grants_exactly_what_the_source_uses() {
    let role: ClusterRole = typed("ClusterRole");
    let mut granted = BTreeSet::new();
    for rule in role.rules.unwrap_or_default() {
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
    }
    let used: BTreeSet<_> = ACCESS
        .iter()
        .flat_map(|(g, r, verbs)| {
            verbs
                .iter()
                .map(|v| (g.to_string(), r.to_string(), v.to_string()))
        })
        .collect();
    assert_eq!(granted, used);

    let binding: ClusterRoleBinding = typed("ClusterRoleBinding");
    let account: ServiceAccount = typed("ServiceAccount");
    assert_eq!(binding.role_ref.name, role.metadata.name.unwrap());
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(Some(&subject.name), account.metadata.name.as_ref());
    assert_eq!(subject.namespace, account.metadata.namespace);
}

#[test]
fn the_daemon_set_runs_the_agent_as_documented() {
    let ds: DaemonSet = typed("DaemonSet");
    let account: ServiceAccount = typed("ServiceAccount");
    let config: ConfigMap = typed("ConfigMap");
    let spec = ds.spec.unwrap();
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.service_account_name, account.metadata.name);
    // Tolerates every taint: control planes and not-ready nodes included.
    let tolerations = pod.tolerations.unwrap();
    assert!(tolerations
        .iter()
        .any(|t| t.operator.as_deref() == Some("Exists") && t.key.is_none() && t.effect.is_none()));
    let agent = &pod.containers[0];
    let env = agent.env.as_ref().unwrap();
    let node_name = env.iter().find(|e| e.name == "NODE_NAME").unwrap();
    let field = node_name
        .value_from
        .as_ref()
        .unwrap()
        .field_ref
        .as_ref()
        .unwrap();
    assert_eq!(field.field_path, "spec.nodeName");
    assert!(agent.liveness_probe.is_some() && agent.readiness_probe.is_some());
    let readiness = agent
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(readiness.path.as_deref(), Some("/readyz"));
    assert!(agent.resources.as_ref().unwrap().requests.is_some());
    let command = agent.command.as_ref().unwrap().join(" ");
    assert!(command.starts_with("strait agent "), "{command}");
    assert!(!command.contains("--manifests"), "{command}");
    // The mounted config parses as an agent config.
    let text = &config.data.unwrap()["agent.yaml"];
    strait_model::AgentConfig::from_yaml(text).expect("the ConfigMap's agent.yaml");
    let init = &pod.init_containers.unwrap()[0];
    let script = init.command.as_ref().unwrap().join(" ");
    assert!(
        script.contains("strait-cni") && !script.contains("net.d"),
        "{script}"
    );
}
