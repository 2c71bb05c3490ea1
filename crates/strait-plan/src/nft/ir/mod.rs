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
use std::net::Ipv4Addr;

/// Longest comment nft accepts (NFT_USERDATA_MAXLEN allows 256 bytes; nft
/// itself limits comments to 128 characters).
pub const MAX_COMMENT_LEN: usize = 128;
/// Most statements a rule may hold: the kernel allows 128 expressions per
/// rule (NFT_RULE_MAXEXPRS), and matches and the verdict need some.
pub const MAX_RULE_STATEMENTS: usize = 110;
/// Longest log prefix nft accepts (NF_LOG_PREFIXLEN is 128 with the NUL).
pub const MAX_LOG_PREFIX_LEN: usize = 127;

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
    /// Named counter objects (`counter NAME { }`), rendered first; rules
    /// add to them with [`Statement::NamedCounter`].
    pub counters: Vec<CounterObj>,
}

/// A named counter object; its value survives rule changes but not a
/// rewrite of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CounterObj {
    pub name: String,
    pub comment: Option<String>,
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
    /// A 32-bit mark (`ct mark`).
    Mark,
}

impl KeyType {
    /// The nft type name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ipv4Addr => "ipv4_addr",
            KeyType::InetProto => "inet_proto",
            KeyType::InetService => "inet_service",
            KeyType::Numgen(_) => "integer",
            KeyType::Mark => "mark",
        }
    }

    /// The expression nft's `typeof` declares this type with.
    pub fn typeof_text(self) -> String {
        match self {
            KeyType::Ipv4Addr => "ip daddr".to_string(),
            KeyType::InetProto => "meta l4proto".to_string(),
            KeyType::InetService => "th dport".to_string(),
            KeyType::Numgen(n) => format!("numgen random mod {n}"),
            KeyType::Mark => "ct mark".to_string(),
        }
    }
}

/// One component of a map element's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Key {
    Ipv4(Ipv4Addr),
    Proto(L4Proto),
    Port(u16),
    /// A value of `numgen random mod N` (below N).
    Index(u32),
    /// An inclusive address range (only in interval sets).
    Ipv4Range(Ipv4Addr, Ipv4Addr),
    /// An inclusive range of protocol numbers (only in interval sets).
    ProtoRange(u8, u8),
    /// An inclusive port range (only in interval sets).
    PortRange(u16, u16),
    /// A mark value.
    Mark(u32),
}

/// One `u64` per component (two for a range): the compile and the agent
/// hash 110,000 keys at 10,000 Services, and the derived hash wrote an
/// address as a byte slice. Equal keys write equal words.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let (tag, a, b): (u64, u64, Option<u64>) = match *self {
            Key::Ipv4(a) => (0, u32::from(a).into(), None),
            Key::Proto(p) => (1, p.number().into(), None),
            Key::Port(p) => (2, p.into(), None),
            Key::Index(i) => (3, i.into(), None),
            Key::Ipv4Range(a, b) => (4, u32::from(a).into(), Some(u32::from(b).into())),
            Key::ProtoRange(a, b) => (5, a.into(), Some(b.into())),
            Key::PortRange(a, b) => (6, a.into(), Some(b.into())),
            Key::Mark(m) => (7, m.into(), None),
        };
        h.write_u64(tag << 56 | a);
        if let Some(b) = b {
            h.write_u64(b);
        }
    }
}

impl Key {
    /// Whether this component is a range (allowed in interval sets only).
    pub fn is_range(self) -> bool {
        matches!(
            self,
            Key::Ipv4Range(..) | Key::ProtoRange(..) | Key::PortRange(..)
        )
    }

    /// Whether this component is a value of type `t` (a range: not reversed).
    pub fn fits(self, t: KeyType) -> bool {
        match (self, t) {
            (Key::Ipv4(_), KeyType::Ipv4Addr)
            | (Key::Proto(_), KeyType::InetProto)
            | (Key::Port(_), KeyType::InetService) => true,
            (Key::Ipv4Range(a, b), KeyType::Ipv4Addr) => a <= b,
            (Key::ProtoRange(a, b), KeyType::InetProto) => a <= b,
            (Key::PortRange(a, b), KeyType::InetService) => a <= b,
            (Key::Mark(_), KeyType::Mark) => true,
            (Key::Index(i), KeyType::Numgen(n)) => i < n,
            _ => false,
        }
    }
}

/// A map or set element's key: the components of a concatenation, held
/// inline (no allocation per element: a table at 10,000 Services holds
/// 110,000 of them, and the compile spent most of its time in malloc).
pub type KeyVec = smallvec::SmallVec<[Key; 4]>;

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
    /// A mark (read by [`Statement::CtMarkSetMap`]).
    Mark,
}

/// What one map element maps to; must agree with the map's [`MapValue`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum MapData {
    Verdict(Verdict),
    AddrPort(Ipv4Addr, u16),
    Mark(u32),
}

/// A named map: `type ipv4_addr . inet_proto . inet_service : verdict`
/// (rendered with `typeof` when the key holds `numgen`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Map {
    pub name: String,
    pub key: Vec<KeyType>,
    pub value: MapValue,
    /// Keys are unique; the renderer sorts by key.
    pub elements: Vec<(KeyVec, MapData)>,
    pub comment: Option<String>,
    /// `flags interval`: keys may be ranges ([`Key::Ipv4Range`]); they
    /// must not overlap.
    pub interval: bool,
}

/// A named set of concatenations, e.g. `type ipv4_addr . ipv4_addr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConcatSet {
    pub name: String,
    /// At least two components (a single one is a plain [`Set`]); no numgen.
    pub key: Vec<KeyType>,
    /// The renderer sorts and deduplicates.
    pub elements: Vec<KeyVec>,
    pub comment: Option<String>,
    /// `flags interval`: elements may hold ranges ([`Key::Ipv4Range`],
    /// ...); they must not overlap (the kernel's pipapo set refuses it).
    pub interval: bool,
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
    /// `ct mark`: the connection's mark.
    CtMark,
}

impl KeyExpr {
    pub fn key_type(self) -> KeyType {
        match self {
            KeyExpr::Ipv4Daddr | KeyExpr::Ipv4Saddr => KeyType::Ipv4Addr,
            KeyExpr::L4Proto => KeyType::InetProto,
            KeyExpr::Dport => KeyType::InetService,
            KeyExpr::Numgen(n) => KeyType::Numgen(n),
            KeyExpr::CtMark => KeyType::Mark,
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
            KeyExpr::CtMark => "ct mark".to_string(),
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
    /// `ct mark set VALUE`.
    CtMarkSet(u32),
    /// `ct mark set ip saddr map @map`: the mark the packet field maps to
    /// in a map of [`MapValue::Mark`]; no element: the mark is unchanged.
    CtMarkSetMap { key: KeyExpr, map: String },
    /// `counter name "NAME"`: adds the packet to a [`CounterObj`].
    NamedCounter(String),
    /// `limit rate N/second burst B packets log group G prefix "..."`:
    /// sends at most `per_second` packets a second (after a burst) to
    /// nfnetlink_log group `group`. Over the limit the rule stops here, so
    /// it must be the last statement of a rule without a verdict.
    LimitLog {
        per_second: u32,
        burst: u32,
        group: u16,
        prefix: String,
    },
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

impl Rule {
    /// A rule without a counter.
    pub fn uncounted(
        matches: Vec<Match>,
        statements: Vec<Statement>,
        verdict: Verdict,
        comment: Option<&str>,
    ) -> Rule {
        Rule {
            matches,
            statements,
            verdict,
            counter: false,
            comment: comment.map(str::to_string),
        }
    }
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

    /// The IANA protocol number (what `meta l4proto` compares).
    pub fn number(self) -> u8 {
        match self {
            L4Proto::Icmp => 1,
            L4Proto::Tcp => 6,
            L4Proto::Udp => 17,
            L4Proto::Icmpv6 => 58,
            L4Proto::Sctp => 132,
        }
    }

    /// The protocol with this number, if it is one of these.
    pub fn from_number(n: u8) -> Option<L4Proto> {
        [
            L4Proto::Icmp,
            L4Proto::Tcp,
            L4Proto::Udp,
            L4Proto::Icmpv6,
            L4Proto::Sctp,
        ]
        .into_iter()
        .find(|p| p.number() == n)
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

mod validate;
pub use validate::NftError;

#[cfg(test)]
mod tests;
