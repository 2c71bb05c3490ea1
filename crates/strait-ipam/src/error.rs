//! The crate's one error type. Each variant names what is at fault (the config field
//! and its value, the range set, the file) so a CNI error message is actionable alone.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while validating a config or touching the store.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// A config value is wrong. `field` is its JSON path, e.g. `ipam.ranges[0][1].rangeStart`,
    /// and `message` names the offending value.
    #[error("{field}: {message}")]
    Config { field: String, message: String },

    /// The config has neither `ipam.ranges` nor the legacy `ipam.subnet`.
    #[error("ipam: no IP ranges configured (set ipam.ranges or ipam.subnet)")]
    NoRanges,

    /// A range set handed to the store directly (not through the config) is invalid.
    #[error("range set {set}: {message}")]
    InvalidRangeSet { set: usize, message: String },

    /// An attachment id that cannot be stored in host-local's file format.
    #[error("attachment {field} {value:?}: {message}")]
    InvalidAttachment {
        field: &'static str,
        value: String,
        message: &'static str,
    },

    /// Every allocatable address of range set `set` is taken.
    #[error("no free address in {ranges}: {used} of {size} in use")]
    Exhausted {
        set: usize,
        /// The set's ranges as `subnet (first-last)`, comma separated.
        ranges: String,
        used: u128,
        size: u128,
    },

    /// A filesystem operation on the store failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl IpamError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        IpamError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
