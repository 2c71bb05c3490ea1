//! `strait flows` on a node: conntrack events (new, update, closed) merged
//! with the packets NetworkPolicy dropped, which the agent republishes
//! from its drop log on `<state dir>/drops.sock` (strait_agent::drop_feed),
//! all with pod and Service names instead of addresses.

use super::DEFAULT_STATE_DIR;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use strait_agent::drop_feed::DropEvent;
use strait_agent::flows::{Event, Kind};
use strait_trace::World;

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
    /// Dropped: `ingress` (at the destination pod) or `egress` (at the
    /// source pod).
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<&'static str>,
    /// Dropped: every policy selecting the pod (`namespace/name`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    policies: Vec<String>,
    /// Dropped: the pod the policies select, by name.
    #[serde(skip)]
    policed: String,
}

impl Named {
    fn human(&self) -> String {
        let mut line = format!(
            "{:<7} {:<5} {} -> {}",
            self.kind, self.proto, self.from, self.to
        );
        if let Some(v) = &self.via {
            line.push_str(&format!(" (to {v})"));
        }
        if let Some(d) = self.direction {
            line.push_str(&format!(
                ": {d} of {}, selected by {}, no rule allows it",
                self.policed,
                self.policies.join(", ")
            ));
        }
        line
    }
}

fn proto_name(p: u8) -> String {
    match strait_plan::nft::L4Proto::from_number(p) {
        Some(l) if l.has_ports() || l == strait_plan::nft::L4Proto::Icmp => l.as_str().into(),
        _ => format!("proto-{p}"),
    }
}

fn endpoint(world: &World, ip: Ipv4Addr, port: u16) -> String {
    let name = world.name_of(ip).unwrap_or_else(|| ip.to_string());
    if port == 0 {
        name
    } else {
        format!("{name}:{port}")
    }
}

/// What flows names addresses and drop chains with; read again when a
/// drop names a chain it does not know (policies changed since).
struct Names {
    world: World,
    /// Drop chain log prefix -> (direction, policies).
    reasons: HashMap<String, (&'static str, Vec<String>)>,
}

fn load(state_dir: &Path) -> Result<Names, String> {
    let (cfg, local, snap) = strait_agent::trace_state::read(state_dir)?;
    let world = World::from_cluster(&cfg, &snap, &local)?;
    let reasons = world
        .nodes
        .iter()
        .filter(|n| n.local.name == local.name)
        .flat_map(|n| strait_plan::policy::drop_reasons(&n.plan.nft))
        .map(|(prefix, d, policies)| (prefix, (d.as_str(), policies)))
        .collect();
    Ok(Names { world, reasons })
}

enum Msg {
    Conntrack(Event),
    Drop(DropEvent),
    Failed(String),
}

fn named_conntrack(w: &World, ev: &Event) -> Named {
    let via = ev
        .reply
        .filter(|r| r.src != ev.orig.dst || r.sport != ev.orig.dport)
        .map(|r| endpoint(w, r.src, r.sport));
    Named {
        kind: ev.kind.as_str(),
        proto: proto_name(ev.orig.proto),
        from: endpoint(w, ev.orig.src, ev.orig.sport),
        to: endpoint(w, ev.orig.dst, ev.orig.dport),
        via,
        direction: None,
        policies: Vec::new(),
        policed: String::new(),
    }
}

fn named_drop(names: &Names, ev: &DropEvent) -> Named {
    let w = &names.world;
    let (direction, policies) = match names.reasons.get(&ev.prefix) {
        Some((d, p)) => (Some(*d), p.clone()),
        None => (None, vec![ev.prefix.clone()]),
    };
    Named {
        kind: Kind::Dropped.as_str(),
        proto: proto_name(ev.proto),
        from: endpoint(w, ev.src, 0),
        to: endpoint(w, ev.dst, ev.dport.unwrap_or(0)),
        via: None,
        direction,
        policies,
        policed: endpoint(
            w,
            if direction == Some("egress") {
                ev.src
            } else {
                ev.dst
            },
            0,
        ),
    }
}

fn parse_kind(v: &str) -> Result<Kind, String> {
    [Kind::New, Kind::Update, Kind::Closed, Kind::Dropped]
        .into_iter()
        .find(|k| k.as_str() == v)
        .ok_or_else(|| format!("--verdict {v:?}: not one of new, update, closed, dropped"))
}

/// The addresses of the pods `--pod`/`--namespace` select (`None`: all).
fn pod_filter(w: &World, a: &FlowsArgs) -> Result<Option<Vec<Ipv4Addr>>, String> {
    if a.pod.is_none() && a.namespace.is_none() {
        return Ok(None);
    }
    let ips: Vec<_> = w
        .pods
        .iter()
        .filter(|p| !p.host_network)
        .filter(|p| {
            a.pod
                .as_ref()
                .is_none_or(|x| *x == format!("{}/{}", p.namespace, p.name))
        })
        .filter(|p| a.namespace.as_ref().is_none_or(|x| *x == p.namespace))
        .map(|p| p.ip)
        .collect();
    if ips.is_empty() {
        return Err(format!(
            "--pod/--namespace: no pod matches {}",
            a.pod.clone().or(a.namespace.clone()).unwrap_or_default()
        ));
    }
    Ok(Some(ips))
}

/// `strait flows`: conntrack events and policy drops of this node, named.
pub fn flows(a: &FlowsArgs) -> Result<i32, String> {
    let want = a.verdict.as_deref().map(parse_kind).transpose()?;
    let mut names = load(&a.state_dir)?;
    let pod_ips = pod_filter(&names.world, a)?;
    let (tx, rx) = std::sync::mpsc::channel();
    if want.is_none_or(|k| k != Kind::Dropped) {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let r = strait_agent::flows::listen(|ev| tx.send(Msg::Conntrack(ev)).is_ok());
            if let Err(e) = r {
                let _ = tx.send(Msg::Failed(format!("conntrack events: {e}")));
            }
        });
    }
    if want.is_none_or(|k| k == Kind::Dropped) {
        let path = strait_agent::drop_feed::socket_path(&a.state_dir);
        std::thread::spawn(move || {
            let r = strait_agent::drop_feed::follow(&path, |ev| tx.send(Msg::Drop(ev)).is_ok());
            if let Err(e) = r {
                // Without the feed, conntrack events still come.
                let _ = tx.send(Msg::Failed(format!("policy drops: {e}")));
            }
        });
    } else {
        drop(tx);
    }
    let mut seen = 0;
    for msg in rx {
        let (ends, named) = match msg {
            Msg::Failed(e) if want == Some(Kind::Dropped) => return Err(e),
            Msg::Failed(e) => {
                eprintln!("strait flows: {e}");
                continue;
            }
            Msg::Conntrack(ev) => {
                if want.is_some_and(|k| k != ev.kind) {
                    continue;
                }
                let mut ends = vec![ev.orig.src, ev.orig.dst];
                ends.extend(ev.reply.map(|r| r.src));
                (ends, named_conntrack(&names.world, &ev))
            }
            Msg::Drop(ev) => {
                if !names.reasons.contains_key(&ev.prefix) {
                    if let Ok(n) = load(&a.state_dir) {
                        names = n;
                    }
                }
                (vec![ev.src, ev.dst], named_drop(&names, &ev))
            }
        };
        if let Some(ips) = &pod_ips {
            if !ends.iter().any(|ip| ips.contains(ip)) {
                continue;
            }
        }
        if a.json {
            println!("{}", serde_json::to_string(&named).unwrap_or_default());
        } else {
            println!("{}", named.human());
        }
        seen += 1;
        if a.count != 0 && seen >= a.count {
            break;
        }
    }
    Ok(0)
}
