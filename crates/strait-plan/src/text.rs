//! A stable, human-readable rendering of a [`Plan`]: what the golden tests
//! compare and what a dry run prints. Sections in a fixed order, one object
//! per line in `ip`-command syntax, then the nft script as `nft -f` gets it.

use crate::plan::Plan;
use std::fmt::{self, Write};

fn section<T: fmt::Display>(out: &mut String, title: &str, items: &[T]) {
    let _ = writeln!(out, "{title}:");
    if items.is_empty() {
        out.push_str("  (none)\n");
    }
    for item in items {
        let _ = writeln!(out, "  {item}");
    }
    out.push('\n');
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let node_file = serde_json::to_string(&self.node_file).map_err(|_| fmt::Error)?;
        let _ = writeln!(out, "node file: {node_file}\n");
        let sysctls: Vec<String> = self
            .sysctls
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        section(&mut out, "sysctls", &sysctls);
        let _ = writeln!(out, "bridge: {} mtu {}", self.bridge.name, self.bridge.mtu);
        for a in &self.bridge.addresses {
            let _ = writeln!(out, "  address {a}");
        }
        out.push('\n');
        match &self.vxlan {
            Some(v) => {
                let _ = writeln!(out, "vxlan: {v}\n  address {}\n", v.address);
            }
            None => out.push_str("vxlan: (none)\n\n"),
        }
        section(
            &mut out,
            &format!("routes (proto {:#04x})", crate::STRAIT_ROUTE_PROTO),
            &self.routes,
        );
        section(&mut out, "neighbours", &self.neighbours);
        section(&mut out, "fdb", &self.fdb);
        section(&mut out, "warnings", &self.warnings);
        out.push_str("nft:\n");
        out.push_str(&crate::nft::render(&self.nft));
        f.write_str(&out)
    }
}
