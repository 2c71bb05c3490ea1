//! IPv4 address intervals: an `ipBlock` is its CIDR minus its `except`
//! CIDRs, computed here as sorted, disjoint, non-adjacent inclusive
//! intervals, because an nft interval set holds ranges but cannot subtract.

use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// An inclusive range of IPv4 addresses, as u32 (`lo <= hi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    pub lo: u32,
    pub hi: u32,
}

impl Interval {
    pub const ALL: Interval = Interval {
        lo: 0,
        hi: u32::MAX,
    };

    pub fn of_net(net: Ipv4Net) -> Interval {
        Interval {
            lo: u32::from(net.network()),
            hi: u32::from(net.broadcast()),
        }
    }

    pub fn single(addr: Ipv4Addr) -> Interval {
        let a = u32::from(addr);
        Interval { lo: a, hi: a }
    }

    pub fn first(self) -> Ipv4Addr {
        Ipv4Addr::from(self.lo)
    }

    pub fn last(self) -> Ipv4Addr {
        Ipv4Addr::from(self.hi)
    }

    pub fn contains(self, a: u32) -> bool {
        self.lo <= a && a <= self.hi
    }
}

/// Sorts and merges overlapping or adjacent intervals.
pub fn merge(mut list: Vec<Interval>) -> Vec<Interval> {
    list.sort();
    let mut out: Vec<Interval> = Vec::with_capacity(list.len());
    for i in list {
        match out.last_mut() {
            // `last.hi + 1 >= i.lo` without overflow at 255.255.255.255.
            Some(last) if u64::from(last.hi) + 1 >= u64::from(i.lo) => {
                last.hi = last.hi.max(i.hi);
            }
            _ => out.push(i),
        }
    }
    out
}

/// `base` minus every interval of `holes`: sorted, disjoint, merged.
pub fn subtract(base: Interval, holes: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::new();
    // Next address not yet handed out or cut away (u64: may pass u32::MAX).
    let mut next = u64::from(base.lo);
    for h in merge(holes.to_vec()) {
        if u64::from(h.hi) < next || h.lo > base.hi {
            continue;
        }
        if u64::from(h.lo) > next {
            out.push(Interval {
                lo: next as u32,
                hi: h.lo - 1,
            });
        }
        next = u64::from(h.hi) + 1;
    }
    if next <= u64::from(base.hi) {
        out.push(Interval {
            lo: next as u32,
            hi: base.hi,
        });
    }
    out
}

/// An `ipBlock`: `cidr` minus `except`. IPv6 blocks are `Ok(None)` (this
/// data path is IPv4 only, so they match no packet it sees); an except
/// outside the CIDR is an error, as the API server says.
pub fn ip_block(
    cidr: &str,
    except: &[String],
    field: &str,
) -> Result<Option<Vec<Interval>>, String> {
    let net: ipnet::IpNet = cidr
        .parse()
        .map_err(|e| format!("{field}.cidr {cidr:?}: {e}"))?;
    let ipnet::IpNet::V4(net) = net else {
        return Ok(None);
    };
    let mut holes = Vec::with_capacity(except.len());
    for (i, e) in except.iter().enumerate() {
        let at = format!("{field}.except[{i}]");
        let ex: Ipv4Net = e
            .parse()
            .map_err(|err| format!("{at} {e:?}: {err} (an IPv4 CIDR inside {cidr})"))?;
        if !net.contains(&ex) {
            return Err(format!("{at} {e} is not inside cidr {cidr}"));
        }
        holes.push(Interval::of_net(ex));
    }
    // The API accepts host bits in the cidr; the block is the network.
    Ok(Some(subtract(Interval::of_net(net.trunc()), &holes)))
}

#[cfg(test)]
#[path = "intervals_tests.rs"]
mod tests;
