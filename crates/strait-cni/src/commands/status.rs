//! STATUS: can this plugin serve ADD right now?

use crate::addresses;
use crate::delegate;
use crate::node_config::NodeConfig;
use crate::protocol::config::Ipam;
use crate::protocol::{CniEnv, CniError, Command, ErrorCode, NetConf};

pub fn run(env: &CniEnv, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    let unavailable = |msg: String| CniError::new(ErrorCode::PluginNotAvailable, msg);
    match &conf.ipam {
        Ipam::InProcess(cfg) => {
            let node = NodeConfig::load(&conf.node_config).map_err(|e| unavailable(e.msg))?;
            let sets =
                addresses::range_sets(conf, cfg, node.as_ref()).map_err(|e| unavailable(e.msg))?;
            if sets.is_empty() {
                return Err(unavailable("no address range to allocate from".into()));
            }
            addresses::store(conf, cfg)
                .and_then(|s| Ok(s.check_writable()?))
                .map_err(|e| unavailable(format!("IPAM store: {}", e.msg)))?;
            Ok(())
        }
        Ipam::Delegate(kind) => delegate::run(env, kind, Command::Status, stdin).map(|_| ()),
    }
}
