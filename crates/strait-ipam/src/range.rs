//! Validated address ranges and range sets, with host-local's defaults and the address
//! arithmetic over them. Addresses are handled as `u128` so IPv6 ranges of any size work
//! without ever being enumerated.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::IpamError;

/// One contiguous range `start..=end` inside `subnet`. The network address, the IPv4
/// broadcast address and `gateway` are never allocated from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNet,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: Option<IpAddr>,
}

/// Ranges one address is allocated from; all of one IP family, none overlapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(pub Vec<Range>);

/// A range covering all of `subnet` with host-local's defaults: host bits are masked off,
/// the gateway is network+1, and the range runs from network+1 to the last address
/// (the broadcast address excluded for IPv4). Used when the node's pod CIDR comes from a file.
pub fn range_set_from_cidr(subnet: IpNet) -> Result<RangeSet, IpamError> {
    let range =
        Range::with_defaults(subnet.trunc(), None, None, None).map_err(|p| IpamError::Config {
            field: p.field.json_name().to_string(),
            message: p.message,
        })?;
    Ok(RangeSet(vec![range]))
}

/// The config field a [`RangeProblem`] is about; `Range` means the range as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Subnet,
    RangeStart,
    RangeEnd,
    Gateway,
    Range,
}

impl Field {
    /// The field's name in host-local's JSON, or "" for the range as a whole.
    pub(crate) fn json_name(self) -> &'static str {
        match self {
            Field::Subnet => "subnet",
            Field::RangeStart => "rangeStart",
            Field::RangeEnd => "rangeEnd",
            Field::Gateway => "gateway",
            Field::Range => "",
        }
    }
}

/// Why one range is invalid; the caller turns it into an error with the field's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RangeProblem {
    pub field: Field,
    pub message: String,
}

/// Why a range set is invalid; indexes are positions inside the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SetProblem {
    Empty,
    Range(usize, RangeProblem),
    /// Range `index` is of another family than range 0.
    MixedFamilies(usize),
    /// Range `index` overlaps the earlier range `other`.
    Overlap {
        index: usize,
        other: usize,
    },
}

pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// `v` as an address of the same family as `like`; None if it does not fit (IPv4 > 32 bits).
pub(crate) fn from_u128(v: u128, like: IpAddr) -> Option<IpAddr> {
    match like {
        IpAddr::V4(_) => u32::try_from(v).ok().map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        IpAddr::V6(_) => Some(IpAddr::V6(Ipv6Addr::from(v))),
    }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

fn family_name(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

impl Range {
    /// Fills in host-local's defaults for the fields not given, then validates.
    /// `subnet` must already be masked (config and [`range_set_from_cidr`] do that).
    pub(crate) fn with_defaults(
        subnet: IpNet,
        start: Option<IpAddr>,
        end: Option<IpAddr>,
        gateway: Option<IpAddr>,
    ) -> Result<Range, RangeProblem> {
        check_prefix(subnet)?;
        let network = to_u128(subnet.network());
        // Cannot overflow: check_prefix leaves at least two host bits.
        let first = from_u128(network + 1, subnet.network());
        let last = match subnet {
            IpNet::V4(n) => from_u128(u128::from(u32::from(n.broadcast())) - 1, subnet.network()),
            IpNet::V6(n) => Some(IpAddr::V6(n.broadcast())),
        };
        let (Some(first), Some(last)) = (first, last) else {
            return Err(RangeProblem {
                field: Field::Subnet,
                message: format!("{subnet} has no room for addresses"),
            });
        };
        let range = Range {
            subnet,
            start: start.unwrap_or(first),
            end: end.unwrap_or(last),
            gateway: Some(gateway.unwrap_or(first)),
        };
        range.check()?;
        Ok(range)
    }

    /// Validates a range however it was built.
    pub(crate) fn check(&self) -> Result<(), RangeProblem> {
        let problem = |field, message| Err(RangeProblem { field, message });
        let subnet = self.subnet;
        check_prefix(subnet)?;
        if let Some(gw) = self.gateway {
            if !same_family(gw, subnet.network()) {
                let fam = family_name(subnet.network());
                return problem(
                    Field::Gateway,
                    format!("{gw} is not an {fam} address like subnet {subnet}"),
                );
            }
        }
        if !subnet.contains(&self.start) {
            let start = self.start;
            return problem(
                Field::RangeStart,
                format!("{start} is outside subnet {subnet}"),
            );
        }
        if !subnet.contains(&self.end) {
            let end = self.end;
            return problem(Field::RangeEnd, format!("{end} is outside subnet {subnet}"));
        }
        if to_u128(self.start) > to_u128(self.end) {
            let (start, end) = (self.start, self.end);
            return problem(
                Field::RangeEnd,
                format!("{end} is before rangeStart {start}"),
            );
        }
        if self.size() == 0 {
            let (start, end) = (self.start, self.end);
            return problem(
                Field::Range,
                format!(
                    "{start}-{end} holds no allocatable address (the network address, \
                     the IPv4 broadcast address and the gateway are never allocated)"
                ),
            );
        }
        Ok(())
    }

    /// Whether `ip` lies in `start..=end` (reserved addresses included).
    pub fn contains(&self, ip: IpAddr) -> bool {
        same_family(ip, self.start)
            && same_family(ip, self.end)
            && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(ip))
    }

    /// Whether `ip` may be handed out from this range.
    pub fn is_allocatable(&self, ip: IpAddr) -> bool {
        self.contains(ip) && !self.is_reserved(ip)
    }

    fn is_reserved(&self, ip: IpAddr) -> bool {
        self.reserved().contains(&Some(ip))
    }

    /// Network address, IPv4 broadcast address and gateway: never allocated.
    fn reserved(&self) -> [Option<IpAddr>; 3] {
        let broadcast = match self.subnet {
            IpNet::V4(n) => Some(IpAddr::V4(n.broadcast())),
            IpNet::V6(_) => None,
        };
        [Some(self.subnet.network()), broadcast, self.gateway]
    }

    /// How many addresses may be allocated from this range (0 for an inconsistent range).
    pub fn size(&self) -> u128 {
        if !same_family(self.start, self.end) || to_u128(self.start) > to_u128(self.end) {
            return 0;
        }
        let span = (to_u128(self.end) - to_u128(self.start)).saturating_add(1);
        let mut reserved = self.reserved().into_iter().flatten().collect::<Vec<_>>();
        reserved.sort();
        reserved.dedup();
        let inside = reserved.iter().filter(|ip| self.contains(**ip)).count();
        span.saturating_sub(inside as u128)
    }

    /// First and last allocatable addresses; None if there is none.
    pub fn bounds(&self) -> Option<(IpAddr, IpAddr)> {
        if self.size() == 0 {
            return None;
        }
        // At most three reserved addresses, so a few steps from either end suffice.
        let (lo, hi) = (to_u128(self.start), to_u128(self.end));
        let pick = |vals: &mut dyn Iterator<Item = u128>| {
            vals.take(4)
                .filter_map(|v| from_u128(v, self.start))
                .find(|ip| self.is_allocatable(*ip))
        };
        let first = pick(&mut (lo..=hi))?;
        let last = pick(&mut (lo..=hi).rev())?;
        Some((first, last))
    }

    fn overlaps(&self, other: &Range) -> bool {
        same_family(self.start, other.start)
            && to_u128(self.start) <= to_u128(other.end)
            && to_u128(other.start) <= to_u128(self.end)
    }

    /// `start-end`, for messages.
    pub(crate) fn span(&self) -> String {
        format!("{}-{}", self.start, self.end)
    }
}

/// Rejects subnets without room for an allocatable address, as host-local does.
fn check_prefix(subnet: IpNet) -> Result<(), RangeProblem> {
    let longest = subnet.max_prefix_len() - 2;
    if subnet.prefix_len() > longest {
        return Err(RangeProblem {
            field: Field::Subnet,
            message: format!(
                "{subnet} is too small to allocate from (the longest usable prefix is /{longest})"
            ),
        });
    }
    Ok(())
}

impl fmt::Display for Range {
    /// `subnet (first-last)` with the allocatable bounds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.bounds() {
            Some((first, last)) => write!(f, "{} ({first}-{last})", self.subnet),
            None => write!(f, "{} (no allocatable address)", self.subnet),
        }
    }
}

impl RangeSet {
    /// Validates the set: non-empty, valid ranges, one family, no overlaps.
    pub(crate) fn check(&self) -> Result<(), SetProblem> {
        let Some(first) = self.0.first() else {
            return Err(SetProblem::Empty);
        };
        for (i, r) in self.0.iter().enumerate() {
            r.check().map_err(|p| SetProblem::Range(i, p))?;
            if !same_family(r.start, first.start) {
                return Err(SetProblem::MixedFamilies(i));
            }
            if let Some(other) = self.0[..i].iter().position(|o| o.overlaps(r)) {
                return Err(SetProblem::Overlap { index: i, other });
            }
        }
        Ok(())
    }

    /// The range holding `ip` as an allocatable address.
    pub fn find(&self, ip: IpAddr) -> Option<&Range> {
        self.0.iter().find(|r| r.is_allocatable(ip))
    }

    /// How many addresses may be allocated from the set.
    pub fn size(&self) -> u128 {
        self.0.iter().fold(0u128, |n, r| n.saturating_add(r.size()))
    }

    /// Whether any range of this set overlaps any range of `other`; returns the indexes.
    pub(crate) fn overlap_with(&self, other: &RangeSet) -> Option<(usize, usize)> {
        self.0
            .iter()
            .enumerate()
            .find_map(|(i, a)| other.0.iter().position(|b| a.overlaps(b)).map(|j| (i, j)))
    }

    /// Every candidate address once, in order, starting after `last` (or at the
    /// beginning when `last` is not in the set) and wrapping around: round-robin.
    pub(crate) fn candidates_after(&self, last: Option<IpAddr>) -> Candidates<'_> {
        let begin = |j: usize| self.0.get(j).map(|r| (j, to_u128(r.start)));
        let start = last
            .and_then(|last| {
                let (j, r) = self.0.iter().enumerate().find(|(_, r)| r.contains(last))?;
                if to_u128(last) >= to_u128(r.end) {
                    begin((j + 1) % self.0.len())
                } else {
                    Some((j, to_u128(last) + 1))
                }
            })
            .or_else(|| begin(0));
        Candidates {
            set: self,
            start,
            next: start,
        }
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Iterator of [`RangeSet::candidates_after`]; lazily walks (range index, address).
/// Requires a checked set (start <= end in every range), else it may stop early.
pub(crate) struct Candidates<'a> {
    set: &'a RangeSet,
    start: Option<(usize, u128)>,
    next: Option<(usize, u128)>,
}

impl<'a> Iterator for Candidates<'a> {
    type Item = (&'a Range, IpAddr);

    fn next(&mut self) -> Option<Self::Item> {
        let (j, v) = self.next?;
        let r = self.set.0.get(j)?;
        let ip = from_u128(v, r.start)?;
        let after = if v >= to_u128(r.end) {
            let k = (j + 1) % self.set.0.len();
            self.set.0.get(k).map(|n| (k, to_u128(n.start)))
        } else {
            Some((j, v + 1))
        };
        // Back where we began: every address has been offered once.
        self.next = after.filter(|a| Some(*a) != self.start);
        Some((r, ip))
    }
}

#[cfg(test)]
#[path = "range_tests.rs"]
mod tests;
