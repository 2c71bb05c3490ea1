//! The few sysctls the plugin needs, written only when they differ.

use std::io;

/// Sets a /proc/sys value in the calling process's network namespace.
pub fn ensure(path: &str, value: &str) -> io::Result<()> {
    let full = format!("/proc/sys/{path}");
    if std::fs::read_to_string(&full)?.trim() == value {
        return Ok(());
    }
    std::fs::write(&full, value)
}
