//! The agent config (`strait agent --config FILE`, YAML or JSON): its types,
//! defaults and validation. Owns what a well-formed config is; it does not
//! know about nodes, the kernel or files (the caller reads the file).
//!
//! Every error names the field path and the value, e.g.
//! `nodeRoutes[1].via: 10.0.0.300 is not an IP address`.

use crate::error::ModelError;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use std::net::IpAddr;

/// Default name of the pod bridge.
pub const DEFAULT_BRIDGE: &str = "strait0";
/// Default VXLAN network identifier.
pub const DEFAULT_VNI: u32 = 1;
/// Default VXLAN UDP port (Linux's and flannel's, not IANA's 4789).
pub const DEFAULT_VXLAN_PORT: u16 = 8472;
/// Largest VXLAN network identifier (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;
/// Accepted range for `mtu` (the underlay MTU).
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 576..=65535;

/// How pod traffic crosses between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Backend {
    /// One VXLAN device, static FDB and neighbour entries per peer.
    #[serde(rename = "vxlan")]
    Vxlan,
    /// A route per peer via the peer's underlay address (same L2 required).
    #[serde(rename = "host-gw")]
    HostGw,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Vxlan => "vxlan",
            Backend::HostGw => "host-gw",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A route every node installs: `to via via`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRoute {
    #[serde(deserialize_with = "de_cidr")]
    pub to: IpNet,
    #[serde(deserialize_with = "de_ip")]
    pub via: IpAddr,
}

/// VXLAN device settings (used when `backend: vxlan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VxlanConfig {
    #[serde(default = "default_vni")]
    pub vni: u32,
    #[serde(default = "default_port")]
    pub port: u16,
}

impl Default for VxlanConfig {
    fn default() -> Self {
        VxlanConfig {
            vni: DEFAULT_VNI,
            port: DEFAULT_VXLAN_PORT,
        }
    }
}

/// The node agent's configuration. Build it with [`AgentConfig::from_yaml`],
/// which validates; deserializing it directly skips the checks that need
/// more than one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentConfig {
    #[serde(rename = "clusterCIDR", deserialize_with = "de_cidr")]
    pub cluster_cidr: IpNet,
    #[serde(rename = "serviceCIDR", deserialize_with = "de_cidr")]
    pub service_cidr: IpNet,
    #[serde(default = "default_backend")]
    pub backend: Backend,
    /// The underlay MTU; `None` means the underlay interface's MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Destinations pod traffic reaches with the pod's own address.
    #[serde(rename = "nonMasqueradeCIDRs", default, deserialize_with = "de_cidrs")]
    pub non_masquerade_cidrs: Vec<IpNet>,
    #[serde(default)]
    pub node_routes: Vec<NodeRoute>,
    #[serde(default)]
    pub vxlan: VxlanConfig,
    #[serde(default = "default_bridge")]
    pub bridge: String,
}

fn default_vni() -> u32 {
    DEFAULT_VNI
}
fn default_port() -> u16 {
    DEFAULT_VXLAN_PORT
}
fn default_backend() -> Backend {
    Backend::Vxlan
}
fn default_bridge() -> String {
    DEFAULT_BRIDGE.to_string()
}

/// Parses `address/prefix` and says which value was wrong.
pub(crate) fn parse_cidr(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .map_err(|_| format!("{s} is not a CIDR (address/prefix, e.g. 10.42.0.0/16)"))
}

/// Parses an IPv4 or IPv6 address and says which value was wrong.
pub(crate) fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.parse::<IpAddr>()
        .map_err(|_| format!("{s} is not an IP address"))
}

fn de_cidr<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
    let s = String::deserialize(d)?;
    parse_cidr(&s).map_err(serde::de::Error::custom)
}

fn de_ip<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
    let s = String::deserialize(d)?;
    parse_ip(&s).map_err(serde::de::Error::custom)
}

/// One CIDR inside a list, so the error path keeps the index.
struct CidrItem(IpNet);

impl<'de> Deserialize<'de> for CidrItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_cidr(d).map(CidrItem)
    }
}

fn de_cidrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let items = Vec::<CidrItem>::deserialize(d)?;
    Ok(items.into_iter().map(|c| c.0).collect())
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn check_network(field: &str, net: &IpNet) -> Result<(), ModelError> {
    if net.trunc() != *net {
        return Err(ModelError::config(
            field,
            format!("{net} has host bits set (did you mean {}?)", net.trunc()),
        ));
    }
    Ok(())
}

/// Linux interface names: 1-15 bytes, no `/`, `:` or whitespace.
pub fn valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

impl AgentConfig {
    /// Parses and validates a config written in YAML or JSON (YAML is a
    /// superset of JSON, so one parser reads both).
    pub fn from_yaml(text: &str) -> Result<Self, ModelError> {
        let mut value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| ModelError::ConfigSyntax(e.to_string()))?;
        value
            .apply_merge()
            .map_err(|e| ModelError::ConfigSyntax(e.to_string()))?;
        if value.is_null() {
            // An empty file is an empty mapping: report the missing fields.
            value = serde_yaml::Value::Mapping(Default::default());
        }
        let cfg: AgentConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { String::new() } else { path };
            ModelError::config(field, e.into_inner().to_string())
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The checks serde cannot make: host bits, overlaps, ranges, names.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_network("clusterCIDR", &self.cluster_cidr)?;
        check_network("serviceCIDR", &self.service_cidr)?;
        if overlaps(&self.service_cidr, &self.cluster_cidr) {
            return Err(ModelError::config(
                "serviceCIDR",
                format!(
                    "{} overlaps clusterCIDR {}",
                    self.service_cidr, self.cluster_cidr
                ),
            ));
        }
        if let Some(mtu) = self.mtu {
            if !MTU_RANGE.contains(&mtu) {
                return Err(ModelError::config(
                    "mtu",
                    format!(
                        "{mtu} is out of range ({}-{})",
                        MTU_RANGE.start(),
                        MTU_RANGE.end()
                    ),
                ));
            }
        }
        for (i, net) in self.non_masquerade_cidrs.iter().enumerate() {
            check_network(&format!("nonMasqueradeCIDRs[{i}]"), net)?;
        }
        self.validate_node_routes()?;
        if self.vxlan.vni > MAX_VNI {
            return Err(ModelError::config(
                "vxlan.vni",
                format!("{} is out of range (0-{MAX_VNI})", self.vxlan.vni),
            ));
        }
        if self.vxlan.port == 0 {
            return Err(ModelError::config(
                "vxlan.port",
                "0 is out of range (1-65535)",
            ));
        }
        if !valid_interface_name(&self.bridge) {
            return Err(ModelError::config(
                "bridge",
                format!(
                    "{:?} is not a valid interface name (1-15 characters, no '/', ':' or whitespace)",
                    self.bridge
                ),
            ));
        }
        Ok(())
    }

    fn validate_node_routes(&self) -> Result<(), ModelError> {
        for (i, route) in self.node_routes.iter().enumerate() {
            let to = format!("nodeRoutes[{i}].to");
            check_network(&to, &route.to)?;
            if route.to.addr().is_ipv4() != route.via.is_ipv4() {
                return Err(ModelError::config(
                    format!("nodeRoutes[{i}].via"),
                    format!(
                        "{} is not in the address family of to {}",
                        route.via, route.to
                    ),
                ));
            }
            for (name, net) in [
                ("clusterCIDR", &self.cluster_cidr),
                ("serviceCIDR", &self.service_cidr),
            ] {
                if overlaps(&route.to, net) {
                    return Err(ModelError::config(
                        to,
                        format!("{} overlaps {name} {net}", route.to),
                    ));
                }
            }
            if let Some(j) = self.node_routes[..i].iter().position(|r| r.to == route.to) {
                return Err(ModelError::config(
                    to,
                    format!("{} is already routed by nodeRoutes[{j}]", route.to),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
