//! One Service: its ClusterIP, external addresses and NodePorts, each
//! port with its endpoint views, as a [`Piece`].

use super::*;

/// One service's piece (not `served` when it has no ClusterIP: headless,
/// ExternalName). `owners` names sessionAffinity chains.
pub(super) fn add_service(
    node: &NodeView,
    ns: &str,
    name: &str,
    svc: &Service,
    slices: &[&Arc<Slice>],
    owners: &mut ChainOwners,
) -> Piece {
    let mut piece = Piece::default();
    let Some(spec) = &svc.spec else { return piece };
    let Some(cluster_ip) = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
    else {
        return piece;
    };
    let Some(cluster_ip) = v4(cluster_ip) else {
        piece.warnings.push(format!("service {ns}/{name}: clusterIP {cluster_ip} left out: IPv6 services are not supported yet"));
        return piece;
    };
    piece.served = true;
    if !node.service_cidr.is_some_and(|c| c.contains(&cluster_ip)) {
        piece.outside_cidr = Some(cluster_ip);
    }
    // sessionAffinity ClientIP: its timeout (Kubernetes' default 3 hours).
    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(10_800)
    });
    let ext_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let int_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let mut external: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|a| v4(a))
        .collect();
    let lb = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref());
    external.extend(
        lb.iter()
            .copied()
            .flatten()
            .filter_map(|i| i.ip.as_deref().and_then(v4)),
    );
    external.sort();
    external.dedup();
    for sp in spec.ports.iter().flatten() {
        let Some(proto) = proto_of(sp.protocol.as_deref()) else {
            piece.warnings.push(format!(
                "service {ns}/{name}: protocol {:?} left out",
                sp.protocol
            ));
            continue;
        };
        let Some(port) = port_u16(sp.port) else {
            continue;
        };
        let port_name = sp.name.as_deref().unwrap_or_default();
        let node_port = sp.node_port.and_then(port_u16);
        let eps = endpoints_for(slices, port_name, proto);
        let cluster = select_endpoints(&eps, None);
        let local = select_endpoints(&eps, Some(&node.name));
        let ip_key = |addr: Ipv4Addr| SvcKey {
            addr: Some(addr),
            proto,
            port,
        };
        let np_key = |np: u16| SvcKey {
            addr: None,
            proto,
            port: np,
        };
        if cluster.is_empty() {
            let addresses = std::iter::once(&cluster_ip).chain(&external);
            let keys = addresses.map(|a| ip_key(*a)).chain(node_port.map(np_key));
            for key in keys {
                piece.ops.push(Op::NoEndpoint { key, reject: true });
            }
            continue;
        }
        let has_external = !external.is_empty() || node_port.is_some();
        // sessionAffinity ClientIP: per-service chains, svc over every
        // endpoint, svl over this node's (traffic policies Local).
        let (svc_chain, svl_chain) = match affinity {
            None => (None, None),
            Some(timeout) => {
                let label = if port_name.is_empty() {
                    port.to_string()
                } else {
                    port_name.to_string()
                };
                let svc = owners.chain_name("svc", ns, name, &label, proto);
                let svl = owners.chain_name("svl", ns, name, &label, proto);
                let svc_rules = (!int_local || has_external)
                    .then(|| piece.affinity_rules(&svc, &cluster, proto, timeout));
                let svl_rules = (!local.is_empty() && (int_local || (ext_local && has_external)))
                    .then(|| piece.affinity_rules(&svl, &local, proto, timeout));
                (
                    Some(piece.affinity_chain(svc, svc_rules)),
                    Some(piece.affinity_chain(svl, svl_rules)),
                )
            }
        };
        let all = piece.target(&cluster, false, svc_chain);
        let here = piece.target(&local, true, svl_chain);
        // ClusterIP.
        let key = ip_key(cluster_ip);
        if int_local && local.is_empty() {
            // Endpoints exist, none here: drop, as kube-proxy does.
            piece.ops.push(Op::NoEndpoint { key, reject: false });
        } else {
            let target = if int_local { here } else { all };
            piece.ops.push(Op::ClusterIp { key, target });
        }
        // External addresses: every endpoint for pods and this node (and
        // everyone with eTP Cluster, marked); eTP Local from outside: this
        // node's endpoints, unmarked.
        let keys = external
            .iter()
            .map(|a| ip_key(*a))
            .chain(node_port.map(np_key));
        for key in keys {
            piece.ops.push(Op::External {
                key,
                all,
                local: ext_local.then_some(here),
            });
        }
    }
    piece.endpoints.shrink_to_fit();
    piece.ops.shrink_to_fit();
    piece
}
