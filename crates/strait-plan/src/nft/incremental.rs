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
use std::net::IpAddr;

/// What turns `old` into `new`, or None when more than elements and whole
/// objects differ. An empty string means nothing differs.
pub fn changes(old: &Table, new: &Table) -> Option<String> {
    changes_and_middles(old, new).map(|c| c.text)
}

/// An incremental change, as nft text and as data.
#[derive(Debug, Default)]
pub struct Changes<'a> {
    /// The transaction for `nft -f` (without a stamp).
    pub text: String,
    pub middles: Middles<'a>,
    /// The element changes, per set or map, in the text's order.
    pub elements: Vec<ElementChange<'a>>,
    /// Whether whole sets, maps, chains or counters come or go (then only
    /// the text says everything).
    pub objects: bool,
}

/// The elements one set or map loses and gains (a changed map element is
/// in both: deleted, then added with its new data).
#[derive(Debug)]
pub struct ElementChange<'a> {
    pub set: &'a str,
    pub delete: Vec<Element<'a>>,
    pub add: Vec<Element<'a>>,
}

/// One element, borrowed from a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element<'a> {
    /// Of a plain address set.
    Addr(IpAddr),
    /// Of a concatenation set, or a map element's key (to delete it).
    Key(&'a [Key]),
    /// Of a map.
    Mapping(&'a [Key], &'a MapData),
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

/// [`changes`] as text and data, with the [`Middles`] it found.
pub fn changes_and_middles<'a>(old: &'a Table, new: &'a Table) -> Option<Changes<'a>> {
    let mut found = Middles::default();
    let mut element_changes = Vec::new();
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
    let added = !(sets.added.is_empty()
        && concat.added.is_empty()
        && maps.added.is_empty()
        && chains.added.is_empty()
        && counters.added.is_empty());
    let removed = !(sets.removed.is_empty()
        && concat.removed.is_empty()
        && maps.removed.is_empty()
        && chains.removed.is_empty()
        && counters.removed.is_empty());
    // New objects, in a `table { }` block (which adds to the existing table).
    if added {
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
        let mut change = ElementChange::of(&n.name);
        for (k, v) in o_mid {
            match after.get(k.as_slice()) {
                None => change.delete.push(Element::Key(k)),
                Some(nv) if *nv != v => {
                    change.delete.push(Element::Key(k));
                    change.add.push(Element::Mapping(k, nv));
                }
                Some(_) => {}
            }
        }
        for (k, v) in n_mid {
            if !before.contains_key(k.as_slice()) {
                change.add.push(Element::Mapping(k, v));
            }
        }
        change.write(&mut out, &id);
        element_changes.push(change);
    }
    for &(o, n) in &concat.common {
        let (o_mid, n_mid) = middles(&o.elements, &n.elements);
        if o_mid.is_empty() && n_mid.is_empty() {
            continue;
        }
        found.concat_sets.insert(n.name.as_str(), (o_mid, n_mid));
        let before: HashSet<&[Key]> = o_mid.iter().map(|k| k.as_slice()).collect();
        let after: HashSet<&[Key]> = n_mid.iter().map(|k| k.as_slice()).collect();
        let mut change = ElementChange::of(&n.name);
        let mut seen = HashSet::new();
        for k in o_mid {
            if !after.contains(k.as_slice()) && seen.insert(k.as_slice()) {
                change.delete.push(Element::Key(k));
            }
        }
        for k in n_mid {
            if !before.contains(k.as_slice()) && seen.insert(k.as_slice()) {
                change.add.push(Element::Key(k));
            }
        }
        change.write(&mut out, &id);
        element_changes.push(change);
    }
    for (o, n) in &sets.common {
        if n.interval || o.elements == n.elements {
            continue;
        }
        let before: HashSet<_> = o.elements.iter().map(|e| e.addr()).collect();
        let after: HashSet<_> = n.elements.iter().map(|e| e.addr()).collect();
        let mut delete: Vec<IpAddr> = before.difference(&after).copied().collect();
        let mut add: Vec<IpAddr> = after.difference(&before).copied().collect();
        delete.sort();
        add.sort();
        let change = ElementChange {
            set: &n.name,
            delete: delete.into_iter().map(Element::Addr).collect(),
            add: add.into_iter().map(Element::Addr).collect(),
        };
        change.write(&mut out, &id);
        element_changes.push(change);
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
    element_changes.retain(|c| !(c.delete.is_empty() && c.add.is_empty()));
    Some(Changes {
        text: out,
        middles: found,
        elements: element_changes,
        objects: added || removed,
    })
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

impl<'a> ElementChange<'a> {
    fn of(set: &'a str) -> Self {
        ElementChange {
            set,
            delete: Vec::new(),
            add: Vec::new(),
        }
    }

    /// The nft lines; deletes first: a changed map element is deleted and
    /// added again.
    fn write(&self, out: &mut String, table: &str) {
        for (verb, list) in [("delete", &self.delete), ("add", &self.add)] {
            if list.is_empty() {
                continue;
            }
            let texts: Vec<String> = list.iter().map(|e| e.text()).collect();
            let _ = writeln!(
                out,
                "{verb} element {table} {} {{ {} }}",
                self.set,
                texts.join(", ")
            );
        }
    }
}

impl Element<'_> {
    fn text(&self) -> String {
        match self {
            Element::Addr(a) => a.to_string(),
            Element::Key(k) => key_text(k),
            Element::Mapping(k, v) => format!("{} : {}", key_text(k), data_text(v)),
        }
    }
}

#[cfg(test)]
#[path = "incremental_tests.rs"]
mod tests;
