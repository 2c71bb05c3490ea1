//! DEL: remove the links and release the addresses. Idempotent: a missing
//! namespace, interface or allocation is success, as the spec requires.

use super::add::{host_netlink, pod_netlink};
use crate::addresses;
use crate::datapath::{self, names};
use crate::protocol::{CniEnv, CniError, NetConf};
use strait_kernel::NetnsHandle;

pub fn run(env: &CniEnv, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    let mut host = host_netlink()?;
    // The namespace may already be gone: then so is the pod's veth end.
    let pod_ns = env
        .netns
        .as_deref()
        .and_then(|p| NetnsHandle::open(p).ok().map(|ns| (ns, p)));
    let mut pod = match &pod_ns {
        Some((ns, path)) => Some(pod_netlink(ns, path)?),
        None => None,
    };
    let host_ifname = names::host_veth(&env.container_id, &env.ifname);
    // Release even if the links could not be removed, then report the error:
    // an address must not stay held by an attachment the runtime gave up on.
    let links = datapath::teardown(&mut host, pod.as_mut(), &host_ifname, &env.ifname);
    addresses::release(env, conf, stdin)?;
    links
}
