//! NetworkPolicy (`networking.k8s.io/v1`), compiled into the `inet strait`
//! table's forward hook. See docs/policy.md for the design and semantics.
//!
//! - [`selector`]: label selectors.
//! - [`intervals`]: `ipBlock` CIDR minus `except` as address intervals.
//! - [`ports`]: numeric, named and `endPort` ports.
//! - [`rules`]: a policy checked into selectors, peers and ports.
//! - `cluster`: the pods and namespace labels policies see.
//! - `build`: per direction, this node's isolated pods and what they allow.
//! - `atoms`: peer addresses cut into classes by the groups holding them.
//! - [`elements`]: what a pod allows as interval-set elements.
//! - `table`: the sets, maps, counters and chains.
//!
//! Ingress is enforced on the destination pod's node, egress on the source
//! pod's, both in the forward hook after Service DNAT and before
//! masquerade, so they see the real client and the real endpoint; a pod's
//! traffic to its own node is checked for egress in the input hook. IPv4
//! only. Nothing is added while the snapshot holds no NetworkPolicy.

mod atoms;
mod build;
mod cluster;
pub mod elements;
pub mod intervals;
pub mod ports;
pub mod provenance;
pub mod rules;
pub mod selector;
mod table;

pub use cluster::NAMESPACE_NAME_LABEL;
pub use rules::Direction;
pub use table::{
    allow_any_set, allow_ports_set, allow_ranges_set, drop_map, isolated_set, log_prefix,
    peers_map, policy_chain,
};

use crate::nft::{Statement, Table};
use crate::services::fnv1a;
use strait_model::Snapshot;

/// The nfnetlink_log group drop chains log to (the agent listens on it,
/// in its own network namespace).
pub const LOG_GROUP: u16 = 90;
/// Logged drops per second per drop chain, after a burst of [`LOG_BURST`].
pub const LOG_PER_SECOND: u32 = 10;
pub const LOG_BURST: u32 = 20;
/// nft object names are at most 255 bytes.
const MAX_NAME: usize = 255;

/// The counter of a policy's drops in one direction:
/// `pol-in.<namespace>.<name>` (namespaces hold no dots, so the first dot
/// after the prefix ends the namespace); too long: the name becomes
/// `h<hash>` (the counter's comment still holds `namespace/name`).
pub fn counter_name(namespace: &str, name: &str, d: Direction) -> String {
    let full = format!("pol-{}.{namespace}.{name}", d.short());
    if full.len() <= MAX_NAME {
        return full;
    }
    let hash = fnv1a(&format!("{namespace}/{name}"));
    format!("pol-{}.{namespace}.h{hash:08x}", d.short())
}

/// The policy (`namespace/name`) and direction of a counter name from
/// [`counter_name`] (a hashed name gives `namespace/h<hash>`).
pub fn parse_counter_name(counter: &str) -> Option<(String, Direction)> {
    let (d, rest) = if let Some(r) = counter.strip_prefix("pol-in.") {
        (Direction::Ingress, r)
    } else {
        (Direction::Egress, counter.strip_prefix("pol-eg.")?)
    };
    let (ns, name) = rest.split_once('.')?;
    Some((format!("{ns}/{name}"), d))
}

/// Adds the policy sets, maps, counters and chains for node `node` and
/// hooks them into the forward chain; nothing when no policy exists.
pub fn add_to_table(node: &str, snap: &Snapshot, table: &mut Table, warnings: &mut Vec<String>) {
    if snap.network_policies.is_empty() {
        return;
    }
    let policies: Vec<rules::Policy> = snap
        .network_policies
        .iter()
        .filter_map(|np| rules::parse(np, warnings))
        .collect();
    let cluster = cluster::Cluster::new(snap);
    let mut eval = build::Evaluator::new(&cluster, &policies);
    for d in [Direction::Ingress, Direction::Egress] {
        let iso = eval.isolation(d, node);
        table::add_direction(table, d, &policies, &iso);
    }
    warnings.extend(std::mem::take(&mut eval.warnings));
    table::hook_forward(table);
}

/// For the agent: each drop chain's log prefix with the direction and the
/// policies (`namespace/name`) whose counters it adds to.
pub fn drop_reasons(table: &Table) -> Vec<(String, Direction, Vec<String>)> {
    let mut out = Vec::new();
    for chain in &table.chains {
        let mut prefix = None;
        let mut policies = Vec::new();
        let mut direction = None;
        for s in chain.rules.iter().flat_map(|r| &r.statements) {
            match s {
                Statement::NamedCounter(c) => {
                    if let Some((p, d)) = parse_counter_name(c) {
                        direction = Some(d);
                        policies.push(p);
                    }
                }
                Statement::LimitLog { prefix: p, .. } => prefix = Some(p.clone()),
                _ => {}
            }
        }
        if let (Some(p), Some(d)) = (prefix, direction) {
            out.push((p, d, policies));
        }
    }
    out
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
