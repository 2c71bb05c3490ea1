//! doctor's nft drift: the table, its chains (rule counts) and every set
//! and map element against the Plan, and the table's stamp.
//!
//! Elements are compared as nft prints them: the Plan's table is loaded
//! into a throwaway network namespace (`unshare --net`, nothing shared)
//! and listed there, so both sides went through nft's own printer
//! (intervals, concatenations and verdicts come out alike) and one
//! changed, missing or extra element is named. Where that cannot run,
//! element counts are compared instead.

use super::{finding, Finding};
use crate::apply::{kernel_stamp, stamped, KernelTable};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use strait_kernel::nft;
use strait_plan::Plan;

/// Elements named per set or map before "and N more".
const SHOWN: usize = 5;

pub(super) fn nft_drift(plan: &Plan, out: &mut Vec<Finding>) -> Result<(), String> {
    let table = strait_plan::NFT_TABLE;
    let listed = nft::list_table("inet", table).map_err(|e| e.to_string())?;
    let Some(text) = listed else {
        out.push(finding(
            "nft",
            format!("nft table inet {table} is missing: no Services, masquerade or forward rules"),
            "start the agent (it installs the table)",
        ));
        return Ok(());
    };
    let have = chain_rules(&text);
    for c in &plan.nft.chains {
        match have.iter().find(|(name, _)| *name == c.name) {
            None => out.push(finding(
                "nft",
                format!("chain {} of the Plan is missing from inet {table}", c.name),
                "the agent rewrites the table on its next full resync; or restart it",
            )),
            Some((_, n)) if *n != c.rules.len() => out.push(finding(
                "nft",
                format!(
                    "chain {} holds {n} rules in the kernel, {} in the Plan",
                    c.name,
                    c.rules.len()
                ),
                format!("nft list chain inet {table} {} to see it; the agent rewrites the table on its next full resync", c.name),
            )),
            Some(_) => {}
        }
    }
    // Dynamic sets (sessionAffinity) fill at run time: not compared.
    let mut names: Vec<&str> = plan
        .nft
        .sets
        .iter()
        .filter(|s| s.timeout.is_none())
        .map(|s| s.name.as_str())
        .collect();
    names.extend(plan.nft.concat_sets.iter().map(|s| s.name.as_str()));
    names.extend(plan.nft.maps.iter().map(|m| m.name.as_str()));
    let kernel = elements(&text);
    match planned_listing(plan) {
        Ok(planned) => {
            let planned = elements(&planned);
            for name in names {
                let want = planned.get(name).cloned().unwrap_or_default();
                let got = kernel.get(name).cloned().unwrap_or_default();
                if let Some(problem) = element_drift(name, &want, &got) {
                    out.push(finding(
                        "nft",
                        problem,
                        format!("nft list set inet {table} {name} (or list map) to see them; the agent rewrites the table on its next full resync"),
                    ));
                }
            }
        }
        Err(e) => {
            out.push(finding(
                "nft",
                format!("set and map elements compared by count only: {e}"),
                "install unshare (util-linux) for element-by-element checks",
            ));
            for name in names {
                let want = plan_count(plan, name);
                let have = kernel.get(name).map_or(0, Vec::len);
                if have != want {
                    out.push(finding(
                        "nft",
                        format!("set or map {name} holds {have} elements in the kernel, {want} in the Plan"),
                        format!("nft list set inet {table} {name} (or list map) to see them; the agent rewrites the table on its next full resync"),
                    ));
                }
            }
        }
    }
    let (_, want) = stamped(&plan.nft);
    let got = match kernel_stamp().map_err(|e| e.to_string())? {
        KernelTable::Absent => None,
        KernelTable::Stamped(s) => s,
    };
    if got.as_deref() != Some(want.as_str()) {
        out.push(finding(
            "nft",
            format!("inet {table} is not the table of this Plan (stamp {} in the kernel, {want} planned): changed by hand, or the agent is behind", got.unwrap_or_else(|| "none".into())),
            "nft list table inet strait to see it; the agent rewrites it on its next full resync",
        ));
    }
    Ok(())
}

fn plan_count(plan: &Plan, name: &str) -> usize {
    let t = &plan.nft;
    if let Some(s) = t.sets.iter().find(|s| s.name == name) {
        return s.elements.len();
    }
    if let Some(s) = t.concat_sets.iter().find(|s| s.name == name) {
        return s.elements.iter().collect::<BTreeSet<_>>().len();
    }
    t.maps
        .iter()
        .find(|m| m.name == name)
        .map_or(0, |m| m.elements.len())
}

/// The Plan's table as nft lists it: loaded into a fresh network
/// namespace that ends with the command.
fn planned_listing(plan: &Plan) -> Result<String, String> {
    let (text, _) = stamped(&plan.nft);
    let script = format!("nft -f - && nft list table inet {}", strait_plan::NFT_TABLE);
    let mut child = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("unshare: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("unshare: writing the Plan's table: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("unshare: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "listing the Plan's table in a scratch namespace failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("nft list: {e}"))
}

/// What differs between the Plan's elements (`want`) and the kernel's
/// (`got`) of one set or map, as one sentence; map elements with the same
/// key and another value are named as changed.
pub(super) fn element_drift(name: &str, want: &[String], got: &[String]) -> Option<String> {
    let key = |e: &str| e.split(" : ").next().unwrap_or(e).to_string();
    let want_set: BTreeSet<&String> = want.iter().collect();
    let got_set: BTreeSet<&String> = got.iter().collect();
    let missing: Vec<&String> = want_set.difference(&got_set).copied().collect();
    let extra: Vec<&String> = got_set.difference(&want_set).copied().collect();
    if missing.is_empty() && extra.is_empty() {
        return None;
    }
    let extra_keys: BTreeMap<String, &String> = extra.iter().map(|e| (key(e), *e)).collect();
    let mut changed = Vec::new();
    let mut only_plan = Vec::new();
    let mut paired = BTreeSet::new();
    for m in &missing {
        match extra_keys.get(&key(m)) {
            Some(k) if m.contains(" : ") => {
                paired.insert(key(m));
                changed.push(format!("{} is {k} in the kernel", m.as_str()));
            }
            _ => only_plan.push(m.to_string()),
        }
    }
    let only_kernel: Vec<String> = extra
        .iter()
        .filter(|e| !paired.contains(&key(e)))
        .map(|e| e.to_string())
        .collect();
    let list = |items: &[String]| {
        let mut s = items
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if items.len() > SHOWN {
            s.push_str(&format!(" and {} more", items.len() - SHOWN));
        }
        s
    };
    let mut parts = Vec::new();
    if !only_plan.is_empty() {
        parts.push(format!(
            "{} element(s) of the Plan missing from the kernel: {}",
            only_plan.len(),
            list(&only_plan)
        ));
    }
    if !changed.is_empty() {
        parts.push(format!(
            "{} element(s) changed (the Plan's first): {}",
            changed.len(),
            list(&changed)
        ));
    }
    if !only_kernel.is_empty() {
        parts.push(format!(
            "{} element(s) in the kernel that the Plan does not hold: {}",
            only_kernel.len(),
            list(&only_kernel)
        ));
    }
    Some(format!("set or map {name}: {}", parts.join("; ")))
}

/// (chain, number of rules) from `nft list table` text: the lines inside
/// each chain block but its `type ... hook ...` line.
pub(super) fn chain_rules(text: &str) -> Vec<(&str, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(&str, usize)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line
            .strip_prefix("chain ")
            .and_then(|l| l.strip_suffix(" {"))
        {
            current = Some((name, 0));
        } else if line == "}" {
            if let Some(c) = current.take() {
                out.push(c);
            }
        } else if let Some((_, n)) = current.as_mut() {
            if !line.is_empty() && !line.starts_with("type ") {
                *n += 1;
            }
        }
    }
    out
}

/// Set or map name -> its elements as nft prints them, from `nft list
/// table` text: the comma-separated items of each `elements = { ... }`
/// (which may span lines; items hold no commas).
pub(super) fn elements(text: &str) -> BTreeMap<&str, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut current: Option<&str> = None;
    let mut body: Option<String> = None;
    for line in text.lines().map(str::trim) {
        let name = line
            .strip_prefix("set ")
            .or_else(|| line.strip_prefix("map "))
            .and_then(|l| l.strip_suffix(" {"));
        if let Some(n) = name {
            current = Some(n);
            continue;
        }
        let Some(set) = current else { continue };
        let part = match (&mut body, line.strip_prefix("elements = {")) {
            (None, Some(rest)) => {
                body = Some(String::new());
                rest
            }
            (Some(_), _) => line,
            (None, None) => {
                if line == "}" {
                    out.insert(set, Vec::new());
                    current = None;
                }
                continue;
            }
        };
        let acc = body.as_mut().expect("set above");
        acc.push_str(part);
        acc.push(' ');
        if part.ends_with('}') {
            let all = body.take().unwrap_or_default();
            let inner = all.trim().trim_end_matches('}');
            let items = inner
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            out.insert(set, items);
            current = None;
        }
    }
    out
}
