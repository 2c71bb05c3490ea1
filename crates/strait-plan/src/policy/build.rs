//! Evaluates the policies against the cluster for one node: which of its
//! pods each direction isolates (and by which policies), and what each
//! isolated pod allows, per peer atom (see `atoms`).
//! Ingress is enforced on the destination pod's node and egress on the
//! source pod's, so only this node's pods are isolated here.

use super::atoms::partition;
use super::cluster::{Cluster, PodRef};
use super::intervals::Interval;
use super::ports::{self, Ports};
use super::rules::{Direction, Namespaces, Peer, Policy, Rule};
use super::selector::Labels;
use crate::services::fnv1a;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

/// The peers a rule matches.
#[derive(Debug, Default)]
struct Matched {
    everyone: bool,
    /// Indices into `Cluster::pods`.
    pods: Vec<usize>,
    blocks: Vec<Interval>,
}

/// A peer group (index) with what a rule allows for it (`None`: depends
/// on this node's pod).
type GroupPorts = (usize, Option<Ports>);

/// One direction on this node.
#[derive(Debug, Default)]
pub struct Isolation {
    /// This node's pods selected by a policy of this direction, with the
    /// indices of every such policy (sorted).
    pub pods: BTreeMap<Ipv4Addr, Vec<usize>>,
    /// The peer map: disjoint address intervals, each with its atom id.
    pub peers: Vec<(Interval, u32)>,
    /// What each isolated pod allows, per peer atom (absent: nothing).
    pub allowed: BTreeMap<Ipv4Addr, BTreeMap<u32, Ports>>,
}

pub struct Evaluator<'a, 'c> {
    cluster: &'c Cluster<'a>,
    policies: &'c [Policy<'a>],
    namespaces: BTreeMap<&'a str, Labels>,
    /// (policy, direction, rule) -> peers.
    matched: HashMap<(usize, Direction, usize), Matched>,
    /// (namespaces, pod selector) -> the pods it matches (rules repeat
    /// the same peers a lot).
    peer_pods: HashMap<(Namespaces, super::selector::Selector), Vec<usize>>,
    /// Port problems, reported once each.
    pub warnings: BTreeSet<String>,
}

impl<'a, 'c> Evaluator<'a, 'c> {
    pub fn new(cluster: &'c Cluster<'a>, policies: &'c [Policy<'a>]) -> Self {
        Evaluator {
            cluster,
            policies,
            namespaces: cluster.pod_namespaces(),
            matched: HashMap::new(),
            peer_pods: HashMap::new(),
            warnings: BTreeSet::new(),
        }
    }

    /// Whether `pod` is selected by policy `i`.
    fn selects(&self, i: usize, pod: &PodRef) -> bool {
        let p = &self.policies[i];
        pod.namespace == p.namespace && p.selector.matches(pod.labels)
    }

    fn matched(&mut self, i: usize, d: Direction, r: usize) -> &Matched {
        let key = (i, d, r);
        if !self.matched.contains_key(&key) {
            let policies = self.policies;
            let rule = &policies[i].rules(d).expect("direction present")[r];
            let m = self.match_peers(rule);
            self.matched.insert(key, m);
        }
        &self.matched[&key]
    }

    fn match_peers(&mut self, rule: &Rule) -> Matched {
        let Some(peers) = &rule.peers else {
            return Matched {
                everyone: true,
                ..Matched::default()
            };
        };
        let mut m = Matched::default();
        let mut pods = BTreeSet::new();
        for peer in peers {
            match peer {
                Peer::Nothing => {}
                Peer::Block(b) => m.blocks.extend(b),
                Peer::Pods {
                    namespaces,
                    pods: sel,
                } => {
                    let key = (namespaces.clone(), sel.clone());
                    if !self.peer_pods.contains_key(&key) {
                        let found = self.pods_matching(namespaces, sel);
                        self.peer_pods.insert(key.clone(), found);
                    }
                    pods.extend(self.peer_pods[&key].iter().copied());
                }
            }
        }
        m.pods = pods.into_iter().collect();
        m
    }

    fn pods_matching(
        &self,
        namespaces: &Namespaces,
        sel: &super::selector::Selector,
    ) -> Vec<usize> {
        let ns_ok: BTreeSet<&str> = match namespaces {
            Namespaces::Own(ns) => BTreeSet::from([ns.as_str()]),
            Namespaces::Matching(s) => self
                .namespaces
                .iter()
                .filter(|(_, l)| s.matches(l))
                .map(|(n, _)| *n)
                .collect(),
        };
        let cluster = self.cluster;
        (0..cluster.pods.len())
            .filter(|j| {
                let pod = &cluster.pods[*j];
                ns_ok.contains(pod.namespace) && sel.matches(pod.labels)
            })
            .collect()
    }

    /// What `rule`'s ports allow towards `dest` (None: not a pod).
    fn ports(&mut self, rule: &Rule, dest: Option<&PodRef>) -> Ports {
        if rule.ports.is_empty() {
            return Ports::All;
        }
        let mut out = Ports::none();
        for (field, p) in &rule.ports {
            match ports::resolve(p, dest.map(|d| d.pod), field) {
                Ok(allowed) => out = out.union(&allowed),
                Err(e) => {
                    self.warnings.insert(e);
                }
            }
        }
        out
    }

    /// The peer groups of rule `r` of policy `i`, each with its stable
    /// name and what the rule allows towards/from it (`None`: the ports
    /// depend on this node's pod, an ingress named port).
    fn rule_groups(
        &mut self,
        i: usize,
        d: Direction,
        r: usize,
    ) -> Vec<(String, Vec<Interval>, Option<Ports>)> {
        let policies = self.policies;
        let rule = &policies[i].rules(d).expect("direction present")[r];
        self.matched(i, d, r);
        let m = &self.matched[&(i, d, r)];
        let (everyone, blocks, pods) = (m.everyone, m.blocks.clone(), m.pods.clone());
        let cluster = self.cluster;
        let named = rule.ports.iter().any(|(_, p)| ports::is_named(p));
        let name = format!("{}/{}/{}", policies[i].key(), d.short(), r);
        let all: Vec<Interval> = if everyone {
            vec![Interval::ALL]
        } else {
            let mut v = blocks.clone();
            v.extend(pods.iter().map(|j| Interval::single(cluster.pods[*j].ip)));
            v
        };
        match d {
            Direction::Ingress => {
                let allowed = if named {
                    None
                } else {
                    Some(self.ports(rule, None))
                };
                vec![(name, all, allowed)]
            }
            Direction::Egress if !named => {
                let allowed = self.ports(rule, None);
                vec![(name, all, Some(allowed))]
            }
            Direction::Egress => {
                // Named ports are the peer pod's: numeric ones hold for
                // every peer, named ones only for pods that have them.
                let numeric = self.ports(rule, None);
                let mut out = vec![(name.clone(), all, Some(numeric))];
                let peer_pods: Vec<usize> = if everyone {
                    (0..cluster.pods.len()).collect()
                } else {
                    pods
                };
                let mut by_ports: BTreeMap<Ports, Vec<Interval>> = BTreeMap::new();
                for j in peer_pods {
                    let peer = &cluster.pods[j];
                    let allowed = self.ports(rule, Some(peer));
                    by_ports
                        .entry(allowed)
                        .or_default()
                        .push(Interval::single(peer.ip));
                }
                for (k, (allowed, list)) in by_ports.into_iter().enumerate() {
                    out.push((format!("{name}/{k}"), list, Some(allowed)));
                }
                out
            }
        }
    }

    /// Evaluates one direction for the pods of `node`.
    pub fn isolation(&mut self, d: Direction, node: &str) -> Isolation {
        let mut iso = Isolation::default();
        let cluster = self.cluster;
        let with_dir: Vec<usize> = (0..self.policies.len())
            .filter(|i| self.policies[*i].rules(d).is_some())
            .collect();
        let mut local: BTreeMap<Ipv4Addr, &PodRef<'a>> = BTreeMap::new();
        for pod in cluster.pods.iter().filter(|p| p.node == node) {
            let selecting: Vec<usize> = with_dir
                .iter()
                .copied()
                .filter(|i| self.selects(*i, pod))
                .collect();
            if !selecting.is_empty() {
                let entry = iso.pods.entry(pod.ip).or_default();
                entry.extend(selecting);
                entry.sort_unstable();
                entry.dedup();
                local.insert(pod.ip, pod);
            }
        }
        // The groups of every rule, deduplicated by addresses (many rules
        // name the same peers).
        let mut group_of: HashMap<Vec<Interval>, usize> = HashMap::new();
        let mut groups: Vec<(Vec<Interval>, BTreeSet<String>)> = Vec::new();
        let mut rule_groups: HashMap<(usize, usize), Vec<GroupPorts>> = HashMap::new();
        // Every policy's rules, also those selecting no pod here: an atom's
        // id then does not change when a local pod's selection does.
        for &i in &with_dir {
            let n = self.policies[i].rules(d).map_or(0, |r| r.len());
            for r in 0..n {
                let mut list = Vec::new();
                for (name, intervals, allowed) in self.rule_groups(i, d, r) {
                    if allowed.as_ref().is_some_and(|a| a.is_none()) {
                        continue;
                    }
                    let intervals = super::intervals::merge(intervals);
                    if intervals.is_empty() {
                        continue;
                    }
                    let g = *group_of.entry(intervals.clone()).or_insert_with(|| {
                        groups.push((intervals, BTreeSet::new()));
                        groups.len() - 1
                    });
                    groups[g].1.insert(name);
                    list.push((g, allowed));
                }
                rule_groups.insert((i, r), list);
            }
        }
        let part = partition(&groups.iter().map(|(g, _)| g.clone()).collect::<Vec<_>>());
        // Stable atom ids: a hash of the names of every rule whose peers
        // hold the atom's addresses (the same however rules are grouped),
        // so a label change moves one address between atoms without
        // renaming the others. 0 means "no atom".
        let mut signatures: Vec<(String, usize)> = part
            .members
            .iter()
            .enumerate()
            .map(|(a, m)| {
                let mut names: Vec<&str> = m
                    .iter()
                    .flat_map(|g| groups[*g].1.iter().map(String::as_str))
                    .collect();
                names.sort_unstable();
                (names.join(","), a)
            })
            .collect();
        signatures.sort();
        let mut atom_id = vec![0u32; part.members.len()];
        let mut taken = BTreeSet::from([0u32]);
        for (sig, a) in &signatures {
            let mut id = fnv1a(sig);
            while !taken.insert(id) {
                id = id.wrapping_add(1);
            }
            atom_id[*a] = id;
        }
        iso.peers = part
            .intervals
            .iter()
            .map(|(i, a)| (*i, atom_id[*a]))
            .collect();
        let mut atoms_of: Vec<Vec<u32>> = vec![Vec::new(); groups.len()];
        for (a, m) in part.members.iter().enumerate() {
            for g in m {
                atoms_of[*g].push(atom_id[a]);
            }
        }
        // Pods selected by the same policies allow the same, unless a
        // named ingress port makes it depend on the pod.
        let mut by_class: HashMap<Vec<usize>, BTreeMap<u32, Ports>> = HashMap::new();
        for (ip, pod) in local {
            let class = iso.pods[&ip].clone();
            let mut per_pod = false;
            for &i in &class {
                let n = self.policies[i].rules(d).map_or(0, |r| r.len());
                per_pod |= (0..n).any(|r| rule_groups[&(i, r)].iter().any(|(_, a)| a.is_none()));
            }
            if let (false, Some(a)) = (per_pod, by_class.get(&class)) {
                if !a.is_empty() {
                    iso.allowed.insert(ip, a.clone());
                }
                continue;
            }
            let mut allowed: BTreeMap<u32, Ports> = BTreeMap::new();
            for &i in &class {
                let n = self.policies[i].rules(d).map_or(0, |r| r.len());
                for r in 0..n {
                    for (g, ports) in rule_groups[&(i, r)].clone() {
                        let ports = match ports {
                            Some(p) => p,
                            None => {
                                let rule =
                                    &self.policies[i].rules(d).expect("direction present")[r];
                                self.ports(rule, Some(pod))
                            }
                        };
                        if ports.is_none() {
                            continue;
                        }
                        for atom in &atoms_of[g] {
                            let e = allowed.entry(*atom).or_insert_with(Ports::none);
                            *e = e.union(&ports);
                        }
                    }
                }
            }
            if !per_pod {
                by_class.insert(class, allowed.clone());
            }
            if !allowed.is_empty() {
                iso.allowed.insert(ip, allowed);
            }
        }
        iso
    }
}
