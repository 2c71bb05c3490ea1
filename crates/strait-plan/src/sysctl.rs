//! The sysctls a node needs: IPv4 forwarding on, and loose reverse-path
//! filtering (2) on the bridge and the VXLAN device, so pod traffic arriving
//! over the overlay is not dropped for an asymmetric path. (The kernel uses
//! the larger of `conf/all` and `conf/<dev>`, so 2 wins whatever `all` is.)
//!
//! Keys are `/proc/sys` paths below it, with slashes: interface names may
//! hold dots (`strait.vxlan`), which the dotted notation cannot express.

use std::collections::BTreeMap;

/// Forwarding between interfaces.
pub const IP_FORWARD: &str = "net/ipv4/ip_forward";
/// Loose reverse-path filtering.
pub const RP_FILTER_LOOSE: &str = "2";

/// `net/ipv4/conf/<dev>/rp_filter`.
pub fn rp_filter_key(dev: &str) -> String {
    format!("net/ipv4/conf/{dev}/rp_filter")
}

/// The sysctls for a node with this bridge and, with vxlan, this device.
pub fn sysctls(bridge: &str, vxlan_dev: Option<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(IP_FORWARD.to_string(), "1".to_string());
    out.insert(rp_filter_key(bridge), RP_FILTER_LOOSE.to_string());
    if let Some(dev) = vxlan_dev {
        out.insert(rp_filter_key(dev), RP_FILTER_LOOSE.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_gw_and_vxlan() {
        let s = sysctls("strait0", None);
        assert_eq!(
            s.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
            ["net/ipv4/conf/strait0/rp_filter=2", "net/ipv4/ip_forward=1"]
        );
        let s = sysctls("cbr0", Some("strait.vxlan"));
        assert_eq!(
            s.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
            [
                "net/ipv4/conf/cbr0/rp_filter=2",
                "net/ipv4/conf/strait.vxlan/rp_filter=2",
                "net/ipv4/ip_forward=1"
            ]
        );
    }
}
