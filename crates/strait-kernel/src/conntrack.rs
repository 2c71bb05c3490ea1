//! Removing stale conntrack flows, through the `conntrack` tool (stale
//! endpoints are rare events; a fork each is cheap enough).
//!
//! Why: a UDP client that keeps sending to a Service address keeps its
//! conntrack entry alive, so after its endpoint is gone every packet is
//! still DNATed to the dead address (the classic DNS blackhole). Deleting
//! the flow makes the next packet choose a live endpoint.

use std::net::IpAddr;
use std::process::Command;

/// Deletes UDP flows that were sent to `service_ip:port` and answered by
/// `endpoint_ip`. Returns how many were deleted.
pub fn delete_udp_flows(
    service_ip: IpAddr,
    port: u16,
    endpoint_ip: IpAddr,
) -> std::io::Result<u32> {
    let family = if service_ip.is_ipv4() { "ipv4" } else { "ipv6" };
    let out = Command::new("conntrack")
        .args(["-D", "-f", family, "-p", "udp", "--orig-dst"])
        .arg(service_ip.to_string())
        .args(["--dport"])
        .arg(port.to_string())
        .args(["--reply-src"])
        .arg(endpoint_ip.to_string())
        .output()?;
    // conntrack prints "N flow entries have been deleted." on stderr, and
    // exits 1 when N is 0: that is not a failure here.
    let text = String::from_utf8_lossy(&out.stderr);
    let n = text
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    if !out.status.success() && n == 0 && !text.contains("0 flow entries") {
        return Err(std::io::Error::other(format!(
            "conntrack -D failed: {}",
            text.trim()
        )));
    }
    Ok(n)
}
