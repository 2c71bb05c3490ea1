//! Links: the pod bridge, veth pairs, and the reads CHECK and GC need.

use crate::netlink::{Netlink, NetlinkError};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, InfoVxlan,
    LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

/// What we read back about a link.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<String>,
    pub mtu: Option<u32>,
    pub up: bool,
    pub master: Option<u32>,
    pub kind: Option<String>,
    pub alias: Option<String>,
    /// Set for VXLAN devices.
    pub vxlan: Option<VxlanInfo>,
}

/// The VXLAN parameters that decide whether a device can be kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VxlanInfo {
    pub vni: u32,
    pub port: u16,
    pub local: Option<Ipv4Addr>,
    pub learning: bool,
}

impl Link {
    fn from_message(m: &LinkMessage) -> Self {
        let mut link = Link {
            index: m.header.index,
            name: String::new(),
            mac: None,
            mtu: None,
            up: m.header.flags.contains(LinkFlags::Up),
            master: None,
            kind: None,
            alias: None,
            vxlan: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(b) => link.mac = Some(format_mac(b)),
                LinkAttribute::Mtu(v) => link.mtu = Some(*v),
                LinkAttribute::Controller(i) => link.master = Some(*i),
                LinkAttribute::IfAlias(s) => link.alias = Some(s.clone()),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        match i {
                            LinkInfo::Kind(k) => link.kind = Some(k.to_string()),
                            LinkInfo::Data(InfoData::Vxlan(attrs)) => {
                                let mut v = VxlanInfo::default();
                                for a in attrs {
                                    match a {
                                        InfoVxlan::Id(id) => v.vni = *id,
                                        InfoVxlan::Port(p) => v.port = *p,
                                        InfoVxlan::Local(ip) => v.local = Some(*ip),
                                        InfoVxlan::Learning(l) => v.learning = *l,
                                        _ => {}
                                    }
                                }
                                link.vxlan = Some(v);
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The link with this name, or None.
pub fn by_name(nl: &mut Netlink, name: &str) -> Result<Option<Link>, NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
    match nl.get(RouteNetlinkMessage::GetLink(msg), || {
        format!("look up link {name}")
    }) {
        Ok(Some(RouteNetlinkMessage::NewLink(m))) => Ok(Some(Link::from_message(&m))),
        Ok(_) => Ok(None),
        Err(e) if e.is(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every link in the socket's namespace.
pub fn all(nl: &mut Netlink) -> Result<Vec<Link>, NetlinkError> {
    let answers = nl.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), || {
        "list links".into()
    })?;
    Ok(answers
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(m) => Some(Link::from_message(m)),
            _ => None,
        })
        .collect())
}

/// Creates a bridge (up). Returns false if it already existed.
pub fn create_bridge(nl: &mut Netlink, name: &str, mtu: u32) -> Result<bool, NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
    msg.attributes.push(LinkAttribute::Mtu(mtu));
    msg.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Bridge,
        )]));
    match nl.execute(
        RouteNetlinkMessage::NewLink(msg),
        NLM_F_CREATE | NLM_F_EXCL,
        || format!("create bridge {name}"),
    ) {
        Ok(()) => Ok(true),
        Err(e) if e.is(libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A VXLAN device for point-to-point tunnels to peers listed in its FDB.
pub struct VxlanSpec<'a> {
    pub name: &'a str,
    pub vni: u32,
    pub port: u16,
    pub local: Ipv4Addr,
    /// The underlay interface the tunnel packets leave through.
    pub underlay_index: u32,
    pub mtu: u32,
    pub mac: [u8; 6],
}

/// Creates the VXLAN device, up, with learning off (peers come from the
/// FDB entries the agent writes, never from flooding) and a fixed MAC.
pub fn create_vxlan(nl: &mut Netlink, spec: &VxlanSpec) -> Result<Link, NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg.attributes
        .push(LinkAttribute::IfName(spec.name.to_owned()));
    msg.attributes.push(LinkAttribute::Mtu(spec.mtu));
    msg.attributes
        .push(LinkAttribute::Address(spec.mac.to_vec()));
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Vxlan),
        LinkInfo::Data(InfoData::Vxlan(vec![
            InfoVxlan::Id(spec.vni),
            InfoVxlan::Local(spec.local),
            InfoVxlan::Link(spec.underlay_index),
            InfoVxlan::Port(spec.port),
            InfoVxlan::Learning(false),
        ])),
    ]));
    let op = || format!("create VXLAN device {} (VNI {})", spec.name, spec.vni);
    nl.execute(
        RouteNetlinkMessage::NewLink(msg),
        NLM_F_CREATE | NLM_F_EXCL,
        op,
    )?;
    by_name(nl, spec.name)?.ok_or_else(|| NetlinkError {
        op: op(),
        source: std::io::Error::other("the new device is not visible"),
    })
}

/// Sets a link's MTU.
pub fn set_mtu(nl: &mut Netlink, index: u32, name: &str, mtu: u32) -> Result<(), NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes.push(LinkAttribute::Mtu(mtu));
    nl.execute(RouteNetlinkMessage::SetLink(msg), 0, || {
        format!("set MTU {mtu} on {name}")
    })
}

/// What the host end of a new veth pair should look like.
pub struct VethSpec<'a> {
    pub host_name: &'a str,
    pub peer_name: &'a str,
    pub peer_netns: &'a std::fs::File,
    pub mtu: u32,
    /// Enslave the host end to this bridge at creation.
    pub master: Option<u32>,
    /// The pod end's largest GSO packet (`gso_max_size`); None: the
    /// kernel's default (64 KiB).
    pub peer_gso_max_size: Option<u32>,
}

/// Creates a veth pair whose peer is born inside the pod's namespace with
/// its final name (no rename step, no window where it is visible on the host).
/// The host end is up, and enslaved when `master` is set. Returns the host
/// end as read back.
pub fn create_veth(nl: &mut Netlink, spec: &VethSpec) -> Result<Link, NetlinkError> {
    // The peer cannot be created up: veth_open fails with ENOTCONN until the
    // pair is linked, so the caller sets it up afterwards.
    let mut peer = LinkMessage::default();
    peer.attributes
        .push(LinkAttribute::IfName(spec.peer_name.to_owned()));
    peer.attributes.push(LinkAttribute::Mtu(spec.mtu));
    if let Some(size) = spec.peer_gso_max_size {
        peer.attributes.push(LinkAttribute::GsoMaxSize(size));
    }
    peer.attributes
        .push(LinkAttribute::NetNsFd(spec.peer_netns.as_raw_fd()));

    let mut msg = LinkMessage::default();
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg.attributes
        .push(LinkAttribute::IfName(spec.host_name.to_owned()));
    msg.attributes.push(LinkAttribute::Mtu(spec.mtu));
    if let Some(master) = spec.master {
        msg.attributes.push(LinkAttribute::Controller(master));
    }
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    let op = || {
        format!(
            "create veth {} with peer {} in the pod namespace",
            spec.host_name, spec.peer_name
        )
    };
    nl.execute(
        RouteNetlinkMessage::NewLink(msg),
        NLM_F_CREATE | NLM_F_EXCL,
        op,
    )?;
    by_name(nl, spec.host_name)?.ok_or_else(|| NetlinkError {
        op: op(),
        source: std::io::Error::other("the new veth is not visible"),
    })
}

/// Writes the owner alias on a host veth and, for a bridge port, turns
/// hairpin mode on (so a pod can reach itself through a Service address:
/// the packet leaves and returns through the same port). One message; the
/// kernel ignores an alias given at creation, hence this second step.
pub fn set_owner(
    nl: &mut Netlink,
    index: u32,
    name: &str,
    alias: &str,
    hairpin: bool,
) -> Result<(), NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes
        .push(LinkAttribute::IfAlias(alias.to_owned()));
    if hairpin {
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                true,
            )])),
        ]));
    }
    nl.execute(RouteNetlinkMessage::NewLink(msg), 0, || {
        format!(
            "set owner alias{} on {name}",
            if hairpin { " and hairpin mode" } else { "" }
        )
    })
}

pub fn set_up(nl: &mut Netlink, index: u32, name: &str) -> Result<(), NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    nl.execute(RouteNetlinkMessage::SetLink(msg), 0, || {
        format!("set link {name} up")
    })
}

/// Deletes a link; a link that is already gone is not an error.
pub fn delete(nl: &mut Netlink, index: u32, name: &str) -> Result<(), NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    match nl.execute(RouteNetlinkMessage::DelLink(msg), 0, || {
        format!("delete link {name}")
    }) {
        Err(e) if e.is(libc::ENODEV) => Ok(()),
        other => other,
    }
}
