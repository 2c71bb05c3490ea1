//! The policy drop log: the drop chains send at most a few packets a second
//! to nfnetlink_log group `strait_plan::policy::LOG_GROUP` with the prefix
//! `strait-policy <chain>`; this reads them on a netlink socket in the
//! agent's own network namespace (no sysctl, nothing global) and writes one
//! line per packet naming the policies, the pod, the peer, the protocol and
//! the port.

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strait_plan::policy::{drop_reasons, Direction};

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
/// Enough of the packet for the IPv4 header (with options) and the ports.
const COPY_RANGE: u32 = 128;

/// One logged packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub prefix: String,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    /// Destination port for TCP, UDP and SCTP.
    pub dport: Option<u16>,
}

/// A netlink socket bound to one nfnetlink_log group.
pub struct DropLog {
    fd: OwnedFd,
}

fn nlattr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(4), 0);
}

impl DropLog {
    /// Binds `group` in the calling thread's network namespace and asks for
    /// the first [`COPY_RANGE`] bytes of each packet.
    pub fn open(group: u16) -> io::Result<DropLog> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: a zeroed sockaddr_nl is valid; bind(2) reads it.
        let rc = unsafe {
            let mut sa: libc::sockaddr_nl = std::mem::zeroed();
            sa.nl_family = libc::AF_NETLINK as u16;
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let log = DropLog { fd };
        log.config(group, NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND])?;
        let mut mode = COPY_RANGE.to_be_bytes().to_vec();
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
        log.config(group, NFULA_CFG_MODE, &mode)?;
        Ok(log)
    }

    /// Sends one config message and waits for its ack.
    fn config(&self, group: u16, attr: u16, data: &[u8]) -> io::Result<()> {
        let mut body = vec![libc::AF_UNSPEC as u8, 0];
        body.extend_from_slice(&group.to_be_bytes());
        nlattr(&mut body, attr, data);
        let mut msg = Vec::with_capacity(16 + body.len());
        msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG).to_ne_bytes());
        msg.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
        msg.extend_from_slice(&1u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&body);
        // SAFETY: send(2) reads `msg.len()` bytes of `msg`.
        let sent = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 4096];
        let n = self.recv_raw(&mut buf)?;
        // NLMSG_ERROR (2) with error 0 is the ack.
        if n >= 20 && u16::from_ne_bytes([buf[4], buf[5]]) == 2 {
            let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
            if err != 0 {
                return Err(io::Error::from_raw_os_error(-err));
            }
        }
        Ok(())
    }

    /// Bounds how long [`DropLog::recv`] blocks.
    pub fn set_timeout(&self, t: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: t.as_secs() as libc::time_t,
            tv_usec: t.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: setsockopt(2) reads a timeval of the given size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv_raw(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: recv(2) writes at most `buf.len()` bytes into `buf`.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// The packets of the next datagram (blocks; ENOBUFS means some were
    /// lost because the reader fell behind).
    pub fn recv(&self) -> io::Result<Vec<Logged>> {
        let mut buf = vec![0u8; 65536];
        let n = self.recv_raw(&mut buf)?;
        Ok(parse_datagram(&buf[..n]))
    }
}

/// Every NFULNL_MSG_PACKET message of a netlink datagram.
pub fn parse_datagram(mut data: &[u8]) -> Vec<Logged> {
    let mut out = Vec::new();
    while data.len() >= 16 {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        if len < 16 || len > data.len() {
            break;
        }
        if kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET && len >= 20 {
            if let Some(p) = parse_packet(&data[20..len]) {
                out.push(p);
            }
        }
        data = &data[len.next_multiple_of(4).min(data.len())..];
    }
    out
}

/// The attributes after the nfgenmsg header: prefix and payload.
fn parse_packet(mut attrs: &[u8]) -> Option<Logged> {
    let (mut prefix, mut payload) = (None, None);
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            break;
        }
        let value = &attrs[4..len];
        match kind {
            NFULA_PREFIX => {
                let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
                prefix = Some(String::from_utf8_lossy(&value[..end]).into_owned());
            }
            NFULA_PAYLOAD => payload = Some(value),
            _ => {}
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    let ip = payload?;
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let proto = ip[9];
    let dport = match proto {
        6 | 17 | 132 if ip.len() >= ihl + 4 => Some(u16::from_be_bytes([ip[ihl + 2], ip[ihl + 3]])),
        _ => None,
    };
    Some(Logged {
        prefix: prefix.unwrap_or_default(),
        src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        proto,
        dport,
    })
}

/// What the log lines need from the plan and the snapshot; replaced after
/// every compile.
#[derive(Debug, Default, Clone)]
pub struct Describer {
    /// Log prefix -> direction and the policies of that drop chain.
    reasons: HashMap<String, (Direction, Vec<String>)>,
    /// Pod address -> namespace/name.
    pods: HashMap<Ipv4Addr, String>,
}

impl Describer {
    pub fn new(table: &strait_plan::nft::Table, snap: &strait_model::Snapshot) -> Self {
        let reasons = drop_reasons(table)
            .into_iter()
            .map(|(prefix, d, policies)| (prefix, (d, policies)))
            .collect();
        let pods = snap
            .pods
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.host_network) != Some(true))
            .filter_map(|p| {
                let ip = p.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?;
                let m = &p.metadata;
                Some((
                    ip,
                    format!(
                        "{}/{}",
                        m.namespace.as_deref().unwrap_or("default"),
                        m.name.as_deref().unwrap_or("")
                    ),
                ))
            })
            .collect();
        Describer { reasons, pods }
    }

    fn name(&self, a: Ipv4Addr) -> String {
        match self.pods.get(&a) {
            Some(p) => format!("{p} ({a})"),
            None => a.to_string(),
        }
    }

    /// `policy drop: ingress to pod prod/web (10.42.1.10) from ... tcp/81
    /// by prod/web`.
    pub fn line(&self, l: &Logged) -> String {
        let proto = match strait_plan::nft::L4Proto::from_number(l.proto) {
            Some(p) if p.has_ports() || p == strait_plan::nft::L4Proto::Icmp => {
                p.as_str().to_string()
            }
            _ => format!("proto {}", l.proto),
        };
        let what = match l.dport {
            Some(p) => format!("{proto}/{p}"),
            None => proto,
        };
        let Some((d, policies)) = self.reasons.get(&l.prefix) else {
            return format!(
                "policy drop ({}): {} -> {} {what}",
                l.prefix,
                self.name(l.src),
                self.name(l.dst)
            );
        };
        let (pod, peer, dir) = match d {
            Direction::Ingress => (l.dst, l.src, "ingress to pod"),
            Direction::Egress => (l.src, l.dst, "egress from pod"),
        };
        let towards = if *d == Direction::Ingress {
            "from"
        } else {
            "to"
        };
        format!(
            "policy drop: {dir} {} {towards} {} {what}; not allowed by {}",
            self.name(pod),
            self.name(peer),
            policies.join(", ")
        )
    }
}

/// Reads `log` forever on a thread of its own, writing a line per drop.
pub fn spawn(log: DropLog, describer: Arc<Mutex<Describer>>) {
    std::thread::spawn(move || loop {
        match log.recv() {
            Ok(packets) => {
                let d = describer.lock().unwrap_or_else(|e| e.into_inner());
                for p in packets {
                    eprintln!("strait-agent: {}", d.line(&p));
                    crate::drop_feed::publish(&p);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                eprintln!("strait-agent: policy drop log: lines lost (reader behind)");
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("strait-agent: policy drop log stopped: {e}");
                return;
            }
        }
    });
}

#[cfg(test)]
#[path = "policy_log_tests.rs"]
mod tests;
