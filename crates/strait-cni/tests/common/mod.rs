//! Fixture for root tests: a "node" (a fresh namespace standing in for the
//! host, so the bridge and veths never touch the machine's own network) with
//! its own IPAM directory, and pods made on it with the real binary.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::PathBuf;
use strait_lab::{CniCall, CniOutput, Netns};

pub const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

pub fn plugin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strait-cni"))
        .parent()
        .expect("binary has a directory")
        .to_path_buf()
}

pub struct Node {
    pub ns: Netns,
    pub dir: tempfile::TempDir,
}

impl Node {
    pub fn new() -> Self {
        Node {
            ns: Netns::unique("stn").expect("create node namespace"),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn data_dir(&self) -> String {
        self.dir.path().join("ipam").display().to_string()
    }

    pub fn node_file(&self) -> PathBuf {
        self.dir.path().join("node.json")
    }

    /// A plugin config for `strait-cni` on this node.
    pub fn conf(&self, version: &str, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": version,
            "name": "testnet",
            "type": "strait-cni",
            "nodeConfig": self.node_file(),
            "ipam": {"ranges": [[{"subnet": "10.77.0.0/24"}]], "dataDir": self.data_dir()},
        });
        merge(&mut c, extra);
        c
    }

    pub fn call(&self, command: &str, container: &str, pod: &Netns, ifname: &str) -> CniCall {
        let mut call = CniCall::new(command, container, &pod.path(), ifname);
        call.path = vec![plugin_dir(), PathBuf::from(REFERENCE_PLUGINS)];
        call.host_netns = Some(self.ns.name.clone());
        call
    }

    pub fn run(&self, command: &str, container: &str, pod: &Netns, conf: &Value) -> CniOutput {
        self.call(command, container, pod, "eth0")
            .exec("strait-cni", conf)
            .expect("spawn plugin")
    }

    /// Files in the IPAM store that hold an allocation (named by address).
    pub fn allocated(&self) -> Vec<String> {
        let dir = self.dir.path().join("ipam").join("testnet");
        let mut out: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Host links whose name starts with `prefix`.
    pub fn links(&self, prefix: &str) -> Vec<String> {
        let out = self
            .ns
            .exec_ok(&["ip", "-j", "link", "show"])
            .expect("ip link");
        let v: Value = serde_json::from_str(&out).expect("ip -j");
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str())
            .filter(|n| n.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }
}

pub fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// Addresses (with prefix) on `ifname` inside `ns`.
pub fn addresses(ns: &Netns, ifname: &str) -> Vec<String> {
    let out = ns
        .exec_ok(&["ip", "-j", "addr", "show", "dev", ifname])
        .unwrap_or_default();
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["scope"] == "global")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect()
}

/// One ping from `from` to `to`; true when answered.
pub fn ping(from: &Netns, to: &str) -> bool {
    from.exec(&["ping", "-c", "1", "-W", "2", to])
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The pod's IPv4 address from an ADD result.
pub fn first_ip(result: &Value) -> String {
    result["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .unwrap_or_default()
        .to_owned()
}
