//! Set and map elements written straight to the kernel as one nfnetlink
//! batch (one nftables transaction), without the `nft` binary.
//!
//! Why by hand: loading 100,000 service endpoints with `nft -f` spends
//! about three quarters of its time in nft's parser and evaluator, turning
//! text back into the bytes the kernel wants. The element messages are
//! simple (NFT_MSG_NEWSETELEM: table, set, a list of key/data blobs), so the
//! agent encodes them itself; everything else (tables, chains, rules, the
//! set declarations) still goes through `nft`. No maintained crate writes
//! nftables set elements over netlink without libnftnl.
//!
//! The caller encodes keys and data the way the kernel stores them (see
//! `strait_plan::nft::wire`); this module only frames them.

use crate::nft::NftError;
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use std::os::fd::AsRawFd;

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;

const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;

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

/// One transaction's worth of `add element`s, framed as nfnetlink messages
/// while they are added; [`ElementBatch::commit`] sends them at once.
pub struct ElementBatch {
    family: u8,
    table: String,
    buf: Vec<u8>,
    seq: u32,
    /// Messages that will be answered with an ACK.
    acked: u32,
    /// The open NEWSETELEM message: where it starts, where its element list
    /// attribute starts, and which set it fills.
    open: Option<(usize, usize, String)>,
    elements: usize,
}

impl ElementBatch {
    pub fn new(family: u8, table: &str) -> Self {
        let mut b = ElementBatch {
            family,
            table: table.to_owned(),
            buf: Vec::new(),
            seq: 0,
            acked: 0,
            open: None,
            elements: 0,
        };
        b.message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        b
    }

    /// How many elements were added.
    pub fn len(&self) -> usize {
        self.elements
    }

    pub fn is_empty(&self) -> bool {
        self.elements == 0
    }

    /// Adds one element to `set`: `key` (and `data` for a map) encoded as
    /// the set was declared.
    pub fn add(&mut self, set: &str, key: &[u8], data: ElementData<'_>) {
        let fits = matches!(&self.open, Some((_, list, s))
            if s == set && self.buf.len() - list < MAX_LIST_BYTES);
        if !fits {
            self.close();
            self.open_set(set);
        }
        let elem = self.nest_start(NFTA_LIST_ELEM);
        let k = self.nest_start(NFTA_SET_ELEM_KEY);
        self.attr(NFTA_DATA_VALUE, key);
        self.nest_end(k);
        match data {
            ElementData::None => {}
            ElementData::Value(v) => {
                let d = self.nest_start(NFTA_SET_ELEM_DATA);
                self.attr(NFTA_DATA_VALUE, v);
                self.nest_end(d);
            }
            ElementData::Verdict { code, chain } => {
                let d = self.nest_start(NFTA_SET_ELEM_DATA);
                let v = self.nest_start(NFTA_DATA_VERDICT);
                self.attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
                if let Some(chain) = chain {
                    self.attr_str(NFTA_VERDICT_CHAIN, chain);
                }
                self.nest_end(v);
                self.nest_end(d);
            }
        }
        self.nest_end(elem);
        self.elements += 1;
    }

    /// Sends the batch in the calling thread's network namespace and waits
    /// for the kernel's verdict: all elements are added, or none (the
    /// kernel aborts the whole transaction on any error).
    pub fn commit(mut self) -> Result<(), NftError> {
        self.close();
        self.message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        let io = |what: &str, e: std::io::Error| {
            NftError::Rejected(format!("netlink element batch: {what}: {e}"))
        };
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(|e| io("socket", e))?;
        socket.bind_auto().map_err(|e| io("bind", e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| io("connect", e))?;
        // Errors carry only the failing message's header, and the kernel's
        // text; neither is fatal if refused.
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_ext_ack(true);
        // The whole batch goes in one sendmsg (one transaction); the
        // default send buffer is far smaller. SO_SNDBUFFORCE: we are root.
        force_sndbuf(&socket, self.buf.len() + 4096).map_err(|e| io("SO_SNDBUFFORCE", e))?;
        socket.send(&self.buf, 0).map_err(|e| io("send", e))?;
        let mut acks = 0;
        while acks < self.acked {
            let (data, _) = socket.recv_from_full().map_err(|e| io("receive", e))?;
            let mut at = 0;
            while at + 16 <= data.len() {
                let len = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes(data[at + 4..at + 6].try_into().unwrap());
                if len < 16 || at + len > data.len() {
                    return Err(NftError::Rejected(
                        "netlink element batch: malformed answer from the kernel".into(),
                    ));
                }
                if kind == NLMSG_ERROR && len >= 20 {
                    let code = i32::from_ne_bytes(data[at + 16..at + 20].try_into().unwrap());
                    if code != 0 {
                        let text = ext_ack_text(&data[at..at + len]);
                        return Err(NftError::Rejected(format!(
                            "netlink element batch: {}{}",
                            std::io::Error::from_raw_os_error(-code),
                            text.map(|t| format!(" ({t})")).unwrap_or_default()
                        )));
                    }
                    acks += 1;
                }
                at += (len + 3) & !3;
            }
        }
        Ok(())
    }

    fn open_set(&mut self, set: &str) {
        let start = self.buf.len();
        self.message(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM,
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
            self.family,
            0,
        );
        self.acked += 1;
        let table = self.table.clone();
        self.attr_str(NFTA_SET_ELEM_LIST_TABLE, &table);
        self.attr_str(NFTA_SET_ELEM_LIST_SET, set);
        let list = self.nest_start(NFTA_SET_ELEM_LIST_ELEMENTS);
        self.open = Some((start, list, set.to_owned()));
    }

    /// Ends the open NEWSETELEM message, if any.
    fn close(&mut self) {
        if let Some((start, list, _)) = self.open.take() {
            self.nest_end(list);
            let len = (self.buf.len() - start) as u32;
            self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        }
    }

    /// Appends a complete header-only message (or the start of one whose
    /// length [`close`] fixes): nlmsghdr + nfgenmsg.
    fn message(&mut self, kind: u16, flags: u16, family: u8, res_id: u16) {
        self.seq += 1;
        self.buf.extend_from_slice(&20u32.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
    }

    fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    fn attr_str(&mut self, kind: u16, value: &str) {
        let mut v = Vec::with_capacity(value.len() + 1);
        v.extend_from_slice(value.as_bytes());
        v.push(0);
        self.attr(kind, &v);
    }

    fn nest_start(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn nest_end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
}

fn force_sndbuf(socket: &Socket, bytes: usize) -> std::io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket fd and a pointer to a c_int that lives through
    // the call.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
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

/// The kernel's error text (NLMSGERR_ATTR_MSG) from an error message sent
/// with NETLINK_CAP_ACK, if any.
fn ext_ack_text(msg: &[u8]) -> Option<String> {
    // nlmsghdr (16) + error (4) + the failing message's nlmsghdr (16), then
    // the TLVs.
    let mut at = 36;
    while at + 4 <= msg.len() {
        let len = u16::from_ne_bytes([msg[at], msg[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([msg[at + 2], msg[at + 3]]);
        if len < 4 || at + len > msg.len() {
            return None;
        }
        if kind == 1 {
            let text = &msg[at + 4..at + len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        at += (len + 3) & !3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_per_set_and_per_64k() {
        let mut b = ElementBatch::new(FAMILY_INET, "t");
        for i in 0u32..5000 {
            b.add("big", &i.to_ne_bytes(), ElementData::None);
        }
        b.add("small", &[1, 2, 3, 4], ElementData::Value(&[9, 9, 9, 9]));
        b.close();
        // Walk the messages: every length is consistent and every element
        // list stays under the 16-bit attribute limit.
        let mut at = 0;
        let mut sets = Vec::new();
        while at < b.buf.len() {
            let len = u32::from_ne_bytes(b.buf[at..at + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(b.buf[at + 4..at + 6].try_into().unwrap());
            assert!(len >= 20 && at + len <= b.buf.len());
            if kind != NFNL_MSG_BATCH_BEGIN {
                // table attr "t\0" (8 bytes), then the set name.
                let set_at = at + 20 + 8;
                let name_len = u16::from_ne_bytes([b.buf[set_at], b.buf[set_at + 1]]) as usize;
                let name = &b.buf[set_at + 4..set_at + name_len - 1];
                sets.push(String::from_utf8(name.to_vec()).unwrap());
            }
            at += len;
        }
        assert_eq!(at, b.buf.len());
        assert!(sets.len() >= 3, "5000 elements need more than one message");
        assert_eq!(sets.last().map(String::as_str), Some("small"));
        assert!(sets[..sets.len() - 1].iter().all(|s| s == "big"));
        assert_eq!(b.len(), 5001);
        assert_eq!(b.acked as usize, sets.len());
    }
}
