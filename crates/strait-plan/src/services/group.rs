//! Service ports grouped by endpoint count: one map and one chain per
//! group, so the kernel object count does not grow with Services.

use super::*;

/// Which endpoints a grouped map holds: every ready endpoint (cluster) or
/// this node's (local), and whether it is keyed by address or, for
/// NodePorts, by port only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Group {
    pub(super) nodeport: bool,
    pub(super) local: bool,
    /// Endpoints per service port in this group (`numgen random mod n`).
    pub(super) n: u32,
}

impl Group {
    /// `eps-n3`, `eps-local-n1`, `np-eps-n2`, `np-eps-local-n1`.
    pub(super) fn map_name(self) -> String {
        format!("{}eps-{}n{}", self.prefix(), self.view(), self.n)
    }

    /// `lb-n3`, `lb-local-n1`, `np-lb-n2`, `np-lb-local-n1`.
    pub(super) fn chain_name(self) -> String {
        format!("{}lb-{}n{}", self.prefix(), self.view(), self.n)
    }

    pub(super) fn prefix(self) -> &'static str {
        if self.nodeport {
            "np-"
        } else {
            ""
        }
    }

    pub(super) fn view(self) -> &'static str {
        if self.local {
            "local-"
        } else {
            ""
        }
    }

    /// The lookup key: the service key, then the random pick.
    pub(super) fn key_exprs(self) -> Vec<KeyExpr> {
        let mut key = if self.nodeport {
            PORT_KEY.to_vec()
        } else {
            ADDR_KEY.to_vec()
        };
        key.push(KeyExpr::Numgen(self.n));
        key
    }
}
