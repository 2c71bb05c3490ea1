//! Random operation sequences against the disk store and a simple in-memory model.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;

use common::{check_index, id, ip, sets};
use proptest::prelude::*;
use strait_ipam::{AttachmentId, IpamError, RangeSet, Store};

const IDS: usize = 7;

#[derive(Debug, Clone)]
enum Op {
    /// Allocate from the first `n` range sets (1 or 2).
    Allocate {
        who: usize,
        n: usize,
    },
    Release {
        who: usize,
    },
    /// Bit i set: attachment i is valid.
    Gc {
        valid: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..IDS, 1..=2usize).prop_map(|(who, n)| Op::Allocate { who, n }),
        2 => (0..IDS).prop_map(|who| Op::Release { who }),
        1 => any::<u8>().prop_map(|valid| Op::Gc { valid }),
    ]
}

fn who(n: usize) -> AttachmentId {
    id(&format!("container-{n}"), "eth0")
}

/// What the store should do, written out plainly: candidate lists in round-robin order.
struct Model {
    candidates: Vec<Vec<IpAddr>>,
    holdings: BTreeMap<IpAddr, usize>,
    last: Vec<Option<IpAddr>>,
}

impl Model {
    fn new() -> Model {
        let v4 = ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"];
        let v6 = [
            "fd00::4",
            "fd00::5",
            "fd00::6",
            "fd00::7",
            "fd00:1::2",
            "fd00:1::3",
        ];
        Model {
            candidates: vec![v6.map(ip).to_vec(), v4.map(ip).to_vec()],
            holdings: BTreeMap::new(),
            last: vec![None, None],
        }
    }

    /// Ok(addresses), or Err(index of the exhausted set).
    fn allocate(&mut self, who: usize, n: usize) -> Result<Vec<IpAddr>, usize> {
        let mut result = Vec::new();
        let mut taken = Vec::new();
        for s in 0..n {
            let cands = &self.candidates[s];
            let held = self
                .holdings
                .iter()
                .find(|(a, o)| **o == who && cands.contains(a));
            if let Some((a, _)) = held {
                result.push(*a);
                continue;
            }
            let after = self.last[s]
                .and_then(|l| cands.iter().position(|c| *c == l))
                .map_or(0, |p| p + 1);
            let free = (0..cands.len())
                .map(|k| cands[(after + k) % cands.len()])
                .find(|c| !self.holdings.contains_key(c));
            let Some(free) = free else {
                for a in taken {
                    self.holdings.remove(&a);
                }
                return Err(s);
            };
            self.holdings.insert(free, who);
            self.last[s] = Some(free);
            taken.push(free);
            result.push(free);
        }
        Ok(result)
    }

    fn release_where(&mut self, doomed: impl Fn(usize) -> bool) -> Vec<IpAddr> {
        let gone: Vec<IpAddr> = self
            .holdings
            .iter()
            .filter(|(_, o)| doomed(**o))
            .map(|(a, _)| *a)
            .collect();
        for a in &gone {
            self.holdings.remove(a);
        }
        gone
    }
}

fn check_invariants(store: &Store, model: &Model, sets: &[RangeSet]) -> Result<(), TestCaseError> {
    let all = store
        .allocations()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let expected: Vec<(IpAddr, AttachmentId)> =
        model.holdings.iter().map(|(a, o)| (*a, who(*o))).collect();
    prop_assert_eq!(&all, &expected);
    let mut addrs: Vec<IpAddr> = all.iter().map(|(a, _)| *a).collect();
    addrs.dedup();
    prop_assert_eq!(addrs.len(), all.len(), "an address is held twice");
    for n in 0..IDS {
        for set in sets {
            let count = all
                .iter()
                .filter(|(a, o)| *o == who(n) && set.find(*a).is_some())
                .count();
            prop_assert!(count <= 1, "{} holds {} addresses in one set", n, count);
        }
    }
    check_index(store.dir()).map_err(TestCaseError::fail)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path()).expect("open");
        // Set 0 has two ranges, so round-robin crosses a range boundary. Set 1 is the
        // smaller, so a call can succeed in set 0 and then find set 1 exhausted.
        let sets = sets(
            r#"[[{"subnet": "fd00::/125", "rangeStart": "fd00::4"}, {"subnet": "fd00:1::/126"}],
                [{"subnet": "10.0.0.0/29"}]]"#,
        );
        let mut model = Model::new();
        for op in ops {
            match op {
                Op::Allocate { who: n, n: count } => {
                    let got = store.allocate(&who(n), &sets[..count]);
                    match (got, model.allocate(n, count)) {
                        (Ok(got), Ok(want)) => {
                            let got: Vec<IpAddr> = got.iter().map(|a| a.address.addr()).collect();
                            prop_assert_eq!(got, want);
                        }
                        (Err(IpamError::Exhausted { set, .. }), Err(want)) => {
                            prop_assert_eq!(set, want);
                        }
                        (got, want) => {
                            prop_assert!(false, "store {:?}, model {:?}", got, want);
                        }
                    }
                }
                Op::Release { who: n } => {
                    let got = store.release(&who(n)).expect("release");
                    prop_assert_eq!(got, model.release_where(|o| o == n));
                }
                Op::Gc { valid } => {
                    let ids: Vec<AttachmentId> =
                        (0..IDS).filter(|n| valid & (1 << n) != 0).map(who).collect();
                    let got = store.gc(&ids).expect("gc");
                    prop_assert_eq!(got, model.release_where(|o| valid & (1 << o) == 0));
                }
            }
            check_invariants(&store, &model, &sets)?;
        }
    }
}
