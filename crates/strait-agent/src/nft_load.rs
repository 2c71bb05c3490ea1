//! Loading the whole `inet strait` table, always in one transaction:
//! traffic sees the old table or the new one, never a mix.
//!
//! A small table goes in with one `nft -f` of its text. A large one does
//! not: at 10,000 Services the table carries 110,000 map elements, and nft
//! spends over a second parsing them. Instead:
//!
//! 1. `nft -f` of the skeleton (every chain, rule and declaration, the
//!    elements of interval sets, the stamp; the other sets and maps
//!    declared empty) as a *dormant* table [`BUILD_TABLE`]: its base chains
//!    are not hooked, so it sees no packet. nft remains the only compiler
//!    of rules.
//! 2. What the kernel made of it is read back through netlink
//!    (`strait_kernel::nft_copy`): a few hundred small messages.
//! 3. One netlink batch, one transaction: replace `inet strait` with an
//!    empty table, write the copied declarations into it, every other
//!    element (encoded by `strait_plan::nft::wire`), and delete the build
//!    table.
//!
//! If any step fails, the build table is removed and the table is
//! rewritten with `nft -f` of its whole text. An agent killed between the
//! steps leaves at most a dormant build table, which the next load (or
//! `--cleanup`) deletes.

use crate::apply::{stamped_text, with_stamp, ApplyError, Report};
use strait_kernel::nft;
use strait_kernel::nft_batch::Batch;
use strait_kernel::nft_copy;
use strait_plan::nft::wire;
use strait_plan::nft::Table;

/// The dormant table a large load is compiled into (step 1 above).
pub const BUILD_TABLE: &str = "strait-build";

/// Below this many elements the whole-text `nft -f` is as fast.
const MIN_NETLINK_ELEMENTS: usize = 1000;

/// Replaces (or creates) the table in the kernel with `table`, stamped
/// `stamp`, in one transaction.
pub(crate) fn load_table(table: &Table, stamp: &str, r: &mut Report) -> Result<(), ApplyError> {
    if wire::element_count(table) < MIN_NETLINK_ELEMENTS {
        return Ok(nft::apply(&stamped_text(table, stamp))?);
    }
    match load_by_netlink(table, stamp) {
        Ok(n) => {
            r.changes.push(format!(
                "nft table {} {} loaded in one netlink transaction ({n} elements)",
                table.family.as_str(),
                table.name
            ));
            Ok(())
        }
        Err(e) => {
            let _ = nft::delete_table(table.family.as_str(), BUILD_TABLE);
            r.changes.push(format!(
                "netlink load failed ({e}); table rewritten with nft"
            ));
            Ok(nft::apply(&stamped_text(table, stamp))?)
        }
    }
}

/// Steps 1-3 above; how many elements went through netlink. On an error
/// the table the kernel held is untouched (the build table may remain).
pub fn load_by_netlink(table: &Table, stamp: &str) -> Result<usize, ApplyError> {
    let family = crate::nft_update::nfproto(table.family);
    let skeleton = with_stamp(
        strait_plan::nft::render_skeleton(table, BUILD_TABLE),
        table.family,
        BUILD_TABLE,
        stamp,
    );
    nft::apply(&skeleton)?;
    let declarations = nft_copy::read(family, BUILD_TABLE)?.ok_or_else(|| {
        ApplyError::Conflict(format!("table {BUILD_TABLE} vanished while it was read"))
    })?;
    let mut batch = Batch::new(family, &table.name);
    batch.replace_table();
    batch.copy(&declarations);
    wire::for_each_element(table, |set, key, data| {
        batch.add(set, key, crate::nft_update::element_data(data));
    })
    .map_err(|e| ApplyError::Conflict(e.to_string()))?;
    let n = batch.len();
    batch.delete_table(BUILD_TABLE);
    batch.commit()?;
    Ok(n)
}
