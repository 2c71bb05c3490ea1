//! nftables through the `nft` binary: one script = one atomic transaction
//! (if any line fails, nothing of the script is applied).

use std::io::Write;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("cannot run nft: {0} (is the nftables package installed?)")]
    Spawn(std::io::Error),
    #[error("nft rejected the transaction, nothing was changed: {0}")]
    Rejected(String),
}

/// Applies a script with `nft -f -` in the calling process's namespace.
pub fn apply(script: &str) -> Result<(), NftError> {
    run(&["-f", "-"], Some(script)).map(|_| ())
}

/// Checks a script with `nft -c -f -`: parsed and validated by the kernel,
/// then aborted, so nothing is ever changed.
pub fn check(script: &str) -> Result<(), NftError> {
    run(&["-c", "-f", "-"], Some(script)).map(|_| ())
}

/// The table as `nft list table` prints it, or None if it does not exist.
pub fn list_table(family: &str, name: &str) -> Result<Option<String>, NftError> {
    match run(&["list", "table", family, name], None) {
        Ok(out) => Ok(Some(out)),
        Err(NftError::Rejected(msg)) if msg.contains("No such file or directory") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes a table; a missing table is not an error.
pub fn delete_table(family: &str, name: &str) -> Result<(), NftError> {
    // `destroy` (nft 1.0.8+) is not in Debian 12's nft 1.0.6: add-then-delete
    // in one transaction removes the table whether or not it existed.
    apply(&format!(
        "add table {family} {name}\ndelete table {family} {name}\n"
    ))
}

fn run(args: &[&str], stdin: Option<&str>) -> Result<String, NftError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NftError::Spawn)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(NftError::Spawn)?;
    }
    let out = child.wait_with_output().map_err(NftError::Spawn)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NftError::Rejected(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}
