//! Helpers shared by the store's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::IpAddr;

use strait_ipam::{AttachmentId, IpamConfig, RangeSet};

pub fn id(container_id: &str, ifname: &str) -> AttachmentId {
    AttachmentId {
        container_id: container_id.into(),
        ifname: ifname.into(),
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// Range sets from the `ranges` JSON of an ipam config.
pub fn sets(ranges_json: &str) -> Vec<RangeSet> {
    let cfg: IpamConfig =
        serde_json::from_str(&format!(r#"{{"ranges": {ranges_json}}}"#)).expect("test config");
    cfg.range_sets().expect("valid test config")
}

pub fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The name of `owner`'s index link for `ip`: `@` + FNV-1a 64 of
/// `"{container_id}/{ifname}"` in 16 lower-case hex digits + `_` + the address. Written
/// out independently of the crate, so a change of the on-disk format fails the tests.
pub fn index_name(owner: &AttachmentId, ip: IpAddr) -> String {
    let text = format!("{}/{}", owner.container_id, owner.ifname);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100_0000_01b3);
    }
    format!("@{hash:016x}_{ip}")
}

/// host-local's parse of an allocation file's content.
pub fn owner_of(content: &str) -> AttachmentId {
    let content = content.trim();
    let (c, i) = content.split_once("\r\n").unwrap_or((content, ""));
    id(c.trim(), i.trim())
}

/// The index invariant of a store no process was killed in: every allocation file has
/// exactly one index link, named by its owner's key, to the same inode; and there is no
/// other index link.
pub fn check_index(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let names = names_in(dir);
    let mut expected = Vec::new();
    for name in &names {
        let Ok(addr) = name.parse::<IpAddr>() else {
            continue;
        };
        if addr.to_string() != *name {
            continue;
        }
        let path = dir.join(name);
        let content = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let link = index_name(&owner_of(&content), addr);
        let file = std::fs::metadata(&path).map_err(|e| e.to_string())?;
        let Ok(linked) = std::fs::symlink_metadata(dir.join(&link)) else {
            return Err(format!("{name} has no index link {link}"));
        };
        if (linked.dev(), linked.ino()) != (file.dev(), file.ino()) {
            return Err(format!("{link} is not the same file as {name}"));
        }
        expected.push(link);
    }
    for name in names.iter().filter(|n| n.starts_with('@')) {
        if !expected.contains(name) {
            return Err(format!("stale index link {name}"));
        }
    }
    Ok(())
}
