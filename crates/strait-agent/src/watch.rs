//! Wakes the agent when its source directory or config file changes
//! (inotify), instead of stat-ing every file on a timer. The loop still
//! syncs at least once per interval, so a missed event only delays a change
//! by that much, never loses it.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

pub struct Watch {
    fd: OwnedFd,
}

impl Watch {
    /// Watches each directory for files created, written, moved or deleted.
    pub fn new(dirs: &[&Path]) -> std::io::Result<Self> {
        // SAFETY: inotify_init1 has no preconditions; the fd is owned below.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mask = libc::IN_CREATE
            | libc::IN_CLOSE_WRITE
            | libc::IN_MOVED_TO
            | libc::IN_MOVED_FROM
            | libc::IN_DELETE
            | libc::IN_ATTRIB;
        for dir in dirs {
            let c = CString::new(dir.as_os_str().as_encoded_bytes())
                .map_err(|_| std::io::Error::other("path with a NUL byte"))?;
            // SAFETY: fd is a valid inotify descriptor, c a valid C string.
            if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(Watch { fd })
    }

    /// Waits up to `timeout` for events; true if any arrived (all pending
    /// events are drained).
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n <= 0 {
            return false;
        }
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: buf is writable for its length; the fd is non-blocking.
            let r = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                break;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_new_file_and_times_out_when_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let w = Watch::new(&[dir.path()]).unwrap();
        assert!(!w.wait(Duration::from_millis(20)));
        std::fs::write(dir.path().join("a.json"), "{}").unwrap();
        assert!(w.wait(Duration::from_secs(2)));
        assert!(!w.wait(Duration::from_millis(20)), "events not drained");
    }
}
