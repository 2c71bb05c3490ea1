//! Facts about this node that only the kernel knows: which interface holds
//! the node's underlay address, its prefix and MTU. They go into the
//! (otherwise pure) compiler as `LocalNode`.

use std::net::{IpAddr, Ipv4Addr};
use strait_kernel::{address, link, Netlink};
use strait_plan::LocalNode;

pub fn local_node(
    nl: &mut Netlink,
    name: &str,
    underlay_ip: Ipv4Addr,
) -> Result<LocalNode, String> {
    let addrs = address::all(nl).map_err(|e| e.to_string())?;
    let (index, net) = addrs
        .into_iter()
        .find(|(_, a)| a.addr() == IpAddr::V4(underlay_ip))
        .ok_or_else(|| {
            format!("node {name}: no interface holds its InternalIP {underlay_ip} (is this the right node?)")
        })?;
    let links = link::all(nl).map_err(|e| e.to_string())?;
    let dev = links
        .into_iter()
        .find(|l| l.index == index)
        .ok_or_else(|| format!("node {name}: interface {index} holding {underlay_ip} vanished"))?;
    Ok(LocalNode {
        name: name.to_owned(),
        underlay_ip,
        underlay_prefix: net.prefix_len(),
        underlay_dev: dev.name,
        underlay_mtu: dev.mtu.unwrap_or(1500),
    })
}
