//! The lab's state (`<root>/<lab>/state.json`: what `up` built) and the
//! targets commands run in (`node/NAME`, `host/NAME`, `router`, `switch/NET`,
//! `pod/NAMESPACE/NAME`).

use super::NETNS_DIR;
use crate::error::LabError;
use crate::topology::{NsKind, Topology};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;

/// Where labs keep their state: `<root>/<lab>/state.json`. Tests point
/// `root` at a directory of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabPaths {
    pub root: PathBuf,
}

impl Default for LabPaths {
    fn default() -> Self {
        LabPaths {
            root: PathBuf::from("/run/strait/lab"),
        }
    }
}

impl LabPaths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LabPaths { root: root.into() }
    }

    pub fn lab_dir(&self, lab: &str) -> PathBuf {
        self.root.join(lab)
    }

    pub fn state_file(&self, lab: &str) -> PathBuf {
        self.lab_dir(lab).join("state.json")
    }
}

/// A lab member that commands can run in: `node/NAME`, `host/NAME`,
/// `router`, `switch/NET`, `pod/NAMESPACE/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Node(String),
    Host(String),
    Router,
    Switch(String),
    /// A pod; found among the state's namespaces of kind `pod` whose member
    /// name is `NAMESPACE/NAME` (the pod lifecycle records them).
    Pod {
        namespace: String,
        name: String,
    },
}

impl Target {
    /// The namespace kind and member name this target is recorded under.
    pub fn key(&self) -> (NsKind, String) {
        match self {
            Target::Node(n) => (NsKind::Node, n.clone()),
            Target::Host(n) => (NsKind::Host, n.clone()),
            Target::Router => (NsKind::Router, "router".into()),
            Target::Switch(n) => (NsKind::Switch, n.clone()),
            Target::Pod { namespace, name } => (NsKind::Pod, format!("{namespace}/{name}")),
        }
    }
}

impl FromStr for Target {
    type Err = LabError;

    fn from_str(s: &str) -> Result<Self, LabError> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = |why: &str| LabError::target(s, why);
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad(
                "empty part; use node/NAME, host/NAME, router, switch/NET or pod/NAMESPACE/NAME",
            ));
        }
        match parts.as_slice() {
            ["router"] => Ok(Target::Router),
            ["node", n] => Ok(Target::Node((*n).into())),
            ["host", n] => Ok(Target::Host((*n).into())),
            ["switch", n] => Ok(Target::Switch((*n).into())),
            ["pod", ns, n] => Ok(Target::Pod {
                namespace: (*ns).into(),
                name: (*n).into(),
            }),
            _ => Err(bad(
                "not a target; use node/NAME, host/NAME, router, switch/NET or pod/NAMESPACE/NAME",
            )),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(n) => write!(f, "node/{n}"),
            Target::Host(n) => write!(f, "host/{n}"),
            Target::Router => write!(f, "router"),
            Target::Switch(n) => write!(f, "switch/{n}"),
            Target::Pod { namespace, name } => write!(f, "pod/{namespace}/{name}"),
        }
    }
}

/// What `up` built, saved as `<root>/<lab>/state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FabricState {
    pub lab: String,
    pub topology: Topology,
    /// Every namespace of the lab, switches first.
    pub namespaces: Vec<NsState>,
}

/// One lab namespace and its interfaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NsState {
    /// The namespace name (`ip netns`).
    pub netns: String,
    pub kind: NsKind,
    /// The member's name (`router` for the router, the network for a switch).
    pub name: String,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
}

/// A member's interface on one L2 network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// `eth0`, `eth1`, ...
    pub name: String,
    /// The L2 network (`underlay` or an external network's name).
    pub network: String,
    /// The address with the network's prefix length.
    pub address: Ipv4Net,
    /// The port of `br0` in the network's switch namespace.
    pub switch_port: String,
}

impl NsState {
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.netns)
    }
}

impl FabricState {
    /// The namespace `target` runs in.
    pub fn member(&self, target: &Target) -> Result<&NsState, LabError> {
        let (kind, name) = target.key();
        self.namespaces
            .iter()
            .find(|n| n.kind == kind && n.name == name)
            .ok_or_else(|| {
                let known: Vec<String> = self
                    .namespaces
                    .iter()
                    .filter(|n| n.kind == kind)
                    .map(|n| n.name.clone())
                    .collect();
                LabError::target(
                    target.to_string(),
                    format!("not in lab {} (it has: {})", self.lab, known.join(", ")),
                )
            })
    }

    /// `/run/netns/<netns>` of `target`, for [`crate::probe::probe`] and
    /// [`crate::netns::run_in_netns`].
    pub fn netns_path(&self, target: &Target) -> Result<PathBuf, LabError> {
        Ok(self.member(target)?.path())
    }

    /// A command that will run `program` inside `target` (`ip netns exec`).
    pub fn command(&self, target: &Target, program: &str) -> Result<Command, LabError> {
        let ns = self.member(target)?;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns.netns, program]);
        Ok(c)
    }

    /// Runs `argv` inside `target`; its output whatever the exit status.
    pub fn exec(&self, target: &Target, argv: &[&str]) -> Result<Output, LabError> {
        let (program, rest) = argv
            .split_first()
            .ok_or_else(|| LabError::target(target.to_string(), "empty command"))?;
        let mut cmd = self.command(target, program)?;
        cmd.args(rest);
        cmd.output().map_err(|e| LabError::Command {
            what: format!("running a command in {target}"),
            command: format!("{cmd:?}"),
            detail: e.to_string(),
        })
    }

    /// Writes the state file atomically (temporary file, then rename).
    pub fn save(&self, paths: &LabPaths) -> Result<(), LabError> {
        let dir = paths.lab_dir(&self.lab);
        std::fs::create_dir_all(&dir).map_err(LabError::io("creating lab directory", &dir))?;
        let file = paths.state_file(&self.lab);
        let tmp = dir.join("state.json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("state serialises");
        std::fs::write(&tmp, text).map_err(LabError::io("writing lab state", &tmp))?;
        std::fs::rename(&tmp, &file).map_err(LabError::io("writing lab state", &file))
    }

    pub fn load(paths: &LabPaths, lab: &str) -> Result<FabricState, LabError> {
        let file = paths.state_file(lab);
        let text = std::fs::read(&file).map_err(|e| LabError::NotUp {
            lab: lab.into(),
            detail: format!("reading {}: {e}", file.display()),
        })?;
        serde_json::from_slice(&text).map_err(|e| LabError::NotUp {
            lab: lab.into(),
            detail: format!("{} is not a lab state file: {e}", file.display()),
        })
    }
}
