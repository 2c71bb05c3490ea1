//! Health-check NodePorts of `externalTrafficPolicy: Local` Services: on
//! `spec.healthCheckNodePort` every node answers HTTP 200 when it has a
//! ready local endpoint of the Service and 503 when it has none, so an
//! external load balancer sends traffic only to nodes that keep the client's
//! address and can serve it. The body is kube-proxy's
//! `{"service": {"namespace", "name"}, "localEndpoints": N}`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strait_model::Snapshot;

/// What one health-check port reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub namespace: String,
    pub name: String,
    pub local_endpoints: usize,
}

/// The health-check ports this node should serve, from the snapshot.
pub fn wanted(snap: &Snapshot, node: &str) -> BTreeMap<u16, Check> {
    let mut out = BTreeMap::new();
    for svc in &snap.services {
        let Some(spec) = &svc.spec else { continue };
        if spec.external_traffic_policy.as_deref() != Some("Local") {
            continue;
        }
        let Some(port) = spec
            .health_check_node_port
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        let (ns, name) = strait_model::namespace_and_name(&svc.metadata);
        let local_endpoints = snap
            .slices_for(ns, name)
            .flat_map(|s| s.endpoints.iter())
            .filter(|e| e.node_name.as_deref() == Some(node) && e.conditions.ready != Some(false))
            .count();
        out.insert(
            port,
            Check {
                namespace: ns.to_string(),
                name: name.to_string(),
                local_endpoints,
            },
        );
    }
    out
}

struct Listener {
    stop: Arc<AtomicBool>,
}

/// The running listeners; `update` opens and closes them to match.
#[derive(Default)]
pub struct HealthChecks {
    state: Arc<Mutex<BTreeMap<u16, Check>>>,
    listeners: BTreeMap<u16, Listener>,
}

impl HealthChecks {
    /// Serves exactly `wanted`; returns problems (e.g. a port in use).
    pub fn update(&mut self, wanted: BTreeMap<u16, Check>) -> Vec<String> {
        let mut problems = Vec::new();
        for (port, l) in &self.listeners {
            if !wanted.contains_key(port) {
                l.stop.store(true, Ordering::Relaxed);
            }
        }
        self.listeners.retain(|p, _| wanted.contains_key(p));
        for port in wanted.keys() {
            if self.listeners.contains_key(port) {
                continue;
            }
            match TcpListener::bind(("0.0.0.0", *port)) {
                Ok(listener) => {
                    let stop = Arc::new(AtomicBool::new(false));
                    let (state, flag, p) = (self.state.clone(), stop.clone(), *port);
                    let _ = listener.set_nonblocking(true);
                    std::thread::spawn(move || serve(listener, p, state, flag));
                    self.listeners.insert(*port, Listener { stop });
                }
                Err(e) => problems.push(format!("health-check port {port}: {e}")),
            }
        }
        if let Ok(mut s) = self.state.lock() {
            *s = wanted;
        }
        problems
    }
}

fn serve(
    listener: TcpListener,
    port: u16,
    state: Arc<Mutex<BTreeMap<u16, Check>>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => {
                let check = state.lock().ok().and_then(|s| s.get(&port).cloned());
                let _ = answer(conn, check);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn answer(mut conn: TcpStream, check: Option<Check>) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    let (status, body) = match check {
        Some(c) => {
            let body = serde_json::json!({
                "service": {"namespace": c.namespace, "name": c.name},
                "localEndpoints": c.local_endpoints,
            })
            .to_string();
            let status = if c.local_endpoints > 0 {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            (status, body)
        }
        None => ("404 Not Found", "{}".to_owned()),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn snapshot(yaml: &str) -> Snapshot {
        Snapshot::from_objects(strait_model::parse_manifests(yaml, "t").unwrap())
    }

    const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: s}\nspec:\n  type: NodePort\n  externalTrafficPolicy: Local\n  healthCheckNodePort: 0\n  selector: {app: web}\n  ports: [{port: 80}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1, namespace: s, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nendpoints:\n- {addresses: [10.42.1.2], nodeName: node-1, conditions: {ready: true}}\n- {addresses: [10.42.1.3], nodeName: node-1, conditions: {ready: false}}\n- {addresses: [10.42.2.2], nodeName: node-2}\nports: [{port: 8080}]\n";

    #[test]
    fn counts_ready_local_endpoints() {
        let snap = snapshot(&SVC.replace("healthCheckNodePort: 0", "healthCheckNodePort: 32000"));
        let w = wanted(&snap, "node-1");
        assert_eq!(w[&32000].local_endpoints, 1);
        assert_eq!(wanted(&snap, "node-2")[&32000].local_endpoints, 1);
        assert_eq!(wanted(&snap, "node-3")[&32000].local_endpoints, 0);
        let cluster_policy = snapshot(
            &SVC.replace("Local", "Cluster")
                .replace("healthCheckNodePort: 0", "healthCheckNodePort: 32000"),
        );
        assert!(wanted(&cluster_policy, "node-1").is_empty());
    }

    fn get(port: u16) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn answers_200_with_local_endpoints_and_503_without() {
        // A free port chosen by the kernel, then released for the listener.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut hc = HealthChecks::default();
        let check = |n| Check {
            namespace: "s".into(),
            name: "web".into(),
            local_endpoints: n,
        };
        assert!(hc.update(BTreeMap::from([(port, check(2))])).is_empty());
        let r = get(port);
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(
            r.ends_with(r#"{"localEndpoints":2,"service":{"name":"web","namespace":"s"}}"#),
            "{r}"
        );
        hc.update(BTreeMap::from([(port, check(0))]));
        assert!(get(port).starts_with("HTTP/1.1 503"));
        // Removed: the port closes.
        hc.update(BTreeMap::new());
        std::thread::sleep(Duration::from_millis(200));
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}
