//! Facts about a Node that networking needs: its pod CIDRs and its
//! underlay (InternalIP) address. Read-only helpers over k8s-openapi's `Node`.

use crate::config::{parse_cidr, parse_ip};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use std::net::IpAddr;

/// The node's name (empty if it has none).
pub fn node_name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or("")
}

/// The pod CIDR fields of a node as `(field path, raw value)`:
/// `spec.podCIDRs[i]` when that list is non-empty, else `spec.podCIDR`.
/// (Kubernetes keeps `podCIDR` equal to `podCIDRs[0]`.)
pub fn node_pod_cidr_fields(node: &Node) -> Vec<(String, &str)> {
    let Some(spec) = node.spec.as_ref() else {
        return Vec::new();
    };
    match spec.pod_cidrs.as_deref() {
        Some(list) if !list.is_empty() => list
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("spec.podCIDRs[{i}]"), s.as_str()))
            .collect(),
        _ => spec
            .pod_cidr
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| vec![("spec.podCIDR".to_string(), s)])
            .unwrap_or_default(),
    }
}

/// The node's pod CIDRs (`spec.podCIDRs`, else `spec.podCIDR`). Values that
/// do not parse are left out: the API server and [`crate::parse_manifests`]
/// reject them, so only a hand-built `Node` can have them; use
/// [`node_pod_cidr_fields`] to report them.
pub fn node_pod_cidrs(node: &Node) -> Vec<IpNet> {
    node_pod_cidr_fields(node)
        .into_iter()
        .filter_map(|(_, s)| s.parse().ok())
        .collect()
}

/// The node's `InternalIP` from `status.addresses`: the first IPv4 one, else
/// the first IPv6 one. Unparsable addresses are skipped.
pub fn node_internal_ip(node: &Node) -> Option<IpAddr> {
    let addrs = node.status.as_ref()?.addresses.as_ref()?;
    let internal: Vec<IpAddr> = addrs
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect();
    internal
        .iter()
        .find(|ip| ip.is_ipv4())
        .or_else(|| internal.first())
        .copied()
}

/// Checks the fields of a Node that strait parses: every pod CIDR and every
/// InternalIP/ExternalIP address. Returns `field: message` on the first bad one.
pub(crate) fn check_node(node: &Node) -> Result<(), String> {
    for (field, value) in node_pod_cidr_fields(node) {
        parse_cidr(value).map_err(|m| format!("{field}: {m}"))?;
    }
    if let Some(addrs) = node.status.as_ref().and_then(|s| s.addresses.as_ref()) {
        for (i, a) in addrs.iter().enumerate() {
            if a.type_ == "InternalIP" || a.type_ == "ExternalIP" {
                parse_ip(&a.address).map_err(|m| format!("status.addresses[{i}].address: {m}"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};

    fn node(pod_cidr: Option<&str>, pod_cidrs: &[&str], addrs: &[(&str, &str)]) -> Node {
        Node {
            metadata: Default::default(),
            spec: Some(NodeSpec {
                pod_cidr: pod_cidr.map(str::to_string),
                pod_cidrs: if pod_cidrs.is_empty() {
                    None
                } else {
                    Some(pod_cidrs.iter().map(|s| s.to_string()).collect())
                },
                ..Default::default()
            }),
            status: Some(NodeStatus {
                addresses: Some(
                    addrs
                        .iter()
                        .map(|(t, a)| NodeAddress {
                            type_: t.to_string(),
                            address: a.to_string(),
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
        }
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn pod_cidrs_prefers_the_list() {
        let n = node(
            Some("10.42.1.0/24"),
            &["10.42.1.0/24", "fd00:42:1::/64"],
            &[],
        );
        assert_eq!(
            node_pod_cidrs(&n),
            nets(&["10.42.1.0/24", "fd00:42:1::/64"])
        );
        assert_eq!(node_pod_cidr_fields(&n)[1].0, "spec.podCIDRs[1]");
    }

    #[test]
    fn pod_cidrs_falls_back_to_the_single_field() {
        let n = node(Some("10.42.7.0/24"), &[], &[]);
        assert_eq!(node_pod_cidrs(&n), nets(&["10.42.7.0/24"]));
        assert_eq!(node_pod_cidr_fields(&n)[0].0, "spec.podCIDR");
    }

    #[test]
    fn pod_cidrs_empty_without_spec_or_value() {
        assert!(node_pod_cidrs(&Node::default()).is_empty());
        assert!(node_pod_cidrs(&node(Some(""), &[], &[])).is_empty());
        assert!(node_pod_cidrs(&node(Some("junk"), &[], &[])).is_empty());
    }

    #[test]
    fn internal_ip_prefers_first_ipv4() {
        let n = node(
            None,
            &[],
            &[
                ("Hostname", "b"),
                ("ExternalIP", "203.0.113.9"),
                ("InternalIP", "fd00::2"),
                ("InternalIP", "10.0.0.2"),
                ("InternalIP", "10.0.0.3"),
            ],
        );
        assert_eq!(node_internal_ip(&n), Some("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn internal_ip_falls_back_to_ipv6_and_none() {
        let n = node(None, &[], &[("InternalIP", "fd00::2")]);
        assert_eq!(node_internal_ip(&n), Some("fd00::2".parse().unwrap()));
        let n = node(None, &[], &[("ExternalIP", "203.0.113.9")]);
        assert_eq!(node_internal_ip(&n), None);
        assert_eq!(node_internal_ip(&Node::default()), None);
    }

    #[test]
    fn check_node_names_the_field() {
        let n = node(None, &["10.42.1.0/24", "10.42.300.0/24"], &[]);
        assert_eq!(
            check_node(&n).unwrap_err(),
            "spec.podCIDRs[1]: 10.42.300.0/24 is not a CIDR (address/prefix, e.g. 10.42.0.0/16)"
        );
        let n = node(
            None,
            &[],
            &[("Hostname", "x y"), ("InternalIP", "10.0.0.300")],
        );
        assert_eq!(
            check_node(&n).unwrap_err(),
            "status.addresses[1].address: 10.0.0.300 is not an IP address"
        );
        assert!(check_node(&node(
            Some("10.42.1.0/24"),
            &[],
            &[("InternalIP", "10.0.0.1")]
        ))
        .is_ok());
    }
}
