//! Incremental updates of a table, one transaction: changed elements of
//! maps, concatenation sets and plain sets, plus whole sets, maps, named
//! counters and chains that
//! appear or disappear (e.g. the service proxy's group `eps-n11` / `lb-n11`
//! when a first Service gets 11 endpoints). Objects present in both
//! versions must be declared alike, and chains present in both must be
//! equal; otherwise there is no incremental form and the caller rewrites
//! the table.
//!
//! Order inside the transaction: new objects first (element adds may point
//! at a new chain), then element deletes and adds, then removed chains are
//! flushed (dropping their references to each other and to removed maps)
//! and deleted, then removed sets and maps.

use super::ir::{Chain, ConcatSet, CounterObj, Key, Map, MapData, Set, Table};
use super::render::{data_text, key_text, render};
use crate::nft::KeyVec;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// What turns `old` into `new`, or None when more than elements and whole
/// objects differ. An empty string means nothing differs.
pub fn changes(old: &Table, new: &Table) -> Option<String> {
    changes_and_middles(old, new).map(|(text, _)| text)
}

/// The element lists of the maps and concatenation sets both versions
/// hold, where they differ: by name, the old and the new middle (what is
/// left without the common prefix and suffix). The agent's stamp follows
/// the elements from these instead of hashing every element again.
#[derive(Debug, Default)]
pub struct Middles<'a> {
    pub maps: HashMap<&'a str, Middle<'a, (KeyVec, MapData)>>,
    pub concat_sets: HashMap<&'a str, Middle<'a, KeyVec>>,
}

/// The old and the new middle of one element list.
pub type Middle<'a, T> = (&'a [T], &'a [T]);

/// [`changes`], and the [`Middles`] it found.
pub fn changes_and_middles<'a>(old: &'a Table, new: &'a Table) -> Option<(String, Middles<'a>)> {
    let mut found = Middles::default();
    if old.family != new.family || old.name != new.name {
        return None;
    }
    let id = format!("{} {}", new.family.as_str(), new.name);
    let sets = Pair::of(&old.sets, &new.sets, |s: &Set| s.name.as_str());
    let concat = Pair::of(&old.concat_sets, &new.concat_sets, |s: &ConcatSet| {
        s.name.as_str()
    });
    let maps = Pair::of(&old.maps, &new.maps, |m: &Map| m.name.as_str());
    let chains = Pair::of(&old.chains, &new.chains, |c: &Chain| c.name.as_str());
    let counters = Pair::of(&old.counters, &new.counters, |c: &CounterObj| {
        c.name.as_str()
    });
    // Names are shared by sets and maps: a set replaced by a map of the
    // same name is a shape change. Plain sets may differ in their elements
    // (policy's isolated pods), interval ones not (their elements are
    // CIDR ranges the kernel merges).
    let same_set = |o: &Set, n: &Set| {
        o.kind == n.kind
            && o.interval == n.interval
            && o.comment == n.comment
            && o.timeout == n.timeout
            && (!n.interval || o.elements == n.elements)
    };
    if !sets.common.iter().all(|(o, n)| same_set(o, n))
        || chains.common.iter().any(|(o, n)| o != n)
        || counters.common.iter().any(|(o, n)| o != n)
    {
        return None;
    }
    let same_concat = |o: &ConcatSet, n: &ConcatSet| {
        o.key == n.key && o.interval == n.interval && o.comment == n.comment
    };
    let same_map = |o: &Map, n: &Map| {
        o.key == n.key && o.value == n.value && o.interval == n.interval && o.comment == n.comment
    };
    if !concat.common.iter().all(|(o, n)| same_concat(o, n))
        || !maps.common.iter().all(|(o, n)| same_map(o, n))
    {
        return None;
    }
    let mut out = String::new();
    // New objects, in a `table { }` block (which adds to the existing table).
    if !(sets.added.is_empty()
        && concat.added.is_empty()
        && maps.added.is_empty()
        && chains.added.is_empty()
        && counters.added.is_empty())
    {
        let mut block = Table::new(new.family, &new.name);
        block.counters = counters.added.iter().map(|c| (*c).clone()).collect();
        block.sets = sets.added.iter().map(|s| (*s).clone()).collect();
        block.concat_sets = concat.added.iter().map(|s| (*s).clone()).collect();
        block.maps = maps.added.iter().map(|m| (*m).clone()).collect();
        block.chains = chains.added.iter().map(|c| (*c).clone()).collect();
        let text = render(&block);
        let start = text.find(&format!("table {id} {{"))?;
        out.push_str(&text[start..]);
    }
    for &(o, n) in &maps.common {
        let (o_mid, n_mid) = middles(&o.elements, &n.elements);
        if o_mid.is_empty() && n_mid.is_empty() {
            continue;
        }
        found.maps.insert(n.name.as_str(), (o_mid, n_mid));
        let before: HashMap<&[Key], &MapData> =
            o_mid.iter().map(|(k, v)| (k.as_slice(), v)).collect();
        let after: HashMap<&[Key], &MapData> =
            n_mid.iter().map(|(k, v)| (k.as_slice(), v)).collect();
        let mut delete = Vec::new();
        let mut add = Vec::new();
        for (k, v) in o_mid {
            match after.get(k.as_slice()) {
                None => delete.push(key_text(k)),
                Some(nv) if *nv != v => {
                    delete.push(key_text(k));
                    add.push(format!("{} : {}", key_text(k), data_text(nv)));
                }
                Some(_) => {}
            }
        }
        for (k, v) in n_mid {
            if !before.contains_key(k.as_slice()) {
                add.push(format!("{} : {}", key_text(k), data_text(v)));
            }
        }
        elements(&mut out, &id, &n.name, &delete, &add);
    }
    for &(o, n) in &concat.common {
        let (o_mid, n_mid) = middles(&o.elements, &n.elements);
        if o_mid.is_empty() && n_mid.is_empty() {
            continue;
        }
        found.concat_sets.insert(n.name.as_str(), (o_mid, n_mid));
        let before: HashSet<&[Key]> = o_mid.iter().map(|k| k.as_slice()).collect();
        let after: HashSet<&[Key]> = n_mid.iter().map(|k| k.as_slice()).collect();
        let mut delete: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for k in o_mid {
            if !after.contains(k.as_slice()) && seen.insert(k.as_slice()) {
                delete.push(key_text(k));
            }
        }
        let mut add: Vec<String> = Vec::new();
        for k in n_mid {
            if !before.contains(k.as_slice()) && seen.insert(k.as_slice()) {
                add.push(key_text(k));
            }
        }
        elements(&mut out, &id, &n.name, &delete, &add);
    }
    for (o, n) in &sets.common {
        if n.interval || o.elements == n.elements {
            continue;
        }
        let before: HashSet<_> = o.elements.iter().map(|e| e.addr()).collect();
        let after: HashSet<_> = n.elements.iter().map(|e| e.addr()).collect();
        let mut delete: Vec<String> = before.difference(&after).map(|a| a.to_string()).collect();
        let mut add: Vec<String> = after.difference(&before).map(|a| a.to_string()).collect();
        delete.sort();
        add.sort();
        elements(&mut out, &id, &n.name, &delete, &add);
    }
    for c in &chains.removed {
        let _ = writeln!(out, "flush chain {id} {}", c.name);
    }
    for c in &chains.removed {
        let _ = writeln!(out, "delete chain {id} {}", c.name);
    }
    for m in &maps.removed {
        let _ = writeln!(out, "delete map {id} {}", m.name);
    }
    for s in &concat.removed {
        let _ = writeln!(out, "delete set {id} {}", s.name);
    }
    for s in &sets.removed {
        let _ = writeln!(out, "delete set {id} {}", s.name);
    }
    // Last: the removed chains that counted into them are gone.
    for c in &counters.removed {
        let _ = writeln!(out, "delete counter {id} {}", c.name);
    }
    Some((out, found))
}

/// The parts of two element lists that differ, without their common
/// prefix and suffix. The compiler emits elements in a stable order, so one
/// changed Service leaves a few elements in the middle to hash instead of
/// 100,000. Correct for any order: keys are unique within a list, so a key
/// of the old middle cannot sit in the (identical) prefix or suffix of the
/// new list, and the other way round.
fn middles<'a, T: PartialEq>(old: &'a [T], new: &'a [T]) -> (&'a [T], &'a [T]) {
    let prefix = old.iter().zip(new).take_while(|(o, n)| o == n).count();
    let (old, new) = (&old[prefix..], &new[prefix..]);
    let suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take_while(|(o, n)| o == n)
        .count();
    (&old[..old.len() - suffix], &new[..new.len() - suffix])
}

/// The objects of one kind in two table versions, matched by name.
struct Pair<'a, T> {
    common: Vec<(&'a T, &'a T)>,
    added: Vec<&'a T>,
    removed: Vec<&'a T>,
}

impl<'a, T> Pair<'a, T> {
    fn of(old: &'a [T], new: &'a [T], name: impl Fn(&T) -> &str) -> Self {
        let by_name: HashMap<&str, &T> = old.iter().map(|o| (name(o), o)).collect();
        let new_names: HashSet<&str> = new.iter().map(&name).collect();
        let mut common = Vec::new();
        let mut added = Vec::new();
        for n in new {
            match by_name.get(name(n)) {
                Some(o) => common.push((*o, n)),
                None => added.push(n),
            }
        }
        let removed = old
            .iter()
            .filter(|o| !new_names.contains(name(o)))
            .collect();
        Pair {
            common,
            added,
            removed,
        }
    }
}

/// Deletes first: a changed map element is deleted and added again.
fn elements(out: &mut String, table: &str, name: &str, delete: &[String], add: &[String]) {
    if !delete.is_empty() {
        let _ = writeln!(
            out,
            "delete element {table} {name} {{ {} }}",
            delete.join(", ")
        );
    }
    if !add.is_empty() {
        let _ = writeln!(out, "add element {table} {name} {{ {} }}", add.join(", "));
    }
}

#[cfg(test)]
#[path = "incremental_tests.rs"]
mod tests;
