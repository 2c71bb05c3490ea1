//! Loading the whole `inet strait` table.
//!
//! The usual way is one `nft -f` transaction: the table is replaced
//! atomically, so traffic sees the old table or the new one, never a mix.
//! At 10,000 Services that transaction carries 110,000 map elements, and
//! nft spends most of a second parsing them.
//!
//! When the kernel holds no strait table at all (a node booting, a first
//! start, after `strait agent --cleanup`) there is nothing a partial table
//! could break, so the load goes in three steps instead:
//!
//! 1. `nft -f` of the skeleton: every chain, rule and declaration, and the
//!    elements of interval sets; the other sets and maps declared empty; a
//!    stamp that matches no Plan. Policy is enforced from here on.
//! 2. One netlink batch (one transaction) with every other element, encoded
//!    by `strait_plan::nft::wire` and framed by `strait_kernel::nft_elements`.
//! 3. The real stamp.
//!
//! If step 2 or 3 fails, the table is rewritten in the atomic way; an agent
//! killed in between finds a stamp that matches nothing and does the same.

use crate::apply::{stamped_text, with_stamp, ApplyError, Report};
use strait_kernel::nft;
use strait_kernel::nft_elements::{ElementBatch, ElementData, FAMILY_INET};
use strait_plan::nft::wire::{self, WireData};
use strait_plan::nft::{Family, Table};

/// The stamp of a table whose elements are still being loaded: never the
/// stamp of a Plan (those are `strait:` and 16 hex digits).
const LOADING_STAMP: &str = "strait:loading";

/// Below this many elements the atomic `nft -f` is as fast as the steps.
const MIN_NETLINK_ELEMENTS: usize = 1000;

/// Replaces (or creates) the table in the kernel with `table`, stamped
/// `stamp`. `absent`: the kernel was seen without the table.
pub(crate) fn load_table(
    table: &Table,
    stamp: &str,
    absent: bool,
    r: &mut Report,
) -> Result<(), ApplyError> {
    if !absent || wire::element_count(table) < MIN_NETLINK_ELEMENTS {
        return Ok(nft::apply(&stamped_text(table, stamp))?);
    }
    match load_in_steps(table, stamp) {
        Ok(n) => {
            r.changes.push(format!(
                "nft table {} {} created; {n} elements loaded through netlink",
                table.family.as_str(),
                table.name
            ));
            Ok(())
        }
        Err(e) => {
            r.changes.push(format!(
                "netlink element load failed ({e}); table rewritten with nft"
            ));
            Ok(nft::apply(&stamped_text(table, stamp))?)
        }
    }
}

/// Steps 1-3 above; how many elements went through netlink.
pub fn load_in_steps(table: &Table, stamp: &str) -> Result<usize, ApplyError> {
    let skeleton = with_stamp(
        strait_plan::nft::render_skeleton(table),
        table,
        LOADING_STAMP,
    );
    nft::apply(&skeleton)?;
    let family = match table.family {
        Family::Inet => FAMILY_INET,
        Family::Ip => libc::NFPROTO_IPV4 as u8,
        Family::Ip6 => libc::NFPROTO_IPV6 as u8,
    };
    let mut batch = ElementBatch::new(family, &table.name);
    wire::for_each_element(table, |set, key, data| {
        let data = match data {
            WireData::None => ElementData::None,
            WireData::Value(v) => ElementData::Value(v),
            WireData::Verdict { code, chain } => ElementData::Verdict { code, chain },
        };
        batch.add(set, key, data);
    })
    .map_err(|e| ApplyError::Conflict(e.to_string()))?;
    let n = batch.len();
    batch.commit()?;
    nft::apply(&crate::apply::stamp_update(
        table.family.as_str(),
        &table.name,
        stamp,
    ))?;
    Ok(n)
}
