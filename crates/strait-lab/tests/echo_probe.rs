//! The echo server and the probes in a bare namespace (root): answers name
//! the label and the client, closed ports are refused, silence times out
//! within the timeout, missing routes are unreachable, setup mistakes are
//! errors, and SCTP is served exactly when the kernel has it.

use std::net::{IpAddr, UdpSocket};
use std::time::{Duration, Instant};
use strait_lab::echo::{reply_line, sctp_supported};
use strait_lab::{probe, run_in_netns, EchoServer, Netns, ProbeResult, Proto};

const T: Duration = Duration::from_secs(2);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn echo_answers_tcp_and_udp_with_label_and_client() {
    let ns = Netns::unique("stlabecho").unwrap();
    let echo = EchoServer::start_in(&ns.path(), "default/web", &[8080], &[8080, 53], &[]).unwrap();
    for (to, proto, port) in [
        ("127.0.0.1", Proto::Tcp, 8080),
        ("127.0.0.1", Proto::Udp, 8080),
        ("127.0.0.1", Proto::Udp, 53),
        ("::1", Proto::Tcp, 8080),
        ("::1", Proto::Udp, 8080),
    ] {
        let r = probe(&ns.path(), ip(to), port, proto, T).unwrap();
        let line = r
            .answer()
            .unwrap_or_else(|| panic!("{proto} {to}:{port}: {r}"));
        let client = if to.contains(':') {
            format!("[{to}]:")
        } else {
            format!("{to}:")
        };
        assert!(line.starts_with(&format!("default/web {client}")), "{line}");
    }
    for proto in [Proto::Tcp, Proto::Udp] {
        let r = probe(&ns.path(), ip("127.0.0.1"), 9999, proto, T).unwrap();
        assert_eq!(r, ProbeResult::Refused, "{proto} to a closed port");
    }
    let r = probe(&ns.path(), ip("127.0.0.1"), 0, Proto::Icmp, T).unwrap();
    assert!(r.answer().is_some_and(|l| l.contains("127.0.0.1")), "{r}");

    // Stopped means closed.
    drop(echo);
    let r = probe(&ns.path(), ip("127.0.0.1"), 8080, Proto::Tcp, T).unwrap();
    assert_eq!(r, ProbeResult::Refused);
}

#[test]
fn reply_line_shows_ipv4_clients_as_ipv4() {
    let mapped = "[::ffff:10.42.1.5]:4000".parse().unwrap();
    assert_eq!(reply_line("host/db", mapped), "host/db 10.42.1.5:4000\n");
}

#[test]
fn silence_times_out_in_time_and_no_route_is_unreachable() {
    let ns = Netns::unique("stlabprobe").unwrap();
    // A UDP socket that never answers.
    let silent = run_in_netns(&ns.path(), || UdpSocket::bind("127.0.0.1:7000").unwrap()).unwrap();
    let timeout = Duration::from_millis(300);
    let t0 = Instant::now();
    let r = probe(&ns.path(), ip("127.0.0.1"), 7000, Proto::Udp, timeout).unwrap();
    let took = t0.elapsed();
    assert_eq!(r, ProbeResult::TimedOut);
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(1),
        "{took:?}"
    );
    drop(silent);

    for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
        let t0 = Instant::now();
        let r = probe(&ns.path(), ip("10.9.9.9"), 80, proto, T).unwrap();
        assert!(matches!(r, ProbeResult::Unreachable(_)), "{proto}: {r}");
        assert!(t0.elapsed() < T + Duration::from_secs(1));
    }
}

#[test]
fn a_probe_that_cannot_be_made_is_an_error() {
    let gone = std::path::Path::new("/run/netns/strait-lab-no-such-namespace");
    assert!(probe(gone, ip("127.0.0.1"), 80, Proto::Tcp, T).is_err());
}

#[test]
fn sctp_is_served_exactly_when_the_kernel_has_it() {
    let ns = Netns::unique("stlabsctp").unwrap();
    let supported = run_in_netns(&ns.path(), sctp_supported).unwrap();
    eprintln!("SCTP supported by this kernel: {supported}");
    let echo = EchoServer::start_in(&ns.path(), "host/x", &[], &[], &[9000]).unwrap();
    assert_eq!(echo.sctp_skipped, !supported);
    let r = probe(&ns.path(), ip("127.0.0.1"), 9000, Proto::Sctp, T);
    if supported {
        let r = r.unwrap();
        assert!(
            r.answer()
                .is_some_and(|l| l.starts_with("host/x 127.0.0.1:")),
            "{r}"
        );
    } else {
        let e = r.expect_err("no SCTP: the probe is an error, not a result");
        assert!(e.to_string().contains("SCTP is not supported"), "{e}");
    }
}
