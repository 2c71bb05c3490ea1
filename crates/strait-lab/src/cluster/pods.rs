//! Pods in the lab: a network namespace per pod, attached with a CNI ADD of
//! strait-cni (and portmap, so hostPorts work as kubelet passes them) run
//! inside the pod's node, an echo server on every declared containerPort,
//! and the Pod object with its status written where the agents read it.

use super::objects::{remove_object, write_object};
use super::{err, Cluster};
use crate::cni::{CniCall, Conflist};
use crate::fabric::{FabricState, NsState};
use crate::topology::{NsKind, Topology};
use crate::LabError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use strait_model::k8s::api::core::v1::Pod;
use strait_model::Object;

/// What the lab remembers of a pod it made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub host_network: bool,
    /// The pod's network namespace (the node's for hostNetwork pods).
    pub netns: String,
    pub ip: String,
    pub container_id: String,
    /// The CNI ADD result (passed back on DEL, as a runtime does).
    #[serde(default)]
    pub cni_result: Value,
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
    pub sctp: Vec<u16>,
    #[serde(default)]
    pub host_ports: Vec<(u16, u16, String)>,
}

/// A pod's declared ports: where its echo server listens, and its hostPorts
/// as (hostPort, containerPort, protocol).
#[derive(Debug, Clone, PartialEq)]
struct PodPorts {
    tcp: Vec<u16>,
    udp: Vec<u16>,
    sctp: Vec<u16>,
    host: Vec<(u16, u16, String)>,
}

fn ports(pod: &Pod) -> PodPorts {
    let (mut tcp, mut udp, mut sctp, mut host) = (vec![], vec![], vec![], vec![]);
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    for c in containers {
        for p in c.ports.unwrap_or_default() {
            let Ok(port) = u16::try_from(p.container_port) else {
                continue;
            };
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            match proto.as_str() {
                "UDP" => udp.push(port),
                "SCTP" => sctp.push(port),
                _ => tcp.push(port),
            }
            if let Some(hp) = p.host_port.and_then(|h| u16::try_from(h).ok()) {
                host.push((hp, port, proto.to_lowercase()));
            }
        }
    }
    for v in [&mut tcp, &mut udp, &mut sctp] {
        v.sort();
        v.dedup();
    }
    PodPorts {
        tcp,
        udp,
        sctp,
        host,
    }
}

impl Cluster {
    fn pod_record_path(&self, lab: &str, ns: &str, name: &str) -> PathBuf {
        self.dir(lab).join("pods").join(format!("{ns}.{name}.json"))
    }

    pub fn pod_records(&self, lab: &str) -> Vec<PodRecord> {
        let mut out: Vec<PodRecord> = std::fs::read_dir(self.dir(lab).join("pods"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .filter_map(|b| serde_json::from_slice(&b).ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out
    }

    pub fn pod_record(&self, lab: &str, ns: &str, name: &str) -> Option<PodRecord> {
        std::fs::read(self.pod_record_path(lab, ns, name))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    fn conflist(&self, lab: &str, node: &str) -> Conflist {
        let dir = self.node_dir(lab, node);
        Conflist::new(json!({
            "cniVersion": "1.0.0",
            "name": "strait",
            "plugins": [
                {"type": "strait-cni", "nodeConfig": dir.join("node.json"),
                 "ipam": {"dataDir": dir.join("ipam")}},
                {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
            ]
        }))
    }

    fn call(&self, node_netns: &str, pod_netns: &str, container_id: &str) -> CniCall {
        let mut call = CniCall::new(
            "ADD",
            container_id,
            &PathBuf::from(format!("/run/netns/{pod_netns}")),
            "eth0",
        );
        call.path = vec![self.bins.cni_dir.clone(), PathBuf::from("/usr/lib/cni")];
        call.host_netns = Some(node_netns.to_owned());
        call
    }

    /// Creates (or, when its placement or ports changed, recreates) a pod;
    /// a pod whose only change is its labels keeps its namespace and address.
    pub fn apply_pod(
        &self,
        topo: &Topology,
        state: &mut FabricState,
        mut pod: Pod,
        spread: usize,
    ) -> Result<PodRecord, LabError> {
        let lab = &topo.name;
        let (ns, name) = strait_model::namespace_and_name(&pod.metadata);
        let (ns, name) = (ns.to_string(), name.to_string());
        let spec = pod.spec.clone().unwrap_or_default();
        let node = match spec.node_name.clone() {
            Some(n) if topo.node(&n).is_some() => n,
            Some(n) => {
                return Err(err(format!(
                    "pod {ns}/{name}: spec.nodeName {n:?} is not a node of lab {lab}"
                )))
            }
            None => topo.nodes[spread % topo.nodes.len()].name.clone(),
        };
        let host_network = spec.host_network.unwrap_or(false);
        let PodPorts {
            tcp,
            udp,
            sctp,
            host: host_ports,
        } = ports(&pod);
        if let Some(old) = self.pod_record(lab, &ns, &name) {
            let same = old.node == node
                && old.host_network == host_network
                && old.tcp == tcp
                && old.udp == udp
                && old.sctp == sctp
                && old.host_ports == host_ports;
            if same {
                self.write_pod(lab, &mut pod, &old)?;
                return Ok(old);
            }
            self.delete_pod(topo, state, &ns, &name)?;
        }

        let node_netns = topo.netns(NsKind::Node, &node);
        let node_ip = topo
            .node(&node)
            .map(|n| n.ip.to_string())
            .unwrap_or_default();
        let container_id = format!("{lab}-{ns}-{name}")
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-");
        let (netns, ip, cni_result) = if host_network {
            (node_netns.clone(), node_ip.clone(), Value::Null)
        } else {
            let netns = pod_netns_name(lab, &ns, &name);
            let out = std::process::Command::new("ip")
                .args(["netns", "add", &netns])
                .output()
                .map_err(|e| err(format!("ip netns add {netns}: {e}")))?;
            if !out.status.success() {
                return Err(err(format!(
                    "ip netns add {netns}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            let _ = std::process::Command::new("ip")
                .args(["-n", &netns, "link", "set", "lo", "up"])
                .status();
            let rc: Map<String, Value> = crate::cni::port_mappings(
                &host_ports
                    .iter()
                    .map(|(h, c, p)| (*h, *c, p.as_str()))
                    .collect::<Vec<_>>(),
            );
            let added = self
                .conflist(lab, &node)
                .add(&self.call(&node_netns, &netns, &container_id), &rc)
                .map_err(|e| err(format!("pod {ns}/{name}: run CNI: {e}")))?;
            let result = match added {
                Ok(r) => r,
                Err(out) => {
                    let _ = std::process::Command::new("ip")
                        .args(["netns", "del", &netns])
                        .status();
                    return Err(err(format!(
                        "pod {ns}/{name}: CNI ADD on {node} failed: {}",
                        out.stdout
                    )));
                }
            };
            let ip = result["ips"][0]["address"]
                .as_str()
                .and_then(|a| a.split('/').next())
                .unwrap_or_default()
                .to_owned();
            (netns, ip, result)
        };
        let record = PodRecord {
            namespace: ns.clone(),
            name: name.clone(),
            node: node.clone(),
            host_network,
            netns: netns.clone(),
            ip,
            container_id,
            cni_result,
            tcp: tcp.clone(),
            udp: udp.clone(),
            sctp: sctp.clone(),
            host_ports,
        };
        super::objects::write_json(
            &self.pod_record_path(lab, &ns, &name),
            &serde_json::to_value(&record).unwrap_or_default(),
        )?;
        if !host_network {
            state.namespaces.push(NsState {
                netns: netns.clone(),
                kind: NsKind::Pod,
                name: format!("{ns}/{name}"),
                interfaces: vec![],
            });
            state.save(&self.paths)?;
        }
        if !(tcp.is_empty() && udp.is_empty() && sctp.is_empty()) {
            self.start_echo(lab, &netns, &format!("{ns}/{name}"), &tcp, &udp, &sctp)?;
        }
        self.write_pod(lab, &mut pod, &record)?;
        Ok(record)
    }

    /// The Pod object as the API would hold it once running.
    fn write_pod(&self, lab: &str, pod: &mut Pod, r: &PodRecord) -> Result<(), LabError> {
        let spec = pod.spec.get_or_insert_with(Default::default);
        spec.node_name = Some(r.node.clone());
        let status = json!({
            "phase": "Running",
            "podIP": r.ip,
            "podIPs": [{"ip": r.ip}],
            "conditions": [{"type": "Ready", "status": "True"}],
        });
        pod.status = serde_json::from_value(status).ok();
        write_object(&self.manifests(lab), &Object::Pod(pod.clone()))
    }

    /// Removes a pod: CNI DEL, its processes and namespace, its object.
    pub fn delete_pod(
        &self,
        topo: &Topology,
        state: &mut FabricState,
        ns: &str,
        name: &str,
    ) -> Result<bool, LabError> {
        let lab = &topo.name;
        let Some(r) = self.pod_record(lab, ns, name) else {
            return Ok(false);
        };
        if r.host_network {
            // Its echo server runs in the node's namespace: stop it by label.
            let _ = std::process::Command::new("pkill")
                .args(["-f", &format!("lab serve --label {ns}/{name} ")])
                .status();
        } else {
            let node_netns = topo.netns(NsKind::Node, &r.node);
            let rc = crate::cni::port_mappings(
                &r.host_ports
                    .iter()
                    .map(|(h, c, p)| (*h, *c, p.as_str()))
                    .collect::<Vec<_>>(),
            );
            let del = self
                .conflist(lab, &r.node)
                .check_or_del(
                    &self.call(&node_netns, &r.netns, &r.container_id),
                    "DEL",
                    Some(&r.cni_result),
                    &rc,
                )
                .map_err(|e| err(format!("pod {ns}/{name}: run CNI: {e}")))?;
            if let Err(out) = del {
                return Err(err(format!(
                    "pod {ns}/{name}: CNI DEL failed: {}",
                    out.stdout
                )));
            }
            let path = PathBuf::from(format!("/run/netns/{}", r.netns));
            for pid in crate::fabric::netns_pids(&[path]) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &r.netns])
                .status();
            state.namespaces.retain(|n| n.netns != r.netns);
            state.save(&self.paths)?;
        }
        let mut pod = Pod::default();
        pod.metadata.namespace = Some(ns.into());
        pod.metadata.name = Some(name.into());
        remove_object(&self.manifests(lab), &Object::Pod(pod))?;
        let _ = std::fs::remove_file(self.pod_record_path(lab, ns, name));
        Ok(true)
    }
}

/// `<lab>-pod-<ns>-<name>`, or a hash of it when that would be too long.
fn pod_netns_name(lab: &str, ns: &str, name: &str) -> String {
    let plain = crate::topology::netns_name(lab, NsKind::Pod, &format!("{ns}-{name}"));
    if plain.len() <= 50 {
        return plain;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{ns}/{name}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    crate::topology::netns_name(lab, NsKind::Pod, &format!("{h:016x}"))
}
