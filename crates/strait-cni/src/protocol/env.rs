//! The CNI_* environment variables, validated per command.

use super::error::CniError;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Gc,
    Status,
    Version,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Gc => "GC",
            Self::Status => "STATUS",
            Self::Version => "VERSION",
        }
    }
}

/// What the runtime told us through the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct CniEnv {
    pub command: Command,
    pub container_id: String,
    /// Empty for DEL when the namespace is already gone.
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub args: String,
    /// CNI_PATH split on ':'.
    pub path: Vec<PathBuf>,
}

impl CniEnv {
    /// Reads the variables through `get` (so tests need not touch the process
    /// environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let command = match get("CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("GC") => Command::Gc,
            Some("STATUS") => Command::Status,
            Some("VERSION") => Command::Version,
            Some(other) => {
                return Err(CniError::env(format!(
                    "CNI_COMMAND: \"{other}\" is not one of ADD, DEL, CHECK, GC, STATUS, VERSION"
                )))
            }
            None => return Err(CniError::env("CNI_COMMAND: not set")),
        };
        let nonempty = |k: &str| get(k).filter(|v| !v.is_empty());
        let per_attachment = matches!(command, Command::Add | Command::Del | Command::Check);

        let container_id = nonempty("CNI_CONTAINERID").unwrap_or_default();
        let netns = nonempty("CNI_NETNS").map(PathBuf::from);
        let ifname = nonempty("CNI_IFNAME").unwrap_or_default();
        if per_attachment {
            if container_id.is_empty() {
                return Err(CniError::env(format!(
                    "CNI_CONTAINERID: required for {}",
                    command.as_str()
                )));
            }
            validate_container_id(&container_id)?;
            if ifname.is_empty() {
                return Err(CniError::env(format!(
                    "CNI_IFNAME: required for {}",
                    command.as_str()
                )));
            }
            validate_ifname(&ifname)?;
            // DEL may come after the namespace is gone; ADD and CHECK need it.
            if netns.is_none() && command != Command::Del {
                return Err(CniError::env(format!(
                    "CNI_NETNS: required for {}",
                    command.as_str()
                )));
            }
        }
        let path = get("CNI_PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        Ok(CniEnv {
            command,
            container_id,
            netns,
            ifname,
            args: get("CNI_ARGS").unwrap_or_default(),
            path,
        })
    }
}

/// The spec: alphanumeric first, then alphanumerics, '_', '.', '-'.
fn validate_container_id(id: &str) -> Result<(), CniError> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(CniError::env(format!(
            "CNI_CONTAINERID: \"{id}\" must start with a letter or digit and hold only letters, digits, '_', '.', '-'"
        )));
    }
    Ok(())
}

/// The kernel's rules for interface names (dev_valid_name).
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let bad = name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if bad {
        return Err(CniError::env(format!(
            "CNI_IFNAME: \"{name}\" is not a valid interface name (at most 15 characters, no '/', ':' or spaces)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CniEnv::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn add_needs_container_netns_and_ifname() {
        let e = env(&[("CNI_COMMAND", "ADD")]).unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.msg.contains("CNI_CONTAINERID"), "{}", e.msg);
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap_err();
        assert!(e.msg.contains("CNI_NETNS"), "{}", e.msg);
        let ok = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_PATH", "/a:/b::"),
        ])
        .unwrap();
        assert_eq!(ok.path, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
    }

    #[test]
    fn del_without_netns_is_fine() {
        let ok = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap();
        assert_eq!(ok.netns, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = env(&[("CNI_COMMAND", "FROB")]).unwrap_err();
        assert!(e.msg.contains("CNI_COMMAND: \"FROB\""), "{}", e.msg);
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "this-name-is-too-long"),
        ])
        .unwrap_err();
        assert!(
            e.msg.contains("CNI_IFNAME: \"this-name-is-too-long\""),
            "{}",
            e.msg
        );
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "-x"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap_err();
        assert!(e.msg.contains("CNI_CONTAINERID"), "{}", e.msg);
    }

    #[test]
    fn gc_status_version_need_no_attachment() {
        for c in ["GC", "STATUS", "VERSION"] {
            assert!(env(&[("CNI_COMMAND", c)]).is_ok(), "{c}");
        }
    }
}
