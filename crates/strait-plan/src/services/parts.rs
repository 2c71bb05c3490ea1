//! Small constructors of IR rules, chains, maps and sets used across the
//! service compiler, and the two lookup keys.

use super::*;

pub(super) fn mark() -> Statement {
    Statement::MarkOr(MASQUERADE_MARK)
}

pub(super) fn regular(name: String, rules: Vec<Rule>) -> Chain {
    Chain {
        name,
        base: None,
        rules,
    }
}

pub(super) fn base(
    name: &str,
    kind: ChainType,
    hook: Hook,
    priority: i32,
    rules: Vec<Rule>,
) -> Chain {
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

pub(super) fn vmap(key: &[KeyExpr], map: &str) -> Verdict {
    Verdict::VerdictMap {
        key: key.to_vec(),
        map: map.to_string(),
    }
}

/// NodePorts answer on this node's addresses, but not on 127.0.0.0/8
/// (DNAT from loopback to a pod would need route_localnet).
pub(super) fn nodeport_matches() -> Vec<Match> {
    vec![
        Match::FibLocal(FibAddr::Daddr),
        Match::DaddrIn {
            family: IpFamily::V4,
            addrs: Addrs::Cidrs(vec!["127.0.0.0/8".parse().expect("a CIDR")]),
            negate: true,
        },
    ]
}

pub(super) const ADDR_KEY: [KeyExpr; 3] = [KeyExpr::Ipv4Daddr, KeyExpr::L4Proto, KeyExpr::Dport];
pub(super) const PORT_KEY: [KeyExpr; 2] = [KeyExpr::L4Proto, KeyExpr::Dport];

pub(super) fn map(
    name: &str,
    key: &[KeyType],
    elements: Vec<(KeyVec, Verdict)>,
    comment: &str,
) -> Map {
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

/// First wins for a key listed twice (two services claiming one address).
pub(super) fn unique(mut elements: Vec<(KeyVec, Verdict)>) -> Vec<(KeyVec, Verdict)> {
    let mut seen = foldhash::HashSet::with_capacity_and_hasher(elements.len(), Default::default());
    elements.retain(|(k, _)| seen.insert(k.clone()));
    elements
}

pub(super) fn concat_set(
    name: &str,
    key: &[KeyType],
    elements: Vec<KeyVec>,
    comment: &str,
) -> ConcatSet {
    ConcatSet {
        interval: false,
        name: name.to_string(),
        key: key.to_vec(),
        elements,
        comment: Some(comment.to_string()),
    }
}

/// `<key> @set meta mark set meta mark | 0x4000`, after `matches`.
pub(super) fn mark_if(mut matches: Vec<Match>, key: &[KeyExpr], set: &str, comment: &str) -> Rule {
    matches.push(Match::ConcatIn {
        key: key.to_vec(),
        set: set.to_string(),
    });
    Rule::uncounted(matches, vec![mark()], Verdict::Continue, Some(comment))
}
