//! The interpreter over small hand-built tables: chain semantics (jump,
//! goto, return, policies, priorities), maps, sets, marks, conntrack state.

use super::*;
use strait_plan::nft::{BaseChain, ConcatSet, KeyType, Map, MapValue, PortRange, Set, SetKind};

fn rule(matches: Vec<Match>, verdict: Verdict) -> Rule {
    Rule {
        matches,
        statements: vec![],
        verdict,
        counter: false,
        comment: None,
    }
}

fn base(
    name: &str,
    kind: ChainType,
    hook: Hook,
    priority: i32,
    policy: Policy,
    rules: Vec<Rule>,
) -> Chain {
    Chain {
        name: name.into(),
        base: Some(BaseChain {
            kind,
            hook,
            priority,
            policy,
        }),
        rules,
    }
}

fn regular(name: &str, rules: Vec<Rule>) -> Chain {
    Chain {
        name: name.into(),
        base: None,
        rules,
    }
}

fn pkt(dst: [u8; 4], proto: L4Proto, dport: u16) -> Packet {
    Packet {
        src: Ipv4Addr::new(10, 42, 1, 3),
        dst: dst.into(),
        proto,
        sport: 40000,
        dport,
    }
}

fn run(t: &Table, hook: Hook, ct: CtState, p: Packet) -> (HookResult, Packet) {
    t.validate().unwrap();
    let local = |ip: Ipv4Addr| ip == Ipv4Addr::new(192, 168, 1, 11);
    let ctx = HookCtx {
        hook,
        iif: Some("strait0"),
        oif: None,
        ct,
        is_local: &local,
        pick: 0,
    };
    eval_hook(t, &ctx, p, 0)
}

fn table(chains: Vec<Chain>) -> Table {
    let mut t = Table::new(strait_plan::nft::Family::Inet, "t");
    t.chains = chains;
    t
}

#[test]
fn goto_returns_to_the_caller_of_the_caller_and_jump_comes_back() {
    let port80 = || {
        vec![
            Match::L4Proto(L4Proto::Tcp),
            Match::Dport {
                ports: vec![PortRange::single(80)],
                negate: false,
            },
        ]
    };
    let t = table(vec![
        base(
            "in",
            ChainType::Filter,
            Hook::Forward,
            0,
            Policy::Drop,
            vec![
                rule(vec![], Verdict::Jump("a".into())),
                rule(port80(), Verdict::Accept),
            ],
        ),
        regular(
            "a",
            vec![
                rule(vec![], Verdict::Goto("b".into())),
                rule(vec![], Verdict::Drop),
            ],
        ),
        regular(
            "b",
            vec![rule(vec![Match::L4Proto(L4Proto::Udp)], Verdict::Drop)],
        ),
    ]);
    // tcp/80: a goes to b, b returns, which returns from a too: rule 2 accepts.
    let (r, _) = run(
        &t,
        Hook::Forward,
        CtState::New,
        pkt([10, 42, 2, 5], L4Proto::Tcp, 80),
    );
    assert_eq!(r.outcome, Outcome::Accept);
    // tcp/81: falls off the base chain: its policy drops.
    let (r, _) = run(
        &t,
        Hook::Forward,
        CtState::New,
        pkt([10, 42, 2, 5], L4Proto::Tcp, 81),
    );
    assert_eq!(
        r.outcome,
        Outcome::Drop {
            chain: "in".into(),
            rule: None
        }
    );
    // udp: dropped in b, rule 1.
    let (r, _) = run(
        &t,
        Hook::Forward,
        CtState::New,
        pkt([10, 42, 2, 5], L4Proto::Udp, 80),
    );
    assert_eq!(
        r.outcome,
        Outcome::Drop {
            chain: "b".into(),
            rule: Some(1)
        }
    );
}

#[test]
fn chains_run_in_priority_order_and_nat_only_for_new() {
    let t = table(vec![
        base(
            "late",
            ChainType::Filter,
            Hook::Prerouting,
            10,
            Policy::Accept,
            vec![rule(
                vec![Match::DaddrIn {
                    family: IpFamily::V4,
                    addrs: Addrs::Cidrs(vec!["10.42.9.9/32".parse().unwrap()]),
                    negate: false,
                }],
                Verdict::Drop,
            )],
        ),
        base(
            "nat",
            ChainType::Nat,
            Hook::Prerouting,
            -100,
            Policy::Accept,
            vec![rule(
                vec![Match::L4Proto(L4Proto::Tcp)],
                Verdict::Dnat {
                    addr: Ipv4Addr::new(10, 42, 9, 9),
                    port: Some(8080),
                },
            )],
        ),
    ]);
    // DNAT first (priority -100), then the filter at 10 sees the new address.
    let (r, p) = run(
        &t,
        Hook::Prerouting,
        CtState::New,
        pkt([10, 43, 0, 1], L4Proto::Tcp, 80),
    );
    assert_eq!(p.dst, Ipv4Addr::new(10, 42, 9, 9));
    assert_eq!(p.dport, 8080);
    assert_eq!(
        r.outcome,
        Outcome::Drop {
            chain: "late".into(),
            rule: Some(1)
        }
    );
    // An established packet skips NAT.
    let (r, p) = run(
        &t,
        Hook::Prerouting,
        CtState::Established,
        pkt([10, 43, 0, 1], L4Proto::Tcp, 80),
    );
    assert_eq!(p.dst, Ipv4Addr::new(10, 43, 0, 1));
    assert_eq!(r.outcome, Outcome::Accept);
}

#[test]
fn maps_sets_marks_fib_and_ct_state() {
    let mut t = table(vec![
        base(
            "f",
            ChainType::Filter,
            Hook::Input,
            0,
            Policy::Accept,
            vec![
                rule(
                    vec![Match::CtState(vec![CtState::Established])],
                    Verdict::Accept,
                ),
                Rule {
                    matches: vec![Match::ConcatIn {
                        key: vec![KeyExpr::Ipv4Daddr, KeyExpr::L4Proto, KeyExpr::Dport],
                        set: "marked".into(),
                    }],
                    statements: vec![Statement::MarkOr(0x4000)],
                    verdict: Verdict::Continue,
                    counter: false,
                    comment: None,
                },
                rule(
                    vec![
                        Match::Mark {
                            mask: 0x4000,
                            value: 0x4000,
                        },
                        Match::FibLocal(FibAddr::Daddr),
                    ],
                    Verdict::VerdictMap {
                        key: vec![KeyExpr::L4Proto, KeyExpr::Dport],
                        map: "ports".into(),
                    },
                ),
                rule(
                    vec![Match::SaddrIn {
                        family: IpFamily::V4,
                        addrs: Addrs::Set("clients".into()),
                        negate: false,
                    }],
                    Verdict::Reject(RejectWith::PortUnreachable),
                ),
            ],
        ),
        regular("deny", vec![rule(vec![], Verdict::Drop)]),
    ]);
    t.concat_sets.push(ConcatSet {
        name: "marked".into(),
        key: vec![KeyType::Ipv4Addr, KeyType::InetProto, KeyType::InetService],
        elements: vec![[
            Key::Ipv4(Ipv4Addr::new(192, 168, 1, 11)),
            Key::Proto(L4Proto::Tcp),
            Key::Port(22),
        ]
        .into_iter()
        .collect()],
        comment: None,
        interval: false,
    });
    t.maps.push(Map {
        interval: false,
        name: "ports".into(),
        key: vec![KeyType::InetProto, KeyType::InetService],
        value: MapValue::Verdict,
        elements: vec![(
            [Key::Proto(L4Proto::Tcp), Key::Port(22)]
                .into_iter()
                .collect(),
            MapData::Verdict(Verdict::Jump("deny".into())),
        )],
        comment: None,
    });
    t.sets.push(Set {
        name: "clients".into(),
        kind: SetKind::Ipv4Addr,
        interval: true,
        elements: vec!["10.42.1.0/24".parse().unwrap()],
        comment: None,
        timeout: None,
    });
    let node = [192, 168, 1, 11];
    // Marked, local, map element: jump deny -> drop; the hit names the key.
    let (r, _) = run(&t, Hook::Input, CtState::New, pkt(node, L4Proto::Tcp, 22));
    assert_eq!(
        r.outcome,
        Outcome::Drop {
            chain: "deny".into(),
            rule: Some(1)
        }
    );
    assert_eq!(r.mark, 0x4000);
    assert!(
        r.hits
            .iter()
            .any(|h| h.effect == "@ports: tcp . 22 -> jump deny"),
        "{:?}",
        r.hits
    );
    // Not in the concat set: no mark, map rule skipped, set rule rejects.
    let (r, _) = run(&t, Hook::Input, CtState::New, pkt(node, L4Proto::Tcp, 23));
    assert_eq!(r.mark, 0);
    assert!(matches!(r.outcome, Outcome::Reject { ref chain, rule: 4, .. } if chain == "f"));
    // ICMP has no ports: the concat match fails rather than matching port 0.
    let (r, _) = run(&t, Hook::Input, CtState::New, pkt(node, L4Proto::Icmp, 0));
    assert_eq!(r.mark, 0);
    // Established: accepted by rule 1.
    let (r, _) = run(
        &t,
        Hook::Input,
        CtState::Established,
        pkt(node, L4Proto::Tcp, 22),
    );
    assert_eq!(r.outcome, Outcome::Accept);
    assert_eq!(r.hits.len(), 1);
}

#[test]
fn numgen_picks_and_masquerade_is_reported() {
    let t = table(vec![
        base(
            "post",
            ChainType::Nat,
            Hook::Postrouting,
            100,
            Policy::Accept,
            vec![rule(
                vec![Match::Oifname {
                    name: "eth0".into(),
                    negate: false,
                }],
                Verdict::Masquerade { fully_random: true },
            )],
        ),
        base(
            "pre",
            ChainType::Nat,
            Hook::Prerouting,
            -100,
            Policy::Accept,
            vec![rule(
                vec![Match::L4Proto(L4Proto::Tcp)],
                Verdict::NumgenVmap {
                    targets: vec![Verdict::Jump("a".into()), Verdict::Jump("b".into())],
                },
            )],
        ),
        regular(
            "a",
            vec![rule(
                vec![Match::L4Proto(L4Proto::Tcp)],
                Verdict::Dnat {
                    addr: Ipv4Addr::new(1, 1, 1, 1),
                    port: Some(1),
                },
            )],
        ),
        regular(
            "b",
            vec![rule(
                vec![Match::L4Proto(L4Proto::Tcp)],
                Verdict::Dnat {
                    addr: Ipv4Addr::new(2, 2, 2, 2),
                    port: Some(2),
                },
            )],
        ),
    ]);
    t.validate().unwrap();
    let local = |_: Ipv4Addr| false;
    for (pick, want) in [(0, [1, 1, 1, 1]), (1, [2, 2, 2, 2]), (3, [2, 2, 2, 2])] {
        let ctx = HookCtx {
            hook: Hook::Prerouting,
            iif: None,
            oif: None,
            ct: CtState::New,
            is_local: &local,
            pick,
        };
        let (_, p) = eval_hook(&t, &ctx, pkt([10, 43, 0, 1], L4Proto::Tcp, 80), 0);
        assert_eq!(p.dst, Ipv4Addr::from(want));
    }
    let ctx = HookCtx {
        hook: Hook::Postrouting,
        iif: None,
        oif: Some("eth0"),
        ct: CtState::New,
        is_local: &local,
        pick: 0,
    };
    let (r, _) = eval_hook(&t, &ctx, pkt([8, 8, 8, 8], L4Proto::Tcp, 80), 0);
    assert_eq!(r.nat, vec![Nat::Masquerade]);
    let ctx = HookCtx {
        oif: Some("strait0"),
        ..ctx
    };
    let (r, _) = eval_hook(&t, &ctx, pkt([8, 8, 8, 8], L4Proto::Tcp, 80), 0);
    assert!(r.nat.is_empty());
}

#[test]
fn interval_concat_sets_match_ranges() {
    let mut t = table(vec![base(
        "f",
        ChainType::Filter,
        Hook::Forward,
        0,
        Policy::Drop,
        vec![rule(
            vec![Match::ConcatIn {
                key: vec![
                    KeyExpr::Ipv4Daddr,
                    KeyExpr::Ipv4Saddr,
                    KeyExpr::L4Proto,
                    KeyExpr::Dport,
                ],
                set: "allow".into(),
            }],
            Verdict::Accept,
        )],
    )]);
    t.concat_sets.push(ConcatSet {
        name: "allow".into(),
        key: vec![
            KeyType::Ipv4Addr,
            KeyType::Ipv4Addr,
            KeyType::InetProto,
            KeyType::InetService,
        ],
        elements: vec![[
            Key::Ipv4(Ipv4Addr::new(10, 42, 2, 5)),
            Key::Ipv4Range(Ipv4Addr::new(10, 42, 1, 0), Ipv4Addr::new(10, 42, 1, 255)),
            Key::ProtoRange(6, 6),
            Key::PortRange(8000, 8080),
        ]
        .into_iter()
        .collect()],
        comment: None,
        interval: true,
    });
    let ok = |proto, port| {
        let (r, _) = run(
            &t,
            Hook::Forward,
            CtState::New,
            pkt([10, 42, 2, 5], proto, port),
        );
        r.outcome == Outcome::Accept
    };
    assert!(ok(L4Proto::Tcp, 8080));
    assert!(ok(L4Proto::Tcp, 8000));
    assert!(!ok(L4Proto::Tcp, 8081));
    assert!(!ok(L4Proto::Udp, 8080));
}
