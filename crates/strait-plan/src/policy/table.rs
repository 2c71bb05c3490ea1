//! The policy part of the `inet strait` table. Per packet the cost does not
//! grow with policies or pods: one set lookup says whether the pod is
//! isolated, one interval-map lookup finds the peer's atom, at most three
//! allow-set lookups whether the flow is allowed (two exact-match hash
//! sets, whose cost does not grow with their elements, and an interval set
//! holding only port ranges), one map lookup picks the drop chain that
//! counts and logs.
//!
//! ```text
//! forward:          ct state invalid drop
//!                   ct state established,related accept
//!                   ip saddr @egress-isolated jump policy-egress
//!                   ip daddr @ingress-isolated jump policy-ingress
//!                   ... (the egress accepts)
//! policy-ingress:   ct mark set 0x0
//!                   ct mark set ip saddr map @ingress-peers     (the peer's atom)
//!                   ip daddr . ct mark . meta l4proto . th dport @ingress-allow-ports return
//!                   ip daddr . ct mark @ingress-allow-any return
//!                   ip daddr . ct mark . meta l4proto . th dport @ingress-allow-ranges return
//!                   ip daddr vmap @ingress-drop      (-> in-drop-<hash>)
//!                   drop
//! in-drop-<hash>:   counter name "pol-in.<ns>.<name>" ... limit ... log group 90 prefix "..."
//!                   drop
//! ```
//! and the same for egress with source and destination swapped; base chain
//! `policy-input` (hook input) accepts established flows and jumps to
//! `policy-egress` for this node's egress-isolated pods. The drop
//! chains are per set of policies selecting a pod (every policy selecting
//! the pod counts the drop).

use super::build::Isolation;
use super::rules::{Direction, Policy};
use super::{counter_name, LOG_BURST, LOG_GROUP, LOG_PER_SECOND};
use crate::egress::FORWARD_CHAIN;
use crate::nft::{
    Addrs, BaseChain, Chain, ChainType, ConcatSet, CounterObj, CtState, Hook, IpFamily, Key,
    KeyExpr, KeyType, Map, MapData, MapValue, Match, Policy as ChainPolicy, Rule, Set, SetKind,
    Statement, Table, Verdict,
};
use crate::services::fnv1a;
use ipnet::{IpNet, Ipv4Net};
use std::collections::{BTreeMap, BTreeSet};

/// Named-counter statements per rule (each is one kernel expression; the
/// kernel allows 128 per rule).
pub const COUNTERS_PER_RULE: usize = 100;

pub fn isolated_set(d: Direction) -> String {
    format!("{}-isolated", d.as_str())
}

/// `pod . atom`: every protocol and port (hash set).
pub fn allow_any_set(d: Direction) -> String {
    format!("{}-allow-any", d.as_str())
}

/// `pod . atom . proto . port`, one exact port (hash set).
pub fn allow_ports_set(d: Direction) -> String {
    format!("{}-allow-ports", d.as_str())
}

/// `pod . atom . proto . port-range` (interval set).
pub fn allow_ranges_set(d: Direction) -> String {
    format!("{}-allow-ranges", d.as_str())
}

pub fn peers_map(d: Direction) -> String {
    format!("{}-peers", d.as_str())
}

pub fn drop_map(d: Direction) -> String {
    format!("{}-drop", d.as_str())
}

pub fn policy_chain(d: Direction) -> String {
    format!("policy-{}", d.as_str())
}

/// The log prefix of a drop chain: `strait-policy <chain>`.
pub fn log_prefix(chain: &str) -> String {
    format!("strait-policy {chain}")
}

/// (this pod, peer) in the order the allow set's key has them.
fn keys(d: Direction) -> (KeyExpr, KeyExpr) {
    match d {
        Direction::Ingress => (KeyExpr::Ipv4Daddr, KeyExpr::Ipv4Saddr),
        Direction::Egress => (KeyExpr::Ipv4Saddr, KeyExpr::Ipv4Daddr),
    }
}

/// `key @set return`: the flow is allowed.
fn allowed_by(key: Vec<KeyExpr>, set: String) -> Rule {
    Rule::uncounted(
        vec![Match::ConcatIn { key, set }],
        vec![],
        Verdict::Return,
        Some("allowed by a policy"),
    )
}

/// Adds one direction's counters, sets, maps and chains.
pub fn add_direction(table: &mut Table, d: Direction, policies: &[Policy], iso: &Isolation) {
    let short = d.short();
    for p in policies.iter().filter(|p| p.rules(d).is_some()) {
        table.counters.push(CounterObj {
            name: counter_name(p.namespace, p.name, d),
            comment: Some(clip(&format!("{} {}", p.key(), d.as_str()))),
        });
    }
    table.sets.push(Set {
        name: isolated_set(d),
        kind: SetKind::Ipv4Addr,
        interval: false,
        elements: iso
            .pods
            .keys()
            .map(|ip| IpNet::V4(Ipv4Net::from(*ip)))
            .collect(),
        comment: Some(format!(
            "this node's pods selected by a policy with {}",
            d.as_str()
        )),
        timeout: None,
    });
    let mut allow = super::elements::Allow::default();
    for (ip, allowed) in &iso.allowed {
        super::elements::keys(*ip, allowed, &mut allow);
    }
    let ported = vec![
        KeyType::Ipv4Addr,
        KeyType::Mark,
        KeyType::InetProto,
        KeyType::InetService,
    ];
    table.concat_sets.extend([
        ConcatSet {
            name: allow_ports_set(d),
            key: ported.clone(),
            elements: allow.ports,
            comment: Some("pod . peer atom . protocol . port allowed".to_string()),
            interval: false,
        },
        ConcatSet {
            name: allow_any_set(d),
            key: vec![KeyType::Ipv4Addr, KeyType::Mark],
            elements: allow.any,
            comment: Some("pod . peer atom: every protocol and port allowed".to_string()),
            interval: false,
        },
        ConcatSet {
            name: allow_ranges_set(d),
            key: ported,
            elements: allow.ranges,
            comment: Some("pod . peer atom . protocol . port range allowed".to_string()),
            interval: true,
        },
    ]);
    table.maps.push(Map {
        name: peers_map(d),
        key: vec![KeyType::Ipv4Addr],
        value: MapValue::Mark,
        elements: super::elements::peer_elements(&iso.peers),
        comment: Some("peer address: its atom (the peer groups holding it)".to_string()),
        interval: true,
    });
    // One drop chain per set of policies selecting a pod; names hash the
    // set, so they stay when other pods or policies change.
    let classes: BTreeSet<&Vec<usize>> = iso.pods.values().collect();
    let mut chain_of: BTreeMap<&Vec<usize>, String> = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for class in classes {
        let keys: Vec<String> = class.iter().map(|i| policies[*i].key()).collect();
        let mut name = format!("{short}-drop-{:08x}", fnv1a(&keys.join(",")));
        while !taken.insert(name.clone()) {
            name.push('x');
        }
        let counters: Vec<Statement> = class
            .iter()
            .map(|i| {
                Statement::NamedCounter(counter_name(policies[*i].namespace, policies[*i].name, d))
            })
            .collect();
        // The kernel takes at most 128 expressions per rule: a pod selected
        // by many policies gets its counters over several rules.
        let mut rules: Vec<Rule> = counters
            .chunks(COUNTERS_PER_RULE)
            .map(|c| Rule::uncounted(vec![], c.to_vec(), Verdict::Continue, None))
            .collect();
        let log = Statement::LimitLog {
            per_second: LOG_PER_SECOND,
            burst: LOG_BURST,
            group: LOG_GROUP,
            prefix: log_prefix(&name),
        };
        match rules.last_mut() {
            Some(last) if last.statements.len() < COUNTERS_PER_RULE => last.statements.push(log),
            _ => rules.push(Rule::uncounted(vec![], vec![log], Verdict::Continue, None)),
        }
        rules.push(Rule::uncounted(
            vec![],
            vec![],
            Verdict::Drop,
            Some(&clip(&keys.join(" "))),
        ));
        table.chains.push(Chain {
            name: name.clone(),
            base: None,
            rules,
        });
        chain_of.insert(class, name);
    }
    table.maps.push(Map {
        name: drop_map(d),
        key: vec![KeyType::Ipv4Addr],
        value: MapValue::Verdict,
        elements: iso
            .pods
            .iter()
            .map(|(ip, class)| {
                (
                    smallvec::smallvec![Key::Ipv4(*ip)],
                    MapData::Verdict(Verdict::Jump(chain_of[class].clone())),
                )
            })
            .collect(),
        comment: Some(format!(
            "isolated pod: the drop chain of its {} policies",
            d.as_str()
        )),
        interval: false,
    });
    let (this, peer) = keys(d);
    table.chains.push(Chain {
        name: policy_chain(d),
        base: None,
        rules: vec![
            // The peer's atom into ct mark (0: in no group). A new flow's
            // ct mark is scratch space here: nothing else in strait reads it.
            Rule::uncounted(
                vec![],
                vec![Statement::CtMarkSet(0)],
                Verdict::Continue,
                None,
            ),
            Rule::uncounted(
                vec![],
                vec![Statement::CtMarkSetMap {
                    key: peer,
                    map: peers_map(d),
                }],
                Verdict::Continue,
                None,
            ),
            // Most likely first: exact ports, then everything, then
            // ranges (the only lookup whose cost grows with elements).
            allowed_by(
                vec![this, KeyExpr::CtMark, KeyExpr::L4Proto, KeyExpr::Dport],
                allow_ports_set(d),
            ),
            allowed_by(vec![this, KeyExpr::CtMark], allow_any_set(d)),
            allowed_by(
                vec![this, KeyExpr::CtMark, KeyExpr::L4Proto, KeyExpr::Dport],
                allow_ranges_set(d),
            ),
            Rule::uncounted(
                vec![],
                vec![],
                Verdict::VerdictMap {
                    key: vec![this],
                    map: drop_map(d),
                },
                None,
            ),
            Rule::uncounted(vec![], vec![], Verdict::Drop, None),
        ],
    });
}

/// Puts the conntrack shortcut and the two jumps first in the forward
/// chain, and adds the input chain for egress to this node.
pub fn hook_forward(table: &mut Table) {
    let set = |d: Direction| Addrs::Set(isolated_set(d));
    let counted = |matches: Vec<Match>, verdict: Verdict, comment: &str| Rule {
        matches,
        statements: vec![],
        verdict,
        counter: true,
        comment: Some(comment.to_string()),
    };
    // Both hooks pass established flows and send isolated pods' egress to
    // the egress chain.
    let established = || {
        counted(
            vec![Match::CtState(vec![CtState::Established, CtState::Related])],
            Verdict::Accept,
            "policy: replies and established flows",
        )
    };
    let egress = |comment: &str| {
        counted(
            vec![Match::SaddrIn {
                family: IpFamily::V4,
                addrs: set(Direction::Egress),
                negate: false,
            }],
            Verdict::Jump(policy_chain(Direction::Egress)),
            comment,
        )
    };
    let rules = vec![
        counted(
            vec![Match::CtState(vec![CtState::Invalid])],
            Verdict::Drop,
            "policy: invalid",
        ),
        established(),
        egress("policy: egress of this node's isolated pods"),
        counted(
            vec![Match::DaddrIn {
                family: IpFamily::V4,
                addrs: set(Direction::Ingress),
                negate: false,
            }],
            Verdict::Jump(policy_chain(Direction::Ingress)),
            "policy: ingress of this node's isolated pods",
        ),
    ];
    if let Some(chain) = table.chains.iter_mut().find(|c| c.name == FORWARD_CHAIN) {
        chain.rules.splice(0..0, rules);
    }
    // A pod's traffic to its own node's addresses goes to input, not
    // forward: egress policy holds there too (replies to the node's own
    // connections, e.g. kubelet probes, are established and pass).
    table.chains.push(Chain {
        name: INPUT_CHAIN.to_string(),
        base: Some(BaseChain {
            kind: ChainType::Filter,
            hook: Hook::Input,
            priority: crate::egress::PRIORITY_FILTER,
            policy: ChainPolicy::Accept,
        }),
        rules: vec![
            established(),
            egress("policy: egress of this node's isolated pods to this node"),
        ],
    });
}

/// The base chain policing pods' traffic to their own node.
pub const INPUT_CHAIN: &str = "policy-input";

/// At most an nft comment's length.
fn clip(s: &str) -> String {
    if s.len() <= crate::nft::MAX_COMMENT_LEN {
        return s.to_string();
    }
    let mut end = crate::nft::MAX_COMMENT_LEN - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
