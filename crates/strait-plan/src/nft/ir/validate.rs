//! [`Table::validate`]: what nft would reject, checked before a table is
//! rendered (see the module docs of [`super`]).

use super::*;
use std::collections::{HashMap, HashSet};

/// Why a table would be rejected by nft, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nft table {table}: {message}")]
pub struct NftError {
    pub table: String,
    pub message: String,
}

impl Table {
    pub fn new(family: Family, name: impl Into<String>) -> Self {
        Table {
            family,
            name: name.into(),
            sets: Vec::new(),
            concat_sets: Vec::new(),
            counters: Vec::new(),
            maps: Vec::new(),
            chains: Vec::new(),
        }
    }

    pub fn map(&self, name: &str) -> Option<&Map> {
        self.maps.iter().find(|m| m.name == name)
    }

    pub fn set(&self, name: &str) -> Option<&Set> {
        self.sets.iter().find(|s| s.name == name)
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// Checks the table for everything nft would refuse. Linear in the
    /// table's size (chains and sets are indexed by name first).
    pub fn validate(&self) -> Result<(), NftError> {
        let fail = |message: String| NftError {
            table: format!("{} {}", self.family.as_str(), self.name),
            message,
        };
        check_name(&self.name).map_err(|m| fail(format!("name: {m}")))?;
        let mut names = HashSet::new();
        for set in &self.sets {
            let at = format!("set {}", set.name);
            check_name(&set.name).map_err(|m| fail(format!("{at}: {m}")))?;
            if !names.insert(set.name.as_str()) {
                return Err(fail(format!("{at}: defined twice")));
            }
            self.check_set(set)
                .map_err(|m| fail(format!("{at}: {m}")))?;
        }
        for set in &self.concat_sets {
            let at = format!("set {}", set.name);
            check_name(&set.name).map_err(|m| fail(format!("{at}: {m}")))?;
            if !names.insert(set.name.as_str()) {
                return Err(fail(format!("{at}: defined twice")));
            }
            check_concat_set(set).map_err(|m| fail(format!("{at}: {m}")))?;
        }
        let mut chains: HashMap<&str, &Chain> = HashMap::with_capacity(self.chains.len());
        for chain in &self.chains {
            let at = format!("chain {}", chain.name);
            check_name(&chain.name).map_err(|m| fail(format!("{at}: {m}")))?;
            if chains.insert(chain.name.as_str(), chain).is_some() {
                return Err(fail(format!("{at}: defined twice")));
            }
        }
        for counter in &self.counters {
            let at = format!("counter {}", counter.name);
            check_name(&counter.name).map_err(|m| fail(format!("{at}: {m}")))?;
            check_comment(counter.comment.as_deref()).map_err(|m| fail(format!("{at}: {m}")))?;
        }
        let mut counter_names = HashSet::new();
        if let Some(c) = self
            .counters
            .iter()
            .find(|c| !counter_names.insert(c.name.as_str()))
        {
            return Err(fail(format!("counter {}: defined twice", c.name)));
        }
        let index = Index {
            sets: self.sets.iter().map(|s| (s.name.as_str(), s)).collect(),
            concat_sets: self
                .concat_sets
                .iter()
                .map(|s| (s.name.as_str(), s))
                .collect(),
            maps: self.maps.iter().map(|m| (m.name.as_str(), m)).collect(),
            counters: self.counters.iter().map(|c| c.name.as_str()).collect(),
            chains,
        };
        for map in &self.maps {
            let at = format!("map {}", map.name);
            check_name(&map.name).map_err(|m| fail(format!("{at}: {m}")))?;
            if !names.insert(map.name.as_str()) {
                return Err(fail(format!(
                    "{at}: defined twice (set and map names share one namespace)"
                )));
            }
            check_map(&index, map).map_err(|m| fail(format!("{at}: {m}")))?;
        }
        for chain in &self.chains {
            let at = format!("chain {}", chain.name);
            if let Some(base) = &chain.base {
                check_base(base).map_err(|m| fail(format!("{at}: {m}")))?;
            }
            for (r, rule) in chain.rules.iter().enumerate() {
                self.check_rule(&index, chain, rule)
                    .map_err(|m| fail(format!("{at}, rule {}: {m}", r + 1)))?;
            }
        }
        for chain in &self.chains {
            if let Some(base) = &chain.base {
                check_reachable(&index, chain, base)
                    .map_err(|m| fail(format!("base chain {}: {m}", chain.name)))?;
            }
        }
        Ok(())
    }

    fn check_set(&self, set: &Set) -> Result<(), String> {
        let family = set.kind.family();
        if !self.family.carries(family) {
            return Err(format!(
                "type {} in a {} table",
                set.kind.as_str(),
                self.family.as_str()
            ));
        }
        check_comment(set.comment.as_deref())?;
        for e in &set.elements {
            if IpFamily::of(e) != family {
                return Err(format!("element {e} is not of type {}", set.kind.as_str()));
            }
            if e.trunc() != *e {
                return Err(format!("element {e} has host bits set"));
            }
            if !set.interval && e.prefix_len() != e.max_prefix_len() {
                return Err(format!(
                    "element {e} is a prefix but the set has no interval flag"
                ));
            }
        }
        let mut sorted = set.elements.clone();
        sorted.sort();
        for pair in sorted.windows(2) {
            if pair[0].contains(&pair[1].network()) {
                return Err(format!("elements {} and {} overlap", pair[0], pair[1]));
            }
        }
        Ok(())
    }

    fn check_rule(&self, index: &Index, chain: &Chain, rule: &Rule) -> Result<(), String> {
        check_comment(rule.comment.as_deref())?;
        if rule.matches.is_empty()
            && rule.statements.is_empty()
            && !rule.counter
            && rule.verdict == Verdict::Continue
        {
            return Err("does nothing (no match, counter or verdict)".to_string());
        }
        let mut ported_proto = false;
        let mut proto = None;
        for m in &rule.matches {
            match m {
                Match::SaddrIn { family, addrs, .. } | Match::DaddrIn { family, addrs, .. } => {
                    self.check_addrs(index, *family, addrs)?
                }
                Match::Iifname { name, .. } | Match::Oifname { name, .. } => {
                    // Linux allows '"' in names; an nft string cannot hold it.
                    if !strait_model::config::valid_interface_name(name) || name.contains('"') {
                        return Err(format!("{name:?} is not an interface name nft can match"));
                    }
                }
                Match::L4Proto(p) => {
                    ported_proto = p.has_ports();
                    proto = Some(*p);
                }
                Match::FibLocal(_) => {}
                Match::Mark { mask, value } => {
                    if value & !mask != 0 {
                        return Err(format!(
                            "mark value {value:#x} has bits outside mask {mask:#x}"
                        ));
                    }
                }
                Match::Dport { ports, .. } => {
                    if !ported_proto {
                        return Err(
                            "th dport needs an earlier meta l4proto tcp, udp or sctp".into()
                        );
                    }
                    if ports.is_empty() {
                        return Err("th dport with no ports".into());
                    }
                    if let Some(p) = ports.iter().find(|p| p.first > p.last) {
                        return Err(format!("port range {}-{} is reversed", p.first, p.last));
                    }
                }
                Match::CtState(states) => {
                    if states.is_empty() {
                        return Err("ct state with no states".into());
                    }
                }
                Match::ConcatIn { key, set } => {
                    let s = index
                        .concat_sets
                        .get(set.as_str())
                        .ok_or_else(|| format!("set @{set} does not exist"))?;
                    check_key(key, &s.key, ported_proto)
                        .map_err(|m| format!("match against set @{set}: {m}"))?;
                }
            }
        }
        if rule.statements.len() > MAX_RULE_STATEMENTS {
            return Err(format!(
                "{} statements in one rule (at most {MAX_RULE_STATEMENTS}: the kernel takes 128 expressions per rule)",
                rule.statements.len()
            ));
        }
        if let Some(i) = rule
            .statements
            .iter()
            .position(|s| matches!(s, Statement::LimitLog { .. }))
        {
            if i + 1 != rule.statements.len() || rule.verdict != Verdict::Continue {
                return Err(
                    "a rate-limited log must be the rule's last statement, with no verdict".into(),
                );
            }
        }
        for st in &rule.statements {
            match st {
                Statement::MarkOr(bits) => {
                    if *bits == 0 {
                        return Err("meta mark set with no bits".into());
                    }
                }
                Statement::CtMarkSet(_) => {}
                Statement::CtMarkSetMap { key, map } => {
                    let m = index
                        .maps
                        .get(map.as_str())
                        .ok_or_else(|| format!("map @{map} does not exist"))?;
                    if m.value != MapValue::Mark || m.key != [key.key_type()] {
                        return Err(format!(
                            "ct mark set {} map @{map}: the map does not map that to a mark",
                            key.text()
                        ));
                    }
                }
                Statement::NamedCounter(name) => {
                    if !index.counters.contains(name.as_str()) {
                        return Err(format!("counter {name} does not exist"));
                    }
                }
                Statement::LimitLog {
                    per_second, prefix, ..
                } => {
                    if *per_second == 0 {
                        return Err("log limit of 0 packets a second".into());
                    }
                    if prefix.len() > MAX_LOG_PREFIX_LEN
                        || prefix.chars().any(|c| c == '"' || c.is_control())
                    {
                        return Err(format!(
                            "log prefix {prefix:?} is longer than {MAX_LOG_PREFIX_LEN} bytes or holds '\"' or control characters"
                        ));
                    }
                }
                Statement::UpdateSaddr(set) => match index.sets.get(set.as_str()) {
                    None => return Err(format!("update of missing set {set}")),
                    Some(s) if s.timeout.is_none() => {
                        return Err(format!("update of set {set}, which has no timeout"))
                    }
                    Some(_) => {}
                },
            }
        }
        check_verdict(index, chain, &rule.verdict, ported_proto, proto)
    }

    fn check_addrs(&self, index: &Index, family: IpFamily, addrs: &Addrs) -> Result<(), String> {
        if !self.family.carries(family) {
            return Err(format!(
                "{} match in a {} table",
                family.keyword(),
                self.family.as_str()
            ));
        }
        match addrs {
            Addrs::Set(name) => {
                let set = index
                    .sets
                    .get(name.as_str())
                    .ok_or_else(|| format!("set @{name} does not exist"))?;
                if set.kind.family() != family {
                    return Err(format!(
                        "{} match against set @{name} of type {}",
                        family.keyword(),
                        set.kind.as_str()
                    ));
                }
            }
            Addrs::Cidrs(list) => {
                if list.is_empty() {
                    return Err("address match with no addresses".into());
                }
                if let Some(c) = list.iter().find(|c| IpFamily::of(c) != family) {
                    return Err(format!("{c} in an {} match", family.keyword()));
                }
            }
        }
        Ok(())
    }
}

/// The table's objects by name, for [`Table::validate`].
struct Index<'a> {
    sets: HashMap<&'a str, &'a Set>,
    concat_sets: HashMap<&'a str, &'a ConcatSet>,
    counters: HashSet<&'a str>,
    maps: HashMap<&'a str, &'a Map>,
    chains: HashMap<&'a str, &'a Chain>,
}

fn check_target(index: &Index, chain: &Chain, target: &str) -> Result<(), String> {
    match index.chains.get(target) {
        None => Err(format!("jump to missing chain {target}")),
        Some(c) if c.base.is_some() => Err(format!("jump to base chain {target}")),
        Some(c) if c.name == chain.name => Err("jump to itself".into()),
        Some(_) => Ok(()),
    }
}

/// A verdict in `chain` after matches that left `proto` (the last
/// `meta l4proto`; `ported`: it has ports).
fn check_verdict(
    index: &Index,
    chain: &Chain,
    verdict: &Verdict,
    ported: bool,
    proto: Option<L4Proto>,
) -> Result<(), String> {
    if let Some(base) = &chain.base {
        hook_fits(verdict, base)?;
    }
    match verdict {
        Verdict::Jump(target) | Verdict::Goto(target) => check_target(index, chain, target)?,
        Verdict::VerdictMap { key, map } | Verdict::DnatMap { key, map } => {
            let m = index
                .maps
                .get(map.as_str())
                .ok_or_else(|| format!("map @{map} does not exist"))?;
            let want = if matches!(verdict, Verdict::VerdictMap { .. }) {
                MapValue::Verdict
            } else {
                MapValue::Ipv4AddrPort
            };
            if m.value != want {
                return Err(format!("map @{map} does not map to {want:?}"));
            }
            let types: Vec<KeyType> = key.iter().map(|k| k.key_type()).collect();
            if types != m.key {
                return Err(format!("lookup key does not match the type of map @{map}"));
            }
            if key.contains(&KeyExpr::Dport) && !key.contains(&KeyExpr::L4Proto) && !ported {
                return Err("th dport in a key needs meta l4proto (in the key or earlier)".into());
            }
            if want == MapValue::Ipv4AddrPort && !key.contains(&KeyExpr::L4Proto) && !ported {
                return Err("dnat to a port needs meta l4proto (in the key or earlier)".into());
            }
        }
        Verdict::NumgenVmap { targets } => {
            if targets.is_empty() {
                return Err("numgen over no verdicts".into());
            }
            for t in targets {
                if matches!(t, Verdict::NumgenVmap { .. } | Verdict::VerdictMap { .. }) {
                    return Err("numgen vmap element must be a plain verdict".into());
                }
                check_verdict(index, chain, t, ported, proto)?;
            }
        }
        Verdict::Dnat { port, .. } => {
            if port.is_some() && !ported {
                return Err("dnat to a port needs an earlier meta l4proto tcp, udp or sctp".into());
            }
        }
        Verdict::Reject(with) => {
            if *with == RejectWith::TcpReset && proto != Some(L4Proto::Tcp) {
                return Err("reject with tcp reset needs an earlier meta l4proto tcp".into());
            }
        }
        Verdict::Masquerade { .. }
        | Verdict::Accept
        | Verdict::Drop
        | Verdict::Return
        | Verdict::Continue => {}
    }
    Ok(())
}

/// Whether a NAT or reject verdict may run under `base`'s hook (the kernel
/// checks this on commit, for every chain a base chain reaches; `nft -c`
/// does not).
fn hook_fits(verdict: &Verdict, base: &BaseChain) -> Result<(), String> {
    let nat = base.kind == ChainType::Nat;
    let (ok, what) = match verdict {
        Verdict::Dnat { .. } | Verdict::DnatMap { .. } => (
            nat && matches!(base.hook, Hook::Prerouting | Hook::Output),
            "dnat outside a nat prerouting or output chain",
        ),
        Verdict::Reject(_) => (
            base.kind == ChainType::Filter
                && matches!(
                    base.hook,
                    Hook::Prerouting | Hook::Input | Hook::Forward | Hook::Output
                ),
            "reject outside a filter prerouting, input, forward or output chain",
        ),
        Verdict::Masquerade { .. } => (
            nat && base.hook == Hook::Postrouting,
            "masquerade outside a nat postrouting chain",
        ),
        Verdict::NumgenVmap { targets } => {
            for t in targets {
                hook_fits(t, base)?;
            }
            (true, "")
        }
        _ => (true, ""),
    };
    if ok {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

/// The chains a verdict continues in.
fn targets<'a>(index: &Index<'a>, verdict: &'a Verdict, out: &mut Vec<&'a str>) {
    match verdict {
        Verdict::Jump(t) | Verdict::Goto(t) => out.push(t),
        Verdict::NumgenVmap { targets: list } => {
            for v in list {
                targets(index, v, out);
            }
        }
        Verdict::VerdictMap { map, .. } => {
            if let Some(m) = index.maps.get(map.as_str()) {
                for (_, v) in &m.elements {
                    if let MapData::Verdict(v) = v {
                        targets(index, v, out);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Checks every chain a base chain reaches (through jumps, gotos, numgen
/// and verdict maps) against that base chain's hook.
fn check_reachable(index: &Index, base_chain: &Chain, base: &BaseChain) -> Result<(), String> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut todo: Vec<&str> = Vec::new();
    for rule in &base_chain.rules {
        targets(index, &rule.verdict, &mut todo);
    }
    while let Some(name) = todo.pop() {
        if !seen.insert(name) {
            continue;
        }
        let Some(chain) = index.chains.get(name) else {
            continue;
        };
        for (r, rule) in chain.rules.iter().enumerate() {
            hook_fits(&rule.verdict, base)
                .map_err(|m| format!("chain {name}, rule {} (reached from here): {m}", r + 1))?;
            targets(index, &rule.verdict, &mut todo);
        }
    }
    Ok(())
}

fn check_map(index: &Index, map: &Map) -> Result<(), String> {
    if map.key.is_empty() {
        return Err("map with an empty key type".into());
    }
    check_comment(map.comment.as_deref())?;
    let mut seen =
        foldhash::HashSet::with_capacity_and_hasher(map.elements.len(), Default::default());
    // The last target found (10,000 elements of one map go to one chain).
    let mut known: Option<&str> = None;
    // Map elements are not in a chain: check gotos by existence only.
    let nowhere = Chain {
        name: String::new(),
        base: None,
        rules: Vec::new(),
    };
    if map.key.contains(&KeyType::Numgen(0)) {
        return Err("numgen random mod 0 in the key".into());
    }
    for (key, data) in &map.elements {
        if !key_fits(key, &map.key) || (!map.interval && key.iter().any(|k| k.is_range())) {
            return Err(format!("element key {key:?} does not match the map's type"));
        }
        if !seen.insert(key) {
            return Err(format!("element key {key:?} appears twice"));
        }
        match (map.value, data) {
            (MapValue::Verdict, MapData::Verdict(verdict)) => match verdict {
                Verdict::Accept | Verdict::Drop | Verdict::Return => {}
                Verdict::Jump(t) | Verdict::Goto(t) => {
                    if known != Some(t.as_str()) {
                        check_target(index, &nowhere, t)?;
                        known = Some(t.as_str());
                    }
                }
                other => return Err(format!("{other:?} cannot be a map element's verdict")),
            },
            (MapValue::Mark, MapData::Mark(_)) => {}
            (MapValue::Ipv4AddrPort, MapData::AddrPort(_, port)) => {
                if *port == 0 {
                    return Err(format!("element {key:?} maps to port 0"));
                }
            }
            (value, data) => {
                return Err(format!(
                    "element {key:?}: {data:?} is not a value of type {value:?}"
                ))
            }
        }
    }
    Ok(())
}

fn check_concat_set(set: &ConcatSet) -> Result<(), String> {
    if set.key.len() < 2 {
        return Err("a concatenation needs at least two components".into());
    }
    if set.key.iter().any(|k| matches!(k, KeyType::Numgen(_))) {
        return Err("numgen in a set's type".into());
    }
    check_comment(set.comment.as_deref())?;
    for e in &set.elements {
        if !key_fits(e, &set.key) {
            return Err(format!("element {e:?} does not match the set's type"));
        }
        if !set.interval && e.iter().any(|k| k.is_range()) {
            return Err(format!(
                "element {e:?} holds a range but the set has no interval flag"
            ));
        }
    }
    Ok(())
}

/// A lookup key against a set or map of type `types` (`ported`: an
/// earlier match named a protocol with ports).
fn check_key(key: &[KeyExpr], types: &[KeyType], ported: bool) -> Result<(), String> {
    let have: Vec<KeyType> = key.iter().map(|k| k.key_type()).collect();
    if have != types {
        return Err("key does not match the type".into());
    }
    if key.contains(&KeyExpr::Dport) && !key.contains(&KeyExpr::L4Proto) && !ported {
        return Err("th dport in a key needs meta l4proto (in the key or earlier)".into());
    }
    Ok(())
}

/// nft identifiers: a letter or `_`, then letters, digits, `_`, `-`, `.`.
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok
        || name.len() > 255
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!("{name:?} is not a valid nft name"));
    }
    Ok(())
}

fn check_comment(comment: Option<&str>) -> Result<(), String> {
    if let Some(c) = comment {
        if c.len() > MAX_COMMENT_LEN || c.chars().any(|ch| ch == '"' || ch.is_control()) {
            return Err(format!(
                "comment {c:?} is longer than {MAX_COMMENT_LEN} bytes or holds '\"' or control characters"
            ));
        }
    }
    Ok(())
}

fn check_base(base: &BaseChain) -> Result<(), String> {
    let ok = match base.kind {
        ChainType::Filter => true,
        ChainType::Nat => base.hook != Hook::Forward,
        ChainType::Route => base.hook == Hook::Output,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "type {} cannot use hook {}",
            base.kind.as_str(),
            base.hook.as_str()
        ))
    }
}
