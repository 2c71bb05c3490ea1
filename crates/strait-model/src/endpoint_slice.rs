//! The snapshot's EndpointSlice: only what strait reads from one (its
//! Service label, address type, ports, and per endpoint the addresses, node
//! and three conditions), projected from k8s-openapi's `EndpointSlice` when
//! it enters the [`crate::Snapshot`].
//!
//! Why: k8s-openapi's `Endpoint` is about 350 bytes (every optional field
//! inline: targetRef, hints, zone, topology) plus a heap string per
//! address; at 10,000 Services x 10 endpoints those were a third of the
//! agent's peak memory. An [`Endpoint`] here is 48 bytes with no heap
//! allocation for the usual single address.
//!
//! Nothing is interpreted here: absent conditions stay absent (readers
//! apply Kubernetes' "nil means true" themselves). Addresses are kept
//! parsed; one that is not an IP address is dropped (every reader skipped
//! those; the endpoint itself stays, so endpoint counts do not change).
//! [`Slice::to_k8s`] gives the object back (without the dropped fields) for
//! serialising: the trace state and the fake API server use that form.

use crate::manifest::DEFAULT_NAMESPACE;
use k8s_openapi::api::discovery::v1 as k8s;
use std::net::IpAddr;

/// One EndpointSlice, as strait reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slice {
    pub namespace: String,
    pub name: String,
    /// `metadata.labels`, sorted by key (a `BTreeMap` per slice was 0.5 KiB
    /// for the usual one or two labels).
    pub labels: Box<[(String, String)]>,
    /// `addressType`: `IPv4`, `IPv6` or `FQDN`.
    pub address_type: String,
    pub endpoints: Box<[Endpoint]>,
    pub ports: Box<[Port]>,
}

/// One endpoint of a slice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub addresses: Addresses,
    pub node_name: Option<Box<str>>,
    pub conditions: Conditions,
}

/// `endpoints[].conditions`, each as given (`None` when absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conditions {
    pub ready: Option<bool>,
    pub serving: Option<bool>,
    pub terminating: Option<bool>,
}

/// `ports[]`: the resolved port per port name and protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Port {
    pub name: Option<String>,
    pub port: Option<i32>,
    pub protocol: Option<String>,
}

/// An endpoint's addresses; the usual single one is kept inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addresses {
    One(IpAddr),
    Many(Box<[IpAddr]>),
}

impl Default for Addresses {
    fn default() -> Self {
        Addresses::Many(Box::default())
    }
}

impl Addresses {
    pub fn as_slice(&self) -> &[IpAddr] {
        match self {
            Addresses::One(a) => std::slice::from_ref(a),
            Addresses::Many(list) => list,
        }
    }

    pub fn iter(&self) -> std::slice::Iter<'_, IpAddr> {
        self.as_slice().iter()
    }
}

impl FromIterator<IpAddr> for Addresses {
    fn from_iter<I: IntoIterator<Item = IpAddr>>(iter: I) -> Self {
        let list: Vec<IpAddr> = iter.into_iter().collect();
        match list.as_slice() {
            [one] => Addresses::One(*one),
            _ => Addresses::Many(list.into_boxed_slice()),
        }
    }
}

impl<'a> IntoIterator for &'a Addresses {
    type Item = &'a IpAddr;
    type IntoIter = std::slice::Iter<'a, IpAddr>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Slice {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.labels[i].1.as_str())
    }

    /// The projection of `slice` (namespace `default` when it names none).
    pub fn from_k8s(slice: k8s::EndpointSlice) -> Slice {
        let meta = slice.metadata;
        Slice {
            namespace: meta
                .namespace
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
            name: meta.name.unwrap_or_default(),
            labels: meta.labels.unwrap_or_default().into_iter().collect(),
            address_type: slice.address_type,
            endpoints: slice
                .endpoints
                .into_iter()
                .map(Endpoint::from_k8s)
                .collect(),
            ports: slice
                .ports
                .into_iter()
                .flatten()
                .map(|p| Port {
                    name: p.name,
                    port: p.port,
                    protocol: p.protocol,
                })
                .collect(),
        }
    }

    /// Back to a k8s-openapi object carrying what was kept (for
    /// serialising; `from_k8s(s.to_k8s()) == s`).
    pub fn to_k8s(&self) -> k8s::EndpointSlice {
        let labels = (!self.labels.is_empty()).then(|| self.labels.iter().cloned().collect());
        k8s::EndpointSlice {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                namespace: Some(self.namespace.clone()),
                name: Some(self.name.clone()),
                labels,
                ..Default::default()
            },
            address_type: self.address_type.clone(),
            endpoints: self.endpoints.iter().map(Endpoint::to_k8s).collect(),
            ports: (!self.ports.is_empty()).then(|| {
                self.ports
                    .iter()
                    .map(|p| k8s::EndpointPort {
                        name: p.name.clone(),
                        port: p.port,
                        protocol: p.protocol.clone(),
                        ..Default::default()
                    })
                    .collect()
            }),
        }
    }
}

impl Endpoint {
    fn from_k8s(e: k8s::Endpoint) -> Endpoint {
        let c = e.conditions.unwrap_or_default();
        Endpoint {
            addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
            node_name: e.node_name.map(String::into_boxed_str),
            conditions: Conditions {
                ready: c.ready,
                serving: c.serving,
                terminating: c.terminating,
            },
        }
    }

    fn to_k8s(&self) -> k8s::Endpoint {
        let c = self.conditions;
        let any = c.ready.is_some() || c.serving.is_some() || c.terminating.is_some();
        k8s::Endpoint {
            addresses: self.addresses.iter().map(IpAddr::to_string).collect(),
            node_name: self.node_name.as_deref().map(str::to_string),
            conditions: any.then_some(k8s::EndpointConditions {
                ready: c.ready,
                serving: c.serving,
                terminating: c.terminating,
            }),
            ..Default::default()
        }
    }
}

/// Serialised as the k8s-openapi object (`apiVersion` and `kind` included),
/// so `parse_manifests` reads it back.
impl serde::Serialize for Slice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&self.to_k8s(), s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{parse_manifests, Object};

    fn parse(text: &str) -> k8s::EndpointSlice {
        match parse_manifests(text, "t").unwrap().remove(0) {
            Object::EndpointSlice(s) => s,
            o => panic!("{}", o.describe()),
        }
    }

    const FULL: &str = "apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels: {kubernetes.io/service-name: web, endpointslice.kubernetes.io/managed-by: x}
  annotations: {a: b}
addressType: IPv4
endpoints:
- addresses: [10.42.1.2]
  nodeName: node-1
  conditions: {ready: true, serving: true, terminating: false}
  targetRef: {kind: Pod, name: web-0, namespace: shop}
  hints: {forZones: [{name: z}]}
  zone: z
- addresses: [10.42.1.3, not-an-ip, 10.42.1.4]
  conditions: {ready: false}
- addresses: [fd00::1]
- addresses: [garbage]
ports:
- {name: http, port: 8080, protocol: TCP, appProtocol: http}
- {port: 53}
";

    #[test]
    fn keeps_what_strait_reads() {
        let s = Slice::from_k8s(parse(FULL));
        assert_eq!((s.namespace.as_str(), s.name.as_str()), ("shop", "web-1"));
        assert_eq!(s.label("kubernetes.io/service-name"), Some("web"));
        assert_eq!(s.label("endpointslice.kubernetes.io/managed-by"), Some("x"));
        assert_eq!(s.label("app"), None);
        assert_eq!(s.address_type, "IPv4");
        let e = &s.endpoints;
        assert_eq!(e.len(), 4, "an endpoint without a usable address stays");
        assert_eq!(e[0].addresses, Addresses::One("10.42.1.2".parse().unwrap()));
        assert_eq!(e[0].node_name.as_deref(), Some("node-1"));
        assert_eq!(
            e[0].conditions,
            Conditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false)
            }
        );
        let many: Vec<String> = e[1].addresses.iter().map(|a| a.to_string()).collect();
        assert_eq!(many, ["10.42.1.3", "10.42.1.4"]);
        assert_eq!(e[1].conditions.ready, Some(false));
        assert_eq!(e[1].conditions.serving, None);
        assert_eq!(
            e[2].addresses.as_slice(),
            ["fd00::1".parse::<IpAddr>().unwrap()]
        );
        assert!(e[3].addresses.as_slice().is_empty());
        assert_eq!(e[3].conditions, Conditions::default());
        assert_eq!(s.ports.len(), 2);
        assert_eq!(s.ports[0].name.as_deref(), Some("http"));
        assert_eq!(s.ports[0].port, Some(8080));
        assert_eq!(s.ports[1].protocol, None);
    }

    #[test]
    fn round_trips_through_the_k8s_object_and_its_json() {
        let s = Slice::from_k8s(parse(FULL));
        assert_eq!(Slice::from_k8s(s.to_k8s()), s);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"kind\":\"EndpointSlice\""), "{json}");
        assert_eq!(Slice::from_k8s(parse(&json)), s);
    }

    #[test]
    fn missing_namespace_and_empty_lists() {
        let s = Slice::from_k8s(parse(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e}\naddressType: IPv4\nendpoints: []\n",
        ));
        assert_eq!(s.namespace, "default");
        assert!(s.endpoints.is_empty() && s.ports.is_empty() && s.labels.is_empty());
        assert_eq!(Slice::from_k8s(s.to_k8s()), s);
    }

    #[test]
    fn an_endpoint_is_small() {
        assert!(std::mem::size_of::<Endpoint>() <= 48);
    }
}
