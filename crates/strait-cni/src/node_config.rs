//! The node file `strait agent` publishes for the plugin: the node's pod
//! CIDRs and pod MTU. Format (JSON), documented in docs/cni.md:
//!
//! ```json
//! {"podCIDRs": ["10.42.1.0/24", "fd00:42:1::/64"], "mtu": 1450}
//! ```

use crate::protocol::CniError;
use ipnet::IpNet;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfig {
    #[serde(rename = "podCIDRs")]
    pub pod_cidrs: Vec<IpNet>,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// The pod interfaces' `gso_max_size` (the agent sets it for VXLAN).
    #[serde(default)]
    pub gso_max_size: Option<u32>,
}

impl NodeConfig {
    /// Reads the file; `Ok(None)` when it does not exist (no agent yet).
    pub fn load(path: &Path) -> Result<Option<Self>, CniError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CniError::io(format!(
                    "nodeConfig: cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        let cfg: NodeConfig = serde_json::from_slice(&bytes).map_err(|e| {
            CniError::config(format!("nodeConfig: {} is not valid: {e}", path.display()))
        })?;
        if cfg.pod_cidrs.is_empty() {
            return Err(CniError::config(format!(
                "nodeConfig: {} lists no podCIDRs",
                path.display()
            )));
        }
        Ok(Some(cfg))
    }
}
