//! One Service's part of the service tables, as data: what
//! [`add_service`](super::service::add_service) reads from the Service and
//! its EndpointSlices, kept apart from what depends on the other Services
//! (which Service claims an address first, and the shared group maps).
//! [`Built::add_piece`] plays it into the tables. Because a piece depends
//! only on its Service, its slices and the node, the compile cache
//! ([`ServiceCache`](super::ServiceCache)) keeps it for the next compile
//! while those stay the same.

use super::*;

/// A service key: address . protocol . port, or protocol . port for a
/// NodePort (no address). Twelve bytes, where the table's key is 56.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SvcKey {
    pub(super) addr: Option<Ipv4Addr>,
    pub(super) proto: L4Proto,
    pub(super) port: u16,
}

impl SvcKey {
    pub(super) fn nodeport(self) -> bool {
        self.addr.is_none()
    }

    pub(super) fn key(self) -> KeyVec {
        match self.addr {
            Some(a) => {
                smallvec::smallvec![Key::Ipv4(a), Key::Proto(self.proto), Key::Port(self.port)]
            }
            None => smallvec::smallvec![Key::Proto(self.proto), Key::Port(self.port)],
        }
    }
}

/// Where one key's traffic goes: the endpoints `Piece::endpoints[start..
/// start + len]` (the `local` view: this node's), through the affinity
/// chain `chain` (an index into [`Affinity::names`]) or the group map of
/// their count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Target {
    pub(super) start: u32,
    pub(super) len: u32,
    pub(super) local: bool,
    pub(super) chain: Option<u16>,
}

/// One entry of a Service, in the order the compiler meets them.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Op {
    /// No endpoint to send to: reject, or drop (internalTrafficPolicy
    /// Local without a local endpoint).
    NoEndpoint { key: SvcKey, reject: bool },
    /// The ClusterIP, if no earlier Service claimed the key.
    ClusterIp { key: SvcKey, target: Target },
    /// An externalIP, load-balancer address or NodePort, if no earlier
    /// Service claimed it: `all` for pods, this node and (marked) eTP
    /// Cluster traffic; `local` for eTP Local traffic from outside.
    External {
        key: SvcKey,
        all: Target,
        local: Option<Target>,
    },
}

/// sessionAffinity ClientIP: per-service chains (and their names, which
/// [`Target`]s point to), the client sets, and the endpoint chains they go
/// to.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Affinity {
    pub(super) names: Vec<String>,
    pub(super) chains: Vec<Chain>,
    pub(super) sets: Vec<Set>,
    pub(super) endpoints: Vec<(Ipv4Addr, u16, L4Proto)>,
}

/// What one Service adds to the service tables. Kept small: the cache
/// holds one per Service.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Piece {
    /// It has an IPv4 ClusterIP (headless and ExternalName Services add
    /// nothing).
    pub(super) served: bool,
    /// Its ClusterIP, when outside the service CIDR.
    pub(super) outside_cidr: Option<Ipv4Addr>,
    pub(super) warnings: Vec<String>,
    /// Endpoint lists (each sorted, unique), end to end.
    pub(super) endpoints: Vec<(Ipv4Addr, u16)>,
    pub(super) ops: Vec<Op>,
    /// Its chain names depend on which Services came first, so a piece
    /// with affinity is never cached.
    pub(super) affinity: Option<Box<Affinity>>,
}

impl Piece {
    /// A target over `eps`.
    pub(super) fn target(
        &mut self,
        eps: &[(Ipv4Addr, u16)],
        local: bool,
        chain: Option<u16>,
    ) -> Target {
        let start = u32::try_from(self.endpoints.len()).unwrap_or(u32::MAX);
        self.endpoints.extend_from_slice(eps);
        Target {
            start,
            len: u32::try_from(eps.len()).unwrap_or(u32::MAX),
            local,
            chain,
        }
    }

    /// The endpoints of `t`.
    pub(super) fn eps(&self, t: &Target) -> &[(Ipv4Addr, u16)] {
        &self.endpoints[t.start as usize..(t.start + t.len) as usize]
    }

    /// The affinity chain of `t`, if any.
    pub(super) fn chain(&self, t: &Target) -> Option<&str> {
        let names = &self.affinity.as_ref()?.names;
        names.get(usize::from(t.chain?)).map(String::as_str)
    }

    /// Whether the next compile may take this piece as it is.
    pub(super) fn cacheable(&self) -> bool {
        self.affinity.is_none()
    }

    /// A per-service affinity chain named `name`, with `rules` (none when
    /// only its name is needed); its index for [`Target::chain`].
    pub(super) fn affinity_chain(&mut self, name: String, rules: Option<Vec<Rule>>) -> u16 {
        let a = self.affinity.get_or_insert_with(Default::default);
        if let Some(rules) = rules {
            a.chains.push(regular(name.clone(), rules));
        }
        a.names.push(name);
        u16::try_from(a.names.len() - 1).unwrap_or(u16::MAX)
    }

    /// The rules of a sessionAffinity ClientIP chain over `eps` (`timeout`
    /// seconds): a client seen before goes straight to the endpoint it had
    /// (a dynamic set per endpoint holds client addresses), and a new
    /// client's choice is remembered on the way to the endpoint chain.
    pub(super) fn affinity_rules(
        &mut self,
        chain: &str,
        eps: &[(Ipv4Addr, u16)],
        proto: L4Proto,
        timeout: u32,
    ) -> Vec<Rule> {
        let a = self.affinity.get_or_insert_with(Default::default);
        a.endpoints
            .extend(eps.iter().map(|(ip, p)| (*ip, *p, proto)));
        let mut rules = Vec::new();
        let mut targets = Vec::new();
        for (i, (ip, port)) in eps.iter().enumerate() {
            let sep = endpoint_chain_name(*ip, *port, proto);
            let set = format!("{chain}-aff{i}");
            let remember = format!("{chain}-a{i}");
            a.sets.push(Set {
                name: set.clone(),
                kind: SetKind::Ipv4Addr,
                interval: false,
                elements: vec![],
                comment: Some(format!("sessionAffinity ClientIP: clients of {ip}:{port}")),
                timeout: Some(timeout),
            });
            rules.push(Rule::uncounted(
                vec![Match::SaddrIn {
                    family: IpFamily::V4,
                    addrs: Addrs::Set(set.clone()),
                    negate: false,
                }],
                vec![],
                Verdict::Goto(sep.clone()),
                None,
            ));
            a.chains.push(regular(
                remember.clone(),
                vec![Rule::uncounted(
                    vec![],
                    vec![Statement::UpdateSaddr(set)],
                    Verdict::Goto(sep),
                    None,
                )],
            ));
            targets.push(Verdict::Goto(remember));
        }
        let pick = if targets.len() == 1 {
            targets.remove(0)
        } else {
            Verdict::NumgenVmap { targets }
        };
        rules.push(Rule::uncounted(vec![], vec![], pick, None));
        rules
    }
}

impl Built {
    /// Plays one Service's piece into the tables; false when it serves
    /// nothing.
    pub(super) fn add_piece(&mut self, piece: &Piece, warnings: &mut Vec<String>) -> bool {
        warnings.extend(piece.warnings.iter().cloned());
        if !piece.served {
            return false;
        }
        self.outside_cidr.extend(piece.outside_cidr);
        if let Some(a) = &piece.affinity {
            for chain in &a.chains {
                self.chains.insert(chain.name.clone(), chain.clone());
            }
            self.sets.extend(a.sets.iter().cloned());
            self.endpoints.extend(a.endpoints.iter().copied());
        }
        for op in &piece.ops {
            match op {
                Op::NoEndpoint { key, reject } => {
                    let verdict = if *reject {
                        Verdict::Goto(REJECT_CHAIN.to_string())
                    } else {
                        Verdict::Drop
                    };
                    let list = if key.nodeport() {
                        &mut self.no_ep_nodeports
                    } else {
                        &mut self.no_ep_ips
                    };
                    list.push((key.key(), verdict));
                }
                Op::ClusterIp { key, target } => {
                    let key = key.key();
                    if self.claimed_ips.insert(key.clone()) {
                        let verdict = self.target(&key, piece, target);
                        self.service_ips.push((key, verdict));
                    }
                }
                Op::External { key, all, local } => {
                    self.add_external(piece, *key, all, local.as_ref())
                }
            }
        }
        true
    }

    /// An external entry (an externalIP or LB address, or a NodePort):
    /// every endpoint for pods and this node (and everyone with eTP
    /// Cluster, marked); with eTP Local, traffic from outside gets this
    /// node's endpoints, unmarked. The first Service to claim a key keeps
    /// it.
    fn add_external(&mut self, piece: &Piece, key: SvcKey, all: &Target, local: Option<&Target>) {
        let nodeport = key.nodeport();
        let key = key.key();
        let claimed = if nodeport {
            &mut self.claimed_nodeports
        } else {
            &mut self.claimed_ips
        };
        if !claimed.insert(key.clone()) {
            return;
        }
        let all = self.target(&key, piece, all);
        let local = local.map(|t| self.target(&key, piece, t));
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
