//! Running another CNI plugin from CNI_PATH (an IPAM plugin named by
//! `ipam.type`), exactly as a runtime would: same environment, same config on
//! stdin, its result or error object read from stdout.

use crate::protocol::{CniEnv, CniError, CniResult, Command, ErrorCode};
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

pub fn find(env: &CniEnv, kind: &str) -> Result<PathBuf, CniError> {
    env.path
        .iter()
        .map(|dir| dir.join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::config(format!(
                "ipam.type: no plugin \"{kind}\" in CNI_PATH ({})",
                env.path
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ))
        })
}

/// Runs `kind` for `command` with `stdin`; returns its stdout on success.
pub fn run(env: &CniEnv, kind: &str, command: Command, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    let exe = find(env, kind)?;
    let mut child = std::process::Command::new(&exe)
        .env("CNI_COMMAND", command.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CniError::io(format!("ipam.type: cannot run {}: {e}", exe.display())))?;
    if let Some(mut input) = child.stdin.take() {
        // A plugin that exits without reading stdin closes the pipe; its exit
        // status below says what happened.
        let _ = input.write_all(stdin);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CniError::io(format!("ipam.type: waiting for {}: {e}", exe.display())))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    // The delegate's own error object, passed on with its code.
    let parsed: Option<(u32, String)> = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| {
            Some((
                v.get("code")?.as_u64()? as u32,
                v.get("msg")?.as_str()?.to_owned(),
            ))
        });
    Err(match parsed {
        Some((code, msg)) => CniError {
            code,
            msg: format!("ipam plugin {kind}: {msg}"),
            details: None,
        },
        None => CniError::new(
            ErrorCode::IoFailure,
            format!(
                "ipam plugin {kind} failed ({}) without an error object: {}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim()
            ),
        ),
    })
}

/// ADD through the delegate, parsing its result.
pub fn add(env: &CniEnv, kind: &str, stdin: &[u8]) -> Result<CniResult, CniError> {
    let out = run(env, kind, Command::Add, stdin)?;
    let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| {
        CniError::new(
            ErrorCode::DecodingFailure,
            format!("ipam plugin {kind} printed a result that is not JSON: {e}"),
        )
    })?;
    CniResult::from_value(&v).map_err(|e| {
        CniError::new(
            ErrorCode::DecodingFailure,
            format!("ipam plugin {kind} result: {e}"),
        )
    })
}
