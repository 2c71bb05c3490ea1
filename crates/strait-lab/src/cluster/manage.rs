//! `lab apply` / `lab delete` of manifests, resolving probe endpoints, and
//! `lab status`.

use super::objects::{namespace_exists, namespace_object, remove_object, write_object};
use super::{err, Cluster};
use crate::fabric::{FabricState, Target};
use crate::LabError;
use serde::Serialize;
use std::net::IpAddr;
use std::path::PathBuf;
use strait_model::{parse_manifests, Object};

/// Where a probe starts or ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub netns: PathBuf,
    pub ip: Option<IpAddr>,
    pub label: String,
}

/// `lab status --json` (documented in docs/lab.md).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub lab: String,
    pub backend: String,
    pub nodes: Vec<NodeStatus>,
    pub pods: Vec<PodStatus>,
    pub hosts: Vec<HostStatus>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub name: String,
    pub underlay_ip: String,
    pub pod_cidr: String,
    pub agent_ready: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub ip: String,
    pub host_network: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostStatus {
    pub name: String,
    pub network: String,
    pub ip: String,
}

impl Cluster {
    /// Applies every object of a multi-document manifest. Pods are created
    /// (or updated) on their node; other kinds go to the manifest directory
    /// the agents read. Nodes belong to the topology and are refused.
    pub fn apply(&self, lab: &str, text: &str, origin: &str) -> Result<Vec<String>, LabError> {
        let objects = parse_manifests(text, origin).map_err(|e| err(e.to_string()))?;
        if let Some(node) = objects.iter().find(|o| matches!(o, Object::Node(_))) {
            return Err(err(format!(
                "{origin}: {} cannot be applied: lab nodes come from the topology",
                node.describe()
            )));
        }
        let mut state = FabricState::load(&self.paths, lab)?;
        let topo = state.topology.clone();
        let mut done = Vec::new();
        let mut spread = self.pod_records(lab).len();
        // Namespaces first, pods last, as an API server would accept them.
        let mut ordered = objects;
        ordered.sort_by_key(|o| match o {
            Object::Namespace(_) => 0,
            Object::Pod(_) => 2,
            _ => 1,
        });
        // As the API server would insist, every namespace an object names
        // exists; the lab creates those never applied (labelled like any
        // Namespace, so namespaceSelectors on the name work).
        let applied: std::collections::BTreeSet<String> = ordered
            .iter()
            .filter(|o| matches!(o, Object::Namespace(_)))
            .map(|o| o.name().to_owned())
            .collect();
        let mut implied = std::collections::BTreeSet::new();
        for o in &ordered {
            if let Some(ns) = o.namespace() {
                if !applied.contains(ns) && !namespace_exists(&self.manifests(lab), ns) {
                    implied.insert(ns.to_owned());
                }
            }
        }
        for ns in implied {
            let obj = namespace_object(&ns);
            write_object(&self.manifests(lab), &obj)?;
            done.push(format!("{} (implied)", obj.describe()));
        }
        for obj in ordered {
            match obj {
                Object::Pod(pod) => {
                    let r = self.apply_pod(&topo, &mut state, pod, spread)?;
                    spread += 1;
                    done.push(format!(
                        "pod/{}/{} on {} ({})",
                        r.namespace, r.name, r.node, r.ip
                    ));
                }
                Object::Service(mut svc) => {
                    self.allocate_service(lab, &mut svc)?;
                    let ip = svc
                        .spec
                        .as_ref()
                        .and_then(|s| s.cluster_ip.clone())
                        .unwrap_or_default();
                    let obj = Object::Service(svc);
                    write_object(&self.manifests(lab), &obj)?;
                    done.push(format!("{} ({ip})", obj.describe()));
                }
                other => {
                    write_object(&self.manifests(lab), &other)?;
                    done.push(other.describe());
                }
            }
        }
        self.sync_endpoint_slices(lab)?;
        Ok(done)
    }

    /// Deletes every object named in a manifest (pods with CNI DEL).
    pub fn delete(&self, lab: &str, text: &str, origin: &str) -> Result<Vec<String>, LabError> {
        let objects = parse_manifests(text, origin).map_err(|e| err(e.to_string()))?;
        let mut state = FabricState::load(&self.paths, lab)?;
        let topo = state.topology.clone();
        let mut done = Vec::new();
        for obj in objects {
            let gone = match &obj {
                Object::Pod(_) => self.delete_pod(
                    &topo,
                    &mut state,
                    obj.namespace().unwrap_or("default"),
                    obj.name(),
                )?,
                Object::Node(_) => {
                    return Err(err(format!(
                        "{origin}: {} cannot be deleted: lab nodes come from the topology",
                        obj.describe()
                    )))
                }
                other => remove_object(&self.manifests(lab), other)?,
            };
            if gone {
                done.push(obj.describe());
            }
        }
        self.sync_endpoint_slices(lab)?;
        Ok(done)
    }

    /// Resolves `node/N`, `pod/NS/N`, `host/N`, `router`, an IP address, or
    /// `svc/NS/N` (its ClusterIP, as a destination).
    pub fn endpoint(&self, state: &FabricState, spec: &str) -> Result<Endpoint, LabError> {
        let lab = &state.lab;
        if let Ok(ip) = spec.parse::<IpAddr>() {
            return Ok(Endpoint {
                netns: PathBuf::new(),
                ip: Some(ip),
                label: spec.into(),
            });
        }
        if let Some(rest) = spec.strip_prefix("svc/") {
            let (ns, name) = rest
                .split_once('/')
                .ok_or_else(|| LabError::target(spec, "expected svc/NAMESPACE/NAME"))?;
            let snap = strait_model::ManifestStore::load(self.manifests(lab))
                .map_err(|e| err(e.to_string()))?;
            let ip = snap
                .services
                .iter()
                .find(|s| {
                    s.metadata.namespace.as_deref() == Some(ns)
                        && s.metadata.name.as_deref() == Some(name)
                })
                .and_then(|s| s.spec.as_ref()?.cluster_ip.clone())
                .and_then(|ip| ip.parse().ok())
                .ok_or_else(|| LabError::target(spec, "no such Service with a ClusterIP"))?;
            return Ok(Endpoint {
                netns: PathBuf::new(),
                ip: Some(ip),
                label: spec.into(),
            });
        }
        if let Some(rest) = spec.strip_prefix("pod/") {
            let (ns, name) = rest
                .split_once('/')
                .ok_or_else(|| LabError::target(spec, "expected pod/NAMESPACE/NAME"))?;
            let r = self
                .pod_record(lab, ns, name)
                .ok_or_else(|| LabError::target(spec, "no such pod in the lab"))?;
            return Ok(Endpoint {
                netns: PathBuf::from(format!("/run/netns/{}", r.netns)),
                ip: r.ip.parse().ok(),
                label: spec.into(),
            });
        }
        let target: Target = spec.parse()?;
        let member = state.member(&target)?;
        Ok(Endpoint {
            netns: member.path(),
            ip: member
                .interfaces
                .first()
                .map(|i| IpAddr::V4(i.address.addr())),
            label: spec.into(),
        })
    }

    pub fn status(&self, lab: &str) -> Result<Status, LabError> {
        let state = FabricState::load(&self.paths, lab)?;
        let topo = &state.topology;
        let cidrs = topo.pod_cidrs()?;
        let nodes = topo
            .nodes
            .iter()
            .zip(cidrs)
            .map(|(n, c)| NodeStatus {
                name: n.name.clone(),
                underlay_ip: n.ip.to_string(),
                pod_cidr: c.to_string(),
                agent_ready: self.agent_ready(&state, &n.name),
            })
            .collect();
        let pods = self
            .pod_records(lab)
            .into_iter()
            .map(|r| PodStatus {
                namespace: r.namespace,
                name: r.name,
                node: r.node,
                ip: r.ip,
                host_network: r.host_network,
            })
            .collect();
        let hosts = topo
            .external_networks
            .iter()
            .flat_map(|net| {
                net.hosts.iter().map(move |h| HostStatus {
                    name: h.name.clone(),
                    network: net.name.clone(),
                    ip: h.ip.to_string(),
                })
            })
            .collect();
        Ok(Status {
            lab: lab.into(),
            backend: format!("{:?}", topo.backend)
                .to_lowercase()
                .replace("hostgw", "host-gw"),
            nodes,
            pods,
            hosts,
        })
    }
}
