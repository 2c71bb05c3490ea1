//! The CNI protocol: environment, configuration, results and errors, as the
//! spec (1.1.0, with 0.3.x-1.0.0 compatibility) shapes them. Nothing here
//! touches the kernel.

pub mod config;
pub mod env;
pub mod error;
pub mod result;
pub mod version;

pub use config::NetConf;
pub use env::{CniEnv, Command};
pub use error::{CniError, ErrorCode};
pub use result::CniResult;
pub use version::CniVersion;
