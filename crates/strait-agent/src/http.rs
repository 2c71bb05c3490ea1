//! /healthz, /readyz and /metrics over plain HTTP/1.1 on a std listener:
//! three fixed answers need no HTTP framework.

use crate::metrics::Metrics;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Binds now (so a bad address fails at start-up) and serves on a thread.
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = answer(conn, &metrics);
            }
        })?;
    Ok(bound)
}

fn answer(mut conn: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/healthz" => ("200 OK", "ok\n".to_owned()),
        "/readyz" if metrics.is_ready() => ("200 OK", "ready\n".to_owned()),
        "/readyz" => (
            "503 Service Unavailable",
            format!("not ready: {}\n", metrics.not_ready_reason()),
        ),
        "/metrics" => ("200 OK", metrics.render()),
        _ => (
            "404 Not Found",
            "try /healthz, /readyz or /metrics\n".to_owned(),
        ),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn health_readiness_and_metrics() {
        let m = Metrics::new();
        let addr = serve("127.0.0.1:0".parse().unwrap(), m.clone()).unwrap();
        assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").starts_with("HTTP/1.1 503"));
        m.set_ready(true);
        assert!(get(addr, "/readyz").starts_with("HTTP/1.1 200"));
        m.set_not_ready("Node: watch failed");
        let answer = get(addr, "/readyz");
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("not ready: Node: watch failed"), "{answer}");
        assert!(get(addr, "/metrics").contains("strait_agent_syncs_total"));
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
    }
}
