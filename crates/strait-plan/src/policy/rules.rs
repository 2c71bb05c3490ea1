//! A NetworkPolicy checked into what the compiler needs: its pod selector,
//! its policy types (explicit, or implied: Ingress always, Egress when it
//! has egress rules) and its rules with their peers and ports. A policy
//! the API server would reject is left out with a warning naming the
//! field; a bad peer or port inside a rule matches nothing (fail closed:
//! the policy still isolates the pods it selects).

use super::intervals::{ip_block, Interval};
use super::selector::Selector;
use strait_model::k8s::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    /// The short form in nft names: `in` / `eg`.
    pub fn short(self) -> &'static str {
        match self {
            Direction::Ingress => "in",
            Direction::Egress => "eg",
        }
    }
}

/// Which namespaces a pod peer looks in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Namespaces {
    /// The policy's own (no `namespaceSelector`).
    Own(String),
    Matching(Selector),
}

#[derive(Debug, Clone)]
pub enum Peer {
    /// Pods matching `pods` in the namespaces (`podSelector` absent: all).
    Pods {
        namespaces: Namespaces,
        pods: Selector,
    },
    /// `ipBlock`: the CIDR minus its excepts.
    Block(Vec<Interval>),
    /// A peer that matches nothing (invalid, or an IPv6 block).
    Nothing,
}

#[derive(Debug, Clone)]
pub struct Rule<'a> {
    /// `None`: every peer (no `from`/`to`, or an empty list).
    pub peers: Option<Vec<Peer>>,
    /// Empty: every protocol and port. Each with its field path.
    pub ports: Vec<(String, &'a NetworkPolicyPort)>,
}

#[derive(Debug, Clone)]
pub struct Policy<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub selector: Selector,
    /// `Some` when the policy has this type (an empty list denies all).
    pub ingress: Option<Vec<Rule<'a>>>,
    pub egress: Option<Vec<Rule<'a>>>,
}

impl Policy<'_> {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn rules(&self, d: Direction) -> Option<&[Rule<'_>]> {
        match d {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

/// Checks one policy; `None` (with a warning) when it cannot be used.
pub fn parse<'a>(np: &'a NetworkPolicy, warnings: &mut Vec<String>) -> Option<Policy<'a>> {
    let (namespace, name) = strait_model::namespace_and_name(&np.metadata);
    let at = format!("NetworkPolicy {namespace}/{name}");
    let Some(spec) = np.spec.as_ref() else {
        warnings.push(format!("{at}: no spec; left out"));
        return None;
    };
    let selector = match spec.pod_selector.as_ref() {
        None => Selector::default(),
        Some(s) => match Selector::parse(s, "spec.podSelector") {
            Ok(s) => s,
            Err(e) => {
                warnings.push(format!("{at}: {e}; left out"));
                return None;
            }
        },
    };
    let has_egress_rules = spec.egress.as_ref().is_some_and(|e| !e.is_empty());
    let (mut ingress, mut egress) = (false, false);
    // An empty list is no list: the API server defaults both the same way.
    match spec.policy_types.as_ref().filter(|t| !t.is_empty()) {
        None => (ingress, egress) = (true, has_egress_rules),
        Some(types) => {
            for (i, t) in types.iter().enumerate() {
                match t.as_str() {
                    "Ingress" => ingress = true,
                    "Egress" => egress = true,
                    other => {
                        warnings.push(format!(
                            "{at}: spec.policyTypes[{i}] {other:?} is not Ingress or Egress; left out"
                        ));
                        return None;
                    }
                }
            }
        }
    }
    let mut bad = Vec::new();
    let ingress = ingress.then(|| {
        let rules = spec.ingress.as_deref().unwrap_or_default();
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let field = format!("spec.ingress[{i}]");
                rule(
                    namespace,
                    r.from.as_deref(),
                    r.ports.as_deref(),
                    &field,
                    "from",
                    &mut bad,
                )
            })
            .collect()
    });
    let egress = egress.then(|| {
        let rules = spec.egress.as_deref().unwrap_or_default();
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let field = format!("spec.egress[{i}]");
                rule(
                    namespace,
                    r.to.as_deref(),
                    r.ports.as_deref(),
                    &field,
                    "to",
                    &mut bad,
                )
            })
            .collect()
    });
    warnings.extend(
        bad.into_iter()
            .map(|e| format!("{at}: {e}; it matches nothing")),
    );
    Some(Policy {
        namespace,
        name,
        selector,
        ingress,
        egress,
    })
}

fn rule<'a>(
    namespace: &str,
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&'a [NetworkPolicyPort]>,
    field: &str,
    peers_field: &str,
    bad: &mut Vec<String>,
) -> Rule<'a> {
    let peers = peers.filter(|p| !p.is_empty()).map(|list| {
        list.iter()
            .enumerate()
            .map(|(j, p)| {
                let at = format!("{field}.{peers_field}[{j}]");
                peer(namespace, p, &at).unwrap_or_else(|e| {
                    bad.push(e);
                    Peer::Nothing
                })
            })
            .collect()
    });
    let ports = ports
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(j, p)| (format!("{field}.ports[{j}]"), p))
        .collect();
    Rule { peers, ports }
}

fn peer(namespace: &str, p: &NetworkPolicyPeer, at: &str) -> Result<Peer, String> {
    match (&p.ip_block, &p.namespace_selector, &p.pod_selector) {
        (Some(block), None, None) => {
            let field = format!("{at}.ipBlock");
            let except = block.except.as_deref().unwrap_or_default();
            Ok(match ip_block(&block.cidr, except, &field)? {
                Some(intervals) => Peer::Block(intervals),
                None => Peer::Nothing,
            })
        }
        (Some(_), _, _) => Err(format!(
            "{at}: ipBlock cannot go with namespaceSelector or podSelector"
        )),
        (None, None, None) => Err(format!(
            "{at}: needs podSelector, namespaceSelector or ipBlock"
        )),
        (None, ns, pods) => {
            let namespaces = match ns {
                None => Namespaces::Own(namespace.to_string()),
                Some(s) => {
                    Namespaces::Matching(Selector::parse(s, &format!("{at}.namespaceSelector"))?)
                }
            };
            let pods = match pods {
                None => Selector::default(),
                Some(s) => Selector::parse(s, &format!("{at}.podSelector"))?,
            };
            Ok(Peer::Pods { namespaces, pods })
        }
    }
}
