//! The network configuration on stdin: the spec's well-known fields plus
//! strait's own (`mode`, `bridge`, `mtu`, `hairpinMode`, `nodeConfig`).
//!
//! Parsing is two steps so errors are precise: bytes to JSON (failure is code
//! 6, decoding), then JSON to typed fields (failure is code 7, naming the
//! field path and the value).

use super::error::{CniError, ErrorCode};
use super::result::{CniResult, Dns};
use super::version::CniVersion;
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use strait_ipam::{AttachmentId, IpamConfig};

/// Where `strait agent` publishes the node's pod CIDRs (see docs/cni.md).
pub const DEFAULT_NODE_CONFIG: &str = "/run/strait/node.json";
pub const DEFAULT_BRIDGE: &str = "strait0";
/// Where in-process IPAM keeps allocations when `ipam.dataDir` is not set.
/// Under /run on purpose: allocations belong to network namespaces, and
/// those do not survive a reboot either.
pub const DEFAULT_DATA_DIR: &str = "/run/strait/ipam";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Pods on a Linux bridge; the bridge holds the gateway address.
    #[default]
    Bridge,
    /// A routed veth per pod: a /32 (/128) host route, no bridge.
    Ptp,
}

/// Who manages addresses.
#[derive(Debug, Clone, PartialEq)]
pub enum Ipam {
    /// strait's own allocator, in this process.
    InProcess(IpamConfig),
    /// Another IPAM plugin from CNI_PATH, by its `type`.
    Delegate(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: CniVersion,
    pub name: String,
    pub kind: String,
    pub mode: Mode,
    pub bridge: String,
    pub mtu: Option<u32>,
    pub hairpin: bool,
    pub ipam: Ipam,
    pub dns: Dns,
    pub node_config: PathBuf,
    pub prev_result: Option<CniResult>,
    pub valid_attachments: Option<Vec<AttachmentId>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    cni_version: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    mode: Mode,
    bridge: Option<String>,
    mtu: Option<u32>,
    hairpin_mode: Option<bool>,
    ipam: Option<Value>,
    #[serde(default)]
    dns: Dns,
    node_config: Option<PathBuf>,
    prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<WireAttachment>>,
}

#[derive(Deserialize)]
struct WireAttachment {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

/// The version a response should carry even when the config is unreadable.
pub fn sniff_version(stdin: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    v.get("cniVersion")?.as_str().map(str::to_owned)
}

impl NetConf {
    pub fn parse(stdin: &[u8]) -> Result<Self, CniError> {
        let value: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                ErrorCode::DecodingFailure,
                format!("network configuration on stdin is not JSON: {e}"),
            )
        })?;
        if !value.is_object() {
            return Err(CniError::new(
                ErrorCode::DecodingFailure,
                "network configuration on stdin must be a JSON object",
            ));
        }
        let wire: Wire = serde_path_to_error::deserialize(&value).map_err(|e| {
            let path = e.path().to_string();
            CniError::config(format!("{path}: {}", e.into_inner()))
        })?;
        Self::from_wire(wire)
    }

    fn from_wire(w: Wire) -> Result<Self, CniError> {
        let version = w
            .cni_version
            .ok_or_else(|| CniError::config("cniVersion: missing"))?;
        let cni_version = CniVersion::parse(&version)?;
        let name = w.name.ok_or_else(|| CniError::config("name: missing"))?;
        validate_network_name(&name)?;
        let kind = w.kind.ok_or_else(|| CniError::config("type: missing"))?;
        let bridge = w.bridge.unwrap_or_else(|| DEFAULT_BRIDGE.to_owned());
        if bridge.is_empty() || bridge.len() > 15 || bridge.contains(['/', ':', ' ']) {
            return Err(CniError::config(format!(
                "bridge: \"{bridge}\" is not a valid interface name"
            )));
        }
        if let Some(mtu) = w.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(CniError::config(format!(
                    "mtu: {mtu} is out of range (68-65535)"
                )));
            }
        }
        let ipam = parse_ipam(w.ipam)?;
        let prev_result = match w.prev_result {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                CniResult::from_value(&v)
                    .map_err(|e| CniError::config(format!("prevResult.{e}")))?,
            ),
        };
        let valid_attachments = w.valid_attachments.map(|list| {
            list.into_iter()
                .map(|a| AttachmentId {
                    container_id: a.container_id,
                    ifname: a.ifname,
                })
                .collect()
        });
        Ok(NetConf {
            cni_version,
            name,
            kind,
            mode: w.mode,
            bridge,
            mtu: w.mtu,
            hairpin: w.hairpin_mode.unwrap_or(true),
            ipam,
            dns: w.dns,
            node_config: w
                .node_config
                .unwrap_or_else(|| PathBuf::from(DEFAULT_NODE_CONFIG)),
            prev_result,
            valid_attachments,
        })
    }
}

fn parse_ipam(v: Option<Value>) -> Result<Ipam, CniError> {
    let Some(v) = v else {
        return Ok(Ipam::InProcess(IpamConfig::default()));
    };
    if !v.is_object() {
        return Err(CniError::config(format!("ipam: {v} is not an object")));
    }
    match v.get("type") {
        None => {}
        Some(Value::String(t)) if t == "strait" || t.is_empty() => {}
        Some(Value::String(t)) => {
            if t.contains('/') || t == "." || t == ".." {
                return Err(CniError::config(format!(
                    "ipam.type: \"{t}\" must be a plugin file name, not a path"
                )));
            }
            return Ok(Ipam::Delegate(t.clone()));
        }
        Some(other) => {
            return Err(CniError::config(format!(
                "ipam.type: {other} is not a string"
            )))
        }
    }
    let cfg: IpamConfig = serde_path_to_error::deserialize(&v).map_err(|e| {
        let path = e.path().to_string();
        CniError::config(format!("ipam.{path}: {}", e.into_inner()))
    })?;
    Ok(Ipam::InProcess(cfg))
}

/// The spec: alphanumeric first, then alphanumerics, '_', '.', '-'.
fn validate_network_name(name: &str) -> Result<(), CniError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(CniError::config(format!(
            "name: \"{name}\" must start with a letter or digit and hold only letters, digits, '_', '.', '-'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<NetConf, CniError> {
        NetConf::parse(s.as_bytes())
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(r#"{"cniVersion":"1.0.0","name":"pods","type":"strait-cni"}"#).unwrap();
        assert_eq!(c.mode, Mode::Bridge);
        assert_eq!(c.bridge, "strait0");
        assert!(c.hairpin);
        assert_eq!(c.ipam, Ipam::InProcess(IpamConfig::default()));
        assert_eq!(c.node_config, PathBuf::from(DEFAULT_NODE_CONFIG));
    }

    #[test]
    fn errors_name_field_and_value() {
        let cases = [
            ("not json", 6, "not JSON"),
            ("[1]", 6, "JSON object"),
            (r#"{"name":"n","type":"t"}"#, 7, "cniVersion: missing"),
            (
                r#"{"cniVersion":"9.9.9","name":"n","type":"t"}"#,
                1,
                "\"9.9.9\"",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"-n","type":"t"}"#,
                7,
                "name: \"-n\"",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","mtu":"x"}"#,
                7,
                "mtu: invalid type",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","mtu":9}"#,
                7,
                "mtu: 9 is out of range",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","mode":"vlan"}"#,
                7,
                "mode: unknown variant",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","ipam":{"type":"../x"}}"#,
                7,
                "ipam.type",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","type":"t","prevResult":{"ips":[{"address":1}]}}"#,
                7,
                "prevResult.ips[0].address",
            ),
        ];
        for (input, code, needle) in cases {
            let e = parse(input).unwrap_err();
            assert_eq!(e.code, code, "{input}: {}", e.msg);
            assert!(e.msg.contains(needle), "{input}: {}", e.msg);
        }
    }

    #[test]
    fn other_ipam_types_are_delegated() {
        let c = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"t","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}"#).unwrap();
        assert_eq!(c.ipam, Ipam::Delegate("host-local".into()));
    }

    #[test]
    fn valid_attachments_are_read() {
        let c = parse(r#"{"cniVersion":"1.1.0","name":"n","type":"t","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}"#).unwrap();
        assert_eq!(c.valid_attachments.unwrap()[0].container_id, "a");
    }
}
