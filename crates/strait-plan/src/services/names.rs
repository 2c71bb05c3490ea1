//! Stable nft names for per-service and per-endpoint chains.

use super::*;

/// FNV-1a (32 bit), written out so names stay stable across Rust releases.
pub(crate) fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// `<prefix>-<ns>-<name>-<port>-<proto>`; characters nft names cannot hold
/// become `_`; longer than [`MAX_CHAIN_NAME`]: cut, plus `-` and 8 hex
/// digits of a hash of the whole identity.
pub fn service_chain_name(
    prefix: &str,
    ns: &str,
    name: &str,
    port: &str,
    proto: L4Proto,
) -> String {
    let full = format!("{prefix}-{ns}-{name}-{port}-{}", proto.as_str());
    let clean: String = full
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.len() <= MAX_CHAIN_NAME {
        return clean;
    }
    let hash = fnv1a(&format!("{ns}/{name}/{port}/{}", proto.as_str()));
    format!("{}-{hash:08x}", &clean[..MAX_CHAIN_NAME - 9])
}

/// `sep-10.42.1.5-8080-tcp`.
pub fn endpoint_chain_name(ip: Ipv4Addr, port: u16, proto: L4Proto) -> String {
    format!("sep-{ip}-{port}-{}", proto.as_str())
}

/// Per-service chain name -> the identity (prefix/ns/name/port/proto) that
/// owns it.
#[derive(Default)]
pub(super) struct ChainOwners(HashMap<String, String>);

impl ChainOwners {
    /// [`service_chain_name`], unless another service port already owns
    /// that name (`a-b`/`c` and `a`/`b-c` read the same): then the name
    /// gets a hash of this identity. Services come sorted, so the choice is
    /// stable.
    pub(super) fn chain_name(
        &mut self,
        prefix: &str,
        ns: &str,
        name: &str,
        port: &str,
        proto: L4Proto,
    ) -> String {
        let plain = service_chain_name(prefix, ns, name, port, proto);
        let identity = format!("{prefix}/{ns}/{name}/{port}/{}", proto.as_str());
        match self.0.get(&plain) {
            None => {
                self.0.insert(plain.clone(), identity);
                plain
            }
            Some(owner) if *owner == identity => plain,
            Some(_) => {
                let cut = plain.len().min(MAX_CHAIN_NAME - 9);
                format!("{}-{:08x}", &plain[..cut], fnv1a(&identity))
            }
        }
    }
}
