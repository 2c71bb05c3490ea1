//! Stale UDP flows of Services: when an endpoint leaves a UDP Service, the
//! conntrack entries that DNAT the Service address to it are deleted, so a
//! client that keeps sending (DNS resolvers do) reaches a live endpoint on
//! its next packet instead of a dead address forever.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use strait_model::Snapshot;

/// (Service address, port) -> endpoint addresses, for UDP ports only.
pub type UdpEndpoints = BTreeMap<(IpAddr, u16), BTreeSet<IpAddr>>;

/// The UDP endpoints of every Service address (ClusterIP, externalIPs,
/// load-balancer IPs) in the snapshot.
pub fn udp_endpoints(snap: &Snapshot) -> UdpEndpoints {
    let mut out = UdpEndpoints::new();
    for svc in &snap.services {
        let Some(spec) = &svc.spec else { continue };
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let mut addrs: Vec<IpAddr> = Vec::new();
        addrs.extend(
            spec.cluster_ips
                .iter()
                .flatten()
                .filter_map(|a| a.parse::<IpAddr>().ok()),
        );
        addrs.extend(
            spec.cluster_ip
                .iter()
                .filter_map(|a| a.parse::<IpAddr>().ok()),
        );
        addrs.extend(
            spec.external_ips
                .iter()
                .flatten()
                .filter_map(|a| a.parse::<IpAddr>().ok()),
        );
        let lb = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref());
        addrs.extend(
            lb.iter()
                .flat_map(|l| l.ingress.iter().flatten())
                .filter_map(|i| i.ip.as_ref()?.parse::<IpAddr>().ok()),
        );
        addrs.sort();
        addrs.dedup();
        let endpoints: BTreeSet<IpAddr> = snap
            .slices_for(&ns, &name)
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.conditions.ready != Some(false))
            .flat_map(|e| e.addresses.iter().copied())
            .collect();
        for p in spec.ports.iter().flatten() {
            if p.protocol.as_deref() != Some("UDP") {
                continue;
            }
            let Ok(port) = u16::try_from(p.port) else {
                continue;
            };
            for a in &addrs {
                out.entry((*a, port))
                    .or_default()
                    .extend(endpoints.iter().copied());
            }
        }
    }
    out
}

/// (Service address, port, endpoint) triples that were there before and
/// are gone now.
pub fn stale(before: &UdpEndpoints, now: &UdpEndpoints) -> Vec<(IpAddr, u16, IpAddr)> {
    let mut out = Vec::new();
    for ((addr, port), old) in before {
        let current = now.get(&(*addr, *port));
        for ep in old {
            if current.is_none_or(|c| !c.contains(ep)) {
                out.push((*addr, *port, *ep));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(endpoints: &str) -> Snapshot {
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: dns, namespace: k}}\nspec:\n  clusterIP: 10.43.0.10\n  externalIPs: [192.168.2.53]\n  ports: [{{port: 53, protocol: UDP}}, {{port: 53, protocol: TCP}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: dns-1, namespace: k, labels: {{kubernetes.io/service-name: dns}}}}\naddressType: IPv4\nendpoints: [{endpoints}]\nports: [{{port: 53, protocol: UDP}}]\n"
        );
        Snapshot::from_objects(strait_model::parse_manifests(&yaml, "t").unwrap())
    }

    #[test]
    fn a_replaced_endpoint_is_stale_for_every_service_address() {
        let before = udp_endpoints(&snap("{addresses: [10.42.1.2]}, {addresses: [10.42.2.2]}"));
        assert_eq!(
            before.len(),
            2,
            "ClusterIP and externalIP, UDP only: {before:?}"
        );
        let now = udp_endpoints(&snap("{addresses: [10.42.2.2]}, {addresses: [10.42.1.9]}"));
        let gone: IpAddr = "10.42.1.2".parse().unwrap();
        assert_eq!(
            stale(&before, &now),
            vec![
                ("10.43.0.10".parse().unwrap(), 53, gone),
                ("192.168.2.53".parse().unwrap(), 53, gone)
            ]
        );
        // Not ready counts as gone.
        let unready = udp_endpoints(&snap(
            "{addresses: [10.42.2.2], conditions: {ready: false}}",
        ));
        assert_eq!(stale(&now, &unready).len(), 4);
        assert!(stale(&now, &now).is_empty());
    }
}
