//! Peer classes ("atoms"): the address space cut into intervals by which
//! peer groups hold them. Rules name groups of peer addresses (the pods a
//! selector matches, an ipBlock minus its excepts, everyone); two addresses
//! in exactly the same groups are interchangeable for every rule, so the
//! data path first maps the peer address to its atom (one interval-map
//! lookup) and the allow set is keyed by atom, not by address. That keeps
//! the allow set at (isolated pods) x (atoms they allow) x (port ranges)
//! instead of (isolated pods) x (peer addresses) x (port ranges).

use super::intervals::{merge, Interval};

/// The atoms of some groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Partition {
    /// Disjoint, sorted intervals, each with its atom (index into
    /// `members`); addresses in no group are in no interval.
    pub intervals: Vec<(Interval, usize)>,
    /// Per atom: the groups (indices) holding it, sorted; never empty.
    pub members: Vec<Vec<usize>>,
}

/// Cuts the addresses of `groups` into atoms.
pub fn partition(groups: &[Vec<Interval>]) -> Partition {
    let groups: Vec<Vec<Interval>> = groups.iter().map(|g| merge(g.clone())).collect();
    let mut cuts: Vec<u64> = groups
        .iter()
        .flat_map(|g| {
            g.iter()
                .flat_map(|i| [u64::from(i.lo), u64::from(i.hi) + 1])
        })
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut cursor = vec![0usize; groups.len()];
    let mut index: std::collections::HashMap<Vec<usize>, usize> = Default::default();
    let mut out = Partition::default();
    let mut holding = Vec::new();
    for w in cuts.windows(2) {
        let (lo, hi) = (w[0] as u32, (w[1] - 1) as u32);
        holding.clear();
        for (g, list) in groups.iter().enumerate() {
            // Cuts only grow, so each group's cursor only moves forward.
            while cursor[g] < list.len() && list[cursor[g]].hi < lo {
                cursor[g] += 1;
            }
            if list.get(cursor[g]).is_some_and(|i| i.contains(lo)) {
                holding.push(g);
            }
        }
        if holding.is_empty() {
            continue;
        }
        let atom = match index.get(&holding) {
            Some(a) => *a,
            None => {
                out.members.push(holding.clone());
                index.insert(holding.clone(), out.members.len() - 1);
                out.members.len() - 1
            }
        };
        match out.intervals.last_mut() {
            Some((last, a)) if *a == atom && u64::from(last.hi) + 1 == u64::from(lo) => {
                last.hi = hi;
            }
            _ => out.intervals.push((Interval { lo, hi }, atom)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every address is in the atom whose groups are exactly the groups
        /// holding it; addresses in no group are in no atom; intervals are
        /// disjoint and sorted.
        #[test]
        fn atoms_are_exact(groups in proptest::collection::vec(
            proptest::collection::vec((0u32..60, 0u32..8), 0..4), 0..6)) {
            let groups: Vec<Vec<Interval>> = groups
                .into_iter()
                .map(|g| g.into_iter().map(|(lo, len)| Interval { lo, hi: lo + len }).collect())
                .collect();
            let p = partition(&groups);
            for w in p.intervals.windows(2) {
                prop_assert!(w[0].0.hi < w[1].0.lo);
            }
            for a in 0..72u32 {
                let want: Vec<usize> = (0..groups.len())
                    .filter(|g| groups[*g].iter().any(|i| i.contains(a)))
                    .collect();
                let got = p.intervals.iter().find(|(i, _)| i.contains(a)).map(|(_, atom)| p.members[*atom].clone());
                prop_assert_eq!(got.unwrap_or_default(), want);
            }
        }
    }

    #[test]
    fn everyone_and_a_pod() {
        let p = partition(&[vec![Interval::ALL], vec![Interval { lo: 5, hi: 5 }]]);
        assert_eq!(p.members, vec![vec![0], vec![0, 1]]);
        assert_eq!(
            p.intervals,
            vec![
                (Interval { lo: 0, hi: 4 }, 0),
                (Interval { lo: 5, hi: 5 }, 1),
                (
                    Interval {
                        lo: 6,
                        hi: u32::MAX
                    },
                    0
                )
            ]
        );
    }
}
