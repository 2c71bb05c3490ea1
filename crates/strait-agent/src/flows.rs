//! Connection events from conntrack (`strait flows`): a NETLINK_NETFILTER
//! socket subscribed to the ctnetlink groups NEW, UPDATE and DESTROY,
//! parsed by hand. No crate fits today: netlink-packet-netfilter 0.2 parses
//! only NFLOG and NFQUEUE, not ctnetlink; the parsing needed is ~100 lines
//! of TLVs (`nfgenmsg` + nested CTA_TUPLE_ORIG attributes).
//!
//! Packets dropped by NetworkPolicy do not come from here: the agent's
//! drop log holds their nfnetlink_log group and republishes them
//! (`drop_feed`); `strait flows` reads both and shows those as
//! [`Kind::Dropped`].

use serde::Serialize;
use std::net::Ipv4Addr;

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLM_F_CREATE: u16 = 0x400;
/// NFNLGRP_CONNTRACK_NEW, _UPDATE, _DESTROY (groups 1, 2, 3 as a mask).
const GROUPS: u32 = 0b111;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    New,
    Update,
    Closed,
    /// Dropped by a NetworkPolicy (from the NFLOG drop log).
    Dropped,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::New => "new",
            Kind::Update => "update",
            Kind::Closed => "closed",
            Kind::Dropped => "dropped",
        }
    }
}

/// One direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tuple {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// IP protocol number (6 tcp, 17 udp, 132 sctp, 1 icmp).
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Event {
    pub kind: Kind,
    pub orig: Tuple,
    /// The reply direction: differs from the swapped original under NAT.
    pub reply: Option<Tuple>,
}

fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        let next = (len + 3) & !3;
        b = b.get(next..).unwrap_or(&[]);
    }
    out
}

fn tuple(b: &[u8]) -> Option<Tuple> {
    let mut t = Tuple {
        src: Ipv4Addr::UNSPECIFIED,
        dst: Ipv4Addr::UNSPECIFIED,
        proto: 0,
        sport: 0,
        dport: 0,
    };
    let mut v4 = false;
    for (ty, v) in attrs(b) {
        match ty {
            CTA_TUPLE_IP => {
                for (ty, a) in attrs(v) {
                    let ip = <[u8; 4]>::try_from(a).ok().map(Ipv4Addr::from);
                    match (ty, ip) {
                        (CTA_IP_V4_SRC, Some(ip)) => {
                            t.src = ip;
                            v4 = true;
                        }
                        (CTA_IP_V4_DST, Some(ip)) => t.dst = ip,
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (ty, a) in attrs(v) {
                    // Ports are in network byte order.
                    let port = <[u8; 2]>::try_from(a).ok().map(u16::from_be_bytes);
                    match (ty, port) {
                        (CTA_PROTO_NUM, _) => t.proto = a.first().copied().unwrap_or(0),
                        (CTA_PROTO_SRC_PORT, Some(p)) => t.sport = p,
                        (CTA_PROTO_DST_PORT, Some(p)) => t.dport = p,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    v4.then_some(t)
}

/// The events in one datagram read from the socket (IPv4 only).
pub fn parse(mut buf: &[u8]) -> Vec<Event> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        let flags = u16::from_ne_bytes([buf[6], buf[7]]);
        let (subsys, msg) = (ty >> 8, ty & 0xff);
        // nlmsghdr (16) + nfgenmsg (4), then attributes.
        if subsys == NFNL_SUBSYS_CTNETLINK && len >= 20 {
            let kind = match msg {
                IPCTNL_MSG_CT_NEW if flags & NLM_F_CREATE != 0 => Some(Kind::New),
                IPCTNL_MSG_CT_NEW => Some(Kind::Update),
                IPCTNL_MSG_CT_DELETE => Some(Kind::Closed),
                _ => None,
            };
            if let Some(kind) = kind {
                let a = attrs(&buf[20..len]);
                let find = |t| {
                    a.iter()
                        .find(|(ty, _)| *ty == t)
                        .and_then(|(_, v)| tuple(v))
                };
                if let Some(orig) = find(CTA_TUPLE_ORIG) {
                    out.push(Event {
                        kind,
                        orig,
                        reply: find(CTA_TUPLE_REPLY),
                    });
                }
            }
        }
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
    }
    out
}

/// Calls `on` for every conntrack event in this network namespace until it
/// returns false. Needs CAP_NET_ADMIN.
pub fn listen(mut on: impl FnMut(Event) -> bool) -> Result<(), String> {
    // SAFETY: plain socket calls on a descriptor we own and close.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        );
        if fd < 0 {
            return Err(format!(
                "netlink socket: {}",
                std::io::Error::last_os_error()
            ));
        }
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups = GROUPS;
        let rc = libc::bind(
            fd,
            &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        );
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(format!(
                "subscribing to conntrack events: {e} (is nf_conntrack loaded?)"
            ));
        }
        let mut buf = vec![0u8; 65536];
        loop {
            let n = libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0);
            if n < 0 {
                let e = std::io::Error::last_os_error();
                // ENOBUFS: events were lost under load; keep going.
                if e.raw_os_error() == Some(libc::ENOBUFS)
                    || e.kind() == std::io::ErrorKind::Interrupted
                {
                    continue;
                }
                libc::close(fd);
                return Err(format!("reading conntrack events: {e}"));
            }
            for ev in parse(&buf[..n as usize]) {
                if !on(ev) {
                    libc::close(fd);
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, v: &[u8]) -> Vec<u8> {
        let len = 4 + v.len();
        let mut out = (len as u16).to_ne_bytes().to_vec();
        out.extend(ty.to_ne_bytes());
        out.extend(v);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out
    }

    fn tuple_attr(ty: u16, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let ip = [attr(CTA_IP_V4_SRC, &src), attr(CTA_IP_V4_DST, &dst)].concat();
        let proto = [
            attr(CTA_PROTO_NUM, &[6]),
            attr(CTA_PROTO_SRC_PORT, &sport.to_be_bytes()),
            attr(CTA_PROTO_DST_PORT, &dport.to_be_bytes()),
        ]
        .concat();
        // Nested attributes carry NLA_F_NESTED (0x8000), which parsing masks.
        attr(
            ty | 0x8000,
            &[
                attr(CTA_TUPLE_IP | 0x8000, &ip),
                attr(CTA_TUPLE_PROTO | 0x8000, &proto),
            ]
            .concat(),
        )
    }

    fn message(msg: u16, flags: u16, body: &[u8]) -> Vec<u8> {
        let len = 20 + body.len();
        let mut out = (len as u32).to_ne_bytes().to_vec();
        out.extend(((NFNL_SUBSYS_CTNETLINK << 8) | msg).to_ne_bytes());
        out.extend(flags.to_ne_bytes());
        out.extend([0u8; 8]); // seq, pid
        out.extend([2u8, 0, 0, 0]); // nfgenmsg: AF_INET
        out.extend(body);
        out
    }

    #[test]
    fn parses_new_update_and_destroy_with_nat() {
        let body = [
            tuple_attr(CTA_TUPLE_ORIG, [10, 42, 1, 3], [10, 43, 0, 10], 40000, 80),
            tuple_attr(CTA_TUPLE_REPLY, [10, 42, 2, 5], [10, 42, 1, 3], 8080, 40000),
        ]
        .concat();
        let mut buf = message(IPCTNL_MSG_CT_NEW, NLM_F_CREATE, &body);
        buf.extend(message(IPCTNL_MSG_CT_NEW, 0, &body));
        buf.extend(message(IPCTNL_MSG_CT_DELETE, 0, &body));
        let ev = parse(&buf);
        let kinds: Vec<Kind> = ev.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [Kind::New, Kind::Update, Kind::Closed]);
        assert_eq!(ev[0].orig.dst, Ipv4Addr::new(10, 43, 0, 10));
        assert_eq!(ev[0].orig.dport, 80);
        assert_eq!(ev[0].orig.proto, 6);
        let r = ev[0].reply.unwrap();
        assert_eq!((r.src, r.sport), (Ipv4Addr::new(10, 42, 2, 5), 8080));
        // Truncated input is not a panic.
        assert!(parse(&buf[..30]).is_empty());
    }
}
