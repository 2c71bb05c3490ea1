//! The one error type of strait-model. Every message names where the problem
//! is (config field, manifest file and document, or path) and the value at
//! fault, so the agent and the lab can print it as it is.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The agent config is not YAML/JSON at all.
    #[error("agent config is not valid YAML or JSON: {0}")]
    ConfigSyntax(String),

    /// A field of the agent config is missing, unknown or has a bad value.
    /// `field` is a path such as `nodeRoutes[1].via` (empty for the root).
    #[error("{}{message}", field_prefix(.field))]
    Config { field: String, message: String },

    /// A manifest document could not be turned into an object. `document` is
    /// 1-based, counted over the `---`-separated documents of `origin`.
    #[error("{origin}, document {document}: {message}")]
    Manifest {
        origin: String,
        document: usize,
        message: String,
    },

    /// A manifest file or directory could not be read.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

impl ModelError {
    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        ModelError::Config {
            field: field.into(),
            message: message.into(),
        }
    }
}
