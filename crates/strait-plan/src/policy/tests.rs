//! The compiled table, read the way the kernel reads it (isolated sets,
//! then the allow sets), against the Kubernetes semantics.

use super::elements::allows;
use super::*;
use crate::nft::{ConcatSet, Family, L4Proto};
use std::net::Ipv4Addr;
use strait_model::parse_manifests;

const NODE: &str = "n1";

/// Namespaces x, y (labelled team=blue), z (not in the snapshot); pods a,
/// b, c in each with app=<name>; x/a and y/a on n1, the rest on n2; pod
/// x/b names its port 8080 "http"; y/c is hostNetwork with the node's IP.
fn cluster() -> String {
    let mut out = String::from(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {name: y, labels: {team: blue}}\n---\n",
    );
    for (n, ns) in ["x", "y", "z"].iter().enumerate() {
        for (m, pod) in ["a", "b", "c"].iter().enumerate() {
            let node = if *pod == "a" && *ns != "z" {
                "n1"
            } else {
                "n2"
            };
            let host = *ns == "y" && *pod == "c";
            let ip = if host {
                "192.168.0.2".to_string()
            } else {
                format!("10.42.{}.{}", n + 1, m + 1)
            };
            out.push_str(&format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: {ns}, labels: {{app: {pod}}}}}\n\
                 spec:\n  nodeName: {node}\n  hostNetwork: {host}\n  containers:\n  - name: c\n    ports: [{{name: http, containerPort: {port}}}]\n\
                 status: {{podIP: {ip}}}\n---\n",
                port = if *ns == "x" && *pod == "b" { 8080 } else { 80 },
            ));
        }
    }
    out
}

fn ip(ns: &str, pod: &str) -> Ipv4Addr {
    let n = ["x", "y", "z"].iter().position(|x| *x == ns).unwrap() as u8 + 1;
    let m = ["a", "b", "c"].iter().position(|x| *x == pod).unwrap() as u8 + 1;
    Ipv4Addr::new(10, 42, n, m)
}

fn compile_on(node: &str, policies: &str) -> (Table, Vec<String>) {
    let text = format!("{}{policies}", cluster());
    let snap = Snapshot::from_objects(parse_manifests(&text, "test").unwrap());
    let mut t = Table::new(Family::Inet, "t");
    t.chains.push(crate::nft::Chain {
        name: crate::egress::FORWARD_CHAIN.into(),
        base: None,
        rules: vec![],
    });
    let mut warnings = Vec::new();
    add_to_table(node, &snap, &mut t, &mut warnings);
    t.validate().unwrap();
    (t, warnings)
}

fn concat<'t>(t: &'t Table, name: &str) -> &'t ConcatSet {
    t.concat_sets.iter().find(|s| s.name == name).unwrap()
}

fn isolated(t: &Table, d: Direction, a: Ipv4Addr) -> bool {
    t.set(&isolated_set(d))
        .unwrap()
        .elements
        .iter()
        .any(|e| e.addr() == std::net::IpAddr::V4(a))
}

fn allowed(
    t: &Table,
    d: Direction,
    pod: Ipv4Addr,
    peer: Ipv4Addr,
    proto: L4Proto,
    port: u16,
) -> bool {
    let peers = &t.map(&peers_map(d)).unwrap().elements;
    let sets = super::elements::Allow {
        any: concat(t, &allow_any_set(d)).elements.clone(),
        ports: concat(t, &allow_ports_set(d)).elements.clone(),
        ranges: concat(t, &allow_ranges_set(d)).elements.clone(),
    };
    allows(peers, &sets, pod, peer, proto, port)
}

/// Whether a new flow from `src` to `dst` passes this node's table.
fn passes(t: &Table, src: Ipv4Addr, dst: Ipv4Addr, proto: L4Proto, port: u16) -> bool {
    let eg = Direction::Egress;
    let ing = Direction::Ingress;
    (!isolated(t, eg, src) || allowed(t, eg, src, dst, proto, port))
        && (!isolated(t, ing, dst) || allowed(t, ing, dst, src, proto, port))
}

fn policy(ns: &str, name: &str, spec: &str) -> String {
    format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}\n---\n")
}

const TCP: L4Proto = L4Proto::Tcp;

#[test]
fn no_policy_adds_nothing() {
    let (t, _) = compile_on(NODE, "");
    assert!(t.sets.is_empty() && t.concat_sets.is_empty() && t.counters.is_empty());
}

#[test]
fn deny_all_ingress_and_allow_all() {
    let deny = policy("x", "deny", "  podSelector: {}\n  ingress: []");
    let (t, _) = compile_on(NODE, &deny);
    assert!(isolated(&t, Direction::Ingress, ip("x", "a")));
    assert!(!isolated(&t, Direction::Egress, ip("x", "a")));
    assert!(!passes(&t, ip("y", "a"), ip("x", "a"), TCP, 80));
    assert!(!passes(&t, ip("x", "b"), ip("x", "a"), L4Proto::Icmp, 0));
    // Not this node's pod: enforced on its own node.
    assert!(!isolated(&t, Direction::Ingress, ip("x", "b")));
    let allow = policy("x", "all", "  podSelector: {}\n  ingress: [{}]");
    let (t, _) = compile_on(NODE, &format!("{deny}{allow}"));
    assert!(passes(&t, ip("y", "a"), ip("x", "a"), L4Proto::Icmp, 0));
    assert!(passes(
        &t,
        Ipv4Addr::new(8, 8, 8, 8),
        ip("x", "a"),
        L4Proto::Udp,
        5
    ));
    // Both policies count the drops of x/a: one drop chain, two counters.
    let reasons = drop_reasons(&t);
    assert_eq!(reasons.len(), 1);
    assert_eq!(
        reasons[0].2,
        vec!["x/all".to_string(), "x/deny".to_string()]
    );
}

#[test]
fn namespace_selector_and_pod_selector() {
    let (t, w) = compile_on(
        NODE,
        &policy(
            "x",
            "p",
            "  podSelector: {matchLabels: {app: a}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {team: blue}}\n      podSelector: {matchExpressions: [{key: app, operator: In, values: [b]}]}\n    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}\n    - podSelector: {matchLabels: {app: c}}",
        ),
    );
    assert!(w.is_empty(), "{w:?}");
    let dst = ip("x", "a");
    assert!(passes(&t, ip("y", "b"), dst, TCP, 80)); // AND: blue and app=b
    assert!(!passes(&t, ip("y", "a"), dst, TCP, 80));
    assert!(passes(&t, ip("z", "a"), dst, TCP, 80)); // z is not in the snapshot
    assert!(passes(&t, ip("x", "c"), dst, L4Proto::Icmp, 0)); // own namespace, no ports
    assert!(!passes(&t, ip("x", "b"), dst, TCP, 80));
    // hostNetwork y/c is never a pod peer.
    assert!(!passes(&t, Ipv4Addr::new(192, 168, 0, 2), dst, TCP, 80));
}

#[test]
fn ip_block_except_and_ports() {
    let (t, w) = compile_on(
        NODE,
        &policy(
            "x",
            "p",
            "  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {cidr: 10.42.0.0/16, except: [10.42.2.0/24]}}]\n    ports: [{port: 80, endPort: 81}, {protocol: UDP, port: 53}]",
        ),
    );
    assert!(w.is_empty(), "{w:?}");
    let dst = ip("x", "a");
    assert!(passes(&t, ip("z", "b"), dst, TCP, 81));
    assert!(!passes(&t, ip("z", "b"), dst, TCP, 82));
    assert!(passes(&t, ip("z", "b"), dst, L4Proto::Udp, 53));
    assert!(!passes(&t, ip("z", "b"), dst, L4Proto::Icmp, 0)); // ports given: no ICMP
    assert!(!passes(&t, ip("y", "b"), dst, TCP, 80)); // except
}

#[test]
fn named_ports_ingress_and_egress() {
    let ingress = policy(
        "x",
        "in",
        "  podSelector: {}\n  ingress: [{ports: [{port: http}]}]",
    );
    // x/a's http is 80 (n1); x/b's http is 8080 but x/b is on n2.
    let (t, _) = compile_on("n2", &ingress);
    assert!(passes(&t, ip("y", "a"), ip("x", "b"), TCP, 8080));
    assert!(!passes(&t, ip("y", "a"), ip("x", "b"), TCP, 80));
    let egress = policy(
        "x",
        "out",
        "  podSelector: {matchLabels: {app: a}}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{port: http}]\n  - to: [{ipBlock: {cidr: 0.0.0.0/0}}]\n    ports: [{port: http, protocol: UDP}]",
    );
    let (t, _) = compile_on(NODE, &egress);
    let src = ip("x", "a");
    assert!(isolated(&t, Direction::Egress, src));
    assert!(!isolated(&t, Direction::Ingress, src)); // explicit types: Egress only
    assert!(passes(&t, src, ip("x", "b"), TCP, 8080));
    assert!(!passes(&t, src, ip("x", "b"), TCP, 80));
    assert!(passes(&t, src, ip("z", "c"), TCP, 80));
    // A named port on an ipBlock peer resolves to nothing.
    assert!(!passes(
        &t,
        src,
        Ipv4Addr::new(1, 1, 1, 1),
        L4Proto::Udp,
        80
    ));
    assert!(!passes(&t, src, Ipv4Addr::new(1, 1, 1, 1), TCP, 80));
}

#[test]
fn implied_policy_types_and_union() {
    // Egress rules present, no policyTypes: Ingress and Egress.
    let p = policy(
        "y",
        "e",
        "  podSelector: {}\n  egress: [{to: [{podSelector: {matchLabels: {app: b}}}]}]",
    );
    let q = policy("y", "f", "  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 8.8.8.8/32}}], ports: [{protocol: UDP, port: 53}]}]");
    let (t, _) = compile_on(NODE, &format!("{p}{q}"));
    let src = ip("y", "a");
    assert!(isolated(&t, Direction::Ingress, src));
    assert!(passes(&t, src, ip("y", "b"), L4Proto::Udp, 9));
    assert!(passes(&t, src, Ipv4Addr::new(8, 8, 8, 8), L4Proto::Udp, 53));
    assert!(!passes(
        &t,
        src,
        Ipv4Addr::new(8, 8, 8, 8),
        L4Proto::Udp,
        54
    ));
    assert!(!passes(&t, src, ip("x", "b"), TCP, 80));
    // policyTypes: [] is defaulted like a missing list.
    let (t, _) = compile_on(
        NODE,
        &policy("y", "h", "  podSelector: {}\n  policyTypes: []"),
    );
    assert!(isolated(&t, Direction::Ingress, src) && !isolated(&t, Direction::Egress, src));
    // Only ingress, no egress rules and no types: Ingress only.
    let (t, _) = compile_on(NODE, &policy("y", "g", "  podSelector: {}\n  egress: []"));
    assert!(isolated(&t, Direction::Ingress, src) && !isolated(&t, Direction::Egress, src));
}

#[test]
fn bad_input_is_a_warning_and_fails_closed() {
    let bad = policy(
        "x",
        "bad",
        "  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/8]}}]\n  - ports: [{protocol: ICMP}]",
    );
    let (t, w) = compile_on(NODE, &bad);
    assert!(isolated(&t, Direction::Ingress, ip("x", "a")));
    assert!(!passes(&t, ip("y", "a"), ip("x", "a"), TCP, 80));
    let text = w.join("\n");
    assert!(
        text.contains("spec.ingress[0].from[0].ipBlock.except[0] 11.0.0.0/8 is not inside"),
        "{text}"
    );
    assert!(
        text.contains("spec.ingress[1].ports[0].protocol \"ICMP\""),
        "{text}"
    );
    let (t, w) = compile_on(
        NODE,
        &policy(
            "x",
            "sel",
            "  podSelector: {matchExpressions: [{key: a, operator: Is}]}",
        ),
    );
    assert!(!isolated(&t, Direction::Ingress, ip("x", "a")));
    assert!(
        w[0].contains("NetworkPolicy x/sel: spec.podSelector.matchExpressions[0].operator \"Is\""),
        "{w:?}"
    );
}

#[test]
fn counter_names_round_trip() {
    assert_eq!(
        counter_name("ns", "a.b", Direction::Ingress),
        "pol-in.ns.a.b"
    );
    assert_eq!(
        parse_counter_name("pol-in.ns.a.b"),
        Some(("ns/a.b".into(), Direction::Ingress))
    );
    assert_eq!(
        parse_counter_name("pol-eg.ns.x"),
        Some(("ns/x".into(), Direction::Egress))
    );
    assert_eq!(parse_counter_name("other"), None);
    let long = "p".repeat(253);
    let c = counter_name("ns", &long, Direction::Egress);
    assert!(c.len() <= 255 && c.starts_with("pol-eg.ns.h"), "{c}");
}

/// 1,000 policies selecting one pod: the drop chain's counters are spread
/// over rules the kernel accepts (at most 128 expressions each).
#[test]
fn a_pod_selected_by_a_thousand_policies() {
    let many: String = (0..1000)
        .map(|i| policy("x", &format!("p{i}"), &format!("  podSelector: {{matchLabels: {{app: a}}}}\n  ingress: [{{ports: [{{port: {}}}]}}]", 1000 + i)))
        .collect();
    let (t, w) = compile_on(NODE, &many);
    assert!(w.is_empty(), "{w:?}");
    let reasons = drop_reasons(&t);
    assert_eq!(reasons.len(), 1);
    assert_eq!(reasons[0].2.len(), 1000);
    assert!(passes(&t, ip("y", "a"), ip("x", "a"), TCP, 1999));
    assert!(!passes(&t, ip("y", "a"), ip("x", "a"), TCP, 2000));
    let chain = t
        .chains
        .iter()
        .find(|c| c.name.starts_with("in-drop-"))
        .unwrap();
    assert!(chain
        .rules
        .iter()
        .all(|r| r.statements.len() <= crate::nft::MAX_RULE_STATEMENTS));
    match strait_kernel::nft::check(&crate::nft::render(&t)) {
        Ok(()) => {}
        Err(strait_kernel::nft::NftError::Rejected(m)) if !m.contains("not permitted") => {
            panic!("nft -c rejected the table: {m}")
        }
        Err(e) => eprintln!("skipping the nft check: {e}"),
    }
}
