//! The checks of a topology that serde cannot make: addresses inside their
//! subnets and used once, unique and valid names, disjoint networks, pod
//! CIDRs inside the cluster CIDR and apart, routes via neighbours, agent keys
//! and namespace names that fit. Errors name the field and its value.

use super::{render, NsKind, Topology, MTU_RANGE, NETNS_NAME_MAX, UNDERLAY};
use crate::error::LabError;
use ipnet::Ipv4Net;
use std::collections::HashMap;
use std::net::Ipv4Addr;

impl Topology {
    /// The checks serde cannot make. Errors name the field and its value.
    pub fn validate(&self) -> Result<(), LabError> {
        check_lab_name(&self.name)?;
        check_net("underlay.subnet", self.underlay.subnet)?;
        check_mtu("underlay.mtu", self.underlay.mtu)?;
        check_net("clusterCIDR", self.cluster_cidr)?;
        check_net("serviceCIDR", self.service_cidr)?;
        if let Some(mtu) = self.mtu {
            check_mtu("mtu", mtu)?;
        }

        // The subnets the lab's L2 networks use, and the cluster's ranges:
        // none may overlap another.
        let mut ranges: Vec<(String, Ipv4Net)> = vec![
            ("underlay.subnet".into(), self.underlay.subnet),
            ("clusterCIDR".into(), self.cluster_cidr),
            ("serviceCIDR".into(), self.service_cidr),
        ];
        for (i, ext) in self.external_networks.iter().enumerate() {
            let f = format!("externalNetworks[{i}]");
            check_name(&format!("{f}.name"), &ext.name)?;
            if ext.name == UNDERLAY {
                return Err(LabError::topology(
                    format!("{f}.name"),
                    format!("{:?} is reserved for the underlay's switch", ext.name),
                ));
            }
            check_net(&format!("{f}.subnet"), ext.subnet)?;
            ranges.push((format!("{f}.subnet"), ext.subnet));
        }
        for (i, (fa, a)) in ranges.iter().enumerate() {
            for (fb, b) in &ranges[..i] {
                if overlaps(*a, *b) {
                    return Err(LabError::topology(
                        fa.clone(),
                        format!("{a} overlaps {fb} {b}"),
                    ));
                }
            }
        }

        // Addresses: inside their subnet, used once.
        let mut used: HashMap<Ipv4Addr, String> = HashMap::new();
        let mut claim = |field: String, addr: Ipv4Addr, subnet: Ipv4Net, sfield: &str| {
            check_host(&field, addr, subnet, sfield)?;
            if let Some(prev) = used.insert(addr, field.clone()) {
                return Err(LabError::topology(
                    field,
                    format!("{addr} is already used by {prev}"),
                ));
            }
            Ok(())
        };
        claim(
            "router.underlayIP".into(),
            self.router.underlay_ip,
            self.underlay.subnet,
            "underlay.subnet",
        )?;
        let mut names: HashMap<&str, String> = HashMap::new();
        for (i, ext) in self.external_networks.iter().enumerate() {
            let f = format!("externalNetworks[{i}]");
            if let Some(prev) = names.insert(&ext.name, format!("{f}.name")) {
                return Err(LabError::topology(
                    format!("{f}.name"),
                    format!("{:?} is already the name of {prev}", ext.name),
                ));
            }
            let sf = format!("{f}.subnet");
            claim(format!("{f}.routerIP"), ext.router_ip, ext.subnet, &sf)?;
        }
        let mut host_names: HashMap<&str, String> = HashMap::new();
        for (i, ext) in self.external_networks.iter().enumerate() {
            let sf = format!("externalNetworks[{i}].subnet");
            for (j, h) in ext.hosts.iter().enumerate() {
                let f = format!("externalNetworks[{i}].hosts[{j}]");
                check_name(&format!("{f}.name"), &h.name)?;
                if let Some(prev) = host_names.insert(&h.name, format!("{f}.name")) {
                    return Err(LabError::topology(
                        format!("{f}.name"),
                        format!("{:?} is already the name of {prev}", h.name),
                    ));
                }
                claim(format!("{f}.ip"), h.ip, ext.subnet, &sf)?;
            }
        }
        if self.nodes.is_empty() {
            return Err(LabError::topology(
                "nodes",
                "the lab needs at least one node",
            ));
        }
        let mut node_names: HashMap<&str, String> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let f = format!("nodes[{i}]");
            check_name(&format!("{f}.name"), &n.name)?;
            if let Some(prev) = node_names.insert(&n.name, format!("{f}.name")) {
                return Err(LabError::topology(
                    format!("{f}.name"),
                    format!("{:?} is already the name of {prev}", n.name),
                ));
            }
            claim(
                format!("{f}.ip"),
                n.ip,
                self.underlay.subnet,
                "underlay.subnet",
            )?;
        }

        self.validate_routes()?;
        self.validate_pod_cidrs()?;
        self.validate_agent()?;

        // Every namespace name must fit.
        let mut members: Vec<(String, String)> =
            vec![("name".into(), self.netns(NsKind::Switch, UNDERLAY))];
        members.push(("name".into(), self.netns(NsKind::Router, "")));
        for (i, ext) in self.external_networks.iter().enumerate() {
            let f = format!("externalNetworks[{i}]");
            members.push((format!("{f}.name"), self.netns(NsKind::Switch, &ext.name)));
            for (j, h) in ext.hosts.iter().enumerate() {
                members.push((
                    format!("{f}.hosts[{j}].name"),
                    self.netns(NsKind::Host, &h.name),
                ));
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            members.push((
                format!("nodes[{i}].name"),
                self.netns(NsKind::Node, &n.name),
            ));
        }
        for (field, ns) in members {
            if ns.len() > NETNS_NAME_MAX {
                return Err(LabError::topology(
                    field,
                    format!(
                        "namespace name {ns:?} is {} characters, more than {NETNS_NAME_MAX}; use shorter names",
                        ns.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_routes(&self) -> Result<(), LabError> {
        let mut connected = vec![self.underlay.subnet];
        connected.extend(self.external_networks.iter().map(|e| e.subnet));
        let router_ips: Vec<Ipv4Addr> = self.router_ips().collect();
        check_route_list(
            "router.routes",
            &self.router.routes,
            &connected,
            |via| connected.iter().any(|c| c.contains(&via)) && !router_ips.contains(&via),
            "one of the router's networks",
        )?;
        let underlay = [self.underlay.subnet];
        let on_underlay = format!("underlay.subnet {}", self.underlay.subnet);
        for (i, n) in self.nodes.iter().enumerate() {
            check_route_list(
                &format!("nodes[{i}].staticRoutes"),
                &n.static_routes,
                &underlay,
                |via| self.underlay.subnet.contains(&via) && via != n.ip,
                &on_underlay,
            )?;
        }
        Ok(())
    }

    fn router_ips(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        std::iter::once(self.router.underlay_ip)
            .chain(self.external_networks.iter().map(|e| e.router_ip))
    }

    fn validate_pod_cidrs(&self) -> Result<(), LabError> {
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(c) = n.pod_cidr {
                let f = format!("nodes[{i}].podCIDR");
                check_net(&f, c)?;
                if !self.cluster_cidr.contains(&c) {
                    return Err(LabError::topology(
                        f,
                        format!("{c} is not inside clusterCIDR {}", self.cluster_cidr),
                    ));
                }
            }
        }
        let cidrs = self.pod_cidrs()?;
        for (i, a) in cidrs.iter().enumerate() {
            for (j, b) in cidrs[..i].iter().enumerate() {
                if overlaps(*a, *b) {
                    return Err(LabError::topology(
                        format!("nodes[{i}].podCIDR"),
                        format!(
                            "{a} overlaps the pod CIDR {b} of nodes[{j}] ({})",
                            self.nodes[j].name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_agent(&self) -> Result<(), LabError> {
        use serde_yaml::Value;
        match &self.agent {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Mapping(m)) => {
                for key in ["clusterCIDR", "serviceCIDR", "backend", "mtu"] {
                    if m.contains_key(key) {
                        return Err(LabError::topology(
                            format!("agent.{key}"),
                            "set it at the top level of the topology, not under agent",
                        ));
                    }
                }
                Ok(())
            }
            Some(other) => Err(LabError::topology(
                "agent",
                format!(
                    "must be a mapping of agent config keys, not {}",
                    render(other)
                ),
            )),
        }
    }
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn check_net(field: &str, net: Ipv4Net) -> Result<(), LabError> {
    if net.trunc() != net {
        return Err(LabError::topology(
            field,
            format!("{net} has host bits set (the network is {})", net.trunc()),
        ));
    }
    Ok(())
}

fn check_mtu(field: &str, mtu: u32) -> Result<(), LabError> {
    if !MTU_RANGE.contains(&mtu) {
        return Err(LabError::topology(
            field,
            format!(
                "{mtu} is out of range ({}-{})",
                MTU_RANGE.start(),
                MTU_RANGE.end()
            ),
        ));
    }
    Ok(())
}

/// `addr` must be a usable host address of `subnet`.
fn check_host(field: &str, addr: Ipv4Addr, subnet: Ipv4Net, sfield: &str) -> Result<(), LabError> {
    if !subnet.contains(&addr) {
        return Err(LabError::topology(
            field,
            format!("{addr} is not inside {sfield} {subnet}"),
        ));
    }
    if subnet.prefix_len() <= 30 && (addr == subnet.network() || addr == subnet.broadcast()) {
        return Err(LabError::topology(
            field,
            format!("{addr} is the network or broadcast address of {sfield} {subnet}"),
        ));
    }
    Ok(())
}

/// The lab name is the prefix of every namespace; it has no `-` so that no
/// lab's namespaces can look like another lab's (`down` matches `<lab>-`).
fn check_lab_name(name: &str) -> Result<(), LabError> {
    let ok = name.len() <= 16
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        return Err(LabError::topology(
            "name",
            format!(
                "{name:?} is not a lab name (1-16 lowercase letters and digits, starting with a letter)"
            ),
        ));
    }
    Ok(())
}

/// Member names: lowercase letters, digits, `-` and `.`, starting and ending
/// with a letter or digit (a DNS name, safe in namespace names).
fn check_name(field: &str, name: &str) -> Result<(), LabError> {
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !name.is_empty()
        && name.starts_with(edge)
        && name.ends_with(edge)
        && name.chars().all(|c| edge(c) || c == '-' || c == '.');
    if !ok {
        return Err(LabError::topology(
            field,
            format!("{name:?} is not a valid name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"),
        ));
    }
    Ok(())
}

/// Checks one list of routes: networks without host bits, no destination
/// twice or equal to a connected network (the kernel would refuse both), and
/// every `via` a neighbour on `networks`.
fn check_route_list(
    list: &str,
    routes: &[super::Route],
    connected: &[Ipv4Net],
    is_neighbour: impl Fn(Ipv4Addr) -> bool,
    networks: &str,
) -> Result<(), LabError> {
    for (j, r) in routes.iter().enumerate() {
        let f = format!("{list}[{j}]");
        check_net(&format!("{f}.to"), r.to)?;
        if connected.contains(&r.to) {
            return Err(LabError::topology(
                format!("{f}.to"),
                format!("{} is a connected network already", r.to),
            ));
        }
        if let Some(k) = routes[..j].iter().position(|p| p.to == r.to) {
            return Err(LabError::topology(
                format!("{f}.to"),
                format!("{} already has a route ({list}[{k}])", r.to),
            ));
        }
        if !is_neighbour(r.via) {
            return Err(LabError::topology(
                format!("{f}.via"),
                format!("{} is not a neighbour on {networks}", r.via),
            ));
        }
    }
    Ok(())
}
