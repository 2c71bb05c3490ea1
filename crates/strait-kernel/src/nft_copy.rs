//! Copying a table's declarations (named objects, chains, sets, the
//! elements they hold, rules) into a [`Batch`], under another table name.
//!
//! Why: replacing a large table must be one transaction, and `nft -f` of
//! the whole text spends over a second parsing 100,000 map elements. The
//! agent instead lets nft compile the *skeleton* (everything but the large
//! element lists) into a dormant scratch table, reads what the kernel made
//! of it here, and writes it again, under the real name, in one batch
//! together with the elements it encodes itself and the scratch table's
//! deletion. nft stays the only compiler of rules; this module only moves
//! the kernel's own encoding of them from one table to another.
//!
//! Only the attributes a NEW message takes are copied, byte for byte,
//! nested attributes included; what else a dump holds (handles, use
//! counts, statistics, a set's backend) is left out.

use crate::nfnl::{self, NLM_F_CREATE};
use crate::nft::NftError;
use crate::nft_batch::Batch;

const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_NEWOBJ: u16 = 18;
const NFT_MSG_GETOBJ: u16 = 19;

/// Every object kind's first attribute is its table (`NFTA_CHAIN_TABLE`,
/// `NFTA_RULE_TABLE`, `NFTA_SET_TABLE`, `NFTA_SET_ELEM_LIST_TABLE`,
/// `NFTA_OBJ_TABLE`).
const ATTR_TABLE: u16 = 1;
/// `NFTA_SET_NAME` and `NFTA_SET_ELEM_LIST_SET`.
const ATTR_SET_NAME: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ID: u16 = 10;

/// The attributes a NEW message takes (everything else a dump reports is
/// the kernel's bookkeeping: handles, use counts, statistics, a set's
/// backend and element count (Linux 6.18), and a NEW message carrying them
/// is refused). Chains: TABLE 1, NAME 3, HOOK 4, POLICY 5, TYPE 7,
/// USERDATA 12 (FLAGS 10 is left out: BASE follows from the hook).
const CHAIN_KEEP: &[u16] = &[1, 3, 4, 5, 7, 12];
/// Rules: TABLE 1, CHAIN 2, EXPRESSIONS 4, USERDATA 7.
const RULE_KEEP: &[u16] = &[1, 2, 4, 7];
/// Sets: TABLE 1, NAME 2, FLAGS 3, KEY_TYPE 4, KEY_LEN 5, DATA_TYPE 6,
/// DATA_LEN 7, POLICY 8, DESC 9, TIMEOUT 11, GC_INTERVAL 12, USERDATA 13,
/// OBJ_TYPE 15, EXPR 17, EXPRESSIONS 18.
const SET_KEEP: &[u16] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 17, 18];
/// Set element lists: TABLE 1, SET 2, ELEMENTS 3.
const ELEMENTS_KEEP: &[u16] = &[1, 2, 3];
/// Objects: TABLE 1, NAME 2, TYPE 3, DATA 4, USERDATA 8.
const OBJ_KEEP: &[u16] = &[1, 2, 3, 4, 8];

/// A table's declarations as the kernel reports them: each entry is one
/// dumped message's attribute area.
#[derive(Debug, Default, Clone)]
pub struct Declarations {
    objects: Vec<Vec<u8>>,
    chains: Vec<Vec<u8>>,
    sets: Vec<Vec<u8>>,
    elements: Vec<Vec<u8>>,
    rules: Vec<Vec<u8>>,
}

/// Reads table `table` of `family` (in the calling thread's namespace);
/// `None` when it does not exist.
pub fn read(family: u8, table: &str) -> Result<Option<Declarations>, NftError> {
    if !crate::nft_read::table_exists(family, table)? {
        return Ok(None);
    }
    let objects = dump_of(family, table, NFT_MSG_GETOBJ, "netlink object dump")?;
    let chains = dump_of(family, table, NFT_MSG_GETCHAIN, "netlink chain dump")?;
    let sets = dump_of(family, table, NFT_MSG_GETSET, "netlink set dump")?;
    let rules = dump_of(family, table, NFT_MSG_GETRULE, "netlink rule dump")?;
    let mut elements = Vec::new();
    for set in &sets {
        let Some(name) = attr(set, ATTR_SET_NAME).map(nfnl::text) else {
            continue;
        };
        let answers = nfnl::dump("netlink element dump", |b| {
            let at = b.dump_request(NFT_MSG_GETSETELEM, family);
            b.attr_str(ATTR_TABLE, table);
            b.attr_str(ATTR_SET_NAME, &name);
            b.finish(at);
        })?
        .unwrap_or_default();
        elements.extend(
            answers
                .into_iter()
                .filter(|a| attr(a, NFTA_SET_ELEM_LIST_ELEMENTS).is_some_and(|l| !l.is_empty())),
        );
    }
    Ok(Some(Declarations {
        objects,
        chains,
        sets,
        elements,
        rules,
    }))
}

/// One dump of `kind`, filtered to `table` (some dumps ignore the filter).
fn dump_of(family: u8, table: &str, kind: u16, what: &str) -> Result<Vec<Vec<u8>>, NftError> {
    let answers = nfnl::dump(what, |b| {
        let at = b.dump_request(kind, family);
        b.attr_str(ATTR_TABLE, table);
        b.finish(at);
    })?
    .unwrap_or_default();
    Ok(answers
        .into_iter()
        .filter(|a| attr(a, ATTR_TABLE).is_some_and(|t| nfnl::text(t) == table))
        .collect())
}

/// The payload of the first attribute of `kind` in `area`.
fn attr(area: &[u8], kind: u16) -> Option<&[u8]> {
    nfnl::attrs(area)
        .into_iter()
        .find(|(t, _)| *t == kind)
        .map(|(_, v)| v)
}

impl Batch {
    /// Adds `d` to this batch's table: objects, chains, sets, the elements
    /// the sets held, then the rules (sets and chains exist before a rule
    /// or a verdict names them; anonymous sets are filled before the rule
    /// that binds them).
    pub fn copy(&mut self, d: &Declarations) {
        for o in &d.objects {
            self.copied(NFT_MSG_NEWOBJ, NLM_F_CREATE, o, OBJ_KEEP, None);
        }
        for c in &d.chains {
            self.copied(NFT_MSG_NEWCHAIN, NLM_F_CREATE, c, CHAIN_KEEP, None);
        }
        for (i, s) in d.sets.iter().enumerate() {
            // The kernel requires an NFTA_SET_ID in every NEWSET (rules in
            // the same batch could name the set by it; ours name it).
            let id = u32::try_from(i + 1).unwrap_or(u32::MAX);
            self.copied(
                NFT_MSG_NEWSET,
                NLM_F_CREATE,
                s,
                SET_KEEP,
                Some((NFTA_SET_ID, id)),
            );
        }
        for e in &d.elements {
            self.copied(NFT_MSG_NEWSETELEM, NLM_F_CREATE, e, ELEMENTS_KEEP, None);
        }
        for r in &d.rules {
            self.copied(
                NFT_MSG_NEWRULE,
                NLM_F_CREATE | nfnl::NLM_F_APPEND,
                r,
                RULE_KEEP,
                None,
            );
        }
    }

    /// One NEW message from a dumped attribute area: the table attribute
    /// names this batch's table, the attributes in `keep` are copied as
    /// they are (flags and nesting included), the rest is left out; `extra`
    /// is one more u32 attribute.
    fn copied(
        &mut self,
        msg: u16,
        flags: u16,
        area: &[u8],
        keep: &[u16],
        extra: Option<(u16, u32)>,
    ) {
        let table = self.table().to_owned();
        let b = self.message(msg, flags);
        for (kind, whole) in nfnl::raw_attrs(area) {
            if kind == ATTR_TABLE {
                b.attr_str(ATTR_TABLE, &table);
            } else if keep.contains(&kind) {
                b.raw_attr(whole);
            }
        }
        if let Some((kind, value)) = extra {
            b.attr(kind, &value.to_be_bytes());
        }
        self.finish_message();
    }
}
