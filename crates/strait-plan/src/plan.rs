//! The plan: everything this node's kernel should hold, as plain data, and
//! the facts about the node the compiler is given ([`LocalNode`]). Owns the
//! types and their one-line `ip`-style renderings; deciding what goes in a
//! plan is the compilers' job ([`crate::routing`], [`crate::egress`],
//! [`crate::sysctl`]).

use crate::nft;
use ipnet::IpNet;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Facts about this node the agent reads from the kernel and passes in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalNode {
    /// The Kubernetes node name (`--node-name`, `NODE_NAME`).
    pub name: String,
    /// The underlay address: VXLAN source, host-gw next hop for peers.
    #[serde(rename = "underlayIP")]
    pub underlay_ip: Ipv4Addr,
    /// Prefix length of the underlay subnet (host-gw peers must be on it).
    pub underlay_prefix: u8,
    /// The interface holding the underlay address.
    pub underlay_dev: String,
    /// That interface's MTU (the agent config's `mtu` overrides it).
    #[serde(rename = "underlayMTU")]
    pub underlay_mtu: u32,
}

/// A MAC address; serialised as `0a:58:0a:00:00:01`.
pub type Mac = [u8; 6];

/// `0a:58:0a:00:00:01`.
pub fn format_mac(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ser_mac<S: Serializer>(mac: &Mac, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_mac(mac))
}

/// The CNI node file (`/run/strait/node.json`, see docs/cni.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeFile {
    #[serde(rename = "podCIDRs")]
    pub pod_cidrs: Vec<IpNet>,
    /// The pod MTU.
    pub mtu: u32,
    /// The pod interfaces' largest GSO packet, set with VXLAN
    /// ([`crate::VXLAN_POD_GSO_MAX_SIZE`]); absent: the kernel default.
    #[serde(rename = "gsoMaxSize", skip_serializing_if = "Option::is_none")]
    pub gso_max_size: Option<u32>,
}

/// The pod bridge and the gateway address of each local pod CIDR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BridgePlan {
    pub name: String,
    pub mtu: u32,
    /// First host address of each local pod CIDR, with its prefix
    /// (`10.42.1.1/24`).
    pub addresses: Vec<IpNet>,
}

/// The VXLAN device: `nolearning`, no multicast group (FDB entries are
/// static), UDP destination port `port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VxlanPlan {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    pub local: Ipv4Addr,
    pub underlay_dev: String,
    pub mtu: u32,
    #[serde(serialize_with = "ser_mac")]
    pub mac: Mac,
    /// The local pod CIDR's network address as a /32 (`10.42.1.0/32`).
    pub address: IpNet,
}

/// A route in the main table; the agent installs every one with
/// [`crate::STRAIT_ROUTE_PROTO`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RoutePlan {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    /// `None`: the kernel picks the device from the gateway.
    pub dev: Option<String>,
    pub onlink: bool,
}

/// A permanent neighbour (ARP) entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NeighbourPlan {
    pub ip: IpAddr,
    #[serde(serialize_with = "ser_mac")]
    pub mac: Mac,
    pub dev: String,
}

/// A static forwarding-database entry of a VXLAN device (NTF_SELF): frames
/// for `mac` are sent to the VTEP at `dst`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FdbPlan {
    #[serde(serialize_with = "ser_mac")]
    pub mac: Mac,
    pub dst: IpAddr,
    pub dev: String,
}

/// Everything this node's kernel should hold. Same input, same plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub node_file: NodeFile,
    /// `/proc/sys` paths below `net/` (slashes, since interface names may
    /// hold dots) -> values.
    pub sysctls: BTreeMap<String, String>,
    pub bridge: BridgePlan,
    pub vxlan: Option<VxlanPlan>,
    /// Sorted by destination.
    pub routes: Vec<RoutePlan>,
    pub neighbours: Vec<NeighbourPlan>,
    pub fdb: Vec<FdbPlan>,
    /// Shared, so the agent's applier keeps the table it loaded without a
    /// copy (110,000 elements at 10,000 Services).
    pub nft: std::sync::Arc<nft::Table>,
    /// What was left out and why (nodes not ready yet, IPv6 CIDRs, ...).
    pub warnings: Vec<String>,
}

impl fmt::Display for RoutePlan {
    /// `10.42.2.0/24 via 10.42.2.0 dev strait.vxlan onlink`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dst)?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(dev) = &self.dev {
            write!(f, " dev {dev}")?;
        }
        if self.onlink {
            f.write_str(" onlink")?;
        }
        Ok(())
    }
}

impl fmt::Display for NeighbourPlan {
    /// `10.42.2.0 lladdr 0a:58:0a:00:00:02 dev strait.vxlan nud permanent`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} lladdr {} dev {} nud permanent",
            self.ip,
            format_mac(&self.mac),
            self.dev
        )
    }
}

impl fmt::Display for FdbPlan {
    /// `0a:58:0a:00:00:02 dst 10.0.0.2 dev strait.vxlan self permanent`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} dst {} dev {} self permanent",
            format_mac(&self.mac),
            self.dst,
            self.dev
        )
    }
}

impl fmt::Display for VxlanPlan {
    /// `ip link add` style: `strait.vxlan id 1 dstport 8472 local ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} id {} dstport {} local {} dev {} nolearning mtu {} address {}",
            self.name,
            self.vni,
            self.port,
            self.local,
            self.underlay_dev,
            self.mtu,
            format_mac(&self.mac)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_file_serialises_as_the_cni_expects() {
        let mut nf = NodeFile {
            pod_cidrs: vec!["10.42.1.0/24".parse().unwrap()],
            mtu: 1450,
            gso_max_size: None,
        };
        assert_eq!(
            serde_json::to_string(&nf).unwrap(),
            r#"{"podCIDRs":["10.42.1.0/24"],"mtu":1450}"#
        );
        nf.gso_max_size = Some(64_000);
        assert_eq!(
            serde_json::to_string(&nf).unwrap(),
            r#"{"podCIDRs":["10.42.1.0/24"],"mtu":1450,"gsoMaxSize":64000}"#
        );
    }

    #[test]
    fn lines() {
        let mac = [0x0a, 0x58, 0x0a, 0, 0, 2];
        assert_eq!(format_mac(&mac), "0a:58:0a:00:00:02");
        let r = RoutePlan {
            dst: "10.42.2.0/24".parse().unwrap(),
            gateway: Some("10.42.2.0".parse().unwrap()),
            dev: Some("strait.vxlan".into()),
            onlink: true,
        };
        assert_eq!(
            r.to_string(),
            "10.42.2.0/24 via 10.42.2.0 dev strait.vxlan onlink"
        );
        let r = RoutePlan {
            dst: "192.168.2.0/24".parse().unwrap(),
            gateway: Some("192.168.1.1".parse().unwrap()),
            dev: None,
            onlink: false,
        };
        assert_eq!(r.to_string(), "192.168.2.0/24 via 192.168.1.1");
        let n = NeighbourPlan {
            ip: "10.42.2.0".parse().unwrap(),
            mac,
            dev: "strait.vxlan".into(),
        };
        assert_eq!(
            n.to_string(),
            "10.42.2.0 lladdr 0a:58:0a:00:00:02 dev strait.vxlan nud permanent"
        );
        assert_eq!(
            serde_json::to_string(&n).unwrap(),
            r#"{"ip":"10.42.2.0","mac":"0a:58:0a:00:00:02","dev":"strait.vxlan"}"#
        );
        let e = FdbPlan {
            mac,
            dst: "10.0.0.2".parse().unwrap(),
            dev: "strait.vxlan".into(),
        };
        assert_eq!(
            e.to_string(),
            "0a:58:0a:00:00:02 dst 10.0.0.2 dev strait.vxlan self permanent"
        );
    }

    #[test]
    fn local_node_reads_camel_case() {
        let l: LocalNode = serde_json::from_str(
            r#"{"name":"a","underlayIP":"10.0.0.1","underlayPrefix":24,"underlayDev":"eth0","underlayMTU":1500}"#,
        )
        .unwrap();
        assert_eq!(l.underlay_ip, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(l.underlay_mtu, 1500);
    }
}
