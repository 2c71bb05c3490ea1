//! The CNI error object and its well-known codes (CNI spec 1.1.0, "Error").
//!
//! Every failure of the plugin ends as one `CniError`; the code is chosen where
//! the failure is first understood, the message names the field and value at
//! fault, and `main` prints it as the spec's JSON object.

use serde::Serialize;

/// Well-known error codes from the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    IncompatibleVersion = 1,
    UnsupportedField = 2,
    UnknownContainer = 3,
    InvalidEnvironment = 4,
    IoFailure = 5,
    DecodingFailure = 6,
    InvalidNetworkConfig = 7,
    TryAgainLater = 11,
    /// STATUS: the plugin cannot serve ADD now.
    PluginNotAvailable = 50,
    /// STATUS: not available, and existing attachments may be limited too.
    PluginNotAvailableLimited = 51,
    /// Plugin-specific: the kernel refused a change.
    Kernel = 100,
    /// Plugin-specific: CHECK found drift between prevResult and the kernel.
    CheckFailed = 101,
    /// Plugin-specific: no free address (exhaustion).
    AddressExhausted = 102,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{msg}")]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: Option<String>,
}

impl CniError {
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        CniError {
            code: code as u32,
            msg: msg.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    /// Prefixes the message with what was being done, keeping the code.
    pub fn context(mut self, what: impl std::fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }

    pub fn config(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidNetworkConfig, msg)
    }

    pub fn env(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidEnvironment, msg)
    }

    pub fn io(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::IoFailure, msg)
    }

    pub fn kernel(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::Kernel, msg)
    }

    /// The JSON object the spec prints on stdout for an error.
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            details: Option<&'a str>,
        }
        let wire = Wire {
            cni_version,
            code: self.code,
            msg: &self.msg,
            details: self.details.as_deref(),
        };
        // Serialising plain strings and integers cannot fail.
        serde_json::to_string(&wire).unwrap_or_else(|_| format!("{{\"code\":{}}}", self.code))
    }
}

impl From<strait_ipam::IpamError> for CniError {
    fn from(e: strait_ipam::IpamError) -> Self {
        use strait_ipam::IpamError as E;
        let code = match &e {
            E::Exhausted { .. } => ErrorCode::AddressExhausted,
            E::Io { .. } => ErrorCode::IoFailure,
            _ => ErrorCode::InvalidNetworkConfig,
        };
        CniError::new(code, e.to_string())
    }
}
