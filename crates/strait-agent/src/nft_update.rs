//! Applying an incremental change of the table (one transaction): map and
//! set elements that come, go or change, plus whole sets, maps and chains
//! that appear or disappear, and the new stamp.
//!
//! The common change (endpoints replaced, Services added or removed) is
//! elements only. That goes to the kernel as one netlink batch the agent
//! encodes itself (`strait_plan::nft::wire`, `strait_kernel::nft_batch`):
//! about a millisecond, where `nft -f` of the same few lines costs 15 ms at
//! 10,000 Services (a process, and nft reading the table's declarations
//! before it can encode an element). A change with whole objects goes
//! through `nft -f`.

use crate::apply::{stamp_update, ApplyError, STAMP_CHAIN};
use strait_kernel::nft;
use strait_kernel::nft_batch::{Batch, ElementData, FAMILY_INET};
use strait_plan::nft::incremental::Changes;
use strait_plan::nft::wire::{self, WireData};
use strait_plan::nft::{Family, Table};

/// How the change went in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Netlink,
    Nft,
}

/// Applies `changes` (from the table the kernel holds to `table`) and
/// the stamp `stamp`, in one transaction.
pub fn apply_changes(table: &Table, changes: &Changes, stamp: &str) -> Result<Path, ApplyError> {
    let by_netlink = !changes.objects
        && changes
            .elements
            .iter()
            .all(|c| wire::by_netlink(table, c.set));
    if by_netlink {
        let mut batch = Batch::new(nfproto(table.family), &table.name);
        let mut key = Vec::with_capacity(32);
        for change in &changes.elements {
            for e in &change.delete {
                let mut value = [0u8; 8];
                wire::element(change.set, e, &mut key, &mut value)
                    .map_err(|e| ApplyError::Conflict(e.to_string()))?;
                batch.delete(change.set, &key);
            }
            for e in &change.add {
                let mut value = [0u8; 8];
                let data = wire::element(change.set, e, &mut key, &mut value)
                    .map_err(|e| ApplyError::Conflict(e.to_string()))?;
                batch.add(change.set, &key, element_data(data));
            }
        }
        batch.flush_chain(STAMP_CHAIN);
        batch.add_stamp_rule(STAMP_CHAIN, stamp);
        batch.commit()?;
        return Ok(Path::Netlink);
    }
    nft::apply(&format!(
        "{}{}",
        changes.text,
        stamp_update(table.family.as_str(), &table.name, stamp)
    ))?;
    Ok(Path::Nft)
}

/// The kernel's number (`NFPROTO_*`) for a table family.
pub(crate) fn nfproto(family: Family) -> u8 {
    match family {
        Family::Inet => FAMILY_INET,
        Family::Ip => libc::NFPROTO_IPV4 as u8,
        Family::Ip6 => libc::NFPROTO_IPV6 as u8,
    }
}

/// The plan's element data as the kernel crate frames it (the two crates
/// do not depend on each other).
pub(crate) fn element_data(d: WireData<'_>) -> ElementData<'_> {
    match d {
        WireData::None => ElementData::None,
        WireData::Value(v) => ElementData::Value(v),
        WireData::Verdict { code, chain } => ElementData::Verdict { code, chain },
    }
}
