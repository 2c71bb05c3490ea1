//! What the Kubernetes control plane would do for Services in the lab:
//! allocate ClusterIPs (from the service CIDR) and NodePorts (30000-32767)
//! on apply, and keep EndpointSlices in step with pods, as the EndpointSlice
//! controller does: one slice per distinct set of resolved ports, ready
//! endpoints from running pods whose labels match the selector, named
//! targetPorts resolved per pod.

use super::objects::write_json;
use super::{err, Cluster};
use crate::LabError;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use strait_model::k8s::api::core::v1::{Pod, Service};
use strait_model::k8s::apimachinery::pkg::util::intstr::IntOrString;
use strait_model::ManifestStore;

/// The label that marks slices the lab manages.
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const LAB_CONTROLLER: &str = "strait-lab";

impl Cluster {
    /// Fills in a Service's ClusterIP and NodePorts if the manifest left
    /// them empty, avoiding those already in use.
    pub fn allocate_service(&self, lab: &str, svc: &mut Service) -> Result<(), LabError> {
        let snap = ManifestStore::load(self.manifests(lab)).map_err(|e| err(e.to_string()))?;
        let state = crate::fabric::FabricState::load(&self.paths, lab)?;
        let me = (svc.metadata.namespace.clone(), svc.metadata.name.clone());
        let others: Vec<&Service> = snap
            .services
            .iter()
            .map(|s| &**s)
            .filter(|s| (s.metadata.namespace.clone(), s.metadata.name.clone()) != me)
            .collect();
        let spec = svc.spec.get_or_insert_with(Default::default);
        if spec.cluster_ip.as_deref().is_none_or(str::is_empty) {
            let used: BTreeSet<String> = others
                .iter()
                .filter_map(|s| s.spec.as_ref()?.cluster_ip.clone())
                .collect();
            let cidr: ipnet::Ipv4Net = state
                .topology
                .service_cidr
                .to_string()
                .parse()
                .map_err(|e| err(format!("serviceCIDR: {e}")))?;
            // .1 is kept free (Kubernetes gives it to the `kubernetes` Service).
            let ip = cidr
                .hosts()
                .skip(9)
                .map(|ip: Ipv4Addr| ip.to_string())
                .find(|ip| !used.contains(ip))
                .ok_or_else(|| err(format!("serviceCIDR {cidr} has no free address")))?;
            spec.cluster_ip = Some(ip.clone());
            spec.cluster_ips = Some(vec![ip]);
        }
        let wants_node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        if wants_node_ports {
            let mut used: BTreeSet<i32> = others
                .iter()
                .flat_map(|s| s.spec.iter().flat_map(|sp| sp.ports.iter().flatten()))
                .filter_map(|p| p.node_port)
                .collect();
            used.extend(
                others
                    .iter()
                    .filter_map(|s| s.spec.as_ref()?.health_check_node_port),
            );
            let next_free = |used: &mut BTreeSet<i32>| -> Result<i32, LabError> {
                let port = (30000..=32767)
                    .find(|n| !used.contains(n))
                    .ok_or_else(|| err("no free NodePort in 30000-32767"))?;
                used.insert(port);
                Ok(port)
            };
            for p in spec.ports.iter_mut().flatten() {
                if p.node_port.is_none() {
                    p.node_port = Some(next_free(&mut used)?);
                }
            }
            // eTP Local: load balancers ask each node whether it has a local
            // endpoint on this port (the API server allocates it too).
            if spec.external_traffic_policy.as_deref() == Some("Local")
                && spec.health_check_node_port.is_none()
            {
                spec.health_check_node_port = Some(next_free(&mut used)?);
            }
        }
        Ok(())
    }

    /// Rewrites every lab-managed EndpointSlice from the current Services and
    /// pods, and removes those whose Service is gone.
    pub fn sync_endpoint_slices(&self, lab: &str) -> Result<(), LabError> {
        let dir = self.manifests(lab);
        let snap = ManifestStore::load(&dir).map_err(|e| err(e.to_string()))?;
        let mut wanted: BTreeMap<String, Value> = BTreeMap::new();
        for svc in &snap.services {
            let Some(spec) = &svc.spec else { continue };
            let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
                continue; // no selector: slices are the user's to write
            };
            let (ns, name) = strait_model::namespace_and_name(&svc.metadata);
            let (ns, name) = (ns.to_string(), name.to_string());
            // Endpoints grouped by their resolved ports.
            let mut groups: BTreeMap<Vec<(String, i32, String)>, Vec<Value>> = BTreeMap::new();
            for pod in snap.pods.iter().filter(|p| {
                p.metadata.namespace.as_deref() == Some(ns.as_str())
                    && labels_match(selector, p.metadata.labels.as_ref())
            }) {
                let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
                    continue;
                };
                let ports: Vec<(String, i32, String)> = spec
                    .ports
                    .iter()
                    .flatten()
                    .filter_map(|sp| {
                        let proto = sp.protocol.clone().unwrap_or_else(|| "TCP".into());
                        let port =
                            resolve_target_port(pod, sp.target_port.as_ref(), sp.port, &proto)?;
                        Some((sp.name.clone().unwrap_or_default(), port, proto))
                    })
                    .collect();
                let ready = pod_ready(pod);
                let deleting = pod.metadata.deletion_timestamp.is_some();
                groups.entry(ports).or_default().push(json!({
                    "addresses": [ip],
                    "conditions": {"ready": ready && !deleting, "serving": ready, "terminating": deleting},
                    "nodeName": pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                    "targetRef": {"kind": "Pod", "namespace": ns, "name": pod.metadata.name},
                }));
            }
            if groups.is_empty() {
                // An empty slice still says "this Service has no endpoints".
                groups.insert(vec![], vec![]);
            }
            for (i, (ports, endpoints)) in groups.into_iter().enumerate() {
                let slice_name = format!("{name}-lab-{i}");
                let slice = json!({
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": slice_name,
                        "namespace": ns,
                        "labels": {"kubernetes.io/service-name": name, MANAGED_BY: LAB_CONTROLLER},
                    },
                    "addressType": "IPv4",
                    "endpoints": endpoints,
                    "ports": ports.iter().map(|(n, p, proto)| json!({"name": n, "port": p, "protocol": proto})).collect::<Vec<_>>(),
                });
                wanted.insert(format!("endpointslice.{ns}.{slice_name}.json"), slice);
            }
        }
        // Remove stale lab-managed slices, then write the wanted ones.
        for s in &snap.endpoint_slices {
            let managed = s.label(MANAGED_BY) == Some(LAB_CONTROLLER);
            let file = format!("endpointslice.{}.{}.json", s.namespace, s.name).to_lowercase();
            if managed && !wanted.contains_key(&file) {
                let _ = std::fs::remove_file(dir.join(&file));
            }
        }
        for (file, slice) in wanted {
            let path = dir.join(file.to_lowercase());
            let old: Option<Value> = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if old.as_ref() != Some(&slice) {
                write_json(&path, &slice)?;
            }
        }
        Ok(())
    }
}

fn labels_match(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The port a Service port reaches on this pod: a number, or a named
/// containerPort of the same protocol (pods without it are left out).
fn resolve_target_port(
    pod: &Pod,
    target: Option<&IntOrString>,
    port: i32,
    proto: &str,
) -> Option<i32> {
    match target {
        None => Some(port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| {
                p.name.as_deref() == Some(name) && p.protocol.as_deref().unwrap_or("TCP") == proto
            })
            .map(|p| p.container_port),
    }
}
