//! Which NetworkPolicy rule let a packet through, or which policies dropped
//! it. The table merges every rule into one allow set per direction, so
//! the hits only say that the packet matched `@ingress-allow-*`; the policy
//! and rule come from evaluating the snapshot's policies for the packet
//! (`strait_plan::policy::provenance`). Without the snapshot's view (a
//! World built without one), drops fall back to the counters the drop
//! chain hit.

use crate::nft_eval::Hit;
use crate::world::World;
use crate::Packet;
use strait_plan::policy::provenance::{decide, Decision};
use strait_plan::policy::{policy_chain, Direction};

fn what(pkt: &Packet) -> String {
    if pkt.proto.has_ports() {
        format!("{}/{}", pkt.proto.as_str(), pkt.dport)
    } else {
        pkt.proto.as_str().to_string()
    }
}

/// (pod, peer) of a direction.
fn ends(d: Direction, pkt: &Packet) -> (std::net::Ipv4Addr, std::net::Ipv4Addr) {
    match d {
        Direction::Ingress => (pkt.dst, pkt.src),
        Direction::Egress => (pkt.src, pkt.dst),
    }
}

/// The directions whose policy chain the packet entered, in the order it
/// entered them.
fn entered(hits: &[Hit]) -> Vec<Direction> {
    let mut out = Vec::new();
    for h in hits {
        for d in [Direction::Ingress, Direction::Egress] {
            if h.chain == policy_chain(d) && !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

fn drop_text(w: &World, dec: &Decision, pkt: &Packet) -> String {
    let (pod, peer) = ends(dec.direction, pkt);
    format!(
        "NetworkPolicy: {} is selected by {} ({}); no rule allows {} on {}",
        w.label(pod),
        dec.selecting.join(", "),
        dec.direction.as_str(),
        w.label(peer),
        what(pkt)
    )
}

fn allow_text(w: &World, dec: &Decision, pkt: &Packet) -> String {
    let (pod, peer) = ends(dec.direction, pkt);
    let towards = match dec.direction {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    };
    format!(
        "NetworkPolicy {}: {} {towards} {} on {}: {}",
        dec.direction.as_str(),
        w.label(pod),
        w.label(peer),
        what(pkt),
        dec.summary()
    )
}

/// What the policies say about `pkt` in this hook: for an accepted packet
/// one line per policed direction naming the policy and rule that allowed
/// it; for a dropped one the policies selecting the pod (`None`: no policy
/// chain was entered, or nothing known about it).
pub fn explain(w: &World, hits: &[Hit], pkt: &Packet, dropped: bool) -> Option<Vec<String>> {
    let dirs = entered(hits);
    if dirs.is_empty() {
        return None;
    }
    let decisions: Vec<Decision> = dirs
        .iter()
        .filter_map(|d| decide(&w.snapshot, *d, pkt.src, pkt.dst, pkt.proto, pkt.dport))
        .collect();
    if dropped {
        if let Some(dec) = decisions.iter().find(|d| !d.allowed()) {
            return Some(vec![drop_text(w, dec, pkt)]);
        }
        // The snapshot says allowed (or is unknown) but the table dropped:
        // name the policies from the drop chain's counters.
        return counters_reason(w, hits, pkt).map(|r| vec![r]);
    }
    let lines: Vec<String> = decisions.iter().map(|d| allow_text(w, d, pkt)).collect();
    (!lines.is_empty()).then_some(lines)
}

/// Why a NetworkPolicy dropped `pkt`, from the per-policy counters the
/// drop chain hit (`pol-in.<ns>.<name>`, `pol-eg.<ns>.<name>`, see
/// docs/policy.md).
fn counters_reason(w: &World, hits: &[Hit], pkt: &Packet) -> Option<String> {
    let mut dir = None;
    let mut names = Vec::new();
    for h in hits {
        let mut rest = h.effect.as_str();
        while let Some(at) = rest.find("counter name \"") {
            rest = &rest[at + "counter name \"".len()..];
            let name = rest.split('"').next().unwrap_or_default();
            if let Some((policy, d)) = strait_plan::policy::parse_counter_name(name) {
                dir = Some(d);
                names.push(policy);
            }
        }
    }
    let d = dir?;
    let dec = Decision {
        direction: d,
        pod: String::new(),
        selecting: names,
        allowed_by: None,
    };
    Some(drop_text(w, &dec, pkt))
}
