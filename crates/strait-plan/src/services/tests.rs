use super::*;
use crate::nft::Family;
use strait_model::k8s::api::core::v1::{ServicePort, ServiceSpec};
use strait_model::k8s::api::discovery::v1::{
    Endpoint as SliceEndpoint, EndpointConditions, EndpointPort, EndpointSlice,
};
use strait_model::parse_manifests;

fn ep(
    ip: &str,
    node: &'static str,
    ready: bool,
    serving: bool,
    terminating: bool,
) -> Endpoint<'static> {
    Endpoint {
        ip: ip.parse().unwrap(),
        port: 80,
        node: Some(node),
        ready,
        serving,
        terminating,
    }
}

fn addrs(v: &[(Ipv4Addr, u16)]) -> Vec<String> {
    v.iter().map(|(ip, _)| ip.to_string()).collect()
}

#[test]
fn ready_endpoints_first() {
    let all = [
        ep("10.0.0.3", "b", true, true, false),
        ep("10.0.0.1", "a", true, true, false),
        ep("10.0.0.2", "a", false, true, true),
    ];
    assert_eq!(
        addrs(&select_endpoints(&all, None)),
        ["10.0.0.1", "10.0.0.3"]
    );
    assert_eq!(addrs(&select_endpoints(&all, Some("a"))), ["10.0.0.1"]);
}

#[test]
fn serving_terminating_when_none_is_ready() {
    let all = [
        ep("10.0.0.1", "a", false, true, true),
        ep("10.0.0.2", "b", false, false, true),
        // Not ready, serving, not terminating (starting up): never used.
        ep("10.0.0.3", "a", false, true, false),
    ];
    assert_eq!(addrs(&select_endpoints(&all, None)), ["10.0.0.1"]);
    assert_eq!(addrs(&select_endpoints(&all, Some("a"))), ["10.0.0.1"]);
    assert!(select_endpoints(&all, Some("b")).is_empty());
    // A ready endpoint elsewhere does not help the local selection, and the
    // local fallback is to local terminating endpoints.
    let mixed = [
        ep("10.0.0.1", "a", false, true, true),
        ep("10.0.0.2", "b", true, true, false),
    ];
    assert_eq!(addrs(&select_endpoints(&mixed, None)), ["10.0.0.2"]);
    assert_eq!(addrs(&select_endpoints(&mixed, Some("a"))), ["10.0.0.1"]);
}

#[test]
fn duplicate_endpoints_collapse_and_nodeless_ones_are_not_local() {
    let mut nodeless = ep("10.0.0.9", "x", true, true, false);
    nodeless.node = None;
    let all = [
        ep("10.0.0.1", "a", true, true, false),
        ep("10.0.0.1", "a", true, true, false),
        nodeless,
    ];
    assert_eq!(select_endpoints(&all, None).len(), 2);
    assert_eq!(addrs(&select_endpoints(&all, Some("a"))), ["10.0.0.1"]);
    assert!(select_endpoints(&[], None).is_empty());
}

#[test]
fn chain_names() {
    assert_eq!(
        service_chain_name("svc", "default", "web", "http", L4Proto::Tcp),
        "svc-default-web-http-tcp"
    );
    assert_eq!(
        service_chain_name("ext", "ns", "dns", "53", L4Proto::Udp),
        "ext-ns-dns-53-udp"
    );
    assert_eq!(
        endpoint_chain_name("10.42.1.5".parse().unwrap(), 8080, L4Proto::Sctp),
        "sep-10.42.1.5-8080-sctp"
    );
    // Characters nft names cannot hold are replaced.
    assert_eq!(
        service_chain_name("svc", "a", "b/c", "p", L4Proto::Tcp),
        "svc-a-b_c-p-tcp"
    );
    // Too long: cut, plus a stable hash of the whole identity.
    let ns = "a".repeat(63);
    let long1 = service_chain_name("svc", &ns, "service-one", "http", L4Proto::Tcp);
    let long2 = service_chain_name("svc", &ns, "service-two", "http", L4Proto::Tcp);
    assert_eq!(long1.len(), MAX_CHAIN_NAME);
    assert_ne!(long1, long2);
    assert!(long1.starts_with("svc-aaaa"));
    assert_eq!(
        long1,
        service_chain_name("svc", &ns, "service-one", "http", L4Proto::Tcp)
    );
    assert_eq!(fnv1a(""), 0x811c_9dc5);
    assert_eq!(fnv1a("a"), 0xe40c_292c);
}

fn table_for(manifests: &str) -> (Table, Vec<String>) {
    table_from(&Snapshot::from_objects(
        parse_manifests(manifests, "test").unwrap(),
    ))
}

/// The egress and service rules of node-1 (pods 10.42.1.0/24), validated.
fn table_from(snap: &Snapshot) -> (Table, Vec<String>) {
    let cfg = strait_model::AgentConfig::from_yaml(
        "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\n",
    )
    .unwrap();
    let mut t = Table::new(Family::Inet, "strait");
    let mut warnings = Vec::new();
    crate::egress::add_to_table(&cfg, "10.42.0.0/16".parse().unwrap(), &mut t, &mut warnings);
    let cidr = "10.43.0.0/16".parse().unwrap();
    add_to_table(
        Some(cidr),
        "node-1",
        &["10.42.1.0/24".parse().unwrap()],
        snap,
        &mut t,
        &mut warnings,
        &mut ServiceCache::default(),
    );
    t.validate().unwrap();
    (t, warnings)
}

/// A ClusterIP outside the configured service CIDR (a cluster with a second
/// ServiceCIDR) is treated as part of it: off-cluster clients marked,
/// unused ports rejected, and a route onto the bridge for node processes.
#[test]
fn cluster_ips_outside_the_service_cidr_join_it() {
    let manifests = WEB.replace("10.43.0.10", "10.96.0.10");
    let (t, _) = table_for(&manifests);
    let set = t
        .sets
        .iter()
        .find(|s| s.name == SERVICE_ADDRESSES_SET)
        .unwrap();
    assert_eq!(
        set.elements,
        vec![
            "10.43.0.0/16".parse().unwrap(),
            "10.96.0.10/32".parse().unwrap()
        ]
    );
    let snap = Snapshot::from_objects(parse_manifests(&manifests, "test").unwrap());
    let cfg = strait_model::AgentConfig::from_yaml(
        "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\n",
    )
    .unwrap();
    let cidr = Some("10.43.0.0/16".parse().unwrap());
    let outside = |snap: &Snapshot| {
        let mut t = Table::new(Family::Inet, "strait");
        add_to_table(
            cidr,
            "node-1",
            &[],
            snap,
            &mut t,
            &mut Vec::new(),
            &mut ServiceCache::default(),
        )
    };
    let routes = outside_cluster_ip_routes(&cfg, &outside(&snap));
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].dst, "10.96.0.10/32".parse().unwrap());
    assert_eq!(routes[0].dev.as_deref(), Some(cfg.bridge.as_str()));
    // Inside the CIDR: no extra element, no extra route.
    let inside = Snapshot::from_objects(parse_manifests(WEB, "test").unwrap());
    assert!(outside_cluster_ip_routes(&cfg, &outside(&inside)).is_empty());
}

const WEB: &str = "
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.43.0.10
  sessionAffinity: ClientIP
  ports: [{name: http, port: 80, targetPort: web}, {name: admin, port: 81}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-a
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
  - {addresses: [10.42.2.5], nodeName: node-2}
";

#[test]
fn pod_to_remote_endpoint_is_not_marked() {
    let (t, warnings) = table_for(WEB);
    // The ClusterIP path (services -> svc -> sep) sets no mark; only an
    // endpoint reaching itself (hairpin set, checked in postrouting on the
    // DNATed destination) is masqueraded.
    let svc = t.chain("svc-default-web-http-tcp").unwrap();
    assert!(svc.rules.iter().all(|r| r.statements.is_empty()));
    let sep = t.chain("sep-10.42.2.5-8080-tcp").unwrap();
    assert_eq!(sep.rules.len(), 1);
    assert!(sep.rules[0].statements.is_empty());
    // 10.42.2.5 lives on node-2: a pod can only hairpin on its own node, so
    // node-1's hairpin set does not hold it.
    let ep = Key::Ipv4("10.42.2.5".parse().unwrap());
    let hairpin = t
        .concat_sets
        .iter()
        .find(|s| s.name == HAIRPIN_SET)
        .unwrap();
    assert!(
        !hairpin.elements.contains(&smallvec::smallvec![ep, ep]),
        "{:?}",
        hairpin.elements
    );
    // The slice has no "admin" port: no endpoints, rejected.
    let no_ep = t.map(NO_ENDPOINT_SERVICES_MAP).unwrap();
    assert_eq!(no_ep.elements.len(), 1);
    assert_eq!(no_ep.elements[0].0[2], Key::Port(81));
    // sessionAffinity ClientIP is compiled, not warned about: a dynamic set
    // per endpoint, checked before the random choice.
    assert!(
        !warnings.iter().any(|w| w.contains("sessionAffinity")),
        "{warnings:?}"
    );
    let aff = t
        .sets
        .iter()
        .find(|s| s.name == "svc-default-web-http-tcp-aff0")
        .expect("affinity set");
    assert!(aff.timeout.is_some_and(|t| t > 0));
    assert!(
        matches!(&svc.rules[0].matches[0], Match::SaddrIn { addrs: Addrs::Set(n), .. } if n == &aff.name)
    );
    // Masquerade of marked traffic comes before every egress rule.
    let post = t.chain(POSTROUTING_CHAIN).unwrap();
    assert_eq!(
        post.rules[0].matches,
        vec![Match::Mark {
            mask: MASQUERADE_MARK,
            value: MASQUERADE_MARK
        }]
    );
    assert_eq!(
        post.rules[1].matches,
        vec![Match::ConcatIn {
            key: vec![KeyExpr::Ipv4Saddr, KeyExpr::Ipv4Daddr],
            set: HAIRPIN_SET.into(),
        }]
    );
    // INVALID is dropped in a chain of its own before the egress forward chain.
    let ff = t.chain("filter-forward").unwrap();
    assert_eq!(ff.rules[0].verdict, Verdict::Drop);
    assert!(ff.base.unwrap().priority < crate::egress::PRIORITY_FILTER);
}

/// Off-cluster clients of a ClusterIP are marked only after pods and this
/// node have gone to dispatch; what is still addressed into the service
/// CIDR after DNAT is rejected, checked in prerouting (after DNAT, before
/// routing) and output.
#[test]
fn off_cluster_masquerade_and_service_cidr_reject() {
    let (t, _) = table_for(WEB);
    let cidr = Match::DaddrIn {
        family: IpFamily::V4,
        addrs: Addrs::Set(SERVICE_ADDRESSES_SET.into()),
        negate: false,
    };
    let set = t
        .sets
        .iter()
        .find(|s| s.name == SERVICE_ADDRESSES_SET)
        .unwrap();
    assert_eq!(set.elements, vec!["10.43.0.0/16".parse().unwrap()]);
    let services = t.chain(SERVICES_CHAIN).unwrap();
    let marked = services
        .rules
        .iter()
        .position(|r| r.matches == vec![cidr.clone()])
        .expect("a service CIDR mark rule");
    assert_eq!(services.rules[marked].statements, vec![mark()]);
    let last_dispatch_for_known_sources = services
        .rules
        .iter()
        .rposition(|r| {
            r.verdict == Verdict::Goto(SERVICE_DISPATCH_CHAIN.into()) && !r.matches.is_empty()
        })
        .unwrap();
    assert!(marked > last_dispatch_for_known_sources);
    let check = t.chain(ENDPOINTS_CHECK_CHAIN).unwrap();
    let last = check.rules.last().unwrap();
    assert_eq!(last.matches, vec![cidr]);
    assert_eq!(last.verdict, Verdict::Goto(REJECT_CHAIN.into()));
    for (name, hook, priority) in [
        ("filter-prerouting", Hook::Prerouting, PRIORITY_POST_DNAT),
        ("filter-output", Hook::Output, PRIORITY_SERVICE_FILTER),
    ] {
        let chain = t.chain(name).unwrap();
        let base = chain.base.unwrap();
        assert_eq!((base.hook, base.priority), (hook, priority));
        assert!(
            base.priority > PRIORITY_DSTNAT,
            "{name} must run after DNAT"
        );
        assert_eq!(
            chain.rules.last().unwrap().verdict,
            Verdict::Jump(ENDPOINTS_CHECK_CHAIN.into())
        );
    }
    // Without an IPv4 service CIDR the set holds the ClusterIPs themselves:
    // unused ports of a known ClusterIP are still refused.
    let cfg = strait_model::AgentConfig::from_yaml(
        "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\n",
    )
    .unwrap();
    let mut t = Table::new(Family::Inet, "strait");
    let mut w = Vec::new();
    crate::egress::add_to_table(&cfg, "10.42.0.0/16".parse().unwrap(), &mut t, &mut w);
    let snap = Snapshot::from_objects(parse_manifests(WEB, "test").unwrap());
    add_to_table(
        None,
        "node-1",
        &[],
        &snap,
        &mut t,
        &mut w,
        &mut ServiceCache::default(),
    );
    let set = t
        .sets
        .iter()
        .find(|s| s.name == SERVICE_ADDRESSES_SET)
        .unwrap();
    assert_eq!(set.elements, vec!["10.43.0.10/32".parse().unwrap()]);
    let check = t.chain(ENDPOINTS_CHECK_CHAIN).unwrap();
    assert_eq!(
        check.rules.last().unwrap().verdict,
        Verdict::Goto(REJECT_CHAIN.into())
    );
}

#[test]
fn nothing_without_services_or_with_headless_only() {
    let egress_only = table_for("").0;
    assert!(egress_only.maps.is_empty());
    let headless = table_for(
        "
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec: {clusterIP: None, ports: [{port: 5432}]}
",
    )
    .0;
    assert_eq!(headless, egress_only);
}

#[test]
fn an_address_claimed_twice_keeps_the_first_and_ipv6_is_left_out() {
    let (t, warnings) = table_for(
        "
apiVersion: v1
kind: Service
metadata: {name: a, namespace: default}
spec: {clusterIP: 10.43.0.1, externalIPs: [192.168.1.1], ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: default}
spec: {clusterIP: 10.43.0.2, externalIPs: [192.168.1.1], ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: c, namespace: default}
spec: {clusterIP: 'fd00::1', ports: [{port: 80}]}
",
    );
    let no_ep = t.map(NO_ENDPOINT_SERVICES_MAP).unwrap();
    assert_eq!(no_ep.elements.len(), 3);
    assert!(warnings.iter().any(|w| w.contains("default/c")));
}

fn big_snapshot(services: usize, endpoints: usize) -> Snapshot {
    let mut snap = Snapshot::default();
    for s in 0..services {
        let name = format!("svc-{s}");
        let mut svc = Service::default();
        svc.metadata.name = Some(name.clone());
        svc.metadata.namespace = Some("bench".into());
        let ip = Ipv4Addr::from(0x0a2b_0000 + s as u32 + 1);
        svc.spec = Some(ServiceSpec {
            cluster_ip: Some(ip.to_string()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        });
        snap.services.push(svc.into());
        let mut slice = EndpointSlice {
            address_type: "IPv4".into(),
            ..Default::default()
        };
        slice.metadata.name = Some(format!("{name}-1"));
        slice.metadata.namespace = Some("bench".into());
        slice.metadata.labels = Some(
            [(SERVICE_NAME_LABEL.to_string(), name.clone())]
                .into_iter()
                .collect(),
        );
        slice.ports = Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(8080),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]);
        slice.endpoints = (0..endpoints)
            .map(|e| SliceEndpoint {
                addresses: vec![
                    Ipv4Addr::from(0x0a2a_0000 + (s * endpoints + e) as u32 + 2).to_string()
                ],
                node_name: Some(format!("node-{}", e % 3)),
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        snap.endpoint_slices
            .push(strait_model::Slice::from_k8s(slice).into());
    }
    snap
}

fn big_table(services: usize, endpoints: usize) -> Table {
    let (t, warnings) = table_from(&big_snapshot(services, endpoints));
    assert!(warnings.is_empty());
    t
}

/// 10,000 services x 10 endpoints: the compile stays linear (the test
/// suite would crawl otherwise), and the kernel objects (sets, maps,
/// chains, rules) depend on the distinct endpoint counts, not on the number
/// of services: the same table shape as for 100 services, only more
/// elements. Counts checked, nothing timed.
#[test]
fn ten_thousand_services() {
    let t = big_table(10_000, 10);
    let small = big_table(100, 10);
    let rules = |t: &Table| t.chains.iter().map(|c| c.rules.len()).sum::<usize>();
    assert_eq!(t.sets.len(), small.sets.len());
    assert_eq!(t.concat_sets.len(), small.concat_sets.len());
    assert_eq!(t.maps.len(), small.maps.len());
    assert_eq!(t.chains.len(), small.chains.len());
    assert_eq!(rules(&t), rules(&small));
    // Six service maps plus one group map (every service has 10 endpoints).
    assert_eq!(t.maps.len(), 7);
    assert_eq!(t.map(SERVICE_IPS_MAP).unwrap().elements.len(), 10_000);
    assert!(t.map(NO_ENDPOINT_SERVICES_MAP).unwrap().elements.is_empty());
    let eps = t.map("eps-n10").unwrap();
    assert_eq!(eps.elements.len(), 100_000);
    assert_eq!(eps.key.last(), Some(&KeyType::Numgen(10)));
    // Hairpin entries only for this node's pods (10.42.1.0/24), not for
    // every endpoint in the cluster.
    let hairpin = t
        .concat_sets
        .iter()
        .find(|s| s.name == HAIRPIN_SET)
        .unwrap();
    assert!(hairpin.elements.len() <= 256, "{}", hairpin.elements.len());
    assert!(hairpin
        .elements
        .iter()
        .all(|e| matches!(e[0], Key::Ipv4(ip) if ip.octets()[2] == 1)));
    let count = |p: &str| t.chains.iter().filter(|c| c.name.starts_with(p)).count();
    assert_eq!(count("svc-") + count("sep-"), 0);
    assert_eq!(count("lb-"), 1);
    let lb = t.chain("lb-n10").unwrap();
    assert!(matches!(&lb.rules[..], [r] if matches!(&r.verdict,
        Verdict::DnatMap { key, map } if map == "eps-n10" && key.last() == Some(&KeyExpr::Numgen(10)))));
    // Each big map or set is referenced by exactly one rule.
    let text = crate::nft::render(&t);
    assert_eq!(text.matches("dnat ip to").count(), 1);
    for name in ["@eps-n10", "@service-ips", "@hairpin"] {
        assert_eq!(text.matches(name).count(), 1, "{name}");
    }
}

#[test]
fn names_that_read_the_same_get_a_hash() {
    let svc = |ns: &str, name: &str, ip: &str, ep: &str| {
        format!(
            "
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec: {{clusterIP: {ip}, sessionAffinity: ClientIP, ports: [{{port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  namespace: {ns}
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{port: 80}}]
endpoints: [{{addresses: [{ep}]}}]
---"
        )
    };
    let text =
        svc("a-b", "c", "10.43.0.1", "10.42.1.1") + &svc("a", "b-c", "10.43.0.2", "10.42.1.2");
    let (t, _) = table_for(&text);
    let ips = t.map(SERVICE_IPS_MAP).unwrap();
    let target = |ip: &str| {
        ips.elements
            .iter()
            .find(|(k, _)| k[0] == Key::Ipv4(ip.parse().unwrap()))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    // Only sessionAffinity services have chains of their own.
    // "a" sorts before "a-b": it keeps the plain name.
    assert_eq!(
        target("10.43.0.2"),
        MapData::Verdict(Verdict::Goto("svc-a-b-c-80-tcp".into()))
    );
    let MapData::Verdict(Verdict::Goto(other)) = target("10.43.0.1") else {
        panic!("not a goto")
    };
    assert!(other.starts_with("svc-a-b-c-80-tcp-"), "{other}");
    assert_eq!(
        t.chain(&other).unwrap().rules[0].verdict,
        Verdict::Goto("sep-10.42.1.1-80-tcp".into())
    );
}

#[test]
fn an_endpoint_change_is_an_element_diff() {
    let plain = WEB.replace("  sessionAffinity: ClientIP\n", "");
    let (before, _) = table_for(&plain);
    let (after, _) = table_for(&plain.replace("10.42.2.5", "10.42.2.6"));
    let diff = crate::nft::incremental::changes(&before, &after).expect("only elements changed");
    assert!(
        diff.contains("delete element inet strait eps-n1 { 10.43.0.10 . tcp . 80 . 0 }"),
        "{diff}"
    );
    assert!(
        diff.contains(
            "add element inet strait eps-n1 { 10.43.0.10 . tcp . 80 . 0 : 10.42.2.6 . 8080 }"
        ),
        "{diff}"
    );
    assert!(
        diff.lines()
            .all(|l| l.starts_with("delete element ") || l.starts_with("add element ")),
        "{diff}"
    );
    // Nothing changed: an empty diff.
    assert_eq!(
        crate::nft::incremental::changes(&before, &before).as_deref(),
        Some("")
    );
    // Affinity services own chains: a change there is not an element diff.
    let (a1, _) = table_for(WEB);
    let (a2, _) = table_for(&WEB.replace("10.42.2.5", "10.42.2.6"));
    assert!(crate::nft::incremental::changes(&a1, &a2).is_none());
}

/// A Service whose endpoint count moves it to a group no other Service is
/// in: the new group's map and chain are added and the emptied group's are
/// removed in the same incremental transaction, no rewrite.
#[test]
fn moving_to_a_new_group_is_incremental() {
    let plain = WEB.replace("  sessionAffinity: ClientIP\n", "");
    let (before, _) = table_for(&plain);
    assert!(before.map("eps-n1").is_some() && before.map("eps-n2").is_none());
    let two = plain.replace(
        "  - {addresses: [10.42.2.5], nodeName: node-2}\n",
        "  - {addresses: [10.42.2.5], nodeName: node-2}\n  - {addresses: [10.42.2.6], nodeName: node-2}\n",
    );
    assert_ne!(
        two, plain,
        "fixture changed: the test no longer adds an endpoint"
    );
    let (after, _) = table_for(&two);
    assert!(after.map("eps-n2").is_some() && after.map("eps-n1").is_none());
    let text = crate::nft::incremental::changes(&before, &after).expect("incremental");
    for needle in [
        "map eps-n2 {",
        "chain lb-n2 {",
        "goto lb-n2",
        "delete chain inet strait lb-n1",
        "delete map inet strait eps-n1",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in\n{text}");
    }
}
