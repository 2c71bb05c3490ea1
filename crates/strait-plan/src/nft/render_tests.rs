use super::*;
use crate::nft::ir::*;
use ipnet::IpNet;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A table that uses every match, verdict and set shape the IR has.
pub(crate) fn sample() -> Table {
    Table {
        counters: Vec::new(),
        family: Family::Inet,
        name: "strait_render_test".into(),
        sets: vec![
            Set {
                name: "v4".into(),
                kind: SetKind::Ipv4Addr,
                interval: true,
                elements: vec![net("192.168.0.0/16"), net("10.0.0.0/8")],
                comment: Some("say \"hi\"".into()),
                timeout: None,
            },
            Set {
                name: "v6-hosts".into(),
                kind: SetKind::Ipv6Addr,
                interval: false,
                elements: vec![net("fd00::2/128"), net("fd00::1/128")],
                comment: None,
                timeout: None,
            },
            Set {
                name: "empty".into(),
                kind: SetKind::Ipv4Addr,
                interval: true,
                elements: vec![],
                comment: None,
                timeout: None,
            },
        ],
        concat_sets: Vec::new(),
        maps: Vec::new(),
        chains: vec![
            Chain {
                name: "input".into(),
                base: Some(BaseChain {
                    kind: ChainType::Filter,
                    hook: Hook::Input,
                    priority: -10,
                    policy: Policy::Accept,
                }),
                rules: vec![
                    Rule {
                        matches: vec![Match::CtState(vec![CtState::Related, CtState::Established])],
                        verdict: Verdict::Accept,
                        statements: Vec::new(),
                        counter: false,
                        comment: None,
                    },
                    Rule {
                        matches: vec![
                            Match::Iifname {
                                name: "strait0".into(),
                                negate: false,
                            },
                            Match::SaddrIn {
                                family: IpFamily::V6,
                                addrs: Addrs::Set("v6-hosts".into()),
                                negate: true,
                            },
                            Match::L4Proto(L4Proto::Udp),
                            Match::Dport {
                                ports: vec![
                                    PortRange {
                                        first: 30000,
                                        last: 32767,
                                    },
                                    PortRange::single(53),
                                ],
                                negate: false,
                            },
                        ],
                        verdict: Verdict::Jump("sub".into()),
                        statements: Vec::new(),
                        counter: true,
                        comment: Some("to sub".into()),
                    },
                    Rule {
                        matches: vec![
                            Match::Oifname {
                                name: "eth0".into(),
                                negate: true,
                            },
                            Match::DaddrIn {
                                family: IpFamily::V4,
                                addrs: Addrs::Cidrs(vec![net("10.1.0.0/16"), net("10.0.0.0/16")]),
                                negate: false,
                            },
                            Match::L4Proto(L4Proto::Icmp),
                        ],
                        verdict: Verdict::Drop,
                        statements: Vec::new(),
                        counter: true,
                        comment: None,
                    },
                    Rule {
                        matches: vec![Match::DaddrIn {
                            family: IpFamily::V4,
                            addrs: Addrs::Cidrs(vec![net("10.9.0.0/16")]),
                            negate: true,
                        }],
                        verdict: Verdict::Continue,
                        statements: Vec::new(),
                        counter: true,
                        comment: None,
                    },
                ],
            },
            Chain {
                name: "sub".into(),
                base: None,
                rules: vec![Rule {
                    matches: vec![
                        Match::L4Proto(L4Proto::Tcp),
                        Match::Dport {
                            ports: vec![PortRange::single(22)],
                            negate: true,
                        },
                    ],
                    verdict: Verdict::Return,
                    statements: Vec::new(),
                    counter: false,
                    comment: None,
                }],
            },
            Chain {
                name: "post".into(),
                base: Some(BaseChain {
                    kind: ChainType::Nat,
                    hook: Hook::Postrouting,
                    priority: 100,
                    policy: Policy::Accept,
                }),
                rules: vec![
                    Rule {
                        matches: vec![Match::SaddrIn {
                            family: IpFamily::V4,
                            addrs: Addrs::Set("v4".into()),
                            negate: false,
                        }],
                        verdict: Verdict::Masquerade { fully_random: true },
                        statements: Vec::new(),
                        counter: true,
                        comment: Some("masq".into()),
                    },
                    Rule {
                        matches: vec![Match::SaddrIn {
                            family: IpFamily::V4,
                            addrs: Addrs::Set("empty".into()),
                            negate: false,
                        }],
                        verdict: Verdict::Masquerade {
                            fully_random: false,
                        },
                        statements: Vec::new(),
                        counter: false,
                        comment: None,
                    },
                ],
            },
        ],
    }
}

const SAMPLE: &str = r#"add table inet strait_render_test
delete table inet strait_render_test
table inet strait_render_test {
	set v4 {
		type ipv4_addr
		flags interval
		comment "say 'hi'"
		elements = { 10.0.0.0/8, 192.168.0.0/16 }
	}

	set v6-hosts {
		type ipv6_addr
		elements = { fd00::1, fd00::2 }
	}

	set empty {
		type ipv4_addr
		flags interval
	}

	chain input {
		type filter hook input priority -10; policy accept;
		ct state established,related accept
		iifname "strait0" ip6 saddr != @v6-hosts meta l4proto udp th dport { 53, 30000-32767 } counter jump sub comment "to sub"
		oifname != "eth0" ip daddr { 10.0.0.0/16, 10.1.0.0/16 } meta l4proto icmp counter drop
		ip daddr != 10.9.0.0/16 counter
	}

	chain sub {
		meta l4proto tcp th dport != 22 return
	}

	chain post {
		type nat hook postrouting priority 100; policy accept;
		ip saddr @v4 counter masquerade fully-random comment "masq"
		ip saddr @empty masquerade
	}
}
"#;

#[test]
fn renders_every_construct() {
    let t = sample();
    // The sample's set comment holds '"', which validate rejects; the
    // renderer still never emits a broken string.
    assert_eq!(render(&t), SAMPLE);
}

#[test]
fn rendering_is_deterministic() {
    let mut t = sample();
    t.sets[0].elements.reverse();
    assert_eq!(render(&t), render(&sample()));
}

#[test]
fn empty_table() {
    assert_eq!(
        render(&Table::new(Family::Ip, "x")),
        "add table ip x\ndelete table ip x\ntable ip x {\n}\n"
    );
}

/// A table with every construct the service compiler uses: maps, verdict
/// map lookups, numgen, fib, marks, DNAT, reject, goto.
pub(crate) fn service_sample() -> Table {
    let r = |matches: Vec<Match>, statements: Vec<Statement>, verdict: Verdict| Rule {
        matches,
        statements,
        verdict,
        counter: false,
        comment: None,
    };
    let key = |a: &str, port: u16| -> crate::nft::KeyVec {
        smallvec::smallvec![
            Key::Ipv4(a.parse().unwrap()),
            Key::Proto(L4Proto::Tcp),
            Key::Port(port),
        ]
    };
    let chain = |name: &str, base: Option<BaseChain>, rules: Vec<Rule>| Chain {
        name: name.into(),
        base,
        rules,
    };
    let base = |kind, hook, priority| {
        Some(BaseChain {
            kind,
            hook,
            priority,
            policy: Policy::Accept,
        })
    };
    let goto = |c: &str| Verdict::Goto(c.into());
    Table {
        counters: Vec::new(),
        family: Family::Inet,
        name: "strait_render_test".into(),
        sets: vec![],
        concat_sets: vec![],
        maps: vec![
            Map {
                interval: false,
                name: "ips".into(),
                key: vec![KeyType::Ipv4Addr, KeyType::InetProto, KeyType::InetService],
                value: MapValue::Verdict,
                elements: vec![
                    (key("10.43.0.2", 443), MapData::Verdict(goto("svc"))),
                    (key("10.43.0.1", 80), MapData::Verdict(goto("svc"))),
                ],
                comment: Some("services".into()),
            },
            Map {
                interval: false,
                name: "ports".into(),
                key: vec![KeyType::InetProto, KeyType::InetService],
                value: MapValue::Verdict,
                elements: vec![(
                    smallvec::smallvec![Key::Proto(L4Proto::Sctp), Key::Port(30000)],
                    MapData::Verdict(Verdict::Drop),
                )],
                comment: None,
            },
        ],
        chains: vec![
            chain(
                "pre",
                base(ChainType::Nat, Hook::Prerouting, -100),
                vec![
                    r(
                        vec![],
                        vec![],
                        Verdict::VerdictMap {
                            key: vec![KeyExpr::Ipv4Daddr, KeyExpr::L4Proto, KeyExpr::Dport],
                            map: "ips".into(),
                        },
                    ),
                    r(
                        vec![Match::FibLocal(FibAddr::Daddr)],
                        vec![],
                        Verdict::VerdictMap {
                            key: vec![KeyExpr::L4Proto, KeyExpr::Dport],
                            map: "ports".into(),
                        },
                    ),
                ],
            ),
            chain(
                "post",
                base(ChainType::Nat, Hook::Postrouting, 100),
                vec![r(
                    vec![Match::Mark {
                        mask: 0x4000,
                        value: 0x4000,
                    }],
                    vec![],
                    Verdict::Masquerade {
                        fully_random: false,
                    },
                )],
            ),
            chain(
                "filter",
                base(ChainType::Filter, Hook::Forward, -10),
                vec![
                    r(
                        vec![Match::CtState(vec![CtState::Invalid])],
                        vec![],
                        Verdict::Drop,
                    ),
                    r(
                        vec![Match::L4Proto(L4Proto::Tcp)],
                        vec![],
                        Verdict::Reject(RejectWith::TcpReset),
                    ),
                    r(
                        vec![Match::FibLocal(FibAddr::Saddr)],
                        vec![],
                        Verdict::Reject(RejectWith::PortUnreachable),
                    ),
                ],
            ),
            chain(
                "svc",
                None,
                vec![r(
                    vec![],
                    vec![],
                    Verdict::NumgenVmap {
                        targets: vec![goto("sep-a"), goto("sep-b")],
                    },
                )],
            ),
            chain(
                "sep-a",
                None,
                vec![
                    r(
                        vec![Match::SaddrIn {
                            family: IpFamily::V4,
                            addrs: Addrs::Cidrs(vec![net("10.42.1.5/32")]),
                            negate: false,
                        }],
                        vec![Statement::MarkOr(0x4000)],
                        Verdict::Continue,
                    ),
                    r(
                        vec![Match::L4Proto(L4Proto::Tcp)],
                        vec![],
                        Verdict::Dnat {
                            addr: "10.42.1.5".parse().unwrap(),
                            port: Some(8080),
                        },
                    ),
                ],
            ),
            chain(
                "sep-b",
                None,
                vec![r(
                    vec![],
                    vec![],
                    Verdict::Dnat {
                        addr: "10.42.2.5".parse().unwrap(),
                        port: None,
                    },
                )],
            ),
        ],
    }
}

const SERVICE_SAMPLE: &str = r#"add table inet strait_render_test
delete table inet strait_render_test
table inet strait_render_test {
	map ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "services"
		elements = { 10.43.0.1 . tcp . 80 : goto svc,
			     10.43.0.2 . tcp . 443 : goto svc }
	}

	map ports {
		type inet_proto . inet_service : verdict
		elements = { sctp . 30000 : drop }
	}

	chain pre {
		type nat hook prerouting priority -100; policy accept;
		ip daddr . meta l4proto . th dport vmap @ips
		fib daddr type local meta l4proto . th dport vmap @ports
	}

	chain post {
		type nat hook postrouting priority 100; policy accept;
		meta mark and 0x4000 == 0x4000 masquerade
	}

	chain filter {
		type filter hook forward priority -10; policy accept;
		ct state invalid drop
		meta l4proto tcp reject with tcp reset
		fib saddr type local reject with icmpx type port-unreachable
	}

	chain svc {
		numgen random mod 2 vmap { 0 : goto sep-a, 1 : goto sep-b }
	}

	chain sep-a {
		ip saddr 10.42.1.5/32 meta mark set meta mark | 0x4000
		meta l4proto tcp dnat ip to 10.42.1.5:8080
	}

	chain sep-b {
		dnat ip to 10.42.2.5
	}
}
"#;

#[test]
fn renders_service_constructs() {
    let t = service_sample();
    t.validate().unwrap();
    assert_eq!(render(&t), SERVICE_SAMPLE);
}

/// Syntax check against the real nft, ONLY in check mode: `nft -c -f -`
/// parses the script and has the kernel validate the batch, then aborts it,
/// so the ruleset is never changed. Needs root (CAP_NET_ADMIN); skipped,
/// with a message, where nft is missing or not permitted.
#[test]
fn nft_check_mode_accepts_the_scripts() {
    let mut sample = sample();
    sample.sets[0].comment = Some("say hi".into());
    sample.validate().unwrap();
    let mut scripts = vec![
        ("sample", render(&sample)),
        ("service sample", render(&service_sample())),
    ];
    for (name, cfg) in [
        (
            "egress",
            "nonMasqueradeCIDRs: [192.168.0.0/16, 10.0.0.0/8]\n",
        ),
        ("egress-empty", ""),
    ] {
        let cfg = strait_model::AgentConfig::from_yaml(&format!(
            "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\n{cfg}"
        ))
        .unwrap();
        let mut t = Table::new(Family::Inet, "strait_check_test");
        crate::egress::add_to_table(
            &cfg,
            "10.42.0.0/16".parse().unwrap(),
            &mut t,
            &mut Vec::new(),
        );
        t.validate().unwrap();
        scripts.push((name, render(&t)));
    }
    for (name, script) in scripts {
        match nft_check(&script) {
            Ok(()) => {}
            Err(NftCheck::Skipped(why)) => {
                eprintln!("skipping the nft check: {why}");
                return;
            }
            Err(NftCheck::Rejected(msg)) => {
                panic!("nft -c rejected the {name} script:\n{msg}\n{script}")
            }
        }
    }
}

enum NftCheck {
    Skipped(String),
    Rejected(String),
}

fn nft_check(script: &str) -> Result<(), NftCheck> {
    use strait_kernel::nft::{check, NftError};
    match check(script) {
        Ok(()) => Ok(()),
        Err(NftError::Spawn(e)) => Err(NftCheck::Skipped(format!("cannot run nft: {e}"))),
        Err(NftError::Rejected(m)) if m.contains("Operation not permitted") => {
            Err(NftCheck::Skipped(m))
        }
        Err(NftError::Rejected(m)) => Err(NftCheck::Rejected(m)),
    }
}
