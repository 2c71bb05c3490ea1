//! The lab topology: what `strait lab up` builds. It owns the YAML schema
//! (camelCase, unknown fields rejected), the built-in default lab, the checks
//! serde cannot make (addresses inside their subnets, unique names and
//! addresses, pod CIDRs inside the cluster CIDR and apart) and the names of
//! the namespaces the fabric creates (`<lab>-<kind>-<name>`).
//!
//! The schema and a full example are documented in docs/lab.md; the checks
//! are in `validate.rs`.

use crate::error::LabError;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::Path;

mod validate;

/// The longest namespace name the lab creates (`<lab>-<kind>-<name>`).
pub const NETNS_NAME_MAX: usize = 50;

/// The MTU of a network when the topology does not say.
pub const DEFAULT_MTU: u32 = 1500;

/// MTUs the topology accepts (underlay and cluster).
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 576..=9000;

/// A whole lab: the L2 networks, the router, the nodes, and the cluster
/// settings carried through to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Topology {
    /// The lab's name, the prefix of every namespace it creates.
    #[serde(default = "default_name")]
    pub name: String,
    pub underlay: Underlay,
    pub router: Router,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_networks: Vec<ExternalNetwork>,
    pub nodes: Vec<Node>,
    #[serde(rename = "clusterCIDR")]
    pub cluster_cidr: Ipv4Net,
    #[serde(rename = "serviceCIDR")]
    pub service_cidr: Ipv4Net,
    #[serde(default)]
    pub backend: Backend,
    /// The cluster MTU given to the agent (default: the underlay's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// More agent config (nonMasqueradeCIDRs, nodeRoutes, ...), passed
    /// through verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<serde_yaml::Value>,
}

/// The network every node and the router sit on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Underlay {
    pub subnet: Ipv4Net,
    #[serde(default = "default_mtu")]
    pub mtu: u32,
}

/// The router between the underlay and the external networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Router {
    #[serde(rename = "underlayIP")]
    pub underlay_ip: Ipv4Addr,
    /// Routes beyond the connected ones (e.g. the cluster CIDR via a node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    pub to: Ipv4Net,
    pub via: Ipv4Addr,
}

/// An L2 network behind the router, with hosts outside the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalNetwork {
    pub name: String,
    pub subnet: Ipv4Net,
    #[serde(rename = "routerIP")]
    pub router_ip: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<Host>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Host {
    pub name: String,
    pub ip: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    pub name: String,
    pub ip: Ipv4Addr,
    /// Default: the node's /24 of the cluster CIDR (see [`Topology::pod_cidrs`]).
    #[serde(rename = "podCIDR", default, skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<Ipv4Net>,
    /// Routes in the node's namespace besides the connected underlay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub static_routes: Vec<Route>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Backend {
    #[default]
    #[serde(rename = "vxlan")]
    Vxlan,
    #[serde(rename = "host-gw")]
    HostGw,
}

/// What a lab namespace holds; the middle part of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NsKind {
    Switch,
    Node,
    Router,
    Host,
    Pod,
}

impl NsKind {
    /// What follows `<lab>-` in the names of this kind (`router` is whole).
    pub fn infix(self) -> &'static str {
        match self {
            NsKind::Switch => "sw-",
            NsKind::Node => "node-",
            NsKind::Router => "router",
            NsKind::Host => "host-",
            NsKind::Pod => "pod-",
        }
    }

    pub const ALL: [NsKind; 5] = [
        NsKind::Switch,
        NsKind::Node,
        NsKind::Router,
        NsKind::Host,
        NsKind::Pod,
    ];
}

/// The namespace name of one lab member: `<lab>-sw-<net>`, `<lab>-node-<name>`,
/// `<lab>-router`, `<lab>-host-<name>`, `<lab>-pod-<name>` (`name` is ignored
/// for the router).
pub fn netns_name(lab: &str, kind: NsKind, name: &str) -> String {
    match kind {
        NsKind::Router => format!("{lab}-router"),
        _ => format!("{lab}-{}{name}", kind.infix()),
    }
}

/// Whether `netns` is one of lab `lab`'s namespaces (`<lab>-` followed by a
/// kind), so `down` never touches another lab's or the demo's namespaces.
pub fn is_lab_netns(lab: &str, netns: &str) -> bool {
    let Some(rest) = netns.strip_prefix(lab).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    NsKind::ALL.iter().any(|k| match k {
        NsKind::Router => rest == "router",
        _ => rest.starts_with(k.infix()) && rest.len() > k.infix().len(),
    })
}

/// The name of the underlay's switch (`<lab>-sw-underlay`).
pub const UNDERLAY: &str = "underlay";

fn default_name() -> String {
    "strait".into()
}

fn default_mtu() -> u32 {
    DEFAULT_MTU
}

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("built-in CIDR")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("built-in address")
}

impl Topology {
    /// The built-in lab: two nodes on 192.168.1.0/24, a router at .1 that
    /// also serves 192.168.2.0/24 where `legacy-db` lives, and a static route
    /// to that network on every node.
    pub fn default_lab() -> Topology {
        let to_external = Route {
            to: net("192.168.2.0/24"),
            via: ip("192.168.1.1"),
        };
        let node = |name: &str, addr: &str| Node {
            name: name.into(),
            ip: ip(addr),
            pod_cidr: None,
            static_routes: vec![to_external.clone()],
        };
        Topology {
            name: default_name(),
            underlay: Underlay {
                subnet: net("192.168.1.0/24"),
                mtu: DEFAULT_MTU,
            },
            router: Router {
                underlay_ip: ip("192.168.1.1"),
                routes: Vec::new(),
            },
            external_networks: vec![ExternalNetwork {
                name: "external".into(),
                subnet: net("192.168.2.0/24"),
                router_ip: ip("192.168.2.1"),
                hosts: vec![Host {
                    name: "legacy-db".into(),
                    ip: ip("192.168.2.10"),
                }],
            }],
            nodes: vec![
                node("node-1", "192.168.1.11"),
                node("node-2", "192.168.1.12"),
            ],
            cluster_cidr: net("10.42.0.0/16"),
            service_cidr: net("10.43.0.0/16"),
            backend: Backend::Vxlan,
            mtu: None,
            agent: None,
        }
    }

    /// Parses and validates a topology written in YAML (or JSON).
    pub fn from_yaml(text: &str) -> Result<Topology, LabError> {
        let mut value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| LabError::TopologySyntax(e.to_string()))?;
        if value.is_null() {
            value = serde_yaml::Value::Mapping(Default::default());
        }
        let topo: Topology = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
            let path = e.path().clone();
            let field = match path.to_string().as_str() {
                "." => String::new(),
                p => p.to_owned(),
            };
            let mut message = e.into_inner().to_string();
            if let Some((raw, shown)) = scalar_at(&value, &path) {
                if !message.contains(&raw) {
                    message = format!("{message} (value: {shown})");
                }
            }
            LabError::topology(field, message)
        })?;
        topo.validate()?;
        Ok(topo)
    }

    /// Reads, parses and validates a topology file.
    pub fn load(path: &Path) -> Result<Topology, LabError> {
        let text = std::fs::read_to_string(path).map_err(LabError::io("reading topology", path))?;
        Self::from_yaml(&text).map_err(|e| match e {
            LabError::TopologySyntax(m) => {
                LabError::TopologySyntax(format!("{}: {m}", path.display()))
            }
            other => other,
        })
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a topology always serialises")
    }

    /// The namespace name of a member of this lab.
    pub fn netns(&self, kind: NsKind, name: &str) -> String {
        netns_name(&self.name, kind, name)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Every node's pod CIDR, in node order: its `podCIDR`, or else the
    /// (index+1)-th /24 of the cluster CIDR (node-1 gets 10.42.1.0/24).
    pub fn pod_cidrs(&self) -> Result<Vec<Ipv4Net>, LabError> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match n.pod_cidr {
                Some(c) => Ok(c),
                None => nth_node_cidr(self.cluster_cidr, i + 1).ok_or_else(|| {
                    LabError::topology(
                        format!("nodes[{i}].podCIDR"),
                        format!(
                            "not set, and clusterCIDR {} has no /24 number {} to give this node",
                            self.cluster_cidr,
                            i + 1
                        ),
                    )
                }),
            })
            .collect()
    }

    /// The cluster part of the agent config: clusterCIDR, serviceCIDR,
    /// backend, mtu (when set) and every key of `agent`.
    pub fn agent_config(&self) -> serde_yaml::Value {
        use serde_yaml::Value;
        let mut m = serde_yaml::Mapping::new();
        let s = |x: String| Value::String(x);
        m.insert(s("clusterCIDR".into()), s(self.cluster_cidr.to_string()));
        m.insert(s("serviceCIDR".into()), s(self.service_cidr.to_string()));
        m.insert(
            s("backend".into()),
            serde_yaml::to_value(self.backend).expect("backend serialises"),
        );
        if let Some(mtu) = self.mtu {
            m.insert(s("mtu".into()), Value::Number(mtu.into()));
        }
        if let Some(Value::Mapping(extra)) = &self.agent {
            for (k, v) in extra {
                m.insert(k.clone(), v.clone());
            }
        }
        Value::Mapping(m)
    }
}

/// The `n`-th /24 of `cluster` (n = 0 is the first), if it has one.
fn nth_node_cidr(cluster: Ipv4Net, n: usize) -> Option<Ipv4Net> {
    if cluster.prefix_len() > 24 {
        return None;
    }
    let count = 1usize << (24 - cluster.prefix_len());
    if n >= count {
        return None;
    }
    let base = u32::from(cluster.network()) + ((n as u32) << 8);
    Ipv4Net::new(Ipv4Addr::from(base), 24).ok()
}

/// The scalar a serde error path points at: as written, and as shown in an
/// error message. None for mappings, lists and missing values.
fn scalar_at(
    root: &serde_yaml::Value,
    path: &serde_path_to_error::Path,
) -> Option<(String, String)> {
    use serde_path_to_error::Segment;
    use serde_yaml::Value;
    let mut v = root;
    for seg in path.iter() {
        v = match seg {
            Segment::Seq { index } => v.as_sequence()?.get(*index)?,
            Segment::Map { key } => v.as_mapping()?.get(key.as_str())?,
            _ => return None,
        };
    }
    let raw = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    Some((raw, render(v)))
}

fn render(v: &serde_yaml::Value) -> String {
    use serde_yaml::Value;
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("!{}", t.tag),
    }
}
