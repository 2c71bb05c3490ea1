//! SCTP INIT packets over raw IP sockets, so Service DNAT of SCTP can be
//! tested with real packets on a kernel without an SCTP stack
//! (`CONFIG_IP_SCTP` unset) that still has SCTP conntrack and NAT.
//!
//! - [`init_packet`] builds an SCTP common header plus one INIT chunk, with
//!   its CRC32c checksum (conntrack drops a packet whose checksum is wrong).
//! - [`SctpRawSocket`] sends such packets, and receives a copy of every SCTP
//!   packet delivered to its namespace: raw sockets get a packet before the
//!   kernel looks for a protocol handler (and, having delivered it to one,
//!   the kernel sends no ICMP protocol unreachable).
//! - [`IcmpRawSocket`] receives ICMP, to see a reject (port unreachable)
//!   that quotes an SCTP packet.
//!
//! Sockets are opened in a namespace on a thread of their own
//! ([`run_in_netns`]) and stay there; this module never moves the caller.

use crate::echo::{sockaddr_v4, wait_readable};
use crate::netns::run_in_netns;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

/// IP protocol numbers.
const IPPROTO_SCTP: u8 = 132;
const IPPROTO_ICMP: u8 = 1;
/// SCTP chunk type INIT (RFC 9260 section 3.2).
pub const CHUNK_INIT: u8 = 1;
/// ICMP destination unreachable and its port unreachable code.
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_PORT_UNREACH: u8 = 3;

/// CRC32c (Castagnoli, reflected polynomial 0x82F63B78), as SCTP uses it
/// (RFC 9260 appendix A). Bitwise, without a table: the lab checksums a
/// few dozen 32-byte packets, and no CRC crate is in the workspace, so a
/// dependency would buy nothing.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let carry = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & carry);
        }
    }
    !crc
}

/// The SCTP checksum of `sctp` (common header and chunks), computed with
/// the checksum field taken as zero. It is stored least significant byte
/// first (Linux `sctp_compute_cksum` returns `cpu_to_le32`).
fn sctp_checksum(sctp: &[u8]) -> [u8; 4] {
    let mut copy = sctp.to_vec();
    if let Some(field) = copy.get_mut(8..12) {
        field.fill(0);
    }
    crc32c(&copy).to_le_bytes()
}

/// An INIT chunk's fields that a test chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Init {
    pub src_port: u16,
    pub dst_port: u16,
    /// Nonzero (RFC 9260 section 3.3.2); the lab also uses it to tell its
    /// own packets apart, as NAT leaves the chunk alone.
    pub initiate_tag: u32,
}

/// The SCTP packet (no IP header) carrying `init`: common header with
/// verification tag 0, then the INIT chunk with no optional parameters.
pub fn init_packet(init: &Init) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0..2].copy_from_slice(&init.src_port.to_be_bytes());
    p[2..4].copy_from_slice(&init.dst_port.to_be_bytes());
    // p[4..8]: verification tag 0, as an INIT must have.
    // p[8..12]: checksum, filled in last.
    p[12] = CHUNK_INIT;
    p[13] = 0; // flags
    p[14..16].copy_from_slice(&20u16.to_be_bytes()); // chunk length
    p[16..20].copy_from_slice(&init.initiate_tag.to_be_bytes());
    p[20..24].copy_from_slice(&65_536u32.to_be_bytes()); // a_rwnd
    p[24..26].copy_from_slice(&1u16.to_be_bytes()); // outbound streams
    p[26..28].copy_from_slice(&1u16.to_be_bytes()); // inbound streams
    p[28..32].copy_from_slice(&init.initiate_tag.to_be_bytes()); // initial TSN
    let sum = sctp_checksum(&p);
    p[8..12].copy_from_slice(&sum);
    p
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

fn be16(b: &[u8], at: usize) -> io::Result<u16> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| malformed("packet too short"))
}

fn be32(b: &[u8], at: usize) -> io::Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| malformed("packet too short"))
}

/// An IPv4 header: protocol, addresses, and where its payload starts.
struct Ipv4Header {
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload: usize,
}

fn ipv4_header(p: &[u8]) -> io::Result<Ipv4Header> {
    let first = *p.first().ok_or_else(|| malformed("empty packet"))?;
    if first >> 4 != 4 {
        return Err(malformed("not IPv4"));
    }
    let len = usize::from(first & 0x0f) * 4;
    if len < 20 || p.len() < len {
        return Err(malformed("bad IPv4 header length"));
    }
    Ok(Ipv4Header {
        proto: p[9],
        src: Ipv4Addr::from(be32(p, 12)?),
        dst: Ipv4Addr::from(be32(p, 16)?),
        payload: len,
    })
}

/// What an SCTP packet received with its IPv4 header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SctpSeen {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub verification_tag: u32,
    /// The first chunk's type.
    pub chunk: u8,
    /// The initiate tag, if the first chunk is an INIT.
    pub initiate_tag: Option<u32>,
    /// The checksum matches the packet (NAT must have rewritten it).
    pub checksum_ok: bool,
}

/// Reads an IPv4 packet carrying SCTP, as a raw socket receives it.
pub fn parse_sctp(packet: &[u8]) -> io::Result<SctpSeen> {
    let ip = ipv4_header(packet)?;
    if ip.proto != IPPROTO_SCTP {
        return Err(malformed("not SCTP"));
    }
    let s = &packet[ip.payload..];
    let chunk = *s
        .get(12)
        .ok_or_else(|| malformed("SCTP packet has no chunk"))?;
    let initiate_tag = match chunk {
        CHUNK_INIT => Some(be32(s, 16)?),
        _ => None,
    };
    Ok(SctpSeen {
        src: SocketAddrV4::new(ip.src, be16(s, 0)?),
        dst: SocketAddrV4::new(ip.dst, be16(s, 2)?),
        verification_tag: be32(s, 4)?,
        chunk,
        initiate_tag,
        checksum_ok: s[8..12] == sctp_checksum(s),
    })
}

/// An ICMP error received with its IPv4 header, and the packet it quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpSeen {
    pub from: Ipv4Addr,
    pub kind: u8,
    pub code: u8,
    /// The quoted packet's protocol, source and destination (ports from its
    /// first 4 transport bytes, as TCP, UDP and SCTP all start with them).
    pub quoted: Option<(u8, SocketAddrV4, SocketAddrV4)>,
}

/// Reads an IPv4 packet carrying ICMP; `quoted` is set for errors that
/// quote an IPv4 packet with at least its ports.
pub fn parse_icmp(packet: &[u8]) -> io::Result<IcmpSeen> {
    let ip = ipv4_header(packet)?;
    if ip.proto != IPPROTO_ICMP {
        return Err(malformed("not ICMP"));
    }
    let icmp = &packet[ip.payload..];
    let (kind, code) = match icmp {
        [kind, code, ..] => (*kind, *code),
        _ => return Err(malformed("ICMP header too short")),
    };
    // Destination unreachable, time exceeded, parameter problem: the
    // offending packet follows the 8-byte ICMP header.
    let quoted = match kind {
        3 | 11 | 12 => icmp.get(8..).and_then(|q| {
            let inner = ipv4_header(q).ok()?;
            let ports = q.get(inner.payload..inner.payload + 4)?;
            let sport = u16::from_be_bytes([ports[0], ports[1]]);
            let dport = u16::from_be_bytes([ports[2], ports[3]]);
            Some((
                inner.proto,
                SocketAddrV4::new(inner.src, sport),
                SocketAddrV4::new(inner.dst, dport),
            ))
        }),
        _ => None,
    };
    Ok(IcmpSeen {
        from: ip.src,
        kind,
        code,
        quoted,
    })
}

/// A raw IPv4 socket for one protocol, in the namespace it was opened in.
#[derive(Debug)]
struct RawSocket {
    fd: OwnedFd,
}

impl RawSocket {
    /// Opens the socket inside the namespace at `netns`.
    fn open_in(netns: &Path, proto: u8) -> io::Result<RawSocket> {
        let shown = netns.display().to_string();
        run_in_netns(netns, move || {
            // SAFETY: socket() has no memory arguments; a non-negative
            // result is a new descriptor that we own.
            let fd = unsafe {
                libc::socket(
                    libc::AF_INET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::c_int::from(proto),
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fd is a fresh descriptor nobody else owns.
            Ok(RawSocket {
                fd: unsafe { OwnedFd::from_raw_fd(fd) },
            })
        })?
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("raw socket for IP protocol {proto} in {shown}: {e}"),
            )
        })
    }

    /// Sends `payload`; the kernel adds the IPv4 header (source address
    /// from the route to `to`).
    fn send_to(&self, payload: &[u8], to: Ipv4Addr) -> io::Result<()> {
        // The port of a raw socket's address is unused.
        let addr = sockaddr_v4(to, 0);
        // SAFETY: payload and addr are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                payload.as_ptr().cast(),
                payload.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("sending to {to}: {e}")));
        }
        Ok(())
    }

    /// The next packet (with its IPv4 header), or `None` if none comes
    /// within `timeout`.
    fn recv(&self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        if !wait_readable(self.fd.as_raw_fd(), timeout) {
            return Ok(None);
        }
        let mut buf = vec![0u8; 65_536];
        // SAFETY: buf is valid for its length; MSG_DONTWAIT so a packet
        // taken by nobody else cannot make us block.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(io::Error::new(e.kind(), format!("receiving: {e}"))),
            };
        }
        buf.truncate(n as usize);
        Ok(Some(buf))
    }
}

/// Sends hand-built SCTP packets from a namespace and receives every SCTP
/// packet delivered to it.
#[derive(Debug)]
pub struct SctpRawSocket(RawSocket);

impl SctpRawSocket {
    pub fn open_in(netns: &Path) -> io::Result<Self> {
        RawSocket::open_in(netns, IPPROTO_SCTP).map(Self)
    }

    /// Sends an INIT to `to` (the address and `init.dst_port`).
    pub fn send_init(&self, to: Ipv4Addr, init: &Init) -> io::Result<()> {
        self.send(to, &init_packet(init))
    }

    /// Sends any SCTP packet (common header onwards), e.g. a damaged one.
    pub fn send(&self, to: Ipv4Addr, sctp: &[u8]) -> io::Result<()> {
        self.0.send_to(sctp, to)
    }

    /// The next SCTP packet delivered here within `timeout`; packets that
    /// do not parse are skipped.
    pub fn recv(&self, timeout: Duration) -> io::Result<Option<SctpSeen>> {
        let deadline = std::time::Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.0.recv(left)? {
                Some(p) => match parse_sctp(&p) {
                    Ok(seen) => return Ok(Some(seen)),
                    Err(_) => continue,
                },
                None => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// Receives every ICMP packet delivered to a namespace.
#[derive(Debug)]
pub struct IcmpRawSocket(RawSocket);

impl IcmpRawSocket {
    pub fn open_in(netns: &Path) -> io::Result<Self> {
        RawSocket::open_in(netns, IPPROTO_ICMP).map(Self)
    }

    /// The next ICMP packet delivered here within `timeout`; packets that
    /// do not parse are skipped.
    pub fn recv(&self, timeout: Duration) -> io::Result<Option<IcmpSeen>> {
        let deadline = std::time::Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.0.recv(left)? {
                Some(p) => match parse_icmp(&p) {
                    Ok(seen) => return Ok(Some(seen)),
                    Err(_) => continue,
                },
                None => return Ok(None),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_values() {
        // The standard check value, and RFC 3720 B.4's 32 zero bytes.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        assert_eq!(crc32c(b""), 0);
    }

    /// An IPv4 header (no options) in front of `payload`.
    fn ipv4(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
        p[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn init_packet_layout() {
        let init = Init {
            src_port: 0x1234,
            dst_port: 9999,
            initiate_tag: 0xA1B2_C3D4,
        };
        let p = init_packet(&init);
        assert_eq!(&p[0..4], &[0x12, 0x34, 0x27, 0x0f]);
        assert_eq!(&p[4..8], &[0, 0, 0, 0], "an INIT carries tag 0");
        assert_eq!(&p[12..16], &[1, 0, 0, 20], "INIT, no flags, length 20");
        assert_eq!(&p[16..20], &[0xA1, 0xB2, 0xC3, 0xD4]);
        // The checksum over the packet with the field zeroed, least
        // significant byte first.
        let mut zeroed = p;
        zeroed[8..12].fill(0);
        assert_eq!(p[8..12], crc32c(&zeroed).to_le_bytes());
    }

    #[test]
    fn parse_reads_back_what_init_packet_wrote() {
        let init = Init {
            src_port: 40_000,
            dst_port: 7777,
            initiate_tag: 7,
        };
        let (a, b) = (Ipv4Addr::new(10, 42, 1, 5), Ipv4Addr::new(10, 42, 2, 6));
        let seen = parse_sctp(&ipv4(132, a, b, &init_packet(&init))).unwrap();
        assert_eq!(
            seen,
            SctpSeen {
                src: SocketAddrV4::new(a, 40_000),
                dst: SocketAddrV4::new(b, 7777),
                verification_tag: 0,
                chunk: CHUNK_INIT,
                initiate_tag: Some(7),
                checksum_ok: true,
            }
        );
        // A rewritten port without a new checksum is noticed.
        let mut p = init_packet(&init);
        p[3] ^= 1;
        assert!(!parse_sctp(&ipv4(132, a, b, &p)).unwrap().checksum_ok);
    }

    #[test]
    fn parse_refuses_what_is_not_ipv4_sctp() {
        let (a, b) = (Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST);
        let init = init_packet(&Init {
            src_port: 1,
            dst_port: 2,
            initiate_tag: 3,
        });
        assert!(parse_sctp(&[]).is_err());
        assert!(parse_sctp(&[0x60; 40]).is_err(), "IPv6");
        assert!(parse_sctp(&ipv4(17, a, b, &init)).is_err(), "UDP");
        assert!(parse_sctp(&ipv4(132, a, b, &init[..10])).is_err());
        assert!(parse_sctp(&ipv4(132, a, b, &init[..18])).is_err());
        let mut bad_ihl = ipv4(132, a, b, &init);
        bad_ihl[0] = 0x4f;
        assert!(parse_sctp(&bad_ihl[..50]).is_err());
    }

    #[test]
    fn parse_icmp_port_unreachable_quoting_sctp() {
        let (client, vip, node) = (
            Ipv4Addr::new(10, 42, 1, 5),
            Ipv4Addr::new(10, 43, 0, 10),
            Ipv4Addr::new(10, 42, 1, 1),
        );
        let init = init_packet(&Init {
            src_port: 40_000,
            dst_port: 9999,
            initiate_tag: 9,
        });
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&ipv4(132, client, vip, &init[..8]));
        let seen = parse_icmp(&ipv4(1, node, client, &icmp)).unwrap();
        assert_eq!(
            seen,
            IcmpSeen {
                from: node,
                kind: ICMP_DEST_UNREACH,
                code: ICMP_PORT_UNREACH,
                quoted: Some((
                    132,
                    SocketAddrV4::new(client, 40_000),
                    SocketAddrV4::new(vip, 9999)
                )),
            }
        );
        // An echo reply quotes nothing; a truncated quote is not read.
        let echo = parse_icmp(&ipv4(1, node, client, &[0, 0, 0, 0, 0, 1, 0, 1])).unwrap();
        assert_eq!(echo.quoted, None);
        let short = parse_icmp(&ipv4(1, node, client, &icmp[..30])).unwrap();
        assert_eq!(short.quoted, None);
        assert!(parse_icmp(&ipv4(1, node, client, &[3])).is_err());
    }
}
