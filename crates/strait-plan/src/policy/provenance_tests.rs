//! Which policy and rule decide one packet.

use super::*;
use strait_model::parse_manifests;

/// Namespaces x and y (team=blue); pods a and b in each (app=<name>),
/// x/b names its port 8080 "http".
fn snap(policies: &str) -> Snapshot {
    let mut text = String::from(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {name: y, labels: {team: blue}}\n---\n",
    );
    for (n, ns) in ["x", "y"].iter().enumerate() {
        for (m, pod) in ["a", "b"].iter().enumerate() {
            let port = if *ns == "x" && *pod == "b" { 8080 } else { 80 };
            text.push_str(&format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: {ns}, labels: {{app: {pod}}}}}\n\
                 spec:\n  nodeName: n1\n  containers:\n  - name: c\n    ports: [{{name: http, containerPort: {port}}}]\n\
                 status: {{podIP: 10.42.{}.{}}}\n---\n",
                n + 1,
                m + 1
            ));
        }
    }
    text.push_str(policies);
    Snapshot::from_objects(parse_manifests(&text, "test").unwrap())
}

const XA: Ipv4Addr = Ipv4Addr::new(10, 42, 1, 1);
const XB: Ipv4Addr = Ipv4Addr::new(10, 42, 1, 2);
const YA: Ipv4Addr = Ipv4Addr::new(10, 42, 2, 1);
const YB: Ipv4Addr = Ipv4Addr::new(10, 42, 2, 2);

const DENY_ALL: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
    metadata: {name: deny-all, namespace: x}\nspec: {podSelector: {}}\n---\n";

/// Two rules: ingress[0] from pods of x on tcp/80, ingress[1] from
/// namespace team=blue on the named port http.
const ALLOW: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
    metadata: {name: allow-web, namespace: x}\nspec:\n  podSelector: {matchLabels: {app: b}}\n  ingress:\n  \
    - from: [{podSelector: {}}]\n    ports: [{port: 80}]\n  \
    - from: [{namespaceSelector: {matchLabels: {team: blue}}}]\n    ports: [{port: http}]\n---\n";

fn decide_in(s: &Snapshot, src: Ipv4Addr, dst: Ipv4Addr, port: u16) -> Decision {
    decide(s, Direction::Ingress, src, dst, L4Proto::Tcp, port).unwrap()
}

#[test]
fn drop_names_every_selecting_policy() {
    let s = snap(&format!("{DENY_ALL}{ALLOW}"));
    let d = decide_in(&s, YB, XB, 81);
    assert_eq!(d.pod, "x/b");
    assert_eq!(d.selecting, vec!["x/allow-web", "x/deny-all"]);
    assert_eq!(d.allowed_by, None);
    assert!(!d.allowed());
    assert_eq!(d.summary(), "selected by x/allow-web, x/deny-all (ingress)");
}

#[test]
fn allow_names_the_first_rule_that_allows() {
    let s = snap(&format!("{DENY_ALL}{ALLOW}"));
    // From x/a on 80: rule 0 (pods of x).
    let d = decide_in(&s, XA, XB, 80);
    assert_eq!(
        d.allowed_by,
        Some(AllowedBy {
            policy: "x/allow-web".into(),
            rule: 0
        })
    );
    assert_eq!(
        d.summary(),
        "allowed by x/allow-web ingress rule 1 (spec.ingress[0])"
    );
    // From y/a on 8080 (x/b's "http"): rule 1 (namespace team=blue).
    let d = decide_in(&s, YA, XB, 8080);
    assert_eq!(d.allowed_by.unwrap().rule, 1);
    // From y/a on 80: rule 0 wants pods of x, rule 1 the named port.
    assert_eq!(decide_in(&s, YA, XB, 80).allowed_by, None);
    // x/a is selected by deny-all only.
    let d = decide_in(&s, XB, XA, 80);
    assert_eq!(d.selecting, vec!["x/deny-all"]);
    assert!(!d.allowed());
}

#[test]
fn unselected_pods_and_other_directions() {
    let s = snap(ALLOW);
    // y/b is selected by nothing: not isolated, allowed.
    let d = decide_in(&s, XA, YB, 80);
    assert!(d.selecting.is_empty() && d.allowed());
    // The policy has no egress: x/b's egress is free.
    let d = decide(&s, Direction::Egress, XB, YB, L4Proto::Udp, 53).unwrap();
    assert!(d.selecting.is_empty());
    // Not a pod.
    assert!(decide(
        &s,
        Direction::Ingress,
        XA,
        Ipv4Addr::new(192, 168, 0, 9),
        L4Proto::Tcp,
        80
    )
    .is_none());
}

#[test]
fn ip_block_except_and_icmp() {
    let s = snap(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {name: out, namespace: x}\nspec:\n  podSelector: {matchLabels: {app: a}}\n  policyTypes: [Egress]\n  egress:\n  \
         - to: [{ipBlock: {cidr: 10.42.0.0/16, except: [10.42.2.0/24]}}]\n    ports: [{port: 80}]\n  \
         - to: [{podSelector: {matchLabels: {app: b}}}]\n---\n",
    );
    let eg = |dst, proto, port| decide(&s, Direction::Egress, XA, dst, proto, port).unwrap();
    assert_eq!(eg(XB, L4Proto::Tcp, 80).allowed_by.unwrap().rule, 0);
    // x/b on 81: only rule 1 (no ports: everything, ICMP too).
    assert_eq!(eg(XB, L4Proto::Tcp, 81).allowed_by.unwrap().rule, 1);
    assert_eq!(eg(XB, L4Proto::Icmp, 0).allowed_by.unwrap().rule, 1);
    // y/a is in the except and not app=b in x.
    assert!(!eg(YA, L4Proto::Tcp, 80).allowed());
    // ICMP to 10.42.1.9: rule 0 has ports, so no.
    assert!(!eg(Ipv4Addr::new(10, 42, 1, 9), L4Proto::Icmp, 0).allowed());
    assert!(eg(Ipv4Addr::new(10, 42, 1, 9), L4Proto::Tcp, 80).allowed());
}

#[test]
fn end_port_ranges_and_egress_named_ports_of_the_peer() {
    let s = snap(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {name: out, namespace: y}\nspec:\n  podSelector: {matchLabels: {app: a}}\n  policyTypes: [Egress]\n  egress:\n  \
         - ports: [{port: 1000, endPort: 1010, protocol: UDP}]\n  \
         - to: [{namespaceSelector: {}}]\n    ports: [{port: http}]\n---\n",
    );
    let eg = |dst, proto, port| decide(&s, Direction::Egress, YA, dst, proto, port).unwrap();
    // endPort: 1000-1010 over UDP to anyone, not TCP, not 1011.
    assert_eq!(eg(XA, L4Proto::Udp, 1005).allowed_by.unwrap().rule, 0);
    assert!(!eg(XA, L4Proto::Udp, 1011).allowed());
    assert!(!eg(XA, L4Proto::Tcp, 1005).allowed());
    // "http" is the peer's port: 8080 on x/b, 80 on x/a.
    assert_eq!(eg(XB, L4Proto::Tcp, 8080).allowed_by.unwrap().rule, 1);
    assert!(!eg(XB, L4Proto::Tcp, 80).allowed());
    assert_eq!(eg(XA, L4Proto::Tcp, 80).allowed_by.unwrap().rule, 1);
    // Not a pod: a named port resolves to nothing.
    assert!(!eg(Ipv4Addr::new(192, 168, 0, 9), L4Proto::Tcp, 80).allowed());
}
