//! What a trace runs over: every node's Plan (and the routes it holds
//! besides the Plan's), the pods, the routers and external hosts around the
//! cluster, and the Services (for names). Built from a Snapshot and config
//! ([`World::from_cluster`]) plus whatever the caller knows of the network
//! outside (the lab passes its topology).

use ipnet::Ipv4Net;
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr};
use strait_model::k8s::api::core::v1::Node;
use strait_model::{AgentConfig, Snapshot};
use strait_plan::nft::L4Proto;
use strait_plan::{LocalNode, Plan, RoutePlan};

/// A cluster node and what its kernel holds.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub local: LocalNode,
    pub plan: Plan,
    /// Routes the node holds that are not the Plan's (static routes, a
    /// default route), e.g. read from its kernel or the lab topology.
    pub host_routes: Vec<RoutePlan>,
}

/// A pod (or a hostNetwork pod, which lives in its node's namespace).
#[derive(Debug, Clone, Serialize)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub ip: Ipv4Addr,
    pub host_network: bool,
    /// (protocol, port) the pod answers on: its containerPorts.
    pub listens: Vec<(L4Proto, u16)>,
}

/// A router or host outside the cluster: addresses with their prefix,
/// static routes (connected ones come from the addresses), whether it
/// forwards, and what it answers on.
#[derive(Debug, Clone, Serialize)]
pub struct BoxView {
    pub name: String,
    /// `router` or `host` (for names: `router`, `host/NAME`).
    pub kind: String,
    pub addresses: Vec<Ipv4Net>,
    /// (destination, via); `0.0.0.0/0` for a default route.
    pub routes: Vec<(Ipv4Net, Ipv4Addr)>,
    pub forwards: bool,
    pub listens: Vec<(L4Proto, u16)>,
}

/// A Service's addresses (ClusterIPs, externalIPs, load-balancer IPs).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    pub namespace: String,
    pub name: String,
    pub addresses: Vec<Ipv4Addr>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct World {
    pub nodes: Vec<NodeView>,
    pub pods: Vec<PodView>,
    pub boxes: Vec<BoxView>,
    pub services: Vec<ServiceView>,
    /// The objects the Plans were compiled from: which NetworkPolicy rule
    /// allowed a packet is evaluated over them (`policy_why`).
    #[serde(skip)]
    pub snapshot: Snapshot,
}

/// Where a trace starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Pod(usize),
    Node(usize),
    Box(usize),
}

/// The LocalNode of a peer, from its Node object: its InternalIP, and the
/// underlay prefix, device and MTU of `like` (nodes of one cluster share an
/// underlay).
pub fn peer_local(node: &Node, like: &LocalNode) -> Option<LocalNode> {
    let Some(IpAddr::V4(ip)) = strait_model::node_internal_ip(node) else {
        return None;
    };
    Some(LocalNode {
        name: strait_model::node_name(node).to_string(),
        underlay_ip: ip,
        ..like.clone()
    })
}

fn proto_of(p: Option<&str>) -> L4Proto {
    match p.unwrap_or("TCP") {
        "UDP" => L4Proto::Udp,
        "SCTP" => L4Proto::Sctp,
        _ => L4Proto::Tcp,
    }
}

impl World {
    /// Every node's Plan compiled from `cfg` and `snap` (peers' LocalNodes
    /// derived from their Node objects and `like`), the snapshot's pods and
    /// Services. Nodes whose Plan does not compile are named in the error.
    pub fn from_cluster(
        cfg: &AgentConfig,
        snap: &Snapshot,
        like: &LocalNode,
    ) -> Result<World, String> {
        let mut world = World::default();
        for node in &snap.nodes {
            let name = strait_model::node_name(node);
            let local = if name == like.name {
                like.clone()
            } else {
                match peer_local(node, like) {
                    Some(l) => l,
                    None => continue,
                }
            };
            let plan = strait_plan::compile(cfg, &local, snap)
                .map_err(|e| format!("compiling the Plan of node {name}: {e}"))?;
            world.nodes.push(NodeView {
                local,
                plan,
                host_routes: Vec::new(),
            });
        }
        for pod in &snap.pods {
            let Some(spec) = &pod.spec else { continue };
            let Some(ip) = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok())
            else {
                continue;
            };
            let listens = spec
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .filter_map(|p| {
                    let port = u16::try_from(p.container_port).ok()?;
                    Some((proto_of(p.protocol.as_deref()), port))
                })
                .collect();
            world.pods.push(PodView {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                node: spec.node_name.clone().unwrap_or_default(),
                ip,
                host_network: spec.host_network == Some(true),
                listens,
            });
        }
        world.services = services(snap);
        world.snapshot = snap.clone();
        Ok(world)
    }

    pub fn node(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.local.name == name)
    }

    /// The name of whoever holds `ip`: `pod/NS/NAME`, `node/NAME`,
    /// `svc/NS/NAME`, `host/NAME`, `router`.
    pub fn name_of(&self, ip: Ipv4Addr) -> Option<String> {
        if let Some(p) = self.pods.iter().find(|p| p.ip == ip && !p.host_network) {
            return Some(format!("pod/{}/{}", p.namespace, p.name));
        }
        if let Some(n) = self.nodes.iter().find(|n| n.local.underlay_ip == ip) {
            return Some(format!("node/{}", n.local.name));
        }
        if let Some(s) = self.services.iter().find(|s| s.addresses.contains(&ip)) {
            return Some(format!("svc/{}/{}", s.namespace, s.name));
        }
        self.boxes
            .iter()
            .find(|b| b.addresses.iter().any(|a| a.addr() == ip))
            .map(box_label)
    }

    /// `10.42.1.5 (pod/demo/client)`.
    pub fn label(&self, ip: Ipv4Addr) -> String {
        match self.name_of(ip) {
            Some(n) => format!("{ip} ({n})"),
            None => ip.to_string(),
        }
    }

    /// Resolves a FROM: `pod/NS/NAME` or `NS/NAME`, `node/NAME` or a node
    /// name, `host/NAME`, `router`, or an address one of those holds.
    pub fn resolve_from(&self, spec: &str) -> Result<(Start, Ipv4Addr), String> {
        if let Ok(ip) = spec.parse::<Ipv4Addr>() {
            if let Some(i) = self.pods.iter().position(|p| p.ip == ip && !p.host_network) {
                return Ok((Start::Pod(i), ip));
            }
            if let Some(i) = self.nodes.iter().position(|n| n.local.underlay_ip == ip) {
                return Ok((Start::Node(i), ip));
            }
            if let Some(i) = self
                .boxes
                .iter()
                .position(|b| b.addresses.iter().any(|a| a.addr() == ip))
            {
                return Ok((Start::Box(i), ip));
            }
            return Err(format!(
                "FROM {spec}: no pod, node or known host has this address"
            ));
        }
        let bare = spec.strip_prefix("pod/").unwrap_or(spec);
        if let Some((ns, name)) = bare.split_once('/') {
            if let Some(i) = self
                .pods
                .iter()
                .position(|p| p.namespace == ns && p.name == name)
            {
                let p = &self.pods[i];
                if p.host_network {
                    let n = self.node(&p.node).ok_or_else(|| {
                        format!("FROM {spec}: hostNetwork pod on unknown node {}", p.node)
                    })?;
                    return Ok((Start::Node(n), self.nodes[n].local.underlay_ip));
                }
                return Ok((Start::Pod(i), p.ip));
            }
        }
        let node = spec.strip_prefix("node/").unwrap_or(spec);
        if let Some(i) = self.node(node) {
            return Ok((Start::Node(i), self.nodes[i].local.underlay_ip));
        }
        if let Some(i) = self
            .boxes
            .iter()
            .position(|b| box_label(b) == spec || b.name == spec)
        {
            let ip = self.boxes[i]
                .addresses
                .first()
                .map(|a| a.addr())
                .ok_or_else(|| format!("FROM {spec}: has no address"))?;
            return Ok((Start::Box(i), ip));
        }
        Err(format!(
            "FROM {spec:?}: not a pod (NAMESPACE/NAME), node, known host or address"
        ))
    }

    /// Resolves a TO to an address: an address, a pod, a Service
    /// (`svc/NS/NAME` or `NS/NAME`: its first address), a node, a host.
    pub fn resolve_to(&self, spec: &str) -> Result<Ipv4Addr, String> {
        if let Ok(ip) = spec.parse::<Ipv4Addr>() {
            return Ok(ip);
        }
        if let Some(rest) = spec.strip_prefix("svc/") {
            return self
                .service_ip(rest)
                .ok_or_else(|| format!("TO {spec}: no such Service with an address"));
        }
        if spec.starts_with("pod/") || spec.matches('/').count() == 1 {
            let bare = spec.strip_prefix("pod/").unwrap_or(spec);
            if let Some((ns, name)) = bare.split_once('/') {
                if let Some(p) = self
                    .pods
                    .iter()
                    .find(|p| p.namespace == ns && p.name == name)
                {
                    return Ok(p.ip);
                }
            }
            if let Some(ip) = self.service_ip(bare) {
                return Ok(ip);
            }
        }
        if let Ok((_, ip)) = self.resolve_from(spec) {
            return Ok(ip);
        }
        Err(format!(
            "TO {spec:?}: not an address, pod, Service, node or known host"
        ))
    }

    fn service_ip(&self, ns_name: &str) -> Option<Ipv4Addr> {
        let (ns, name) = ns_name.split_once('/')?;
        self.services
            .iter()
            .find(|s| s.namespace == ns && s.name == name)
            .and_then(|s| s.addresses.first().copied())
    }
}

pub fn box_label(b: &BoxView) -> String {
    if b.kind == "router" {
        "router".to_string()
    } else {
        format!("{}/{}", b.kind, b.name)
    }
}

fn services(snap: &Snapshot) -> Vec<ServiceView> {
    let mut out = Vec::new();
    for svc in &snap.services {
        let Some(spec) = &svc.spec else { continue };
        let mut addresses: Vec<Ipv4Addr> = Vec::new();
        let mut add = |s: &str| {
            if let Ok(ip) = s.parse::<Ipv4Addr>() {
                if !addresses.contains(&ip) {
                    addresses.push(ip);
                }
            }
        };
        if let Some(ip) = &spec.cluster_ip {
            add(ip);
        }
        for ip in spec.cluster_ips.iter().flatten() {
            add(ip);
        }
        for ip in spec.external_ips.iter().flatten() {
            add(ip);
        }
        let ingress = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        for i in ingress.into_iter().flatten() {
            if let Some(ip) = &i.ip {
                add(ip);
            }
        }
        out.push(ServiceView {
            namespace: svc.metadata.namespace.clone().unwrap_or_default(),
            name: svc.metadata.name.clone().unwrap_or_default(),
            addresses,
        });
    }
    out
}
