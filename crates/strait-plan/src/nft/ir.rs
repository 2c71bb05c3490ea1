//! The nftables ruleset as typed data: tables, sets, chains, rules with
//! typed matches and verdicts. No match is a string, so a renderer
//! ([`super::render()`]) and, later, an evaluator (`strait trace`) walk the same
//! structure. Matches name their address family (`ip` vs `ip6`) explicitly.
//!
//! Verdict maps are typed too: a [`Map`] has a concatenated key type and
//! typed elements, and a lookup ([`Verdict::VerdictMap`]) names the packet
//! fields it concatenates, so an evaluator can compute the key and follow
//! the element's verdict. Maps may also map to an address . port
//! ([`MapValue::Ipv4AddrPort`], read by [`Verdict::DnatMap`]), and their key
//! may end in `numgen random mod N` ([`KeyType::Numgen`]); sets of
//! concatenations ([`ConcatSet`]) are matched with [`Match::ConcatIn`].
//!
//! [`Table::validate`] checks what nft would reject (unknown sets, maps and
//! chains, family mismatches, key types, `th dport` without `meta l4proto`,
//! NAT and reject outside their hooks, also in every chain a base chain
//! reaches, which `nft -c` does not check, overlapping interval elements,
//! bad names), so a compiler bug shows up as a plan error rather than a
//! failed transaction on a node.

use ipnet::IpNet;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

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
    /// Named sets of concatenations (rendered after the address sets).
    pub concat_sets: Vec<ConcatSet>,
    /// Named maps (rendered after the sets).
    pub maps: Vec<Map>,
    pub chains: Vec<Chain>,
}

/// One component of a map key (a concatenation of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum KeyType {
    Ipv4Addr,
    /// A layer-4 protocol (`meta l4proto`).
    InetProto,
    /// A port (`th dport`).
    InetService,
    /// `numgen random mod N`: an integer below N (declared with `typeof`).
    Numgen(u32),
}

impl KeyType {
    /// The nft type name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ipv4Addr => "ipv4_addr",
            KeyType::InetProto => "inet_proto",
            KeyType::InetService => "inet_service",
            KeyType::Numgen(_) => "integer",
        }
    }

    /// The expression nft's `typeof` declares this type with.
    pub fn typeof_text(self) -> String {
        match self {
            KeyType::Ipv4Addr => "ip daddr".to_string(),
            KeyType::InetProto => "meta l4proto".to_string(),
            KeyType::InetService => "th dport".to_string(),
            KeyType::Numgen(n) => format!("numgen random mod {n}"),
        }
    }
}

/// One component of a map element's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Key {
    Ipv4(Ipv4Addr),
    Proto(L4Proto),
    Port(u16),
    /// A value of `numgen random mod N` (below N).
    Index(u32),
}

impl Key {
    /// Whether this component is a value of type `t`.
    pub fn fits(self, t: KeyType) -> bool {
        match (self, t) {
            (Key::Ipv4(_), KeyType::Ipv4Addr)
            | (Key::Proto(_), KeyType::InetProto)
            | (Key::Port(_), KeyType::InetService) => true,
            (Key::Index(i), KeyType::Numgen(n)) => i < n,
            _ => false,
        }
    }
}

/// Whether `key` is an element of the concatenated type `types`.
pub fn key_fits(key: &[Key], types: &[KeyType]) -> bool {
    key.len() == types.len() && key.iter().zip(types).all(|(k, t)| k.fits(*t))
}

/// What a map's elements map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MapValue {
    /// A verdict map (`vmap`).
    Verdict,
    /// `ipv4_addr . inet_service`: a DNAT target (`dnat ip to ... map`).
    Ipv4AddrPort,
}

/// What one map element maps to; must agree with the map's [`MapValue`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum MapData {
    Verdict(Verdict),
    AddrPort(Ipv4Addr, u16),
}

/// A named map: `type ipv4_addr . inet_proto . inet_service : verdict`
/// (rendered with `typeof` when the key holds `numgen`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Map {
    pub name: String,
    pub key: Vec<KeyType>,
    pub value: MapValue,
    /// Keys are unique; the renderer sorts by key.
    pub elements: Vec<(Vec<Key>, MapData)>,
    pub comment: Option<String>,
}

/// A named set of concatenations, e.g. `type ipv4_addr . ipv4_addr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConcatSet {
    pub name: String,
    /// At least two components (a single one is a plain [`Set`]); no numgen.
    pub key: Vec<KeyType>,
    /// The renderer sorts and deduplicates.
    pub elements: Vec<Vec<Key>>,
    pub comment: Option<String>,
}

/// A packet field a map lookup reads; concatenated in order to form the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum KeyExpr {
    /// `ip daddr`.
    Ipv4Daddr,
    /// `ip saddr`.
    Ipv4Saddr,
    /// `meta l4proto`.
    L4Proto,
    /// `th dport`.
    Dport,
    /// `numgen random mod N`: uniformly random below N.
    Numgen(u32),
}

impl KeyExpr {
    pub fn key_type(self) -> KeyType {
        match self {
            KeyExpr::Ipv4Daddr | KeyExpr::Ipv4Saddr => KeyType::Ipv4Addr,
            KeyExpr::L4Proto => KeyType::InetProto,
            KeyExpr::Dport => KeyType::InetService,
            KeyExpr::Numgen(n) => KeyType::Numgen(n),
        }
    }

    /// As nft writes it.
    pub fn text(self) -> String {
        match self {
            KeyExpr::Ipv4Daddr => "ip daddr".to_string(),
            KeyExpr::Ipv4Saddr => "ip saddr".to_string(),
            KeyExpr::L4Proto => "meta l4proto".to_string(),
            KeyExpr::Dport => "th dport".to_string(),
            KeyExpr::Numgen(n) => format!("numgen random mod {n}"),
        }
    }
}

/// Which address `fib ... type` classifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum FibAddr {
    Saddr,
    Daddr,
}

/// A non-terminal statement: runs after the matches, before the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Statement {
    /// `meta mark set meta mark | bits`.
    MarkOr(u32),
    /// `update @set { ip saddr }`: remember the source address in a dynamic
    /// set (renewing its timeout).
    UpdateSaddr(String),
}

/// How `reject` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum RejectWith {
    /// `reject with tcp reset`: needs `meta l4proto tcp` earlier in the rule.
    TcpReset,
    /// `reject with icmpx type port-unreachable` (nft's default in `inet`).
    PortUnreachable,
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
    /// A dynamic set whose elements expire after this many seconds (filled
    /// by `update` statements, e.g. sessionAffinity's client addresses).
    pub timeout: Option<u32>,
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
    /// Statements run in order when every match holds (before the counter).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<Statement>,
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
    /// `fib daddr type local`: the address is one of this host's.
    FibLocal(FibAddr),
    /// `meta mark & mask == value`.
    Mark {
        mask: u32,
        value: u32,
    },
    /// `ip daddr . meta l4proto . th dport @set`: the concatenation of
    /// `key` is an element of [`ConcatSet`] `set`.
    ConcatIn {
        key: Vec<KeyExpr>,
        set: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(String),
    /// Go to the chain without coming back (its end ends the calling base
    /// chain's evaluation with that chain's policy).
    Goto(String),
    /// Look up the concatenation of `key` in verdict map `map` and apply the
    /// element's verdict; no element: go on with the next rule.
    VerdictMap {
        key: Vec<KeyExpr>,
        map: String,
    },
    /// `numgen random mod N vmap { 0 : v0, 1 : v1, ... }` with N =
    /// `targets.len()`: one of the verdicts, uniformly at random.
    NumgenVmap {
        targets: Vec<Verdict>,
    },
    /// Destination NAT (`dnat ip to addr:port`; nat prerouting/output only;
    /// with a port the rule needs an earlier `meta l4proto` with ports).
    Dnat {
        addr: Ipv4Addr,
        port: Option<u16>,
    },
    /// `dnat ip to <key> map @map`: address and port come from looking up
    /// the concatenation of `key` in a map of [`MapValue::Ipv4AddrPort`]
    /// (nat prerouting/output only); no element: no NAT.
    DnatMap {
        key: Vec<KeyExpr>,
        map: String,
    },
    /// `reject`, only in filter chains (input, forward, output).
    Reject(RejectWith),
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
            concat_sets: Vec::new(),
            maps: Vec::new(),
            chains: Vec::new(),
        }
    }

    pub fn map(&self, name: &str) -> Option<&Map> {
        self.maps.iter().find(|m| m.name == name)
    }

    pub fn set(&self, name: &str) -> Option<&Set> {
        self.sets.iter().find(|s| s.name == name)
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// Checks the table for everything nft would refuse. Linear in the
    /// table's size (chains and sets are indexed by name first).
    pub fn validate(&self) -> Result<(), NftError> {
        let fail = |message: String| NftError {
            table: format!("{} {}", self.family.as_str(), self.name),
            message,
        };
        check_name(&self.name).map_err(|m| fail(format!("name: {m}")))?;
        let mut names = HashSet::new();
        for set in &self.sets {
            let at = format!("set {}", set.name);
            check_name(&set.name).map_err(|m| fail(format!("{at}: {m}")))?;
            if !names.insert(set.name.as_str()) {
                return Err(fail(format!("{at}: defined twice")));
            }
            self.check_set(set)
                .map_err(|m| fail(format!("{at}: {m}")))?;
        }
        for set in &self.concat_sets {
            let at = format!("set {}", set.name);
            check_name(&set.name).map_err(|m| fail(format!("{at}: {m}")))?;
            if !names.insert(set.name.as_str()) {
                return Err(fail(format!("{at}: defined twice")));
            }
            check_concat_set(set).map_err(|m| fail(format!("{at}: {m}")))?;
        }
        let mut chains: HashMap<&str, &Chain> = HashMap::with_capacity(self.chains.len());
        for chain in &self.chains {
            let at = format!("chain {}", chain.name);
            check_name(&chain.name).map_err(|m| fail(format!("{at}: {m}")))?;
            if chains.insert(chain.name.as_str(), chain).is_some() {
                return Err(fail(format!("{at}: defined twice")));
            }
        }
        let index = Index {
            sets: self.sets.iter().map(|s| (s.name.as_str(), s)).collect(),
            concat_sets: self
                .concat_sets
                .iter()
                .map(|s| (s.name.as_str(), s))
                .collect(),
            maps: self.maps.iter().map(|m| (m.name.as_str(), m)).collect(),
            chains,
        };
        for map in &self.maps {
            let at = format!("map {}", map.name);
            check_name(&map.name).map_err(|m| fail(format!("{at}: {m}")))?;
            if !names.insert(map.name.as_str()) {
                return Err(fail(format!(
                    "{at}: defined twice (set and map names share one namespace)"
                )));
            }
            check_map(&index, map).map_err(|m| fail(format!("{at}: {m}")))?;
        }
        for chain in &self.chains {
            let at = format!("chain {}", chain.name);
            if let Some(base) = &chain.base {
                check_base(base).map_err(|m| fail(format!("{at}: {m}")))?;
            }
            for (r, rule) in chain.rules.iter().enumerate() {
                self.check_rule(&index, chain, rule)
                    .map_err(|m| fail(format!("{at}, rule {}: {m}", r + 1)))?;
            }
        }
        for chain in &self.chains {
            if let Some(base) = &chain.base {
                check_reachable(&index, chain, base)
                    .map_err(|m| fail(format!("base chain {}: {m}", chain.name)))?;
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

    fn check_rule(&self, index: &Index, chain: &Chain, rule: &Rule) -> Result<(), String> {
        check_comment(rule.comment.as_deref())?;
        if rule.matches.is_empty() && !rule.counter && rule.verdict == Verdict::Continue {
            return Err("does nothing (no match, counter or verdict)".to_string());
        }
        let mut ported_proto = false;
        let mut proto = None;
        for m in &rule.matches {
            match m {
                Match::SaddrIn { family, addrs, .. } | Match::DaddrIn { family, addrs, .. } => {
                    self.check_addrs(index, *family, addrs)?
                }
                Match::Iifname { name, .. } | Match::Oifname { name, .. } => {
                    // Linux allows '"' in names; an nft string cannot hold it.
                    if !strait_model::config::valid_interface_name(name) || name.contains('"') {
                        return Err(format!("{name:?} is not an interface name nft can match"));
                    }
                }
                Match::L4Proto(p) => {
                    ported_proto = p.has_ports();
                    proto = Some(*p);
                }
                Match::FibLocal(_) => {}
                Match::Mark { mask, value } => {
                    if value & !mask != 0 {
                        return Err(format!(
                            "mark value {value:#x} has bits outside mask {mask:#x}"
                        ));
                    }
                }
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
                Match::ConcatIn { key, set } => {
                    let s = index
                        .concat_sets
                        .get(set.as_str())
                        .ok_or_else(|| format!("set @{set} does not exist"))?;
                    check_key(key, &s.key, ported_proto)
                        .map_err(|m| format!("match against set @{set}: {m}"))?;
                }
            }
        }
        for st in &rule.statements {
            match st {
                Statement::MarkOr(bits) => {
                    if *bits == 0 {
                        return Err("meta mark set with no bits".into());
                    }
                }
                Statement::UpdateSaddr(set) => match index.sets.get(set.as_str()) {
                    None => return Err(format!("update of missing set {set}")),
                    Some(s) if s.timeout.is_none() => {
                        return Err(format!("update of set {set}, which has no timeout"))
                    }
                    Some(_) => {}
                },
            }
        }
        check_verdict(index, chain, &rule.verdict, ported_proto, proto)
    }

    fn check_addrs(&self, index: &Index, family: IpFamily, addrs: &Addrs) -> Result<(), String> {
        if !self.family.carries(family) {
            return Err(format!(
                "{} match in a {} table",
                family.keyword(),
                self.family.as_str()
            ));
        }
        match addrs {
            Addrs::Set(name) => {
                let set = index
                    .sets
                    .get(name.as_str())
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

/// The table's objects by name, for [`Table::validate`].
struct Index<'a> {
    sets: HashMap<&'a str, &'a Set>,
    concat_sets: HashMap<&'a str, &'a ConcatSet>,
    maps: HashMap<&'a str, &'a Map>,
    chains: HashMap<&'a str, &'a Chain>,
}

fn check_target(index: &Index, chain: &Chain, target: &str) -> Result<(), String> {
    match index.chains.get(target) {
        None => Err(format!("jump to missing chain {target}")),
        Some(c) if c.base.is_some() => Err(format!("jump to base chain {target}")),
        Some(c) if c.name == chain.name => Err("jump to itself".into()),
        Some(_) => Ok(()),
    }
}

/// A verdict in `chain` after matches that left `proto` (the last
/// `meta l4proto`; `ported`: it has ports).
fn check_verdict(
    index: &Index,
    chain: &Chain,
    verdict: &Verdict,
    ported: bool,
    proto: Option<L4Proto>,
) -> Result<(), String> {
    if let Some(base) = &chain.base {
        hook_fits(verdict, base)?;
    }
    match verdict {
        Verdict::Jump(target) | Verdict::Goto(target) => check_target(index, chain, target)?,
        Verdict::VerdictMap { key, map } | Verdict::DnatMap { key, map } => {
            let m = index
                .maps
                .get(map.as_str())
                .ok_or_else(|| format!("map @{map} does not exist"))?;
            let want = if matches!(verdict, Verdict::VerdictMap { .. }) {
                MapValue::Verdict
            } else {
                MapValue::Ipv4AddrPort
            };
            if m.value != want {
                return Err(format!("map @{map} does not map to {want:?}"));
            }
            let types: Vec<KeyType> = key.iter().map(|k| k.key_type()).collect();
            if types != m.key {
                return Err(format!("lookup key does not match the type of map @{map}"));
            }
            if key.contains(&KeyExpr::Dport) && !key.contains(&KeyExpr::L4Proto) && !ported {
                return Err("th dport in a key needs meta l4proto (in the key or earlier)".into());
            }
            if want == MapValue::Ipv4AddrPort && !key.contains(&KeyExpr::L4Proto) && !ported {
                return Err("dnat to a port needs meta l4proto (in the key or earlier)".into());
            }
        }
        Verdict::NumgenVmap { targets } => {
            if targets.is_empty() {
                return Err("numgen over no verdicts".into());
            }
            for t in targets {
                if matches!(t, Verdict::NumgenVmap { .. } | Verdict::VerdictMap { .. }) {
                    return Err("numgen vmap element must be a plain verdict".into());
                }
                check_verdict(index, chain, t, ported, proto)?;
            }
        }
        Verdict::Dnat { port, .. } => {
            if port.is_some() && !ported {
                return Err("dnat to a port needs an earlier meta l4proto tcp, udp or sctp".into());
            }
        }
        Verdict::Reject(with) => {
            if *with == RejectWith::TcpReset && proto != Some(L4Proto::Tcp) {
                return Err("reject with tcp reset needs an earlier meta l4proto tcp".into());
            }
        }
        Verdict::Masquerade { .. }
        | Verdict::Accept
        | Verdict::Drop
        | Verdict::Return
        | Verdict::Continue => {}
    }
    Ok(())
}

/// Whether a NAT or reject verdict may run under `base`'s hook (the kernel
/// checks this on commit, for every chain a base chain reaches; `nft -c`
/// does not).
fn hook_fits(verdict: &Verdict, base: &BaseChain) -> Result<(), String> {
    let nat = base.kind == ChainType::Nat;
    let (ok, what) = match verdict {
        Verdict::Dnat { .. } | Verdict::DnatMap { .. } => (
            nat && matches!(base.hook, Hook::Prerouting | Hook::Output),
            "dnat outside a nat prerouting or output chain",
        ),
        Verdict::Reject(_) => (
            base.kind == ChainType::Filter
                && matches!(
                    base.hook,
                    Hook::Prerouting | Hook::Input | Hook::Forward | Hook::Output
                ),
            "reject outside a filter prerouting, input, forward or output chain",
        ),
        Verdict::Masquerade { .. } => (
            nat && base.hook == Hook::Postrouting,
            "masquerade outside a nat postrouting chain",
        ),
        Verdict::NumgenVmap { targets } => {
            for t in targets {
                hook_fits(t, base)?;
            }
            (true, "")
        }
        _ => (true, ""),
    };
    if ok {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

/// The chains a verdict continues in.
fn targets<'a>(index: &Index<'a>, verdict: &'a Verdict, out: &mut Vec<&'a str>) {
    match verdict {
        Verdict::Jump(t) | Verdict::Goto(t) => out.push(t),
        Verdict::NumgenVmap { targets: list } => {
            for v in list {
                targets(index, v, out);
            }
        }
        Verdict::VerdictMap { map, .. } => {
            if let Some(m) = index.maps.get(map.as_str()) {
                for (_, v) in &m.elements {
                    if let MapData::Verdict(v) = v {
                        targets(index, v, out);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Checks every chain a base chain reaches (through jumps, gotos, numgen
/// and verdict maps) against that base chain's hook.
fn check_reachable(index: &Index, base_chain: &Chain, base: &BaseChain) -> Result<(), String> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut todo: Vec<&str> = Vec::new();
    for rule in &base_chain.rules {
        targets(index, &rule.verdict, &mut todo);
    }
    while let Some(name) = todo.pop() {
        if !seen.insert(name) {
            continue;
        }
        let Some(chain) = index.chains.get(name) else {
            continue;
        };
        for (r, rule) in chain.rules.iter().enumerate() {
            hook_fits(&rule.verdict, base)
                .map_err(|m| format!("chain {name}, rule {} (reached from here): {m}", r + 1))?;
            targets(index, &rule.verdict, &mut todo);
        }
    }
    Ok(())
}

fn check_map(index: &Index, map: &Map) -> Result<(), String> {
    if map.key.is_empty() {
        return Err("map with an empty key type".into());
    }
    check_comment(map.comment.as_deref())?;
    let mut seen = HashSet::with_capacity(map.elements.len());
    // Map elements are not in a chain: check gotos by existence only.
    let nowhere = Chain {
        name: String::new(),
        base: None,
        rules: Vec::new(),
    };
    if map.key.contains(&KeyType::Numgen(0)) {
        return Err("numgen random mod 0 in the key".into());
    }
    for (key, data) in &map.elements {
        if !key_fits(key, &map.key) {
            return Err(format!("element key {key:?} does not match the map's type"));
        }
        if !seen.insert(key) {
            return Err(format!("element key {key:?} appears twice"));
        }
        match (map.value, data) {
            (MapValue::Verdict, MapData::Verdict(verdict)) => match verdict {
                Verdict::Accept | Verdict::Drop | Verdict::Return => {}
                Verdict::Jump(t) | Verdict::Goto(t) => check_target(index, &nowhere, t)?,
                other => return Err(format!("{other:?} cannot be a map element's verdict")),
            },
            (MapValue::Ipv4AddrPort, MapData::AddrPort(_, port)) => {
                if *port == 0 {
                    return Err(format!("element {key:?} maps to port 0"));
                }
            }
            (value, data) => {
                return Err(format!(
                    "element {key:?}: {data:?} is not a value of type {value:?}"
                ))
            }
        }
    }
    Ok(())
}

fn check_concat_set(set: &ConcatSet) -> Result<(), String> {
    if set.key.len() < 2 {
        return Err("a concatenation needs at least two components".into());
    }
    if set.key.iter().any(|k| matches!(k, KeyType::Numgen(_))) {
        return Err("numgen in a set's type".into());
    }
    check_comment(set.comment.as_deref())?;
    for e in &set.elements {
        if !key_fits(e, &set.key) {
            return Err(format!("element {e:?} does not match the set's type"));
        }
    }
    Ok(())
}

/// A lookup key against a set or map of type `types` (`ported`: an
/// earlier match named a protocol with ports).
fn check_key(key: &[KeyExpr], types: &[KeyType], ported: bool) -> Result<(), String> {
    let have: Vec<KeyType> = key.iter().map(|k| k.key_type()).collect();
    if have != types {
        return Err("key does not match the type".into());
    }
    if key.contains(&KeyExpr::Dport) && !key.contains(&KeyExpr::L4Proto) && !ported {
        return Err("th dport in a key needs meta l4proto (in the key or earlier)".into());
    }
    Ok(())
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
