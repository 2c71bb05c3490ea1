//! Traces over Plans compiled by strait-plan from a two-node cluster like
//! the lab's (no root, no kernel).

use super::*;
use crate::world::{BoxView, World};
use strait_model::{parse_manifests, AgentConfig, Snapshot};
use strait_plan::{LocalNode, RoutePlan};

const NODES: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: node-1}
spec: {podCIDR: 10.42.1.0/24, podCIDRs: [10.42.1.0/24]}
status: {addresses: [{type: InternalIP, address: 192.168.1.11}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-2}
spec: {podCIDR: 10.42.2.0/24, podCIDRs: [10.42.2.0/24]}
status: {addresses: [{type: InternalIP, address: 192.168.1.12}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo, labels: {app: client}}
spec: {nodeName: node-1, containers: [{name: c, image: x, ports: [{containerPort: 80}]}]}
status: {podIP: 10.42.1.3}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: demo, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, image: x, ports: [{containerPort: 8080}]}]}
status: {podIP: 10.42.1.4}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: demo, labels: {app: web}}
spec: {nodeName: node-2, containers: [{name: c, image: x, ports: [{containerPort: 8080}]}]}
status: {podIP: 10.42.2.5}
---
apiVersion: v1
kind: Pod
metadata: {name: hostpod, namespace: demo}
spec: {nodeName: node-1, hostNetwork: true, containers: [{name: c, image: x}]}
status: {podIP: 192.168.1.11}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  type: NodePort
  clusterIP: 10.43.0.10
  externalIPs: [192.168.2.200]
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: demo, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080, protocol: TCP, name: ""}]
endpoints:
- {addresses: [10.42.1.4], nodeName: node-1, conditions: {ready: true}}
- {addresses: [10.42.2.5], nodeName: node-2, conditions: {ready: true}}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: demo}
spec:
  clusterIP: 10.43.0.20
  ports: [{port: 80}]
"#;

fn local(name: &str, ip: [u8; 4]) -> LocalNode {
    LocalNode {
        name: name.into(),
        underlay_ip: ip.into(),
        underlay_prefix: 24,
        underlay_dev: "eth0".into(),
        underlay_mtu: 1500,
    }
}

/// The lab's default topology as a World: two nodes with a static route to
/// 192.168.2.0/24, the router, legacy-db at 192.168.2.10.
fn world(config: &str, node_route: bool, router_routes: Vec<(&str, &str)>) -> World {
    let cfg = AgentConfig::from_yaml(config).unwrap();
    let snap = Snapshot::from_objects(parse_manifests(NODES, "test").unwrap());
    let mut w = World::from_cluster(&cfg, &snap, &local("node-1", [192, 168, 1, 11])).unwrap();
    assert_eq!(w.nodes.len(), 2);
    if node_route {
        for n in &mut w.nodes {
            n.host_routes.push(RoutePlan {
                dst: "192.168.2.0/24".parse().unwrap(),
                gateway: Some("192.168.1.1".parse().unwrap()),
                dev: None,
                onlink: false,
            });
        }
    }
    w.boxes.push(BoxView {
        name: "router".into(),
        kind: "router".into(),
        addresses: vec![
            "192.168.1.1/24".parse().unwrap(),
            "192.168.2.1/24".parse().unwrap(),
        ],
        routes: router_routes
            .iter()
            .map(|(to, via)| (to.parse().unwrap(), via.parse().unwrap()))
            .collect(),
        forwards: true,
        listens: vec![],
    });
    w.boxes.push(BoxView {
        name: "legacy-db".into(),
        kind: "host".into(),
        addresses: vec!["192.168.2.10/24".parse().unwrap()],
        routes: vec![("0.0.0.0/0".parse().unwrap(), "192.168.2.1".parse().unwrap())],
        forwards: false,
        listens: vec![(L4Proto::Tcp, 80), (L4Proto::Udp, 80)],
    });
    w
}

const VXLAN: &str = "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\n";
const HOST_GW: &str = "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\nbackend: host-gw\n";
const NO_MASQ: &str =
    "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\nnonMasqueradeCIDRs: [192.168.2.0/24]\n";

fn run(w: &World, from: &str, to: &str, proto: L4Proto, port: u16) -> Trace {
    trace(w, from, to, proto, port, Options::default()).unwrap()
}

fn has(t: &Trace, kind: &str, text: &str) -> bool {
    t.steps
        .iter()
        .chain(&t.reply)
        .any(|s| s.kind == kind && s.detail.contains(text))
}

#[test]
fn pod_to_pod_over_vxlan_is_answered() {
    let w = world(VXLAN, true, vec![]);
    let t = run(&w, "demo/client", "demo/web-2", L4Proto::Tcp, 8080);
    assert!(t.verdict.answered(), "{}", t.human());
    assert!(has(&t, "vxlan", "VTEP 192.168.1.12"), "{}", t.human());
    assert!(has(&t, "vxlan", "decapsulated on strait.vxlan"));
    // The forward chain's accept for pod traffic is named.
    assert!(t.steps.iter().any(|s| s.kind == "forward"
        && s.rules
            .iter()
            .any(|h| h.comment.as_deref() == Some("from pods"))));
    // And the answer comes back the same way.
    assert!(t
        .reply
        .iter()
        .any(|s| s.detail.contains("VTEP 192.168.1.11")));
}

#[test]
fn closed_port_is_refused_and_icmp_is_answered() {
    let w = world(VXLAN, true, vec![]);
    let t = run(&w, "demo/client", "demo/web-2", L4Proto::Tcp, 81);
    assert_eq!(t.verdict.word(), "refused", "{}", t.human());
    let t = run(&w, "demo/client", "demo/web-2", L4Proto::Icmp, 0);
    assert!(t.verdict.answered(), "{}", t.human());
}

#[test]
fn cluster_ip_shows_dispatch_dnat_and_the_other_endpoints() {
    let w = world(VXLAN, true, vec![]);
    let t = run(&w, "demo/client", "svc/demo/web", L4Proto::Tcp, 80);
    assert!(t.verdict.answered(), "{}", t.human());
    let pre: Vec<&str> = t
        .steps
        .iter()
        .filter(|s| s.kind == "prerouting")
        .flat_map(|s| s.rules.iter().map(|h| h.effect.as_str()))
        .collect();
    assert!(
        pre.iter()
            .any(|e| e.starts_with("@service-ips: 10.43.0.10 . tcp . 80")),
        "{pre:?}"
    );
    assert!(
        pre.iter().any(|e| e.contains("dnat to 10.42.1.4:8080")
            && e.contains("could also have been 10.42.2.5:8080")),
        "{pre:?}"
    );
    // The trace follows the other endpoint too: same outcome.
    assert_eq!(t.endpoint.as_deref(), Some("10.42.1.4:8080"));
    assert_eq!(t.other_picks.len(), 1, "{}", t.human());
    assert_eq!(t.other_picks[0].endpoint.as_deref(), Some("10.42.2.5:8080"));
    assert!(t.other_picks[0].verdict.answered());
    assert!(!t.human().contains("depends on the endpoint"));
    // The other pick goes over VXLAN to web-2.
    let t2 = trace(
        &w,
        "demo/client",
        "svc/demo/web",
        L4Proto::Tcp,
        80,
        Options { pick: 1 },
    )
    .unwrap();
    assert!(t2.verdict.answered());
    assert!(has(&t2, "vxlan", "VTEP 192.168.1.12"), "{}", t2.human());
    // The reply's source is turned back into the ClusterIP by conntrack.
    assert!(has(&t2, "conntrack", "NAT undone"), "{}", t2.human());
}

#[test]
fn service_without_endpoints_is_rejected() {
    let w = world(VXLAN, true, vec![]);
    let t = run(&w, "demo/client", "svc/demo/empty", L4Proto::Tcp, 80);
    match &t.verdict {
        Verdict::Refused { reason, .. } => assert!(reason.contains("reject-chain"), "{reason}"),
        other => panic!("{other:?}\n{}", t.human()),
    }
}

#[test]
fn egress_is_masqueraded_and_answered() {
    let w = world(VXLAN, true, vec![]);
    let t = run(&w, "demo/client", "192.168.2.10", L4Proto::Tcp, 80);
    assert!(t.verdict.answered(), "{}", t.human());
    assert!(has(&t, "snat", "becomes 192.168.1.11"), "{}", t.human());
    assert!(has(
        &t,
        "route",
        "192.168.2.0/24 via 192.168.1.1 (node route)"
    ));
}

#[test]
fn no_masquerade_and_no_route_back_points_at_the_router() {
    let w = world(NO_MASQ, true, vec![]);
    let t = run(&w, "demo/client", "host/legacy-db", L4Proto::Tcp, 80);
    match &t.verdict {
        Verdict::NoReply { at, reason } => {
            assert_eq!(at, "router");
            assert!(reason.contains("no route to 10.42.1.3"), "{reason}");
        }
        other => panic!("{other:?}\n{}", t.human()),
    }
    // With the route back on the router, it is answered with the pod's address.
    let w = world(NO_MASQ, true, vec![("10.42.0.0/16", "192.168.1.11")]);
    let t = run(&w, "demo/client", "host/legacy-db", L4Proto::Tcp, 80);
    assert!(t.verdict.answered(), "{}", t.human());
    assert!(!has(&t, "snat", ""));
}

#[test]
fn missing_node_route_points_at_the_route_lookup() {
    let w = world(VXLAN, false, vec![]);
    let t = run(&w, "demo/client", "192.168.2.10", L4Proto::Tcp, 80);
    match &t.verdict {
        Verdict::Dropped { at, reason } => {
            assert_eq!(at, "node/node-1");
            assert!(reason.contains("route lookup"), "{reason}");
        }
        other => panic!("{other:?}\n{}", t.human()),
    }
}

#[test]
fn host_network_pod_to_external_ip_is_dnated_in_output() {
    let w = world(VXLAN, true, vec![]);
    let t = run(&w, "demo/hostpod", "192.168.2.200", L4Proto::Tcp, 80);
    assert!(t.verdict.answered(), "{}", t.human());
    let out = t
        .steps
        .iter()
        .find(|s| s.kind == "output")
        .expect("output hook");
    assert!(
        out.rules.iter().any(|h| h.effect.contains("dnat to")),
        "{}",
        t.human()
    );
    assert!(has(&t, "reroute", "after DNAT"));
}

#[test]
fn host_gw_goes_over_the_underlay() {
    let w = world(HOST_GW, true, vec![]);
    let t = run(&w, "demo/client", "demo/web-2", L4Proto::Tcp, 8080);
    assert!(t.verdict.answered(), "{}", t.human());
    assert!(
        has(&t, "wire", "192.168.1.12 (node/node-2)"),
        "{}",
        t.human()
    );
}

#[test]
fn from_outside_to_external_ip_and_unknown_names() {
    let w = world(VXLAN, true, vec![]);
    // legacy-db -> 192.168.2.200: the router has no route to it (nothing
    // announces external IPs in the lab).
    let t = run(&w, "host/legacy-db", "192.168.2.200", L4Proto::Tcp, 80);
    assert!(!t.verdict.answered());
    let err = trace(
        &w,
        "nobody/here",
        "demo/web-2",
        L4Proto::Tcp,
        80,
        Options::default(),
    )
    .unwrap_err();
    assert!(err.contains("nobody/here"), "{err}");
    let err = trace(
        &w,
        "demo/client",
        "demo/web-2",
        L4Proto::Tcp,
        0,
        Options::default(),
    )
    .unwrap_err();
    assert!(err.contains("--port"), "{err}");
    // JSON has the verdict tagged.
    let t = run(&w, "demo/client", "demo/web-2", L4Proto::Tcp, 8080);
    let j = serde_json::to_value(&t).unwrap();
    assert_eq!(j["verdict"]["result"], "answered");
}

#[test]
fn node_to_its_own_node_port_is_dnated_in_output() {
    // Found by the lab property test: a local destination still passes
    // the output hook.
    let w = world(VXLAN, true, vec![]);
    let t = run(&w, "demo/hostpod", "192.168.1.11", L4Proto::Tcp, 30080);
    assert!(t.verdict.answered(), "{}", t.human());
    assert!(has(&t, "route", "is local (dev lo)"));
    let out = t
        .steps
        .iter()
        .find(|s| s.kind == "output")
        .expect("output hook");
    assert!(
        out.rules
            .iter()
            .any(|h| h.effect.contains("@service-nodeports")),
        "{}",
        t.human()
    );
    // Not a NodePort: delivered to the node itself, where nothing listens.
    let t = run(&w, "demo/hostpod", "192.168.1.11", L4Proto::Tcp, 30081);
    assert_eq!(t.verdict.word(), "refused", "{}", t.human());
}

#[test]
fn ptp_host_route_delivers_over_the_pods_veth() {
    let mut w = world(VXLAN, true, vec![]);
    // strait-cni in ptp mode: a /32 route to the pod over its host veth.
    w.nodes[0].host_routes.push(RoutePlan {
        dst: "10.42.1.4/32".parse().unwrap(),
        gateway: None,
        dev: Some("veth1234".into()),
        onlink: false,
    });
    let t = run(&w, "demo/web-2", "demo/web-1", L4Proto::Tcp, 8080);
    assert!(t.verdict.answered(), "{}", t.human());
    assert!(
        has(&t, "ptp", "veth1234 -> pod/demo/web-1"),
        "{}",
        t.human()
    );
}

#[test]
fn a_pod_reaches_itself_over_loopback() {
    let w = world(VXLAN, true, vec![]);
    let t = run(&w, "demo/web-1", "demo/web-1", L4Proto::Icmp, 0);
    assert!(t.verdict.answered(), "{}", t.human());
    assert!(has(&t, "send", "to itself, over lo"));
    assert!(
        !t.steps.iter().any(|s| s.at.starts_with("node/")),
        "{}",
        t.human()
    );
    let t = run(&w, "demo/web-1", "demo/web-1", L4Proto::Tcp, 81);
    assert_eq!(t.verdict.word(), "refused");
}

#[test]
fn network_policy_drop_names_the_policy_and_allow_passes() {
    let cfg = AgentConfig::from_yaml(VXLAN).unwrap();
    let policy = "
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-client, namespace: demo}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 8080}]
";
    let text = format!("{NODES}{policy}");
    let snap = Snapshot::from_objects(parse_manifests(&text, "test").unwrap());
    let w = World::from_cluster(&cfg, &snap, &local("node-1", [192, 168, 1, 11])).unwrap();
    // Allowed: client -> web-2 on 8080 (checked on node-2, ingress).
    let t = run(&w, "demo/client", "demo/web-2", L4Proto::Tcp, 8080);
    assert!(t.verdict.answered(), "{}", t.human());
    assert!(
        t.human().contains("NetworkPolicy ingress: 10.42.2.5 (pod/demo/web-2) from 10.42.1.3 (pod/demo/client) on tcp/8080: allowed by demo/web-from-client ingress rule 1 (spec.ingress[0])"),
        "{}",
        t.human()
    );
    // Not allowed: web-1 -> web-2, and client on another port.
    for (from, port) in [("demo/web-1", 8080), ("demo/client", 81)] {
        let t = run(&w, from, "demo/web-2", L4Proto::Tcp, port);
        match &t.verdict {
            Verdict::Dropped { at, reason } => {
                assert_eq!(at, "node/node-2", "{}", t.human());
                assert!(
                    reason.contains("10.42.2.5 (pod/demo/web-2) is selected by demo/web-from-client (ingress); no rule allows"),
                    "{reason}"
                );
                assert!(reason.contains(&format!("on tcp/{port}")), "{reason}");
            }
            other => panic!("{other:?}\n{}", t.human()),
        }
    }
}

/// Over every pod pair and a few ports, with policies in both directions:
/// wherever the compiled table (run by the interpreter) enters a policy
/// chain, the snapshot's evaluation agrees with its verdict: an accept
/// names the rule that allowed it, a drop every policy selecting the pod.
#[test]
fn policy_provenance_agrees_with_the_compiled_table() {
    let cfg = AgentConfig::from_yaml(VXLAN).unwrap();
    let policies = "
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: demo}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in, namespace: demo}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 8080}]
  - from: [{podSelector: {matchLabels: {app: web}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-out, namespace: demo}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.42.1.0/24}}]
";
    let text = format!("{NODES}{policies}");
    let snap = Snapshot::from_objects(parse_manifests(&text, "test").unwrap());
    let w = World::from_cluster(&cfg, &snap, &local("node-1", [192, 168, 1, 11])).unwrap();
    let pods = ["demo/client", "demo/web-1", "demo/web-2"];
    let (mut allowed, mut dropped) = (0, 0);
    for from in pods {
        for to in pods.iter().filter(|t| **t != from) {
            for (proto, port) in [(L4Proto::Tcp, 8080), (L4Proto::Tcp, 81), (L4Proto::Icmp, 0)] {
                let t = run(&w, from, to, proto, port);
                let text = t.human();
                match &t.verdict {
                    Verdict::Dropped { reason, .. } => {
                        assert!(reason.contains("NetworkPolicy: "), "{text}");
                        if reason.contains("(ingress)") {
                            assert!(reason.contains("is selected by demo/deny-all"), "{text}");
                        } else {
                            assert!(
                                reason.contains("is selected by demo/web-out (egress)"),
                                "{text}"
                            );
                        }
                        dropped += 1;
                    }
                    _ => {
                        // Every isolated pod's traffic names its rule.
                        for line in text.lines().filter(|l| l.contains("NetworkPolicy ")) {
                            assert!(line.contains(": allowed by demo/web-"), "{text}");
                            allowed += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(
        allowed >= 4 && dropped >= 4,
        "allowed {allowed} dropped {dropped}"
    );
}
