//! Kubernetes manifests (multi-document YAML or JSON) -> typed objects.
//!
//! Owns which kinds strait reads ([`Kind`]), how a document becomes an
//! [`Object`], and the defaults the API server would apply (namespace
//! `default`, the `kubernetes.io/metadata.name` label on Namespaces). It does
//! not read files (see [`crate::store`]) and does not keep objects (see
//! [`crate::snapshot`]).

use crate::error::ModelError;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Resource;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The label the API server puts on every Namespace.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The namespace of a namespaced object that does not name one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// `(namespace, name)` of a namespaced object, with the API server's
/// default namespace when none is set (`""` for a missing name).
pub fn namespace_and_name(meta: &ObjectMeta) -> (&str, &str) {
    (
        meta.namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_NAMESPACE),
        meta.name.as_deref().unwrap_or(""),
    )
}

/// The kinds strait reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Namespace,
    Node,
    Pod,
    Service,
    EndpointSlice,
    NetworkPolicy,
}

impl Kind {
    /// Every kind, in the order error messages list them.
    pub const ALL: [Kind; 6] = [
        Kind::Namespace,
        Kind::Node,
        Kind::Pod,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::NetworkPolicy,
    ];

    /// The `kind` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespace => Namespace::KIND,
            Kind::Node => Node::KIND,
            Kind::Pod => Pod::KIND,
            Kind::Service => Service::KIND,
            Kind::EndpointSlice => EndpointSlice::KIND,
            Kind::NetworkPolicy => NetworkPolicy::KIND,
        }
    }

    /// The only `apiVersion` accepted for the kind.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Namespace => Namespace::API_VERSION,
            Kind::Node => Node::API_VERSION,
            Kind::Pod => Pod::API_VERSION,
            Kind::Service => Service::API_VERSION,
            Kind::EndpointSlice => EndpointSlice::API_VERSION,
            Kind::NetworkPolicy => NetworkPolicy::API_VERSION,
        }
    }

    /// Whether objects of the kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::Node)
    }

    /// The kind with this `kind` value (exact, case-sensitive).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    fn supported_list() -> String {
        Kind::ALL.map(Kind::as_str).join(", ")
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::from_name(s).ok_or_else(|| {
            format!(
                "kind {s:?} is not supported (supported: {})",
                Kind::supported_list()
            )
        })
    }
}

/// One Kubernetes object of a kind strait reads.
// Objects are short-lived (parsed, then moved into the snapshot's typed
// lists), so unboxed variants cost nothing that matters and keep matching
// plain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Namespace(Namespace),
    Node(Node),
    Pod(Pod),
    Service(Service),
    EndpointSlice(EndpointSlice),
    NetworkPolicy(NetworkPolicy),
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Namespace(_) => Kind::Namespace,
            Object::Node(_) => Kind::Node,
            Object::Pod(_) => Kind::Pod,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::NetworkPolicy(_) => Kind::NetworkPolicy,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::Node(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::NetworkPolicy(o) => &o.metadata,
        }
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Namespace(o) => &mut o.metadata,
            Object::Node(o) => &mut o.metadata,
            Object::Pod(o) => &mut o.metadata,
            Object::Service(o) => &mut o.metadata,
            Object::EndpointSlice(o) => &mut o.metadata,
            Object::NetworkPolicy(o) => &mut o.metadata,
        }
    }

    /// `metadata.name` (empty if unset; parsed objects always have one).
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or("")
    }

    /// `metadata.namespace`; `None` for cluster-scoped kinds.
    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// Applies the API server's defaults: namespaced objects without a
    /// namespace get `default`, cluster-scoped ones lose any namespace, and
    /// Namespaces carry `kubernetes.io/metadata.name=<name>`.
    pub fn normalize(&mut self) {
        let kind = self.kind();
        let meta = self.metadata_mut();
        if kind.is_namespaced() {
            if meta.namespace.as_deref().unwrap_or("").is_empty() {
                meta.namespace = Some(DEFAULT_NAMESPACE.to_string());
            }
        } else {
            meta.namespace = None;
        }
        if kind == Kind::Namespace {
            let name = meta.name.clone().unwrap_or_default();
            meta.labels
                .get_or_insert_with(Default::default)
                .insert(NAMESPACE_NAME_LABEL.to_string(), name);
        }
    }

    /// `Kind namespace/name` or `Kind name`, for messages.
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name()),
            None => format!("{} {}", self.kind(), self.name()),
        }
    }
}

/// Parses every document of a multi-document YAML (or JSON) text. `origin`
/// (usually the file name) starts every error message, followed by the
/// 1-based document number. Empty documents are skipped.
pub fn parse_manifests(text: &str, origin: &str) -> Result<Vec<Object>, ModelError> {
    let mut objects = Vec::new();
    for_each_manifest(text, origin, |o| objects.push(o))?;
    Ok(objects)
}

/// [`parse_manifests`] handing each object to `f` as soon as it is parsed,
/// so a large file never holds all its objects twice (the agent's peak
/// memory at 10,000 Services). Objects before an error have been handed
/// on; callers that must be all-or-nothing collect into a scratch value.
pub fn for_each_manifest(
    text: &str,
    origin: &str,
    mut f: impl FnMut(Object),
) -> Result<(), ModelError> {
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let err = |message: String| ModelError::Manifest {
            origin: origin.to_string(),
            document: i + 1,
            message,
        };
        let mut value = serde_yaml::Value::deserialize(document)
            .map_err(|e| err(format!("invalid YAML: {e}")))?;
        value
            .apply_merge()
            .map_err(|e| err(format!("invalid YAML: {e}")))?;
        if let Some(object) = parse_document(value).map_err(err)? {
            f(object);
        }
    }
    Ok(())
}

/// One document -> an object; `Ok(None)` for an empty document.
fn parse_document(value: serde_yaml::Value) -> Result<Option<Object>, String> {
    let map = match &value {
        serde_yaml::Value::Null => return Ok(None),
        serde_yaml::Value::Mapping(m) if m.is_empty() => return Ok(None),
        serde_yaml::Value::Mapping(m) => m,
        _ => return Err("is not a mapping (a Kubernetes object)".to_string()),
    };
    let field = |name: &str| -> Result<String, String> {
        match map.get(name) {
            None | Some(serde_yaml::Value::Null) => Err(format!("has no {name}")),
            Some(serde_yaml::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("{name} is not a string")),
        }
    };
    let kind_name = field("kind")?;
    let kind: Kind = kind_name.parse()?;
    let api_version = field("apiVersion")?;
    if api_version != kind.api_version() {
        return Err(format!(
            "apiVersion {api_version:?} is not supported for kind {kind} (expected {:?})",
            kind.api_version()
        ));
    }
    let mut object = match kind {
        Kind::Namespace => Object::Namespace(typed(value, kind)?),
        Kind::Node => Object::Node(typed(value, kind)?),
        Kind::Pod => Object::Pod(typed(value, kind)?),
        Kind::Service => Object::Service(typed(value, kind)?),
        Kind::EndpointSlice => Object::EndpointSlice(typed(value, kind)?),
        Kind::NetworkPolicy => Object::NetworkPolicy(typed(value, kind)?),
    };
    if object.name().is_empty() {
        return Err(format!("{kind} has no metadata.name"));
    }
    object.normalize();
    if let Object::Node(node) = &object {
        crate::node::check_node(node).map_err(|m| format!("Node {:?}: {m}", object_name(node)))?;
    }
    Ok(Some(object))
}

fn object_name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or("")
}

fn typed<T: DeserializeOwned>(value: serde_yaml::Value, kind: Kind) -> Result<T, String> {
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .map(|n| format!(" {n:?}"))
        .unwrap_or_default();
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        format!("{kind}{name}: {path}: {}", e.into_inner())
    })
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
