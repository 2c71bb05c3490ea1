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
