//! Where a pod's addresses come from: strait's in-process allocator (the
//! default, no second exec) or a delegated IPAM plugin. Both give the same
//! `Addresses`, so the data path does not care which.

use crate::delegate;
use crate::node_config::NodeConfig;
use crate::protocol::config::{Ipam, DEFAULT_DATA_DIR};
use crate::protocol::result::{Dns, IpConfig, Route};
use crate::protocol::{CniEnv, CniError, Command, NetConf};
use std::path::PathBuf;
use strait_ipam::{range_set_from_cidr, AttachmentId, IpamConfig, RangeSet, Store};

/// What IPAM hands the data path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Addresses {
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

pub fn attachment(env: &CniEnv) -> AttachmentId {
    AttachmentId {
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
    }
}

/// The in-process store of this network.
pub fn store(conf: &NetConf, cfg: &IpamConfig) -> Result<Store, CniError> {
    let base = cfg
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    Ok(Store::open(&base.join(&conf.name))?)
}

/// The range sets to allocate from: `ipam.ranges` when given, else the
/// node's pod CIDRs from the agent's node file.
pub fn range_sets(
    conf: &NetConf,
    cfg: &IpamConfig,
    node: Option<&NodeConfig>,
) -> Result<Vec<RangeSet>, CniError> {
    match cfg.range_sets() {
        Ok(sets) if !sets.is_empty() => return Ok(sets),
        Ok(_) | Err(strait_ipam::IpamError::NoRanges) => {}
        Err(e) => return Err(e.into()),
    }
    let node = node.ok_or_else(|| {
        CniError::config(format!(
            "ipam.ranges: empty, and no node pod CIDR is published at {} (is strait agent running on this node?)",
            conf.node_config.display()
        ))
    })?;
    node.pod_cidrs
        .iter()
        .map(|c| range_set_from_cidr(*c).map_err(CniError::from))
        .collect()
}

pub fn allocate(
    env: &CniEnv,
    conf: &NetConf,
    node: Option<&NodeConfig>,
    stdin: &[u8],
) -> Result<Addresses, CniError> {
    match &conf.ipam {
        Ipam::InProcess(cfg) => {
            let sets = range_sets(conf, cfg, node)?;
            let allocations = store(conf, cfg)?.allocate(&attachment(env), &sets)?;
            Ok(Addresses {
                ips: allocations
                    .into_iter()
                    .map(|a| IpConfig {
                        address: a.address,
                        gateway: a.gateway,
                        interface: None,
                    })
                    .collect(),
                routes: cfg
                    .routes
                    .iter()
                    .map(|r| Route {
                        dst: r.dst,
                        gw: r.gw,
                    })
                    .collect(),
                dns: Dns::default(),
            })
        }
        Ipam::Delegate(kind) => {
            let r = delegate::add(env, kind, stdin)?;
            if r.ips.is_empty() {
                return Err(CniError::config(format!(
                    "ipam plugin {kind} returned no addresses"
                )));
            }
            Ok(Addresses {
                ips: r.ips,
                routes: r.routes,
                dns: r.dns,
            })
        }
    }
}

/// Gives the attachment's addresses back; nothing held is success.
pub fn release(env: &CniEnv, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    match &conf.ipam {
        Ipam::InProcess(cfg) => {
            store(conf, cfg)?.release(&attachment(env))?;
            Ok(())
        }
        Ipam::Delegate(kind) => delegate::run(env, kind, Command::Del, stdin).map(|_| ()),
    }
}
