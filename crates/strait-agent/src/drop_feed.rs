//! Republishes the policy drop log for `strait flows`. Only one socket can
//! bind an nfnetlink_log group, and the agent's drop log
//! (`policy_log`) holds group 90, so the agent passes each logged packet
//! on, as one JSON line, to every client of a Unix socket beside its
//! published state: `<state dir>/drops.sock` (default
//! `/run/strait/state/drops.sock`, mode 0600: root only, like the log).
//! A client that does not keep up loses its connection, never blocks the
//! agent.

use crate::policy_log::Logged;
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The socket's file name in the state directory.
pub const SOCKET: &str = "drops.sock";

/// One dropped packet as the drop log saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropEvent {
    /// The drop chain's log prefix (`strait-policy <chain>`): which
    /// policies and direction (`strait_plan::policy::drop_reasons`).
    pub prefix: String,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub proto: u8,
    /// Destination port for TCP, UDP and SCTP.
    pub dport: Option<u16>,
}

impl From<&Logged> for DropEvent {
    fn from(l: &Logged) -> Self {
        DropEvent {
            prefix: l.prefix.clone(),
            src: l.src,
            dst: l.dst,
            proto: l.proto,
            dport: l.dport,
        }
    }
}

/// The socket path in a state directory.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET)
}

/// The connected clients.
#[derive(Default)]
struct Feed {
    clients: Mutex<Vec<UnixStream>>,
}

static FEED: OnceLock<Feed> = OnceLock::new();

/// Listens on `path` (replacing a socket left by an earlier agent) and
/// accepts clients on a thread of its own.
pub fn listen(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let feed = FEED.get_or_init(Feed::default);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // A slow client is dropped after this, not waited for.
            if stream
                .set_write_timeout(Some(Duration::from_millis(200)))
                .is_ok()
            {
                feed.clients
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(stream);
            }
        }
    });
    Ok(())
}

/// Sends one logged packet to every client (nothing when [`listen`] was
/// not called or nobody is connected).
pub fn publish(l: &Logged) {
    let Some(feed) = FEED.get() else { return };
    let mut clients = feed.clients.lock().unwrap_or_else(|e| e.into_inner());
    if clients.is_empty() {
        return;
    }
    let Ok(mut line) = serde_json::to_string(&DropEvent::from(l)) else {
        return;
    };
    line.push('\n');
    clients.retain_mut(|c| c.write_all(line.as_bytes()).is_ok());
}

/// Connects to the feed and calls `on` for each event until it returns
/// false or the agent closes the connection.
pub fn follow(path: &Path, mut on: impl FnMut(DropEvent) -> bool) -> Result<(), String> {
    let stream =
        UnixStream::connect(path).map_err(|e| format!("drop feed {}: {e}", path.display()))?;
    for line in BufReader::new(stream).lines() {
        let line = line.map_err(|e| format!("drop feed {}: {e}", path.display()))?;
        match serde_json::from_str::<DropEvent>(&line) {
            Ok(ev) => {
                if !on(ev) {
                    return Ok(());
                }
            }
            Err(e) => return Err(format!("drop feed: bad line {line:?}: {e}")),
        }
    }
    Err(format!("drop feed {}: the agent closed it", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_get_every_event_and_a_gone_client_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(dir.path());
        listen(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let _ = follow(&p, |ev| tx.send(ev).is_ok());
        });
        // A second client that goes away at once.
        drop(UnixStream::connect(&path).unwrap());
        let logged = Logged {
            prefix: "strait-policy in-drop-1".into(),
            src: Ipv4Addr::new(10, 42, 1, 3),
            dst: Ipv4Addr::new(10, 42, 2, 5),
            proto: 6,
            dport: Some(81),
        };
        // The clients connect in the background: publish until one hears.
        let mut got = None;
        for _ in 0..50 {
            publish(&logged);
            if let Ok(ev) = rx.recv_timeout(Duration::from_millis(100)) {
                got = Some(ev);
                break;
            }
        }
        assert_eq!(got, Some(DropEvent::from(&logged)));
        // The closed client goes at the first write after it is accepted.
        let mut clients = 0;
        for _ in 0..50 {
            publish(&logged);
            clients = FEED.get().unwrap().clients.lock().unwrap().len();
            if clients == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(clients, 1, "the closed client is dropped");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn follow_without_an_agent_says_where() {
        let e = follow(Path::new("/nonexistent/drops.sock"), |_| true).unwrap_err();
        assert!(e.contains("/nonexistent/drops.sock"), "{e}");
    }
}
