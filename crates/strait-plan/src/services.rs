//! Services: the kube-proxy job, compiled into the `inet strait` table
//! (after kube-proxy's nftables mode).
//!
//! - Dispatch is O(1) in the number of services: chain `services` looks up
//!   `ip daddr . meta l4proto . th dport` in map `service-ips` (ClusterIPs,
//!   externalIPs, load-balancer ingress IPs) and, for local destinations,
//!   `meta l4proto . th dport` in `service-nodeports`. Base chains
//!   `nat-prerouting` (forwarded traffic) and `nat-output` (node processes,
//!   hostNetwork pods) jump to it.
//! - Per service port: `svc-...` balances over the cluster endpoints with
//!   `numgen random`, `svl-...` over this node's endpoints (traffic
//!   policies Local), `ext-...` is the entry for external addresses and
//!   NodePorts (masquerade mark for externalTrafficPolicy Cluster).
//! - Per endpoint `sep-<ip>-<port>-<proto>`: hairpin mark, then DNAT.
//! - Service addresses with no endpoints are rejected at once (maps
//!   `no-endpoint-services` / `no-endpoint-nodeports`, filter base chains at
//!   priority -10, chain `reject-chain`).
//! - Marked traffic (bit [`MASQUERADE_MARK`]) is masqueraded by the first
//!   rule of the egress postrouting chain; INVALID forwarded packets are
//!   dropped (they would leave un-NATed).
//!
//! Owns those maps and chains; nothing is emitted when the snapshot has no
//! Service with a ClusterIP, so a cluster without Services keeps the egress
//! table as it was. IPv4 only. sessionAffinity ClientIP: one dynamic set
//! per (service chain, endpoint) with the affinity timeout; a known client
//! goes straight to its endpoint, a new one is remembered on the way.

use crate::egress::{CLUSTER_SET, POSTROUTING_CHAIN};
use crate::nft::{
    Addrs, BaseChain, Chain, ChainType, CtState, FibAddr, Hook, IpFamily, Key, KeyExpr, KeyType,
    L4Proto, Map, MapValue, Match, Policy, RejectWith, Rule, Set, SetKind, Statement, Table,
    Verdict,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use strait_model::k8s::api::core::v1::Service;
use strait_model::k8s::api::discovery::v1::EndpointSlice;
use strait_model::Snapshot;

/// The mark bit that asks postrouting to masquerade.
pub const MASQUERADE_MARK: u32 = 0x4000;
pub const SERVICE_IPS_MAP: &str = "service-ips";
pub const SERVICE_NODEPORTS_MAP: &str = "service-nodeports";
pub const NO_ENDPOINT_SERVICES_MAP: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS_MAP: &str = "no-endpoint-nodeports";
pub const SERVICES_CHAIN: &str = "services";
pub const ENDPOINTS_CHECK_CHAIN: &str = "endpoints-check";
pub const REJECT_CHAIN: &str = "reject-chain";
/// nft's `dstnat` priority.
pub const PRIORITY_DSTNAT: i32 = -100;
/// Before the egress `forward` chain (priority 0).
pub const PRIORITY_SERVICE_FILTER: i32 = -10;
/// Longest per-service chain name before it is shortened with a hash.
pub const MAX_CHAIN_NAME: usize = 64;
/// The EndpointSlice label naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One endpoint of a service port, as read from an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub node: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

/// The endpoints traffic may go to (kube-proxy's rule): restricted to
/// `local_node` when given; the ready ones, or, when none is ready, the
/// serving and terminating ones. Sorted, without duplicate (ip, port).
pub fn select_endpoints(all: &[Endpoint], local_node: Option<&str>) -> Vec<(Ipv4Addr, u16)> {
    let eligible = |e: &&Endpoint| local_node.is_none_or(|n| e.node.as_deref() == Some(n));
    let mut out: Vec<(Ipv4Addr, u16)> = all
        .iter()
        .filter(eligible)
        .filter(|e| e.ready)
        .map(|e| (e.ip, e.port))
        .collect();
    if out.is_empty() {
        out = all
            .iter()
            .filter(eligible)
            .filter(|e| e.serving && e.terminating)
            .map(|e| (e.ip, e.port))
            .collect();
    }
    out.sort();
    out.dedup();
    out
}

/// FNV-1a (32 bit), written out so names stay stable across Rust releases.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// `<prefix>-<ns>-<name>-<port>-<proto>`; characters nft names cannot hold
/// become `_`; longer than [`MAX_CHAIN_NAME`]: cut, plus `-` and 8 hex
/// digits of a hash of the whole identity.
pub fn service_chain_name(
    prefix: &str,
    ns: &str,
    name: &str,
    port: &str,
    proto: L4Proto,
) -> String {
    let full = format!("{prefix}-{ns}-{name}-{port}-{}", proto.as_str());
    let clean: String = full
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.len() <= MAX_CHAIN_NAME {
        return clean;
    }
    let hash = fnv1a(&format!("{ns}/{name}/{port}/{}", proto.as_str()));
    format!("{}-{hash:08x}", &clean[..MAX_CHAIN_NAME - 9])
}

/// `sep-10.42.1.5-8080-tcp`.
pub fn endpoint_chain_name(ip: Ipv4Addr, port: u16, proto: L4Proto) -> String {
    format!("sep-{ip}-{port}-{}", proto.as_str())
}

fn proto_of(p: Option<&str>) -> Option<L4Proto> {
    match p.unwrap_or("TCP") {
        "TCP" => Some(L4Proto::Tcp),
        "UDP" => Some(L4Proto::Udp),
        "SCTP" => Some(L4Proto::Sctp),
        _ => None,
    }
}

fn port_u16(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p != 0)
}

/// Endpoints of the Service port named `port_name` with `proto`, from the
/// service's slices (each slice says the resolved port per port name).
fn endpoints_for(slices: &[&EndpointSlice], port_name: &str, proto: L4Proto) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(port) = slice.ports.iter().flatten().find_map(|p| {
            let same_name = p.name.as_deref().unwrap_or("") == port_name;
            let same_proto = proto_of(p.protocol.as_deref()) == Some(proto);
            if same_name && same_proto {
                p.port.and_then(port_u16)
            } else {
                None
            }
        }) else {
            continue;
        };
        for e in &slice.endpoints {
            let c = e.conditions.clone().unwrap_or_default();
            let ready = c.ready != Some(false);
            // kube-proxy's reading: nil ready and nil serving mean true.
            let serving = c.serving != Some(false);
            let terminating = c.terminating.unwrap_or(false);
            for a in &e.addresses {
                if let Ok(ip) = a.parse::<Ipv4Addr>() {
                    out.push(Endpoint {
                        ip,
                        port,
                        node: e.node_name.clone(),
                        ready,
                        serving,
                        terminating,
                    });
                }
            }
        }
    }
    out
}

fn rule(
    matches: Vec<Match>,
    statements: Vec<Statement>,
    verdict: Verdict,
    comment: Option<&str>,
) -> Rule {
    Rule {
        matches,
        statements,
        verdict,
        counter: false,
        comment: comment.map(str::to_string),
    }
}

fn mark() -> Statement {
    Statement::MarkOr(MASQUERADE_MARK)
}

fn balance(endpoints: &[(Ipv4Addr, u16)], proto: L4Proto) -> Verdict {
    let gotos: Vec<Verdict> = endpoints
        .iter()
        .map(|(ip, port)| Verdict::Goto(endpoint_chain_name(*ip, *port, proto)))
        .collect();
    if gotos.len() == 1 {
        gotos.into_iter().next().expect("one")
    } else {
        Verdict::NumgenVmap { targets: gotos }
    }
}

fn regular(name: String, rules: Vec<Rule>) -> Chain {
    Chain {
        name,
        base: None,
        rules,
    }
}

fn base(name: &str, kind: ChainType, hook: Hook, priority: i32, rules: Vec<Rule>) -> Chain {
    Chain {
        name: name.to_string(),
        base: Some(BaseChain {
            kind,
            hook,
            priority,
            policy: Policy::Accept,
        }),
        rules,
    }
}

fn vmap(key: &[KeyExpr], map: &str) -> Verdict {
    Verdict::VerdictMap {
        key: key.to_vec(),
        map: map.to_string(),
    }
}

/// NodePorts answer on this node's addresses, but not on 127.0.0.0/8
/// (DNAT from loopback to a pod would need route_localnet).
fn nodeport_matches() -> Vec<Match> {
    vec![
        Match::FibLocal(FibAddr::Daddr),
        Match::DaddrIn {
            family: IpFamily::V4,
            addrs: Addrs::Cidrs(vec!["127.0.0.0/8".parse().expect("a CIDR")]),
            negate: true,
        },
    ]
}

const ADDR_KEY: [KeyExpr; 3] = [KeyExpr::Ipv4Daddr, KeyExpr::L4Proto, KeyExpr::Dport];
const PORT_KEY: [KeyExpr; 2] = [KeyExpr::L4Proto, KeyExpr::Dport];

fn map(name: &str, key: &[KeyType], elements: Vec<(Vec<Key>, Verdict)>, comment: &str) -> Map {
    Map {
        name: name.to_string(),
        key: key.to_vec(),
        value: MapValue::Verdict,
        elements,
        comment: Some(comment.to_string()),
    }
}

/// What [`add_to_table`] built, before it goes into the table.
#[derive(Default)]
struct Built {
    service_ips: Vec<(Vec<Key>, Verdict)>,
    nodeports: Vec<(Vec<Key>, Verdict)>,
    no_ep_ips: Vec<(Vec<Key>, Verdict)>,
    no_ep_nodeports: Vec<(Vec<Key>, Verdict)>,
    /// Per-service chains by name (sorted output).
    chains: BTreeMap<String, Chain>,
    /// Endpoint chains to create.
    endpoints: BTreeSet<(Ipv4Addr, u16, L4Proto)>,
    /// Per-service chain name -> the identity that owns it.
    owners: HashMap<String, String>,
    /// sessionAffinity sets (client address -> endpoint, with a timeout).
    sets: Vec<Set>,
}

impl Built {
    /// The rules of a chain that spreads over `eps`. With sessionAffinity
    /// ClientIP (`affinity` = its timeout), a client seen before goes
    /// straight to the endpoint it had (a dynamic set per endpoint holds
    /// client addresses), and a new client's choice is remembered on the
    /// way to the shared endpoint chain.
    fn balanced(
        &mut self,
        chain: &str,
        eps: &[(Ipv4Addr, u16)],
        proto: L4Proto,
        affinity: Option<u32>,
    ) -> Vec<Rule> {
        let Some(timeout) = affinity else {
            return vec![rule(vec![], vec![], balance(eps, proto), None)];
        };
        let mut rules = Vec::new();
        let mut targets = Vec::new();
        for (i, (ip, port)) in eps.iter().enumerate() {
            let sep = endpoint_chain_name(*ip, *port, proto);
            let set = format!("{chain}-aff{i}");
            let remember = format!("{chain}-a{i}");
            self.sets.push(Set {
                name: set.clone(),
                kind: SetKind::Ipv4Addr,
                interval: false,
                elements: vec![],
                comment: Some(format!("sessionAffinity ClientIP: clients of {ip}:{port}")),
                timeout: Some(timeout),
            });
            rules.push(rule(
                vec![Match::SaddrIn {
                    family: IpFamily::V4,
                    addrs: Addrs::Set(set.clone()),
                    negate: false,
                }],
                vec![],
                Verdict::Goto(sep.clone()),
                None,
            ));
            self.chains.insert(
                remember.clone(),
                regular(
                    remember.clone(),
                    vec![rule(
                        vec![],
                        vec![Statement::UpdateSaddr(set)],
                        Verdict::Goto(sep),
                        None,
                    )],
                ),
            );
            targets.push(Verdict::Goto(remember));
        }
        let pick = if targets.len() == 1 {
            targets.remove(0)
        } else {
            Verdict::NumgenVmap { targets }
        };
        rules.push(rule(vec![], vec![], pick, None));
        rules
    }

    /// [`service_chain_name`], unless another service port already owns
    /// that name (`a-b`/`c` and `a`/`b-c` read the same): then the name
    /// gets a hash of this identity. Services come sorted, so the choice is
    /// stable.
    fn chain_name(
        &mut self,
        prefix: &str,
        ns: &str,
        name: &str,
        port: &str,
        proto: L4Proto,
    ) -> String {
        let plain = service_chain_name(prefix, ns, name, port, proto);
        let identity = format!("{prefix}/{ns}/{name}/{port}/{}", proto.as_str());
        match self.owners.get(&plain) {
            None => {
                self.owners.insert(plain.clone(), identity);
                plain
            }
            Some(owner) if *owner == identity => plain,
            Some(_) => {
                let cut = plain.len().min(MAX_CHAIN_NAME - 9);
                format!("{}-{:08x}", &plain[..cut], fnv1a(&identity))
            }
        }
    }
}

fn v4(s: &str) -> Option<Ipv4Addr> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Some(a),
        _ => None,
    }
}

/// Adds the service maps and chains to `table` (which already holds the
/// egress chains). Nothing when no Service has a ClusterIP.
pub fn add_to_table(
    local_node: &str,
    snap: &Snapshot,
    table: &mut Table,
    warnings: &mut Vec<String>,
) {
    let mut slices: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
    for s in &snap.endpoint_slices {
        let ns = s.metadata.namespace.as_deref().unwrap_or("default");
        if let Some(svc) = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        {
            slices.entry((ns, svc.as_str())).or_default().push(s);
        }
    }
    let mut services: Vec<&Service> = snap.services.iter().collect();
    services.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    let mut built = Built::default();
    let mut any = false;
    for svc in services {
        let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
        let name = svc.metadata.name.as_deref().unwrap_or("");
        let none = Vec::new();
        let svc_slices = slices.get(&(ns, name)).unwrap_or(&none);
        any |= add_service(local_node, ns, name, svc, svc_slices, &mut built, warnings);
    }
    if !any {
        return;
    }
    emit(built, table);
}

/// One service; false when it has no ClusterIP (headless, ExternalName).
fn add_service(
    local_node: &str,
    ns: &str,
    name: &str,
    svc: &Service,
    slices: &[&EndpointSlice],
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
        let port_name = sp.name.clone().unwrap_or_default();
        let label = if port_name.is_empty() {
            port.to_string()
        } else {
            port_name.clone()
        };
        let node_port = sp.node_port.and_then(port_u16);
        let eps = endpoints_for(slices, &port_name, proto);
        let cluster = select_endpoints(&eps, None);
        let local = select_endpoints(&eps, Some(local_node));
        let ip_key = |addr: Ipv4Addr| vec![Key::Ipv4(addr), Key::Proto(proto), Key::Port(port)];
        let reject = Verdict::Goto(REJECT_CHAIN.to_string());
        if cluster.is_empty() {
            built.no_ep_ips.push((ip_key(cluster_ip), reject.clone()));
            for a in &external {
                built.no_ep_ips.push((ip_key(*a), reject.clone()));
            }
            if let Some(np) = node_port {
                built
                    .no_ep_nodeports
                    .push((vec![Key::Proto(proto), Key::Port(np)], reject.clone()));
            }
            continue;
        }
        let svc_chain = built.chain_name("svc", ns, name, &label, proto);
        let svl_chain = built.chain_name("svl", ns, name, &label, proto);
        let ext_chain = built.chain_name("ext", ns, name, &label, proto);
        let has_external = !external.is_empty() || node_port.is_some();
        // svc: ClusterIP with internalTrafficPolicy Cluster, and every
        // external entry (eTP Local sends pods and this node there too).
        if !int_local || has_external {
            built
                .endpoints
                .extend(cluster.iter().map(|(ip, p)| (*ip, *p, proto)));
            let rules = built.balanced(&svc_chain, &cluster, proto, affinity);
            built
                .chains
                .insert(svc_chain.clone(), regular(svc_chain.clone(), rules));
        }
        if !local.is_empty() && (int_local || (ext_local && has_external)) {
            built
                .endpoints
                .extend(local.iter().map(|(ip, p)| (*ip, *p, proto)));
            let rules = built.balanced(&svl_chain, &local, proto, affinity);
            built
                .chains
                .insert(svl_chain.clone(), regular(svl_chain.clone(), rules));
        }
        // ClusterIP.
        if !int_local {
            built
                .service_ips
                .push((ip_key(cluster_ip), Verdict::Goto(svc_chain.clone())));
        } else if !local.is_empty() {
            built
                .service_ips
                .push((ip_key(cluster_ip), Verdict::Goto(svl_chain.clone())));
        } else {
            // Endpoints exist, none here: drop, as kube-proxy does.
            built.no_ep_ips.push((ip_key(cluster_ip), Verdict::Drop));
        }
        if !has_external {
            continue;
        }
        let ext_rules = if ext_local {
            let mut rules = vec![
                rule(
                    vec![Match::SaddrIn {
                        family: IpFamily::V4,
                        addrs: Addrs::Set(CLUSTER_SET.to_string()),
                        negate: false,
                    }],
                    vec![],
                    Verdict::Goto(svc_chain.clone()),
                    Some("pods reach external addresses through every endpoint"),
                ),
                rule(
                    vec![Match::FibLocal(FibAddr::Saddr)],
                    vec![mark()],
                    Verdict::Goto(svc_chain.clone()),
                    Some("this node reaches external addresses through every endpoint"),
                ),
            ];
            rules.push(if local.is_empty() {
                rule(
                    vec![],
                    vec![],
                    Verdict::Drop,
                    Some("externalTrafficPolicy Local: no local endpoints"),
                )
            } else {
                rule(vec![], vec![], Verdict::Goto(svl_chain.clone()), None)
            });
            rules
        } else {
            vec![rule(
                vec![],
                vec![mark()],
                Verdict::Goto(svc_chain.clone()),
                None,
            )]
        };
        built
            .chains
            .insert(ext_chain.clone(), regular(ext_chain.clone(), ext_rules));
        for a in &external {
            built
                .service_ips
                .push((ip_key(*a), Verdict::Goto(ext_chain.clone())));
        }
        if let Some(np) = node_port {
            built.nodeports.push((
                vec![Key::Proto(proto), Key::Port(np)],
                Verdict::Goto(ext_chain.clone()),
            ));
        }
    }
    true
}

/// First wins for a key listed twice (two services claiming one address).
fn unique(mut elements: Vec<(Vec<Key>, Verdict)>) -> Vec<(Vec<Key>, Verdict)> {
    let mut seen = std::collections::HashSet::with_capacity(elements.len());
    elements.retain(|(k, _)| seen.insert(k.clone()));
    elements
}

fn emit(built: Built, table: &mut Table) {
    let addr_type = [KeyType::Ipv4Addr, KeyType::InetProto, KeyType::InetService];
    let port_type = [KeyType::InetProto, KeyType::InetService];
    table.maps.push(map(
        SERVICE_IPS_MAP,
        &addr_type,
        unique(built.service_ips),
        "service addresses",
    ));
    table.maps.push(map(
        SERVICE_NODEPORTS_MAP,
        &port_type,
        unique(built.nodeports),
        "NodePorts",
    ));
    table.maps.push(map(
        NO_ENDPOINT_SERVICES_MAP,
        &addr_type,
        unique(built.no_ep_ips),
        "service addresses without endpoints",
    ));
    table.maps.push(map(
        NO_ENDPOINT_NODEPORTS_MAP,
        &port_type,
        unique(built.no_ep_nodeports),
        "NodePorts without endpoints",
    ));

    // Marked traffic is masqueraded before any egress rule decides.
    if let Some(post) = table
        .chains
        .iter_mut()
        .find(|c| c.name == POSTROUTING_CHAIN)
    {
        post.rules.insert(
            0,
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
        );
    }

    let check = || {
        rule(
            vec![Match::CtState(vec![CtState::New])],
            vec![],
            Verdict::Jump(ENDPOINTS_CHECK_CHAIN.to_string()),
            None,
        )
    };
    let invalid = rule(
        vec![Match::CtState(vec![CtState::Invalid])],
        vec![],
        Verdict::Drop,
        Some("invalid packets would leave un-NATed"),
    );
    let to_services = || {
        rule(
            vec![],
            vec![],
            Verdict::Jump(SERVICES_CHAIN.to_string()),
            None,
        )
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
        base(
            "filter-input",
            ChainType::Filter,
            Hook::Input,
            PRIORITY_SERVICE_FILTER,
            vec![check()],
        ),
        base(
            "filter-forward",
            ChainType::Filter,
            Hook::Forward,
            PRIORITY_SERVICE_FILTER,
            vec![invalid, check()],
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
                rule(vec![], vec![], vmap(&ADDR_KEY, SERVICE_IPS_MAP), None),
                rule(
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
                rule(
                    vec![],
                    vec![],
                    vmap(&ADDR_KEY, NO_ENDPOINT_SERVICES_MAP),
                    None,
                ),
                rule(
                    nodeport_matches(),
                    vec![],
                    vmap(&PORT_KEY, NO_ENDPOINT_NODEPORTS_MAP),
                    None,
                ),
            ],
        ),
        regular(
            REJECT_CHAIN.to_string(),
            vec![
                rule(
                    vec![Match::L4Proto(L4Proto::Tcp)],
                    vec![],
                    Verdict::Reject(RejectWith::TcpReset),
                    None,
                ),
                rule(
                    vec![],
                    vec![],
                    Verdict::Reject(RejectWith::PortUnreachable),
                    None,
                ),
            ],
        ),
    ]);
    table.sets.extend(built.sets);
    table.chains.extend(built.chains.into_values());
    table
        .chains
        .extend(built.endpoints.into_iter().map(|(ip, port, proto)| {
            regular(
                endpoint_chain_name(ip, port, proto),
                vec![
                    rule(
                        vec![Match::SaddrIn {
                            family: IpFamily::V4,
                            addrs: Addrs::Cidrs(vec![ipnet::IpNet::V4(ipnet::Ipv4Net::from(ip))]),
                            negate: false,
                        }],
                        vec![mark()],
                        Verdict::Continue,
                        Some("hairpin"),
                    ),
                    rule(
                        vec![Match::L4Proto(proto)],
                        vec![],
                        Verdict::Dnat {
                            addr: ip,
                            port: Some(port),
                        },
                        None,
                    ),
                ],
            )
        }));
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;

/// A route for the whole service CIDR onto the pod bridge. Locally
/// generated packets are routed before the OUTPUT hook DNATs them, so a node
/// without a default route (or whose default route points elsewhere) would
/// fail `connect()` to a ClusterIP with "network unreachable" before the
/// Service rules ever see the packet; with this route the packet reaches
/// the OUTPUT hook and is re-routed to the endpoint after DNAT.
pub fn service_cidr_route(cfg: &strait_model::AgentConfig) -> crate::RoutePlan {
    crate::RoutePlan {
        dst: cfg.service_cidr,
        gateway: None,
        dev: Some(cfg.bridge.clone()),
        onlink: false,
    }
}
