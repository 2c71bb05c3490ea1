//! Services end to end in the lab (issue 4): ClusterIP load spread with the
//! client's address kept, NodePort from outside the cluster, node processes
//! and hostNetwork pods reaching Service addresses (the OUTPUT hook), reject
//! when a Service has no endpoints, hairpin, UDP, traffic policies, session affinity.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;
use strait_lab::{ProbeResult, Proto};

fn up() -> common::Lab {
    common::up(|_| {})
}

/// The pod that answered (the echo server's line starts with it).
fn answerer(line: &str) -> String {
    line.split_whitespace().next().unwrap().to_owned()
}

/// The pods that answered `times` TCP connections from `from` to `to`.
fn answerers(lab: &common::Lab, from: &str, to: &str, port: u16, times: usize) -> BTreeSet<String> {
    (0..times)
        .map(|_| answerer(&lab.reach(from, to, port, Proto::Tcp)))
        .collect()
}

const WORKLOAD: &str = "
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: s, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}, {containerPort: 53, protocol: UDP}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: s, labels: {app: web}}
spec: {nodeName: node-2, containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}, {containerPort: 53, protocol: UDP}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: s, labels: {app: client}}
spec: {nodeName: node-1, containers: [{name: c, image: x, ports: [{containerPort: 9000}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: s}
spec:
  type: NodePort
  selector: {app: web}
  externalIPs: [192.168.2.200]
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: s}
spec:
  selector: {app: nobody}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: self, namespace: s}
spec:
  selector: {app: client}
  ports: [{port: 90, targetPort: 9000}]
";

#[test]
fn services_end_to_end() {
    let lab = up();
    lab.cluster.apply(&lab.topo.name, WORKLOAD, "w").unwrap();
    // Give the agents a moment to program the new Services.
    std::thread::sleep(Duration::from_millis(500));
    let client = lab.pod_ip("s", "client");

    // ClusterIP: both endpoints answer, each sees the client's own address
    // (no SNAT, also for the endpoint on the other node).
    let mut answered = BTreeSet::new();
    for _ in 0..30 {
        let line = lab.reach("pod/s/client", "svc/s/web", 80, Proto::Tcp);
        assert!(
            line.contains(&format!(" {client}:")),
            "client address not kept: {line}"
        );
        answered.insert(answerer(&line));
    }
    assert_eq!(
        answered,
        BTreeSet::from(["s/web-1".to_owned(), "s/web-2".to_owned()])
    );

    // UDP through the ClusterIP.
    let line = lab.reach("pod/s/client", "svc/s/web", 53, Proto::Udp);
    assert!(line.starts_with("s/web-"), "{line}");

    // A node process (and so a hostNetwork pod) reaches the ClusterIP and the
    // externalIP: locally generated traffic goes through the OUTPUT hook.
    assert!(lab
        .reach("node/node-1", "svc/s/web", 80, Proto::Tcp)
        .starts_with("s/web-"));
    assert!(lab
        .reach("node/node-2", "192.168.2.200", 80, Proto::Tcp)
        .starts_with("s/web-"));

    // NodePort from outside the cluster, on either node.
    let state = lab.cluster.fabric.state(&lab.topo.name).unwrap();
    let _ = state;
    for node_ip in ["192.168.1.11", "192.168.1.12"] {
        let line = lab.reach("host/legacy-db", node_ip, 30000, Proto::Tcp);
        assert!(line.starts_with("s/web-"), "{node_ip}: {line}");
    }

    // No endpoints: refused at once, not a timeout.
    match lab.probe("pod/s/client", "svc/s/empty", 80, Proto::Tcp) {
        ProbeResult::Refused => {}
        other => panic!("a Service without endpoints must reject: {other}"),
    }

    // Hairpin: the client reaches itself through its own Service.
    let line = lab.reach("pod/s/client", "svc/s/self", 90, Proto::Tcp);
    assert!(line.starts_with("s/client "), "{line}");
}

/// externalTrafficPolicy Local: the client's address reaches the endpoint,
/// and a node without a local endpoint does not forward the traffic.
#[test]
fn external_traffic_policy_local_keeps_the_client_address() {
    let lab = up();
    let yaml = "
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: s, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, image: x, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: s}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
";
    lab.cluster.apply(&lab.topo.name, yaml, "w").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Through node-1 (has the endpoint): legacy-db's own address is seen.
    let line = lab.reach("host/legacy-db", "192.168.1.11", 30080, Proto::Tcp);
    assert_eq!(line.split_whitespace().next(), Some("s/web-1"), "{line}");
    assert!(
        line.contains(" 192.168.2.10:"),
        "client address lost: {line}"
    );
    // Through node-2 (no local endpoint): not served.
    let r = lab.probe("host/legacy-db", "192.168.1.12", 30080, Proto::Tcp);
    assert!(
        r.answer().is_none(),
        "node-2 forwarded eTP Local traffic: {r}"
    );
}

/// A UDP client that keeps its socket (and so its conntrack flow) moves on
/// to the new endpoint after its endpoint pod is replaced; scale-down takes
/// effect within 2 s.
#[test]
fn udp_clients_recover_and_scale_down_is_quick() {
    let lab = up();
    let pod = |name: &str, node: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: s, labels: {{app: dns}}}}\nspec: {{nodeName: {node}, containers: [{{name: c, image: x, ports: [{{containerPort: 53, protocol: UDP}}, {{containerPort: 80}}]}}]}}\n---\n")
    };
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: dns, namespace: s}\nspec:\n  selector: {app: dns}\n  ports: [{name: dns, port: 53, protocol: UDP}, {name: web, port: 80}]\n---\n";
    let client = "apiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: s}\nspec: {nodeName: node-1, containers: [{name: c, image: x}]}\n---\n";
    lab.cluster
        .apply(
            &lab.topo.name,
            &(svc.to_owned() + client + &pod("dns-a", "node-2")),
            "w",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let state = lab.cluster.fabric.state(&lab.topo.name).unwrap();
    let from = lab.cluster.endpoint(&state, "pod/s/client").unwrap().netns;
    let svc_ip = lab
        .cluster
        .endpoint(&state, "svc/s/dns")
        .unwrap()
        .ip
        .unwrap();
    // One socket, one source port, for the whole test.
    let sock = strait_lab::run_in_netns(&from, || std::net::UdpSocket::bind("0.0.0.0:0"))
        .unwrap()
        .unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let ask = |sock: &std::net::UdpSocket| -> Option<String> {
        sock.send_to(b"q", (svc_ip, 53)).ok()?;
        let mut buf = [0u8; 256];
        let (n, _) = sock.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    assert!(ask(&sock).unwrap_or_default().starts_with("s/dns-a "));

    // Replace the endpoint: dns-a goes, dns-b comes.
    lab.cluster
        .delete(&lab.topo.name, &pod("dns-a", "node-2"), "w")
        .unwrap();
    lab.cluster
        .apply(&lab.topo.name, &pod("dns-b", "node-2"), "w")
        .unwrap();
    let start = std::time::Instant::now();
    let mut answer = None;
    while start.elapsed() < Duration::from_secs(5) {
        if let Some(a) = ask(&sock).filter(|a| a.starts_with("s/dns-b ")) {
            answer = Some(a);
            break;
        }
    }
    assert!(
        answer.is_some(),
        "the UDP client stayed stuck on the deleted endpoint"
    );

    // Scale down to nothing: within 2 s the Service rejects.
    lab.cluster
        .delete(&lab.topo.name, &pod("dns-b", "node-2"), "w")
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if lab.probe("pod/s/client", "svc/s/dns", 80, Proto::Tcp) == ProbeResult::Refused {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "endpoint still served 2 s after scale-down"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// internalTrafficPolicy Local: traffic from inside the cluster goes only
/// to endpoints on the client's own node; a node with none drops it (as
/// kube-proxy does), even though endpoints exist elsewhere.
#[test]
fn internal_traffic_policy_local_stays_on_the_node() {
    let lab = up();
    let extra = "---
apiVersion: v1
kind: Pod
metadata: {name: only-2, namespace: s, labels: {app: only}}
spec: {nodeName: node-2, containers: [{name: c, image: x, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: near, namespace: s}
spec:
  selector: {app: web}
  internalTrafficPolicy: Local
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: far, namespace: s}
spec:
  selector: {app: only}
  internalTrafficPolicy: Local
  ports: [{port: 80, targetPort: 8080}]
";
    lab.apply(&(WORKLOAD.to_owned() + extra));
    lab.eventually(10, "near answers from node-1", || {
        lab.probe("pod/s/client", "svc/s/near", 80, Proto::Tcp)
            .answer()
            .is_some()
    });
    // From node-1 (a pod) and node-2 (a node process): always the local one.
    for (from, local) in [("pod/s/client", "s/web-1"), ("node/node-2", "s/web-2")] {
        let answered = answerers(&lab, from, "svc/s/near", 80, 16);
        assert_eq!(
            answered,
            BTreeSet::from([local.to_owned()]),
            "{from} left its node"
        );
    }
    // node-1 has no endpoint of `far`: dropped there, served on node-2.
    let line = lab.reach("node/node-2", "svc/s/far", 80, Proto::Tcp);
    assert_eq!(line.split_whitespace().next(), Some("s/only-2"), "{line}");
    let r = lab.probe("pod/s/client", "svc/s/far", 80, Proto::Tcp);
    assert!(
        r.answer().is_none(),
        "node-1 sent internalTrafficPolicy Local traffic off the node: {r}"
    );
}

/// sessionAffinity ClientIP: a client keeps its backend across connections.
#[test]
fn session_affinity_keeps_one_backend() {
    let lab = up();
    let sticky = "---\napiVersion: v1\nkind: Service\nmetadata: {name: sticky, namespace: s}\nspec:\n  selector: {app: web}\n  sessionAffinity: ClientIP\n  ports: [{port: 80, targetPort: http}]\n";
    lab.cluster
        .apply(&lab.topo.name, &(WORKLOAD.to_owned() + sticky), "w")
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let answered = answerers(&lab, "pod/s/client", "svc/s/sticky", 80, 20);
    assert_eq!(answered.len(), 1, "affinity broken: {answered:?}");
    // Another client may land elsewhere, but also stays put.
    let other = answerers(&lab, "node/node-2", "svc/s/sticky", 80, 10);
    assert_eq!(
        other.len(),
        1,
        "affinity broken for a second client: {other:?}"
    );
}

/// A client outside the cluster whose router sends the service CIDR to
/// node-1 reaches a ClusterIP, also through the endpoint on node-2: node-1
/// masquerades it, so the reply comes back through node-1 to be un-DNATed.
/// Addresses and ports in the service CIDR that no Service has are refused
/// at once (TCP reset, ICMP port unreachable), from pods, from node
/// processes and from outside.
#[test]
fn off_cluster_clients_and_unknown_service_addresses() {
    let lab = common::up(|topo| {
        topo.router.routes.push(strait_lab::topology::Route {
            to: topo.service_cidr,
            via: topo.nodes[0].ip,
        });
    });
    lab.cluster.apply(&lab.topo.name, WORKLOAD, "w").unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let mut answered = BTreeSet::new();
    for _ in 0..30 {
        let line = lab.reach("host/legacy-db", "svc/s/web", 80, Proto::Tcp);
        assert!(
            !line.contains(" 192.168.2.10:"),
            "off-cluster client not masqueraded: {line}"
        );
        answered.insert(answerer(&line));
    }
    assert_eq!(
        answered,
        BTreeSet::from(["s/web-1".to_owned(), "s/web-2".to_owned()])
    );

    let state = lab.cluster.fabric.state(&lab.topo.name).unwrap();
    let web = lab
        .cluster
        .endpoint(&state, "svc/s/web")
        .unwrap()
        .ip
        .unwrap();
    let unused = "10.43.255.254";
    for (from, to, port, proto) in [
        ("pod/s/client", unused, 80, Proto::Tcp),
        ("pod/s/client", unused, 53, Proto::Udp),
        ("pod/s/client", &web.to_string()[..], 81, Proto::Tcp),
        ("pod/s/client", "svc/s/empty", 80, Proto::Udp),
        ("host/legacy-db", unused, 53, Proto::Udp),
        ("node/node-2", unused, 80, Proto::Tcp),
        ("host/legacy-db", unused, 80, Proto::Tcp),
    ] {
        match lab.probe(from, to, port, proto) {
            ProbeResult::Refused => {}
            other => panic!("{from} -> {to} {proto}/{port}: want refused, got {other}"),
        }
    }
    // The Service's own ports still answer.
    assert!(lab
        .reach("pod/s/client", "svc/s/web", 80, Proto::Tcp)
        .starts_with("s/web-"));
}

/// A ClusterIP outside the configured service CIDR (Kubernetes can
/// allocate from a second ServiceCIDR) works like one inside it: a node
/// process reaches it (the agent routes it onto the bridge: lab nodes have
/// no default route), an off-cluster client routed to a node is
/// masqueraded so the reply finds its way back, and a port no Service has
/// is refused at once.
#[test]
fn cluster_ips_outside_the_service_cidr() {
    let far: std::net::Ipv4Addr = "10.96.0.10".parse().unwrap();
    let lab = common::up(|topo| {
        topo.router.routes.push(strait_lab::topology::Route {
            to: ipnet::Ipv4Net::from(far),
            via: topo.nodes[0].ip,
        });
    });
    let workload = format!(
        "{WORKLOAD}---\napiVersion: v1\nkind: Service\nmetadata: {{name: far, namespace: s}}\nspec:\n  clusterIP: {far}\n  selector: {{app: web}}\n  ports: [{{name: http, port: 80, targetPort: http}}]\n"
    );
    lab.cluster.apply(&lab.topo.name, &workload, "w").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let far = far.to_string();
    let mut answered = BTreeSet::new();
    for _ in 0..20 {
        for from in ["node/node-2", "host/legacy-db", "pod/s/client"] {
            let line = lab.reach(from, &far, 80, Proto::Tcp);
            assert!(
                !line.contains(" 192.168.2.10:"),
                "{from}: off-cluster client not masqueraded: {line}"
            );
            answered.insert(answerer(&line));
        }
    }
    assert_eq!(
        answered,
        BTreeSet::from(["s/web-1".to_owned(), "s/web-2".to_owned()])
    );
    for from in ["pod/s/client", "node/node-2", "host/legacy-db"] {
        match lab.probe(from, &far, 81, Proto::Tcp) {
            ProbeResult::Refused => {}
            other => panic!("{from} -> {far} tcp/81: want refused, got {other}"),
        }
    }
}
