//! The walk outside the nodes' own processing: links to the next hop,
//! routers and hosts, and whether the destination answers.

use super::{End, Target, Walker, MAX_HOPS};
use crate::packet::Packet;
use crate::routes;
use std::net::Ipv4Addr;
use strait_plan::nft::{CtState, L4Proto};

impl Walker<'_> {
    /// Onto a link towards the holder of `next`.
    pub(super) fn wire(&mut self, at: &str, next: Ipv4Addr, pkt: Packet, ct: CtState) -> End {
        if let Some(m) = self
            .w
            .nodes
            .iter()
            .position(|m| m.local.underlay_ip == next)
        {
            let dev = self.w.nodes[m].local.underlay_dev.clone();
            let to = self.node_at(m);
            self.step(
                at,
                "wire",
                format!("to next hop {next} ({to}), in on {dev}"),
            );
            return self.node_in(m, &dev, pkt, ct);
        }
        if let Some(b) = self
            .w
            .boxes
            .iter()
            .position(|b| b.addresses.iter().any(|a| a.addr() == next))
        {
            let to = self.target_label(Target::Box(b));
            self.step(at, "wire", format!("to next hop {next} ({to})"));
            return self.box_in(b, pkt, ct);
        }
        let reason = format!("nobody on the link holds next hop {next} (ARP gets no answer)");
        self.step(at, "wire", reason.clone());
        End::Dropped(at.to_string(), reason)
    }

    pub(super) fn box_in(&mut self, b: usize, pkt: Packet, ct: CtState) -> End {
        self.hops += 1;
        if self.hops > MAX_HOPS {
            return End::Dropped(self.target_label(Target::Box(b)), "routing loop".into());
        }
        let bx = &self.w.boxes[b];
        if bx.addresses.iter().any(|a| a.addr() == pkt.dst) {
            return End::Delivered(Target::Box(b), pkt);
        }
        if !bx.forwards {
            let at = self.target_label(Target::Box(b));
            return End::Dropped(
                at,
                format!("{} is not its address and it does not forward", pkt.dst),
            );
        }
        self.box_route(b, pkt, ct)
    }

    pub(super) fn box_route(&mut self, b: usize, pkt: Packet, ct: CtState) -> End {
        let at = self.target_label(Target::Box(b));
        let bx = &self.w.boxes[b];
        if bx.addresses.iter().any(|a| a.addr() == pkt.dst) {
            return End::Delivered(Target::Box(b), pkt);
        }
        match routes::box_lookup(bx, pkt.dst) {
            Some((next, text)) => {
                self.step(&at, "route", format!("{} -> {text}", pkt.dst));
                self.wire(&at, next, pkt, ct)
            }
            None => {
                let reason = format!(
                    "{at} has no route to {}: add one (e.g. the cluster CIDR via a node) or masquerade this traffic",
                    pkt.dst
                );
                self.step(&at, "route", format!("NO ROUTE to {}", pkt.dst));
                End::Dropped(at, reason)
            }
        }
    }

    /// Whether `t` answers `pkt`: `Ok(label)` or `Err((at, why))`.
    pub(super) fn answers(&mut self, t: Target, pkt: &Packet) -> Result<String, (String, String)> {
        let label = self.target_label(t);
        if !pkt.proto.has_ports() {
            self.step(&label, "deliver", format!("{pkt}: echo reply"));
            return Ok(label);
        }
        let want = (pkt.proto, pkt.dport);
        let listens = match t {
            Target::Pod(i) => self.w.pods[i].listens.contains(&want),
            Target::Node(n) => {
                let name = &self.w.nodes[n].local.name;
                self.w
                    .pods
                    .iter()
                    .any(|p| p.host_network && &p.node == name && p.listens.contains(&want))
            }
            Target::Box(b) => self.w.boxes[b].listens.contains(&want),
        };
        let what = format!("{}/{}", pkt.proto.as_str(), pkt.dport);
        if listens {
            self.step(&label, "deliver", format!("{pkt}: {what} answers"));
            Ok(format!("{label} ({}:{})", pkt.dst, pkt.dport))
        } else {
            let how = if pkt.proto == L4Proto::Tcp {
                "TCP reset"
            } else {
                "ICMP port unreachable"
            };
            let reason = format!("nothing listens on {what} at {label} ({how})");
            self.step(&label, "deliver", reason.clone());
            Err((label, reason))
        }
    }
}
