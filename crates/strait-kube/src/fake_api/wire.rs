//! The fake API's HTTP side: accepting connections (and refusing them
//! while down), answering lists, streaming watches.

use super::{collection, State};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use strait_model::Kind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

pub(super) async fn serve(
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    mut bumps: watch::Receiver<u64>,
) {
    let is_up = |s: &Arc<Mutex<State>>| s.lock().unwrap_or_else(|p| p.into_inner()).up;
    loop {
        if !is_up(&state) {
            if bumps.changed().await.is_err() {
                return;
            }
            continue;
        }
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket.bind(addr).expect("bind the fake API's port again");
        let listener = socket.listen(64).expect("listen");
        state.lock().unwrap_or_else(|p| p.into_inner()).listening = true;
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        conns.spawn(connection(stream, state.clone(), bumps.clone()));
                    }
                }
                changed = bumps.changed() => {
                    if changed.is_err() { return; }
                    if !is_up(&state) { break; }
                }
            }
        }
        // Down: refuse new connections and cut the open ones mid-stream.
        drop(listener);
        conns.abort_all();
        while conns.join_next().await.is_some() {}
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.open_watches = 0;
        s.positions.clear();
        s.listening = false;
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
           "status": "Failure", "message": message, "reason": reason, "code": code})
}

async fn respond(stream: &mut TcpStream, code: u16, body: &Value) -> std::io::Result<()> {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        if code == 200 { "OK" } else { "Error" },
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

async fn chunk(stream: &mut TcpStream, event: &Value) -> std::io::Result<()> {
    let line = format!("{event}\n");
    stream
        .write_all(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes())
        .await?;
    stream.flush().await
}

async fn connection(
    mut stream: TcpStream,
    state: Arc<Mutex<State>>,
    mut bumps: watch::Receiver<u64>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut tmp).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let line = head.lines().next().unwrap_or_default().to_string();
    let target = line.split(' ').nth(1).unwrap_or("/").to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let lock = |s: &Arc<Mutex<State>>| {
        s.lock()
            .unwrap_or_else(|p| p.into_inner())
            .requests
            .push(line.clone())
    };
    lock(&state);
    let Some(kind) = Kind::ALL.into_iter().find(|k| collection(*k) == path) else {
        let msg = format!("the server could not find the requested resource ({path})");
        return respond(&mut stream, 404, &status(404, "NotFound", &msg)).await;
    };
    let watching = matches!(query_param(query, "watch"), Some("true" | "1"));
    if !watching {
        let body = {
            let s = state.lock().unwrap_or_else(|p| p.into_inner());
            let items: Vec<Value> = s
                .objects
                .iter()
                .filter(|((k, _, _), _)| *k == kind)
                .map(|(_, o)| {
                    // List items carry no kind/apiVersion on the wire.
                    let mut o = o.clone();
                    if let Some(m) = o.as_object_mut() {
                        m.remove("kind");
                        m.remove("apiVersion");
                    }
                    o
                })
                .collect();
            json!({"kind": format!("{}List", kind.as_str()), "apiVersion": kind.api_version(),
                   "metadata": {"resourceVersion": s.rv.to_string()}, "items": items})
        };
        return respond(&mut stream, 200, &body).await;
    }
    let mut from: u64 = query_param(query, "resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bookmarks_wanted = query_param(query, "allowWatchBookmarks") == Some("true");
    let (me, mut bookmarks_seen) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.watches_opened += 1;
        s.open_watches += 1;
        let me = s.watches_opened;
        s.positions.insert(me, from);
        (me, s.bookmarks)
    };
    let result = async {
        stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            )
            .await?;
        loop {
            let (events, expired, ended, bookmark) = {
                let s = state.lock().unwrap_or_else(|p| p.into_inner());
                let events: Vec<Value> = s
                    .events
                    .iter()
                    .filter(|e| e.kind == kind && e.rv > from)
                    .map(|e| json!({"type": e.kind_of_event, "object": e.object}))
                    .collect();
                from = s.rv;
                let bookmark = (s.bookmarks != bookmarks_seen).then(|| s.rv);
                bookmarks_seen = s.bookmarks;
                (events, s.expired >= me, s.ended >= me, bookmark)
            };
            if expired {
                let msg = format!("too old resource version: {from}");
                let gone = json!({"type": "ERROR", "object": status(410, "Expired", &msg)});
                chunk(&mut stream, &gone).await?;
                stream.write_all(b"0\r\n\r\n").await?;
                return stream.shutdown().await;
            }
            for e in &events {
                chunk(&mut stream, e).await?;
            }
            if let Some(p) = state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .positions
                .get_mut(&me)
            {
                *p = from;
            }
            if let (Some(rv), true) = (bookmark, bookmarks_wanted) {
                let mark = json!({"type": "BOOKMARK", "object": {
                    "kind": kind.as_str(), "apiVersion": kind.api_version(),
                    "metadata": {"resourceVersion": rv.to_string()}}});
                chunk(&mut stream, &mark).await?;
            }
            if ended {
                stream.write_all(b"0\r\n\r\n").await?;
                return stream.shutdown().await;
            }
            if bumps.changed().await.is_err() {
                return Ok(());
            }
        }
    }
    .await;
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    s.open_watches = s.open_watches.saturating_sub(1);
    s.positions.remove(&me);
    result
}
