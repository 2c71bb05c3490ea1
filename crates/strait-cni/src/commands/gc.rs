//! GC: release everything this network holds for attachments the runtime no
//! longer lists in `cni.dev/valid-attachments`: IPAM allocations, and host
//! veths (found by the alias ADD wrote on them) whose namespace leaked.

use super::add::host_netlink;
use crate::addresses;
use crate::datapath::names;
use crate::delegate;
use crate::protocol::config::Ipam;
use crate::protocol::{CniEnv, CniError, Command, NetConf};
use strait_kernel::link;

pub fn run(env: &CniEnv, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    let valid = conf
        .valid_attachments
        .as_ref()
        .ok_or_else(|| CniError::config("cni.dev/valid-attachments: required for GC"))?;
    let mut errors: Vec<String> = Vec::new();

    // Host veths of released attachments, by their derived names: this
    // also finds a veth whose ADD died before writing its alias (the
    // allocation always exists before the veth does).
    let mut dead_veths: Vec<String> = Vec::new();
    match &conf.ipam {
        Ipam::InProcess(cfg) => {
            let released = addresses::store(conf, cfg).and_then(|s| {
                let before = s.allocations()?;
                s.gc(valid)?;
                Ok(before)
            });
            match released {
                Ok(before) => dead_veths.extend(
                    before
                        .into_iter()
                        .filter(|(_, id)| !valid.contains(id))
                        .map(|(_, id)| names::host_veth(&id.container_id, &id.ifname)),
                ),
                Err(e) => errors.push(e.msg),
            }
        }
        Ipam::Delegate(kind) => {
            if let Err(e) = delegate::run(env, kind, Command::Gc, stdin) {
                errors.push(e.msg);
            }
        }
    }

    let mut host = host_netlink()?;
    let links = link::all(&mut host).map_err(|e| CniError::kernel(e.to_string()))?;
    for l in links {
        let owner = l
            .alias
            .as_deref()
            .and_then(|alias| names::parse_alias(&conf.name, alias));
        let dead = match owner {
            Some((container_id, ifname)) => !valid
                .iter()
                .any(|a| a.container_id == container_id && a.ifname == ifname),
            None => dead_veths.contains(&l.name),
        };
        if dead {
            if let Err(e) = link::delete(&mut host, l.index, &l.name) {
                errors.push(e.to_string());
            }
        }
    }
    // Keep going past failures and report all of them at the end.
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CniError::io(format!("GC: {}", errors.join("; "))))
    }
}
