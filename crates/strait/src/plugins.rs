//! Finding the plugin binaries the CLI drives.

use std::path::PathBuf;

/// Where Debian's containernetworking-plugins live.
pub const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// The directory holding `strait-cni`: the one given, or next to `strait`.
pub fn strait_cni_dir(given: Option<PathBuf>) -> Result<PathBuf, String> {
    let dir = match given {
        Some(d) => d,
        None => std::env::current_exe()
            .map_err(|e| format!("cannot locate the strait binary: {e}"))?
            .parent()
            .map(PathBuf::from)
            .ok_or("the strait binary has no directory")?,
    };
    if !dir.join("strait-cni").is_file() {
        return Err(format!(
            "no strait-cni binary in {} (build the workspace, or pass --cni-bin-dir)",
            dir.display()
        ));
    }
    Ok(dir)
}
