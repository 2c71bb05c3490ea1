//! The nftables ruleset as typed data: tables, sets, chains, rules with
//! typed matches and verdicts. No match is a string, so a renderer
//! ([`super::render()`]) and, later, an evaluator (`strait trace`) walk the same
//! structure. Matches name their address family (`ip` vs `ip6`) explicitly.
//!
//! [`Table::validate`] checks what nft would reject (unknown sets and
//! chains, family mismatches, `th dport` without `meta l4proto`, NAT
//! statements outside NAT hooks, overlapping interval elements, bad names),
//! so a compiler bug shows up as a plan error rather than a failed
//! transaction on a node.

use ipnet::IpNet;
use serde::Serialize;

/// Longest comment nft accepts (NFT_USERDATA_MAXLEN allows 256 bytes; nft
/// itself limits comments to 128 characters).
pub const MAX_COMMENT_LEN: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 and IPv6 in one table.
    Inet,
    Ip,
    Ip6,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }

    /// Whether rules in a table of this family can match `ip`.
    pub fn carries(self, ip: IpFamily) -> bool {
        matches!(
            (self, ip),
            (Family::Inet, _) | (Family::Ip, IpFamily::V4) | (Family::Ip6, IpFamily::V6)
        )
    }
}

/// The network-layer protocol an address match applies to: `ip` or `ip6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub fn of(net: &IpNet) -> IpFamily {
        match net {
            IpNet::V4(_) => IpFamily::V4,
            IpNet::V6(_) => IpFamily::V6,
        }
    }

    /// The nft payload keyword: `ip` or `ip6`.
    pub fn keyword(self) -> &'static str {
        match self {
            IpFamily::V4 => "ip",
            IpFamily::V6 => "ip6",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    pub family: Family,
    pub name: String,
    pub sets: Vec<Set>,
    pub chains: Vec<Chain>,
}

/// The element type of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum SetKind {
    Ipv4Addr,
    Ipv6Addr,
}

impl SetKind {
    /// The nft type name.
    pub fn as_str(self) -> &'static str {
        match self {
            SetKind::Ipv4Addr => "ipv4_addr",
            SetKind::Ipv6Addr => "ipv6_addr",
        }
    }

    pub fn family(self) -> IpFamily {
        match self {
            SetKind::Ipv4Addr => IpFamily::V4,
            SetKind::Ipv6Addr => IpFamily::V6,
        }
    }
}

/// A named set of addresses. With `interval`, elements are prefixes;
/// without, each element must be a single address (/32 or /128).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Set {
    pub name: String,
    pub kind: SetKind,
    pub interval: bool,
    pub elements: Vec<IpNet>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ChainType {
    Filter,
    Nat,
    Route,
}

impl ChainType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Policy {
    Accept,
    Drop,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Accept => "accept",
            Policy::Drop => "drop",
        }
    }
}

/// What makes a chain a base chain: attached to a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BaseChain {
    pub kind: ChainType,
    pub hook: Hook,
    /// Numeric priority (filter = 0, srcnat = 100, dstnat = -100).
    pub priority: i32,
    pub policy: Policy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chain {
    pub name: String,
    /// `None` for a regular chain (reached by `jump`).
    pub base: Option<BaseChain>,
    pub rules: Vec<Rule>,
}

/// A rule: every match must hold, then the counter counts and the verdict
/// applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub verdict: Verdict,
    pub counter: bool,
    pub comment: Option<String>,
}

/// Where an address match looks: a named set of the table, or literal
/// prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Addrs {
    Set(String),
    Cidrs(Vec<IpNet>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum L4Proto {
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmpv6,
}

impl L4Proto {
    /// The name nft uses after `meta l4proto`.
    pub fn as_str(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
            L4Proto::Sctp => "sctp",
            L4Proto::Icmp => "icmp",
            L4Proto::Icmpv6 => "ipv6-icmp",
        }
    }

    /// Whether the protocol has ports (`th dport` is meaningful).
    pub fn has_ports(self) -> bool {
        matches!(self, L4Proto::Tcp | L4Proto::Udp | L4Proto::Sctp)
    }
}

/// An inclusive port range; `first == last` for one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn single(port: u16) -> Self {
        PortRange {
            first: port,
            last: port,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum CtState {
    Invalid,
    Established,
    Related,
    New,
    Untracked,
}

impl CtState {
    pub fn as_str(self) -> &'static str {
        match self {
            CtState::Invalid => "invalid",
            CtState::Established => "established",
            CtState::Related => "related",
            CtState::New => "new",
            CtState::Untracked => "untracked",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Match {
    /// `ip saddr @set` / `ip6 saddr { ... }`; `negate` gives `!=`. Only
    /// packets of `family` can match.
    SaddrIn {
        family: IpFamily,
        addrs: Addrs,
        negate: bool,
    },
    DaddrIn {
        family: IpFamily,
        addrs: Addrs,
        negate: bool,
    },
    Iifname {
        name: String,
        negate: bool,
    },
    Oifname {
        name: String,
        negate: bool,
    },
    /// `meta l4proto tcp`.
    L4Proto(L4Proto),
    /// `th dport ...`: needs an earlier [`Match::L4Proto`] with ports in the
    /// same rule (nft rejects `th` without it).
    Dport {
        ports: Vec<PortRange>,
        negate: bool,
    },
    /// `ct state established,related`: any of the states.
    CtState(Vec<CtState>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(String),
    /// Source NAT to the outgoing interface's address (postrouting NAT only).
    Masquerade {
        fully_random: bool,
    },
    /// No verdict: evaluation goes on with the next rule.
    Continue,
}

/// Why a table would be rejected by nft, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nft table {table}: {message}")]
pub struct NftError {
    pub table: String,
    pub message: String,
}

impl Table {
    pub fn new(family: Family, name: impl Into<String>) -> Self {
        Table {
            family,
            name: name.into(),
            sets: Vec::new(),
            chains: Vec::new(),
        }
    }

    pub fn set(&self, name: &str) -> Option<&Set> {
        self.sets.iter().find(|s| s.name == name)
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// Checks the table for everything nft would refuse.
    pub fn validate(&self) -> Result<(), NftError> {
        let fail = |message: String| NftError {
            table: format!("{} {}", self.family.as_str(), self.name),
            message,
        };
        check_name(&self.name).map_err(|m| fail(format!("name: {m}")))?;
        for (i, set) in self.sets.iter().enumerate() {
            let at = format!("set {}", set.name);
            check_name(&set.name).map_err(|m| fail(format!("{at}: {m}")))?;
            if self.sets[..i].iter().any(|s| s.name == set.name) {
                return Err(fail(format!("{at}: defined twice")));
            }
            self.check_set(set)
                .map_err(|m| fail(format!("{at}: {m}")))?;
        }
        for (i, chain) in self.chains.iter().enumerate() {
            let at = format!("chain {}", chain.name);
            check_name(&chain.name).map_err(|m| fail(format!("{at}: {m}")))?;
            if self.chains[..i].iter().any(|c| c.name == chain.name) {
                return Err(fail(format!("{at}: defined twice")));
            }
            if let Some(base) = &chain.base {
                check_base(base).map_err(|m| fail(format!("{at}: {m}")))?;
            }
            for (r, rule) in chain.rules.iter().enumerate() {
                self.check_rule(chain, rule)
                    .map_err(|m| fail(format!("{at}, rule {}: {m}", r + 1)))?;
            }
        }
        Ok(())
    }

    fn check_set(&self, set: &Set) -> Result<(), String> {
        let family = set.kind.family();
        if !self.family.carries(family) {
            return Err(format!(
                "type {} in a {} table",
                set.kind.as_str(),
                self.family.as_str()
            ));
        }
        check_comment(set.comment.as_deref())?;
        for e in &set.elements {
            if IpFamily::of(e) != family {
                return Err(format!("element {e} is not of type {}", set.kind.as_str()));
            }
            if e.trunc() != *e {
                return Err(format!("element {e} has host bits set"));
            }
            if !set.interval && e.prefix_len() != e.max_prefix_len() {
                return Err(format!(
                    "element {e} is a prefix but the set has no interval flag"
                ));
            }
        }
        let mut sorted = set.elements.clone();
        sorted.sort();
        for pair in sorted.windows(2) {
            if pair[0].contains(&pair[1].network()) {
                return Err(format!("elements {} and {} overlap", pair[0], pair[1]));
            }
        }
        Ok(())
    }

    fn check_rule(&self, chain: &Chain, rule: &Rule) -> Result<(), String> {
        check_comment(rule.comment.as_deref())?;
        if rule.matches.is_empty() && !rule.counter && rule.verdict == Verdict::Continue {
            return Err("does nothing (no match, counter or verdict)".to_string());
        }
        let mut ported_proto = false;
        for m in &rule.matches {
            match m {
                Match::SaddrIn { family, addrs, .. } | Match::DaddrIn { family, addrs, .. } => {
                    self.check_addrs(*family, addrs)?
                }
                Match::Iifname { name, .. } | Match::Oifname { name, .. } => {
                    // Linux allows '"' in names; an nft string cannot hold it.
                    if !strait_model::config::valid_interface_name(name) || name.contains('"') {
                        return Err(format!("{name:?} is not an interface name nft can match"));
                    }
                }
                Match::L4Proto(p) => ported_proto = p.has_ports(),
                Match::Dport { ports, .. } => {
                    if !ported_proto {
                        return Err(
                            "th dport needs an earlier meta l4proto tcp, udp or sctp".into()
                        );
                    }
                    if ports.is_empty() {
                        return Err("th dport with no ports".into());
                    }
                    if let Some(p) = ports.iter().find(|p| p.first > p.last) {
                        return Err(format!("port range {}-{} is reversed", p.first, p.last));
                    }
                }
                Match::CtState(states) => {
                    if states.is_empty() {
                        return Err("ct state with no states".into());
                    }
                }
            }
        }
        match &rule.verdict {
            Verdict::Jump(target) => match self.chain(target) {
                None => return Err(format!("jump to missing chain {target}")),
                Some(c) if c.base.is_some() => return Err(format!("jump to base chain {target}")),
                Some(c) if c.name == chain.name => return Err("jump to itself".into()),
                Some(_) => {}
            },
            Verdict::Masquerade { .. } => {
                if let Some(base) = &chain.base {
                    if base.kind != ChainType::Nat || base.hook != Hook::Postrouting {
                        return Err("masquerade outside a nat postrouting chain".into());
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn check_addrs(&self, family: IpFamily, addrs: &Addrs) -> Result<(), String> {
        if !self.family.carries(family) {
            return Err(format!(
                "{} match in a {} table",
                family.keyword(),
                self.family.as_str()
            ));
        }
        match addrs {
            Addrs::Set(name) => {
                let set = self
                    .set(name)
                    .ok_or_else(|| format!("set @{name} does not exist"))?;
                if set.kind.family() != family {
                    return Err(format!(
                        "{} match against set @{name} of type {}",
                        family.keyword(),
                        set.kind.as_str()
                    ));
                }
            }
            Addrs::Cidrs(list) => {
                if list.is_empty() {
                    return Err("address match with no addresses".into());
                }
                if let Some(c) = list.iter().find(|c| IpFamily::of(c) != family) {
                    return Err(format!("{c} in an {} match", family.keyword()));
                }
            }
        }
        Ok(())
    }
}

/// nft identifiers: a letter or `_`, then letters, digits, `_`, `-`, `.`.
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok
        || name.len() > 255
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!("{name:?} is not a valid nft name"));
    }
    Ok(())
}

fn check_comment(comment: Option<&str>) -> Result<(), String> {
    if let Some(c) = comment {
        if c.len() > MAX_COMMENT_LEN || c.chars().any(|ch| ch == '"' || ch.is_control()) {
            return Err(format!(
                "comment {c:?} is longer than {MAX_COMMENT_LEN} bytes or holds '\"' or control characters"
            ));
        }
    }
    Ok(())
}

fn check_base(base: &BaseChain) -> Result<(), String> {
    let ok = match base.kind {
        ChainType::Filter => true,
        ChainType::Nat => base.hook != Hook::Forward,
        ChainType::Route => base.hook == Hook::Output,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "type {} cannot use hook {}",
            base.kind.as_str(),
            base.hook.as_str()
        ))
    }
}

#[cfg(test)]
#[path = "ir_tests.rs"]
mod tests;
