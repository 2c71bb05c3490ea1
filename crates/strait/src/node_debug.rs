//! `strait trace` and `strait doctor` on a node: both read what the agent
//! publishes after each sync (`/run/strait/state/`, see
//! strait_agent::trace_state) and compile the Plans from it.

use crate::lab_debug::{print_trace, TraceArgs};
use std::net::IpAddr;
use std::path::PathBuf;
use strait_kernel::{link, route, Netlink};
use strait_plan::RoutePlan;

pub const DEFAULT_STATE_DIR: &str = "/run/strait/state";

#[derive(clap::Args, Debug, Clone)]
pub struct NodeTraceArgs {
    #[command(flatten)]
    pub trace: TraceArgs,
    /// Where the agent publishes its config, LocalNode and snapshot.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DoctorArgs {
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// The CNI config directory to check ("" to skip).
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_dir: PathBuf,
    #[arg(long)]
    pub json: bool,
}

/// The node's routes that are not strait's, as trace takes them: static
/// and default routes, and ptp pods' /32 routes (connected routes trace
/// derives from the addresses).
fn host_routes() -> Result<Vec<RoutePlan>, String> {
    let mut nl = Netlink::open().map_err(|e| format!("netlink: {e}"))?;
    let links = link::all(&mut nl).map_err(|e| e.to_string())?;
    let routes = route::list(&mut nl).map_err(|e| e.to_string())?;
    Ok(routes
        .into_iter()
        .filter(|r| r.protocol != strait_plan::STRAIT_ROUTE_PROTO)
        // Routes via a gateway, and ptp pods' host routes (/32 to a veth).
        .filter(|r| r.gateway.is_some() || r.dst.prefix_len() == 32)
        .filter(|r| matches!(r.dst.addr(), IpAddr::V4(_)))
        .map(|r| RoutePlan {
            dst: r.dst,
            gateway: r.gateway,
            dev: links
                .iter()
                .find(|l| l.index == r.oif)
                .map(|l| l.name.clone()),
            onlink: r.onlink,
        })
        .collect())
}

/// `strait trace` on a node.
pub fn trace(a: &NodeTraceArgs) -> Result<i32, String> {
    let (cfg, local, snap) = strait_agent::trace_state::read(&a.state_dir)?;
    let mut world = strait_trace::World::from_cluster(&cfg, &snap, &local)?;
    let routes = host_routes()?;
    if let Some(me) = world.nodes.iter_mut().find(|n| n.local.name == local.name) {
        me.host_routes = routes;
    }
    print_trace(&world, &a.trace)
}

/// `strait doctor`: exit 0 healthy, 1 when something is wrong.
pub fn doctor(a: &DoctorArgs) -> Result<i32, String> {
    let (cfg, local, snap) = strait_agent::trace_state::read(&a.state_dir)?;
    let plan = strait_plan::compile(&cfg, &local, &snap).map_err(|e| e.to_string())?;
    let cni = (!a.cni_dir.as_os_str().is_empty()).then_some(a.cni_dir.as_path());
    let findings = strait_agent::doctor::check(&cfg, &local, &plan, None, cni)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&findings).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", strait_agent::doctor::human(&findings));
    }
    Ok(if findings.is_empty() { 0 } else { 1 })
}

#[derive(clap::Args, Debug, Clone)]
pub struct FlowsArgs {
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Only flows from or to this pod (NAMESPACE/NAME).
    #[arg(long)]
    pub pod: Option<String>,
    /// Only flows from or to pods of this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Only events of this kind: new, update, closed, dropped.
    #[arg(long)]
    pub verdict: Option<String>,
    /// Stop after this many events (0: run until interrupted).
    #[arg(long, default_value_t = 0)]
    pub count: usize,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// An event with names for its addresses.
#[derive(serde::Serialize)]
struct Named {
    kind: &'static str,
    proto: String,
    from: String,
    to: String,
    /// Where the connection really goes, when NAT changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    via: Option<String>,
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        n => format!("proto-{n}"),
    }
}

fn endpoint(world: &strait_trace::World, ip: std::net::Ipv4Addr, port: u16) -> String {
    let name = world.name_of(ip).unwrap_or_else(|| ip.to_string());
    if port == 0 {
        name
    } else {
        format!("{name}:{port}")
    }
}

/// `strait flows`: conntrack events of this node with names.
pub fn flows(a: &FlowsArgs) -> Result<i32, String> {
    use strait_agent::flows::{Event, Kind};
    let (cfg, local, snap) = strait_agent::trace_state::read(&a.state_dir)?;
    let world = strait_trace::World::from_cluster(&cfg, &snap, &local)?;
    let want_kind = match a.verdict.as_deref() {
        None => None,
        Some(v) => Some(
            [Kind::New, Kind::Update, Kind::Closed, Kind::Dropped]
                .into_iter()
                .find(|k| k.as_str() == v)
                .ok_or_else(|| {
                    format!("--verdict {v:?}: not one of new, update, closed, dropped")
                })?,
        ),
    };
    let pod_ips: Option<Vec<std::net::Ipv4Addr>> = match (&a.pod, &a.namespace) {
        (None, None) => None,
        (pod, ns) => {
            let ips: Vec<_> = world
                .pods
                .iter()
                .filter(|p| !p.host_network)
                .filter(|p| {
                    pod.as_ref()
                        .is_none_or(|x| *x == format!("{}/{}", p.namespace, p.name))
                })
                .filter(|p| ns.as_ref().is_none_or(|x| *x == p.namespace))
                .map(|p| p.ip)
                .collect();
            if ips.is_empty() {
                return Err(format!(
                    "--pod/--namespace: no pod matches {}",
                    pod.clone().or(ns.clone()).unwrap_or_default()
                ));
            }
            Some(ips)
        }
    };
    let mut seen = 0;
    strait_agent::flows::listen(|ev: Event| {
        if want_kind.is_some_and(|k| k != ev.kind) {
            return true;
        }
        if let Some(ips) = &pod_ips {
            let touches = [ev.orig.src, ev.orig.dst]
                .into_iter()
                .chain(ev.reply.map(|r| r.src))
                .any(|ip| ips.contains(&ip));
            if !touches {
                return true;
            }
        }
        let via = ev
            .reply
            .filter(|r| r.src != ev.orig.dst || r.sport != ev.orig.dport)
            .map(|r| endpoint(&world, r.src, r.sport));
        let n = Named {
            kind: ev.kind.as_str(),
            proto: proto_name(ev.orig.proto),
            from: endpoint(&world, ev.orig.src, ev.orig.sport),
            to: endpoint(&world, ev.orig.dst, ev.orig.dport),
            via,
        };
        if a.json {
            println!("{}", serde_json::to_string(&n).unwrap_or_default());
        } else {
            let via = n
                .via
                .as_deref()
                .map(|v| format!(" (to {v})"))
                .unwrap_or_default();
            println!("{:<7} {:<5} {} -> {}{via}", n.kind, n.proto, n.from, n.to);
        }
        seen += 1;
        a.count == 0 || seen < a.count
    })?;
    Ok(0)
}
