//! CHECK: compare what prevResult says was built with what the kernel holds,
//! and name the first thing that drifted.

use super::names;
use crate::protocol::config::Mode;
use crate::protocol::{CniError, CniResult, ErrorCode};
use ipnet::IpNet;
use strait_kernel::{address, link, route, Netlink};

fn drift(msg: String) -> CniError {
    CniError::new(ErrorCode::CheckFailed, msg)
}

fn kernel(e: strait_kernel::NetlinkError) -> CniError {
    CniError::kernel(e.to_string())
}

pub struct Expected<'a> {
    pub container_id: &'a str,
    pub pod_ifname: &'a str,
    pub netns_path: &'a str,
    pub mode: Mode,
    pub bridge: &'a str,
    pub prev: &'a CniResult,
}

pub fn verify(host: &mut Netlink, pod: &mut Netlink, e: &Expected) -> Result<(), CniError> {
    let where_ = format!("{} in {}", e.pod_ifname, e.netns_path);
    let pod_index = e.prev.sandbox_interface(e.pod_ifname).ok_or_else(|| {
        CniError::config(format!(
            "prevResult.interfaces: no interface {} with a sandbox",
            e.pod_ifname
        ))
    })?;
    let want_if = &e.prev.interfaces[pod_index];

    let pod_link = link::by_name(pod, e.pod_ifname)
        .map_err(kernel)?
        .ok_or_else(|| drift(format!("interface {where_} is missing")))?;
    if !pod_link.up {
        return Err(drift(format!("interface {where_} is down")));
    }
    if let (Some(want), Some(have)) = (&want_if.mac, &pod_link.mac) {
        if !want.eq_ignore_ascii_case(have) {
            return Err(drift(format!(
                "interface {where_} has MAC {have}, prevResult says {want}"
            )));
        }
    }
    if let (Some(want), Some(have)) = (want_if.mtu, pod_link.mtu) {
        if want != have {
            return Err(drift(format!(
                "interface {where_} has MTU {have}, prevResult says {want}"
            )));
        }
    }

    let have_addrs = address::list(pod, pod_link.index).map_err(kernel)?;
    let ours: Vec<IpNet> = e
        .prev
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(pod_index))
        .map(|ip| ip.address)
        .collect();
    for want in &ours {
        if !have_addrs.contains(want) {
            return Err(drift(format!("address {want} is missing on {where_}")));
        }
    }

    let have_routes = route::list(pod).map_err(kernel)?;
    for r in &e.prev.routes {
        let present = have_routes
            .iter()
            .any(|h| h.dst == r.dst && h.gateway == r.gw && h.oif == pod_link.index);
        if !present {
            let via = r.gw.map(|g| format!(" via {g}")).unwrap_or_default();
            return Err(drift(format!(
                "route {}{via} is missing on {where_}",
                r.dst
            )));
        }
    }

    let host_name = names::host_veth(e.container_id, e.pod_ifname);
    let host_link = link::by_name(host, &host_name)
        .map_err(kernel)?
        .ok_or_else(|| drift(format!("host veth {host_name} of {where_} is missing")))?;
    if !host_link.up {
        return Err(drift(format!("host veth {host_name} is down")));
    }
    match e.mode {
        Mode::Bridge => {
            let bridge = link::by_name(host, e.bridge)
                .map_err(kernel)?
                .ok_or_else(|| drift(format!("bridge {} is missing", e.bridge)))?;
            if host_link.master != Some(bridge.index) {
                return Err(drift(format!(
                    "host veth {host_name} is not attached to bridge {}",
                    e.bridge
                )));
            }
            if !bridge.up {
                return Err(drift(format!("bridge {} is down", e.bridge)));
            }
        }
        Mode::Ptp => {
            let host_routes = route::list(host).map_err(kernel)?;
            for want in &ours {
                let dst = IpNet::from(want.addr());
                if !host_routes
                    .iter()
                    .any(|h| h.dst == dst && h.oif == host_link.index)
                {
                    return Err(drift(format!(
                        "host route {dst} dev {host_name} is missing"
                    )));
                }
            }
        }
    }
    Ok(())
}
