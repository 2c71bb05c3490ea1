//! The path walker: moves the packet hop by hop over the [`World`] the way
//! the kernels would: into a node (pod veth into the bridge, the underlay,
//! VXLAN decapsulation), its hooks in kernel order (prerouting, then input
//! or forward, postrouting; locally generated: route, output, reroute after
//! DNAT, postrouting), the route lookup, out of it (bridge to a pod, VXLAN
//! neighbour + FDB to the peer's VTEP, underlay next hop), across routers,
//! to the destination; then the destination's answer back, with conntrack
//! undoing the NAT on the nodes that did it.
//!
//! Bridged pod-to-pod traffic also passes the inet hooks: strait runs with
//! br_netfilter (`bridge-nf-call-iptables=1`), which `strait doctor` checks.

use crate::nft_eval::{eval_hook, HookCtx, Nat, Outcome};
use crate::packet::{Packet, SOURCE_PORT};
use crate::report::{Pick, Step, Trace, Verdict};
use crate::routes::{self, Hop};
use crate::world::{box_label, Start, World};
use strait_plan::nft::{CtState, Hook, L4Proto};

/// Longest path followed before calling it a loop.
const MAX_HOPS: usize = 40;

/// Trace options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Which element `numgen` picks (endpoint index among N).
    pub pick: u32,
}

/// Who received a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Pod(usize),
    Node(usize),
    Box(usize),
}

enum End {
    Delivered(Target, Packet),
    Dropped(String, String),
    Refused(String, String),
}

struct Walker<'w> {
    w: &'w World,
    steps: Vec<Step>,
    /// Per node: (packet as it entered, the reply tuple NAT made it expect).
    ct: Vec<Vec<(Packet, Packet)>>,
    pick: u32,
    hops: usize,
    /// The most choices a numgen had on the way (1: none).
    choices: u32,
}

/// Traces `proto`/`port` from `from` to `to` (see [`World::resolve_from`]
/// and [`World::resolve_to`] for the names they take).
pub fn trace(
    world: &World,
    from: &str,
    to: &str,
    proto: L4Proto,
    port: u16,
    opts: Options,
) -> Result<Trace, String> {
    let (start, src) = world.resolve_from(from)?;
    let dst = world.resolve_to(to)?;
    if proto.has_ports() && port == 0 {
        return Err(format!("--port: {} needs a port", proto.as_str()));
    }
    let pkt = Packet {
        src,
        dst,
        proto,
        sport: if proto.has_ports() { SOURCE_PORT } else { 0 },
        dport: if proto.has_ports() { port } else { 0 },
    };
    let origin = match start {
        Start::Pod(i) => Target::Pod(i),
        Start::Node(i) => Target::Node(i),
        Start::Box(i) => Target::Box(i),
    };
    let (steps, reply, verdict, choices) = walk_once(world, origin, pkt, opts.pick);
    // A random endpoint choice on the way: trace the other choices too and
    // say when the outcome depends on it.
    let mut other_picks = Vec::new();
    for pick in (0..choices.min(MAX_PICKS)).filter(|p| *p != opts.pick) {
        let (steps, _, verdict, _) = walk_once(world, origin, pkt, pick);
        other_picks.push(Pick {
            pick,
            endpoint: first_dnat(&steps),
            verdict,
        });
    }
    Ok(Trace {
        from: format!("{from} ({src})"),
        to: world.label(dst),
        packet: pkt,
        endpoint: first_dnat(&steps),
        steps,
        reply,
        verdict,
        other_picks,
    })
}

/// Most endpoint choices traced besides the first.
const MAX_PICKS: u32 = 16;

/// The first DNAT target on a path, as `addr:port`.
fn first_dnat(steps: &[Step]) -> Option<String> {
    steps.iter().flat_map(|s| &s.rules).find_map(|h| {
        let at = h.effect.find("dnat to ")?;
        let rest = &h.effect[at + "dnat to ".len()..];
        Some(rest.split_whitespace().next()?.to_string())
    })
}

/// One walk there and back with `pick`: (steps, reply steps, verdict, the
/// most choices a numgen had on the way).
fn walk_once(
    world: &World,
    origin: Target,
    pkt: Packet,
    pick: u32,
) -> (Vec<Step>, Vec<Step>, Verdict, u32) {
    let mut wk = Walker {
        w: world,
        steps: Vec::new(),
        ct: vec![Vec::new(); world.nodes.len()],
        pick,
        hops: 0,
        choices: 1,
    };
    let end = wk.send(origin, pkt, CtState::New);
    let answer = match &end {
        End::Delivered(target, got) => Some(wk.answers(*target, got)),
        _ => None,
    };
    let steps = std::mem::take(&mut wk.steps);
    let (verdict, reply) = match end {
        End::Dropped(at, reason) => (Verdict::Dropped { at, reason }, Vec::new()),
        End::Refused(at, reason) => (Verdict::Refused { at, reason }, Vec::new()),
        End::Delivered(target, got) => match answer.expect("set for Delivered") {
            Err((at, reason)) => (Verdict::Refused { at, reason }, Vec::new()),
            Ok(by) => {
                wk.hops = 0;
                let back = wk.send(target, got.reply(), CtState::Established);
                let verdict = match back {
                    End::Delivered(t, r) if t == origin && r.dst == pkt.src && r.src == pkt.dst => {
                        Verdict::Answered { by }
                    }
                    End::Delivered(t, r) => Verdict::NoReply {
                        at: wk.target_label(t),
                        reason: format!(
                            "the answer arrives as {r}, but the sender expects it from {} to {}: the NAT of the way there was not undone on the way back (asymmetric path)",
                            pkt.dst, pkt.src
                        ),
                    },
                    End::Dropped(at, reason) | End::Refused(at, reason) => {
                        Verdict::NoReply { at, reason }
                    }
                };
                (verdict, std::mem::take(&mut wk.steps))
            }
        },
    };
    (steps, reply, verdict, wk.choices)
}

impl Walker<'_> {
    fn step(&mut self, at: &str, kind: &str, detail: String) {
        self.steps.push(Step {
            at: at.to_string(),
            kind: kind.to_string(),
            detail,
            rules: Vec::new(),
        });
    }

    fn target_label(&self, t: Target) -> String {
        match t {
            Target::Pod(i) => {
                let p = &self.w.pods[i];
                format!("pod/{}/{}", p.namespace, p.name)
            }
            Target::Node(i) => format!("node/{}", self.w.nodes[i].local.name),
            Target::Box(i) => box_label(&self.w.boxes[i]),
        }
    }

    /// A packet leaving `from` (a pod, a node's own process, a host).
    fn send(&mut self, from: Target, pkt: Packet, ct: CtState) -> End {
        match from {
            Target::Pod(i) => {
                let p = &self.w.pods[i];
                let Some(n) = self.w.node(&p.node) else {
                    return End::Dropped(
                        self.target_label(from),
                        format!("the pod's node {} is not in the cluster", p.node),
                    );
                };
                let bridge = self.w.nodes[n].plan.bridge.name.clone();
                let at = self.target_label(from);
                if pkt.dst == p.ip {
                    // To its own address: over the pod's loopback, never
                    // leaving its namespace.
                    self.step(&at, "send", format!("{pkt} to itself, over lo"));
                    return End::Delivered(from, pkt);
                }
                self.step(
                    &at,
                    "send",
                    format!(
                        "{pkt} out of eth0, over its veth into {bridge} on node/{}",
                        p.node
                    ),
                );
                self.node_in(n, &bridge, pkt, ct)
            }
            Target::Node(n) => self.node_out(n, pkt, ct),
            Target::Box(b) => {
                let at = self.target_label(from);
                self.step(&at, "send", pkt.to_string());
                self.box_route(b, pkt, ct)
            }
        }
    }

    fn node_at(&self, n: usize) -> String {
        format!("node/{}", self.w.nodes[n].local.name)
    }

    /// Runs one hook; records the step. `Err` ends the path.
    #[allow(clippy::too_many_arguments)]
    fn hook(
        &mut self,
        n: usize,
        hook: Hook,
        iif: Option<&str>,
        oif: Option<&str>,
        ct: CtState,
        pkt: Packet,
        mark: &mut u32,
    ) -> Result<(Packet, Vec<Nat>), End> {
        let at = self.node_at(n);
        let w = self.w;
        let node = &w.nodes[n];
        let local = move |ip| routes::is_local(node, ip);
        let ctx = HookCtx {
            hook,
            iif,
            oif,
            ct,
            is_local: &local,
            pick: self.pick,
        };
        let (res, out) = eval_hook(&node.plan.nft, &ctx, pkt, *mark);
        *mark = res.mark;
        self.choices = self.choices.max(res.choices);
        let detail = match &res.outcome {
            Outcome::Accept if out != pkt => format!("accept, now {out}"),
            Outcome::Accept => "accept".to_string(),
            Outcome::Drop { chain, rule } => match rule {
                Some(r) => format!("DROP by {chain} rule {r}"),
                None => format!("DROP by the policy of {chain}"),
            },
            Outcome::Reject { chain, rule, with } => {
                format!("REJECT ({with}) by {chain} rule {rule}")
            }
        };
        let dropped = matches!(res.outcome, Outcome::Drop { .. });
        let detail = match (
            dropped,
            crate::policy_why::explain(self.w, &res.hits, &out, dropped),
        ) {
            (true, Some(why)) => format!("{detail}: {}", why.join("; ")),
            (false, Some(why)) => format!("{detail}; {}", why.join("; ")),
            (_, None) => detail,
        };
        self.steps.push(Step {
            at: at.clone(),
            kind: hook.as_str().to_string(),
            detail: detail.clone(),
            rules: res.hits,
        });
        match res.outcome {
            Outcome::Accept => Ok((out, res.nat)),
            Outcome::Drop { .. } => Err(End::Dropped(at, detail)),
            Outcome::Reject { .. } => Err(End::Refused(at, detail)),
        }
    }

    fn unnat(&mut self, n: usize, pkt: Packet) -> Packet {
        let found = self.ct[n].iter().find(|(_, r)| *r == pkt).map(|(o, _)| *o);
        match found {
            Some(orig) => {
                let back = orig.reply();
                let at = self.node_at(n);
                self.step(
                    &at,
                    "conntrack",
                    format!("reply of {orig}: NAT undone, now {back}"),
                );
                back
            }
            None => pkt,
        }
    }

    fn record(&mut self, n: usize, ct: CtState, before: Packet, after: Packet) {
        if ct == CtState::New && before != after {
            self.ct[n].push((before, after.reply()));
        }
    }

    fn masquerade(&mut self, n: usize, hop: &Hop, pkt: &mut Packet, nat: &[Nat]) {
        if nat.iter().any(|x| matches!(x, Nat::Masquerade)) {
            let addr = routes::dev_address(&self.w.nodes[n], &hop.dev);
            let at = self.node_at(n);
            self.step(
                &at,
                "snat",
                format!(
                    "masquerade: source {} becomes {addr} (address of {})",
                    pkt.src, hop.dev
                ),
            );
            pkt.src = addr;
        }
    }

    fn route(&mut self, n: usize, pkt: &Packet) -> Result<Hop, End> {
        let at = self.node_at(n);
        match routes::lookup(&self.w.nodes[n], pkt.dst) {
            Ok(hop) => {
                self.step(&at, "route", format!("{} -> {}", pkt.dst, hop.text));
                Ok(hop)
            }
            Err(why) => {
                self.step(&at, "route", format!("NO ROUTE to {}: {why}", pkt.dst));
                Err(End::Dropped(
                    at.clone(),
                    format!("route lookup on {at} found no route to {}: {why}", pkt.dst),
                ))
            }
        }
    }

    /// A packet arriving on node `n` through `iif`.
    fn node_in(&mut self, n: usize, iif: &str, pkt: Packet, ct: CtState) -> End {
        self.hops += 1;
        if self.hops > MAX_HOPS {
            return End::Dropped(self.node_at(n), "routing loop".into());
        }
        let pkt = if ct == CtState::Established {
            self.unnat(n, pkt)
        } else {
            pkt
        };
        let before = pkt;
        let mut mark = 0;
        let (pkt, _) = match self.hook(n, Hook::Prerouting, Some(iif), None, ct, pkt, &mut mark) {
            Ok(x) => x,
            Err(e) => return e,
        };
        if routes::is_local(&self.w.nodes[n], pkt.dst) {
            if let Err(e) = self.hook(n, Hook::Input, Some(iif), None, ct, pkt, &mut mark) {
                return e;
            }
            self.record(n, ct, before, pkt);
            return End::Delivered(Target::Node(n), pkt);
        }
        let hop = match self.route(n, &pkt) {
            Ok(h) => h,
            Err(e) => return e,
        };
        let oif = Some(hop.dev.as_str());
        if let Err(e) = self.hook(n, Hook::Forward, Some(iif), oif, ct, pkt, &mut mark) {
            return e;
        }
        let (mut pkt, nat) =
            match self.hook(n, Hook::Postrouting, Some(iif), oif, ct, pkt, &mut mark) {
                Ok(x) => x,
                Err(e) => return e,
            };
        self.masquerade(n, &hop, &mut pkt, &nat);
        self.record(n, ct, before, pkt);
        self.egress(n, &hop, pkt, ct)
    }

    /// A packet a process on node `n` (or a hostNetwork pod) sends.
    fn node_out(&mut self, n: usize, pkt: Packet, ct: CtState) -> End {
        self.hops += 1;
        let at = self.node_at(n);
        let pkt = if ct == CtState::Established {
            self.unnat(n, pkt)
        } else {
            self.step(&at, "send", format!("{pkt} from a process on the node"));
            pkt
        };
        // To one of its own addresses: the route is `local` (loopback),
        // but the output hook still runs (a NodePort on the node's own
        // address is DNATed there).
        let to_self = routes::is_local(&self.w.nodes[n], pkt.dst);
        let mut hop = if to_self {
            self.step(&at, "route", format!("{} is local (dev lo)", pkt.dst));
            Hop {
                dev: "lo".into(),
                gateway: None,
                text: "local".into(),
            }
        } else {
            match self.route(n, &pkt) {
                Ok(h) => h,
                Err(e) => return e,
            }
        };
        let before = pkt;
        let mut mark = 0;
        let oif = hop.dev.clone();
        let (pkt, _) = match self.hook(n, Hook::Output, None, Some(&oif), ct, pkt, &mut mark) {
            Ok(x) => x,
            Err(e) => return e,
        };
        if pkt.dst != before.dst {
            if routes::is_local(&self.w.nodes[n], pkt.dst) {
                self.record(n, ct, before, pkt);
                return End::Delivered(Target::Node(n), pkt);
            }
            self.step(&at, "reroute", format!("after DNAT: {pkt}"));
            hop = match self.route(n, &pkt) {
                Ok(h) => h,
                Err(e) => return e,
            };
        } else if to_self {
            let lo = Some("lo");
            if let Err(e) = self.hook(n, Hook::Postrouting, None, lo, ct, pkt, &mut mark) {
                return e;
            }
            if let Err(e) = self.hook(n, Hook::Input, lo, None, ct, pkt, &mut mark) {
                return e;
            }
            return End::Delivered(Target::Node(n), pkt);
        }
        let oif = Some(hop.dev.as_str());
        let (mut pkt, nat) = match self.hook(n, Hook::Postrouting, None, oif, ct, pkt, &mut mark) {
            Ok(x) => x,
            Err(e) => return e,
        };
        self.masquerade(n, &hop, &mut pkt, &nat);
        self.record(n, ct, before, pkt);
        self.egress(n, &hop, pkt, ct)
    }

    /// Out of node `n` by `hop`.
    fn egress(&mut self, n: usize, hop: &Hop, pkt: Packet, ct: CtState) -> End {
        let node = &self.w.nodes[n];
        let at = self.node_at(n);
        let next = hop.gateway.unwrap_or(pkt.dst);
        if hop.dev == node.plan.bridge.name {
            let found = self
                .w
                .pods
                .iter()
                .position(|p| p.ip == next && !p.host_network && p.node == node.local.name);
            return match found {
                Some(i) => {
                    let label = self.target_label(Target::Pod(i));
                    self.step(
                        &at,
                        "bridge",
                        format!("{} -> veth -> {label} eth0", hop.dev),
                    );
                    End::Delivered(Target::Pod(i), pkt)
                }
                None => {
                    let reason = format!(
                        "no pod on {at} holds {next}: ARP for it on {} gets no answer",
                        hop.dev
                    );
                    self.step(&at, "bridge", reason.clone());
                    End::Dropped(at, reason)
                }
            };
        }
        if let Some(vx) = node.plan.vxlan.as_ref().filter(|v| v.name == hop.dev) {
            let Some(neigh) = node.plan.neighbours.iter().find(|e| e.ip == next) else {
                let reason = format!("no neighbour entry for {next} on {}", vx.name);
                self.step(&at, "vxlan", reason.clone());
                return End::Dropped(at, reason);
            };
            let Some(fdb) = node.plan.fdb.iter().find(|f| f.mac == neigh.mac) else {
                let reason = format!(
                    "no FDB entry for {} on {}",
                    strait_plan::format_mac(&neigh.mac),
                    vx.name
                );
                self.step(&at, "vxlan", reason.clone());
                return End::Dropped(at, reason);
            };
            let vtep = match fdb.dst {
                std::net::IpAddr::V4(v) => v,
                std::net::IpAddr::V6(v) => {
                    return End::Dropped(at, format!("FDB points at IPv6 VTEP {v}"))
                }
            };
            self.step(
                &at,
                "vxlan",
                format!(
                    "neighbour {next} is {}, FDB sends it to VTEP {vtep}: encapsulated as udp {} -> {vtep}:{} vni {}",
                    strait_plan::format_mac(&neigh.mac),
                    vx.local,
                    vx.port,
                    vx.vni
                ),
            );
            let Some(peer) = self
                .w
                .nodes
                .iter()
                .position(|m| m.local.underlay_ip == vtep)
            else {
                return End::Dropped(at, format!("no node has the VTEP address {vtep}"));
            };
            let peer_at = self.node_at(peer);
            let Some(pvx) = self.w.nodes[peer].plan.vxlan.clone() else {
                let reason =
                    format!("{peer_at} has no VXLAN device: the encapsulated packet is not taken");
                return End::Dropped(peer_at, reason);
            };
            if pvx.vni != vx.vni || pvx.port != vx.port {
                return End::Dropped(
                    peer_at,
                    format!(
                        "VNI/port {}/{} differ from the sender's {}/{}",
                        pvx.vni, pvx.port, vx.vni, vx.port
                    ),
                );
            }
            self.step(&peer_at, "vxlan", format!("decapsulated on {}", pvx.name));
            return self.node_in(peer, &pvx.name, pkt, ct);
        }
        if hop.dev == node.local.underlay_dev {
            return self.wire(&at, next, pkt, ct);
        }
        // ptp mode: a host route to the pod's own veth.
        if let Some(i) = self
            .w
            .pods
            .iter()
            .position(|p| p.ip == next && !p.host_network && p.node == node.local.name)
        {
            let label = self.target_label(Target::Pod(i));
            self.step(&at, "ptp", format!("{} -> {label} eth0", hop.dev));
            return End::Delivered(Target::Pod(i), pkt);
        }
        End::Dropped(
            at,
            format!("leaves by {}: beyond what trace knows", hop.dev),
        )
    }
}

#[path = "walk_outside.rs"]
mod outside;

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
