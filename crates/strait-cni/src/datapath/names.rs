//! Names of the host-side objects an attachment owns.
//!
//! The host veth name is derived from the attachment, so DEL, CHECK and GC
//! find it without any saved state. The hash must stay stable across strait
//! versions (a DEL may run under a newer binary than its ADD), so it is
//! FNV-1a spelled out here rather than std's unspecified hasher.

/// Prefix of every host veth strait-cni creates.
pub const HOST_VETH_PREFIX: &str = "stv";

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `stv` + 12 hex digits: 15 characters, the kernel's limit.
pub fn host_veth(container_id: &str, ifname: &str) -> String {
    let h = fnv1a64(format!("{container_id}/{ifname}").as_bytes());
    format!("{HOST_VETH_PREFIX}{:012x}", h & 0xffff_ffff_ffff)
}

/// The alias written on the host veth: who it belongs to, readable in
/// `ip link` and parsed back by GC.
pub fn alias(network: &str, container_id: &str, ifname: &str) -> String {
    format!("strait/{network}/{container_id}/{ifname}")
}

/// The (container id, ifname) of an alias written for `network`.
pub fn parse_alias<'a>(network: &str, alias: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = alias.strip_prefix("strait/")?.strip_prefix(network)?;
    let rest = rest.strip_prefix('/')?;
    rest.rsplit_once('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_names_are_stable_and_short() {
        // Pinned: changing the hash would orphan every existing pod's veth.
        assert_eq!(host_veth("c1", "eth0"), host_veth("c1", "eth0"));
        assert_eq!(
            host_veth("abc", "eth0"),
            "stv".to_owned() + &format!("{:012x}", fnv1a64(b"abc/eth0") & 0xffff_ffff_ffff)
        );
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(host_veth("c1", "eth0"), host_veth("c1", "net1"));
        assert_eq!(host_veth("x".repeat(64).as_str(), "eth0").len(), 15);
    }

    #[test]
    fn alias_round_trips_and_is_network_specific() {
        let a = alias("pods", "c1", "eth0");
        assert_eq!(parse_alias("pods", &a), Some(("c1", "eth0")));
        assert_eq!(parse_alias("pod", &a), None);
        assert_eq!(parse_alias("pods-2", &a), None);
    }
}
