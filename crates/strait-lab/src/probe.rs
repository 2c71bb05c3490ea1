//! Probes: can this namespace reach that address and port, and who answers?
//! A probe runs on a fresh thread that has entered the source namespace, so
//! its sockets (and the `ping` it may start) live there; the caller's thread
//! never moves. Every probe returns within its timeout (plus a little).
//!
//! - TCP: connect, then read the echo server's line.
//! - UDP: send `probe\n` on a connected socket and wait for one reply line;
//!   an ICMP port unreachable comes back as [`ProbeResult::Refused`].
//! - SCTP: like TCP over an SCTP one-to-one socket (IPv4).
//! - ICMP: `ping -c1 -W <timeout>` inside the namespace; the answer is the
//!   reply line (`64 bytes from ...`).

use crate::echo::{is_no_protocol, sctp_socket, sockaddr_v4, wait_for};
use crate::netns::run_in_netns;
use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
    Icmp,
}

impl FromStr for Proto {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Ok(Proto::Sctp),
            "icmp" => Ok(Proto::Icmp),
            _ => Err(format!("{s:?} is not a protocol (tcp, udp, sctp, icmp)")),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
            Proto::Icmp => "icmp",
        })
    }
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// The first line of the answer, without its newline.
    Answered(String),
    /// TCP reset, ICMP port unreachable, SCTP ABORT.
    Refused,
    /// Nothing came back in time.
    TimedOut,
    /// The network said no: no route, host or network unreachable, filtered.
    Unreachable(String),
}

impl ProbeResult {
    pub fn answer(&self) -> Option<&str> {
        match self {
            ProbeResult::Answered(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for ProbeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeResult::Answered(s) => write!(f, "answered: {s}"),
            ProbeResult::Refused => f.write_str("refused"),
            ProbeResult::TimedOut => f.write_str("timed out"),
            ProbeResult::Unreachable(s) => write!(f, "unreachable: {s}"),
        }
    }
}

/// Probes `to:port` over `proto` from the network namespace at `from`
/// (`/run/netns/NAME` or `/proc/PID/ns/net`); `port` is ignored for ICMP.
///
/// `Err` only when the probe could not be made at all (the namespace cannot
/// be entered, the kernel lacks SCTP, `ping` is missing), so a setup mistake
/// is never mistaken for a blocked path.
pub fn probe(
    from: &Path,
    to: IpAddr,
    port: u16,
    proto: Proto,
    timeout: Duration,
) -> io::Result<ProbeResult> {
    let (tx, rx) = mpsc::channel();
    let path = from.to_owned();
    // The namespace thread reports through the channel so a stuck probe
    // cannot hold the caller past the deadline.
    std::thread::spawn(move || {
        let r = run_in_netns(&path, move || {
            let deadline = Instant::now() + timeout;
            let target = SocketAddr::new(to, port);
            match proto {
                Proto::Tcp => Ok(tcp(target, deadline)),
                Proto::Udp => udp(target, deadline),
                Proto::Sctp => sctp(target, deadline),
                Proto::Icmp => icmp(to, timeout),
            }
        });
        let _ = tx.send(r.and_then(|r| r));
    });
    match rx.recv_timeout(timeout + Duration::from_secs(2)) {
        Ok(r) => r,
        Err(_) => Ok(ProbeResult::TimedOut),
    }
}

fn left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

/// What a failed connect, send or receive means.
fn classify(e: &io::Error) -> ProbeResult {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ProbeResult::Refused,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ProbeResult::TimedOut,
        _ => ProbeResult::Unreachable(e.to_string()),
    }
}

/// Reads the first line of the answer from a connected stream socket.
fn read_line(mut stream: TcpStream, deadline: Instant) -> ProbeResult {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let Some(t) = left(deadline) else {
            return ProbeResult::TimedOut;
        };
        if stream.set_read_timeout(Some(t)).is_err() {
            return ProbeResult::TimedOut;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.contains(&b'\n') {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if got.is_empty() => return classify(&e),
            Err(_) => break,
        }
    }
    if got.is_empty() {
        return ProbeResult::Unreachable("connected, but the peer closed without answering".into());
    }
    let text = String::from_utf8_lossy(&got);
    ProbeResult::Answered(text.lines().next().unwrap_or_default().to_owned())
}

fn tcp(to: SocketAddr, deadline: Instant) -> ProbeResult {
    let Some(t) = left(deadline) else {
        return ProbeResult::TimedOut;
    };
    match TcpStream::connect_timeout(&to, t) {
        Ok(s) => read_line(s, deadline),
        Err(e) => classify(&e),
    }
}

fn udp(to: SocketAddr, deadline: Instant) -> io::Result<ProbeResult> {
    let local = match to {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let sock = UdpSocket::bind(local)?;
    if let Err(e) = sock.connect(to) {
        return Ok(classify(&e));
    }
    if let Err(e) = sock.send(b"probe\n") {
        return Ok(classify(&e));
    }
    let mut buf = [0u8; 65536];
    loop {
        let Some(t) = left(deadline) else {
            return Ok(ProbeResult::TimedOut);
        };
        sock.set_read_timeout(Some(t))?;
        match sock.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                let line = text.lines().next().unwrap_or_default().to_owned();
                return Ok(ProbeResult::Answered(line));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Ok(classify(&e)),
        }
    }
}

fn sctp(to: SocketAddr, deadline: Instant) -> io::Result<ProbeResult> {
    let SocketAddr::V4(v4) = to else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "SCTP probes are IPv4 only",
        ));
    };
    let fd = sctp_socket(libc::AF_INET).map_err(|e| {
        if is_no_protocol(&e) {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("SCTP is not supported by this kernel: {e}"),
            )
        } else {
            e
        }
    })?;
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let addr = sockaddr_v4(*v4.ip(), v4.port());
    // SAFETY: addr is a valid sockaddr_in and the length is its size.
    let rc = unsafe {
        libc::connect(
            raw,
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Ok(classify(&e));
        }
        let Some(t) = left(deadline) else {
            return Ok(ProbeResult::TimedOut);
        };
        if !wait_for(raw, libc::POLLOUT, t) {
            return Ok(ProbeResult::TimedOut);
        }
        let mut err: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: err and len are live and sized for SO_ERROR.
        unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                &mut err as *mut _ as *mut libc::c_void,
                &mut len,
            );
        }
        if err != 0 {
            return Ok(classify(&io::Error::from_raw_os_error(err)));
        }
    }
    // A connected one-to-one SCTP socket reads like a TCP stream.
    let stream = TcpStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(read_line(stream, deadline))
}

fn icmp(to: IpAddr, timeout: Duration) -> io::Result<ProbeResult> {
    let secs = format!("{:.3}", timeout.as_secs_f64().max(0.001));
    let mut child = Command::new("ping")
        .args(["-c1", "-n", "-W", &secs, &to.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("running ping: {e}")))?;
    // ping honours -W; this is a backstop so a stuck ping cannot hang us.
    let deadline = Instant::now() + timeout + Duration::from_secs(1);
    loop {
        if child.try_wait()?.is_some() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(l) = stdout.lines().find(|l| l.contains("bytes from")) {
        if !l.contains("nreachable") {
            return Ok(ProbeResult::Answered(l.trim().to_owned()));
        }
    }
    let complaint = stdout
        .lines()
        .chain(stderr.lines())
        .find(|l| {
            l.contains("nreachable")
                || l.contains("rohibited")
                || l.contains("filtered")
                || l.contains("connect:")
                || l.contains("sendmsg")
        })
        .map(|l| l.trim().to_owned());
    match complaint {
        Some(c) => Ok(ProbeResult::Unreachable(c)),
        None if out.status.code() == Some(2) && !stderr.trim().is_empty() => {
            Ok(ProbeResult::Unreachable(stderr.trim().to_owned()))
        }
        None => Ok(ProbeResult::TimedOut),
    }
}
