//! CNI spec versions this plugin speaks, and what each allows.

use super::error::{CniError, ErrorCode};

/// Versions answered by VERSION, oldest first.
pub const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CniVersion {
    V030,
    V031,
    V040,
    V100,
    V110,
}

impl CniVersion {
    pub fn parse(s: &str) -> Result<Self, CniError> {
        Ok(match s {
            "0.3.0" => Self::V030,
            "0.3.1" => Self::V031,
            "0.4.0" => Self::V040,
            "1.0.0" => Self::V100,
            "1.1.0" => Self::V110,
            other => {
                return Err(CniError::new(
                    ErrorCode::IncompatibleVersion,
                    format!(
                        "cniVersion: \"{other}\" is not supported (supported: {})",
                        SUPPORTED.join(", ")
                    ),
                ))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V030 => "0.3.0",
            Self::V031 => "0.3.1",
            Self::V040 => "0.4.0",
            Self::V100 => "1.0.0",
            Self::V110 => "1.1.0",
        }
    }

    /// 0.x results carry `"version": "4"|"6"` on each IP; 1.0 dropped it.
    pub fn ips_carry_version(self) -> bool {
        self < Self::V100
    }

    pub fn has_check(self) -> bool {
        self >= Self::V040
    }

    /// GC and STATUS arrived in 1.1.0; interface `mtu` in results too.
    pub fn is_1_1(self) -> bool {
        self >= Self::V110
    }
}
