use super::*;
use proptest::prelude::*;
use strait_model::k8s::api::core::v1::{Container, ContainerPort, PodSpec};

fn port(proto: Option<&str>, port: Option<IntOrString>, end: Option<i32>) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: proto.map(String::from),
        port,
        end_port: end,
    }
}

fn pod_with(ports: &[(&str, i32, Option<&str>)]) -> Pod {
    Pod {
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p, proto)| ContainerPort {
                            name: Some(n.to_string()),
                            container_port: *p,
                            protocol: proto.map(String::from),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn numeric_ranges_and_defaults() {
    let r = |p| resolve(&p, None, "f").unwrap();
    assert_eq!(
        r(port(None, Some(IntOrString::Int(80)), None)),
        Ports::one(L4Proto::Tcp, 80, 80)
    );
    assert_eq!(
        r(port(Some("UDP"), Some(IntOrString::Int(80)), Some(90))),
        Ports::one(L4Proto::Udp, 80, 90)
    );
    assert_eq!(
        r(port(Some("SCTP"), None, None)),
        Ports::one(L4Proto::Sctp, 0, 65535)
    );
}

#[test]
fn named_ports_resolve_against_the_destination() {
    let pod = pod_with(&[
        ("http", 8080, None),
        ("dns", 53, Some("UDP")),
        ("http", 8081, None),
    ]);
    let named = |proto| port(proto, Some(IntOrString::String("http".into())), None);
    let mut want = Ports::one(L4Proto::Tcp, 8080, 8080);
    want = want.union(&Ports::one(L4Proto::Tcp, 8081, 8081));
    assert_eq!(want, Ports::one(L4Proto::Tcp, 8080, 8081));
    assert_eq!(resolve(&named(None), Some(&pod), "f").unwrap(), want);
    // The name with another protocol, or no pod: nothing.
    assert!(resolve(&named(Some("UDP")), Some(&pod), "f")
        .unwrap()
        .is_none());
    assert!(resolve(&named(None), None, "f").unwrap().is_none());
}

#[test]
fn bad_ports_name_the_field() {
    for (p, want) in [
        (port(Some("ICMP"), None, None), "f.protocol \"ICMP\""),
        (
            port(None, Some(IntOrString::Int(0)), None),
            "f.port 0 is not a port",
        ),
        (
            port(None, Some(IntOrString::Int(70000)), None),
            "f.port 70000",
        ),
        (
            port(None, Some(IntOrString::Int(90)), Some(80)),
            "f.endPort 80 is below port 90",
        ),
        (port(None, None, Some(80)), "f.endPort needs a numeric port"),
        (
            port(None, Some(IntOrString::String("x".into())), Some(80)),
            "named port",
        ),
    ] {
        let e = resolve(&p, None, "f").unwrap_err();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn all_absorbs() {
    assert_eq!(
        Ports::All.union(&Ports::one(L4Proto::Tcp, 1, 2)),
        Ports::All
    );
    assert!(Ports::none().is_none());
    assert!(!Ports::All.is_none());
}

proptest! {
    /// The union allows a port exactly when either side does, and stays
    /// normalised (sorted, disjoint, non-adjacent).
    #[test]
    fn union_is_exact(a in proptest::collection::vec((0u16..60, 0u16..5), 0..5),
                      b in proptest::collection::vec((0u16..60, 0u16..5), 0..5)) {
        let mk = |v: &Vec<(u16, u16)>| v.iter().fold(Ports::none(), |acc, (s, l)| acc.union(&Ports::one(L4Proto::Udp, *s, s + l)));
        let (pa, pb) = (mk(&a), mk(&b));
        let u = pa.union(&pb);
        let has = |p: &Ports, x: u16| match p {
            Ports::All => true,
            Ports::Some(m) => m.get(&L4Proto::Udp).is_some_and(|r| r.iter().any(|(s, e)| *s <= x && x <= *e)),
        };
        for x in 0..70 {
            prop_assert_eq!(has(&u, x), has(&pa, x) || has(&pb, x));
        }
        if let Ports::Some(m) = &u {
            for r in m.values() {
                for w in r.windows(2) {
                    prop_assert!(u32::from(w[0].1) + 1 < u32::from(w[1].0));
                }
            }
        }
    }
}
