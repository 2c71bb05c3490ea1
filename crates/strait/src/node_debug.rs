//! `strait trace`, `strait doctor` and `strait flows` on a node: they read what the agent
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
    /// The CNI config directory to check ("" to skip; clap's path parser
    /// refuses an empty value, hence the plain OS string one).
    #[arg(
        long,
        default_value = "/etc/cni/net.d",
        value_parser = clap::builder::TypedValueParser::map(clap::builder::OsStringValueParser::new(), PathBuf::from)
    )]
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

#[path = "node_flows.rs"]
mod node_flows;
pub use node_flows::{flows, FlowsArgs};
