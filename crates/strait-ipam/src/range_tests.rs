//! Range arithmetic, defaults and round-robin candidate order.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test subnet")
}

fn range(subnet: &str, start: &str, end: &str) -> Range {
    Range {
        subnet: net(subnet),
        start: ip(start),
        end: ip(end),
        gateway: Some(net(subnet).network()).and_then(|n| from_u128(to_u128(n) + 1, n)),
    }
}

fn order(set: &RangeSet, last: Option<&str>) -> Vec<String> {
    set.candidates_after(last.map(ip))
        .filter(|(r, ip)| r.is_allocatable(*ip))
        .map(|(_, ip)| ip.to_string())
        .collect()
}

#[test]
fn from_cidr_applies_host_local_defaults() {
    let set = range_set_from_cidr(net("10.42.3.7/24")).expect("valid");
    assert_eq!(
        set.0,
        vec![range("10.42.3.0/24", "10.42.3.1", "10.42.3.254")]
    );
    assert_eq!(set.size(), 253);
    let v6 = range_set_from_cidr(net("fd00:1::/64")).expect("valid");
    assert_eq!(v6.0[0].end, ip("fd00:1::ffff:ffff:ffff:ffff"));
}

#[test]
fn from_cidr_rejects_tiny_subnets() {
    let err = range_set_from_cidr(net("10.0.0.0/31")).expect_err("too small");
    assert_eq!(
        err.to_string(),
        "subnet: 10.0.0.0/31 is too small to allocate from (the longest usable prefix is /30)"
    );
    // The last subnet of the space must not overflow while computing defaults.
    assert!(range_set_from_cidr(net("255.255.255.255/32")).is_err());
    assert!(range_set_from_cidr(net("255.255.255.252/30")).is_ok());
    assert!(range_set_from_cidr(net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")).is_err());
}

#[test]
fn reserved_addresses_are_not_allocatable() {
    // A range spanning the whole subnet, including network and broadcast.
    let r = Range {
        subnet: net("10.0.0.0/29"),
        start: ip("10.0.0.0"),
        end: ip("10.0.0.7"),
        gateway: Some(ip("10.0.0.3")),
    };
    assert!(r.check().is_ok());
    let allocatable: Vec<_> = (0..8)
        .map(|i| ip(&format!("10.0.0.{i}")))
        .filter(|a| r.is_allocatable(*a))
        .collect();
    assert_eq!(
        allocatable,
        ["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"].map(ip)
    );
    assert_eq!(r.size(), 5);
    assert_eq!(r.to_string(), "10.0.0.0/29 (10.0.0.1-10.0.0.6)");
}

#[test]
fn ipv6_has_no_broadcast_but_never_hands_out_the_network_address() {
    let r = Range {
        subnet: net("fd00::/126"),
        start: ip("fd00::"),
        end: ip("fd00::3"),
        gateway: Some(ip("fd00::1")),
    };
    assert!(!r.is_allocatable(ip("fd00::")));
    assert!(!r.is_allocatable(ip("fd00::1")));
    assert!(r.is_allocatable(ip("fd00::3")));
    assert_eq!(r.size(), 2);
}

#[test]
fn contains_ignores_the_other_family() {
    let r = range("10.0.0.0/24", "10.0.0.1", "10.0.0.254");
    assert!(!r.contains(ip("::a00:5")));
    assert!(r.contains(ip("10.0.0.5")));
}

#[test]
fn candidates_start_after_last_and_wrap_through_all_ranges() {
    let set = RangeSet(vec![
        range("10.0.0.0/29", "10.0.0.2", "10.0.0.4"),
        range("10.1.0.0/29", "10.1.0.5", "10.1.0.6"),
    ]);
    let all = ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.1.0.5", "10.1.0.6"];
    assert_eq!(order(&set, None), all);
    assert_eq!(
        order(&set, Some("10.0.0.3")),
        ["10.0.0.4", "10.1.0.5", "10.1.0.6", "10.0.0.2", "10.0.0.3"]
    );
    // The end of the last range wraps to the first range.
    assert_eq!(order(&set, Some("10.1.0.6")), all);
    // An address outside the set (config changed) starts at the beginning.
    assert_eq!(order(&set, Some("192.168.0.1")), all);
}

#[test]
fn candidates_in_a_huge_ipv6_range_are_lazy() {
    let set = range_set_from_cidr(net("fd00::/16")).expect("valid");
    let last = ip("fd00:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
    let next: Vec<_> = set
        .candidates_after(Some(last))
        .take(3)
        .map(|(_, a)| a)
        .collect();
    assert_eq!(
        next,
        [
            "fd00:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fd00::1",
            "fd00::2"
        ]
        .map(ip)
    );
}

#[test]
fn set_check_reports_each_problem() {
    assert_eq!(RangeSet(vec![]).check(), Err(SetProblem::Empty));
    let v4 = range("10.0.0.0/24", "10.0.0.1", "10.0.0.254");
    let v6 = range("fd00::/64", "fd00::1", "fd00::ff");
    assert_eq!(
        RangeSet(vec![v4.clone(), v6]).check(),
        Err(SetProblem::MixedFamilies(1))
    );
    let inner = range("10.0.0.0/24", "10.0.0.100", "10.0.0.110");
    assert_eq!(
        RangeSet(vec![v4.clone(), inner]).check(),
        Err(SetProblem::Overlap { index: 1, other: 0 })
    );
    let reversed = range("10.0.0.0/24", "10.0.0.9", "10.0.0.5");
    assert!(matches!(
        RangeSet(vec![reversed]).check(),
        Err(SetProblem::Range(
            0,
            RangeProblem {
                field: Field::RangeEnd,
                ..
            }
        ))
    ));
}
