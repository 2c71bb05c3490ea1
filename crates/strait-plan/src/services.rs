//! Services: the kube-proxy job, compiled into the `inet strait` table
//! (after kube-proxy's nftables mode).
//!
//! - Dispatch is O(1) in the number of services: chain `services` sets the
//!   masquerade mark from sets of (address . proto . port) / (proto . port)
//!   (`masq-*`: externalTrafficPolicy Cluster; `node-masq-*`: this node to
//!   eTP Local), sends pods and this node to `service-dispatch`, checks
//!   `external-local-ips` / `external-local-nodeports` (eTP Local from
//!   outside: this node's endpoints, or drop) and then goes to
//!   `service-dispatch`, which looks up `ip daddr . meta l4proto . th dport`
//!   in map `service-ips` (ClusterIPs, externalIPs, load-balancer ingress
//!   IPs) and, for local destinations, `meta l4proto . th dport` in
//!   `service-nodeports`. Base chains `nat-prerouting` (forwarded traffic)
//!   and `nat-output` (node processes, hostNetwork pods) jump to it.
//! - Load balancing is grouped by endpoint count N, not per service (each
//!   kernel set object costs about a millisecond to create, and a big map
//!   referenced by many rules is re-validated per rule): one map
//!   `eps-n<N>` (`key . numgen random mod N : endpoint . port`) and one
//!   chain `lb-n<N>` (`dnat ip to key . numgen random mod N map
//!   @eps-n<N>`) per distinct N, per view (`-local`: this node's endpoints)
//!   and per key (`np-`: NodePorts, keyed by proto . port). So the number of
//!   sets, maps, chains and rules does not grow with services; each big map
//!   is referenced by one rule.
//! - Hairpin: set `hairpin` (`endpoint . endpoint`) and a postrouting rule
//!   `ip saddr . ip daddr @hairpin masquerade` (after DNAT).
//! - Service addresses with no endpoints are rejected at once (maps
//!   `no-endpoint-services` / `no-endpoint-nodeports`, filter base chains at
//!   priority -10, chain `reject-chain`).
//! - Marked traffic (bit [`MASQUERADE_MARK`]) is masqueraded by the first
//!   rule of the egress postrouting chain; INVALID forwarded packets are
//!   dropped (they would leave un-NATed).
//!
//! Owns those maps and chains; nothing is emitted when the snapshot has no
//! Service with a ClusterIP, so a cluster without Services keeps the egress
//! table as it was. IPv4 only. sessionAffinity ClientIP keeps per-service
//! chains: one dynamic set per (service chain, endpoint) with the affinity
//! timeout; a known client goes straight to its endpoint chain (`sep-...`,
//! a DNAT), a new one is remembered on the way.

use crate::egress::{CLUSTER_SET, POSTROUTING_CHAIN};
use crate::nft::{
    Addrs, BaseChain, Chain, ChainType, ConcatSet, CtState, FibAddr, Hook, IpFamily, Key, KeyExpr,
    KeyType, L4Proto, Map, MapData, MapValue, Match, Policy, RejectWith, Rule, Set, SetKind,
    Statement, Table, Verdict,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use strait_model::k8s::api::core::v1::Service;
use strait_model::k8s::api::discovery::v1::EndpointSlice;
use strait_model::Snapshot;

/// The mark bit that asks postrouting to masquerade.
pub const MASQUERADE_MARK: u32 = 0x4000;
pub const SERVICE_IPS_MAP: &str = "service-ips";
pub const SERVICE_NODEPORTS_MAP: &str = "service-nodeports";
pub const EXTERNAL_LOCAL_IPS_MAP: &str = "external-local-ips";
pub const EXTERNAL_LOCAL_NODEPORTS_MAP: &str = "external-local-nodeports";
pub const HAIRPIN_SET: &str = "hairpin";
pub const MASQ_IPS_SET: &str = "masq-ips";
pub const MASQ_NODEPORTS_SET: &str = "masq-nodeports";
pub const NODE_MASQ_IPS_SET: &str = "node-masq-ips";
pub const NODE_MASQ_NODEPORTS_SET: &str = "node-masq-nodeports";
pub const SERVICE_DISPATCH_CHAIN: &str = "service-dispatch";
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
pub(crate) fn fnv1a(s: &str) -> u32 {
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
        interval: false,
        name: name.to_string(),
        key: key.to_vec(),
        value: MapValue::Verdict,
        elements: elements
            .into_iter()
            .map(|(k, v)| (k, MapData::Verdict(v)))
            .collect(),
        comment: Some(comment.to_string()),
    }
}

/// Which endpoints a grouped map holds: every ready endpoint (cluster) or
/// this node's (local), and whether it is keyed by address or, for
/// NodePorts, by port only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Group {
    nodeport: bool,
    local: bool,
    /// Endpoints per service port in this group (`numgen random mod n`).
    n: u32,
}

impl Group {
    /// `eps-n3`, `eps-local-n1`, `np-eps-n2`, `np-eps-local-n1`.
    fn map_name(self) -> String {
        format!("{}eps-{}n{}", self.prefix(), self.view(), self.n)
    }

    /// `lb-n3`, `lb-local-n1`, `np-lb-n2`, `np-lb-local-n1`.
    fn chain_name(self) -> String {
        format!("{}lb-{}n{}", self.prefix(), self.view(), self.n)
    }

    fn prefix(self) -> &'static str {
        if self.nodeport {
            "np-"
        } else {
            ""
        }
    }

    fn view(self) -> &'static str {
        if self.local {
            "local-"
        } else {
            ""
        }
    }

    /// The lookup key: the service key, then the random pick.
    fn key_exprs(self) -> Vec<KeyExpr> {
        let mut key = if self.nodeport {
            PORT_KEY.to_vec()
        } else {
            ADDR_KEY.to_vec()
        };
        key.push(KeyExpr::Numgen(self.n));
        key
    }
}

/// What [`add_to_table`] built, before it goes into the table.
#[derive(Default)]
struct Built {
    /// Every source's view: ClusterIPs, and external addresses with every
    /// endpoint (what pods and this node use for eTP Local too).
    service_ips: Vec<(Vec<Key>, Verdict)>,
    nodeports: Vec<(Vec<Key>, Verdict)>,
    /// eTP Local, traffic from outside: this node's endpoints, or drop.
    ext_local_ips: Vec<(Vec<Key>, Verdict)>,
    ext_local_nodeports: Vec<(Vec<Key>, Verdict)>,
    no_ep_ips: Vec<(Vec<Key>, Verdict)>,
    no_ep_nodeports: Vec<(Vec<Key>, Verdict)>,
    /// Keys of `service_ips` / `nodeports` already claimed (first wins).
    claimed_ips: HashSet<Vec<Key>>,
    claimed_nodeports: HashSet<Vec<Key>>,
    /// eTP Cluster external addresses and NodePorts: marked for masquerade.
    masq_ips: Vec<Vec<Key>>,
    masq_nodeports: Vec<Vec<Key>>,
    /// eTP Local external addresses and NodePorts: marked when this node
    /// is the client.
    node_masq_ips: Vec<Vec<Key>>,
    node_masq_nodeports: Vec<Vec<Key>>,
    /// Endpoint addresses (an endpoint reaching itself is masqueraded).
    hairpin: BTreeSet<Ipv4Addr>,
    /// This node's pod CIDRs: only its own pods can hairpin here.
    local_pods: Vec<ipnet::Ipv4Net>,
    /// Grouped endpoint maps: key . index -> endpoint address . port.
    groups: BTreeMap<Group, Vec<(Vec<Key>, MapData)>>,
    /// Per-service chains (sessionAffinity ClientIP only) by name.
    chains: BTreeMap<String, Chain>,
    /// Endpoint chains to create (sessionAffinity ClientIP only).
    endpoints: BTreeSet<(Ipv4Addr, u16, L4Proto)>,
    /// Per-service chain name -> the identity that owns it.
    owners: HashMap<String, String>,
    /// sessionAffinity sets (client address -> endpoint, with a timeout).
    sets: Vec<Set>,
}

impl Built {
    /// Where traffic for `key` goes to reach one of `eps` (the `local`
    /// view or the cluster one): with `affinity` (the per-service chain of
    /// a sessionAffinity service), that chain; otherwise elements
    /// `key . i : endpoint` in the group map of `eps.len()` endpoints, and
    /// its chain. No endpoint: drop.
    fn target(
        &mut self,
        key: &[Key],
        eps: &[(Ipv4Addr, u16)],
        local: bool,
        affinity: Option<&str>,
    ) -> Verdict {
        if eps.is_empty() {
            return Verdict::Drop;
        }
        // A pod reaching itself through a Service is DNATed on its own
        // node, so only this node's pods need hairpin entries (a set of
        // local pods, not of every endpoint in the cluster).
        let local_pods = &self.local_pods;
        self.hairpin.extend(
            eps.iter()
                .map(|(ip, _)| *ip)
                .filter(|ip| local_pods.iter().any(|c| c.contains(ip))),
        );
        if let Some(chain) = affinity {
            return Verdict::Goto(chain.to_string());
        }
        let group = Group {
            nodeport: key.len() == PORT_KEY.len(),
            local,
            n: u32::try_from(eps.len()).unwrap_or(u32::MAX),
        };
        let elements = self.groups.entry(group).or_default();
        for (i, (ip, port)) in (0u32..).zip(eps) {
            let mut k = key.to_vec();
            k.push(Key::Index(i));
            elements.push((k, MapData::AddrPort(*ip, *port)));
        }
        Verdict::Goto(group.chain_name())
    }

    /// The rules of a sessionAffinity ClientIP chain over `eps` (`timeout`
    /// seconds): a client seen before goes straight to the endpoint it had
    /// (a dynamic set per endpoint holds client addresses), and a new
    /// client's choice is remembered on the way to the endpoint chain.
    fn affinity_rules(
        &mut self,
        chain: &str,
        eps: &[(Ipv4Addr, u16)],
        proto: L4Proto,
        timeout: u32,
    ) -> Vec<Rule> {
        self.endpoints
            .extend(eps.iter().map(|(ip, p)| (*ip, *p, proto)));
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
    local_pods: &[ipnet::Ipv4Net],
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
    let mut built = Built {
        local_pods: local_pods.to_vec(),
        ..Built::default()
    };
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
        let has_external = !external.is_empty() || node_port.is_some();
        // sessionAffinity ClientIP: per-service chains, svc over every
        // endpoint, svl over this node's (traffic policies Local).
        let (svc_chain, svl_chain) = match affinity {
            None => (None, None),
            Some(timeout) => {
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
            built.add_external(vec![Key::Proto(proto), Key::Port(np)], true, &views);
        }
    }
    true
}

/// The endpoint views of one service port, for its external entries.
struct Views<'a> {
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
    fn add_external(&mut self, key: Vec<Key>, nodeport: bool, v: &Views) {
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

/// First wins for a key listed twice (two services claiming one address).
fn unique(mut elements: Vec<(Vec<Key>, Verdict)>) -> Vec<(Vec<Key>, Verdict)> {
    let mut seen = std::collections::HashSet::with_capacity(elements.len());
    elements.retain(|(k, _)| seen.insert(k.clone()));
    elements
}

fn concat_set(name: &str, key: &[KeyType], elements: Vec<Vec<Key>>, comment: &str) -> ConcatSet {
    ConcatSet {
        interval: false,
        name: name.to_string(),
        key: key.to_vec(),
        elements,
        comment: Some(comment.to_string()),
    }
}

/// `<key> @set meta mark set meta mark | 0x4000`, after `matches`.
fn mark_if(mut matches: Vec<Match>, key: &[KeyExpr], set: &str, comment: &str) -> Rule {
    matches.push(Match::ConcatIn {
        key: key.to_vec(),
        set: set.to_string(),
    });
    rule(matches, vec![mark()], Verdict::Continue, Some(comment))
}

fn emit(built: Built, table: &mut Table) {
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
    for (group, elements) in built.groups {
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
            vec![rule(
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
                .map(|ip| vec![Key::Ipv4(*ip), Key::Ipv4(*ip)])
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
    let dispatch = |matches: Vec<Match>, comment: Option<&str>| {
        rule(
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
                rule(
                    vec![],
                    vec![],
                    vmap(&ADDR_KEY, EXTERNAL_LOCAL_IPS_MAP),
                    None,
                ),
                rule(
                    nodeport_matches(),
                    vec![],
                    vmap(&PORT_KEY, EXTERNAL_LOCAL_NODEPORTS_MAP),
                    None,
                ),
                dispatch(vec![], None),
            ],
        ),
        regular(
            SERVICE_DISPATCH_CHAIN.to_string(),
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
    table.chains.extend(group_chains);
    table.sets.extend(built.sets);
    table.chains.extend(built.chains.into_values());
    table
        .chains
        .extend(built.endpoints.into_iter().map(|(ip, port, proto)| {
            regular(
                endpoint_chain_name(ip, port, proto),
                vec![rule(
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
