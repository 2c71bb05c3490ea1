//! One Service: its ClusterIP, external addresses and NodePorts, each
//! port with its endpoint views, added to [`Built`].

use super::*;

/// One service; false when it has no ClusterIP (headless, ExternalName).
pub(super) fn add_service(
    local_node: &str,
    ns: &str,
    name: &str,
    svc: &Service,
    slices: &[&Slice],
    built: &mut Built,
    warnings: &mut Vec<String>,
) -> bool {
    let Some(spec) = &svc.spec else { return false };
    let Some(cluster_ip) = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
    else {
        return false;
    };
    let Some(cluster_ip) = v4(cluster_ip) else {
        warnings.push(format!("service {ns}/{name}: clusterIP {cluster_ip} left out: IPv6 services are not supported yet"));
        return false;
    };
    if !built.service_cidr.is_some_and(|c| c.contains(&cluster_ip)) {
        built.outside_cidr.insert(cluster_ip);
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
            warnings.push(format!(
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
        let local = select_endpoints(&eps, Some(local_node));
        let ip_key = |addr: Ipv4Addr| -> KeyVec {
            smallvec::smallvec![Key::Ipv4(addr), Key::Proto(proto), Key::Port(port)]
        };
        if cluster.is_empty() {
            let reject = Verdict::Goto(REJECT_CHAIN.to_string());
            built.no_ep_ips.push((ip_key(cluster_ip), reject.clone()));
            for a in &external {
                built.no_ep_ips.push((ip_key(*a), reject.clone()));
            }
            if let Some(np) = node_port {
                built.no_ep_nodeports.push((
                    smallvec::smallvec![Key::Proto(proto), Key::Port(np)],
                    reject.clone(),
                ));
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
                let svc = built.chain_name("svc", ns, name, &label, proto);
                let svl = built.chain_name("svl", ns, name, &label, proto);
                if !int_local || has_external {
                    let rules = built.affinity_rules(&svc, &cluster, proto, timeout);
                    built
                        .chains
                        .insert(svc.clone(), regular(svc.clone(), rules));
                }
                if !local.is_empty() && (int_local || (ext_local && has_external)) {
                    let rules = built.affinity_rules(&svl, &local, proto, timeout);
                    built
                        .chains
                        .insert(svl.clone(), regular(svl.clone(), rules));
                }
                (Some(svc), Some(svl))
            }
        };
        let (svc_chain, svl_chain) = (svc_chain.as_deref(), svl_chain.as_deref());
        // ClusterIP.
        let key = ip_key(cluster_ip);
        if int_local && local.is_empty() {
            // Endpoints exist, none here: drop, as kube-proxy does.
            built.no_ep_ips.push((key, Verdict::Drop));
        } else if built.claimed_ips.insert(key.clone()) {
            let target = if int_local {
                built.target(&key, &local, true, svl_chain)
            } else {
                built.target(&key, &cluster, false, svc_chain)
            };
            built.service_ips.push((key, target));
        }
        // External addresses: every endpoint for pods and this node (and
        // everyone with eTP Cluster, marked); eTP Local from outside: this
        // node's endpoints, unmarked.
        let views = Views {
            cluster: &cluster,
            local: &local,
            ext_local,
            svc_chain,
            svl_chain,
        };
        for a in &external {
            built.add_external(ip_key(*a), false, &views);
        }
        if let Some(np) = node_port {
            built.add_external(
                smallvec::smallvec![Key::Proto(proto), Key::Port(np)],
                true,
                &views,
            );
        }
    }
    true
}

/// The endpoint views of one service port, for its external entries.
pub(super) struct Views<'a> {
    cluster: &'a [(Ipv4Addr, u16)],
    local: &'a [(Ipv4Addr, u16)],
    ext_local: bool,
    svc_chain: Option<&'a str>,
    svl_chain: Option<&'a str>,
}

impl Built {
    /// An external entry (an externalIP or LB address, or a NodePort when
    /// `nodeport`): every endpoint for pods and this node (and everyone
    /// with eTP Cluster, marked); with eTP Local, traffic from outside gets
    /// this node's endpoints, unmarked. The first Service to claim a key
    /// keeps it.
    pub(super) fn add_external(&mut self, key: KeyVec, nodeport: bool, v: &Views) {
        let claimed = if nodeport {
            &mut self.claimed_nodeports
        } else {
            &mut self.claimed_ips
        };
        if !claimed.insert(key.clone()) {
            return;
        }
        let all = self.target(&key, v.cluster, false, v.svc_chain);
        let local = v
            .ext_local
            .then(|| self.target(&key, v.local, true, v.svl_chain));
        let (all_list, local_list, node_masq, masq) = if nodeport {
            (
                &mut self.nodeports,
                &mut self.ext_local_nodeports,
                &mut self.node_masq_nodeports,
                &mut self.masq_nodeports,
            )
        } else {
            (
                &mut self.service_ips,
                &mut self.ext_local_ips,
                &mut self.node_masq_ips,
                &mut self.masq_ips,
            )
        };
        all_list.push((key.clone(), all));
        match local {
            Some(target) => {
                local_list.push((key.clone(), target));
                node_masq.push(key);
            }
            None => masq.push(key),
        }
    }
}
