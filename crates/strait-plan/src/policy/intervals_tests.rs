use super::*;
use proptest::prelude::*;

fn iv(lo: u32, hi: u32) -> Interval {
    Interval { lo, hi }
}

#[test]
fn except_cuts_holes() {
    let got = ip_block(
        "10.0.0.0/24",
        &["10.0.0.16/28".into(), "10.0.0.0/30".into()],
        "f",
    )
    .unwrap();
    let a = |s: &str| u32::from(s.parse::<Ipv4Addr>().unwrap());
    assert_eq!(
        got,
        Some(vec![
            iv(a("10.0.0.4"), a("10.0.0.15")),
            iv(a("10.0.0.32"), a("10.0.0.255"))
        ])
    );
}

#[test]
fn edges_of_the_address_space() {
    assert_eq!(subtract(Interval::ALL, &[]), vec![Interval::ALL]);
    assert_eq!(subtract(Interval::ALL, &[Interval::ALL]), vec![]);
    assert_eq!(
        subtract(Interval::ALL, &[iv(u32::MAX, u32::MAX), iv(0, 0)]),
        vec![iv(1, u32::MAX - 1)]
    );
    assert_eq!(merge(vec![iv(5, u32::MAX), iv(0, 4)]), vec![Interval::ALL]);
}

#[test]
fn bad_blocks_name_the_field() {
    let e = ip_block(
        "10.0.0.0/24",
        &["10.1.0.0/24".into()],
        "spec.ingress[0].from[1].ipBlock",
    )
    .unwrap_err();
    assert!(
        e.contains("spec.ingress[0].from[1].ipBlock.except[0] 10.1.0.0/24 is not inside"),
        "{e}"
    );
    let e = ip_block("10.0.0/24", &[], "b").unwrap_err();
    assert!(e.starts_with("b.cidr \"10.0.0/24\""), "{e}");
    assert_eq!(ip_block("fd00::/64", &[], "b").unwrap(), None);
}

fn net() -> impl Strategy<Value = Ipv4Net> {
    // Small address space so nets overlap often.
    (0u32..64, 26u8..=32).prop_map(|(a, p)| {
        Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | a), p)
            .unwrap()
            .trunc()
    })
}

proptest! {
    /// The intervals hold exactly the addresses of the CIDR that are in no
    /// except, and are sorted, disjoint and not adjacent.
    #[test]
    fn covers_exactly_cidr_minus_excepts(base in (0u32..8, 24u8..=28), holes in proptest::collection::vec(net(), 0..5)) {
        let base = Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | base.0), base.1).unwrap().trunc();
        let holes: Vec<Ipv4Net> = holes.into_iter().filter(|h| base.contains(h)).collect();
        let except: Vec<String> = holes.iter().map(|h| h.to_string()).collect();
        let got = ip_block(&base.to_string(), &except, "b").unwrap().unwrap();
        for pair in got.windows(2) {
            prop_assert!(u64::from(pair[0].hi) + 1 < u64::from(pair[1].lo));
        }
        for a in u32::from(base.network()).saturating_sub(4)..=u32::from(base.broadcast()) + 4 {
            let addr = Ipv4Addr::from(a);
            let want = base.contains(&addr) && !holes.iter().any(|h| h.contains(&addr));
            prop_assert_eq!(got.iter().any(|i| i.contains(a)), want, "{}", addr);
        }
    }

    /// Merging keeps exactly the union.
    #[test]
    fn merge_keeps_the_union(list in proptest::collection::vec((0u32..100, 0u32..10), 0..8)) {
        let list: Vec<Interval> = list.into_iter().map(|(lo, len)| iv(lo, lo + len)).collect();
        let merged = merge(list.clone());
        for a in 0..120 {
            prop_assert_eq!(merged.iter().any(|i| i.contains(a)), list.iter().any(|i| i.contains(a)));
        }
        for pair in merged.windows(2) {
            prop_assert!(pair[0].hi + 1 < pair[1].lo);
        }
    }
}
