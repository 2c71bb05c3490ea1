//! The constructs policy needs: named counters, interval concatenation
//! sets with ranges, `counter name`, and a rate-limited `log group`.

use super::*;
use crate::nft::ir::*;

fn a(s: &str) -> std::net::Ipv4Addr {
    s.parse().unwrap()
}

pub(crate) fn policy_sample() -> Table {
    let mut t = Table::new(Family::Inet, "strait_policy_render_test");
    t.counters = vec![
        CounterObj {
            name: "pol-in.x.deny".into(),
            comment: Some("x/deny ingress".into()),
        },
        CounterObj {
            name: "pol-in.x.web".into(),
            comment: None,
        },
    ];
    t.concat_sets.push(ConcatSet {
        name: "ingress-allow".into(),
        key: vec![
            KeyType::Ipv4Addr,
            KeyType::Ipv4Addr,
            KeyType::InetProto,
            KeyType::InetService,
        ],
        elements: vec![
            smallvec::smallvec![
                Key::Ipv4(a("10.42.1.5")),
                Key::Ipv4Range(a("10.42.0.0"), a("10.42.255.255")),
                Key::ProtoRange(0, 255),
                Key::PortRange(0, 65535),
            ],
            smallvec::smallvec![
                Key::Ipv4(a("10.42.1.6")),
                Key::Ipv4Range(a("192.168.0.7"), a("192.168.0.7")),
                Key::Proto(L4Proto::Sctp),
                Key::PortRange(80, 81),
            ],
        ],
        comment: Some("daddr . saddr . proto . port".into()),
        interval: true,
    });
    t.chains.push(Chain {
        name: "in-drop".into(),
        base: None,
        rules: vec![
            Rule {
                matches: vec![],
                statements: vec![
                    Statement::NamedCounter("pol-in.x.deny".into()),
                    Statement::NamedCounter("pol-in.x.web".into()),
                    Statement::LimitLog {
                        per_second: 10,
                        burst: 20,
                        group: 7,
                        prefix: "strait-policy in 1".into(),
                    },
                ],
                verdict: Verdict::Continue,
                counter: false,
                comment: None,
            },
            Rule {
                matches: vec![],
                statements: vec![],
                verdict: Verdict::Drop,
                counter: false,
                comment: None,
            },
        ],
    });
    t
}

const POLICY_SAMPLE: &str = r#"add table inet strait_policy_render_test
delete table inet strait_policy_render_test
table inet strait_policy_render_test {
	counter pol-in.x.deny {
		comment "x/deny ingress"
	}

	counter pol-in.x.web {
	}

	set ingress-allow {
		type ipv4_addr . ipv4_addr . inet_proto . inet_service
		flags interval
		comment "daddr . saddr . proto . port"
		elements = { 10.42.1.5 . 10.42.0.0-10.42.255.255 . 0-255 . 0-65535,
			     10.42.1.6 . 192.168.0.7-192.168.0.7 . sctp . 80-81 }
	}

	chain in-drop {
		counter name "pol-in.x.deny" counter name "pol-in.x.web" limit rate 10/second burst 20 packets log group 7 prefix "strait-policy in 1"
		drop
	}
}
"#;

#[test]
fn renders_policy_constructs() {
    let t = policy_sample();
    t.validate().unwrap();
    assert_eq!(render(&t), POLICY_SAMPLE);
}

#[test]
fn validate_rejects_misused_policy_constructs() {
    let mut t = policy_sample();
    t.concat_sets[0].interval = false;
    assert!(t.validate().unwrap_err().message.contains("interval flag"));

    let mut t = policy_sample();
    t.chains[0].rules[0].statements[0] = Statement::NamedCounter("nope".into());
    assert!(t.validate().unwrap_err().message.contains("counter nope"));

    let mut t = policy_sample();
    t.chains[0].rules[0].verdict = Verdict::Drop;
    assert!(t.validate().unwrap_err().message.contains("last statement"));

    let mut t = policy_sample();
    t.counters.push(t.counters[0].clone());
    assert!(t.validate().unwrap_err().message.contains("defined twice"));

    let mut t = policy_sample();
    t.concat_sets[0].elements[0][3] = Key::PortRange(9, 8);
    assert!(t.validate().unwrap_err().message.contains("type"));
}

#[test]
fn nft_check_mode_accepts_policy_constructs() {
    match strait_kernel::nft::check(&render(&policy_sample())) {
        Ok(()) => {}
        Err(strait_kernel::nft::NftError::Rejected(m)) if !m.contains("not permitted") => {
            panic!("nft -c rejected the policy sample: {m}")
        }
        Err(e) => eprintln!("skipping the nft check: {e}"),
    }
}

#[test]
fn incremental_carries_counters_and_chains_only_elements_reach() {
    let old = policy_sample();
    let mut new = policy_sample();
    new.counters.pop();
    new.chains[0].name = "in-drop-2".into();
    new.chains[0].rules[0].statements.remove(1);
    new.validate().unwrap();
    let diff = crate::nft::incremental::changes(&old, &new).expect("incremental");
    let t = "inet strait_policy_render_test";
    let at = |needle: &str| {
        diff.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing in\n{diff}"))
    };
    // The new chain with its rules first, then the old chain and the
    // counter only it used go.
    let added = at("\tchain in-drop-2 {");
    at("counter name \"pol-in.x.deny\" limit rate 10/second burst 20 packets log group 7 prefix \"strait-policy in 1\"");
    assert!(added < at(&format!("delete chain {t} in-drop\n")), "{diff}");
    assert!(
        at(&format!("delete chain {t} in-drop\n"))
            < at(&format!("delete counter {t} pol-in.x.web\n")),
        "{diff}"
    );
    assert!(
        !diff.contains("pol-in.x.deny {"),
        "an unchanged counter is not re-added: {diff}"
    );
    // The same chain with other rules: not an element change.
    let mut changed = policy_sample();
    changed.chains[0].rules[1].verdict = Verdict::Accept;
    assert!(crate::nft::incremental::changes(&old, &changed).is_none());
    // A rule jumping to the chain makes it part of the shape.
    let mut jumped = policy_sample();
    jumped.chains.push(Chain {
        name: "from".into(),
        base: None,
        rules: vec![Rule {
            matches: vec![],
            statements: vec![],
            verdict: Verdict::Jump("in-drop".into()),
            counter: false,
            comment: None,
        }],
    });
    let mut jumped2 = jumped.clone();
    jumped2.chains[0].rules.pop();
    assert!(crate::nft::incremental::changes(&jumped, &jumped2).is_none());
}
