//! Incremental updates of a table: when two versions differ only in the
//! elements of their maps and concatenation sets (the common case: endpoints
//! and Services come and go), the change is a few `delete element` /
//! `add element` lines sent as one transaction, instead of a rewrite of the
//! whole table. Anything else (a chain, a rule, a set declaration, an
//! interval set) changed: no diff, and the caller rewrites the table.

use super::ir::{Key, MapData, Table};
use super::render::{data_text, key_text};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// The table without the elements a diff may carry.
fn shape(t: &Table) -> Table {
    let mut s = t.clone();
    for m in &mut s.maps {
        m.elements.clear();
    }
    for c in &mut s.concat_sets {
        c.elements.clear();
    }
    s
}

/// The nft lines that turn `old` into `new`, or None when more than
/// elements differ. An empty string means nothing differs.
pub fn element_changes(old: &Table, new: &Table) -> Option<String> {
    if shape(old) != shape(new) {
        return None;
    }
    let id = format!("{} {}", new.family.as_str(), new.name);
    let mut out = String::new();
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
        emit(&mut out, &id, &nm.name, &delete, &add);
    }
    for (os, ns) in old.concat_sets.iter().zip(&new.concat_sets) {
        let before: BTreeSet<&Vec<Key>> = os.elements.iter().collect();
        let after: BTreeSet<&Vec<Key>> = ns.elements.iter().collect();
        let delete: Vec<String> = before.difference(&after).map(|k| key_text(k)).collect();
        let add: Vec<String> = after.difference(&before).map(|k| key_text(k)).collect();
        emit(&mut out, &id, &ns.name, &delete, &add);
    }
    Some(out)
}

/// Deletes first: a changed map element is deleted and added again.
fn emit(out: &mut String, table: &str, name: &str, delete: &[String], add: &[String]) {
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
