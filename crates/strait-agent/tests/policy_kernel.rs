//! NetworkPolicy in the kernel: the compiled `inet strait` table loaded with
//! `nft -f` into a fresh node namespace whose bridge joins three pod
//! namespaces, with real TCP, UDP and ICMP between them. Needs root.
//! (The lab's e2e truth tables live in crates/strait/tests/policy.rs.)

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;
use strait_lab::Netns;
use strait_model::{parse_manifests, AgentConfig, Snapshot};
use strait_plan::{compile, nft, LocalNode};

const WEB: &str = "10.42.1.10";
const CLIENT: &str = "10.42.1.11";
const OTHER: &str = "10.42.1.12";

struct Node {
    node: Netns,
    pods: Vec<Netns>,
}

/// Node namespace with bridge `br0` (10.42.1.1/24) and br_netfilter on in
/// it; pods web, client, other on the bridge.
fn setup() -> Node {
    let node = Netns::unique("stpol").unwrap();
    node.exec_ok(&["ip", "link", "add", "br0", "type", "bridge"])
        .unwrap();
    node.exec_ok(&["ip", "addr", "add", "10.42.1.1/24", "dev", "br0"])
        .unwrap();
    node.exec_ok(&["ip", "link", "set", "br0", "up"]).unwrap();
    // Per namespace: bridged frames go through the inet forward hook.
    node.exec_ok(&["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"])
        .unwrap();
    let mut pods = Vec::new();
    for (i, ip) in [WEB, CLIENT, OTHER].iter().enumerate() {
        let pod = Netns::unique("stpod").unwrap();
        let host = format!("veth{i}");
        node.exec_ok(&[
            "ip", "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &pod.name,
        ])
        .unwrap();
        node.exec_ok(&["ip", "link", "set", &host, "master", "br0", "up"])
            .unwrap();
        pod.exec_ok(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"])
            .unwrap();
        pod.exec_ok(&["ip", "link", "set", "eth0", "up"]).unwrap();
        pods.push(pod);
    }
    Node { node, pods }
}

fn pod(ns: &str, name: &str, ip: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {labels}}}\nspec: {{nodeName: node-1, containers: [{{name: c}}]}}\nstatus: {{podIP: {ip}}}\n---\n"
    )
}

/// A second policy: web accepts TCP 81 from anyone.
const SECOND_POLICY: &str = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-81, namespace: prod}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress: [{ports: [{port: 81}]}]\n";

/// web (prod) accepts TCP 80 and UDP 53 from app=client pods of prod;
/// `other_labels` are the third pod's labels.
fn compile_table(other_labels: &str) -> nft::Table {
    compile_table_with(other_labels, "")
}

fn compile_table_with(other_labels: &str, extra: &str) -> nft::Table {
    let cfg = AgentConfig::from_yaml(
        "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\nbackend: host-gw\n",
    )
    .unwrap();
    let local = LocalNode {
        name: "node-1".into(),
        underlay_ip: Ipv4Addr::new(192, 0, 2, 11),
        underlay_prefix: 24,
        underlay_dev: "eth0".into(),
        underlay_mtu: 1500,
    };
    let text = format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: node-1}}\nspec: {{podCIDR: 10.42.1.0/24}}\nstatus: {{addresses: [{{type: InternalIP, address: 192.0.2.11}}]}}\n---\n{}{}{}\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: web, namespace: prod}}\nspec:\n  podSelector: {{matchLabels: {{app: web}}}}\n  ingress:\n  - from: [{{podSelector: {{matchLabels: {{app: client}}}}}}]\n    ports: [{{port: 80}}, {{protocol: UDP, port: 53}}]\n",
        pod("prod", "web", WEB, "{app: web}"),
        pod("prod", "client", CLIENT, "{app: client}"),
        pod("prod", "other", OTHER, other_labels),
    ) + extra;
    let snap = Snapshot::from_objects(parse_manifests(&text, "test").unwrap());
    let plan = compile(&cfg, &local, &snap).unwrap();
    std::sync::Arc::unwrap_or_clone(plan.nft)
}

fn nft_in(ns: &Netns, script: &str) {
    let script = script.to_string();
    ns.run(move || strait_kernel::nft::apply(&script))
        .unwrap()
        .unwrap_or_else(|e| panic!("nft -f failed: {e}"));
}

/// A TCP listener in `ns` on `port` that answers "ok" to every connection.
fn serve_tcp(ns: &Netns, ip: &str, port: u16) {
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let l: TcpListener = ns.run(move || TcpListener::bind(addr)).unwrap().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(b"ok");
        }
    });
}

fn serve_udp(ns: &Netns, ip: &str, port: u16) {
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let s: UdpSocket = ns.run(move || UdpSocket::bind(addr)).unwrap().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(b"ok", from);
        }
    });
}

fn tcp(from: &Netns, ip: &str, port: u16) -> bool {
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    from.run(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(700)).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(700))).ok()?;
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).ok()?;
        Some(&buf == b"ok")
    })
    .unwrap()
    .unwrap_or(false)
}

fn udp(from: &Netns, ip: &str, port: u16) -> bool {
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    from.run(move || {
        let s = UdpSocket::bind("0.0.0.0:0").ok()?;
        s.set_read_timeout(Some(Duration::from_millis(700))).ok()?;
        s.send_to(b"hi", addr).ok()?;
        let mut buf = [0u8; 2];
        s.recv_from(&mut buf).ok()?;
        Some(&buf == b"ok")
    })
    .unwrap()
    .unwrap_or(false)
}

fn ping(from: &Netns, ip: &str) -> bool {
    from.exec(&["ping", "-c", "1", "-W", "1", ip])
        .unwrap()
        .status
        .success()
}

fn counter(ns: &Netns, name: &str) -> u64 {
    let out = ns
        .exec_ok(&["nft", "list", "counter", "inet", "strait", name])
        .unwrap();
    let at = out
        .find("packets ")
        .expect("packets in the counter listing")
        + 8;
    out[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn compiled_policy_filters_real_packets() {
    let t = setup();
    let [web, client, other] = [&t.pods[0], &t.pods[1], &t.pods[2]];
    for p in [80, 81] {
        serve_tcp(web, WEB, p);
    }
    serve_udp(web, WEB, 53);
    serve_tcp(other, OTHER, 80);

    // Before any policy everything flows.
    assert!(tcp(other, WEB, 80) && ping(other, WEB));

    let table = compile_table("{app: other}");
    nft_in(&t.node, &nft::render(&table));
    // The agent's drop log, listening in the node's namespace.
    let drop_log = t
        .node
        .run(|| strait_agent::policy_log::DropLog::open(strait_plan::policy::LOG_GROUP))
        .unwrap()
        .expect("nfnetlink_log group bound");
    drop_log.set_timeout(Duration::from_secs(2)).unwrap();

    assert!(tcp(client, WEB, 80), "client -> web:80 is allowed");
    assert!(udp(client, WEB, 53), "client -> web udp/53 is allowed");
    assert!(!tcp(client, WEB, 81), "port 81 is not in the rule");
    assert!(!ping(client, WEB), "a rule with ports does not allow ICMP");
    assert!(!tcp(other, WEB, 80), "other is not app=client");
    assert!(!udp(other, WEB, 53));
    // web is ingress-isolated, not egress: its own connections and their
    // replies pass (conntrack), though other -> web is denied.
    assert!(tcp(web, OTHER, 80), "replies of web's own connection");
    assert!(ping(other, CLIENT), "client is not isolated");
    assert!(
        counter(&t.node, "pol-in.prod.web") >= 4,
        "drops are counted"
    );

    // Each drop was logged (rate-limited) with its chain's prefix; the line
    // names the policy, the pod, the peer and the port.
    let mut logged = Vec::new();
    while let Ok(batch) = drop_log.recv() {
        logged.extend(batch);
        if logged
            .iter()
            .any(|l| l.src.to_string() == OTHER && l.dport == Some(80))
        {
            break;
        }
    }
    let l = logged
        .iter()
        .find(|l| l.src.to_string() == OTHER && l.dport == Some(80))
        .unwrap_or_else(|| panic!("no log of other -> web:80 in {logged:?}"));
    assert_eq!((l.dst.to_string().as_str(), l.proto), (WEB, 6));
    let snap = Snapshot::default();
    let line = strait_agent::policy_log::Describer::new(&table, &snap).line(l);
    assert_eq!(
        line,
        format!("policy drop: ingress to pod {WEB} from {OTHER} tcp/80; not allowed by prod/web")
    );

    // The agent's metric, from the kernel's named counters.
    let read = t
        .node
        .run(|| strait_agent::policy_metrics::read_counters("strait"))
        .unwrap()
        .unwrap();
    let drops = strait_agent::policy_metrics::PolicyDrops::default();
    drops.update(&read);
    let web = drops
        .family
        .get_or_create(&strait_agent::policy_metrics::PolicyLabels {
            policy: "prod/web".into(),
            direction: "ingress".into(),
        })
        .get();
    assert!(web >= 4, "{read:?}");

    // A label change is an element-only update, applied in one transaction
    // (the agent's own incremental path).
    let relabelled = compile_table("{app: client}");
    let diff = nft::incremental::changes(&table, &relabelled).expect("elements only");
    // Only the peer map changes: other joins client's atom (one range).
    assert!(
        diff.contains("ingress-peers") && !diff.contains("chain"),
        "{diff}"
    );
    nft_in(&t.node, &diff);
    assert!(tcp(other, WEB, 80), "other is a client now");
    assert!(!tcp(other, WEB, 81));
    assert!(
        counter(&t.node, "pol-in.prod.web") >= 4,
        "an element update keeps counters"
    );

    // A second policy selecting web adds a counter and a drop chain, still
    // without rewriting the table (the first counter keeps its count).
    let before = counter(&t.node, "pol-in.prod.web");
    let two = compile_table_with("{app: client}", SECOND_POLICY);
    let diff = nft::incremental::changes(&relabelled, &two).expect("incremental");
    assert!(
        diff.contains("\tcounter pol-") && diff.contains("\tchain "),
        "{diff}"
    );
    nft_in(&t.node, &diff);
    assert!(tcp(other, WEB, 81), "the second policy allows port 81");
    assert!(counter(&t.node, "pol-in.prod.web") >= before);
    // And back: counter and chain removed in one transaction.
    let diff = nft::incremental::changes(&two, &relabelled).expect("incremental");
    assert!(
        diff.contains("delete counter") && diff.contains("delete chain"),
        "{diff}"
    );
    nft_in(&t.node, &diff);
    assert!(!tcp(other, WEB, 81));

    // A script that fails leaves the policy in place (fail closed).
    let mut broken = nft::render(&compile_table("{app: other}"));
    broken.push_str("add rule inet strait forward bogus\n");
    let err = t
        .node
        .run(move || strait_kernel::nft::apply(&broken))
        .unwrap();
    assert!(err.is_err());
    assert!(tcp(other, WEB, 80), "the failed script changed nothing");
    assert!(!tcp(other, WEB, 81), "the old policy still holds");
}

/// role=other may only reach web on TCP 80 (egress).
const OTHER_EGRESS: &str = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: other-out, namespace: prod}\nspec:\n  podSelector: {matchLabels: {role: other}}\n  policyTypes: [Egress]\n  egress: [{to: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 80}]}]\n";

#[test]
fn egress_to_the_own_node_is_policed_and_the_node_still_reaches_pods() {
    let t = setup();
    let [web, client, other] = [&t.pods[0], &t.pods[1], &t.pods[2]];
    serve_tcp(web, WEB, 80);
    serve_tcp(other, OTHER, 80);
    serve_tcp(&t.node, "10.42.1.1", 9000);
    nft_in(
        &t.node,
        // other is a client (web admits it) and egress-isolated.
        &nft::render(&compile_table_with(
            "{app: client, role: other}",
            OTHER_EGRESS,
        )),
    );
    assert!(tcp(other, WEB, 80), "allowed by the egress rule");
    assert!(!ping(other, CLIENT), "not in the egress rule");
    assert!(
        !tcp(other, "10.42.1.1", 9000),
        "the own node is policed too"
    );
    assert!(
        tcp(client, "10.42.1.1", 9000),
        "client is not egress-isolated"
    );
    // The node's own connections to an isolated pod (kubelet probes) and
    // their replies pass.
    assert!(tcp(&t.node, OTHER, 80));
    assert!(counter(&t.node, "pol-eg.prod.other-out") >= 2);
}
