//! `strait doctor`: checks a node against its Plan and against what strait
//! needs from the kernel, and says how to fix each problem. Runs in the
//! node's network namespace (sysctls, links, routes and nft are read from
//! the calling process's namespace). Read-only.
//!
//! Drift uses the agent's own comparisons (`apply::same_route`, the table
//! stamp), so doctor and the agent agree on what "differs" means; nft set
//! and map elements are compared one by one (`doctor_nft.rs`).

use crate::apply::same_route;
use ipnet::IpNet;
use serde::Serialize;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use strait_kernel::link::{self, Link};
use strait_kernel::neighbour::{self, Entry};
use strait_kernel::route::{self, RouteSpec};
use strait_kernel::Netlink;
use strait_model::{AgentConfig, Backend};
use strait_plan::{LocalNode, Plan, STRAIT_ROUTE_PROTO};

/// One problem, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Short name of the check: `ip_forward`, `rp_filter`, `mtu`, `route`,
    /// `cidr-overlap`, `device`, `cni-config`, `br_netfilter`, `fdb`,
    /// `neighbour`, `nft`.
    pub check: String,
    pub problem: String,
    pub fix: String,
}

fn finding(check: &str, problem: String, fix: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        problem,
        fix: fix.into(),
    }
}

fn sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{path}"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Every check; an empty list means healthy. `cni_dir`: the CNI config
/// directory to inspect (`/etc/cni/net.d` on a node; `None` to skip).
pub fn check(
    cfg: &AgentConfig,
    local: &LocalNode,
    plan: &Plan,
    host_routes: Option<&[RouteSpec]>,
    cni_dir: Option<&Path>,
) -> Result<Vec<Finding>, String> {
    let mut out = Vec::new();
    let mut nl = Netlink::open().map_err(|e| format!("netlink: {e}"))?;
    sysctls(plan, &mut out);
    let links = link::all(&mut nl).map_err(|e| e.to_string())?;
    devices(cfg, local, plan, &links, &mut out);
    let routes = route::list(&mut nl).map_err(|e| e.to_string())?;
    route_drift(plan, &links, &routes, &mut out);
    overlaps(cfg, local, host_routes.unwrap_or(&routes), &mut out);
    entries(plan, &links, &mut nl, &mut out)?;
    nft_drift(plan, &mut out)?;
    if let Some(dir) = cni_dir {
        cni_configs(dir, &mut out);
    }
    Ok(out)
}

fn sysctls(plan: &Plan, out: &mut Vec<Finding>) {
    if sysctl("net/ipv4/ip_forward").as_deref() != Some("1") {
        out.push(finding(
            "ip_forward",
            "net.ipv4.ip_forward is off: the node drops every packet it should forward (pods to other nodes, to the outside)".into(),
            "sysctl -w net.ipv4.ip_forward=1 (the agent sets it on every sync: is it running?)",
        ));
    }
    for key in plan.sysctls.keys().filter(|k| k.ends_with("/rp_filter")) {
        let dev = key.split('/').nth(3).unwrap_or_default();
        let all = sysctl("net/ipv4/conf/all/rp_filter").and_then(|v| v.parse::<u8>().ok());
        let own = sysctl(key).and_then(|v| v.parse::<u8>().ok());
        // The kernel uses the larger of conf/all and conf/<dev>.
        if all.max(own) == Some(1) {
            out.push(finding(
                "rp_filter",
                format!("strict reverse-path filtering on {dev}: packets arriving there from pods whose return route leaves elsewhere are dropped"),
                format!("sysctl -w net.ipv4.conf.{}.rp_filter=2 (and conf.all.rp_filter to 0 or 2)", dev.replace('.', "/")),
            ));
        }
    }
    match sysctl("net/bridge/bridge-nf-call-iptables").as_deref() {
        Some("1") => {}
        Some(_) => out.push(finding(
            "br_netfilter",
            "bridge-nf-call-iptables is 0: bridged pod-to-pod packets skip nftables, so a Service endpoint on the same node answers its client directly and the reply is not un-DNATed".into(),
            "sysctl -w net.bridge.bridge-nf-call-iptables=1",
        )),
        None => out.push(finding(
            "br_netfilter",
            "br_netfilter is not loaded: bridged pod-to-pod packets skip nftables (same-node Service replies are not un-DNATed)".into(),
            "modprobe br_netfilter (and add it to /etc/modules-load.d)",
        )),
    }
}

fn devices(
    cfg: &AgentConfig,
    local: &LocalNode,
    plan: &Plan,
    links: &[Link],
    out: &mut Vec<Finding>,
) {
    let by_name = |n: &str| links.iter().find(|l| l.name == n);
    let mut want = vec![(plan.bridge.name.as_str(), plan.bridge.mtu)];
    if let Some(v) = &plan.vxlan {
        want.push((v.name.as_str(), v.mtu));
    }
    for (name, mtu) in want {
        match by_name(name) {
            None => out.push(finding(
                "device",
                format!("{name} is missing"),
                "start the agent (it creates it); if it cannot, its log says why",
            )),
            Some(l) if !l.up => out.push(finding(
                "device",
                format!("{name} is down"),
                format!("ip link set {name} up"),
            )),
            Some(l) if name != plan.bridge.name && l.mtu != Some(mtu) => out.push(finding(
                "mtu",
                format!(
                    "{name} has MTU {} but the Plan says {mtu}",
                    l.mtu.unwrap_or(0)
                ),
                format!("ip link set {name} mtu {mtu}"),
            )),
            Some(_) => {}
        }
    }
    if let Some(under) = by_name(&local.underlay_dev) {
        let have = under.mtu.unwrap_or(0);
        let overhead = match cfg.backend {
            Backend::Vxlan => strait_plan::VXLAN_OVERHEAD,
            Backend::HostGw => 0,
        };
        if plan.node_file.mtu + overhead > have {
            out.push(finding(
                "mtu",
                format!(
                    "pods use MTU {} but {} has {have}: with {} the largest pod packets ({} bytes on the wire) are dropped or fragmented",
                    plan.node_file.mtu, local.underlay_dev, cfg.backend, plan.node_file.mtu + overhead
                ),
                format!("set `mtu: {have}` in the agent config (pods then get {}) or raise the underlay MTU", have.saturating_sub(overhead)),
            ));
        }
    }
    // Pods created with an older, larger MTU (veths on the bridge).
    if let Some(br) = by_name(&plan.bridge.name) {
        for l in links.iter().filter(|l| l.master == Some(br.index)) {
            if l.mtu.is_some_and(|m| m > plan.node_file.mtu) {
                out.push(finding(
                    "mtu",
                    format!(
                        "pod interface {} has MTU {} above the pod MTU {}",
                        l.name,
                        l.mtu.unwrap_or(0),
                        plan.node_file.mtu
                    ),
                    "recreate the pod (its MTU is set when it is created)",
                ));
            }
        }
    }
}

fn oif_of(links: &[Link], dev: &Option<String>) -> Option<u32> {
    match dev {
        None => Some(0),
        Some(d) => links.iter().find(|l| &l.name == d).map(|l| l.index),
    }
}

fn route_drift(plan: &Plan, links: &[Link], routes: &[RouteSpec], out: &mut Vec<Finding>) {
    let mut want = Vec::new();
    for p in &plan.routes {
        let Some(oif) = oif_of(links, &p.dev) else {
            out.push(finding(
                "route",
                format!("route {p}: device missing"),
                "see the device finding",
            ));
            continue;
        };
        want.push((
            p,
            RouteSpec {
                dst: p.dst,
                gateway: p.gateway,
                oif,
                protocol: STRAIT_ROUTE_PROTO,
                onlink: p.onlink,
            },
        ));
    }
    let have: Vec<&RouteSpec> = routes
        .iter()
        .filter(|h| h.protocol == STRAIT_ROUTE_PROTO)
        .collect();
    for (p, w) in &want {
        if !have.iter().any(|h| same_route(w, h)) {
            let other = routes.iter().find(|h| h.dst == w.dst);
            let why = match other {
                Some(h) => format!("the kernel has {} instead", route::describe(h)),
                None => "the kernel has no route for it".into(),
            };
            out.push(finding(
                "route",
                format!("route {p} of the Plan is missing: {why}"),
                format!("ip route replace {p} proto {STRAIT_ROUTE_PROTO} (the agent restores it on its next sync)"),
            ));
        }
    }
    for h in have {
        if !want.iter().any(|(_, w)| same_route(w, h)) {
            out.push(finding(
                "route",
                format!(
                    "route {} carries strait's protocol but is not in the Plan",
                    route::describe(h)
                ),
                "ip route del it (the agent removes it on its next sync)",
            ));
        }
    }
}

fn overlaps(cfg: &AgentConfig, local: &LocalNode, routes: &[RouteSpec], out: &mut Vec<Finding>) {
    let over = |a: &IpNet, b: &IpNet| a.contains(&b.network()) || b.contains(&a.network());
    let mut nets = vec![
        ("clusterCIDR", cfg.cluster_cidr),
        ("serviceCIDR", cfg.service_cidr),
    ];
    if let Ok(u) = IpNet::new(IpAddr::V4(local.underlay_ip), local.underlay_prefix) {
        nets.push(("the node network", u.trunc()));
    }
    for i in 0..nets.len() {
        for j in i + 1..nets.len() {
            if over(&nets[i].1, &nets[j].1) {
                out.push(finding(
                    "cidr-overlap",
                    format!(
                        "{} {} overlaps {} {}",
                        nets[i].0, nets[i].1, nets[j].0, nets[j].1
                    ),
                    "pick CIDRs apart from each other and from every network the nodes reach",
                ));
            }
        }
    }
    // Networks the node reaches through routes that are not strait's.
    for r in routes
        .iter()
        .filter(|r| r.protocol != STRAIT_ROUTE_PROTO && r.dst.prefix_len() > 0)
    {
        for (what, net) in &nets[..2] {
            if over(net, &r.dst) && !cfg.cluster_cidr.contains(&r.dst.network()) {
                out.push(finding(
                    "cidr-overlap",
                    format!(
                        "{what} {net} overlaps the routed network {}",
                        route::describe(r)
                    ),
                    "pick a cluster/service CIDR apart from the networks the node reaches",
                ));
            }
        }
    }
}

fn entries(
    plan: &Plan,
    links: &[Link],
    nl: &mut Netlink,
    out: &mut Vec<Finding>,
) -> Result<(), String> {
    let Some(vx) = &plan.vxlan else { return Ok(()) };
    let Some(dev) = links.iter().find(|l| l.name == vx.name) else {
        return Ok(());
    };
    let (want_fdb, want_neigh) = crate::apply::wanted_entries(plan, dev.index);
    let have_fdb: BTreeSet<Entry> = neighbour::fdb(nl, dev.index)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|e| !e.ip.is_unspecified())
        .collect();
    let have_neigh: BTreeSet<Entry> = neighbour::neighbours(nl, dev.index)
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let mac = |e: &Entry| link::format_mac(&e.mac);
    for e in want_fdb.difference(&have_fdb) {
        out.push(finding(
            "fdb",
            format!(
                "FDB entry {} dst {} is missing: traffic to that peer's pods goes nowhere",
                mac(e),
                e.ip
            ),
            format!(
                "bridge fdb append {} dev {} dst {} self permanent",
                mac(e),
                vx.name,
                e.ip
            ),
        ));
    }
    for e in have_fdb.difference(&want_fdb) {
        out.push(finding(
            "fdb",
            format!("FDB entry {} dst {} is not in the Plan", mac(e), e.ip),
            format!(
                "bridge fdb del {} dev {} dst {} self",
                mac(e),
                vx.name,
                e.ip
            ),
        ));
    }
    for e in want_neigh.difference(&have_neigh) {
        out.push(finding(
            "neighbour",
            format!("neighbour {} lladdr {} is missing", e.ip, mac(e)),
            format!(
                "ip neigh replace {} lladdr {} dev {} nud permanent",
                e.ip,
                mac(e),
                vx.name
            ),
        ));
    }
    for e in have_neigh.difference(&want_neigh) {
        out.push(finding(
            "neighbour",
            format!("neighbour {} lladdr {} is not in the Plan", e.ip, mac(e)),
            format!("ip neigh del {} dev {}", e.ip, vx.name),
        ));
    }
    Ok(())
}

/// kubelet uses the first config in the directory (by name); strait's must
/// be that one.
fn cni_configs(dir: &Path, out: &mut Vec<Finding>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<_> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conf" | "conflist" | "json")
            )
        })
        .collect();
    files.sort();
    let is_ours = |p: &Path| std::fs::read_to_string(p).is_ok_and(|t| t.contains("\"strait-cni\""));
    let Some(ours) = files.iter().position(|p| is_ours(p)) else {
        if !files.is_empty() {
            out.push(finding(
                "cni-config",
                format!(
                    "no strait-cni config in {}; kubelet uses {}",
                    dir.display(),
                    files[0].display()
                ),
                "install strait's conflist (docs/cni.md)",
            ));
        }
        return;
    };
    for f in &files[..ours] {
        out.push(finding(
            "cni-config",
            format!(
                "{} sorts before strait's {}: kubelet uses it, not strait",
                f.display(),
                files[ours].display()
            ),
            format!(
                "remove {} (or rename strait's config to sort first)",
                f.display()
            ),
        ));
    }
}

/// People's text: one block per finding, or a healthy line.
pub fn human(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "healthy: the kernel matches the Plan and nothing strait needs is off\n".into();
    }
    let mut s = String::new();
    for f in findings {
        s.push_str(&format!(
            "PROBLEM [{}] {}\n  fix: {}\n",
            f.check, f.problem, f.fix
        ));
    }
    s.push_str(&format!("{} problem(s)\n", findings.len()));
    s
}

#[path = "doctor_nft.rs"]
mod nft_check;
use nft_check::nft_drift;

#[cfg(test)]
#[path = "doctor_tests.rs"]
mod tests;
