//! The CNI network configuration the agent publishes in Kubernetes mode.
//!
//! kubelet reports a node's network ready once a config file exists in its
//! CNI config directory, and only then starts pods there. So the agent
//! writes the file after its first full sync (when the node's routes and
//! nftables are programmed and the node file strait-cni reads exists), and
//! `--cleanup` removes it. An outage of the API later does not remove it:
//! the programmed network keeps working, and pulling the file would make
//! kubelet mark the node NotReady and evict its pods.

use std::path::{Path, PathBuf};

/// The file name; `10-` sorts before most distributions' defaults.
pub const CONFLIST_NAME: &str = "10-strait.conflist";
/// The plugin binary that must be installed beside `portmap`.
pub const PLUGIN: &str = "strait-cni";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniConf {
    /// Where kubelet (or the container runtime) reads network configs.
    pub conf_dir: PathBuf,
    /// Where the plugin binaries are installed.
    pub bin_dir: PathBuf,
}

impl CniConf {
    pub fn path(&self) -> PathBuf {
        self.conf_dir.join(CONFLIST_NAME)
    }

    /// The conflist: strait-cni reading `node_file`, then the reference
    /// `portmap` plugin so hostPorts work (kubelet passes them as
    /// `runtimeConfig.portMappings` to plugins with that capability).
    pub fn render(&self, bridge: &str, node_file: &Path) -> String {
        let doc = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "strait",
            "plugins": [
                {"type": PLUGIN, "mode": "bridge", "bridge": bridge,
                 "nodeConfig": node_file},
                {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
            ]
        });
        let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Why the conflist cannot be published yet: the plugin is not in
    /// `bin_dir` (the init container installs it).
    pub fn missing_plugin(&self) -> Option<String> {
        let plugin = self.bin_dir.join(PLUGIN);
        (!plugin.is_file()).then(|| {
            format!(
                "{} is not installed (--cni-bin-dir {})",
                plugin.display(),
                self.bin_dir.display()
            )
        })
    }

    /// Writes the conflist if it is missing or different; true if written.
    pub fn publish(&self, bridge: &str, node_file: &Path) -> Result<bool, String> {
        let path = self.path();
        crate::node_file::write_if_changed(&path, &self.render(bridge, node_file))
            .map_err(|e| format!("CNI config {}: {e}", path.display()))
    }

    /// Removes the conflist; true if there was one.
    pub fn remove(&self) -> Result<bool, String> {
        let path = self.path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("removing CNI config {}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_only_with_the_plugin_installed_and_removed_again() {
        let dir = tempfile::tempdir().unwrap();
        let conf = CniConf {
            conf_dir: dir.path().join("net.d"),
            bin_dir: dir.path().join("bin"),
        };
        let why = conf.missing_plugin().unwrap();
        assert!(why.contains("strait-cni is not installed"), "{why}");
        std::fs::create_dir_all(&conf.bin_dir).unwrap();
        std::fs::write(conf.bin_dir.join(PLUGIN), "").unwrap();
        assert_eq!(conf.missing_plugin(), None);

        let node_file = Path::new("/run/strait/node.json");
        assert!(conf.publish("strait0", node_file).unwrap());
        assert!(!conf.publish("strait0", node_file).unwrap(), "rewritten");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(conf.path()).unwrap()).unwrap();
        assert_eq!(doc["plugins"][0]["type"], "strait-cni");
        assert_eq!(doc["plugins"][0]["nodeConfig"], "/run/strait/node.json");
        assert_eq!(doc["plugins"][1]["type"], "portmap");
        assert_eq!(doc["plugins"][1]["capabilities"]["portMappings"], true);
        assert!(conf.remove().unwrap());
        assert!(!conf.path().exists());
        assert!(!conf.remove().unwrap());
    }
}
