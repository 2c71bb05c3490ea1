//! Evaluates the policies against the cluster for one node: which of its
//! pods each direction isolates (and by which policies), and what each
//! isolated pod allows, as disjoint (peer interval, ports) pieces.
//! Ingress is enforced on the destination pod's node and egress on the
//! source pod's, so only this node's pods are isolated here.

use super::cluster::{Cluster, PodRef};
use super::elements::disjoint;
use super::intervals::Interval;
use super::ports::{self, Ports};
use super::rules::{Direction, Namespaces, Peer, Policy, Rule};
use super::selector::Labels;
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

/// One direction on this node.
#[derive(Debug, Default)]
pub struct Isolation {
    /// This node's pods selected by a policy of this direction, with the
    /// indices of every such policy (sorted).
    pub pods: BTreeMap<Ipv4Addr, Vec<usize>>,
    /// What each isolated pod allows (disjoint, sorted; absent: nothing).
    pub allowed: BTreeMap<Ipv4Addr, Vec<(Interval, Ports)>>,
}

pub struct Evaluator<'a, 'c> {
    cluster: &'c Cluster<'a>,
    policies: &'c [Policy<'a>],
    namespaces: BTreeMap<&'a str, Labels>,
    /// (policy, direction, rule) -> peers.
    matched: HashMap<(usize, Direction, usize), Matched>,
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
            let rule = &self.policies[i].rules(d).expect("direction present")[r];
            let m = self.match_peers(rule);
            self.matched.insert(key, m);
        }
        &self.matched[&key]
    }

    fn match_peers(&self, rule: &Rule) -> Matched {
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
                    let ns_ok: BTreeSet<&str> = match namespaces {
                        Namespaces::Own(ns) => BTreeSet::from([ns.as_str()]),
                        Namespaces::Matching(s) => self
                            .namespaces
                            .iter()
                            .filter(|(_, l)| s.matches(l))
                            .map(|(n, _)| *n)
                            .collect(),
                    };
                    for (j, pod) in self.cluster.pods.iter().enumerate() {
                        if ns_ok.contains(pod.namespace) && sel.matches(pod.labels) {
                            pods.insert(j);
                        }
                    }
                }
            }
        }
        m.pods = pods.into_iter().collect();
        m
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

    /// What rule `r` of policy `i` allows for this node's pod `local`, as
    /// (peer interval, ports) pieces (may overlap).
    fn rule_allows(
        &mut self,
        i: usize,
        d: Direction,
        r: usize,
        local: &PodRef<'a>,
        out: &mut Vec<(Interval, Ports)>,
    ) {
        let policies = self.policies;
        let rule = &policies[i].rules(d).expect("direction present")[r];
        self.matched(i, d, r);
        let m = &self.matched[&(i, d, r)];
        let (everyone, blocks, pods) = (m.everyone, m.blocks.clone(), m.pods.clone());
        let cluster = self.cluster;
        let named = rule.ports.iter().any(|(_, p)| ports::is_named(p));
        match d {
            Direction::Ingress => {
                // Ports are the destination's: this node's pod.
                let allowed = self.ports(rule, Some(local));
                if allowed.is_none() {
                    return;
                }
                if everyone {
                    out.push((Interval::ALL, allowed));
                    return;
                }
                out.extend(blocks.into_iter().map(|b| (b, allowed.clone())));
                out.extend(
                    pods.iter()
                        .map(|j| (Interval::single(cluster.pods[*j].ip), allowed.clone())),
                );
            }
            Direction::Egress => {
                // Ports are the peer's: numeric ones hold for every peer,
                // named ones only for pods that have them.
                let numeric = self.ports(rule, None);
                if everyone {
                    out.push((Interval::ALL, numeric.clone()));
                }
                out.extend(blocks.into_iter().map(|b| (b, numeric.clone())));
                let dest_pods: Vec<usize> = if everyone && named {
                    (0..cluster.pods.len()).collect()
                } else if everyone {
                    Vec::new()
                } else {
                    pods
                };
                for j in dest_pods {
                    let peer = &cluster.pods[j];
                    let allowed = if named {
                        self.ports(rule, Some(peer))
                    } else {
                        numeric.clone()
                    };
                    out.push((Interval::single(peer.ip), allowed));
                }
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
        // Pods selected by the same policies allow the same, unless a
        // named ingress port makes it depend on the pod.
        let mut by_class: HashMap<Vec<usize>, Vec<(Interval, Ports)>> = HashMap::new();
        for (ip, pod) in local {
            let class = iso.pods[&ip].clone();
            let per_pod = d == Direction::Ingress
                && class.iter().any(|i| {
                    self.policies[*i]
                        .rules(d)
                        .into_iter()
                        .flatten()
                        .any(|r| r.ports.iter().any(|(_, p)| ports::is_named(p)))
                });
            let allowed = match (per_pod, by_class.get(&class)) {
                (false, Some(a)) => a.clone(),
                _ => {
                    let mut pieces = Vec::new();
                    for &i in &class {
                        let n = self.policies[i].rules(d).map_or(0, |r| r.len());
                        for r in 0..n {
                            self.rule_allows(i, d, r, pod, &mut pieces);
                        }
                    }
                    let a = disjoint(pieces);
                    if !per_pod {
                        by_class.insert(class, a.clone());
                    }
                    a
                }
            };
            if !allowed.is_empty() {
                iso.allowed.insert(ip, allowed);
            }
        }
        iso
    }
}
