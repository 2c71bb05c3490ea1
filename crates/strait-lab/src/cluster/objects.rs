//! The lab's manifest directory, which every node's agent reads: one JSON
//! file per object, written atomically (temp + rename) so an agent never
//! reads half a file.

use crate::topology::Topology;
use crate::LabError;
use serde_json::json;
use std::path::{Path, PathBuf};
use strait_model::Object;

fn file_name(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind}.{ns}.{name}.json").to_lowercase(),
        None => format!("{kind}.{name}.json").to_lowercase(),
    }
}

pub fn object_path(dir: &Path, obj: &Object) -> PathBuf {
    dir.join(file_name(obj.kind().as_str(), obj.namespace(), obj.name()))
}

pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), LabError> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    std::fs::write(&tmp, text).map_err(LabError::io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(LabError::io("rename", path))
}

pub fn write_object(dir: &Path, obj: &Object) -> Result<(), LabError> {
    let value = match obj {
        Object::Namespace(o) => serde_json::to_value(o),
        Object::Node(o) => serde_json::to_value(o),
        Object::Pod(o) => serde_json::to_value(o),
        Object::Service(o) => serde_json::to_value(o),
        Object::EndpointSlice(o) => serde_json::to_value(o),
        Object::NetworkPolicy(o) => serde_json::to_value(o),
    }
    .map_err(|e| LabError::Cluster(format!("{}: {e}", obj.describe())))?;
    write_json(&object_path(dir, obj), &value)
}

/// A Namespace as the API server stores it: with the
/// `kubernetes.io/metadata.name` label (added by [`Object::normalize`]).
pub fn namespace_object(name: &str) -> Object {
    let mut ns = strait_model::k8s::api::core::v1::Namespace::default();
    ns.metadata.name = Some(name.to_owned());
    let mut obj = Object::Namespace(ns);
    obj.normalize();
    obj
}

pub fn namespace_exists(dir: &Path, name: &str) -> bool {
    dir.join(file_name("namespace", None, name)).exists()
}

pub fn remove_object(dir: &Path, obj: &Object) -> Result<bool, LabError> {
    let p = object_path(dir, obj);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(LabError::Io {
            what: "remove".into(),
            path: p,
            source: e,
        }),
    }
}

/// The Node objects of the topology: name, pod CIDR, underlay address.
pub fn write_nodes(dir: &Path, topo: &Topology) -> Result<(), LabError> {
    let cidrs = topo.pod_cidrs()?;
    for (node, cidr) in topo.nodes.iter().zip(cidrs) {
        write_node(dir, &node.name, &node.ip.to_string(), &cidr.to_string())?;
    }
    Ok(())
}

pub fn write_node(dir: &Path, name: &str, ip: &str, pod_cidr: &str) -> Result<(), LabError> {
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {"addresses": [
            {"type": "InternalIP", "address": ip},
            {"type": "Hostname", "address": name}
        ]}
    });
    write_json(&dir.join(file_name("node", None, name)), &node)
}

pub fn remove_node(dir: &Path, name: &str) -> Result<(), LabError> {
    let p = dir.join(file_name("node", None, name));
    match std::fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LabError::Io {
            what: "remove".into(),
            path: p,
            source: e,
        }),
        _ => Ok(()),
    }
}
