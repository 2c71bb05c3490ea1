//! The echo server every lab pod and external host runs. It answers every
//! TCP connection, UDP datagram and SCTP association with exactly one line,
//! `<label> <client-ip>:<client-port>\n`, so a probe learns who answered and
//! which source address the packet arrived with (masquerade shows here).
//! Labels: pods `<namespace>/<pod>`, external hosts `host/<name>`.
//!
//! Sockets listen on `[::]` (both IPv4 and IPv6; IPv4 clients are shown as
//! IPv4) or on `0.0.0.0` where IPv6 is missing; SCTP listens on `0.0.0.0`.
//! SCTP is served only if the kernel has it: when `socket()` fails with
//! EPROTONOSUPPORT the SCTP ports are skipped with a message on stderr.

use crate::netns::run_in_netns;
use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often serving threads look at the stop flag.
const TICK: Duration = Duration::from_millis(100);

/// The line the server answers `peer` with.
pub fn reply_line(label: &str, peer: SocketAddr) -> String {
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    format!("{label} {peer}\n")
}

/// A running echo server; stops (and joins its threads) when dropped.
#[derive(Debug)]
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// The SCTP ports were asked for but the kernel has no SCTP.
    pub sctp_skipped: bool,
}

/// Sockets bound in some namespace, not served yet.
struct Bound {
    tcp: Vec<TcpListener>,
    udp: Vec<UdpSocket>,
    /// SCTP one-to-one listeners, driven through `TcpListener` (accept,
    /// read, write and shutdown are the same calls on a stream socket).
    sctp: Vec<TcpListener>,
    sctp_skipped: bool,
}

impl EchoServer {
    /// Binds every port in the calling thread's namespace and serves them on
    /// background threads. Fails if any port cannot be bound.
    pub fn start(label: &str, tcp: &[u16], udp: &[u16], sctp: &[u16]) -> io::Result<EchoServer> {
        let bound = bind_all(label, tcp, udp, sctp)?;
        Ok(Self::serve_bound(label, bound))
    }

    /// Like [`EchoServer::start`], with the sockets opened inside the network
    /// namespace at `netns` (the caller's thread does not move).
    pub fn start_in(
        netns: &Path,
        label: &str,
        tcp: &[u16],
        udp: &[u16],
        sctp: &[u16],
    ) -> io::Result<EchoServer> {
        let (l, t, u, s) = (label.to_owned(), tcp.to_vec(), udp.to_vec(), sctp.to_vec());
        let bound = run_in_netns(netns, move || bind_all(&l, &t, &u, &s))??;
        Ok(Self::serve_bound(label, bound))
    }

    fn serve_bound(label: &str, bound: Bound) -> EchoServer {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for l in bound.tcp.into_iter().chain(bound.sctp) {
            let (label, stop) = (label.to_owned(), stop.clone());
            threads.push(std::thread::spawn(move || serve_stream(&label, l, &stop)));
        }
        for s in bound.udp {
            let (label, stop) = (label.to_owned(), stop.clone());
            threads.push(std::thread::spawn(move || serve_udp(&label, s, &stop)));
        }
        EchoServer {
            stop,
            threads,
            sctp_skipped: bound.sctp_skipped,
        }
    }

    /// Stops serving and closes every socket.
    pub fn stop(self) {}
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Serves forever in the calling thread's namespace (the `echo` command of
/// lab pods and hosts). Returns only if a port cannot be bound.
pub fn serve(label: &str, tcp: &[u16], udp: &[u16], sctp: &[u16]) -> io::Result<Infallible> {
    let _server = EchoServer::start(label, tcp, udp, sctp)?;
    loop {
        std::thread::park();
    }
}

/// Whether this kernel (in the caller's namespace) can open SCTP sockets.
pub fn sctp_supported() -> bool {
    sctp_socket(libc::AF_INET).is_ok()
}

/// A new SCTP one-to-one (SOCK_STREAM) socket of `family`.
pub(crate) fn sctp_socket(family: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket() has no memory arguments; a non-negative result is a
    // new descriptor that we own.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            libc::IPPROTO_SCTP,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether an error means "this protocol is not in the kernel".
pub(crate) fn is_no_protocol(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPROTONOSUPPORT) | Some(libc::ESOCKTNOSUPPORT) | Some(libc::EAFNOSUPPORT)
    )
}

fn bind_all(label: &str, tcp: &[u16], udp: &[u16], sctp: &[u16]) -> io::Result<Bound> {
    fn ctx(what: &'static str, port: u16) -> impl FnOnce(io::Error) -> io::Error {
        move |e| io::Error::new(e.kind(), format!("echo: binding {what} port {port}: {e}"))
    }
    let mut b = Bound {
        tcp: Vec::new(),
        udp: Vec::new(),
        sctp: Vec::new(),
        sctp_skipped: false,
    };
    for &p in tcp {
        let l = any_then_v4(p, TcpListener::bind).map_err(ctx("TCP", p))?;
        b.tcp.push(l);
    }
    for &p in udp {
        let s = any_then_v4(p, UdpSocket::bind).map_err(ctx("UDP", p))?;
        b.udp.push(s);
    }
    for &p in sctp {
        match sctp_listener(p) {
            Ok(l) => b.sctp.push(l),
            Err(e) if is_no_protocol(&e) => {
                eprintln!(
                    "echo {label}: SCTP is not supported by this kernel ({e}); not serving SCTP ports {sctp:?}"
                );
                b.sctp_skipped = true;
                break;
            }
            Err(e) => return Err(ctx("SCTP", p)(e)),
        }
    }
    Ok(b)
}

/// Binds `[::]:port` (dual-stack), or `0.0.0.0:port` where IPv6 is missing.
fn any_then_v4<T>(port: u16, bind: impl Fn(SocketAddr) -> io::Result<T>) -> io::Result<T> {
    match bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)) {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
            ) =>
        {
            bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
        }
        other => other,
    }
}

fn sctp_listener(port: u16) -> io::Result<TcpListener> {
    let fd = sctp_socket(libc::AF_INET)?;
    let one: libc::c_int = 1;
    // SAFETY: the option value points at a live c_int of the given size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let addr = sockaddr_v4(Ipv4Addr::UNSPECIFIED, port);
    // SAFETY: addr is a valid sockaddr_in and the length is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: listen() on a descriptor we own.
    if unsafe { libc::listen(fd.as_raw_fd(), 128) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpListener::from(fd))
}

pub(crate) fn sockaddr_v4(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Waits up to `timeout` for `fd` to be readable (or in error).
pub(crate) fn wait_readable(fd: RawFd, timeout: Duration) -> bool {
    wait_for(fd, libc::POLLIN, timeout)
}

/// Waits up to `timeout` for `events` on `fd`; true if any came (or an
/// error or hang-up, which the next call on the socket reports).
pub(crate) fn wait_for(fd: RawFd, events: libc::c_short, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    rc > 0
}

fn serve_stream(label: &str, listener: TcpListener, stop: &AtomicBool) {
    let _ = listener.set_nonblocking(true);
    while !stop.load(Ordering::SeqCst) {
        if !wait_readable(listener.as_raw_fd(), TICK) {
            continue;
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                let line = reply_line(label, peer);
                std::thread::spawn(move || answer_stream(stream, &line));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Writes the line and closes; what the client sent is read and dropped
/// (briefly), so closing does not turn into a reset that loses the line.
fn answer_stream(mut stream: TcpStream, line: &str) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(line.as_bytes()).is_err() {
        return;
    }
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < 65536 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}

fn serve_udp(label: &str, socket: UdpSocket, stop: &AtomicBool) {
    let _ = socket.set_nonblocking(true);
    let mut buf = [0u8; 65536];
    while !stop.load(Ordering::SeqCst) {
        if !wait_readable(socket.as_raw_fd(), TICK) {
            continue;
        }
        if let Ok((_, peer)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(reply_line(label, peer).as_bytes(), peer);
        }
    }
}
