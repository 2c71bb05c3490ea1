//! The store's on-disk layout, compatible with host-local's: one file per allocated
//! address named by its text and holding `"{container_id}\r\n{ifname}"`,
//! `last_reserved_ip.{set}` files, and a `lock` file that every operation flocks.
//!
//! Crash safety: files appear atomically with their content (written to a `.tmp-*` file,
//! then `link(2)`ed or `rename(2)`d into place), so a `kill -9` leaves at worst a stale
//! `.tmp-*` file, which the next operation under the lock removes. Nothing is fsynced:
//! a killed process's writes survive in the page cache, and after a reboot the pods'
//! network namespaces are gone anyway, so losing recent allocations then is harmless.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::AttachmentId;
use crate::IpamError;

const LOCK_FILE: &str = "lock";
const TEMP_PREFIX: &str = ".tmp-";
const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// host-local's separator between container id and interface name.
const LINE_BREAK: &str = "\r\n";
/// Allocation files are a few dozen bytes; don't read more from a foreign file.
const MAX_FILE_LEN: u64 = 4096;

/// Distinguishes temp files of one process (pid distinguishes processes).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Creates `dir` (mode 0700; missing parents 0755 like host-local) if it is missing.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), IpamError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| IpamError::io("creating directory", parent, e))?;
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(IpamError::io("creating directory", dir, e))
        }
        _ => Ok(()),
    }
}

/// An exclusive flock on `dir/lock`, released when dropped (the file is closed) or when
/// the process dies. Each call opens the file anew, so two `DirLock`s exclude each other
/// even within one process (flock locks belong to the open file description).
pub(crate) struct DirLock {
    _file: File,
}

pub(crate) fn lock(dir: &Path) -> Result<DirLock, IpamError> {
    ensure_dir(dir)?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| IpamError::io("opening lock file", &path, e))?;
    loop {
        // SAFETY: flock on a file descriptor we own and keep open.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(DirLock { _file: file });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(IpamError::io("locking", &path, err));
        }
    }
}

/// What a directory listing found; only meaningful while the lock is held.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Address -> owner, sorted by address.
    pub allocations: BTreeMap<IpAddr, AttachmentId>,
    /// Stale `.tmp-*` files: every writer holds the lock, so any seen under it is dead.
    pub temps: Vec<PathBuf>,
}

/// Lists the allocation files (names that are an address in canonical text) and temps.
pub(crate) fn scan(dir: &Path) -> Result<Scan, IpamError> {
    let mut found = Scan::default();
    let entries = fs::read_dir(dir).map_err(|e| IpamError::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| IpamError::io("listing", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(TEMP_PREFIX) {
            found.temps.push(entry.path());
            continue;
        }
        // Other names (lock, last_reserved_ip.*, foreign files) are not allocations.
        let Ok(ip) = name.parse::<IpAddr>() else {
            continue;
        };
        if ip.to_string() != name {
            continue;
        }
        match read_small(&entry.path()) {
            Ok(content) => {
                found.allocations.insert(ip, decode(&content));
            }
            // Removed under us: cannot happen under the lock, but is harmless.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(IpamError::io("reading allocation", entry.path(), e)),
        }
    }
    Ok(found)
}

fn read_small(path: &Path) -> io::Result<String> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(MAX_FILE_LEN)
        .read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// host-local's content format.
fn encode(id: &AttachmentId) -> String {
    format!("{}{LINE_BREAK}{}", id.container_id, id.ifname)
}

/// Parses host-local's format. A file without the separator (an old host-local's, or
/// damaged) gets an empty ifname, so it matches no real attachment and gc reclaims it.
fn decode(content: &str) -> AttachmentId {
    let content = content.trim();
    let (container_id, ifname) = content.split_once(LINE_BREAK).unwrap_or((content, ""));
    AttachmentId {
        container_id: container_id.trim().to_string(),
        ifname: ifname.trim().to_string(),
    }
}

/// Writes `content` to a fresh temp file in `dir` and returns its path.
fn write_temp(dir: &Path, content: &str) -> Result<PathBuf, IpamError> {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
    };
    let mut file = match open() {
        // A dead process with our pid left it; we hold the lock, so it is stale.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            remove_if_present(&path)?;
            open()
        }
        other => other,
    }
    .map_err(|e| IpamError::io("creating temp file", &path, e))?;
    if let Err(e) = file.write_all(content.as_bytes()) {
        let _ = fs::remove_file(&path);
        return Err(IpamError::io("writing temp file", &path, e));
    }
    Ok(path)
}

/// Atomically creates the allocation file for `ip`. Ok(false) if it already exists.
pub(crate) fn create_allocation(
    dir: &Path,
    ip: IpAddr,
    owner: &AttachmentId,
) -> Result<bool, IpamError> {
    let temp = write_temp(dir, &encode(owner))?;
    let target = allocation_path(dir, ip);
    // link(2) fails if the name exists, so the file appears whole or not at all.
    let linked = fs::hard_link(&temp, &target);
    // A leftover temp is stale and removed by the next operation; ignore failure here.
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(IpamError::io("creating allocation", target, e)),
    }
}

pub(crate) fn allocation_path(dir: &Path, ip: IpAddr) -> PathBuf {
    dir.join(ip.to_string())
}

/// Removes `ip`'s allocation file; Ok(false) if there was none.
pub(crate) fn remove_allocation(dir: &Path, ip: IpAddr) -> Result<bool, IpamError> {
    let path = allocation_path(dir, ip);
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(IpamError::io("removing allocation", path, e)),
    }
}

pub(crate) fn remove_if_present(path: &Path) -> Result<(), IpamError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(IpamError::io("removing", path, e)),
        _ => Ok(()),
    }
}

/// The last address handed out from range set `set`. Only a hint for round-robin, so a
/// missing or unreadable file just means "start at the beginning".
pub(crate) fn read_last_reserved(dir: &Path, set: usize) -> Option<IpAddr> {
    let path = dir.join(format!("{LAST_RESERVED_PREFIX}{set}"));
    read_small(&path).ok()?.trim().parse().ok()
}

/// Records `ip` as the last address handed out from `set`, atomically (temp + rename).
pub(crate) fn write_last_reserved(dir: &Path, set: usize, ip: IpAddr) -> Result<(), IpamError> {
    let temp = write_temp(dir, &ip.to_string())?;
    let path = dir.join(format!("{LAST_RESERVED_PREFIX}{set}"));
    fs::rename(&temp, &path).map_err(|e| {
        let _ = fs::remove_file(&temp);
        IpamError::io("writing", path, e)
    })
}

/// Writes and removes a temp file: proves the directory is writable.
pub(crate) fn probe_write(dir: &Path) -> Result<(), IpamError> {
    let temp = write_temp(dir, "probe")?;
    remove_if_present(&temp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: &str, i: &str) -> AttachmentId {
        AttachmentId {
            container_id: c.into(),
            ifname: i.into(),
        }
    }

    #[test]
    fn encode_is_host_local_format_and_round_trips() {
        let a = id("abc123", "eth0");
        assert_eq!(encode(&a), "abc123\r\neth0");
        assert_eq!(decode(&encode(&a)), a);
        // host-local trims surrounding whitespace when matching.
        assert_eq!(decode("abc123\r\neth0\n"), a);
    }

    #[test]
    fn content_without_separator_matches_no_real_attachment() {
        assert_eq!(decode("abc123"), id("abc123", ""));
        assert_eq!(decode(""), id("", ""));
    }
}
