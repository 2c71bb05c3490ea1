//! The store's on-disk layout, compatible with host-local's: one file per allocated
//! address named by its text and holding `"{container_id}\r\n{ifname}"`,
//! `last_reserved_ip.{set}` files, and a `lock` file that every operation flocks.
//!
//! On top of that, an index: every allocation file has a second hard link named
//! `@{key}_{address}`, `key` being a hash of its attachment ([`key`]). Listing the
//! directory then tells which addresses are taken (the address names) and which are
//! probably the attachment's (the index names with its key), so an operation on one
//! attachment reads only that attachment's files, not every file in the store.
//! host-local ignores the index names (they are not addresses) and, releasing by content,
//! removes them along with the address files.
//!
//! Crash safety: files appear atomically with their content (written to a `.tmp-*` file,
//! then `link(2)`ed into place), so a `kill -9` leaves at worst a stale `.tmp-*` file,
//! which the next operation under the lock removes, or a stale index link (see
//! [`create_allocation`]), which lookups recognise and remove. Nothing is fsynced: a
//! killed process's writes survive in the page cache, and after a reboot the pods'
//! network namespaces are gone anyway, so losing recent allocations then is harmless.

use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, DirEntryExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::AttachmentId;
use crate::IpamError;

const LOCK_FILE: &str = "lock";
const TEMP_PREFIX: &str = ".tmp-";
const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// Index link names are `@{key:016x}_{address}`: never an address, a temp or a hint.
const INDEX_PREFIX: &str = "@";
const INDEX_SEPARATOR: char = '_';
const KEY_DIGITS: usize = 16;
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

/// The index key of an attachment: FNV-1a 64 of `"{container_id}/{ifname}"`. Written out
/// here, not taken from std's hashers, so it stays the same across Rust versions. Two
/// attachments may share a key, so a key match is confirmed from the file's content.
pub(crate) fn key(id: &AttachmentId) -> u64 {
    let bytes = id
        .container_id
        .bytes()
        .chain([b'/'])
        .chain(id.ifname.bytes());
    bytes.fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn index_name(key: u64, ip: IpAddr) -> String {
    format!(
        "{INDEX_PREFIX}{key:0width$x}{INDEX_SEPARATOR}{ip}",
        width = KEY_DIGITS
    )
}

/// `(key, address)` of an index link's name; None for any other name.
fn parse_index_name(name: &str) -> Option<(u64, IpAddr)> {
    let rest = name.strip_prefix(INDEX_PREFIX)?;
    let (hex, ip) = (rest.get(..KEY_DIGITS)?, rest.get(KEY_DIGITS..)?);
    let ip = ip.strip_prefix(INDEX_SEPARATOR)?;
    if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Some((u64::from_str_radix(hex, 16).ok()?, parse_canonical(ip)?))
}

/// The address whose canonical text `name` is (host-local writes nothing else). std
/// parses IPv4 only as four decimal octets without leading zeros, which is exactly the
/// canonical text, so only IPv6 needs the comparison (and its formatting cost).
fn parse_canonical(name: &str) -> Option<IpAddr> {
    let ip: IpAddr = name.parse().ok()?;
    match ip {
        IpAddr::V4(_) => Some(ip),
        IpAddr::V6(_) => (ip.to_string() == name).then_some(ip),
    }
}

/// An allocation file as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AllocationEntry {
    pub ip: IpAddr,
    /// The inode number from the directory entry (no stat).
    pub ino: u64,
    /// Some index link in the listing has this file's address and inode.
    pub indexed: bool,
}

/// An index link as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub key: u64,
    pub ip: IpAddr,
}

/// A file a lookup of one attachment must read; see [`Listing::to_read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToRead {
    /// An index link with the attachment's key: check it is live, then confirm the owner.
    Indexed(IpAddr),
    /// An allocation file without any index link (written by host-local or an older
    /// strait): only its content tells whose it is.
    Unindexed(IpAddr),
}

/// What one directory listing found; only meaningful while the lock is held.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Allocation files (names that are an address in canonical text), sorted by address.
    allocations: Vec<AllocationEntry>,
    pub index: Vec<IndexEntry>,
    /// Names of stale `.tmp-*` files: every writer holds the lock, so any seen under it
    /// is dead.
    pub temps: Vec<String>,
}

impl Listing {
    /// Classifies directory entries, given as `(name, inode)`. Other names (lock,
    /// last_reserved_ip.*, foreign files) are ignored.
    pub(crate) fn from_entries<S: AsRef<str>>(entries: impl IntoIterator<Item = (S, u64)>) -> Self {
        let mut found = Listing::default();
        let mut links = Vec::new();
        for (name, ino) in entries {
            let name = name.as_ref();
            if name.starts_with(TEMP_PREFIX) {
                found.temps.push(name.to_string());
            } else if let Some((key, ip)) = parse_index_name(name) {
                found.index.push(IndexEntry { key, ip });
                links.push((ino, sort_key(ip)));
            } else if let Some(ip) = parse_canonical(name) {
                found.allocations.push(AllocationEntry {
                    ip,
                    ino,
                    indexed: false,
                });
            }
        }
        // Match files to links by (inode, address): sort both, walk them together.
        links.sort_unstable();
        let files = &mut found.allocations;
        files.sort_unstable_by_key(|f| (f.ino, sort_key(f.ip)));
        let mut links = links.into_iter().peekable();
        for file in files.iter_mut() {
            let this = (file.ino, sort_key(file.ip));
            while links.next_if(|link| *link < this).is_some() {}
            file.indexed = links.peek() == Some(&this);
        }
        files.sort_unstable_by_key(|f| sort_key(f.ip));
        found
    }

    /// The allocation files, sorted by address.
    pub(crate) fn allocations(&self) -> &[AllocationEntry] {
        &self.allocations
    }

    /// Whether there is an allocation file for `ip`.
    pub(crate) fn is_taken(&self, ip: IpAddr) -> bool {
        let key = sort_key(ip);
        self.allocations
            .binary_search_by_key(&key, |f| sort_key(f.ip))
            .is_ok()
    }

    /// The files a lookup of the attachment with `key` reads: its index links and the
    /// allocation files that have none (none at all in a store only strait wrote). Only
    /// names and listed inode numbers decide, so the count does not grow with the store.
    pub(crate) fn to_read(&self, key: u64) -> Vec<ToRead> {
        let indexed = self
            .index
            .iter()
            .filter(|link| link.key == key)
            .map(|link| ToRead::Indexed(link.ip));
        let unindexed = self
            .allocations
            .iter()
            .filter(|file| !file.indexed)
            .map(|file| ToRead::Unindexed(file.ip));
        indexed.chain(unindexed).collect()
    }
}

/// `IpAddr`'s order (IPv4 first, then numeric), as integers that compare cheaply.
fn sort_key(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (true, u128::from(v6)),
    }
}

/// Lists `dir` once: allocation files, index links and temps, by name alone.
pub(crate) fn list(dir: &Path) -> Result<Listing, IpamError> {
    let entries = fs::read_dir(dir).map_err(|e| IpamError::io("listing", dir, e))?;
    let mut error = None;
    let named = entries.map_while(|entry| match entry {
        Ok(entry) => Some((entry.file_name(), entry.ino())),
        Err(e) => {
            error = Some(e);
            None
        }
    });
    // Names that are not UTF-8 are nobody's: no address or index link is.
    let listing = Listing::from_entries(named.map(|(name, ino)| {
        let name = name.into_string().unwrap_or_default();
        (name, ino)
    }));
    match error {
        Some(e) => Err(IpamError::io("listing", dir, e)),
        None => Ok(listing),
    }
}

/// Device and inode: which file a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// The owner of `ip`'s allocation file and which file it is; None if there is none.
pub(crate) fn read_allocation(
    dir: &Path,
    ip: IpAddr,
) -> Result<Option<(AttachmentId, FileId)>, IpamError> {
    let path = allocation_path(dir, ip);
    let read = || -> io::Result<(AttachmentId, FileId)> {
        let file = File::open(&path)?;
        let id = FileId::of(&file.metadata()?);
        Ok((decode(&read_to_string(file)?), id))
    };
    match read() {
        Ok(found) => Ok(Some(found)),
        // Removed under us: cannot happen under the lock, but is harmless.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IpamError::io("reading allocation", path, e)),
    }
}

/// Which file `key`'s index link for `ip` is, if it exists (a stat, not a read).
pub(crate) fn index_file(dir: &Path, key: u64, ip: IpAddr) -> Result<Option<FileId>, IpamError> {
    let path = dir.join(index_name(key, ip));
    match fs::symlink_metadata(&path) {
        Ok(meta) => Ok(Some(FileId::of(&meta))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IpamError::io("inspecting index link", path, e)),
    }
}

/// Follows `key`'s index link for `ip`: the allocation's owner if the link is live (the
/// same file as the allocation file), None if it is stale (no allocation file, or
/// another file). Reads the content only of a live link: the key may be another
/// attachment's too.
pub(crate) fn read_indexed(
    dir: &Path,
    key: u64,
    ip: IpAddr,
) -> Result<Option<AttachmentId>, IpamError> {
    let Some(link) = index_file(dir, key, ip)? else {
        return Ok(None);
    };
    let path = allocation_path(dir, ip);
    let read = || -> io::Result<Option<AttachmentId>> {
        let file = File::open(&path)?;
        if FileId::of(&file.metadata()?) != link {
            return Ok(None);
        }
        Ok(Some(decode(&read_to_string(file)?)))
    };
    match read() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        other => other.map_err(|e| IpamError::io("reading allocation", path, e)),
    }
}

fn read_to_string(file: File) -> io::Result<String> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn read_small(path: &Path) -> io::Result<String> {
    read_to_string(File::open(path)?)
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

/// Atomically creates the allocation file for `ip` with its index link. Ok(false) if the
/// address is taken.
///
/// The index link is made first, from the temp file, and the allocation file last, so
/// every allocation file has its index link from the moment it exists. A crash in
/// between leaves an index link without its allocation file; a crash while releasing
/// (see [`remove_allocation`]) leaves the same. Such a stale link may later sit beside
/// an allocation file of the same address that is another file; lookups compare the
/// inodes and ignore or remove it.
pub(crate) fn create_allocation(
    dir: &Path,
    ip: IpAddr,
    owner: &AttachmentId,
) -> Result<bool, IpamError> {
    let temp = write_temp(dir, &encode(owner))?;
    let claimed = claim(dir, &temp, ip, key(owner));
    // A leftover temp is stale and removed by the next operation; ignore failure here.
    let _ = fs::remove_file(&temp);
    claimed
}

fn claim(dir: &Path, temp: &Path, ip: IpAddr, key: u64) -> Result<bool, IpamError> {
    let target = allocation_path(dir, ip);
    let index = dir.join(index_name(key, ip));
    match fs::hard_link(temp, &index) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Live if the address is taken (then so is our claim), else stale.
            if exists(&target)? {
                return Ok(false);
            }
            remove_if_present(&index)?;
            fs::hard_link(temp, &index).map_err(|e| IpamError::io("linking", &index, e))?;
        }
        Err(e) => return Err(IpamError::io("linking", index, e)),
    }
    // link(2) fails if the name exists, so the file appears whole or not at all.
    match fs::hard_link(temp, &target) {
        Ok(()) => Ok(true),
        Err(e) => {
            // The link just made is the temp file's: the address is someone else's.
            let _ = fs::remove_file(&index);
            if e.kind() == io::ErrorKind::AlreadyExists {
                Ok(false)
            } else {
                Err(IpamError::io("creating allocation", target, e))
            }
        }
    }
}

fn exists(path: &Path) -> Result<bool, IpamError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(IpamError::io("inspecting", path, e)),
    }
}

/// Gives the allocation file of `ip` its index link for `key` (an allocation written
/// without one), replacing a stale link of that name.
pub(crate) fn link_index(dir: &Path, key: u64, ip: IpAddr) -> Result<(), IpamError> {
    let target = allocation_path(dir, ip);
    let index = dir.join(index_name(key, ip));
    match fs::hard_link(&target, &index) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let file = fs::symlink_metadata(&target)
                .map_err(|e| IpamError::io("inspecting", &target, e))?;
            if index_file(dir, key, ip)? == Some(FileId::of(&file)) {
                return Ok(());
            }
            remove_if_present(&index)?;
            fs::hard_link(&target, &index).map_err(|e| IpamError::io("linking", index, e))
        }
        other => other.map_err(|e| IpamError::io("linking", index, e)),
    }
}

/// Removes `key`'s index link for `ip`, if present.
pub(crate) fn remove_index(dir: &Path, key: u64, ip: IpAddr) -> Result<(), IpamError> {
    remove_if_present(&dir.join(index_name(key, ip)))
}

pub(crate) fn allocation_path(dir: &Path, ip: IpAddr) -> PathBuf {
    dir.join(ip.to_string())
}

/// Removes `ip`'s allocation file; Ok(false) if there was none. The caller removes the
/// index link afterwards, so a crash in between leaves a stale link, never an allocation
/// without one.
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

fn last_reserved_path(dir: &Path, set: usize) -> PathBuf {
    dir.join(format!("{LAST_RESERVED_PREFIX}{set}"))
}

/// The last address handed out from range set `set`. Only a hint for round-robin, so a
/// missing, unreadable or garbled file just means "start at the beginning".
pub(crate) fn read_last_reserved(dir: &Path, set: usize) -> Option<IpAddr> {
    read_small(&last_reserved_path(dir, set))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Records `ip` as the last address handed out from `set`, in place: write the text at
/// offset 0, then cut the file to its length (as host-local, which truncates and writes;
/// a temp file and rename(2) cost 20 times as much here). A kill between the two calls
/// leaves the new text followed by the tail of a longer old one: garbled, or another
/// address of the range. Either only moves where round-robin continues.
pub(crate) fn write_last_reserved(dir: &Path, set: usize, ip: IpAddr) -> Result<(), IpamError> {
    let path = last_reserved_path(dir, set);
    let text = ip.to_string();
    let write = || -> io::Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        file.write_all_at(text.as_bytes(), 0)?;
        file.set_len(text.len() as u64)
    };
    write().map_err(|e| IpamError::io("writing", path, e))
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

    #[test]
    fn key_is_fnv1a_64_of_id_slash_ifname() {
        assert_eq!(key(&id("", "")), fnv_reference(b"/"));
        assert_eq!(key(&id("foo", "bar")), fnv_reference(b"foo/bar"));
        // The example in docs/cni.md.
        assert_eq!(
            index_name(key(&id("abc123", "eth0")), "10.42.0.7".parse().unwrap()),
            "@2b5118d26ad510ef_10.42.0.7"
        );
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv_reference(b""), 0xcbf29ce484222325);
        assert_eq!(fnv_reference(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv_reference(b"foobar"), 0x85944171f73967e8);
        assert_ne!(key(&id("c1", "eth0")), key(&id("c1", "eth1")));
    }

    /// FNV-1a 64 as specified, byte by byte.
    fn fnv_reference(bytes: &[u8]) -> u64 {
        let mut hash: u64 = 14695981039346656037;
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(1099511628211);
        }
        hash
    }

    #[test]
    fn only_canonical_address_text_names_an_allocation() {
        for name in [
            "10.0.0.2",
            "0.0.0.0",
            "255.255.255.255",
            "fd00::2",
            "::ffff:10.0.0.2",
        ] {
            assert_eq!(parse_canonical(name), Some(name.parse().unwrap()), "{name}");
        }
        let others = [
            "01.2.3.4",
            "1.02.3.4",
            "1.2.3.00",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "+1.2.3.4",
            " 1.2.3.4",
            "1.2.3.4 ",
            "0x1.2.3.4",
            "1.2.3.4/32",
            "FD00::2",
            "fd00:0::2",
            "fd00:0:0:0:0:0:0:2",
            "::FFFF:10.0.0.2",
            "fd00::02",
            "lock",
            "",
        ];
        for name in others {
            assert_eq!(parse_canonical(name), None, "{name}");
        }
        // What the shortcut for IPv4 relies on: whatever std parses is canonical.
        for a in [
            "0", "1", "9", "10", "99", "100", "255", "00", "010", "0255", "256",
        ] {
            for b in ["0", "07", "42", "200"] {
                let name = format!("{a}.{b}.{b}.{a}");
                if let Ok(ip) = name.parse::<std::net::Ipv4Addr>() {
                    assert_eq!(ip.to_string(), name);
                }
            }
        }
    }

    #[test]
    fn index_names_round_trip_and_are_nothing_else() {
        for ip in [
            "10.0.0.2",
            "fd00::2",
            "::ffff:10.0.0.2",
            "fd00:1:2:3:4:5:6:7",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let name = index_name(0x00ab_cdef_0123_4567, ip);
            assert_eq!(parse_index_name(&name), Some((0x00ab_cdef_0123_4567, ip)));
            assert!(name.parse::<IpAddr>().is_err());
            assert!(!name.starts_with(TEMP_PREFIX) && !name.starts_with(LAST_RESERVED_PREFIX));
            assert_ne!(name, LOCK_FILE);
        }
        assert_eq!(
            index_name(0x1f, "fd00::2".parse().unwrap()),
            "@000000000000001f_fd00::2"
        );
        for other in [
            "@",
            "@000000000000001f",
            "@000000000000001f_",
            "@000000000000001F_10.0.0.2",
            "@00000000000001f_10.0.0.2",
            "@000000000000001f-10.0.0.2",
            "@000000000000001f_FD00::2",
            "@+00000000000001f_10.0.0.2",
            "10.0.0.2",
        ] {
            assert_eq!(parse_index_name(other), None, "{other}");
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn listing_classifies_names_and_matches_links_by_inode() {
        let k = 7;
        let names = [
            (index_name(k, ip("10.0.0.2")), 100),
            ("10.0.0.2".to_string(), 100),
            // A stale link beside another file of the same address.
            (index_name(k, ip("10.0.0.3")), 101),
            ("10.0.0.3".to_string(), 102),
            // No allocation file at all.
            (index_name(k, ip("10.0.0.4")), 103),
            ("10.0.0.5".to_string(), 104),
            (".tmp-1-2".to_string(), 105),
            ("last_reserved_ip.0".to_string(), 106),
            ("lock".to_string(), 107),
            ("FD00::2".to_string(), 108),
        ];
        let listing = Listing::from_entries(names.iter().map(|(n, i)| (n, *i)));
        let entry = |ip, ino, indexed| AllocationEntry { ip, ino, indexed };
        assert_eq!(
            listing.allocations(),
            [
                entry(ip("10.0.0.2"), 100, true),
                entry(ip("10.0.0.3"), 102, false),
                entry(ip("10.0.0.5"), 104, false),
            ]
        );
        assert!(listing.is_taken(ip("10.0.0.3")) && !listing.is_taken(ip("10.0.0.4")));
        assert_eq!(listing.index.len(), 3);
        assert_eq!(listing.temps, [".tmp-1-2"]);
    }

    /// The decision of what allocate, release and get read, over a big store: only the
    /// attachment's own index links (however many other links and files there are),
    /// plus allocation files that have no index link at all.
    #[test]
    fn lookups_read_only_the_attachments_own_files() {
        let mine = key(&id("mine", "eth0"));
        let mut names = Vec::new();
        for n in 0..3000u32 {
            let addr = IpAddr::from([10, 32, (n >> 8) as u8, n as u8]);
            let other = key(&id(&format!("other-{n}"), "eth0"));
            assert_ne!(other, mine);
            names.push((addr.to_string(), u64::from(n) + 1000));
            names.push((index_name(other, addr), u64::from(n) + 1000));
        }
        names.push((index_name(mine, ip("10.40.0.1")), 1));
        names.push(("10.40.0.1".to_string(), 1));
        let listing = Listing::from_entries(names.iter().map(|(n, i)| (n, *i)));
        assert_eq!(listing.allocations().len(), 3001);
        assert_eq!(listing.to_read(mine), [ToRead::Indexed(ip("10.40.0.1"))]);
        assert_eq!(listing.to_read(12345), []);

        // An allocation file without an index link (host-local's) is read by everyone.
        names.push(("10.50.0.1".to_string(), 2));
        let listing = Listing::from_entries(names.iter().map(|(n, i)| (n, *i)));
        assert_eq!(
            listing.to_read(mine),
            [
                ToRead::Indexed(ip("10.40.0.1")),
                ToRead::Unindexed(ip("10.50.0.1"))
            ]
        );
        assert_eq!(listing.to_read(12345), [ToRead::Unindexed(ip("10.50.0.1"))]);
    }
}
