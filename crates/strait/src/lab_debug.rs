//! `strait lab trace|doctor|flows`: the node debugging commands run against
//! a lab. Trace builds its [`World`] from the lab: every node's Plan
//! compiled from the lab's agent config and manifests, the nodes' static
//! routes, the router's and external hosts' addresses and routes (the
//! topology), and what each pod and host listens on.
//!
//! Uses only library crates, so the lab e2e tests include this file.

use ipnet::Ipv4Net;
use strait_lab::{Cluster, FabricState};
use strait_plan::nft::L4Proto;
use strait_plan::{LocalNode, RoutePlan};
use strait_trace::{BoxView, World};

/// The arguments of `trace` (node and lab).
#[derive(clap::Args, Debug, Clone)]
pub struct TraceArgs {
    /// A pod (NAMESPACE/NAME), node, host/NAME, router or address.
    pub from: String,
    /// A pod, Service (svc/NAMESPACE/NAME), node, host or address.
    pub to: String,
    #[arg(long, default_value_t = 80)]
    pub port: u16,
    #[arg(long, default_value = "tcp")]
    pub proto: String,
    /// Which endpoint `numgen` picks when a Service has several (0-based).
    #[arg(long, default_value_t = 0)]
    pub pick: u32,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The lab's whole network as a trace World. `root` is the labs' state
/// directory (`/run/strait/lab` for the CLI).
pub fn lab_world(c: &Cluster, lab: &str) -> Result<World, String> {
    let state = FabricState::load(&c.paths, lab).map_err(|e| e.to_string())?;
    let topo = &state.topology;
    let cfg = strait_agent::run::load_config(&c.dir(lab).join("agent.yaml"))?;
    let snap = strait_model::ManifestStore::load(c.manifests(lab)).map_err(|e| e.to_string())?;
    let first = topo
        .nodes
        .first()
        .ok_or_else(|| format!("lab {lab} has no nodes"))?;
    let like = LocalNode {
        name: first.name.clone(),
        underlay_ip: first.ip,
        underlay_prefix: topo.underlay.subnet.prefix_len(),
        underlay_dev: underlay_dev(&state, &first.name),
        underlay_mtu: topo.underlay.mtu,
    };
    let mut world = World::from_cluster(&cfg, &snap, &like)?;
    for n in &mut world.nodes {
        if let Some(t) = topo.node(&n.local.name) {
            n.host_routes = t
                .static_routes
                .iter()
                .map(|r| RoutePlan {
                    dst: r.to.into(),
                    gateway: Some(r.via.into()),
                    dev: None,
                    onlink: false,
                })
                .collect();
        }
    }
    // What lab pods listen on is what the lab's echo servers bind.
    for p in &mut world.pods {
        if let Some(r) = c.pod_record(lab, &p.namespace, &p.name) {
            p.listens = listens(&r.tcp, &r.udp, &r.sctp);
        }
    }
    let net = |ip, subnet: Ipv4Net| Ipv4Net::new(ip, subnet.prefix_len()).expect("a prefix");
    let mut router = BoxView {
        name: "router".into(),
        kind: "router".into(),
        addresses: vec![net(topo.router.underlay_ip, topo.underlay.subnet)],
        routes: topo.router.routes.iter().map(|r| (r.to, r.via)).collect(),
        forwards: true,
        listens: Vec::new(),
    };
    for ext in &topo.external_networks {
        router.addresses.push(net(ext.router_ip, ext.subnet));
        for h in &ext.hosts {
            world.boxes.push(BoxView {
                name: h.name.clone(),
                kind: "host".into(),
                addresses: vec![net(h.ip, ext.subnet)],
                routes: vec![(Ipv4Net::default(), ext.router_ip)],
                forwards: false,
                // The lab's hosts run an echo server on tcp/80 and udp/80.
                listens: vec![(L4Proto::Tcp, 80), (L4Proto::Udp, 80)],
            });
        }
    }
    world.boxes.insert(0, router);
    Ok(world)
}

fn listens(tcp: &[u16], udp: &[u16], sctp: &[u16]) -> Vec<(L4Proto, u16)> {
    let with = |p: L4Proto, v: &[u16]| v.iter().map(move |port| (p, *port)).collect::<Vec<_>>();
    let mut out = with(L4Proto::Tcp, tcp);
    out.extend(with(L4Proto::Udp, udp));
    out.extend(with(L4Proto::Sctp, sctp));
    out
}

/// The node's interface on the underlay (`eth0` in labs built today).
fn underlay_dev(state: &FabricState, node: &str) -> String {
    state
        .namespaces
        .iter()
        .find(|n| n.kind == strait_lab::topology::NsKind::Node && n.name == node)
        .and_then(|n| {
            n.interfaces
                .iter()
                .find(|i| i.network == strait_lab::topology::UNDERLAY)
        })
        .map(|i| i.name.clone())
        .unwrap_or_else(|| "eth0".into())
}

/// Runs a trace over `world` and prints it; exit code 0 when answered, 1
/// when not.
pub fn print_trace(world: &World, a: &TraceArgs) -> Result<i32, String> {
    let proto = strait_trace::parse_proto(&a.proto)?;
    let t = strait_trace::trace(
        world,
        &a.from,
        &a.to,
        proto,
        a.port,
        strait_trace::Options { pick: a.pick },
    )?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&t).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", t.human());
    }
    Ok(if t.verdict.answered() { 0 } else { 1 })
}

/// `strait lab trace`.
pub fn trace(c: &Cluster, lab: &str, a: &TraceArgs) -> Result<i32, String> {
    let world = lab_world(c, lab)?;
    print_trace(&world, a)
}

#[derive(clap::Args, Debug, Clone)]
pub struct LabDoctorArgs {
    pub node: String,
    /// A CNI config directory to check too (labs pass configs directly).
    #[arg(long)]
    pub cni_dir: Option<std::path::PathBuf>,
    #[arg(long)]
    pub json: bool,
}

/// The command that runs `strait doctor` inside a lab node (the state its
/// agent publishes is in the lab's node directory).
pub fn doctor_command(
    c: &Cluster,
    lab: &str,
    a: &LabDoctorArgs,
    strait: &std::path::Path,
) -> Result<std::process::Command, String> {
    let mut cmd = node_command(c, lab, &a.node, "doctor", strait)?;
    cmd.arg("--cni-dir")
        .arg(a.cni_dir.clone().unwrap_or_default());
    if a.json {
        cmd.arg("--json");
    }
    Ok(cmd)
}

/// `strait lab doctor NODE`.
pub fn doctor(c: &Cluster, lab: &str, a: &LabDoctorArgs) -> Result<i32, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let status = doctor_command(c, lab, a, &exe)?
        .status()
        .map_err(|e| format!("ip netns exec: {e}"))?;
    Ok(status.code().unwrap_or(1))
}

#[derive(clap::Args, Debug, Clone)]
pub struct LabFlowsArgs {
    pub node: String,
    /// Passed on to `strait flows` (--pod, --namespace, --verdict, --count, --json).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// `ip netns exec <node> strait <sub> --state-dir <its agent's state> ...`.
pub fn node_command(
    c: &Cluster,
    lab: &str,
    node: &str,
    sub: &str,
    strait: &std::path::Path,
) -> Result<std::process::Command, String> {
    let state = FabricState::load(&c.paths, lab).map_err(|e| e.to_string())?;
    let ns = state
        .member(&strait_lab::Target::Node(node.to_string()))
        .map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &ns.netns])
        .arg(strait)
        .arg(sub)
        .arg("--state-dir")
        .arg(strait_agent::trace_state::dir_for(
            &c.node_dir(lab, node).join("node.json"),
        ));
    Ok(cmd)
}

/// `strait lab flows NODE [-- ARGS]`.
pub fn flows(c: &Cluster, lab: &str, a: &LabFlowsArgs) -> Result<i32, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let status = node_command(c, lab, &a.node, "flows", &exe)?
        .args(&a.args)
        .status()
        .map_err(|e| format!("ip netns exec: {e}"))?;
    Ok(status.code().unwrap_or(1))
}
