//! The pods and namespaces policies are evaluated against: pods with an
//! IPv4 address that are not hostNetwork and not finished, and namespace
//! labels that always hold `kubernetes.io/metadata.name` (the API server
//! sets it; a namespace missing from the snapshot still has it).

use super::selector::Labels;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use strait_model::k8s::api::core::v1::Pod;
use strait_model::Snapshot;

/// The label the API server puts on every namespace.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

static NO_LABELS: Labels = BTreeMap::new();

/// A pod policies can select or match.
#[derive(Debug, Clone, Copy)]
pub struct PodRef<'a> {
    pub namespace: &'a str,
    pub labels: &'a Labels,
    pub ip: Ipv4Addr,
    /// `spec.nodeName` ("" when unscheduled).
    pub node: &'a str,
    pub pod: &'a Pod,
}

pub struct Cluster<'a> {
    /// Sorted by (namespace, name), as the snapshot is.
    pub pods: Vec<PodRef<'a>>,
    namespaces: BTreeMap<&'a str, &'a Labels>,
}

/// The pod's IPv4 address: `status.podIP`, else the first IPv4 of
/// `status.podIPs`.
pub fn pod_ipv4(pod: &Pod) -> Option<Ipv4Addr> {
    let status = pod.status.as_ref()?;
    let first = status.pod_ip.iter();
    let all = status.pod_ips.iter().flatten().map(|p| &p.ip);
    first.chain(all).find_map(|s| s.parse::<Ipv4Addr>().ok())
}

fn counts(pod: &Pod) -> bool {
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    !host_network && !finished
}

impl<'a> Cluster<'a> {
    pub fn new(snap: &'a Snapshot) -> Self {
        let pods = snap
            .pods
            .iter()
            .filter(|p| counts(p))
            .filter_map(|pod| {
                let ip = pod_ipv4(pod)?;
                let meta = &pod.metadata;
                Some(PodRef {
                    namespace: meta.namespace.as_deref().unwrap_or("default"),
                    labels: meta.labels.as_ref().unwrap_or(&NO_LABELS),
                    ip,
                    node: pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_deref())
                        .unwrap_or(""),
                    pod,
                })
            })
            .collect();
        let namespaces = snap
            .namespaces
            .iter()
            .filter_map(|n| {
                let name = n.metadata.name.as_deref()?;
                Some((name, n.metadata.labels.as_ref().unwrap_or(&NO_LABELS)))
            })
            .collect();
        Cluster { pods, namespaces }
    }

    /// The namespace's labels, with `kubernetes.io/metadata.name` set.
    pub fn namespace_labels(&self, ns: &str) -> Labels {
        let mut labels = self
            .namespaces
            .get(ns)
            .map(|l| (*l).clone())
            .unwrap_or_default();
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), ns.to_string());
        labels
    }

    /// Every namespace a pod lives in, with its labels.
    pub fn pod_namespaces(&self) -> BTreeMap<&'a str, Labels> {
        let mut out = BTreeMap::new();
        for p in &self.pods {
            out.entry(p.namespace)
                .or_insert_with(|| self.namespace_labels(p.namespace));
        }
        out
    }
}
