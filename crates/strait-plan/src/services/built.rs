//! What the compiler collects from all Services before it goes into the
//! table, and the per-target bookkeeping (groups, affinity, chain names).

use super::*;

/// What [`add_to_table`] built, before it goes into the table.
#[derive(Default)]
pub(super) struct Built {
    /// Every source's view: ClusterIPs, and external addresses with every
    /// endpoint (what pods and this node use for eTP Local too).
    pub(super) service_ips: Vec<(KeyVec, Verdict)>,
    pub(super) nodeports: Vec<(KeyVec, Verdict)>,
    /// eTP Local, traffic from outside: this node's endpoints, or drop.
    pub(super) ext_local_ips: Vec<(KeyVec, Verdict)>,
    pub(super) ext_local_nodeports: Vec<(KeyVec, Verdict)>,
    pub(super) no_ep_ips: Vec<(KeyVec, Verdict)>,
    pub(super) no_ep_nodeports: Vec<(KeyVec, Verdict)>,
    /// Keys of `service_ips` / `nodeports` already claimed (first wins).
    pub(super) claimed_ips: foldhash::HashSet<KeyVec>,
    pub(super) claimed_nodeports: foldhash::HashSet<KeyVec>,
    /// eTP Cluster external addresses and NodePorts: marked for masquerade.
    pub(super) masq_ips: Vec<KeyVec>,
    pub(super) masq_nodeports: Vec<KeyVec>,
    /// eTP Local external addresses and NodePorts: marked when this node
    /// is the client.
    pub(super) node_masq_ips: Vec<KeyVec>,
    pub(super) node_masq_nodeports: Vec<KeyVec>,
    /// Endpoint addresses (an endpoint reaching itself is masqueraded).
    pub(super) hairpin: BTreeSet<Ipv4Addr>,
    /// This node's pod CIDRs: only its own pods can hairpin here.
    pub(super) local_pods: Vec<ipnet::Ipv4Net>,
    /// The service CIDR (off-cluster masquerade, reject of unused addresses).
    pub(super) service_cidr: Option<ipnet::Ipv4Net>,
    /// ClusterIPs outside it (treated as part of it).
    pub(super) outside_cidr: BTreeSet<Ipv4Addr>,
    /// Grouped endpoint maps: key . index -> endpoint address . port;
    /// with the group's chain name (made once, cloned per Service).
    pub(super) groups: BTreeMap<Group, (String, Vec<(KeyVec, MapData)>)>,
    /// The sizes of the last compile's lists, reserved up front.
    pub(super) hint: Sizes,
    /// Per-service chains (sessionAffinity ClientIP only) by name.
    pub(super) chains: BTreeMap<String, Chain>,
    /// Endpoint chains to create (sessionAffinity ClientIP only).
    pub(super) endpoints: BTreeSet<(Ipv4Addr, u16, L4Proto)>,
    /// sessionAffinity sets (client address -> endpoint, with a timeout).
    pub(super) sets: Vec<Set>,
}

impl Built {
    /// Where traffic for `key` goes to reach `target`'s endpoints (the
    /// `local` view or the cluster one): with a chain (the per-service
    /// chain of a sessionAffinity service), that chain; otherwise elements
    /// `key . i : endpoint` in the group map of that many endpoints, and
    /// its chain. No endpoint: drop.
    pub(super) fn target(&mut self, key: &[Key], piece: &Piece, target: &Target) -> Verdict {
        let eps = piece.eps(target);
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
        if let Some(chain) = piece.chain(target) {
            return Verdict::Goto(chain.to_string());
        }
        let local = target.local;
        let group = Group {
            nodeport: key.len() == PORT_KEY.len(),
            local,
            n: u32::try_from(eps.len()).unwrap_or(u32::MAX),
        };
        let hint = &self.hint;
        let (chain, elements) = self.groups.entry(group).or_insert_with(|| {
            let size = hint.groups.get(&group).copied().unwrap_or(0);
            (group.chain_name(), Vec::with_capacity(size))
        });
        elements.reserve(eps.len());
        for (i, (ip, port)) in (0u32..).zip(eps) {
            let mut k = KeyVec::with_capacity(key.len() + 1);
            k.extend_from_slice(key);
            k.push(Key::Index(i));
            elements.push((k, MapData::AddrPort(*ip, *port)));
        }
        Verdict::Goto(chain.clone())
    }
}

/// How long the big lists of a compile were: the next compile reserves
/// as much (growing 100,000 elements by doubling copies and re-hashes
/// them a dozen times).
#[derive(Debug, Default, Clone)]
pub(super) struct Sizes {
    pub(super) service_ips: usize,
    pub(super) claimed_ips: usize,
    pub(super) groups: BTreeMap<Group, usize>,
}

impl Built {
    /// A Built whose lists have room for `hint`.
    pub(super) fn with_room(hint: Sizes) -> Built {
        let mut b = Built::default();
        b.service_ips.reserve(hint.service_ips);
        b.claimed_ips.reserve(hint.claimed_ips);
        b.hint = hint;
        b
    }

    /// The sizes of this compile's lists.
    pub(super) fn sizes(&self) -> Sizes {
        Sizes {
            service_ips: self.service_ips.len(),
            claimed_ips: self.claimed_ips.len(),
            groups: self
                .groups
                .iter()
                .map(|(g, (_, e))| (*g, e.len()))
                .collect(),
        }
    }
}
