//! The packet being traced: IPv4 addresses, protocol and ports.

use serde::Serialize;
use std::fmt;
use std::net::Ipv4Addr;
use strait_plan::nft::L4Proto;

/// The source port traced packets use (any ephemeral port behaves alike).
pub const SOURCE_PORT: u16 = 40000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Packet {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: L4Proto,
    /// 0 for ICMP.
    pub sport: u16,
    /// 0 for ICMP.
    pub dport: u16,
}

impl Packet {
    /// The answer to this packet: addresses and ports swapped.
    pub fn reply(&self) -> Packet {
        Packet {
            src: self.dst,
            dst: self.src,
            proto: self.proto,
            sport: self.dport,
            dport: self.sport,
        }
    }
}

impl fmt::Display for Packet {
    /// `10.42.1.5:40000 -> 10.43.0.10:80 tcp`, `10.42.1.5 -> 10.42.2.3 icmp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.proto.has_ports() {
            write!(
                f,
                "{}:{} -> {}:{} {}",
                self.src,
                self.sport,
                self.dst,
                self.dport,
                self.proto.as_str()
            )
        } else {
            write!(f, "{} -> {} {}", self.src, self.dst, self.proto.as_str())
        }
    }
}

/// Parses `tcp`, `udp`, `sctp`, `icmp`.
pub fn parse_proto(s: &str) -> Result<L4Proto, String> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(L4Proto::Tcp),
        "udp" => Ok(L4Proto::Udp),
        "sctp" => Ok(L4Proto::Sctp),
        "icmp" => Ok(L4Proto::Icmp),
        _ => Err(format!("--proto {s:?}: not one of tcp, udp, sctp, icmp")),
    }
}
