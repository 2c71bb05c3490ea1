//! New TCP connections per second to one Service's ClusterIP, from a node
//! process (the OUTPUT hook path: nat-output DNAT, then the filter chains),
//! with the endpoints as local addresses of the same namespace: the per
//! connection cost of the table is what differs between a namespace holding
//! 10,000 Services and one holding only the measured Service.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::time::{Duration, Instant};
use strait_lab::{run_in_netns, Netns};

/// Gives `ns` what a node needs for the measurement: an underlay device
/// holding `endpoints` as local addresses, a route for the service CIDR,
/// TIME_WAIT reuse (tens of thousands of short connections), and a listener
/// on `port` that accepts and drops every connection.
pub fn prepare(ns: &Netns, endpoints: &[Ipv4Addr], port: u16) -> Result<(), String> {
    let mut cmds: Vec<Vec<String>> = vec![
        vec!["ip", "link", "add", "eth0", "type", "bridge"],
        vec!["ip", "link", "set", "eth0", "up"],
        vec!["ip", "addr", "add", "10.0.0.1/16", "dev", "eth0"],
        vec!["ip", "route", "add", "10.43.0.0/16", "dev", "eth0"],
        vec!["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"],
        vec!["sysctl", "-qw", "net.ipv4.ip_local_port_range=10000 65000"],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(str::to_owned).collect())
    .collect();
    for ip in endpoints {
        cmds.push(
            ["ip", "addr", "add", &format!("{ip}/32"), "dev", "eth0"]
                .map(str::to_owned)
                .to_vec(),
        );
    }
    for argv in &cmds {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        ns.exec_ok(&argv).map_err(|e| format!("{argv:?}: {e}"))?;
    }
    let listener = run_in_netns(&ns.path(), move || {
        TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("listen on port {port}: {e}"))?;
    // The socket lives in the namespace; the thread ends with the process.
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    Ok(())
}

/// One window's result: connections per second of wall time, and per
/// second of the client thread's CPU time (user + system, which includes
/// the loopback handshake the kernel runs in the connecting thread): on a
/// machine shared with other work the second is the steadier measure.
#[derive(Clone, Copy)]
pub struct Rate {
    pub wall: f64,
    pub cpu: f64,
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Connections to `target` from `ns` during `window`.
pub fn rate(ns: &Netns, target: SocketAddrV4, window: Duration) -> Result<Rate, String> {
    let name = ns.name.clone();
    run_in_netns(&ns.path(), move || -> Result<Rate, String> {
        let start = Instant::now();
        let cpu_start = thread_cpu();
        let mut done = 0u64;
        while start.elapsed() < window {
            let conn = TcpStream::connect_timeout(&SocketAddr::V4(target), Duration::from_secs(3))
                .map_err(|e| format!("connect {target} in {name}: {e}"))?;
            reset_on_close(&conn).map_err(|e| format!("SO_LINGER: {e}"))?;
            done += 1;
        }
        let cpu = (thread_cpu() - cpu_start).as_secs_f64().max(1e-9);
        Ok(Rate {
            wall: done as f64 / start.elapsed().as_secs_f64(),
            cpu: done as f64 / cpu,
        })
    })
    .map_err(|e| e.to_string())?
}

/// Closing with a reset (SO_LINGER 0) leaves no TIME_WAIT on either side,
/// so tens of thousands of connections from one address never meet an old
/// socket of the same ports.
fn reset_on_close(conn: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor, and a pointer to a linger struct
    // with its exact size, as setsockopt(2) requires for SO_LINGER.
    let rc = unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// What [`compare`] measured: the median rate of each side, and the
/// median of the per-round ratios a/b (each round's two windows are
/// back to back, so a slow stretch of the machine hits both).
pub struct Comparison {
    pub a: Rate,
    pub b: Rate,
    pub cpu_ratio: f64,
    pub wall_ratio: f64,
    /// Every round's CPU-time ratio, in round order.
    pub cpu_ratios: Vec<f64>,
}

/// Alternating windows on `a` and `b`, in alternating order (so load from
/// elsewhere on the machine hits both alike).
pub fn compare(
    a: &Netns,
    b: &Netns,
    target: SocketAddrV4,
    rounds: usize,
    window: Duration,
) -> Result<Comparison, String> {
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Which goes first alternates too.
        if round % 2 == 0 {
            ra.push(rate(a, target, window)?);
            rb.push(rate(b, target, window)?);
        } else {
            rb.push(rate(b, target, window)?);
            ra.push(rate(a, target, window)?);
        }
    }
    let cpu_ratios: Vec<f64> = ra.iter().zip(&rb).map(|(x, y)| x.cpu / y.cpu).collect();
    let wall_ratios: Vec<f64> = ra.iter().zip(&rb).map(|(x, y)| x.wall / y.wall).collect();
    Ok(Comparison {
        a: median(&ra),
        b: median(&rb),
        cpu_ratio: mid(cpu_ratios.clone()),
        wall_ratio: mid(wall_ratios),
        cpu_ratios,
    })
}

fn mid(mut x: Vec<f64>) -> f64 {
    x.sort_by(|p, q| p.total_cmp(q));
    x[x.len() / 2]
}

fn median(v: &[Rate]) -> Rate {
    Rate {
        wall: mid(v.iter().map(|r| r.wall).collect()),
        cpu: mid(v.iter().map(|r| r.cpu).collect()),
    }
}
