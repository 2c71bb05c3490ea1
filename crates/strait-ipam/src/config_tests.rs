//! Parsing and validation of host-local's config schema.

use super::*;
use std::net::IpAddr;

fn parse(json: &str) -> IpamConfig {
    serde_json::from_str(json).expect("test config parses")
}

fn sets(json: &str) -> Vec<RangeSet> {
    parse(json).range_sets().expect("test config is valid")
}

fn error(json: &str) -> String {
    match parse(json).range_sets() {
        Ok(sets) => panic!("expected an error, got {sets:?}"),
        Err(e) => e.to_string(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test subnet")
}

#[test]
fn full_host_local_config_parses() {
    let cfg = parse(
        r#"{
            "type": "host-local",
            "ranges": [
                [{"subnet": "10.42.0.0/24", "rangeStart": "10.42.0.10", "rangeEnd": "10.42.0.20", "gateway": "10.42.0.254"}],
                [{"subnet": "fd00:42::/64"}]
            ],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.42.0.254"}, {"dst": "::/0"}],
            "dataDir": "/var/lib/strait/networks",
            "resolvConf": "/etc/resolv.conf",
            "unknownField": true
        }"#,
    );
    assert_eq!(cfg.kind.as_deref(), Some("host-local"));
    assert_eq!(
        cfg.data_dir,
        Some(PathBuf::from("/var/lib/strait/networks"))
    );
    assert_eq!(
        cfg.routes,
        vec![
            RouteConfig {
                dst: net("0.0.0.0/0"),
                gw: Some(ip("10.42.0.254"))
            },
            RouteConfig {
                dst: net("::/0"),
                gw: None
            },
        ]
    );
    let sets = cfg.range_sets().expect("valid");
    assert_eq!(sets.len(), 2);
    assert_eq!(
        sets[0].0,
        vec![Range {
            subnet: net("10.42.0.0/24"),
            start: ip("10.42.0.10"),
            end: ip("10.42.0.20"),
            gateway: Some(ip("10.42.0.254")),
        }]
    );
    assert_eq!(sets[1].0[0].subnet, net("fd00:42::/64"));
}

#[test]
fn serializes_back_to_host_local_field_names() {
    let cfg = parse(
        r#"{"type": "host-local", "dataDir": "/d",
            "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.5"}]]}"#,
    );
    let json = serde_json::to_value(&cfg).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({"type": "host-local", "dataDir": "/d",
            "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.5"}]]})
    );
    let back: IpamConfig = serde_json::from_value(json).expect("round trips");
    assert_eq!(back, cfg);
}

#[test]
fn ipv4_defaults_are_host_locals() {
    let sets = sets(r#"{"ranges": [[{"subnet": "10.0.0.0/24"}]]}"#);
    let r = &sets[0].0[0];
    assert_eq!(r.start, ip("10.0.0.1"));
    assert_eq!(r.end, ip("10.0.0.254"));
    assert_eq!(r.gateway, Some(ip("10.0.0.1")));
    // .1 is the gateway, .0 the network, .255 the broadcast.
    assert_eq!(r.size(), 253);
    assert_eq!(r.to_string(), "10.0.0.0/24 (10.0.0.2-10.0.0.254)");
}

#[test]
fn ipv6_defaults_end_at_the_last_address() {
    let sets = sets(r#"{"ranges": [[{"subnet": "fd00::/64"}]]}"#);
    let r = &sets[0].0[0];
    assert_eq!(r.start, ip("fd00::1"));
    assert_eq!(r.end, ip("fd00::ffff:ffff:ffff:ffff"));
    assert_eq!(r.gateway, Some(ip("fd00::1")));
    assert_eq!(r.size(), (1u128 << 64) - 2);
}

#[test]
fn very_large_ipv6_subnets_work() {
    let sets8 = sets(r#"{"ranges": [[{"subnet": "fd00::/8"}]]}"#);
    assert_eq!(sets8[0].size(), (1u128 << 120) - 2);
    // The whole space from ::1 on, less the gateway ::1.
    let sets0 = sets(r#"{"ranges": [[{"subnet": "::/0"}]]}"#);
    assert_eq!(sets0[0].size(), u128::MAX - 1);
}

#[test]
fn host_bits_in_subnet_are_rejected() {
    assert_eq!(
        error(r#"{"ranges": [[{"subnet": "10.0.0.5/24"}]]}"#),
        "ipam.ranges[0][0].subnet: 10.0.0.5/24 has host bits set (did you mean 10.0.0.0/24?)"
    );
}

#[test]
fn empty_optional_values_count_as_absent() {
    let sets =
        sets(r#"{"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "", "gateway": ""}]]}"#);
    assert_eq!(sets[0].0[0].start, ip("10.0.0.1"));
    assert_eq!(sets[0].0[0].gateway, Some(ip("10.0.0.1")));
}

#[test]
fn legacy_fields_become_the_first_range_set() {
    let cfg = parse(
        r#"{"subnet": "10.1.0.0/16", "rangeStart": "10.1.0.10", "rangeEnd": "10.1.0.99",
            "gateway": "10.1.0.254", "ranges": [[{"subnet": "fd00::/64"}]]}"#,
    );
    assert!(cfg.has_ranges());
    let sets = cfg.range_sets().expect("valid");
    assert_eq!(sets.len(), 2);
    assert_eq!(
        sets[0].0,
        vec![Range {
            subnet: net("10.1.0.0/16"),
            start: ip("10.1.0.10"),
            end: ip("10.1.0.99"),
            gateway: Some(ip("10.1.0.254")),
        }]
    );
    assert_eq!(sets[1].0[0].subnet, net("fd00::/64"));
}

#[test]
fn legacy_errors_name_the_legacy_field() {
    assert_eq!(
        error(r#"{"subnet": "10.1.0.0/16", "rangeStart": "10.2.0.1"}"#),
        "ipam.rangeStart: 10.2.0.1 is outside subnet 10.1.0.0/16"
    );
    assert_eq!(
        error(r#"{"rangeStart": "10.2.0.1"}"#),
        r#"ipam.rangeStart: "10.2.0.1" is set but ipam.subnet is not"#
    );
}

#[test]
fn no_ranges_is_an_error() {
    let cfg = parse(r#"{"type": "host-local"}"#);
    assert!(!cfg.has_ranges());
    let err = cfg.range_sets().expect_err("no ranges");
    assert!(matches!(err, IpamError::NoRanges));
    assert_eq!(
        err.to_string(),
        "ipam: no IP ranges configured (set ipam.ranges or ipam.subnet)"
    );
}

#[test]
fn range_start_outside_subnet() {
    assert_eq!(
        error(
            r#"{"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.100"},
                            {"subnet": "10.0.0.0/24", "rangeStart": "10.1.0.5"}]]}"#
        ),
        "ipam.ranges[0][1].rangeStart: 10.1.0.5 is outside subnet 10.0.0.0/24"
    );
}

#[test]
fn range_end_outside_subnet() {
    assert_eq!(
        error(r#"{"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "fd00::5"}]]}"#),
        "ipam.ranges[0][0].rangeEnd: fd00::5 is outside subnet 10.0.0.0/24"
    );
}

#[test]
fn range_start_after_range_end() {
    assert_eq!(
        error(
            r#"{"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.5"}]]}"#
        ),
        "ipam.ranges[0][0].rangeEnd: 10.0.0.5 is before rangeStart 10.0.0.9"
    );
}

#[test]
fn mixed_families_in_one_set() {
    assert_eq!(
        error(
            r#"{"ranges": [[{"subnet": "10.0.0.0/24"}],
                           [{"subnet": "10.1.0.0/24"}, {"subnet": "fd00::/64"}]]}"#
        ),
        "ipam.ranges[1]: mixes IPv4 and IPv6 (10.1.0.0/24, fd00::/64); use one range set per family"
    );
}

#[test]
fn overlapping_ranges_in_one_set() {
    assert_eq!(
        error(
            r#"{"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.15"},
                            {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.20"}]]}"#
        ),
        "ipam.ranges[0][1]: 10.0.0.10-10.0.0.20 in 10.0.0.0/24 overlaps ipam.ranges[0][0] \
         (10.0.0.1-10.0.0.15 in 10.0.0.0/24)"
    );
}

#[test]
fn disjoint_ranges_of_one_subnet_are_fine() {
    let sets = sets(
        r#"{"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.15"},
                        {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.16"}]]}"#,
    );
    assert_eq!(sets[0].size(), 253);
}

#[test]
fn overlapping_range_sets() {
    assert_eq!(
        error(r#"{"ranges": [[{"subnet": "10.0.0.0/16"}], [{"subnet": "10.0.5.0/24"}]]}"#),
        "ipam.ranges[1][0]: 10.0.5.1-10.0.5.254 in 10.0.5.0/24 overlaps ipam.ranges[0][0] \
         (10.0.0.1-10.0.255.254 in 10.0.0.0/16)"
    );
    assert_eq!(
        error(r#"{"subnet": "10.0.0.0/24", "ranges": [[{"subnet": "10.0.0.0/25"}]]}"#),
        "ipam.ranges[0][0]: 10.0.0.1-10.0.0.126 in 10.0.0.0/25 overlaps ipam \
         (10.0.0.1-10.0.0.254 in 10.0.0.0/24)"
    );
}

#[test]
fn subnets_too_small() {
    for (subnet, longest) in [
        ("10.0.0.0/31", 30),
        ("10.0.0.7/32", 30),
        ("fd00::/127", 126),
        ("fd00::/128", 126),
    ] {
        let masked = net(subnet).trunc();
        assert_eq!(
            error(&format!(r#"{{"ranges": [[{{"subnet": "{subnet}"}}]]}}"#)),
            format!(
                "ipam.ranges[0][0].subnet: {masked} is too small to allocate from \
                 (the longest usable prefix is /{longest})"
            )
        );
    }
}

#[test]
fn smallest_subnets_have_their_expected_sizes() {
    // A /30 keeps one address besides network, gateway and broadcast.
    let v4 = sets(r#"{"ranges": [[{"subnet": "10.0.0.0/30"}]]}"#);
    assert_eq!(v4[0].size(), 1);
    assert_eq!(v4[0].to_string(), "10.0.0.0/30 (10.0.0.2-10.0.0.2)");
    let v6 = sets(r#"{"ranges": [[{"subnet": "fd00::/126"}]]}"#);
    assert_eq!(v6[0].size(), 2);
}

#[test]
fn range_with_only_reserved_addresses() {
    assert_eq!(
        error(
            r#"{"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.1", "rangeEnd": "10.0.0.1"}]]}"#
        ),
        "ipam.ranges[0][0]: 10.0.0.1-10.0.0.1 holds no allocatable address (the network \
         address, the IPv4 broadcast address and the gateway are never allocated)"
    );
}

#[test]
fn unparsable_values_are_named() {
    assert_eq!(
        error(r#"{"ranges": [[{"subnet": "10.0.0/24"}]]}"#),
        r#"ipam.ranges[0][0].subnet: "10.0.0/24" is not a subnet in CIDR notation (e.g. 10.42.0.0/24)"#
    );
    assert_eq!(
        error(r#"{"ranges": [[{"subnet": "10.0.0.0"}]]}"#),
        r#"ipam.ranges[0][0].subnet: "10.0.0.0" is not a subnet in CIDR notation (e.g. 10.42.0.0/24)"#
    );
    assert_eq!(
        error(r#"{"ranges": [[{"subnet": "10.0.0.0/24", "gateway": "ten"}]]}"#),
        r#"ipam.ranges[0][0].gateway: "ten" is not an IP address"#
    );
    assert_eq!(
        error(r#"{"ranges": [[{"rangeStart": "10.0.0.1"}]]}"#),
        "ipam.ranges[0][0].subnet: is missing (every range needs a subnet, e.g. 10.42.0.0/24)"
    );
}

#[test]
fn gateway_of_the_wrong_family() {
    assert_eq!(
        error(r#"{"ranges": [[{"subnet": "fd00::/64", "gateway": "10.0.0.1"}]]}"#),
        "ipam.ranges[0][0].gateway: 10.0.0.1 is not an IPv6 address like subnet fd00::/64"
    );
}

#[test]
fn empty_range_set() {
    assert_eq!(
        error(r#"{"ranges": [[{"subnet": "10.0.0.0/24"}], []]}"#),
        "ipam.ranges[1]: is an empty range set"
    );
}

#[test]
fn malformed_route_is_a_parse_error() {
    let parsed = serde_json::from_str::<IpamConfig>(r#"{"routes": [{"dst": "nonsense"}]}"#);
    assert!(parsed.is_err());
}
