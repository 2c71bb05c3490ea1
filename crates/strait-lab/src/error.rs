//! The error type of the lab (topology, fabric, state). Every message names
//! what failed: the topology field and its value, the command that was run
//! and what it printed, or the file that could not be read or written.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The topology is not YAML (or JSON) at all.
    #[error("topology is not valid YAML: {0}")]
    TopologySyntax(String),

    /// A topology field is missing, unknown or has a bad value. `field` is a
    /// path such as `nodes[1].ip` (empty for the document itself).
    #[error("topology: {}{message}", field_prefix(.field))]
    Topology { field: String, message: String },

    /// A command that builds or inspects the fabric failed.
    #[error("{what}: `{command}` failed: {detail}")]
    Command {
        what: String,
        command: String,
        detail: String,
    },

    /// A cluster-level step (agents, pods, manifests) failed.
    #[error("{0}")]
    Cluster(String),

    /// A file or directory of the lab could not be read or written.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `up` found namespaces or a state directory of this lab already there.
    #[error("lab {lab} is already up ({found}); run `down` first")]
    AlreadyUp { lab: String, found: String },

    /// The lab has no (readable) state file.
    #[error("lab {lab} is not up: {detail}")]
    NotUp { lab: String, detail: String },

    /// An `exec` target that does not parse or does not exist in the lab.
    #[error("target {target:?}: {reason}")]
    Target { target: String, reason: String },
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

impl LabError {
    pub(crate) fn topology(field: impl Into<String>, message: impl Into<String>) -> Self {
        LabError::Topology {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(
        what: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let (what, path) = (what.into(), path.into());
        move |source| LabError::Io { what, path, source }
    }

    pub(crate) fn target(target: impl Into<String>, reason: impl Into<String>) -> Self {
        LabError::Target {
            target: target.into(),
            reason: reason.into(),
        }
    }
}
