//! [`Built`] into the table: the maps, sets and chains of the service
//! proxy.

use super::*;

pub(super) fn emit(built: Built, table: &mut Table) {
    // The service CIDR and the ClusterIPs outside it, as one set.
    let service_addresses: Vec<ipnet::IpNet> = built
        .service_cidr
        .into_iter()
        .chain(
            built
                .outside_cidr
                .iter()
                .map(|ip| ipnet::Ipv4Net::from(*ip)),
        )
        .map(ipnet::IpNet::V4)
        .collect();
    let has_service_addresses = !service_addresses.is_empty();
    if has_service_addresses {
        table.sets.push(Set {
            name: SERVICE_ADDRESSES_SET.to_string(),
            kind: SetKind::Ipv4Addr,
            interval: true,
            elements: service_addresses,
            comment: Some("service CIDR and ClusterIPs outside it".to_string()),
            timeout: None,
        });
    }
    let addr_type = [KeyType::Ipv4Addr, KeyType::InetProto, KeyType::InetService];
    let port_type = [KeyType::InetProto, KeyType::InetService];
    table.maps.extend([
        map(
            SERVICE_IPS_MAP,
            &addr_type,
            built.service_ips,
            "service addresses",
        ),
        map(
            SERVICE_NODEPORTS_MAP,
            &port_type,
            built.nodeports,
            "NodePorts",
        ),
        map(
            EXTERNAL_LOCAL_IPS_MAP,
            &addr_type,
            built.ext_local_ips,
            "externalTrafficPolicy Local addresses, from outside",
        ),
        map(
            EXTERNAL_LOCAL_NODEPORTS_MAP,
            &port_type,
            built.ext_local_nodeports,
            "externalTrafficPolicy Local NodePorts, from outside",
        ),
        map(
            NO_ENDPOINT_SERVICES_MAP,
            &addr_type,
            unique(built.no_ep_ips),
            "service addresses without endpoints",
        ),
        map(
            NO_ENDPOINT_NODEPORTS_MAP,
            &port_type,
            unique(built.no_ep_nodeports),
            "NodePorts without endpoints",
        ),
    ]);
    let mut group_chains = Vec::new();
    for (group, (_, elements)) in built.groups {
        let mut key: Vec<KeyType> = group.key_exprs().iter().map(|k| k.key_type()).collect();
        key.truncate(key.len() - 1);
        key.push(KeyType::Numgen(group.n));
        let comment = format!(
            "{}: {} {}endpoint{} each",
            if group.nodeport {
                "NodePorts"
            } else {
                "service addresses"
            },
            group.n,
            if group.local { "local " } else { "" },
            if group.n == 1 { "" } else { "s" }
        );
        table.maps.push(Map {
            interval: false,
            name: group.map_name(),
            key,
            value: MapValue::Ipv4AddrPort,
            elements,
            comment: Some(comment),
        });
        group_chains.push(regular(
            group.chain_name(),
            vec![Rule::uncounted(
                vec![],
                vec![],
                Verdict::DnatMap {
                    key: group.key_exprs(),
                    map: group.map_name(),
                },
                None,
            )],
        ));
    }
    let v4 = KeyType::Ipv4Addr;
    table.concat_sets.extend([
        concat_set(
            HAIRPIN_SET,
            &[v4, v4],
            built
                .hairpin
                .iter()
                .map(|ip| smallvec::smallvec![Key::Ipv4(*ip), Key::Ipv4(*ip)])
                .collect(),
            "endpoint . endpoint: an endpoint reaching itself through a service",
        ),
        concat_set(
            MASQ_IPS_SET,
            &addr_type,
            built.masq_ips,
            "externalTrafficPolicy Cluster addresses",
        ),
        concat_set(
            MASQ_NODEPORTS_SET,
            &port_type,
            built.masq_nodeports,
            "externalTrafficPolicy Cluster NodePorts",
        ),
        concat_set(
            NODE_MASQ_IPS_SET,
            &addr_type,
            built.node_masq_ips,
            "externalTrafficPolicy Local addresses",
        ),
        concat_set(
            NODE_MASQ_NODEPORTS_SET,
            &port_type,
            built.node_masq_nodeports,
            "externalTrafficPolicy Local NodePorts",
        ),
    ]);

    // Marked traffic, and an endpoint reaching itself through a service
    // (postrouting sees the DNATed destination), are masqueraded before any
    // egress rule decides.
    if let Some(post) = table
        .chains
        .iter_mut()
        .find(|c| c.name == POSTROUTING_CHAIN)
    {
        post.rules.splice(
            0..0,
            [
                Rule {
                    matches: vec![Match::Mark {
                        mask: MASQUERADE_MARK,
                        value: MASQUERADE_MARK,
                    }],
                    statements: vec![],
                    verdict: Verdict::Masquerade { fully_random: true },
                    counter: true,
                    comment: Some("service traffic marked for masquerade".to_string()),
                },
                Rule {
                    matches: vec![Match::ConcatIn {
                        key: vec![KeyExpr::Ipv4Saddr, KeyExpr::Ipv4Daddr],
                        set: HAIRPIN_SET.to_string(),
                    }],
                    statements: vec![],
                    verdict: Verdict::Masquerade { fully_random: true },
                    counter: true,
                    comment: Some("hairpin".to_string()),
                },
            ],
        );
    }

    let check = || {
        Rule::uncounted(
            vec![Match::CtState(vec![CtState::New])],
            vec![],
            Verdict::Jump(ENDPOINTS_CHECK_CHAIN.to_string()),
            None,
        )
    };
    let invalid = Rule::uncounted(
        vec![Match::CtState(vec![CtState::Invalid])],
        vec![],
        Verdict::Drop,
        Some("invalid packets would leave un-NATed"),
    );
    let to_services = || {
        Rule::uncounted(
            vec![],
            vec![],
            Verdict::Jump(SERVICES_CHAIN.to_string()),
            None,
        )
    };
    let dispatch = |matches: Vec<Match>, comment: Option<&str>| {
        Rule::uncounted(
            matches,
            vec![],
            Verdict::Goto(SERVICE_DISPATCH_CHAIN.to_string()),
            comment,
        )
    };
    let this_node = || Match::FibLocal(FibAddr::Saddr);
    let node_to_nodeport = || {
        let mut m = vec![this_node()];
        m.extend(nodeport_matches());
        m
    };
    table.chains.extend([
        base(
            "nat-prerouting",
            ChainType::Nat,
            Hook::Prerouting,
            PRIORITY_DSTNAT,
            vec![to_services()],
        ),
        base(
            "nat-output",
            ChainType::Nat,
            Hook::Output,
            PRIORITY_DSTNAT,
            vec![to_services()],
        ),
        // After DNAT (so only what no Service port took is left) and
        // before routing: a packet routed back out the bridge it came from
        // gets an ICMP redirect first, which spends the peer's ICMP rate
        // token and silences the port-unreachable that follows.
        base(
            "filter-prerouting",
            ChainType::Filter,
            Hook::Prerouting,
            PRIORITY_POST_DNAT,
            vec![check()],
        ),
        base(
            "filter-forward",
            ChainType::Filter,
            Hook::Forward,
            PRIORITY_SERVICE_FILTER,
            vec![invalid],
        ),
        base(
            "filter-output",
            ChainType::Filter,
            Hook::Output,
            PRIORITY_SERVICE_FILTER,
            vec![check()],
        ),
        regular(
            SERVICES_CHAIN.to_string(),
            vec![
                mark_if(
                    vec![],
                    &ADDR_KEY,
                    MASQ_IPS_SET,
                    "externalTrafficPolicy Cluster",
                ),
                mark_if(
                    nodeport_matches(),
                    &PORT_KEY,
                    MASQ_NODEPORTS_SET,
                    "externalTrafficPolicy Cluster",
                ),
                mark_if(
                    vec![this_node()],
                    &ADDR_KEY,
                    NODE_MASQ_IPS_SET,
                    "this node to externalTrafficPolicy Local",
                ),
                mark_if(
                    node_to_nodeport(),
                    &PORT_KEY,
                    NODE_MASQ_NODEPORTS_SET,
                    "this node to externalTrafficPolicy Local",
                ),
                dispatch(
                    vec![Match::SaddrIn {
                        family: IpFamily::V4,
                        addrs: Addrs::Set(CLUSTER_SET.to_string()),
                        negate: false,
                    }],
                    Some("pods reach every endpoint"),
                ),
                dispatch(vec![this_node()], Some("this node reaches every endpoint")),
            ]
            .into_iter()
            .chain(has_service_addresses.then(|| {
                // The endpoint's reply must come back through this node
                // to be un-DNATed (kube-proxy marks the same traffic).
                Rule::uncounted(
                    vec![to_service_addresses()],
                    vec![mark()],
                    Verdict::Continue,
                    Some("from outside the cluster to a ClusterIP"),
                )
            }))
            .chain([
                Rule::uncounted(
                    vec![],
                    vec![],
                    vmap(&ADDR_KEY, EXTERNAL_LOCAL_IPS_MAP),
                    None,
                ),
                Rule::uncounted(
                    nodeport_matches(),
                    vec![],
                    vmap(&PORT_KEY, EXTERNAL_LOCAL_NODEPORTS_MAP),
                    None,
                ),
                dispatch(vec![], None),
            ])
            .collect(),
        ),
        regular(
            SERVICE_DISPATCH_CHAIN.to_string(),
            vec![
                Rule::uncounted(vec![], vec![], vmap(&ADDR_KEY, SERVICE_IPS_MAP), None),
                Rule::uncounted(
                    nodeport_matches(),
                    vec![],
                    vmap(&PORT_KEY, SERVICE_NODEPORTS_MAP),
                    None,
                ),
            ],
        ),
        regular(
            ENDPOINTS_CHECK_CHAIN.to_string(),
            vec![
                Rule::uncounted(
                    vec![],
                    vec![],
                    vmap(&ADDR_KEY, NO_ENDPOINT_SERVICES_MAP),
                    None,
                ),
                Rule::uncounted(
                    nodeport_matches(),
                    vec![],
                    vmap(&PORT_KEY, NO_ENDPOINT_NODEPORTS_MAP),
                    None,
                ),
            ]
            .into_iter()
            .chain(has_service_addresses.then(|| {
                // Runs after DNAT: a Service port's traffic has left the
                // service CIDR by now; what is still in it has no Service.
                Rule::uncounted(
                    vec![to_service_addresses()],
                    vec![],
                    Verdict::Goto(REJECT_CHAIN.to_string()),
                    Some("service CIDR address or port no Service has"),
                )
            }))
            .collect(),
        ),
        regular(
            REJECT_CHAIN.to_string(),
            vec![
                Rule::uncounted(
                    vec![Match::L4Proto(L4Proto::Tcp)],
                    vec![],
                    Verdict::Reject(RejectWith::TcpReset),
                    None,
                ),
                Rule::uncounted(
                    vec![],
                    vec![],
                    Verdict::Reject(RejectWith::PortUnreachable),
                    None,
                ),
            ],
        ),
    ]);
    table.chains.extend(group_chains);
    table.sets.extend(built.sets);
    table.chains.extend(built.chains.into_values());
    table
        .chains
        .extend(built.endpoints.into_iter().map(|(ip, port, proto)| {
            regular(
                endpoint_chain_name(ip, port, proto),
                vec![Rule::uncounted(
                    vec![Match::L4Proto(proto)],
                    vec![],
                    Verdict::Dnat {
                        addr: ip,
                        port: Some(port),
                    },
                    None,
                )],
            )
        }));
}

fn to_service_addresses() -> Match {
    Match::DaddrIn {
        family: IpFamily::V4,
        addrs: Addrs::Set(SERVICE_ADDRESSES_SET.to_string()),
        negate: false,
    }
}
