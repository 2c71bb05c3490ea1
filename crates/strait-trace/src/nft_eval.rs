//! An interpreter of the nftables IR (`strait_plan::nft`): runs one packet
//! through the base chains of one hook, in priority order, the way the
//! kernel does, and records every rule that decided something.
//!
//! Total over today's IR: every `Match`, `Statement` and `Verdict` variant is
//! matched exhaustively, so a new variant is a compile error here.
//!
//! Conntrack assumptions: the traced packet is the first of its connection
//! (`ct state new`), or a reply of an established one (`Established`); NAT
//! chains run only for the first packet, as in the kernel. Dynamic sets
//! (sessionAffinity's remembered clients) are taken as empty: a new client.
//! `numgen` picks element 0 (or the caller's choice); the others are listed.

use crate::packet::Packet;
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr};
use strait_plan::nft::{
    Addrs, Chain, ChainType, CtState, FibAddr, Hook, IpFamily, Key, KeyExpr, L4Proto, MapData,
    Match, Policy, RejectWith, Rule, Statement, Table, Verdict,
};

/// Longest chain of jumps followed (nft itself allows 16 levels).
const MAX_DEPTH: usize = 16;

/// What the hook's evaluation needs besides the packet.
pub struct HookCtx<'a> {
    pub hook: Hook,
    pub iif: Option<&'a str>,
    pub oif: Option<&'a str>,
    pub ct: CtState,
    /// `fib ... type local`: whether an address is one of this node's.
    pub is_local: &'a dyn Fn(Ipv4Addr) -> bool,
    /// Which element `numgen random mod N` picks (taken modulo N).
    pub pick: u32,
}

/// One rule that matched, or a lookup that decided where to go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub chain: String,
    /// 1-based, as `nft -a` would count within the chain.
    pub rule: usize,
    /// The rule as nft writes it.
    pub text: String,
    pub comment: Option<String>,
    /// What happened, e.g. `service-ips: 10.43.0.10 . tcp . 80 -> goto lb-n2`.
    pub effect: String,
}

/// A NAT decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Nat {
    /// Destination rewritten; `alternatives` are the other endpoints
    /// `numgen` could have picked.
    Dnat {
        addr: Ipv4Addr,
        port: Option<u16>,
        alternatives: Vec<(Ipv4Addr, u16)>,
    },
    /// Source rewritten to the outgoing interface's address.
    Masquerade,
}

/// How a hook ends for the packet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Outcome {
    Accept,
    Drop {
        chain: String,
        rule: Option<usize>,
    },
    Reject {
        chain: String,
        rule: usize,
        with: String,
    },
}

/// The result of one hook: its verdict, the rules hit, NAT decided, and
/// the packet mark afterwards (the caller applies DNAT to the packet).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HookResult {
    pub hook: String,
    pub outcome: Outcome,
    pub hits: Vec<Hit>,
    pub nat: Vec<Nat>,
    pub mark: u32,
    /// The most choices a `numgen` had in this hook (1: none).
    pub choices: u32,
}

/// A chain's result: ended by a terminal verdict, or returned (fell off its
/// end or hit `return`).
enum Flow {
    Return,
    Accept,
    Drop(String, usize),
    Reject(String, usize, RejectWith),
}

struct Run<'a> {
    table: &'a Table,
    ctx: &'a HookCtx<'a>,
    pkt: Packet,
    mark: u32,
    /// The connection's `ct mark` as this hook sets it (a new connection
    /// starts at 0; policy sets it and reads it in the same chain).
    ct_mark: u32,
    hits: Vec<Hit>,
    nat: Vec<Nat>,
    /// The next jump or goto comes from a map element already recorded.
    quiet: bool,
    choices: u32,
}

/// Runs `pkt` through every base chain of `table` on `ctx.hook`, lowest
/// priority first. DNAT rewrites the packet the later chains see; the
/// rewritten packet is returned with the result.
pub fn eval_hook(table: &Table, ctx: &HookCtx, pkt: Packet, mark: u32) -> (HookResult, Packet) {
    let mut bases: Vec<&Chain> = table
        .chains
        .iter()
        .filter(|c| c.base.is_some_and(|b| b.hook == ctx.hook))
        .collect();
    bases.sort_by_key(|c| c.base.map(|b| b.priority));
    let mut run = Run {
        table,
        ctx,
        pkt,
        mark,
        ct_mark: 0,
        hits: Vec::new(),
        nat: Vec::new(),
        quiet: false,
        choices: 1,
    };
    let mut outcome = Outcome::Accept;
    for chain in bases {
        let base = chain.base.expect("filtered on base");
        // NAT chains see only a connection's first packet.
        if base.kind == ChainType::Nat && ctx.ct != CtState::New {
            continue;
        }
        let flow = run.chain(chain, 0);
        match flow {
            Flow::Accept => {}
            Flow::Return => {
                if base.policy == Policy::Drop {
                    outcome = Outcome::Drop {
                        chain: chain.name.clone(),
                        rule: None,
                    };
                    break;
                }
            }
            Flow::Drop(c, r) => {
                outcome = Outcome::Drop {
                    chain: c,
                    rule: Some(r),
                };
                break;
            }
            Flow::Reject(c, r, with) => {
                outcome = Outcome::Reject {
                    chain: c,
                    rule: r,
                    with: match with {
                        RejectWith::TcpReset => "tcp reset".into(),
                        RejectWith::PortUnreachable => "icmp port unreachable".into(),
                    },
                };
                break;
            }
        }
    }
    let result = HookResult {
        hook: ctx.hook.as_str().to_string(),
        outcome,
        hits: run.hits,
        nat: run.nat,
        mark: run.mark,
        choices: run.choices,
    };
    (result, run.pkt)
}

impl Run<'_> {
    fn chain(&mut self, chain: &Chain, depth: usize) -> Flow {
        if depth > MAX_DEPTH {
            return Flow::Drop(chain.name.clone(), 0);
        }
        for (i, rule) in chain.rules.iter().enumerate() {
            if !rule.matches.iter().all(|m| self.matches(m)) {
                continue;
            }
            for st in &rule.statements {
                self.statement(st);
            }
            let n = i + 1;
            match self.verdict(chain, n, rule, &rule.verdict, depth) {
                Some(flow) => return flow,
                None => continue,
            }
        }
        Flow::Return
    }

    fn hit(&mut self, chain: &Chain, n: usize, rule: &Rule, effect: String) {
        self.hits.push(Hit {
            chain: chain.name.clone(),
            rule: n,
            text: strait_plan::nft::render::rule_line(rule).trim().to_string(),
            comment: rule.comment.clone(),
            effect,
        });
    }

    /// `None`: go on with the next rule.
    fn verdict(
        &mut self,
        chain: &Chain,
        n: usize,
        rule: &Rule,
        v: &Verdict,
        depth: usize,
    ) -> Option<Flow> {
        match v {
            Verdict::Continue => {
                if !rule.statements.is_empty() {
                    let what: Vec<String> = rule
                        .statements
                        .iter()
                        .map(strait_plan::nft::render::statement_text)
                        .collect();
                    self.hit(chain, n, rule, what.join(", "));
                }
                None
            }
            Verdict::Accept => {
                self.hit(chain, n, rule, "accept".into());
                Some(Flow::Accept)
            }
            Verdict::Drop => {
                self.hit(chain, n, rule, "drop".into());
                Some(Flow::Drop(chain.name.clone(), n))
            }
            Verdict::Return => {
                self.hit(chain, n, rule, "return".into());
                Some(Flow::Return)
            }
            Verdict::Reject(with) => {
                self.hit(chain, n, rule, "reject".into());
                Some(Flow::Reject(chain.name.clone(), n, *with))
            }
            Verdict::Jump(target) | Verdict::Goto(target) => {
                let goto = matches!(v, Verdict::Goto(_));
                let Some(next) = self.table.chain(target) else {
                    self.hit(chain, n, rule, format!("missing chain {target}: drop"));
                    return Some(Flow::Drop(chain.name.clone(), n));
                };
                let word = if goto { "goto" } else { "jump" };
                if !std::mem::take(&mut self.quiet) {
                    self.hit(chain, n, rule, format!("{word} {target}"));
                }
                match self.chain(next, depth + 1) {
                    Flow::Return if goto => Some(Flow::Return),
                    Flow::Return => None,
                    other => Some(other),
                }
            }
            Verdict::VerdictMap { key, map } => {
                let k = self.key(key)?;
                let found = self.table.map(map).and_then(|m| {
                    m.elements
                        .iter()
                        .find(|(ek, _)| key_matches(ek, &k))
                        .map(|(_, d)| d)
                });
                let ktext = strait_plan::nft::render::key_text(&k);
                match found {
                    Some(MapData::Verdict(ev)) => {
                        let ev = ev.clone();
                        let inner =
                            strait_plan::nft::render::data_text(&MapData::Verdict(ev.clone()));
                        self.hit(chain, n, rule, format!("@{map}: {ktext} -> {inner}"));
                        self.quiet = true;
                        let flow = self.verdict(chain, n, rule, &ev, depth);
                        self.quiet = false;
                        flow
                    }
                    Some(MapData::AddrPort(..) | MapData::Mark(_)) | None => None,
                }
            }
            Verdict::NumgenVmap { targets } => {
                if targets.is_empty() {
                    return None;
                }
                let i = self.ctx.pick as usize % targets.len();
                self.choices = self.choices.max(targets.len() as u32);
                self.hit(
                    chain,
                    n,
                    rule,
                    format!("numgen picked {} of {}", i, targets.len()),
                );
                self.verdict(chain, n, rule, &targets[i], depth)
            }
            Verdict::Dnat { addr, port } => {
                self.hit(chain, n, rule, dnat_text(*addr, *port));
                self.dnat(*addr, *port, Vec::new());
                Some(Flow::Accept)
            }
            Verdict::DnatMap { key, map } => {
                // The key ends in numgen: list every element sharing the
                // rest of the key (the endpoints it could pick).
                let k = self.key(key)?;
                let m = self.table.map(map)?;
                let numgen = key.iter().find_map(|e| match e {
                    KeyExpr::Numgen(n) => Some(*n),
                    _ => None,
                });
                self.choices = self.choices.max(numgen.unwrap_or(1));
                let same_prefix = |ek: &[Key]| {
                    ek.len() == k.len()
                        && ek
                            .iter()
                            .zip(&k)
                            .all(|(a, b)| matches!(a, Key::Index(_)) || key_matches(&[*a], &[*b]))
                };
                let all: Vec<(Ipv4Addr, u16)> = m
                    .elements
                    .iter()
                    .filter(|(ek, _)| {
                        if numgen.is_some() {
                            same_prefix(ek)
                        } else {
                            key_matches(ek, &k)
                        }
                    })
                    .filter_map(|(_, d)| match d {
                        MapData::AddrPort(a, p) => Some((*a, *p)),
                        MapData::Verdict(_) | MapData::Mark(_) => None,
                    })
                    .collect();
                let chosen = m
                    .elements
                    .iter()
                    .find(|(ek, _)| key_matches(ek, &k))
                    .and_then(|(_, d)| match d {
                        MapData::AddrPort(a, p) => Some((*a, *p)),
                        MapData::Verdict(_) | MapData::Mark(_) => None,
                    });
                let (addr, port) = chosen?;
                let others: Vec<(Ipv4Addr, u16)> =
                    all.into_iter().filter(|e| *e != (addr, port)).collect();
                let mut effect = format!(
                    "@{map}: {} -> {}",
                    strait_plan::nft::render::key_text(&k),
                    dnat_text(addr, Some(port))
                );
                if !others.is_empty() {
                    let list: Vec<String> =
                        others.iter().map(|(a, p)| format!("{a}:{p}")).collect();
                    effect.push_str(&format!(" (could also have been {})", list.join(", ")));
                }
                self.hit(chain, n, rule, effect);
                self.dnat(addr, Some(port), others);
                Some(Flow::Accept)
            }
            Verdict::Masquerade { .. } => {
                self.hit(chain, n, rule, "masquerade".into());
                self.nat.push(Nat::Masquerade);
                Some(Flow::Accept)
            }
        }
    }

    fn dnat(&mut self, addr: Ipv4Addr, port: Option<u16>, alternatives: Vec<(Ipv4Addr, u16)>) {
        self.pkt.dst = addr;
        if let Some(p) = port {
            self.pkt.dport = p;
        }
        self.nat.push(Nat::Dnat {
            addr,
            port,
            alternatives,
        });
    }

    fn statement(&mut self, st: &Statement) {
        match st {
            Statement::MarkOr(bits) => self.mark |= bits,
            // Remembers the client for later connections; this packet's
            // path does not change.
            Statement::UpdateSaddr(_) => {}
            // Counting and (rate-limited) logging do not change the path;
            // the hit records them (policy names, the drop log group).
            Statement::NamedCounter(_) | Statement::LimitLog { .. } => {}
            Statement::CtMarkSet(v) => self.ct_mark = *v,
            // No element: the mark is unchanged.
            Statement::CtMarkSetMap { key, map } => {
                let Some(k) = self.key(std::slice::from_ref(key)) else {
                    return;
                };
                let found = self.table.map(map).and_then(|m| {
                    m.elements.iter().find_map(|(ek, d)| match d {
                        MapData::Mark(v) if key_matches(ek, &k) => Some(*v),
                        _ => None,
                    })
                });
                if let Some(v) = found {
                    self.ct_mark = v;
                }
            }
        }
    }

    /// The concatenated lookup key, or `None` when the packet has no such
    /// field (no ports for ICMP).
    fn key(&self, key: &[KeyExpr]) -> Option<Vec<Key>> {
        key.iter()
            .map(|e| match e {
                KeyExpr::Ipv4Daddr => Some(Key::Ipv4(self.pkt.dst)),
                KeyExpr::Ipv4Saddr => Some(Key::Ipv4(self.pkt.src)),
                KeyExpr::L4Proto => Some(Key::Proto(self.pkt.proto)),
                // Without ports (ICMP) `th dport` reads two bytes of the
                // ICMP header (its checksum): an unknown value, which only
                // an element covering every port matches for sure.
                KeyExpr::Dport => Some(if self.pkt.proto.has_ports() {
                    Key::Port(self.pkt.dport)
                } else {
                    Key::PortRange(0, u16::MAX)
                }),
                KeyExpr::CtMark => Some(Key::Mark(self.ct_mark)),
                KeyExpr::Numgen(n) => Some(Key::Index(self.ctx.pick % (*n).max(1))),
            })
            .collect()
    }

    fn addrs_contain(&self, addrs: &Addrs, ip: Ipv4Addr) -> bool {
        let ip = IpAddr::V4(ip);
        match addrs {
            Addrs::Cidrs(list) => list.iter().any(|c| c.contains(&ip)),
            // Dynamic sets (with a timeout) start empty: a new client.
            Addrs::Set(name) => self
                .table
                .set(name)
                .is_some_and(|s| s.timeout.is_none() && s.elements.iter().any(|c| c.contains(&ip))),
        }
    }

    fn matches(&self, m: &Match) -> bool {
        let p = &self.pkt;
        match m {
            Match::SaddrIn {
                family,
                addrs,
                negate,
            } => *family == IpFamily::V4 && (self.addrs_contain(addrs, p.src) != *negate),
            Match::DaddrIn {
                family,
                addrs,
                negate,
            } => *family == IpFamily::V4 && (self.addrs_contain(addrs, p.dst) != *negate),
            Match::Iifname { name, negate } => self.ctx.iif.is_some_and(|i| i == name) != *negate,
            Match::Oifname { name, negate } => self.ctx.oif.is_some_and(|o| o == name) != *negate,
            Match::L4Proto(proto) => p.proto == *proto,
            Match::Dport { ports, negate } => {
                p.proto.has_ports()
                    && (ports
                        .iter()
                        .any(|r| r.first <= p.dport && p.dport <= r.last)
                        != *negate)
            }
            Match::CtState(states) => states.contains(&self.ctx.ct),
            Match::FibLocal(which) => (self.ctx.is_local)(match which {
                FibAddr::Saddr => p.src,
                FibAddr::Daddr => p.dst,
            }),
            Match::Mark { mask, value } => self.mark & mask == *value,
            Match::ConcatIn { key, set } => {
                let Some(k) = self.key(key) else {
                    return false;
                };
                self.table
                    .concat_sets
                    .iter()
                    .find(|s| s.name == *set)
                    .is_some_and(|s| s.elements.iter().any(|e| key_matches(e, &k)))
            }
        }
    }
}

/// Whether a set or map element matches the packet's key, component by
/// component. Exhaustive over [`Key`]: a new kind of element (a range) is
/// a compile error here until it is given its meaning.
fn key_matches(element: &[Key], packet: &[Key]) -> bool {
    element.len() == packet.len()
        && element.iter().zip(packet).all(|(e, v)| match e {
            Key::Ipv4(_) | Key::Proto(_) | Key::Port(_) | Key::Index(_) | Key::Mark(_) => e == v,
            Key::Ipv4Range(a, b) => matches!(v, Key::Ipv4(x) if a <= x && x <= b),
            Key::ProtoRange(a, b) => {
                matches!(v, Key::Proto(p) if (*a..=*b).contains(&p.number()))
            }
            Key::PortRange(a, b) => match v {
                Key::Port(p) => a <= p && p <= b,
                // The packet's port is unknown (ICMP): the element must
                // cover all of it.
                Key::PortRange(x, y) => a <= x && y <= b,
                _ => false,
            },
        })
}

fn dnat_text(addr: Ipv4Addr, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("dnat to {addr}:{p}"),
        None => format!("dnat to {addr}"),
    }
}

/// The protocol's name as the CLI takes it.
pub fn proto_name(p: L4Proto) -> &'static str {
    p.as_str()
}

#[cfg(test)]
#[path = "nft_eval_tests.rs"]
mod tests;
