//! The CNI result: what ADD prints and what later plugins get as prevResult.
//!
//! One internal shape; `to_json` writes it in the shape of the version the
//! runtime asked for, and parsing accepts every supported version's shape.

use super::version::CniVersion;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::net::IpAddr;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

impl CniResult {
    /// The result as the given spec version shapes it.
    pub fn to_json(&self, version: CniVersion) -> Value {
        let mut out = Map::new();
        out.insert("cniVersion".into(), json!(version.as_str()));
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut v = serde_json::to_value(i).unwrap_or(Value::Null);
                if !version.is_1_1() {
                    if let Some(o) = v.as_object_mut() {
                        o.remove("mtu");
                    }
                }
                v
            })
            .collect();
        out.insert("interfaces".into(), Value::Array(interfaces));
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut v = serde_json::to_value(ip).unwrap_or(Value::Null);
                if version.ips_carry_version() {
                    let fam = if ip.address.addr().is_ipv4() {
                        "4"
                    } else {
                        "6"
                    };
                    if let Some(o) = v.as_object_mut() {
                        o.insert("version".into(), json!(fam));
                    }
                }
                v
            })
            .collect();
        out.insert("ips".into(), Value::Array(ips));
        if !self.routes.is_empty() {
            out.insert(
                "routes".into(),
                serde_json::to_value(&self.routes).unwrap_or(Value::Null),
            );
        }
        out.insert(
            "dns".into(),
            serde_json::to_value(&self.dns).unwrap_or(Value::Null),
        );
        Value::Object(out)
    }

    /// Parses a result of any supported version (extra fields are ignored).
    pub fn from_value(v: &Value) -> Result<Self, String> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.into_inner())
        })
    }

    /// Index of the interface with this name inside `sandbox`.
    pub fn sandbox_interface(&self, name: &str) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.name == name && i.sandbox.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "strait0".into(),
                    mac: Some("aa:bb:cc:dd:ee:ff".into()),
                    ..Default::default()
                },
                Interface {
                    name: "eth0".into(),
                    mac: Some("11:22:33:44:55:66".into()),
                    sandbox: Some("/run/netns/p".into()),
                    mtu: Some(1450),
                },
            ],
            ips: vec![
                IpConfig {
                    address: "10.42.0.5/24".parse().unwrap(),
                    gateway: Some("10.42.0.1".parse().unwrap()),
                    interface: Some(1),
                },
                IpConfig {
                    address: "fd00::5/64".parse().unwrap(),
                    gateway: None,
                    interface: Some(1),
                },
            ],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some("10.42.0.1".parse().unwrap()),
            }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn zero_x_results_carry_ip_version_and_no_mtu() {
        let v = sample().to_json(CniVersion::V040);
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["ips"][0]["version"], "4");
        assert_eq!(v["ips"][1]["version"], "6");
        assert!(v["interfaces"][1].get("mtu").is_none());
    }

    #[test]
    fn one_one_results_have_mtu_and_no_ip_version() {
        let v = sample().to_json(CniVersion::V110);
        assert!(v["ips"][0].get("version").is_none());
        assert_eq!(v["interfaces"][1]["mtu"], 1450);
        assert_eq!(v["interfaces"][1]["sandbox"], "/run/netns/p");
        assert_eq!(v["ips"][0]["interface"], 1);
        let v = sample().to_json(CniVersion::V100);
        assert!(v["interfaces"][1].get("mtu").is_none());
    }

    #[test]
    fn round_trips_through_every_version() {
        for ver in [
            CniVersion::V030,
            CniVersion::V031,
            CniVersion::V040,
            CniVersion::V100,
            CniVersion::V110,
        ] {
            let back = CniResult::from_value(&sample().to_json(ver)).unwrap();
            let mut want = sample();
            if !ver.is_1_1() {
                want.interfaces[1].mtu = None;
            }
            assert_eq!(back, want, "{ver:?}");
        }
    }

    #[test]
    fn bad_prev_result_names_the_path() {
        let v = json!({"ips": [{"address": "nonsense"}]});
        let e = CniResult::from_value(&v).unwrap_err();
        assert!(e.starts_with("ips[0].address"), "{e}");
    }
}
