//! End to end in the lab, as CI runs it: real namespaces, real agents
//! (`strait agent` processes), pods attached by strait-cni, real packets.
//! Each test runs its own lab (unique name, own state directory).

mod common;

use common::{pod, up};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;
use strait_lab::cluster::objects;
use strait_lab::{run_in_netns, Proto};

fn pod_to_pod_and_out(backend: &str) {
    let lab = up(|t| {
        t.backend = if backend == "vxlan" {
            strait_lab::topology::Backend::Vxlan
        } else {
            strait_lab::topology::Backend::HostGw
        }
    });
    lab.apply(&(pod("t", "a", "node-1") + &pod("t", "b", "node-1") + &pod("t", "c", "node-2")));
    let a_ip = lab.pod_ip("t", "a");
    for to in ["pod/t/b", "pod/t/c"] {
        for proto in [Proto::Tcp, Proto::Udp] {
            let line = lab.reach("pod/t/a", to, 80, proto);
            // The server saw the pod's own address: no SNAT inside the cluster.
            assert!(
                line.contains(&format!(" {a_ip}:")),
                "{backend} {to} {proto}: {line}"
            );
        }
        lab.reach("pod/t/a", to, 0, Proto::Icmp);
    }
    // To legacy-db through the node's static route, masqueraded to the node.
    let line = lab.reach("pod/t/c", "host/legacy-db", 80, Proto::Tcp);
    assert!(line.starts_with("host/legacy-db 192.168.1.12:"), "{line}");
    let line = lab.reach("pod/t/a", "host/legacy-db", 80, Proto::Udp);
    assert!(line.starts_with("host/legacy-db 192.168.1.11:"), "{line}");

    // The agent's metrics: node-1 owns two routes (node-2's pods, and the
    // service CIDR onto the bridge).
    let state = lab.cluster.fabric.state(&lab.topo.name).unwrap();
    let node1 = lab.cluster.endpoint(&state, "node/node-1").unwrap();
    let metrics = run_in_netns(&node1.netns, || {
        let mut s = TcpStream::connect(("127.0.0.1", strait_lab::cluster::AGENT_PORT)).unwrap();
        write!(s, "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut s, &mut out).unwrap();
        out
    })
    .unwrap();
    assert!(
        metrics.contains("strait_agent_owned_objects{kind=\"route\"} 2"),
        "{metrics}"
    );
    assert!(!metrics.contains("strait_agent_syncs_total 0"), "{metrics}");
}

#[test]
fn vxlan_pods_reach_each_other_and_the_outside() {
    pod_to_pod_and_out("vxlan");
}

#[test]
fn host_gw_pods_reach_each_other_and_the_outside() {
    pod_to_pod_and_out("host-gw");
}

#[test]
fn non_masquerade_cidrs_keep_the_pod_address() {
    let lab = up(|t| {
        t.agent = Some(serde_yaml::from_str("nonMasqueradeCIDRs: [192.168.2.0/24]").unwrap());
        t.router.routes = vec![
            strait_lab::topology::Route {
                to: "10.42.1.0/24".parse().unwrap(),
                via: "192.168.1.11".parse().unwrap(),
            },
            strait_lab::topology::Route {
                to: "10.42.2.0/24".parse().unwrap(),
                via: "192.168.1.12".parse().unwrap(),
            },
        ];
    });
    lab.apply(&pod("t", "a", "node-2"));
    let ip = lab.pod_ip("t", "a");
    let line = lab.reach("pod/t/a", "host/legacy-db", 80, Proto::Tcp);
    assert!(line.starts_with(&format!("host/legacy-db {ip}:")), "{line}");
}

#[test]
fn node_routes_declare_the_missing_route() {
    // node-2 lacks the static route to 192.168.2.0/24 (the source's case).
    let lab = up(|t| t.nodes[1].static_routes.clear());
    lab.apply(&pod("t", "a", "node-2"));
    let blocked = lab.probe("pod/t/a", "host/legacy-db", 80, Proto::Tcp);
    assert!(
        blocked.answer().is_none(),
        "reached legacy-db without a route: {blocked}"
    );

    // Declare it in the agent config; the agents pick the change up.
    let cfg = lab.cluster.dir(&lab.topo.name).join("agent.yaml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("nodeRoutes:\n- {to: 192.168.2.0/24, via: 192.168.1.1}\n");
    std::fs::write(&cfg, text).unwrap();
    lab.eventually(10, "legacy-db reachable after nodeRoutes", || {
        lab.probe("pod/t/a", "host/legacy-db", 80, Proto::Tcp)
            .answer()
            .is_some()
    });
    let routes = lab.node_exec("node-2", &["ip", "route", "show", "proto", "90"]);
    assert!(
        routes.contains("192.168.2.0/24 via 192.168.1.1"),
        "{routes}"
    );
}

#[test]
fn nodes_join_and_leave_at_run_time() {
    let lab = up(|_| {});
    lab.apply(&(pod("t", "a", "node-1") + &pod("t", "b", "node-2")));
    lab.reach("pod/t/a", "pod/t/b", 80, Proto::Tcp);
    let manifests = lab.cluster.manifests(&lab.topo.name);

    // Drift: a route deleted by hand is back within seconds.
    // The delete must succeed; whether the route is still gone right after
    // is not checked: the agent may already have put it back.
    let state = lab.cluster.fabric.state(&lab.topo.name).unwrap();
    let del = state
        .exec(
            &strait_lab::Target::Node("node-1".into()),
            &["ip", "route", "del", "10.42.2.0/24"],
        )
        .unwrap();
    assert!(del.status.success(), "ip route del: {del:?}");
    lab.eventually(5, "the running agent restores the deleted route", || {
        lab.node_exec("node-1", &["ip", "route", "show", "proto", "90"])
            .contains("10.42.2.0/24")
    });
    lab.reach("pod/t/a", "pod/t/b", 80, Proto::Tcp);

    // node-2's Node object goes away: node-1 forgets its pod CIDR.
    objects::remove_node(&manifests, "node-2").unwrap();
    lab.eventually(5, "node-1 drops the route to node-2's pods", || {
        !lab.node_exec("node-1", &["ip", "route", "show", "proto", "90"])
            .contains("10.42.2.0/24")
    });
    assert!(lab
        .probe("pod/t/a", "pod/t/b", 80, Proto::Tcp)
        .answer()
        .is_none());

    // ... and comes back.
    objects::write_node(&manifests, "node-2", "192.168.1.12", "10.42.2.0/24").unwrap();
    lab.eventually(5, "pods on node-2 reachable again", || {
        lab.probe("pod/t/a", "pod/t/b", 80, Proto::Tcp)
            .answer()
            .is_some()
    });
}

#[test]
fn agent_restart_keeps_established_connections() {
    let lab = up(|_| {});
    lab.apply(&(pod("t", "a", "node-1") + &pod("t", "b", "node-2")));
    let state = lab.cluster.fabric.state(&lab.topo.name).unwrap();
    let a = lab.cluster.endpoint(&state, "pod/t/a").unwrap();
    let b = lab.cluster.endpoint(&state, "pod/t/b").unwrap();
    // A line echo server on a's port 9000, a client in b with one connection.
    let listener = run_in_netns(&a.netns, || TcpListener::bind("0.0.0.0:9000"))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        for line in BufReader::new(s).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(w, "echo {line}");
        }
    });
    let to = format!("{}:9000", a.ip.unwrap());
    let client = run_in_netns(&b.netns, move || TcpStream::connect(to))
        .unwrap()
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut w = client.try_clone().unwrap();
    let mut r = BufReader::new(client);
    let mut roundtrip = |msg: &str| {
        writeln!(w, "{msg}").unwrap();
        let mut line = String::new();
        r.read_line(&mut line)
            .unwrap_or_else(|e| panic!("{msg}: {e}"));
        assert_eq!(line.trim(), format!("echo {msg}"));
    };
    roundtrip("before");

    for node in ["node-1", "node-2"] {
        let pids = lab.cluster.agent_pids(&lab.topo, node);
        assert_eq!(pids.len(), 1, "{node}: {pids:?}");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pids[0]),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    roundtrip("agents down");

    for node in ["node-1", "node-2"] {
        lab.cluster.start_agent(&lab.topo, node).unwrap();
        lab.cluster
            .wait_agent(&lab.topo, node, Duration::from_secs(20))
            .unwrap();
    }
    roundtrip("agents back");
    // The new agents found everything right and changed nothing.
    let log = std::fs::read_to_string(
        lab.cluster
            .node_dir(&lab.topo.name, "node-1")
            .join("agent.log"),
    )
    .unwrap();
    let after: Vec<&str> = log
        .rsplit("serving /healthz")
        .next()
        .unwrap()
        .lines()
        .skip(1)
        .collect();
    assert!(
        after.iter().all(|l| l.contains("first sync done")),
        "the restarted agent changed something: {after:?}"
    );
}

#[test]
fn down_after_kill_nine_leaves_nothing() {
    let lab = up(|_| {});
    lab.apply(&(pod("t", "a", "node-1") + &pod("t", "b", "node-2")));
    let name = lab.topo.name.clone();
    let namespaces: Vec<PathBuf> = strait_lab::fabric::lab_namespaces(&name)
        .unwrap()
        .into_iter()
        .map(|n| PathBuf::from("/run/netns").join(n))
        .collect();
    let pids = strait_lab::fabric::netns_pids(&namespaces);
    // Two agents, legacy-db's echo server, two pods' echo servers.
    assert_eq!(pids.len(), 5, "agents and echo servers: {pids:?}");
    for pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    lab.cluster.fabric.down(&name).unwrap();
    assert!(strait_lab::fabric::lab_namespaces(&name)
        .unwrap()
        .is_empty());
    assert!(strait_lab::fabric::netns_pids(&namespaces).is_empty());
    assert!(!lab.cluster.dir(&name).exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!("/run/netns/{name}-")),
        "namespace mounts left behind"
    );
}

/// The lab plays the control plane for Services: ClusterIP and NodePort
/// allocation, EndpointSlices following pods, labels and deletions.
#[test]
fn services_get_addresses_and_endpoint_slices() {
    let lab = up(|_| {});
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: t}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: http}]\n---\n";
    let web = |name: &str, node: &str, port: u16, app: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: t, labels: {{app: {app}}}}}\nspec:\n  nodeName: {node}\n  containers: [{{name: c, image: x, ports: [{{name: http, containerPort: {port}}}]}}]\n---\n")
    };
    lab.apply(
        &(svc.to_owned() + &web("w1", "node-1", 8080, "web") + &web("w2", "node-2", 8081, "web")),
    );
    let dir = lab.cluster.manifests(&lab.topo.name);
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join(f)).unwrap()).unwrap()
    };
    let s = read("service.t.web.json");
    assert_eq!(s["spec"]["clusterIP"], "10.43.0.10");
    assert_eq!(s["spec"]["ports"][0]["nodePort"], 30000);
    let slices = || -> Vec<(Vec<String>, i64)> {
        let mut v: Vec<(Vec<String>, i64)> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("endpointslice.t.web-")
            })
            .map(|e| {
                let j: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
                let ips = j["endpoints"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|ep| ep["addresses"][0].as_str().unwrap().to_owned())
                    .collect();
                (ips, j["ports"][0]["port"].as_i64().unwrap_or(0))
            })
            .collect();
        v.sort();
        v
    };
    // The named targetPort resolves per pod: two slices.
    let (w1, w2) = (lab.pod_ip("t", "w1"), lab.pod_ip("t", "w2"));
    assert_eq!(
        slices(),
        vec![(vec![w1.clone()], 8080), (vec![w2.clone()], 8081)]
    );
    // w2 stops matching the selector: it leaves the Service.
    lab.apply(&web("w2", "node-2", 8081, "other"));
    assert_eq!(slices(), vec![(vec![w1], 8080)]);
    // Deleting the last endpoint leaves an empty slice (no endpoints).
    lab.cluster
        .delete(&lab.topo.name, &web("w1", "node-1", 8080, "web"), "t")
        .unwrap();
    assert_eq!(slices(), vec![(vec![], 0)]);
    // Deleting the Service removes its slices.
    lab.cluster.delete(&lab.topo.name, svc, "t").unwrap();
    assert!(slices().is_empty());
}

/// externalTrafficPolicy Local: each node's agent answers the Service's
/// healthCheckNodePort with 200 where it has a ready local endpoint, 503
/// where it has none.
#[test]
fn health_check_node_port_follows_local_endpoints() {
    let lab = up(|_| {});
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: t}\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  selector: {app: web}\n  ports: [{port: 80}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: w1, namespace: t, labels: {app: web}}\nspec:\n  nodeName: node-1\n  containers: [{name: c, image: x, ports: [{containerPort: 80}]}]\n";
    lab.apply(yaml);
    let dir = lab.cluster.manifests(&lab.topo.name);
    let svc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("service.t.web.json")).unwrap()).unwrap();
    let port = svc["spec"]["healthCheckNodePort"]
        .as_u64()
        .expect("healthCheckNodePort allocated") as u16;
    let state = lab.cluster.fabric.state(&lab.topo.name).unwrap();
    let get = |node: &str| -> String {
        let ns = lab
            .cluster
            .endpoint(&state, &format!("node/{node}"))
            .unwrap()
            .netns;
        run_in_netns(&ns, move || -> std::io::Result<String> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            write!(s, "GET /healthz HTTP/1.1\r\nHost: lb\r\n\r\n")?;
            let mut out = String::new();
            std::io::Read::read_to_string(&mut s, &mut out)?;
            Ok(out)
        })
        .unwrap()
        .unwrap_or_else(|e| format!("error: {e}"))
    };
    lab.eventually(5, "node-1 answers 200 on the health-check port", || {
        get("node-1").starts_with("HTTP/1.1 200")
    });
    let n2 = get("node-2");
    assert!(n2.starts_with("HTTP/1.1 503"), "{n2}");
    assert!(n2.contains(r#""localEndpoints":0"#), "{n2}");
    // The endpoint moves to node-2: the answers swap.
    lab.apply(&yaml.replace("nodeName: node-1", "nodeName: node-2"));
    lab.eventually(5, "node-2 answers 200 after the pod moved", || {
        get("node-2").starts_with("HTTP/1.1 200")
    });
    assert!(get("node-1").starts_with("HTTP/1.1 503"));
}
