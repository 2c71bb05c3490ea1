//! Incremental updates of a table: when two versions differ only in set and
//! map elements, named counters, and regular chains nothing but map
//! elements jump to (the common case: endpoints, Services, pod labels and
//! policies come and go), the change is a few `delete`/`add` lines sent as
//! one transaction instead of a rewrite of the whole table. Anything else
//! (a base chain, a rule, a set declaration, a plain interval set, a chain
//! whose rules changed): no diff, and the caller rewrites the table.
//!
//! Order inside the transaction: elements are deleted first (so chains they
//! jumped to are unused, and ranges they held are free), then chains, then
//! counters; then new counters, new chains with their rules, new elements.

use super::ir::{Chain, CounterObj, Key, MapData, Table, Verdict};
use super::render::{data_text, key_text, rule_line};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write;

/// Chains reached only through map elements (never from a rule): they may
/// come and go with the elements.
fn element_chains(t: &Table) -> HashSet<&str> {
    let mut from_rules: HashSet<&str> = HashSet::new();
    fn walk<'a>(v: &'a Verdict, out: &mut HashSet<&'a str>) {
        match v {
            Verdict::Jump(c) | Verdict::Goto(c) => {
                out.insert(c);
            }
            Verdict::NumgenVmap { targets } => targets.iter().for_each(|t| walk(t, out)),
            _ => {}
        }
    }
    for c in &t.chains {
        for r in &c.rules {
            walk(&r.verdict, &mut from_rules);
        }
    }
    t.chains
        .iter()
        .filter(|c| c.base.is_none() && !from_rules.contains(c.name.as_str()))
        .map(|c| c.name.as_str())
        .collect()
}

/// The table without what a diff may carry.
fn shape(t: &Table) -> Table {
    let mut s = t.clone();
    for m in &mut s.maps {
        m.elements.clear();
    }
    for c in &mut s.concat_sets {
        c.elements.clear();
    }
    for set in &mut s.sets {
        if !set.interval {
            set.elements.clear();
        }
    }
    s.counters.clear();
    let free = element_chains(t);
    s.chains.retain(|c| !free.contains(c.name.as_str()));
    s
}

/// The nft lines that turn `old` into `new`, or None when more than
/// elements, counters and element-reached chains differ. An empty string
/// means nothing differs.
pub fn element_changes(old: &Table, new: &Table) -> Option<String> {
    if shape(old) != shape(new) {
        return None;
    }
    let old_chains = free_chains(old);
    let new_chains = free_chains(new);
    for (name, c) in &new_chains {
        if old_chains.get(name).is_some_and(|o| o != c) {
            return None;
        }
    }
    let old_counters: BTreeMap<&str, &CounterObj> =
        old.counters.iter().map(|c| (c.name.as_str(), c)).collect();
    let new_counters: BTreeMap<&str, &CounterObj> =
        new.counters.iter().map(|c| (c.name.as_str(), c)).collect();
    for (name, c) in &new_counters {
        if old_counters.get(name).is_some_and(|o| o != c) {
            return None;
        }
    }
    let id = format!("{} {}", new.family.as_str(), new.name);
    let mut deletes = String::new();
    let mut adds = String::new();
    for (om, nm) in old.maps.iter().zip(&new.maps) {
        let before: BTreeMap<&Vec<Key>, &MapData> =
            om.elements.iter().map(|(k, v)| (k, v)).collect();
        let after: BTreeMap<&Vec<Key>, &MapData> =
            nm.elements.iter().map(|(k, v)| (k, v)).collect();
        let mut delete = Vec::new();
        let mut add = Vec::new();
        for (k, v) in &before {
            match after.get(k) {
                None => delete.push(key_text(k)),
                Some(nv) if nv != v => {
                    delete.push(key_text(k));
                    add.push(format!("{} : {}", key_text(k), data_text(nv)));
                }
                Some(_) => {}
            }
        }
        for (k, v) in &after {
            if !before.contains_key(k) {
                add.push(format!("{} : {}", key_text(k), data_text(v)));
            }
        }
        emit(&mut deletes, "delete", &id, &nm.name, &delete);
        emit(&mut adds, "add", &id, &nm.name, &add);
    }
    for (os, ns) in old.concat_sets.iter().zip(&new.concat_sets) {
        let before: BTreeSet<&Vec<Key>> = os.elements.iter().collect();
        let after: BTreeSet<&Vec<Key>> = ns.elements.iter().collect();
        let delete: Vec<String> = before.difference(&after).map(|k| key_text(k)).collect();
        let add: Vec<String> = after.difference(&before).map(|k| key_text(k)).collect();
        emit(&mut deletes, "delete", &id, &ns.name, &delete);
        emit(&mut adds, "add", &id, &ns.name, &add);
    }
    for (os, ns) in old.sets.iter().zip(&new.sets) {
        if ns.interval {
            continue; // equal: part of the shape
        }
        let before: BTreeSet<_> = os.elements.iter().map(|e| e.addr()).collect();
        let after: BTreeSet<_> = ns.elements.iter().map(|e| e.addr()).collect();
        let delete: Vec<String> = before.difference(&after).map(|a| a.to_string()).collect();
        let add: Vec<String> = after.difference(&before).map(|a| a.to_string()).collect();
        emit(&mut deletes, "delete", &id, &ns.name, &delete);
        emit(&mut adds, "add", &id, &ns.name, &add);
    }
    let mut out = deletes;
    for name in old_chains.keys().filter(|n| !new_chains.contains_key(*n)) {
        let _ = writeln!(out, "delete chain {id} {name}");
    }
    for name in old_counters
        .keys()
        .filter(|n| !new_counters.contains_key(*n))
    {
        let _ = writeln!(out, "delete counter {id} {name}");
    }
    for (name, c) in new_counters
        .iter()
        .filter(|(n, _)| !old_counters.contains_key(*n))
    {
        match &c.comment {
            Some(text) => {
                let _ = writeln!(out, "add counter {id} {name} {{ comment \"{text}\"; }}");
            }
            None => {
                let _ = writeln!(out, "add counter {id} {name}");
            }
        }
    }
    for (name, c) in new_chains
        .iter()
        .filter(|(n, _)| !old_chains.contains_key(*n))
    {
        let _ = writeln!(out, "add chain {id} {name}");
        for r in &c.rules {
            let _ = writeln!(out, "add rule {id} {name} {}", rule_line(r));
        }
    }
    out.push_str(&adds);
    Some(out)
}

fn free_chains(t: &Table) -> BTreeMap<&str, &Chain> {
    let free = element_chains(t);
    t.chains
        .iter()
        .filter(|c| free.contains(c.name.as_str()))
        .map(|c| (c.name.as_str(), c))
        .collect()
}

fn emit(out: &mut String, verb: &str, table: &str, name: &str, items: &[String]) {
    if !items.is_empty() {
        let _ = writeln!(
            out,
            "{verb} element {table} {name} {{ {} }}",
            items.join(", ")
        );
    }
}
