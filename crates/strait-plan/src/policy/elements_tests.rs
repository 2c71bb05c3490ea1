use super::*;
use proptest::prelude::*;

fn has(p: &Ports, proto: L4Proto, port: u16) -> bool {
    match p {
        Ports::All => true,
        Ports::Some(m) => m
            .get(&proto)
            .is_some_and(|r| r.iter().any(|(a, b)| *a <= port && port <= *b)),
    }
}

fn ports() -> impl Strategy<Value = Ports> {
    prop_oneof![
        Just(Ports::All),
        Just(Ports::none()),
        (
            prop_oneof![Just(L4Proto::Tcp), Just(L4Proto::Udp)],
            0u16..6,
            0u16..3
        )
            .prop_map(|(p, a, l)| Ports::one(p, a, a + l)),
    ]
}

#[test]
fn overlapping_rules_are_cut_and_unioned() {
    let all = Interval {
        lo: 0,
        hi: u32::MAX,
    };
    let got = disjoint(vec![
        (all, Ports::one(L4Proto::Tcp, 80, 80)),
        (Interval { lo: 10, hi: 20 }, Ports::All),
    ]);
    assert_eq!(
        got,
        vec![
            (Interval { lo: 0, hi: 9 }, Ports::one(L4Proto::Tcp, 80, 80)),
            (Interval { lo: 10, hi: 20 }, Ports::All),
            (
                Interval {
                    lo: 21,
                    hi: u32::MAX
                },
                Ports::one(L4Proto::Tcp, 80, 80)
            ),
        ]
    );
}

proptest! {
    /// The disjoint form allows exactly what the entries allow together,
    /// and its elements never overlap (pipapo would refuse them).
    #[test]
    fn same_meaning_no_overlap(entries in proptest::collection::vec(((0u32..40, 0u32..10), ports()), 0..7)) {
        let entries: Vec<(Interval, Ports)> = entries
            .into_iter()
            .map(|((lo, len), p)| (Interval { lo, hi: lo + len }, p))
            .collect();
        let got = disjoint(entries.clone());
        for w in got.windows(2) {
            prop_assert!(w[0].0.hi < w[1].0.lo);
        }
        let pod = Ipv4Addr::new(10, 0, 0, 1);
        let mut elements = Vec::new();
        keys(pod, &got, &mut elements);
        for a in 0..52u32 {
            for proto in [L4Proto::Tcp, L4Proto::Udp, L4Proto::Icmp] {
                for port in 0..10u16 {
                    let want = entries.iter().any(|(i, p)| i.contains(a) && has(p, proto, port));
                    prop_assert_eq!(allows(&elements, pod, Ipv4Addr::from(a), proto, port), want);
                }
            }
        }
    }
}
