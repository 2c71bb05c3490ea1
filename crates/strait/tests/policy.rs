//! NetworkPolicy end to end (issue 5): the truth-table suite on both
//! backends, modelled on the upstream Kubernetes netpol e2e (see
//! tests/netpol/mod.rs for the model). Each case states the Kubernetes
//! semantics it expects in its table; every difference strait shows is
//! collected and the test fails listing them all.

mod common;
mod netpol;

use netpol::{all_pods, pod, Reach, Suite};
use strait_lab::topology::Backend;

/// A NetworkPolicy document; `spec` is the YAML of its spec, indented by
/// two spaces.
fn np(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}\n---\n"
    )
}

fn pods_in(ns: &str) -> Vec<String> {
    netpol::PODS.iter().map(|p| format!("{ns}/{p}")).collect()
}

fn truth_tables(backend: Backend) {
    let mut s = Suite::up(backend);

    // The lab labels implied namespaces as the API server would.
    let h = std::fs::read_to_string(
        s.lab
            .cluster
            .manifests(s.lab_name())
            .join("namespace.h.json"),
    )
    .expect("the lab created namespace h for the hostNetwork pod");
    assert!(h.contains("\"kubernetes.io/metadata.name\": \"h\""), "{h}");

    s.case("no policies: everything reaches", "", &[Reach::pods()]);

    // --- default deny ------------------------------------------------------
    let deny_ingress_x = np("x", "deny-ingress", "  podSelector: {}");
    let mut r = Reach::pods();
    for p in pods_in("x") {
        r.all_ingress(&p, false);
    }
    r.allow_loopback();
    // Traffic from the pod's own node is always allowed (kubelet probes);
    // from another node it is not.
    let mut nodes = Reach::new(
        vec!["node/node-1".into(), "node/node-2".into()],
        pods_in("x").iter().map(|p| pod(p)).collect(),
        &netpol::PORTS,
        &netpol::protos(),
    );
    for p in pods_in("x") {
        let (ns, name) = p.split_once('/').unwrap();
        let own = format!("node/{}", netpol::node_of(ns, name));
        let to = pod(&p);
        nodes.set(false, |c| c.to == to && c.from != own);
    }
    s.case(
        "default-deny ingress in x (implied policyTypes); own node allowed",
        &deny_ingress_x,
        &[r.clone(), nodes],
    );
    // Denied packets are counted per policy and logged naming it (x/a is on
    // node-1, so node-1 dropped probes to it).
    s.expect_drop_evidence(
        "default-deny ingress: drops counted and logged",
        "node-1",
        "x/deny-ingress",
        "ingress",
        "to pod x/a",
    );
    // Fail closed: while node-1's agent is down (and after it is back),
    // what was denied stays denied.
    s.restart_agent(
        "default-deny ingress: node-1's agent restarts",
        "node-1",
        &r,
    );

    let mut r = Reach::pods();
    for p in pods_in("x") {
        r.all_egress(&p, false);
    }
    r.allow_loopback();
    s.case(
        "default-deny egress in x",
        &np(
            "x",
            "deny-egress",
            "  podSelector: {}\n  policyTypes: [Egress]",
        ),
        &[r],
    );

    // Stateful: replies of allowed connections pass whatever the reverse
    // direction says. x/a may not start anything, y/b may not receive
    // anything; connections into x/a and out of y/b still work.
    let mut r = Reach::pods();
    r.all_egress("x/a", false)
        .all_ingress("y/b", false)
        .allow_loopback();
    s.case(
        "stateful replies: egress-deny x/a, ingress-deny y/b",
        &(np(
            "x",
            "a-no-egress",
            "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress: []",
        ) + &np(
            "y",
            "b-no-ingress",
            "  podSelector: {matchLabels: {pod: b}}\n  policyTypes: [Ingress]\n  ingress: []",
        )),
        &[r],
    );

    // --- peers ---------------------------------------------------------------
    let mut r = Reach::pods();
    for to in pods_in("x") {
        for from in all_pods() {
            if !from.starts_with("pod/x/") {
                r.set(false, |c| c.from == from && c.to == pod(&to));
            }
        }
    }
    s.case(
        "allow from the same namespace (podSelector {} peer)",
        &np(
            "x",
            "same-ns",
            "  podSelector: {}\n  ingress:\n  - from: [{podSelector: {}}]",
        ),
        &[r],
    );

    let mut r = Reach::pods();
    r.all_ingress("x/a", false);
    for p in pods_in("z") {
        r.expect(&p, "x/a", true);
    }
    r.allow_loopback();
    s.case(
        "allow from a namespace by kubernetes.io/metadata.name",
        &np(
            "x",
            "from-z",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}]",
        ),
        &[r],
    );

    let mut r = Reach::pods();
    r.all_ingress("x/a", false)
        .expect("y/b", "x/a", true)
        .allow_loopback();
    s.case(
        "namespaceSelector AND podSelector in one peer",
        &np(
            "x",
            "and",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {ns: y}}\n      podSelector: {matchLabels: {pod: b}}",
        ),
        &[r],
    );

    let mut r = Reach::pods();
    r.all_ingress("x/a", false);
    for p in pods_in("y") {
        r.expect(&p, "x/a", true);
    }
    // A podSelector alone selects in the policy's own namespace.
    r.expect("x/b", "x/a", true).allow_loopback();
    s.case(
        "namespaceSelector OR podSelector (two peers)",
        &np(
            "x",
            "or",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {ns: y}}\n    - podSelector: {matchLabels: {pod: b}}",
        ),
        &[r],
    );

    let mut r = Reach::pods();
    for to in ["x/b", "x/c"] {
        for from in pods_in("y") {
            r.expect(&from, to, false);
        }
    }
    s.case(
        "matchExpressions on pods (In) and namespaces (NotIn)",
        &np(
            "x",
            "exprs",
            "  podSelector: {matchExpressions: [{key: pod, operator: In, values: [b, c]}]}\n  ingress:\n  - from: [{namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [y]}]}}]",
        ),
        &[r],
    );

    // --- ipBlock -------------------------------------------------------------
    // Pod CIDRs of the default topology: node-1 10.42.1.0/24, node-2
    // 10.42.2.0/24 (pods spread over both, see netpol::node_of).
    let cidrs = s.lab.topo.pod_cidrs().unwrap();
    let node2_cidr = cidrs[1].to_string();
    let (yb, ya) = (s.ip("y/b"), s.ip("y/a"));
    let mut r = Reach::pods();
    // x/a may reach 10.42.0.0/16 except node-2's pods and y/b.
    for to in all_pods() {
        let short = to.trim_start_matches("pod/").to_owned();
        let (ns, name) = short.split_once('/').unwrap();
        if netpol::node_of(ns, name) == "node-2" || short == "y/b" {
            r.expect("x/a", &short, false);
        }
    }
    // z/a accepts 10.42.0.0/16 except y/a.
    r.expect("y/a", "z/a", false).allow_loopback();
    s.case(
        "ipBlock with except (egress: a CIDR and a /32; ingress: a /32)",
        &(np(
            "x",
            "egress-cidr",
            &format!("  podSelector: {{matchLabels: {{pod: a}}}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{{ipBlock: {{cidr: 10.42.0.0/16, except: [{node2_cidr}, {yb}/32]}}}}]"),
        ) + &np(
            "z",
            "ingress-cidr",
            &format!("  podSelector: {{matchLabels: {{pod: a}}}}\n  ingress:\n  - from: [{{ipBlock: {{cidr: 10.42.0.0/16, except: [{ya}/32]}}}}]"),
        )),
        &[r],
    );

    // --- ports ---------------------------------------------------------------
    let mut r = Reach::pods();
    r.set(false, |c| {
        c.to == "pod/x/a" && !(c.port == 81 && c.proto == "tcp")
    })
    .allow_loopback();
    s.case(
        "numeric port and protocol: only TCP 81 into x/a",
        &np(
            "x",
            "tcp-81",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - ports: [{port: 81, protocol: TCP}]",
        ),
        &[r],
    );

    let mut r = Reach::pods();
    r.set(false, |c| c.to == "pod/x/a" && c.proto != "udp")
        .allow_loopback();
    s.case(
        "protocol only: UDP (any port) into x/a, no TCP (nor SCTP)",
        &np(
            "x",
            "udp-only",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - ports: [{protocol: UDP}]",
        ),
        &[r],
    );

    let mut r = Reach::pods();
    r.set(false, |c| {
        c.to == "pod/x/a" && !(c.port == 81 && c.proto == "udp")
    });
    // Named ports in egress resolve on the destination pod.
    r.set(false, |c| {
        c.from == "pod/x/b" && !(c.port == 80 && c.proto == "tcp")
    })
    .allow_loopback();
    s.case(
        "named ports: ingress serve-81-udp into x/a, egress serve-80-tcp from x/b",
        &(np(
            "x",
            "named-in",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - ports: [{port: serve-81-udp, protocol: UDP}]",
        ) + &np(
            "x",
            "named-out",
            "  podSelector: {matchLabels: {pod: b}}\n  policyTypes: [Egress]\n  egress:\n  - ports: [{port: serve-80-tcp}]",
        )),
        &[r],
    );

    let mut r = Reach::pods();
    r.set(false, |c| {
        c.to == "pod/x/a"
            && !((c.port == 80 && c.proto == "tcp") || (c.port == 81 && c.proto == "udp"))
    })
    .allow_loopback();
    s.case(
        "endPort ranges: TCP 79-80 and UDP 81-82 into x/a",
        &np(
            "x",
            "ranges",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - ports:\n    - {protocol: TCP, port: 79, endPort: 80}\n    - {protocol: UDP, port: 81, endPort: 82}",
        ),
        &[r],
    );

    // --- several policies ----------------------------------------------------
    // Upstream's "denying of egress traffic on the client side (even if the
    // server explicitly allows this traffic)".
    let mut r = Reach::pods();
    r.all_egress("x/a", false).expect("x/a", "y/a", true);
    for p in pods_in("y") {
        r.all_ingress(&p, false).expect("x/a", &p, false);
    }
    r.expect("x/a", "y/a", true).allow_loopback();
    s.case(
        "egress deny on the client against an ingress allow on the server",
        &(np(
            "x",
            "a-to-ya",
            "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}\n      podSelector: {matchLabels: {pod: a}}",
        ) + &np(
            "y",
            "from-xa",
            "  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {ns: x}}\n      podSelector: {matchLabels: {pod: a}}",
        )),
        &[r],
    );

    let mut r = Reach::pods();
    r.all_ingress("x/a", false).expect("x/b", "x/a", true);
    for p in pods_in("y") {
        let from = pod(&p);
        r.set(true, |c| {
            c.from == from && c.to == "pod/x/a" && c.port == 80 && c.proto == "tcp"
        });
    }
    r.allow_loopback();
    s.case(
        "union of two policies on x/a (x/b on any port; ns y on TCP 80)",
        &(np(
            "x",
            "from-b",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {pod: b}}}]",
        ) + &np(
            "x",
            "from-y-80",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {ns: y}}}]\n    ports: [{port: 80, protocol: TCP}]",
        )),
        &[r],
    );

    s.case(
        "allow-all ({} rule) plus deny-all: the union allows",
        &(deny_ingress_x.clone() + &np("x", "allow-all", "  podSelector: {}\n  ingress:\n  - {}")),
        &[Reach::pods()],
    );

    // --- changes -------------------------------------------------------------
    let mut before = Reach::pods();
    before.all_ingress("x/a", false).allow_loopback();
    let policies = np(
        "x",
        "from-clients",
        "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {role: client}}}]",
    ) + &np(
        "x",
        "isolate-marked",
        "  podSelector: {matchLabels: {target: isolated}}\n  policyTypes: [Ingress]",
    );
    s.case(
        "pod labels: before the change",
        &policies,
        &[before.clone()],
    );
    let mut after = before.clone();
    after
        .expect("x/c", "x/a", true)
        .all_ingress("x/b", false)
        .allow_loopback();
    s.change(
        "pod labels: x/c gains role=client, x/b gains target=isolated",
        Some(
            &(netpol::pod_yaml("x", "c", &[("role", "client")])
                + &netpol::pod_yaml("x", "b", &[("target", "isolated")])),
        ),
        None,
        &after,
    );
    s.change(
        "pod labels: back to the model's labels",
        Some(&(netpol::pod_yaml("x", "c", &[]) + &netpol::pod_yaml("x", "b", &[]))),
        None,
        &before,
    );

    let mut before = Reach::pods();
    before.all_ingress("x/a", false).allow_loopback();
    s.case(
        "namespace labels: before the change",
        &np(
            "x",
            "from-blue",
            "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from: [{namespaceSelector: {matchLabels: {team: blue}}}]",
        ),
        &[before.clone()],
    );
    let mut after = before.clone();
    for p in pods_in("z") {
        after.expect(&p, "x/a", true);
    }
    s.change(
        "namespace labels: z gains team=blue",
        Some(&netpol::namespace_yaml("z", &[("team", "blue")])),
        None,
        &after,
    );
    s.change(
        "namespace labels: z loses team=blue",
        Some(&netpol::namespace_yaml("z", &[])),
        None,
        &before,
    );

    let deny_xy = deny_ingress_x.clone() + &np("y", "deny-ingress", "  podSelector: {}");
    let mut r = Reach::pods();
    for p in pods_in("x").into_iter().chain(pods_in("y")) {
        r.all_ingress(&p, false);
    }
    r.allow_loopback();
    s.case("deletion: default-deny in x and y", &deny_xy, &[r]);
    s.change(
        "deletion: both policies deleted, access restored",
        None,
        Some(&deny_xy),
        &Reach::pods(),
    );

    // --- Services, hostNetwork ------------------------------------------------
    // ClusterIP to a selected backend: the policy on x/a sees the client pod
    // (only y/b may connect), not a translated address. x/a itself is left
    // out (hairpin through its own Service is loopback-like and undefined).
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: x}\nspec:\n  selector: {pod: a}\n  ports:\n  - {name: t, port: 80, targetPort: 80}\n  - {name: u, port: 81, targetPort: 81, protocol: UDP}\n---\n\
               apiVersion: v1\nkind: Service\nmetadata: {name: local, namespace: x}\nspec:\n  type: NodePort\n  externalTrafficPolicy: Local\n  selector: {pod: a}\n  ports: [{port: 80, nodePort: 30080}]\n---\n";
    let from_svc: Vec<String> = all_pods().into_iter().filter(|p| p != "pod/x/a").collect();
    let mut tcp = Reach::new(from_svc.clone(), vec!["svc/x/web".into()], &[80], &["tcp"]);
    tcp.set(false, |c| c.from != "pod/y/b");
    let mut udp = Reach::new(from_svc, vec!["svc/x/web".into()], &[81], &["udp"]);
    udp.set(false, |c| c.from != "pod/y/b");
    let mut direct = Reach::pods();
    direct
        .all_ingress("x/a", false)
        .expect("y/b", "x/a", true)
        .allow_loopback();
    // NodePort with externalTrafficPolicy Local keeps the client's address,
    // so an ipBlock peer on the external network admits legacy-db.
    let node1 = s.lab.topo.nodes[0].ip.to_string();
    let external = Reach::new(
        vec!["host/legacy-db".into()],
        vec![node1.clone()],
        &[30080],
        &["tcp"],
    );
    s.case(
        "Services: ClusterIP to a selected backend keeps the client pod; NodePort Local from outside",
        &(svc.to_owned()
            + &np(
                "x",
                "web-from-yb",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {ns: y}}\n      podSelector: {matchLabels: {pod: b}}\n  - from: [{ipBlock: {cidr: 192.168.2.0/24}}]",
            )),
        &[tcp, udp, direct, external],
    );
    let line = s
        .lab
        .reach("pod/y/b", "svc/x/web", 80, strait_lab::Proto::Tcp);
    let yb = s.ip("y/b");
    assert!(
        line.contains(&format!(" {yb}:")),
        "the backend saw {line}, not the client y/b ({yb})"
    );

    // The same NodePort when no rule admits the external network: the
    // policy applies to NodePort traffic too (no bypass), on both paths.
    let mut external_blocked = Reach::new(
        vec!["host/legacy-db".into()],
        vec![node1],
        &[30080],
        &["tcp"],
    );
    external_blocked.set(false, |_| true);
    let mut direct = Reach::pods();
    direct
        .all_ingress("x/a", false)
        .expect("y/b", "x/a", true)
        .allow_loopback();
    s.case(
        "Services: NodePort from outside is refused when no rule admits the client",
        &(svc.to_owned()
            + &np(
                "x",
                "web-from-yb",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {ns: y}}\n      podSelector: {matchLabels: {pod: b}}",
            )),
        &[external_blocked, direct],
    );

    // hostNetwork pods are never selected: a default-deny in h leaves h/hn
    // (node-2's own network) reachable.
    let hn = Reach::new(all_pods(), vec!["pod/h/hn".into()], &[8080], &["tcp"]);
    s.case(
        "hostNetwork pod not selected by a default-deny in its namespace",
        &np(
            "h",
            "deny-all",
            "  podSelector: {}\n  policyTypes: [Ingress, Egress]",
        ),
        &[hn],
    );

    s.finish();
}

#[test]
fn policy_truth_tables_vxlan() {
    truth_tables(Backend::Vxlan);
}

#[test]
fn policy_truth_tables_host_gw() {
    truth_tables(Backend::HostGw);
}
