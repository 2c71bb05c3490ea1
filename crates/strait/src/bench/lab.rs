//! Lab benchmark, each part against its peer in the same run:
//!
//! - Throughput: one iperf3 TCP stream from a pod on node-2 to a pod on
//!   node-1, over host-gw and over VXLAN, against the raw path (two
//!   namespaces joined by one veth pair). Rounds are interleaved (raw,
//!   host-gw, vxlan, raw, ...) and medians compared, so machine noise hits
//!   every path alike.
//! - Node join: with N simulated nodes in the cluster (Node objects whose
//!   VTEPs are not real), the time from a new Node object being written to
//!   both real agents' kernels holding its route, FDB and neighbour entries.

use super::report::{machine, write_section};
use crate::plugins::strait_cni_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use strait_lab::cluster::objects;
use strait_lab::topology::Backend;
use strait_lab::{run_in_netns, Binaries, Cluster, LabPaths, Netns, Topology};

fn iperf(server_ns: &str, client_ns: &str, server_ip: &str, seconds: u64) -> Result<f64, String> {
    let mut server = Command::new("ip")
        .args([
            "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", "5201",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start iperf3 server (is iperf3 installed?): {e}"))?;
    // Wait until the server listens (a client that comes too early fails).
    let mut out = None;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let o = Command::new("ip")
            .args([
                "netns", "exec", client_ns, "iperf3", "-c", server_ip, "-p", "5201", "-t",
            ])
            .arg(seconds.to_string())
            .arg("-J")
            .output()
            .map_err(|e| e.to_string())?;
        if o.status.success() {
            out = Some(o);
            break;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let out =
        out.ok_or_else(|| format!("iperf3 from {client_ns} to {server_ip} never connected"))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or_else(|| "iperf3 printed no sum_received".to_owned())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Path2 {
    label: &'static str,
    server_ns: String,
    client_ns: String,
    server_ip: String,
    samples: Vec<f64>,
}

fn lab_with_pods(c: &Cluster, name: &str, backend: Backend) -> Result<Path2, String> {
    let mut topo = Topology::default_lab();
    topo.name = name.into();
    topo.backend = backend;
    c.up(&topo, Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let pods = "apiVersion: v1\nkind: Pod\nmetadata: {name: server, namespace: bench}\nspec: {nodeName: node-1, containers: [{name: c, image: x}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: client, namespace: bench}\nspec: {nodeName: node-2, containers: [{name: c, image: x}]}\n";
    c.apply(name, pods, "bench").map_err(|e| e.to_string())?;
    let s = c
        .pod_record(name, "bench", "server")
        .ok_or("no server pod")?;
    let cl = c
        .pod_record(name, "bench", "client")
        .ok_or("no client pod")?;
    Ok(Path2 {
        label: if backend == Backend::Vxlan {
            "vxlan"
        } else {
            "host-gw"
        },
        server_ns: s.netns,
        client_ns: cl.netns,
        server_ip: s.ip,
        samples: vec![],
    })
}

fn routes_for(netns: &Path, dst: &str) -> Result<bool, String> {
    let dst = dst.to_owned();
    run_in_netns(netns, move || -> Result<bool, String> {
        let mut nl = strait_kernel::Netlink::open().map_err(|e| e.to_string())?;
        let routes = strait_kernel::route::list(&mut nl).map_err(|e| e.to_string())?;
        let Some(r) = routes
            .iter()
            .find(|r| r.dst.to_string() == dst && r.protocol == 0x5a)
        else {
            return Ok(false);
        };
        let Some(gw) = r.gateway else {
            return Ok(false);
        };
        let neigh =
            strait_kernel::neighbour::neighbours(&mut nl, r.oif).map_err(|e| e.to_string())?;
        let fdb = strait_kernel::neighbour::fdb(&mut nl, r.oif).map_err(|e| e.to_string())?;
        let mac = neigh.iter().find(|n| n.ip == gw).map(|n| n.mac);
        Ok(mac.is_some_and(|m| fdb.iter().any(|f| f.mac == m)))
    })
    .map_err(|e| e.to_string())?
}

pub fn run(
    seconds: u64,
    rounds: usize,
    nodes: usize,
    write: Option<PathBuf>,
) -> Result<(), String> {
    if rounds == 0 || nodes == 0 || nodes > 200 {
        return Err(format!(
            "--rounds must be at least 1 and --nodes 1-200; got {rounds} and {nodes}"
        ));
    }
    let dir = strait_cni_dir(None)?;
    let root = PathBuf::from(format!("/run/strait-bench-lab-{}", std::process::id()));
    let c = Cluster::new(LabPaths::new(&root), Binaries::in_dir(&dir));
    let result = measure(&c, seconds, rounds, nodes);
    for lab in ["benchhg", "benchvx", "benchjoin"] {
        let _ = c.fabric.down(lab);
    }
    let _ = std::fs::remove_dir_all(&root);
    let (table, summary, join) = result?;
    println!("{table}\n{summary}\n\n{join}");
    if let Some(file) = write {
        let body = format!(
            "## Lab: pod-to-pod throughput and node-join convergence\n\n\
             Command: `sudo ./scripts/bench lab` (= `strait bench lab --seconds {seconds} --rounds {rounds} --nodes {nodes} --write docs/benchmarks.md`, release build)\n\n\
             Machine: {}\n\n{table}\n{summary}\n\n{join}\n\n\
             Throughput is one iperf3 TCP stream between namespaces on one machine, so it is bound by the CPU \
             that copies through veths (and encapsulates for VXLAN), not by a wire; the ratio to the raw veth path is what \
             this measures. Node join: the simulated nodes exist only as Node objects (their VTEP addresses are \
             not real hosts), two real agents (node-1, node-2) program them; the time is from the new Node object \
             being written to both agents' kernels holding its route, FDB and neighbour entries (polled every 5 ms).",
            machine()
        );
        write_section(&file, "lab", &body)?;
        eprintln!("bench: wrote {}", file.display());
    }
    Ok(())
}

fn measure(
    c: &Cluster,
    seconds: u64,
    rounds: usize,
    nodes: usize,
) -> Result<(String, String, String), String> {
    // The raw path: two namespaces and one veth pair.
    let a = Netns::unique("stbraw").map_err(|e| e.to_string())?;
    let b = Netns::unique("stbraw").map_err(|e| e.to_string())?;
    a.exec_ok(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &b.name,
    ])
    .map_err(|e| e.to_string())?;
    for (ns, ip) in [(&a, "10.99.0.1/24"), (&b, "10.99.0.2/24")] {
        ns.exec_ok(&["ip", "addr", "add", ip, "dev", "eth0"])
            .map_err(|e| e.to_string())?;
        ns.exec_ok(&["ip", "link", "set", "eth0", "up"])
            .map_err(|e| e.to_string())?;
    }
    let mut paths = vec![Path2 {
        label: "raw veth pair",
        server_ns: a.name.clone(),
        client_ns: b.name.clone(),
        server_ip: "10.99.0.1".into(),
        samples: vec![],
    }];
    eprintln!("bench: building two labs (host-gw, vxlan) ...");
    paths.push(lab_with_pods(c, "benchhg", Backend::HostGw)?);
    paths.push(lab_with_pods(c, "benchvx", Backend::Vxlan)?);
    // The lab's own underlay between the two nodes, no pods, no strait: the
    // ceiling for any pod network in this lab (veth, switch bridge, veth).
    let topo_hg = c
        .fabric
        .state("benchhg")
        .map_err(|e| e.to_string())?
        .topology;
    paths.push(Path2 {
        label: "node to node over the lab underlay (no pod network)",
        server_ns: topo_hg.netns(strait_lab::topology::NsKind::Node, "node-1"),
        client_ns: topo_hg.netns(strait_lab::topology::NsKind::Node, "node-2"),
        server_ip: topo_hg.nodes[0].ip.to_string(),
        samples: vec![],
    });
    for r in 0..rounds {
        for p in paths.iter_mut() {
            eprintln!("bench: round {}/{rounds}: {} ...", r + 1, p.label);
            let bps = iperf(&p.server_ns, &p.client_ns, &p.server_ip, seconds)?;
            p.samples.push(bps);
        }
    }
    let mut table =
        String::from("| path | median Gbit/s | samples (Gbit/s) | vs raw |\n|---|---|---|---|\n");
    let raw = median(&mut paths[0].samples.clone());
    let mut ratios = Vec::new();
    for p in paths.iter_mut() {
        let m = median(&mut p.samples.clone());
        let samples: Vec<String> = p
            .samples
            .iter()
            .map(|s| format!("{:.2}", s / 1e9))
            .collect();
        table.push_str(&format!(
            "| {} | {:.2} | {} | {:.0}% |\n",
            p.label,
            m / 1e9,
            samples.join(", "),
            100.0 * m / raw
        ));
        ratios.push(100.0 * m / raw);
    }
    let summary = format!(
        "host-gw reaches {:.0}% of the raw path (target at least 90%), vxlan {:.0}% (target at least 75%); \
         the lab's underlay alone, node to node, reaches {:.0}%, so against that ceiling host-gw is at {:.0}% and vxlan at {:.0}%.",
        ratios[1], ratios[2], ratios[3], 100.0 * ratios[1] / ratios[3], 100.0 * ratios[2] / ratios[3]
    );
    for lab in ["benchhg", "benchvx"] {
        let _ = c.fabric.down(lab);
    }

    eprintln!("bench: node join with {nodes} simulated nodes ...");
    let mut topo = Topology::default_lab();
    topo.name = "benchjoin".into();
    c.up(&topo, Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let manifests = c.manifests("benchjoin");
    let node_ns: Vec<PathBuf> = ["node-1", "node-2"]
        .iter()
        .map(|n| {
            PathBuf::from("/run/netns").join(topo.netns(strait_lab::topology::NsKind::Node, n))
        })
        .collect();
    let sim = |i: usize| {
        (
            format!("sim-{i}"),
            format!("192.168.1.{}", 20 + i),
            format!("10.42.{}.0/24", 10 + i),
        )
    };
    let start = Instant::now();
    for i in 0..nodes {
        let (n, ip, cidr) = sim(i);
        objects::write_node(&manifests, &n, &ip, &cidr).map_err(|e| e.to_string())?;
    }
    let last = sim(nodes - 1).2;
    wait_until(&node_ns, &last, Duration::from_secs(60))?;
    let bulk = start.elapsed();
    let mut joins = Vec::new();
    for k in 0..5 {
        let (n, ip, cidr) = sim(nodes + k);
        let start = Instant::now();
        objects::write_node(&manifests, &n, &ip, &cidr).map_err(|e| e.to_string())?;
        wait_until(&node_ns, &cidr, Duration::from_secs(30))?;
        joins.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = c.fabric.down("benchjoin");
    let mut sorted = joins.clone();
    let med = median(&mut sorted);
    let join = format!(
        "Node join with {nodes} nodes already in the cluster: median {med:.0} ms, max {:.0} ms over 5 joins ({}); \
         all {nodes} simulated nodes programmed on both agents {:.2} s after their Node objects were written at once.",
        joins.iter().cloned().fold(0.0, f64::max),
        joins.iter().map(|j| format!("{j:.0} ms")).collect::<Vec<_>>().join(", "),
        bulk.as_secs_f64()
    );
    Ok((table, summary, join))
}

fn wait_until(node_ns: &[PathBuf], cidr: &str, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    let mut pending: Vec<&PathBuf> = node_ns.iter().collect();
    while !pending.is_empty() {
        if start.elapsed() > timeout {
            return Err(format!("{cidr} not programmed within {timeout:?}"));
        }
        let mut still = Vec::new();
        for ns in pending {
            if !routes_for(ns, cidr)? {
                still.push(ns);
            }
        }
        pending = still;
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
