//! The pod's data path: a veth pair whose host end sits on the node bridge
//! (`bridge` mode) or is routed on its own (`ptp` mode), the pod end with its
//! addresses and routes. `setup` undoes its own partial work on failure;
//! `teardown` tolerates anything already gone; `verify` is CHECK.
//!
//! It owns the host veth of each attachment, the bridge's gateway addresses
//! and the bridge itself (never deleted: other pods share it). It never
//! touches other links, addresses or routes of the host.

pub mod names;
pub mod verify;

pub use verify::verify;

use crate::protocol::config::Mode;
use crate::protocol::result::{CniResult, Interface, IpConfig, Route};
use crate::protocol::CniError;
use ipnet::IpNet;
use link::Link;
use route::RouteSpec;
use strait_kernel::{address, link, route, sysctl, Netlink, NetlinkError, NetnsHandle};

/// Everything ADD needs to know to build one attachment.
pub struct Attachment<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub pod_ifname: &'a str,
    pub netns_path: &'a str,
    pub mode: Mode,
    pub bridge: &'a str,
    pub mtu: u32,
    /// The pod interface's `gso_max_size` (from the node file): under
    /// VXLAN a 64 KiB segment plus the encapsulation would exceed the
    /// underlay's limit and be segmented in software.
    pub gso_max_size: Option<u32>,
    pub hairpin: bool,
    /// Addresses with their gateways, as IPAM gave them.
    pub ips: &'a [IpConfig],
    /// Extra routes for the pod (besides the default route per family).
    pub routes: &'a [Route],
}

impl Attachment<'_> {
    pub fn host_ifname(&self) -> String {
        names::host_veth(self.container_id, self.pod_ifname)
    }

    /// The address as configured in the pod: ptp pods hold a host address
    /// (/32, /128) and reach everything through the gateway.
    fn pod_address(&self, ip: &IpConfig) -> IpNet {
        match self.mode {
            Mode::Bridge => ip.address,
            Mode::Ptp => IpNet::from(ip.address.addr()),
        }
    }

    /// Routes the pod gets: a default route per family through that family's
    /// gateway, then the configured routes (through the gateway when they
    /// name none). In ptp mode each gateway first gets an on-link route.
    pub fn pod_routes(&self) -> Vec<Route> {
        let mut out: Vec<Route> = Vec::new();
        let gateway_for = |dst: &IpNet| {
            self.ips
                .iter()
                .find(|ip| ip.address.addr().is_ipv4() == dst.addr().is_ipv4())
                .and_then(|ip| ip.gateway)
        };
        for ip in self.ips {
            let Some(gw) = ip.gateway else { continue };
            if self.mode == Mode::Ptp {
                out.push(Route {
                    dst: IpNet::from(gw),
                    gw: None,
                });
            }
            let default = if gw.is_ipv4() {
                "0.0.0.0/0".parse()
            } else {
                "::/0".parse()
            };
            if let Ok(dst) = default {
                out.push(Route { dst, gw: Some(gw) });
            }
        }
        for r in self.routes {
            let gw = r.gw.or_else(|| gateway_for(&r.dst));
            let route = Route { dst: r.dst, gw };
            if !out.iter().any(|o| o.dst == route.dst) {
                out.push(route);
            }
        }
        out
    }
}

fn kernel_err(e: NetlinkError) -> CniError {
    CniError::kernel(e.to_string())
}

fn must_find(nl: &mut Netlink, name: &str, place: &str) -> Result<Link, CniError> {
    link::by_name(nl, name)
        .map_err(kernel_err)?
        .ok_or_else(|| CniError::kernel(format!("link {name} vanished from {place}")))
}

/// Test hook: `STRAIT_CNI_TEST_KILL_AT=<point>` makes the plugin SIGKILL
/// itself at that point, so crash-safety tests can stop ADD between any two
/// kernel changes. Unset in production; costs one getenv per point.
pub fn crash_point(point: &str) {
    if std::env::var("STRAIT_CNI_TEST_KILL_AT").is_ok_and(|p| p == point) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Builds the attachment; on failure removes what it made and returns the
/// first error.
pub fn setup(
    host: &mut Netlink,
    pod: &mut Netlink,
    pod_ns: &NetnsHandle,
    a: &Attachment,
) -> Result<CniResult, CniError> {
    let host_ifname = a.host_ifname();
    // A veth left by an earlier ADD of the same attachment that died midway:
    // remove it so this ADD starts clean (its peer goes with it).
    if let Some(stale) = link::by_name(host, &host_ifname).map_err(kernel_err)? {
        link::delete(host, stale.index, &host_ifname).map_err(kernel_err)?;
    }
    let result = build(host, pod, pod_ns, a, &host_ifname);
    if result.is_err() {
        // Best effort: anything left is found by name on the next DEL/GC.
        let _ = teardown(host, Some(pod), &host_ifname, a.pod_ifname);
    }
    result
}

fn build(
    host: &mut Netlink,
    pod: &mut Netlink,
    pod_ns: &NetnsHandle,
    a: &Attachment,
    host_ifname: &str,
) -> Result<CniResult, CniError> {
    let bridge = match a.mode {
        Mode::Bridge => Some(ensure_bridge(host, a)?),
        Mode::Ptp => None,
    };
    ensure_forwarding(a)?;
    crash_point("before-veth");

    let alias = names::alias(a.network, a.container_id, a.pod_ifname);
    let host_link = link::create_veth(
        host,
        &link::VethSpec {
            host_name: host_ifname,
            peer_name: a.pod_ifname,
            peer_netns: &pod_ns.file,
            mtu: a.mtu,
            master: bridge.as_ref().map(|b| b.index),
            peer_gso_max_size: a.gso_max_size,
        },
    )
    .map_err(|e| {
        if e.is(libc::EEXIST) {
            CniError::kernel(format!(
                "CNI_IFNAME: an interface named {} already exists in {}",
                a.pod_ifname, a.netns_path
            ))
        } else {
            kernel_err(e)
        }
    })?;
    crash_point("after-veth");
    let hairpin = a.mode == Mode::Bridge && a.hairpin;
    link::set_owner(host, host_link.index, host_ifname, &alias, hairpin).map_err(kernel_err)?;

    match a.mode {
        Mode::Bridge => {}
        Mode::Ptp => {
            for ip in a.ips {
                if let Some(gw) = ip.gateway {
                    address::add(host, host_link.index, host_ifname, IpNet::from(gw))
                        .map_err(kernel_err)?;
                }
                let to_pod = RouteSpec::new(IpNet::from(ip.address.addr()), None, host_link.index);
                route::add(host, &to_pod).map_err(kernel_err)?;
            }
        }
    }

    let pod_link = must_find(pod, a.pod_ifname, a.netns_path)?;
    for ip in a.ips {
        address::add(pod, pod_link.index, a.pod_ifname, a.pod_address(ip)).map_err(kernel_err)?;
    }
    link::set_up(pod, pod_link.index, a.pod_ifname).map_err(kernel_err)?;
    crash_point("after-pod-address");
    let routes = a.pod_routes();
    for r in &routes {
        let spec = RouteSpec::new(r.dst, r.gw, pod_link.index);
        route::add(pod, &spec).map_err(kernel_err)?;
    }

    let mut interfaces = Vec::new();
    if let Some(b) = &bridge {
        interfaces.push(Interface {
            name: b.name.clone(),
            mac: b.mac.clone(),
            ..Default::default()
        });
    }
    interfaces.push(Interface {
        name: host_link.name.clone(),
        mac: host_link.mac.clone(),
        ..Default::default()
    });
    let pod_index = interfaces.len();
    interfaces.push(Interface {
        name: a.pod_ifname.to_owned(),
        mac: pod_link.mac.clone(),
        sandbox: Some(a.netns_path.to_owned()),
        mtu: Some(a.mtu),
    });
    let ips = a
        .ips
        .iter()
        .map(|ip| IpConfig {
            address: a.pod_address(ip),
            gateway: ip.gateway,
            interface: Some(pod_index),
        })
        .collect();
    Ok(CniResult {
        interfaces,
        ips,
        routes,
        dns: Default::default(),
    })
}

/// The node bridge, created if missing, up, holding each family's gateway.
fn ensure_bridge(host: &mut Netlink, a: &Attachment) -> Result<Link, CniError> {
    let existing = link::by_name(host, a.bridge).map_err(kernel_err)?;
    let bridge = match existing {
        Some(b) => b,
        None => {
            link::create_bridge(host, a.bridge, a.mtu).map_err(kernel_err)?;
            must_find(host, a.bridge, "the host")?
        }
    };
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(CniError::config(format!(
            "bridge: {} exists and is a {}, not a bridge",
            a.bridge,
            bridge.kind.as_deref().unwrap_or("device of unknown kind")
        )));
    }
    if !bridge.up {
        link::set_up(host, bridge.index, a.bridge).map_err(kernel_err)?;
    }
    for ip in a.ips {
        if let Some(gw) = ip.gateway {
            let on_bridge = IpNet::new(gw, ip.address.prefix_len())
                .map_err(|e| CniError::config(format!("gateway {gw}: {e}")))?;
            address::add(host, bridge.index, a.bridge, on_bridge).map_err(kernel_err)?;
        }
    }
    Ok(bridge)
}

/// The node routes pod traffic, so forwarding must be on for each family
/// in use (what the reference bridge plugin does for a gateway bridge).
fn ensure_forwarding(a: &Attachment) -> Result<(), CniError> {
    let has = |v4: bool| a.ips.iter().any(|ip| ip.address.addr().is_ipv4() == v4);
    let set = |path: &str| {
        sysctl::ensure(path, "1").map_err(|e| CniError::io(format!("cannot enable {path}: {e}")))
    };
    if has(true) {
        set("net/ipv4/ip_forward")?;
    }
    if has(false) {
        set("net/ipv6/conf/all/forwarding")?;
    }
    Ok(())
}

/// Removes an attachment's links. Missing pieces are not errors.
pub fn teardown(
    host: &mut Netlink,
    pod: Option<&mut Netlink>,
    host_ifname: &str,
    pod_ifname: &str,
) -> Result<(), CniError> {
    let mut first_err = None;
    if let Some(pod) = pod {
        match link::by_name(pod, pod_ifname) {
            Ok(Some(l)) => {
                if let Err(e) = link::delete(pod, l.index, pod_ifname) {
                    first_err.get_or_insert(kernel_err(e));
                }
            }
            Ok(None) => {}
            Err(e) => {
                first_err.get_or_insert(kernel_err(e));
            }
        }
    }
    // Deleting the pod end took the host end with it; this catches a host
    // end whose pod namespace is already gone or was never reached.
    match link::by_name(host, host_ifname) {
        Ok(Some(l)) => {
            if let Err(e) = link::delete(host, l.index, host_ifname) {
                first_err.get_or_insert(kernel_err(e));
            }
        }
        Ok(None) => {}
        Err(e) => {
            first_err.get_or_insert(kernel_err(e));
        }
    }
    first_err.map_or(Ok(()), Err)
}
