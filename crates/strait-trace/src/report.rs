//! A trace's result: the hops in order, the reply path, and the verdict;
//! rendered for people ([`Trace::human`]) or as JSON (serde).

use crate::nft_eval::Hit;
use crate::packet::Packet;
use serde::Serialize;
use std::fmt::Write;

/// One hop or decision on the path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Where: `node/node-1`, `pod/demo/web`, `router`, `host/legacy-db`.
    pub at: String,
    /// What kind of step: `send`, `prerouting`, `route`, `forward`,
    /// `postrouting`, `input`, `output`, `bridge`, `vxlan`, `wire`,
    /// `deliver`, `conntrack`, ...
    pub kind: String,
    pub detail: String,
    /// The nft rules this step hit, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Hit>,
}

/// How the packet (and its answer) fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Verdict {
    /// The destination answered and the answer got back to the sender.
    Answered { by: String },
    /// Refused: a reject rule, a TCP reset or ICMP port unreachable.
    Refused { at: String, reason: String },
    /// Dropped on the way there (a rule, no route, no neighbour).
    Dropped { at: String, reason: String },
    /// The destination answered but the answer did not get back.
    NoReply { at: String, reason: String },
}

impl Verdict {
    pub fn answered(&self) -> bool {
        matches!(self, Verdict::Answered { .. })
    }

    /// The verdict in one line.
    pub fn line(&self) -> String {
        match self {
            Verdict::Answered { by } => format!("ANSWERED by {by}"),
            Verdict::Refused { at, reason } => format!("REFUSED at {at}: {reason}"),
            Verdict::Dropped { at, reason } => format!("DROPPED at {at}: {reason}"),
            Verdict::NoReply { at, reason } => {
                format!("NO REPLY (answer lost at {at}): {reason}")
            }
        }
    }

    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Answered { .. } => "answered",
            Verdict::Refused { .. } => "refused",
            Verdict::Dropped { .. } => "dropped",
            Verdict::NoReply { .. } => "no-reply",
        }
    }
}

/// The outcome with another endpoint picked by a `numgen` on the way.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pick {
    pub pick: u32,
    /// The first DNAT target with this pick (`addr:port`).
    pub endpoint: Option<String>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    pub from: String,
    pub to: String,
    pub packet: Packet,
    pub steps: Vec<Step>,
    /// The answer's path (when the destination answered).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reply: Vec<Step>,
    pub verdict: Verdict,
    /// The first DNAT target of this trace (`addr:port`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The outcomes with the other endpoints a Service could pick.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_picks: Vec<Pick>,
}

fn write_steps(out: &mut String, steps: &[Step]) {
    for s in steps {
        let _ = writeln!(out, "  {:<22} {:<11} {}", s.at, s.kind, s.detail);
        for h in &s.rules {
            let comment = h
                .comment
                .as_deref()
                .map(|c| format!("  \"{c}\""))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<22} {:<11}   {} #{}: {}{comment}",
                "", "", h.chain, h.rule, h.effect
            );
        }
    }
}

impl Trace {
    /// The trace as people read it.
    pub fn human(&self) -> String {
        let mut out = format!("trace {} -> {}: {}\n", self.from, self.to, self.packet);
        write_steps(&mut out, &self.steps);
        if !self.reply.is_empty() {
            out.push_str("reply:\n");
            write_steps(&mut out, &self.reply);
        }
        let _ = writeln!(out, "verdict: {}", self.verdict.line());
        if self
            .other_picks
            .iter()
            .any(|p| p.verdict.answered() != self.verdict.answered())
        {
            out.push_str("the outcome depends on the endpoint picked:\n");
        }
        for p in &self.other_picks {
            let _ = writeln!(
                out,
                "  with endpoint {}: {}",
                p.endpoint.as_deref().unwrap_or("?"),
                p.verdict.line()
            );
        }
        out
    }
}
