//! nfnetlink framing for the nftables messages strait sends itself (see
//! `nft_batch`, `nft_copy` and `nft_read`): message and attribute builders,
//! a request/dump exchange on a NETLINK_NETFILTER socket kept open per
//! thread, an attribute walker, and the rule comment's userdata. Rules are
//! compiled by the `nft` binary only.

use crate::nft::NftError;
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;

/// The nftables message type `msg` (`NFT_MSG_*`) as nfnetlink numbers it.
pub(crate) fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// A buffer of netlink messages being built.
#[derive(Default)]
pub(crate) struct Builder {
    pub buf: Vec<u8>,
    seq: u32,
}

impl Builder {
    /// Starts a message: nlmsghdr + nfgenmsg; its length is fixed by
    /// [`Builder::finish`] (header-only messages are complete as they are).
    pub fn message(&mut self, kind: u16, flags: u16, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.seq += 1;
        self.buf.extend_from_slice(&20u32.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    /// Starts a dump request for `NFT_MSG_GET*` `msg`; the caller adds its
    /// filter attributes and calls [`Builder::finish`].
    pub fn dump_request(&mut self, msg: u16, family: u8) -> usize {
        self.message(nft_type(msg), NLM_F_REQUEST | NLM_F_DUMP, family, 0)
    }

    /// Fixes the length of the message that starts at `start`.
    pub fn finish(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    pub fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(&mut self, kind: u16, value: &str) {
        let len = 4 + value.len() + 1;
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// An attribute as [`raw_attrs`] found it (header, flags and nesting
    /// included), copied as it is.
    pub fn raw_attr(&mut self, whole: &[u8]) {
        self.buf.extend_from_slice(whole);
        self.pad();
    }

    /// Zeros up to the next 4-byte boundary (netlink's alignment).
    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    pub fn nest_start(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    pub fn nest_end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

thread_local! {
    /// This thread's socket, with the inode of the namespace it was opened
    /// in (a thread may enter another namespace between two uses).
    static SOCKET: std::cell::RefCell<Option<(u64, Socket)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with a socket in the calling thread's network namespace, kept
/// open for the next call when `f` says the exchange ended cleanly (every
/// answer read). Why not a socket per call: closing a NETLINK_NETFILTER
/// socket waits for nf_tables to finish releasing what the last commit
/// deleted, an RCU grace period: 10-25 ms on this machine, for every
/// transaction that deletes an element, a rule or a table.
pub(crate) fn with_socket<T>(
    what: &str,
    f: impl FnOnce(&Socket) -> Result<(T, bool), NftError>,
) -> Result<T, NftError> {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .map_err(|e| NftError::Rejected(format!("{what}: reading the namespace: {e}")))?;
    let cached = SOCKET
        .with(|c| c.borrow_mut().take())
        .filter(|(at, _)| *at == ns);
    let socket = match cached {
        Some((_, s)) => s,
        None => socket(what)?,
    };
    let (out, clean) = f(&socket)?;
    if clean {
        SOCKET.with(|c| *c.borrow_mut() = Some((ns, socket)));
    }
    Ok(out)
}

/// A new socket in the calling thread's network namespace.
fn socket(what: &str) -> Result<Socket, NftError> {
    let err = |step: &str, e: std::io::Error| NftError::Rejected(format!("{what}: {step}: {e}"));
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(|e| err("socket", e))?;
    socket.bind_auto().map_err(|e| err("bind", e))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| err("connect", e))?;
    // Errors carry only the failing message's header, and the kernel's
    // text; neither is fatal if refused.
    let _ = socket.set_cap_ack(true);
    let _ = socket.set_ext_ack(true);
    Ok(socket)
}

/// Reads answers until `done` says so: calls `each(type, message)` for
/// every message that is not an ACK; an error answer ends with
/// `Err(errno, kernel's text)`. `done` sees the number of ACKs so far and
/// whether NLMSG_DONE arrived.
pub(crate) fn receive(
    socket: &Socket,
    what: &str,
    mut each: impl FnMut(u16, &[u8]),
    done: impl Fn(u32, bool) -> bool,
) -> Result<Result<(), (i32, Option<String>)>, NftError> {
    let mut acks = 0;
    let mut finished = false;
    while !done(acks, finished) {
        let (data, _) = socket
            .recv_from_full()
            .map_err(|e| NftError::Rejected(format!("{what}: receive: {e}")))?;
        let mut at = 0;
        while at + 16 <= data.len() {
            let len = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(data[at + 4..at + 6].try_into().unwrap());
            if len < 16 || at + len > data.len() {
                return Err(NftError::Rejected(format!(
                    "{what}: malformed answer from the kernel"
                )));
            }
            let msg = &data[at..at + len];
            match kind {
                NLMSG_DONE => finished = true,
                NLMSG_ERROR if len >= 20 => {
                    let code = i32::from_ne_bytes(msg[16..20].try_into().unwrap());
                    if code != 0 {
                        return Ok(Err((-code, ext_ack_text(msg))));
                    }
                    acks += 1;
                }
                _ => each(kind, msg),
            }
            at += (len + 3) & !3;
        }
    }
    Ok(Ok(()))
}

/// Sends a dump request (one message built by `build`) and collects the
/// answers' attribute areas (after nlmsghdr and nfgenmsg). `Ok(None)`:
/// the kernel said ENOENT (no such table, chain or set).
pub(crate) fn dump(
    what: &str,
    build: impl FnOnce(&mut Builder),
) -> Result<Option<Vec<Vec<u8>>>, NftError> {
    let mut b = Builder::default();
    build(&mut b);
    let (out, answer) = with_socket(what, |socket| {
        socket
            .send(&b.buf, 0)
            .map_err(|e| NftError::Rejected(format!("{what}: send: {e}")))?;
        let mut out = Vec::new();
        let answer = receive(
            socket,
            what,
            |_, msg| {
                if msg.len() > 20 {
                    out.push(msg[20..].to_vec());
                }
            },
            |_, finished| finished,
        )?;
        // A refused dump is answered with its error alone.
        Ok(((out, answer), true))
    })?;
    match answer {
        Ok(()) => Ok(Some(out)),
        Err((libc::ENOENT, _)) => Ok(None),
        Err((errno, text)) => Err(refused(what, errno, text)),
    }
}

/// The error for an exchange the kernel refused with `errno` (and its
/// text, from [`receive`]).
pub(crate) fn refused(what: &str, errno: i32, text: Option<String>) -> NftError {
    NftError::Rejected(format!(
        "{what}: {}{}",
        std::io::Error::from_raw_os_error(errno),
        text.map(|t| format!(" ({t})")).unwrap_or_default()
    ))
}

/// libnftnl's rule userdata TLV holding `comment "..."`.
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;

/// A rule's userdata holding `comment` as libnftnl stores it: type, length,
/// the text with its NUL (cut to fit the one-byte length).
pub(crate) fn comment_udata(comment: &str) -> Vec<u8> {
    let text = &comment.as_bytes()[..comment.len().min(254)];
    let mut udata = vec![NFTNL_UDATA_RULE_COMMENT, (text.len() + 1) as u8];
    udata.extend_from_slice(text);
    udata.push(0);
    udata
}

/// The comment in a rule's userdata: TLVs of one type byte and one length
/// byte; the comment's value ends with a NUL.
pub(crate) fn udata_comment(mut buf: &[u8]) -> Option<String> {
    while buf.len() >= 2 {
        let (kind, len) = (buf[0], buf[1] as usize);
        let value = buf.get(2..2 + len)?;
        if kind == NFTNL_UDATA_RULE_COMMENT {
            return Some(text(value));
        }
        buf = &buf[2 + len..];
    }
    None
}

/// The attributes in `buf`: (type without flags, payload).
pub(crate) fn attrs(buf: &[u8]) -> Vec<(u16, &[u8])> {
    raw_attrs(buf)
        .into_iter()
        .map(|(kind, whole)| (kind, &whole[4..]))
        .collect()
}

/// The attributes in `buf`: (type without flags, the whole attribute with
/// its header and flags, without padding).
pub(crate) fn raw_attrs(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= buf.len() {
        let len = u16::from_ne_bytes([buf[at], buf[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([buf[at + 2], buf[at + 3]]) & 0x3fff;
        if len < 4 || at + len > buf.len() {
            break;
        }
        out.push((kind, &buf[at..at + len]));
        at += (len + 3) & !3;
    }
    out
}

/// A NUL-terminated string attribute's text.
pub(crate) fn text(v: &[u8]) -> String {
    let s = v.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(s).into_owned()
}

/// The kernel's error text (NLMSGERR_ATTR_MSG) from an error message sent
/// with NETLINK_CAP_ACK, if any, with the refused message's `NFT_MSG_*`
/// type and the offset of the attribute at fault (NLMSGERR_ATTR_OFFS),
/// so a refused batch names what it refused.
fn ext_ack_text(msg: &[u8]) -> Option<String> {
    // nlmsghdr (16) + error (4) + the failing message's nlmsghdr (16), then
    // the TLVs.
    let kind = u16::from_ne_bytes(msg.get(24..26)?.try_into().ok()?);
    let tlvs = attrs(msg.get(36..)?);
    let text = tlvs
        .iter()
        .find(|(t, _)| *t == 1)
        .map(|(_, v)| text(v))
        .unwrap_or_else(|| "no reason given".into());
    let offset = tlvs
        .iter()
        .find(|(t, v)| *t == 2 && v.len() == 4)
        .map(|(_, v)| u32::from_ne_bytes([v[0], v[1], v[2], v[3]]));
    Some(match offset {
        Some(o) => format!(
            "{text}; message type {}, attribute at byte {o}",
            kind & 0xff
        ),
        None => format!("{text}; message type {}", kind & 0xff),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comment_is_found_among_other_userdata() {
        let mut buf = vec![3u8, 2, 9, 9];
        buf.extend_from_slice(&comment_udata("strait:"));
        assert_eq!(udata_comment(&buf).as_deref(), Some("strait:"));
        assert_eq!(udata_comment(&[0, 200, 1]), None, "a length past the end");
    }
}
