//! CHECK: the attachment still looks as prevResult says.

use super::add::{host_netlink, open_pod_netns, pod_netlink};
use crate::addresses;
use crate::datapath::{self, verify::Expected};
use crate::delegate;
use crate::protocol::config::Ipam;
use crate::protocol::{CniEnv, CniError, Command, ErrorCode, NetConf};

pub fn run(env: &CniEnv, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    if !conf.cni_version.has_check() {
        return Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!(
                "cniVersion: CHECK needs 0.4.0 or later, the config says {}",
                conf.cni_version.as_str()
            ),
        ));
    }
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::config("prevResult: required for CHECK"))?;
    let netns_path = env
        .netns
        .as_deref()
        .ok_or_else(|| CniError::env("CNI_NETNS: required for CHECK"))?;

    let pod_ns = open_pod_netns(netns_path)?;
    match &conf.ipam {
        Ipam::InProcess(cfg) => {
            let held = addresses::store(conf, cfg)?.get(&addresses::attachment(env))?;
            for ip in &prev.ips {
                if !held.contains(&ip.address.addr()) {
                    return Err(CniError::new(
                        ErrorCode::CheckFailed,
                        format!(
                            "address {} is not allocated to {}/{} in the IPAM store",
                            ip.address.addr(),
                            env.container_id,
                            env.ifname
                        ),
                    ));
                }
            }
        }
        Ipam::Delegate(kind) => {
            delegate::run(env, kind, Command::Check, stdin)?;
        }
    }

    let mut host = host_netlink()?;
    let mut pod = pod_netlink(&pod_ns, netns_path)?;
    let netns_text = netns_path.display().to_string();
    datapath::verify(
        &mut host,
        &mut pod,
        &Expected {
            container_id: &env.container_id,
            pod_ifname: &env.ifname,
            netns_path: &netns_text,
            mode: conf.mode,
            bridge: &conf.bridge,
            prev,
        },
    )
}
