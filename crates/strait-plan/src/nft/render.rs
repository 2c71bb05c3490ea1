//! Renders a [`Table`] as an nft script that replaces the table in one atomic
//! transaction when fed to `nft -f -`: `add table` (so the next line cannot
//! fail), `delete table` (so chains and sets of an older ruleset cannot
//! survive, emptied but still hooked), then the table's contents.
//! Deterministic: the same table gives the same bytes (set elements are
//! sorted; sets and chains keep the IR's order).
//!
//! Owns nft syntax only; what the rules are is decided by the compilers.

use super::ir::{
    Addrs, BaseChain, Chain, ConcatSet, FibAddr, Key, KeyExpr, KeyType, Map, MapData, MapValue,
    Match, PortRange, RejectWith, Rule, Set, Statement, Table, Verdict,
};
use super::wire;
use crate::nft::KeyVec;
use std::fmt::Write;

/// The script: `add table`, `delete table`, then the table block.
pub fn render(table: &Table) -> String {
    render_with(table, None)
}

/// The script of a *dormant* copy of the table named `name` (its base
/// chains are not hooked: it sees no packet), without the elements that
/// [`super::wire`] can write to the kernel itself (see
/// [`super::wire::loaded_by_netlink`]): those sets and maps are declared,
/// empty. The agent reads the kernel's encoding of this copy back and
/// writes it under the real name together with the elements
/// (strait-kernel `nft_copy`).
pub fn render_skeleton(table: &Table, name: &str) -> String {
    render_with(table, Some(name))
}

fn render_with(table: &Table, skeleton: Option<&str>) -> String {
    let id = format!(
        "{} {}",
        table.family.as_str(),
        skeleton.unwrap_or(&table.name)
    );
    let mut out = format!("add table {id}\ndelete table {id}\ntable {id} {{\n");
    if skeleton.is_some() {
        out.push_str("\tflags dormant\n");
    }
    let skeleton = skeleton.is_some();
    let mut first = true;
    for counter in &table.counters {
        if !first {
            out.push('\n');
        }
        first = false;
        match &counter.comment {
            Some(c) => {
                let _ = writeln!(
                    out,
                    "\tcounter {} {{\n\t\tcomment \"{}\"\n\t}}",
                    counter.name,
                    quote_safe(c)
                );
            }
            None => {
                let _ = writeln!(out, "\tcounter {} {{\n\t}}", counter.name);
            }
        }
    }
    for set in &table.sets {
        if !first {
            out.push('\n');
        }
        first = false;
        render_set(&mut out, set, skeleton && wire::set_by_netlink(set));
    }
    for set in &table.concat_sets {
        if !first {
            out.push('\n');
        }
        first = false;
        render_concat_set(&mut out, set, skeleton && wire::concat_set_by_netlink(set));
    }
    for map in &table.maps {
        if !first {
            out.push('\n');
        }
        first = false;
        render_map(&mut out, map, skeleton && wire::map_by_netlink(map));
    }
    for chain in &table.chains {
        if !first {
            out.push('\n');
        }
        first = false;
        render_chain(&mut out, chain);
    }
    out.push_str("}\n");
    out
}

fn render_set(out: &mut String, set: &Set, no_elements: bool) {
    let _ = writeln!(out, "\tset {} {{", set.name);
    let _ = writeln!(out, "\t\ttype {}", set.kind.as_str());
    match (set.interval, set.timeout) {
        (true, _) => out.push_str("\t\tflags interval\n"),
        (false, Some(t)) => {
            let _ = writeln!(out, "\t\tflags dynamic,timeout\n\t\ttimeout {t}s");
        }
        (false, None) => {}
    }
    if let Some(c) = &set.comment {
        let _ = writeln!(out, "\t\tcomment \"{}\"", quote_safe(c));
    }
    if !set.elements.is_empty() && !no_elements {
        let mut elements = set.elements.clone();
        elements.sort();
        elements.dedup();
        let list: Vec<String> = elements
            .iter()
            .map(|e| {
                if set.interval {
                    e.to_string()
                } else {
                    e.addr().to_string()
                }
            })
            .collect();
        let _ = writeln!(out, "\t\telements = {{ {} }}", list.join(", "));
    }
    out.push_str("\t}\n");
}

fn render_concat_set(out: &mut String, set: &ConcatSet, no_elements: bool) {
    let _ = writeln!(out, "\tset {} {{", set.name);
    let key: Vec<&str> = set.key.iter().map(|k| k.as_str()).collect();
    let _ = writeln!(out, "\t\ttype {}", key.join(" . "));
    if set.interval {
        out.push_str("\t\tflags interval\n");
    }
    if let Some(c) = &set.comment {
        let _ = writeln!(out, "\t\tcomment \"{}\"", quote_safe(c));
    }
    if !set.elements.is_empty() && !no_elements {
        let mut elements: Vec<&KeyVec> = set.elements.iter().collect();
        elements.sort();
        elements.dedup();
        out.push_str("\t\telements = {");
        for (i, key) in elements.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { ",\n\t\t\t     " });
            out.push_str(&key_text(key));
        }
        out.push_str(" }\n");
    }
    out.push_str("\t}\n");
}

fn render_map(out: &mut String, map: &Map, no_elements: bool) {
    let _ = writeln!(out, "\tmap {} {{", map.name);
    if map.key.iter().any(|k| matches!(k, KeyType::Numgen(_))) {
        // `numgen` has no type name of its own: declare by expression.
        let key: Vec<String> = map.key.iter().map(|k| k.typeof_text()).collect();
        let value = match map.value {
            MapValue::Verdict => "verdict",
            MapValue::Ipv4AddrPort => "ip daddr . th dport",
            MapValue::Mark => "ct mark",
        };
        let _ = writeln!(out, "\t\ttypeof {} : {value}", key.join(" . "));
    } else {
        let key: Vec<&str> = map.key.iter().map(|k| k.as_str()).collect();
        let value = match map.value {
            MapValue::Verdict => "verdict",
            MapValue::Ipv4AddrPort => "ipv4_addr . inet_service",
            MapValue::Mark => "mark",
        };
        let _ = writeln!(out, "\t\ttype {} : {value}", key.join(" . "));
    }
    if map.interval {
        out.push_str("\t\tflags interval\n");
    }
    if let Some(c) = &map.comment {
        let _ = writeln!(out, "\t\tcomment \"{}\"", quote_safe(c));
    }
    if !map.elements.is_empty() && !no_elements {
        let mut elements: Vec<&(KeyVec, MapData)> = map.elements.iter().collect();
        elements.sort_by(|a, b| a.0.cmp(&b.0));
        out.push_str("\t\telements = {");
        for (i, (key, data)) in elements.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { ",\n\t\t\t     " });
            let _ = write!(out, "{} : {}", key_text(key), data_text(data));
        }
        out.push_str(" }\n");
    }
    out.push_str("\t}\n");
}

/// What a map element maps to, as nft writes it.
pub fn data_text(data: &MapData) -> String {
    match data {
        MapData::Verdict(v) => verdict_text(v).unwrap_or_default(),
        MapData::AddrPort(a, p) => format!("{a} . {p}"),
        MapData::Mark(m) => format!("{m:#x}"),
    }
}

/// `10.43.0.10 . tcp . 80`.
pub fn key_text(key: &[Key]) -> String {
    let parts: Vec<String> = key
        .iter()
        .map(|k| match k {
            Key::Ipv4(a) => a.to_string(),
            Key::Proto(p) => p.as_str().to_string(),
            Key::Port(p) => p.to_string(),
            Key::Index(i) => i.to_string(),
            Key::Ipv4Range(a, b) => range_text(a, b),
            Key::ProtoRange(a, b) => range_text(a, b),
            Key::PortRange(a, b) => range_text(a, b),
            Key::Mark(m) => format!("{m:#x}"),
        })
        .collect();
    parts.join(" . ")
}

/// `a-b`, also when `a == b`: nft 1.0.6 cannot delete an element of an
/// interval concatenation set whose last component was written as one
/// value (`... . 80`), only as a range (`... . 80-80`).
fn range_text<T: std::fmt::Display>(a: &T, b: &T) -> String {
    format!("{a}-{b}")
}

fn render_chain(out: &mut String, chain: &Chain) {
    let _ = writeln!(out, "\tchain {} {{", chain.name);
    if let Some(base) = &chain.base {
        let _ = writeln!(out, "\t\t{}", base_line(base));
    }
    for rule in &chain.rules {
        let _ = writeln!(out, "\t\t{}", rule_line(rule));
    }
    out.push_str("\t}\n");
}

/// `type nat hook postrouting priority 100; policy accept;`
pub fn base_line(base: &BaseChain) -> String {
    format!(
        "type {} hook {} priority {}; policy {};",
        base.kind.as_str(),
        base.hook.as_str(),
        base.priority,
        base.policy.as_str()
    )
}

/// One rule as nft writes it: matches, `counter`, verdict, `comment`.
pub fn rule_line(rule: &Rule) -> String {
    let mut parts: Vec<String> = rule.matches.iter().map(match_text).collect();
    parts.extend(rule.statements.iter().map(statement_text));
    if rule.counter {
        parts.push("counter".to_string());
    }
    if let Some(v) = verdict_text(&rule.verdict) {
        parts.push(v);
    }
    if let Some(c) = &rule.comment {
        parts.push(format!("comment \"{}\"", quote_safe(c)));
    }
    parts.join(" ")
}

fn op(negate: bool) -> &'static str {
    if negate {
        "!= "
    } else {
        ""
    }
}

fn addrs_text(addrs: &Addrs) -> String {
    match addrs {
        Addrs::Set(name) => format!("@{name}"),
        Addrs::Cidrs(list) if list.len() == 1 => list[0].to_string(),
        Addrs::Cidrs(list) => {
            let mut sorted = list.clone();
            sorted.sort();
            sorted.dedup();
            let items: Vec<String> = sorted.iter().map(ToString::to_string).collect();
            format!("{{ {} }}", items.join(", "))
        }
    }
}

fn ports_text(ports: &[PortRange]) -> String {
    let one = |p: &PortRange| {
        if p.first == p.last {
            p.first.to_string()
        } else {
            format!("{}-{}", p.first, p.last)
        }
    };
    if ports.len() == 1 {
        one(&ports[0])
    } else {
        let mut sorted = ports.to_vec();
        sorted.sort();
        sorted.dedup();
        let items: Vec<String> = sorted.iter().map(one).collect();
        format!("{{ {} }}", items.join(", "))
    }
}

/// One match as nft writes it, e.g. `ip saddr != @cluster-cidrs`.
pub fn match_text(m: &Match) -> String {
    match m {
        Match::SaddrIn {
            family,
            addrs,
            negate,
        } => format!(
            "{} saddr {}{}",
            family.keyword(),
            op(*negate),
            addrs_text(addrs)
        ),
        Match::DaddrIn {
            family,
            addrs,
            negate,
        } => format!(
            "{} daddr {}{}",
            family.keyword(),
            op(*negate),
            addrs_text(addrs)
        ),
        Match::Iifname { name, negate } => {
            format!("iifname {}\"{}\"", op(*negate), quote_safe(name))
        }
        Match::Oifname { name, negate } => {
            format!("oifname {}\"{}\"", op(*negate), quote_safe(name))
        }
        Match::L4Proto(p) => format!("meta l4proto {}", p.as_str()),
        Match::Dport { ports, negate } => format!("th dport {}{}", op(*negate), ports_text(ports)),
        Match::CtState(states) => {
            let mut sorted = states.clone();
            sorted.sort();
            sorted.dedup();
            let names: Vec<&str> = sorted.iter().map(|s| s.as_str()).collect();
            format!("ct state {}", names.join(","))
        }
        Match::FibLocal(FibAddr::Saddr) => "fib saddr type local".to_string(),
        Match::FibLocal(FibAddr::Daddr) => "fib daddr type local".to_string(),
        Match::Mark { mask, value } => format!("meta mark and {mask:#x} == {value:#x}"),
        Match::ConcatIn { key, set } => format!("{} @{set}", key_list(key)),
    }
}

/// One statement, e.g. `meta mark set meta mark | 0x4000`.
pub fn statement_text(s: &Statement) -> String {
    match s {
        Statement::MarkOr(bits) => format!("meta mark set meta mark | {bits:#x}"),
        Statement::UpdateSaddr(set) => format!("update @{set} {{ ip saddr }}"),
        Statement::CtMarkSet(m) => format!("ct mark set {m:#x}"),
        Statement::CtMarkSetMap { key, map } => format!("ct mark set {} map @{map}", key.text()),
        Statement::NamedCounter(name) => format!("counter name \"{name}\""),
        Statement::LimitLog {
            per_second,
            burst,
            group,
            prefix,
        } => format!(
            "limit rate {per_second}/second burst {burst} packets log group {group} prefix \"{}\"",
            quote_safe(prefix)
        ),
    }
}

fn verdict_text(v: &Verdict) -> Option<String> {
    Some(match v {
        Verdict::Accept => "accept".to_string(),
        Verdict::Drop => "drop".to_string(),
        Verdict::Return => "return".to_string(),
        Verdict::Jump(chain) => format!("jump {chain}"),
        Verdict::Goto(chain) => format!("goto {chain}"),
        Verdict::VerdictMap { key, map } => format!("{} vmap @{map}", key_list(key)),
        Verdict::DnatMap { key, map } => format!("dnat ip to {} map @{map}", key_list(key)),
        Verdict::NumgenVmap { targets } => {
            let items: Vec<String> = targets
                .iter()
                .enumerate()
                .map(|(i, t)| format!("{i} : {}", verdict_text(t).unwrap_or_default()))
                .collect();
            format!(
                "numgen random mod {} vmap {{ {} }}",
                targets.len(),
                items.join(", ")
            )
        }
        Verdict::Dnat {
            addr,
            port: Some(p),
        } => format!("dnat ip to {addr}:{p}"),
        Verdict::Dnat { addr, port: None } => format!("dnat ip to {addr}"),
        Verdict::Reject(RejectWith::TcpReset) => "reject with tcp reset".to_string(),
        Verdict::Reject(RejectWith::PortUnreachable) => {
            "reject with icmpx type port-unreachable".to_string()
        }
        Verdict::Masquerade { fully_random: true } => "masquerade fully-random".to_string(),
        Verdict::Masquerade {
            fully_random: false,
        } => "masquerade".to_string(),
        Verdict::Continue => return None,
    })
}

/// `ip daddr . meta l4proto . th dport`.
fn key_list(key: &[KeyExpr]) -> String {
    let parts: Vec<String> = key.iter().map(|k| k.text()).collect();
    parts.join(" . ")
}

/// `"` cannot be escaped inside an nft string; [`Table::validate`] rejects
/// it, and the renderer never emits one (it would end the string early).
fn quote_safe(s: &str) -> String {
    s.replace('"', "'")
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "render_policy_tests.rs"]
mod policy_tests;
