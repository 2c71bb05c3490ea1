//! One nftables transaction written straight to the kernel as an
//! nfnetlink batch, without the `nft` binary: set and map elements,
//! replacing or deleting a table, and declarations copied from another
//! table (`nft_copy`).
//!
//! Why by hand: loading 100,000 service endpoints with `nft -f` spends
//! about three quarters of its time in nft's parser and evaluator, turning
//! text back into the bytes the kernel wants. The element messages are
//! simple (NFT_MSG_NEWSETELEM: table, set, a list of key/data blobs), so the
//! agent encodes them itself, and the one rule it writes (the stamp: a
//! counter with a comment). Chains, rules and set declarations are
//! compiled by `nft`, and reach a batch only as the kernel's own encoding
//! (`nft_copy`). No maintained crate writes nftables set elements over
//! netlink without libnftnl.
//!
//! The caller encodes keys and data the way the kernel stores them (see
//! `strait_plan::nft::wire`); this module only frames them.

use crate::nfnl::{
    self, nft_type, Builder, NFNL_SUBSYS_NFTABLES, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST,
};
use crate::nft::NftError;
use std::os::fd::AsRawFd;

const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_TABLE_NAME: u16 = 1;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

/// `NFPROTO_INET`: the `inet` family of a table.
pub const FAMILY_INET: u8 = 1;

/// Netlink attribute lengths are 16 bits: one message's element list must
/// stay below 64 KiB (nft splits its batches the same way).
const MAX_LIST_BYTES: usize = 60 * 1024;

/// What an element maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementData<'a> {
    /// A set element (no data).
    None,
    /// A value, as the kernel's registers hold it.
    Value(&'a [u8]),
    /// A verdict: `NF_ACCEPT`, `NFT_GOTO`, ... with the chain of a jump or
    /// goto.
    Verdict { code: i32, chain: Option<&'a str> },
}

/// Verdict codes (`include/uapi/linux/netfilter/nf_tables.h`).
pub mod verdict {
    pub const DROP: i32 = 0;
    pub const ACCEPT: i32 = 1;
    pub const CONTINUE: i32 = -1;
    pub const JUMP: i32 = -3;
    pub const GOTO: i32 = -4;
    pub const RETURN: i32 = -5;
}

/// One transaction, framed as nfnetlink messages while it is built;
/// [`Batch::commit`] sends it at once. Elements go to the batch's table.
pub struct Batch {
    family: u8,
    table: String,
    b: Builder,
    /// Messages that will be answered with an ACK.
    acked: u32,
    /// The open NEWSETELEM or DELSETELEM message: where it starts, where
    /// its element list attribute starts, which set it changes, and its
    /// type.
    open: Option<(usize, usize, String, u16)>,
    /// Where the message started by [`Batch::message`] begins.
    building: Option<usize>,
    elements: usize,
}

impl Batch {
    pub fn new(family: u8, table: &str) -> Self {
        let mut b = Builder::default();
        b.message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        Batch {
            family,
            table: table.to_owned(),
            b,
            acked: 0,
            open: None,
            building: None,
            elements: 0,
        }
    }

    /// How many elements the batch adds or deletes.
    pub fn len(&self) -> usize {
        self.elements
    }

    pub fn is_empty(&self) -> bool {
        self.elements == 0
    }

    /// The table this batch writes to.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Replaces the batch's table with an empty one: create it (so the
    /// delete cannot fail), delete it (with everything in it), create it.
    pub fn replace_table(&mut self) {
        let name = self.table.clone();
        for (msg, flags) in [
            (NFT_MSG_NEWTABLE, NLM_F_CREATE),
            (NFT_MSG_DELTABLE, 0),
            (NFT_MSG_NEWTABLE, NLM_F_CREATE),
        ] {
            let b = self.message(msg, flags);
            b.attr_str(NFTA_TABLE_NAME, &name);
            self.finish_message();
        }
    }

    /// Deletes table `name` of the batch's family; the transaction fails
    /// if it does not exist.
    pub fn delete_table(&mut self, name: &str) {
        let b = self.message(NFT_MSG_DELTABLE, 0);
        b.attr_str(NFTA_TABLE_NAME, name);
        self.finish_message();
    }

    /// Starts an acknowledged `NFT_MSG_*` message (`flags` besides REQUEST
    /// and ACK); the caller adds its attributes and ends it with
    /// [`Batch::finish_message`].
    pub(crate) fn message(&mut self, msg: u16, flags: u16) -> &mut Builder {
        self.building = Some(self.start(msg, flags));
        &mut self.b
    }

    /// Ends the open element message and starts an acknowledged one; where
    /// it starts.
    fn start(&mut self, msg: u16, flags: u16) -> usize {
        self.close();
        self.acked += 1;
        self.b.message(
            nft_type(msg),
            NLM_F_REQUEST | NLM_F_ACK | flags,
            self.family,
            0,
        )
    }

    pub(crate) fn finish_message(&mut self) {
        if let Some(start) = self.building.take() {
            self.b.finish(start);
        }
    }

    /// Adds one element to `set`: `key` (and `data` for a map) encoded as
    /// the set was declared.
    pub fn add(&mut self, set: &str, key: &[u8], data: ElementData<'_>) {
        self.element(NFT_MSG_NEWSETELEM, set, key, data);
    }

    /// Deletes the element with `key` from `set` (the transaction fails if
    /// there is none).
    pub fn delete(&mut self, set: &str, key: &[u8]) {
        self.element(NFT_MSG_DELSETELEM, set, key, ElementData::None);
    }

    /// Deletes every rule of `chain` in the batch's table (`flush chain`).
    pub fn flush_chain(&mut self, chain: &str) {
        let table = self.table.clone();
        let b = self.message(NFT_MSG_DELRULE, 0);
        b.attr_str(NFTA_RULE_TABLE, &table);
        b.attr_str(NFTA_RULE_CHAIN, chain);
        self.finish_message();
    }

    /// Appends `counter comment "<comment>"` to `chain`: the one rule
    /// strait writes itself (the table's stamp). A counter, not a verdict:
    /// a new rule with a verdict (or any expression the kernel validates)
    /// marks the table for a loop check of every chain at commit.
    pub fn add_stamp_rule(&mut self, chain: &str, comment: &str) {
        let table = self.table.clone();
        let b = self.message(NFT_MSG_NEWRULE, NLM_F_CREATE | nfnl::NLM_F_APPEND);
        b.attr_str(NFTA_RULE_TABLE, &table);
        b.attr_str(NFTA_RULE_CHAIN, chain);
        let exprs = b.nest_start(NFTA_RULE_EXPRESSIONS);
        let elem = b.nest_start(NFTA_LIST_ELEM);
        b.attr_str(NFTA_EXPR_NAME, "counter");
        b.nest_end(elem);
        b.nest_end(exprs);
        b.attr(NFTA_RULE_USERDATA, &nfnl::comment_udata(comment));
        self.finish_message();
    }

    fn element(&mut self, msg: u16, set: &str, key: &[u8], data: ElementData<'_>) {
        let fits = matches!(&self.open, Some((_, list, s, m))
            if *m == msg && s == set && self.b.buf.len() - list < MAX_LIST_BYTES);
        if !fits {
            self.open_set(msg, set);
        }
        let b = &mut self.b;
        let elem = b.nest_start(NFTA_LIST_ELEM);
        let k = b.nest_start(NFTA_SET_ELEM_KEY);
        b.attr(NFTA_DATA_VALUE, key);
        b.nest_end(k);
        match data {
            ElementData::None => {}
            ElementData::Value(v) => {
                let d = b.nest_start(NFTA_SET_ELEM_DATA);
                b.attr(NFTA_DATA_VALUE, v);
                b.nest_end(d);
            }
            ElementData::Verdict { code, chain } => {
                let d = b.nest_start(NFTA_SET_ELEM_DATA);
                let v = b.nest_start(NFTA_DATA_VERDICT);
                b.attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
                if let Some(chain) = chain {
                    b.attr_str(NFTA_VERDICT_CHAIN, chain);
                }
                b.nest_end(v);
                b.nest_end(d);
            }
        }
        b.nest_end(elem);
        self.elements += 1;
    }

    /// Sends the batch in the calling thread's network namespace and waits
    /// for the kernel's verdict: all elements are added, or none (the
    /// kernel aborts the whole transaction on any error).
    pub fn commit(mut self) -> Result<(), NftError> {
        self.close();
        self.b
            .message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        let what = "netlink batch";
        let buf = &self.b.buf;
        let acked = self.acked;
        let answer = nfnl::with_socket(what, |socket| {
            // The whole batch goes in one sendmsg (one transaction); the
            // default send buffer is far smaller. SO_SNDBUFFORCE: we are
            // root.
            force_buffer(socket, libc::SO_SNDBUFFORCE, buf.len() + 4096)
                .map_err(|e| NftError::Rejected(format!("{what}: SO_SNDBUFFORCE: {e}")))?;
            // The kernel queues every message's ACK while it processes the
            // batch, before we read one: room for all of them (a queued
            // ACK takes up to 2 KiB of the buffer; 330,000 elements are
            // about 450 messages, over the default 208 KiB).
            force_buffer(
                socket,
                libc::SO_RCVBUFFORCE,
                acked as usize * 2048 + (256 << 10),
            )
            .map_err(|e| NftError::Rejected(format!("{what}: SO_RCVBUFFORCE: {e}")))?;
            socket
                .send(buf, 0)
                .map_err(|e| NftError::Rejected(format!("{what}: send: {e}")))?;
            let answer = nfnl::receive(socket, what, |_, _| {}, |acks, _| acks >= acked)?;
            // After a refusal the answers to the rest of the batch may
            // still be queued: that socket is not used again.
            let clean = answer.is_ok();
            Ok((answer, clean))
        })?;
        answer.map_err(|(errno, text)| nfnl::refused(what, errno, text))
    }

    fn open_set(&mut self, msg: u16, set: &str) {
        let create = if msg == NFT_MSG_NEWSETELEM {
            NLM_F_CREATE
        } else {
            0
        };
        let start = self.start(msg, create);
        self.b.attr_str(NFTA_SET_ELEM_LIST_TABLE, &self.table);
        self.b.attr_str(NFTA_SET_ELEM_LIST_SET, set);
        let list = self.b.nest_start(NFTA_SET_ELEM_LIST_ELEMENTS);
        self.open = Some((start, list, set.to_owned(), msg));
    }

    /// Ends the open element message, if any.
    fn close(&mut self) {
        if let Some((start, list, _, _)) = self.open.take() {
            self.b.nest_end(list);
            self.b.finish(start);
        }
    }
}

fn force_buffer(
    socket: &netlink_sys::Socket,
    option: libc::c_int,
    bytes: usize,
) -> std::io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket fd and a pointer to a c_int that lives through
    // the call.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_per_set_and_per_64k() {
        let mut b = Batch::new(FAMILY_INET, "t");
        for i in 0u32..5000 {
            b.add("big", &i.to_ne_bytes(), ElementData::None);
        }
        b.add("small", &[1, 2, 3, 4], ElementData::Value(&[9, 9, 9, 9]));
        b.close();
        // Walk the messages: every length is consistent and every element
        // list stays under the 16-bit attribute limit.
        let mut at = 0;
        let mut sets = Vec::new();
        while at < b.b.buf.len() {
            let len = u32::from_ne_bytes(b.b.buf[at..at + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(b.b.buf[at + 4..at + 6].try_into().unwrap());
            assert!(len >= 20 && at + len <= b.b.buf.len());
            if kind != NFNL_MSG_BATCH_BEGIN {
                // table attr "t\0" (8 bytes), then the set name.
                let set_at = at + 20 + 8;
                let name_len = u16::from_ne_bytes([b.b.buf[set_at], b.b.buf[set_at + 1]]) as usize;
                let name = &b.b.buf[set_at + 4..set_at + name_len - 1];
                sets.push(String::from_utf8(name.to_vec()).unwrap());
            }
            at += len;
        }
        assert_eq!(at, b.b.buf.len());
        assert!(sets.len() >= 3, "5000 elements need more than one message");
        assert_eq!(sets.last().map(String::as_str), Some("small"));
        assert!(sets[..sets.len() - 1].iter().all(|s| s == "big"));
        assert_eq!(b.len(), 5001);
        assert_eq!(b.acked as usize, sets.len());
    }
}
