use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn v4_set(name: &str, elements: &[&str]) -> Set {
    Set {
        name: name.into(),
        kind: SetKind::Ipv4Addr,
        interval: true,
        elements: elements.iter().map(|e| net(e)).collect(),
        comment: None,
        timeout: None,
    }
}

fn rule(matches: Vec<Match>, verdict: Verdict) -> Rule {
    Rule {
        matches,
        verdict,
        statements: Vec::new(),
        counter: false,
        comment: None,
    }
}

fn base(kind: ChainType, hook: Hook) -> Option<BaseChain> {
    Some(BaseChain {
        kind,
        hook,
        priority: 0,
        policy: Policy::Accept,
    })
}

fn table_with(sets: Vec<Set>, chains: Vec<Chain>) -> Table {
    Table {
        family: Family::Inet,
        name: "t".into(),
        sets,
        concat_sets: Vec::new(),
        maps: Vec::new(),
        chains,
        counters: Vec::new(),
    }
}

fn one_rule(r: Rule) -> Table {
    table_with(
        vec![v4_set("pods", &["10.42.0.0/16"])],
        vec![
            Chain {
                name: "fwd".into(),
                base: base(ChainType::Filter, Hook::Forward),
                rules: vec![r],
            },
            Chain {
                name: "sub".into(),
                base: None,
                rules: vec![],
            },
        ],
    )
}

fn invalid(t: &Table) -> String {
    t.validate().unwrap_err().to_string()
}

fn saddr(family: IpFamily, addrs: Addrs) -> Match {
    Match::SaddrIn {
        family,
        addrs,
        negate: false,
    }
}

#[test]
fn a_good_table_validates() {
    let t = one_rule(Rule {
        matches: vec![
            saddr(IpFamily::V4, Addrs::Set("pods".into())),
            Match::L4Proto(L4Proto::Tcp),
            Match::Dport {
                ports: vec![
                    PortRange::single(80),
                    PortRange {
                        first: 8000,
                        last: 8080,
                    },
                ],
                negate: true,
            },
            Match::CtState(vec![CtState::New]),
            Match::Iifname {
                name: "strait0".into(),
                negate: false,
            },
        ],
        verdict: Verdict::Jump("sub".into()),
        statements: Vec::new(),
        counter: true,
        comment: Some("ok".into()),
    });
    t.validate().unwrap();
    assert!(t.set("pods").is_some() && t.chain("sub").is_some() && t.set("x").is_none());
}

#[test]
fn references_must_exist_and_fit() {
    let t = one_rule(rule(
        vec![saddr(IpFamily::V4, Addrs::Set("nope".into()))],
        Verdict::Accept,
    ));
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain fwd, rule 1: set @nope does not exist"
    );
    let t = one_rule(rule(
        vec![saddr(IpFamily::V6, Addrs::Set("pods".into()))],
        Verdict::Accept,
    ));
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain fwd, rule 1: ip6 match against set @pods of type ipv4_addr"
    );
    let t = one_rule(rule(
        vec![saddr(IpFamily::V4, Addrs::Cidrs(vec![net("fd00::/8")]))],
        Verdict::Accept,
    ));
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain fwd, rule 1: fd00::/8 in an ip match"
    );
    let t = one_rule(rule(
        vec![saddr(IpFamily::V4, Addrs::Cidrs(vec![]))],
        Verdict::Accept,
    ));
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain fwd, rule 1: address match with no addresses"
    );
    let t = one_rule(rule(vec![], Verdict::Jump("gone".into())));
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain fwd, rule 1: jump to missing chain gone"
    );
    let t = one_rule(rule(vec![], Verdict::Jump("fwd".into())));
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain fwd, rule 1: jump to base chain fwd"
    );
    let mut t = one_rule(rule(vec![], Verdict::Accept));
    t.chains[1]
        .rules
        .push(rule(vec![], Verdict::Jump("sub".into())));
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain sub, rule 1: jump to itself"
    );
}

#[test]
fn family_of_the_table_limits_matches() {
    let mut t = one_rule(rule(
        vec![saddr(IpFamily::V6, Addrs::Cidrs(vec![net("fd00::/8")]))],
        Verdict::Accept,
    ));
    t.sets.clear();
    t.family = Family::Ip;
    assert_eq!(
        invalid(&t),
        "nft table ip t: chain fwd, rule 1: ip6 match in a ip table"
    );
    let mut t = one_rule(rule(vec![], Verdict::Accept));
    t.family = Family::Ip6;
    assert_eq!(
        invalid(&t),
        "nft table ip6 t: set pods: type ipv4_addr in a ip6 table"
    );
}

#[test]
fn ports_need_a_protocol() {
    let dport = Match::Dport {
        ports: vec![PortRange::single(53)],
        negate: false,
    };
    let t = one_rule(rule(vec![dport.clone()], Verdict::Accept));
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain fwd, rule 1: th dport needs an earlier meta l4proto tcp, udp or sctp"
    );
    let t = one_rule(rule(
        vec![Match::L4Proto(L4Proto::Icmp), dport],
        Verdict::Accept,
    ));
    assert!(t.validate().is_err());
    let t = one_rule(rule(
        vec![
            Match::L4Proto(L4Proto::Udp),
            Match::Dport {
                ports: vec![],
                negate: false,
            },
        ],
        Verdict::Accept,
    ));
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain fwd, rule 1: th dport with no ports"
    );
    let t = one_rule(rule(
        vec![
            Match::L4Proto(L4Proto::Udp),
            Match::Dport {
                ports: vec![PortRange { first: 9, last: 1 }],
                negate: false,
            },
        ],
        Verdict::Accept,
    ));
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain fwd, rule 1: port range 9-1 is reversed"
    );
}

#[test]
fn rule_shape_checks() {
    let t = one_rule(rule(vec![], Verdict::Continue));
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain fwd, rule 1: does nothing (no match, counter or verdict)"
    );
    let t = one_rule(rule(vec![Match::CtState(vec![])], Verdict::Accept));
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain fwd, rule 1: ct state with no states"
    );
    let t = one_rule(rule(
        vec![Match::Oifname {
            name: "x\"y".into(),
            negate: true,
        }],
        Verdict::Accept,
    ));
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain fwd, rule 1: \"x\\\"y\" is not an interface name nft can match"
    );
    let mut r = rule(vec![], Verdict::Accept);
    r.comment = Some("say \"hi\"".into());
    assert!(invalid(&one_rule(r))
        .contains("comment \"say \\\"hi\\\"\" is longer than 128 bytes or holds"));
    let mut r = rule(vec![], Verdict::Accept);
    r.comment = Some("x".repeat(129));
    assert!(one_rule(r).validate().is_err());
    let t = one_rule(rule(
        vec![],
        Verdict::Masquerade {
            fully_random: false,
        },
    ));
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain fwd, rule 1: masquerade outside a nat postrouting chain"
    );
}

#[test]
fn chain_and_set_checks() {
    let mut t = one_rule(rule(vec![], Verdict::Accept));
    t.chains[0].base = base(ChainType::Nat, Hook::Forward);
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain fwd: type nat cannot use hook forward"
    );
    t.chains[0].base = base(ChainType::Route, Hook::Input);
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain fwd: type route cannot use hook input"
    );
    let mut t = one_rule(rule(vec![], Verdict::Accept));
    t.chains.push(t.chains[1].clone());
    assert_eq!(invalid(&t), "nft table inet t: chain sub: defined twice");
    let mut t = one_rule(rule(vec![], Verdict::Accept));
    t.sets.push(v4_set("pods", &[]));
    assert_eq!(invalid(&t), "nft table inet t: set pods: defined twice");
    let mut t = one_rule(rule(vec![], Verdict::Accept));
    t.chains[1].name = "1bad".into();
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain 1bad: \"1bad\" is not a valid nft name"
    );
    let mut t = one_rule(rule(vec![], Verdict::Accept));
    t.name = "a b".into();
    assert_eq!(
        invalid(&t),
        "nft table inet a b: name: \"a b\" is not a valid nft name"
    );
}

#[test]
fn set_element_checks() {
    let t = table_with(vec![v4_set("s", &["10.0.0.0/8", "10.1.0.0/16"])], vec![]);
    assert_eq!(
        invalid(&t),
        "nft table inet t: set s: elements 10.0.0.0/8 and 10.1.0.0/16 overlap"
    );
    let t = table_with(vec![v4_set("s", &["10.0.0.1/8"])], vec![]);
    assert_eq!(
        invalid(&t),
        "nft table inet t: set s: element 10.0.0.1/8 has host bits set"
    );
    let t = table_with(vec![v4_set("s", &["fd00::/8"])], vec![]);
    assert_eq!(
        invalid(&t),
        "nft table inet t: set s: element fd00::/8 is not of type ipv4_addr"
    );
    let mut s = v4_set("s", &["10.0.0.0/8"]);
    s.interval = false;
    assert_eq!(
        invalid(&table_with(vec![s], vec![])),
        "nft table inet t: set s: element 10.0.0.0/8 is a prefix but the set has no interval flag"
    );
    let mut s = v4_set("s", &["10.0.0.1/32", "10.0.0.2/32"]);
    s.interval = false;
    table_with(vec![s], vec![]).validate().unwrap();
}

#[test]
fn family_helpers() {
    assert!(Family::Inet.carries(IpFamily::V6));
    assert!(!Family::Ip.carries(IpFamily::V6));
    assert_eq!(IpFamily::of(&net("fd00::/8")).keyword(), "ip6");
    assert_eq!(SetKind::Ipv6Addr.as_str(), "ipv6_addr");
    assert!(L4Proto::Sctp.has_ports() && !L4Proto::Icmpv6.has_ports());
}

fn svc_map(elements: Vec<(Vec<Key>, Verdict)>) -> Map {
    Map {
        interval: false,
        name: "svc-ips".into(),
        key: vec![KeyType::Ipv4Addr, KeyType::InetProto, KeyType::InetService],
        value: MapValue::Verdict,
        elements: elements
            .into_iter()
            .map(|(k, v)| (k.into(), MapData::Verdict(v)))
            .collect(),
        comment: None,
    }
}

fn addr_key(port: u16) -> Vec<Key> {
    vec![
        Key::Ipv4("10.43.0.1".parse().unwrap()),
        Key::Proto(L4Proto::Tcp),
        Key::Port(port),
    ]
}

const ADDR_KEY: [KeyExpr; 3] = [KeyExpr::Ipv4Daddr, KeyExpr::L4Proto, KeyExpr::Dport];

/// A nat prerouting chain dispatching through `svc-ips` to `sub`.
fn nat_table(sub_rules: Vec<Rule>, elements: Vec<(Vec<Key>, Verdict)>) -> Table {
    let mut t = table_with(
        vec![],
        vec![
            Chain {
                name: "pre".into(),
                base: base(ChainType::Nat, Hook::Prerouting),
                rules: vec![rule(
                    vec![],
                    Verdict::VerdictMap {
                        key: ADDR_KEY.to_vec(),
                        map: "svc-ips".into(),
                    },
                )],
            },
            Chain {
                name: "sub".into(),
                base: None,
                rules: sub_rules,
            },
        ],
    );
    t.maps.push(svc_map(elements));
    t
}

fn dnat(port: Option<u16>) -> Verdict {
    Verdict::Dnat {
        addr: "10.42.1.5".parse().unwrap(),
        port,
    }
}

#[test]
fn maps_and_nat_checks() {
    let goto_sub = Verdict::Goto("sub".into());
    let tcp_dnat = || rule(vec![Match::L4Proto(L4Proto::Tcp)], dnat(Some(8080)));
    nat_table(vec![tcp_dnat()], vec![(addr_key(80), goto_sub.clone())])
        .validate()
        .unwrap();
    // DNAT to a port needs a protocol.
    let t = nat_table(vec![rule(vec![], dnat(Some(8080)))], vec![]);
    assert_eq!(
        invalid(&t),
        "nft table inet t: chain sub, rule 1: dnat to a port needs an earlier meta l4proto tcp, udp or sctp"
    );
    nat_table(vec![rule(vec![], dnat(None))], vec![])
        .validate()
        .unwrap();
    // Elements must fit the map's type, be unique and name existing chains.
    let t = nat_table(vec![], vec![(vec![Key::Port(80)], Verdict::Drop)]);
    assert!(invalid(&t).contains("map svc-ips: element key"));
    let t = nat_table(
        vec![],
        vec![
            (addr_key(80), Verdict::Drop),
            (addr_key(80), Verdict::Accept),
        ],
    );
    assert!(invalid(&t).contains("appears twice"));
    let t = nat_table(vec![], vec![(addr_key(80), Verdict::Goto("nope".into()))]);
    assert_eq!(
        invalid(&t),
        "nft table inet t: map svc-ips: jump to missing chain nope"
    );
    let t = nat_table(vec![], vec![(addr_key(80), dnat(None))]);
    assert!(invalid(&t).contains("cannot be a map element's verdict"));
    // The lookup key must match the map's type; the map must exist.
    let mut t = nat_table(vec![], vec![]);
    t.chains[0].rules[0].verdict = Verdict::VerdictMap {
        key: vec![KeyExpr::L4Proto, KeyExpr::Dport],
        map: "svc-ips".into(),
    };
    assert!(invalid(&t).contains("lookup key does not match the type of map @svc-ips"));
    t.chains[0].rules[0].verdict = Verdict::VerdictMap {
        key: ADDR_KEY.to_vec(),
        map: "gone".into(),
    };
    assert!(invalid(&t).contains("map @gone does not exist"));
    // Sets and maps share one namespace.
    let mut t = nat_table(vec![], vec![]);
    t.sets.push(v4_set("svc-ips", &[]));
    assert!(invalid(&t).contains("defined twice"));
}

#[test]
fn hooks_are_checked_through_jumps_maps_and_numgen() {
    // Reject in a chain a nat chain reaches (nft -c does not catch this;
    // the kernel refuses it on commit).
    let reject = rule(vec![], Verdict::Reject(RejectWith::PortUnreachable));
    let t = nat_table(
        vec![reject.clone()],
        vec![(addr_key(80), Verdict::Goto("sub".into()))],
    );
    assert_eq!(
        invalid(&t),
        "nft table inet t: base chain pre: chain sub, rule 1 (reached from here): reject outside a filter prerouting, input, forward or output chain"
    );
    // DNAT reached from a filter chain through numgen.
    let mut t = one_rule(rule(
        vec![],
        Verdict::NumgenVmap {
            targets: vec![Verdict::Goto("sub".into()), Verdict::Drop],
        },
    ));
    t.chains[1].rules = vec![rule(vec![], dnat(None))];
    assert!(invalid(&t).contains("dnat outside a nat prerouting or output chain"));
    // Reject in a filter chain is fine; tcp reset needs tcp.
    one_rule(reject).validate().unwrap();
    let t = one_rule(rule(
        vec![Match::L4Proto(L4Proto::Udp)],
        Verdict::Reject(RejectWith::TcpReset),
    ));
    assert!(invalid(&t).contains("reject with tcp reset needs an earlier meta l4proto tcp"));
    one_rule(rule(
        vec![Match::L4Proto(L4Proto::Tcp)],
        Verdict::Reject(RejectWith::TcpReset),
    ))
    .validate()
    .unwrap();
    // Numgen needs targets that exist; marks need bits inside the mask.
    let t = one_rule(rule(vec![], Verdict::NumgenVmap { targets: vec![] }));
    assert!(invalid(&t).contains("numgen over no verdicts"));
    let t = one_rule(rule(
        vec![],
        Verdict::NumgenVmap {
            targets: vec![Verdict::Goto("nope".into())],
        },
    ));
    assert!(invalid(&t).contains("jump to missing chain nope"));
    let t = one_rule(rule(
        vec![Match::Mark {
            mask: 0x4000,
            value: 0x4001,
        }],
        Verdict::Accept,
    ));
    assert!(invalid(&t).contains("has bits outside mask"));
    let mut r = rule(vec![Match::FibLocal(FibAddr::Daddr)], Verdict::Continue);
    r.statements = vec![Statement::MarkOr(0)];
    assert!(invalid(&one_rule(r)).contains("meta mark set with no bits"));
}

/// `nat_table` plus a grouped endpoint map `eps-n2` used by `sub`'s
/// `dnat ip to ... map`, and a hairpin-style concatenation set.
fn group_table(sub_rules: Vec<Rule>, elements: Vec<(Vec<Key>, MapData)>) -> Table {
    let mut t = nat_table(sub_rules, vec![(addr_key(80), Verdict::Goto("sub".into()))]);
    t.maps.push(Map {
        interval: false,
        name: "eps-n2".into(),
        key: vec![
            KeyType::Ipv4Addr,
            KeyType::InetProto,
            KeyType::InetService,
            KeyType::Numgen(2),
        ],
        value: MapValue::Ipv4AddrPort,
        elements: elements.into_iter().map(|(k, d)| (k.into(), d)).collect(),
        comment: None,
    });
    t.concat_sets.push(ConcatSet {
        interval: false,
        name: "hairpin".into(),
        key: vec![KeyType::Ipv4Addr, KeyType::Ipv4Addr],
        elements: vec![smallvec::smallvec![
            Key::Ipv4("10.42.1.5".parse().unwrap()),
            Key::Ipv4("10.42.1.5".parse().unwrap()),
        ]],
        comment: None,
    });
    t
}

fn group_key(i: u32) -> Vec<Key> {
    let mut k = addr_key(80);
    k.push(Key::Index(i));
    k
}

fn group_key_exprs(n: u32) -> Vec<KeyExpr> {
    let mut key = ADDR_KEY.to_vec();
    key.push(KeyExpr::Numgen(n));
    key
}

fn dnat_map(n: u32) -> Verdict {
    Verdict::DnatMap {
        key: group_key_exprs(n),
        map: "eps-n2".into(),
    }
}

#[test]
fn grouped_maps_and_concat_sets() {
    let ep = MapData::AddrPort("10.42.1.5".parse().unwrap(), 8080);
    let good = || vec![(group_key(0), ep.clone()), (group_key(1), ep.clone())];
    let t = group_table(vec![rule(vec![], dnat_map(2))], good());
    t.validate().unwrap();
    let text = crate::nft::render(&t);
    assert!(text.contains(
        "typeof ip daddr . meta l4proto . th dport . numgen random mod 2 : ip daddr . th dport"
    ));
    assert!(text.contains("10.43.0.1 . tcp . 80 . 1 : 10.42.1.5 . 8080"));
    assert!(text.contains(
        "dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @eps-n2"
    ));
    assert!(text.contains("type ipv4_addr . ipv4_addr"));
    // The numgen index must be below N.
    let t = group_table(vec![], vec![(group_key(2), ep.clone())]);
    assert!(invalid(&t).contains("map eps-n2: element key"));
    // Elements map to the map's value type.
    let t = group_table(
        vec![],
        vec![(group_key(0), MapData::Verdict(Verdict::Drop))],
    );
    assert!(invalid(&t).contains("is not a value of type"));
    // The lookup key must match (mod 3 against a mod 2 map).
    let t = group_table(vec![rule(vec![], dnat_map(3))], good());
    assert!(invalid(&t).contains("lookup key does not match"));
    // A verdict-map lookup of an address map, and a dnat lookup of a
    // verdict map, are refused.
    let mut t = group_table(vec![], good());
    t.chains[1].rules.push(rule(
        vec![],
        Verdict::VerdictMap {
            key: group_key_exprs(2),
            map: "eps-n2".into(),
        },
    ));
    assert!(invalid(&t).contains("does not map to Verdict"));
    // DNAT from a map is a NAT verdict: not reachable from a filter hook.
    let mut t = group_table(vec![rule(vec![], dnat_map(2))], good());
    t.chains[0].base = base(ChainType::Filter, Hook::Input);
    assert!(invalid(&t).contains("dnat outside a nat prerouting or output chain"));
    // Concatenation matches name an existing set of the same type.
    let saddr_daddr = vec![KeyExpr::Ipv4Saddr, KeyExpr::Ipv4Daddr];
    let m = |set: &str, key: Vec<KeyExpr>| Match::ConcatIn {
        key,
        set: set.into(),
    };
    let mut t = group_table(vec![], good());
    t.chains[1].rules.push(rule(
        vec![m("hairpin", saddr_daddr.clone())],
        Verdict::Accept,
    ));
    t.validate().unwrap();
    assert!(crate::nft::render(&t).contains("ip saddr . ip daddr @hairpin accept"));
    t.chains[1].rules[0].matches = vec![m("hairpin", ADDR_KEY.to_vec())];
    assert!(invalid(&t).contains("key does not match the type"));
    t.chains[1].rules[0].matches = vec![m("nope", saddr_daddr)];
    assert!(invalid(&t).contains("set @nope does not exist"));
    // Concatenation sets hold elements of their type, and share the name
    // space with sets and maps.
    let mut t = group_table(vec![], good());
    t.concat_sets[0].elements.push(addr_key(80).into());
    assert!(invalid(&t).contains("set hairpin: element"));
    let mut t = group_table(vec![], good());
    t.concat_sets[0].name = "eps-n2".into();
    assert!(invalid(&t).contains("defined twice"));
}
