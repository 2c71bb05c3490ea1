//! strait-cni: the CNI 1.1 plugin of strait.
//!
//! `run` is the whole plugin as a function of its environment and stdin, so
//! the protocol can be tested (and fuzzed) without a process boundary; only
//! `main` touches the real environment and stdout.

pub mod addresses;
pub mod commands;
pub mod datapath;
pub mod delegate;
pub mod node_config;
pub mod protocol;

use protocol::config::sniff_version;
use protocol::version::SUPPORTED;
use protocol::{CniEnv, CniError, Command, ErrorCode, NetConf};
use serde_json::json;

/// What the plugin prints and how it exits.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub stdout: String,
    pub exit_code: i32,
}

/// Runs one plugin invocation.
pub fn run(lookup: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    let version_hint = sniff_version(stdin)
        .filter(|v| SUPPORTED.contains(&v.as_str()))
        .unwrap_or_else(|| "1.1.0".to_owned());
    match dispatch(lookup, stdin) {
        Ok(stdout) => Outcome {
            stdout,
            exit_code: 0,
        },
        Err(e) => Outcome {
            stdout: e.to_json(&version_hint),
            exit_code: 1,
        },
    }
}

fn dispatch(lookup: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Result<String, CniError> {
    let env = CniEnv::from_lookup(lookup)?;
    if env.command == Command::Version {
        return Ok(version(stdin));
    }
    let conf = NetConf::parse(stdin)?;
    if matches!(env.command, Command::Gc | Command::Status) && !conf.cni_version.is_1_1() {
        return Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!(
                "cniVersion: {} needs 1.1.0, the config says {}",
                env.command.as_str(),
                conf.cni_version.as_str()
            ),
        ));
    }
    match env.command {
        Command::Add => commands::add::run(&env, &conf, stdin).map(|v| v.to_string()),
        Command::Del => commands::del::run(&env, &conf, stdin).map(|()| String::new()),
        Command::Check => commands::check::run(&env, &conf, stdin).map(|()| String::new()),
        Command::Gc => commands::gc::run(&env, &conf, stdin).map(|()| String::new()),
        Command::Status => commands::status::run(&env, &conf, stdin).map(|()| String::new()),
        Command::Version => Ok(version(stdin)),
    }
}

/// VERSION: the versions we speak, echoing the version the caller used.
fn version(stdin: &[u8]) -> String {
    let asked = sniff_version(stdin).unwrap_or_else(|| "1.1.0".to_owned());
    json!({"cniVersion": asked, "supportedVersions": SUPPORTED}).to_string()
}
