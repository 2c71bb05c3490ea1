//! ADD: allocate addresses, build the data path, print the result. If the
//! data path fails, the addresses are given back before the error returns.

use crate::addresses;
use crate::datapath::{self, crash_point, Attachment};
use crate::node_config::NodeConfig;
use crate::protocol::{CniEnv, CniError, ErrorCode, NetConf};
use serde_json::Value;
use std::path::Path;
use strait_kernel::{Netlink, NetnsHandle};

const DEFAULT_MTU: u32 = 1500;

pub fn open_pod_netns(path: &Path) -> Result<NetnsHandle, CniError> {
    NetnsHandle::open(path).map_err(|e| {
        CniError::new(
            ErrorCode::UnknownContainer,
            format!("CNI_NETNS: cannot open {}: {e}", path.display()),
        )
    })
}

pub fn host_netlink() -> Result<Netlink, CniError> {
    Netlink::open().map_err(|e| CniError::io(format!("cannot open a netlink socket: {e}")))
}

pub fn pod_netlink(ns: &NetnsHandle, path: &Path) -> Result<Netlink, CniError> {
    ns.netlink().map_err(|e| {
        CniError::io(format!(
            "cannot open a netlink socket in {}: {e}",
            path.display()
        ))
    })
}

pub fn run(env: &CniEnv, conf: &NetConf, stdin: &[u8]) -> Result<Value, CniError> {
    let netns_path = env
        .netns
        .as_deref()
        .ok_or_else(|| CniError::env("CNI_NETNS: required for ADD"))?;
    let pod_ns = open_pod_netns(netns_path)?;
    let mut host = host_netlink()?;
    let mut pod = pod_netlink(&pod_ns, netns_path)?;
    let node = NodeConfig::load(&conf.node_config)?;

    let addrs = addresses::allocate(env, conf, node.as_ref(), stdin)?;
    crash_point("after-ipam");
    let mtu = conf
        .mtu
        .or(node.as_ref().and_then(|n| n.mtu))
        .unwrap_or(DEFAULT_MTU);
    let netns_text = netns_path.display().to_string();
    let attachment = Attachment {
        network: &conf.name,
        container_id: &env.container_id,
        pod_ifname: &env.ifname,
        netns_path: &netns_text,
        mode: conf.mode,
        bridge: &conf.bridge,
        mtu,
        gso_max_size: node.as_ref().and_then(|n| n.gso_max_size),
        hairpin: conf.hairpin,
        ips: &addrs.ips,
        routes: &addrs.routes,
    };
    let built = datapath::setup(&mut host, &mut pod, &pod_ns, &attachment);
    let mut result = match built {
        Ok(r) => r,
        Err(e) => {
            if let Err(release) = addresses::release(env, conf, stdin) {
                return Err(e.with_details(format!(
                    "releasing the addresses afterwards failed too: {}",
                    release.msg
                )));
            }
            return Err(e);
        }
    };
    crash_point("before-result");
    result.dns = if conf.dns.is_empty() {
        addrs.dns
    } else {
        conf.dns.clone()
    };
    Ok(result.to_json(conf.cni_version))
}
