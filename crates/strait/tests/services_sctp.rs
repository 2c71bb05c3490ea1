//! SCTP Services end to end in the lab. This kernel has SCTP conntrack and
//! NAT but no SCTP stack, so the echo server and probes cannot speak SCTP:
//! the client sends hand-built INIT chunks over a raw socket and each
//! endpoint pod catches them with a raw socket of its own
//! (`strait_lab::sctp_raw`), which shows the packet as it arrived.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};
use strait_lab::sctp_raw::{
    init_packet, IcmpRawSocket, Init, SctpRawSocket, SctpSeen, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH,
};

const WORKLOAD: &str = "
apiVersion: v1
kind: Pod
metadata: {name: assoc-1, namespace: s, labels: {app: assoc}}
spec: {nodeName: node-1, containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: assoc-2, namespace: s, labels: {app: assoc}}
spec: {nodeName: node-2, containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: s}
spec: {nodeName: node-1, containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Service
metadata: {name: assoc, namespace: s}
spec:
  selector: {app: assoc}
  ports: [{name: assoc, port: 9999, protocol: SCTP, targetPort: 7777}]
---
apiVersion: v1
kind: Service
metadata: {name: lonely, namespace: s}
spec:
  selector: {app: nobody}
  ports: [{port: 9999, protocol: SCTP}]
";

const SERVICE_PORT: u16 = 9999;
const TARGET_PORT: u16 = 7777;
/// How long to wait for packets that should come; never a pass/fail bound.
const WAIT: Duration = Duration::from_secs(10);

/// The INIT with number `n`: its own source port (so conntrack sees a new
/// association and picks an endpoint afresh) and a tag that names it.
fn init(n: u16) -> Init {
    Init {
        src_port: 40_000 + n,
        dst_port: SERVICE_PORT,
        initiate_tag: 0x5C7B_0000 | u32::from(n),
    }
}

/// The network namespace of a lab endpoint (`pod/s/client`, ...).
fn netns(lab: &common::Lab, spec: &str) -> std::path::PathBuf {
    let state = lab.cluster.fabric.state(&lab.topo.name).unwrap();
    lab.cluster.endpoint(&state, spec).unwrap().netns
}

/// The IPv4 address of a lab endpoint (a pod, or a Service's ClusterIP).
fn ipv4(lab: &common::Lab, spec: &str) -> Ipv4Addr {
    let state = lab.cluster.fabric.state(&lab.topo.name).unwrap();
    match lab.cluster.endpoint(&state, spec).unwrap().ip {
        Some(IpAddr::V4(ip)) => ip,
        other => panic!("{spec}: no IPv4 address: {other:?}"),
    }
}

struct Endpoint {
    label: &'static str,
    ip: Ipv4Addr,
    sock: SctpRawSocket,
}

/// Every INIT of ours that reached an endpoint, by tag (with the endpoint
/// it reached), once `done` holds of them or `wait` has passed.
fn collect(
    endpoints: &[Endpoint],
    wait: Duration,
    done: impl Fn(&BTreeMap<u32, (usize, SctpSeen)>) -> bool,
) -> BTreeMap<u32, (usize, SctpSeen)> {
    let mut seen = BTreeMap::new();
    let start = Instant::now();
    while !done(&seen) && start.elapsed() < wait {
        for (i, ep) in endpoints.iter().enumerate() {
            while let Some(p) = ep.sock.recv(Duration::from_millis(20)).unwrap() {
                let Some(tag) = p.initiate_tag.filter(|t| t >> 16 == 0x5C7B) else {
                    continue;
                };
                if let Some((j, _)) = seen.insert(tag, (i, p)) {
                    panic!("INIT {tag:#x} arrived twice (at {j} and {i})");
                }
            }
        }
    }
    seen
}

/// A Service's SCTP port is DNATed to its endpoints, the one on the other
/// node and the one on the client's node, with the client's address and
/// port kept (no SNAT from pod to ClusterIP, as for TCP) and the checksum
/// rewritten; an INIT with a bad checksum is dropped (conntrack checks it,
/// so the good ones show our CRC32c is right). A Service without endpoints
/// rejects an INIT with ICMP port unreachable.
#[test]
fn sctp_cluster_ip_is_dnated_with_the_client_address_kept() {
    let lab = common::up(|_| {});
    lab.apply(WORKLOAD);
    let (netns, ipv4) = (
        |spec: &str| netns(&lab, spec),
        |spec: &str| ipv4(&lab, spec),
    );
    let client_ip = ipv4("pod/s/client");
    let vip = ipv4("svc/s/assoc");
    let client = SctpRawSocket::open_in(&netns("pod/s/client")).unwrap();
    let endpoints: Vec<Endpoint> = ["s/assoc-1", "s/assoc-2"]
        .into_iter()
        .map(|label| Endpoint {
            label,
            ip: ipv4(&format!("pod/{label}")),
            sock: SctpRawSocket::open_in(&netns(&format!("pod/{label}"))).unwrap(),
        })
        .collect();

    // Until the agents have programmed the Service, INITs are rejected:
    // send one at a time (each its own association) until one gets through.
    let start = Instant::now();
    let mut n = 0;
    loop {
        client.send_init(vip, &init(n)).unwrap();
        n += 1;
        let got = collect(&endpoints, Duration::from_millis(500), |s| !s.is_empty());
        if !got.is_empty() || start.elapsed() > WAIT {
            assert!(!got.is_empty(), "no INIT reached an endpoint in {WAIT:?}");
            break;
        }
    }

    // A damaged INIT first: were it let through, it would arrive before the
    // good INITs sent after it on the same path.
    let mut damaged = init_packet(&init(n));
    damaged[8] ^= 0xff;
    client.send(vip, &damaged).unwrap();
    let damaged_tag = init(n).initiate_tag;
    n += 1;

    // Enough INITs that each endpoint gets some (with a random pick, all
    // 24 land on one endpoint with odds 2 * 2^-24).
    let first = n;
    for _ in 0..24 {
        client.send_init(vip, &init(n)).unwrap();
        n += 1;
    }
    let wanted: Vec<u32> = (first..n).map(|i| init(i).initiate_tag).collect();
    let seen = collect(&endpoints, WAIT, |s| {
        wanted.iter().all(|t| s.contains_key(t))
    });
    assert!(
        !seen.contains_key(&damaged_tag),
        "an INIT with a bad checksum was DNATed: {:?}",
        seen[&damaged_tag]
    );
    let missing: Vec<u16> = (first..n)
        .filter(|&i| !seen.contains_key(&init(i).initiate_tag))
        .collect();
    assert!(
        missing.is_empty(),
        "INITs that reached no endpoint: {missing:?}"
    );
    let mut reached = BTreeSet::new();
    for (i, p) in seen.values() {
        let ep = &endpoints[*i];
        let sent = init((p.initiate_tag.unwrap() & 0xffff) as u16);
        assert_eq!(
            p.dst,
            SocketAddrV4::new(ep.ip, TARGET_PORT),
            "{}: not DNATed to its address and targetPort: {p:?}",
            ep.label
        );
        assert_eq!(
            p.src,
            SocketAddrV4::new(client_ip, sent.src_port),
            "{}: the client's address or port was not kept: {p:?}",
            ep.label
        );
        assert_eq!(p.verification_tag, 0, "{p:?}");
        assert!(p.checksum_ok, "{}: checksum not rewritten: {p:?}", ep.label);
        reached.insert(ep.label);
    }
    assert_eq!(reached, BTreeSet::from(["s/assoc-1", "s/assoc-2"]));

    // No endpoints: an INIT is answered with port unreachable quoting it
    // (the reject chain's `icmpx port-unreachable`), not left to time out.
    // The map entry shows it is the no-endpoints rule that answers, not the
    // reject of service addresses no Service has.
    let icmp = IcmpRawSocket::open_in(&netns("pod/s/client")).unwrap();
    let lonely = ipv4("svc/s/lonely");
    let entry = format!("{lonely} . sctp . {SERVICE_PORT} : goto reject-chain");
    lab.eventually(10, &format!("no-endpoint-services has {entry}"), || {
        let map = [
            "nft",
            "list",
            "map",
            "inet",
            "strait",
            "no-endpoint-services",
        ];
        lab.node_exec("node-1", &map).contains(&entry)
    });
    // The node rate-limits ICMP errors per destination host
    // (net.ipv4.icmp_ratelimit): here it held back the first ones to a
    // client it had not answered before for about a second (nstat's
    // IcmpOutRateLimitHost). So send again, each time as a new
    // association, until one is answered.
    let mut sent = BTreeSet::new();
    let start = Instant::now();
    let answer = loop {
        let probe = init(n);
        n += 1;
        client.send_init(lonely, &probe).unwrap();
        sent.insert(Some((
            132,
            SocketAddrV4::new(client_ip, probe.src_port),
            SocketAddrV4::new(lonely, SERVICE_PORT),
        )));
        match icmp.recv(Duration::from_millis(300)).unwrap() {
            Some(m) if sent.contains(&m.quoted) => break Some(m),
            _ if start.elapsed() > WAIT => break None,
            _ => {}
        }
    };
    let answer = answer.unwrap_or_else(|| panic!("no ICMP error for an INIT to {lonely}"));
    assert_eq!(
        (answer.kind, answer.code),
        (ICMP_DEST_UNREACH, ICMP_PORT_UNREACH),
        "{answer:?}"
    );
}

/// A forwarded packet conntrack marks INVALID (here an SCTP INIT with a bad
/// checksum, sent pod to pod across nodes) is dropped by the node, so it
/// cannot leave un-NATed; a good INIT on the same path arrives.
#[test]
fn invalid_packets_are_not_forwarded() {
    let lab = common::up(|_| {});
    lab.apply(WORKLOAD);
    let (netns, ipv4) = (
        |spec: &str| netns(&lab, spec),
        |spec: &str| ipv4(&lab, spec),
    );
    let client = SctpRawSocket::open_in(&netns("pod/s/client")).unwrap();
    let far = ipv4("pod/s/assoc-2");
    let endpoints = [Endpoint {
        label: "s/assoc-2",
        ip: far,
        sock: SctpRawSocket::open_in(&netns("pod/s/assoc-2")).unwrap(),
    }];
    let direct = |n: u16| Init {
        dst_port: TARGET_PORT,
        ..init(n)
    };
    // The drop is part of the Service rules: wait until node-1 has them.
    lab.eventually(10, "node-1 drops invalid packets", || {
        lab.node_exec(
            "node-1",
            &["nft", "list", "chain", "inet", "strait", "filter-forward"],
        )
        .contains("ct state invalid drop")
    });
    let mut n = 0;
    let mut damaged_tags = BTreeSet::new();
    let start = Instant::now();
    // Damaged, then good, each pair its own associations, until a good one
    // has arrived (and so every damaged one sent before it would have).
    let seen = loop {
        let mut damaged = init_packet(&direct(n));
        damaged[8] ^= 0xff;
        client.send(far, &damaged).unwrap();
        damaged_tags.insert(direct(n).initiate_tag);
        client.send_init(far, &direct(n + 1)).unwrap();
        n += 2;
        let got = collect(&endpoints, Duration::from_millis(500), |s| {
            s.keys().any(|t| !damaged_tags.contains(t))
        });
        if got.keys().any(|t| !damaged_tags.contains(t)) || start.elapsed() > WAIT {
            break got;
        }
    };
    let good: Vec<&SctpSeen> = seen
        .iter()
        .filter(|(t, _)| !damaged_tags.contains(t))
        .map(|(_, (_, p))| p)
        .collect();
    assert!(!good.is_empty(), "no good INIT reached {far} in {WAIT:?}");
    assert!(good
        .iter()
        .all(|p| p.dst == SocketAddrV4::new(far, TARGET_PORT)));
    let leaked: Vec<&SctpSeen> = seen
        .iter()
        .filter(|(t, _)| damaged_tags.contains(t))
        .map(|(_, (_, p))| p)
        .collect();
    assert!(leaked.is_empty(), "invalid packets forwarded: {leaked:?}");
}
