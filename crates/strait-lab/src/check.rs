//! `lab check`: a list of expected paths (FROM -> TO port/proto, reach or
//! blocked), probed in parallel, each result next to its expectation in the
//! order the list gave.
//!
//! An expectation file is either a list of rows or a matrix (docs/lab.md):
//!
//! ```yaml
//! pods: [pod/x/a, pod/x/b]     # FROM and TO (or give `from:` and `to:`)
//! ports: [80, 81]
//! protos: [tcp, udp]
//! expect: reach                # every cell, except:
//! except:
//!   - {from: pod/x/a, to: pod/x/b, port: 80, proto: tcp, expect: blocked}
//! ```

use crate::cluster::{Cluster, Endpoint};
use crate::fabric::FabricState;
use crate::probe::{probe, ProbeResult, Proto};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Reach,
    Blocked,
}

impl Expect {
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Reach => "reach",
            Expect::Blocked => "blocked",
        }
    }
}

/// One row: probe TO from FROM on `port`/`proto` and expect `expect`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default = "default_proto")]
    pub proto: String,
    pub expect: Expect,
}

fn default_proto() -> String {
    "tcp".into()
}

/// The matrix form of an expectation file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Matrix {
    #[serde(default)]
    pods: Vec<String>,
    #[serde(default)]
    from: Vec<String>,
    #[serde(default)]
    to: Vec<String>,
    ports: Vec<u16>,
    #[serde(default = "default_protos")]
    protos: Vec<String>,
    #[serde(default = "default_expect")]
    expect: Expect,
    #[serde(default)]
    except: Vec<Exception>,
}

fn default_protos() -> Vec<String> {
    vec!["tcp".into()]
}

fn default_expect() -> Expect {
    Expect::Reach
}

/// A matrix cell (or, without port or proto, every such cell) that differs
/// from the matrix's `expect`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Exception {
    from: String,
    to: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    proto: Option<String>,
    expect: Expect,
}

/// Parses an expectation file: a list of rows, or a matrix (a mapping).
/// Errors name the field at fault.
pub fn parse_expectations(text: &str) -> Result<Vec<Expectation>, String> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    match value {
        serde_yaml::Value::Sequence(_) => {
            serde_yaml::from_value::<Vec<Expectation>>(value).map_err(|e| e.to_string())
        }
        serde_yaml::Value::Mapping(_) => {
            let m: Matrix = serde_yaml::from_value(value).map_err(|e| format!("matrix: {e}"))?;
            expand(m)
        }
        serde_yaml::Value::Null => Ok(vec![]),
        _ => Err("an expectation file is a list of rows or a matrix (a mapping)".into()),
    }
}

fn expand(m: Matrix) -> Result<Vec<Expectation>, String> {
    let from = if m.from.is_empty() { &m.pods } else { &m.from };
    let to = if m.to.is_empty() { &m.pods } else { &m.to };
    if from.is_empty() || to.is_empty() {
        return Err("matrix: give `pods` (or `from` and `to`)".into());
    }
    for p in &m.protos {
        p.parse::<Proto>()
            .map_err(|e| format!("matrix: protos: {e}"))?;
    }
    let mut cells: BTreeMap<(String, String, u16, String), Expect> = BTreeMap::new();
    for (i, e) in m.except.iter().enumerate() {
        if !from.contains(&e.from) {
            return Err(format!(
                "matrix: except[{i}].from {:?} is not in the matrix's sources",
                e.from
            ));
        }
        if !to.contains(&e.to) {
            return Err(format!(
                "matrix: except[{i}].to {:?} is not in the matrix's destinations",
                e.to
            ));
        }
        if let Some(p) = e.port.filter(|p| !m.ports.contains(p)) {
            return Err(format!(
                "matrix: except[{i}].port {p} is not in the matrix's ports"
            ));
        }
        if let Some(p) = e.proto.as_ref().filter(|p| !m.protos.contains(p)) {
            return Err(format!(
                "matrix: except[{i}].proto {p:?} is not in the matrix's protos"
            ));
        }
        for port in m.ports.iter().filter(|p| e.port.is_none_or(|x| x == **p)) {
            for proto in m
                .protos
                .iter()
                .filter(|p| e.proto.as_ref().is_none_or(|x| x == *p))
            {
                cells.insert(
                    (e.from.clone(), e.to.clone(), *port, proto.clone()),
                    e.expect,
                );
            }
        }
    }
    let mut rows = Vec::new();
    for f in from {
        for t in to {
            for proto in &m.protos {
                for port in &m.ports {
                    let key = (f.clone(), t.clone(), *port, proto.clone());
                    rows.push(Expectation {
                        from: f.clone(),
                        to: t.clone(),
                        port: Some(*port),
                        proto: proto.clone(),
                        expect: cells.get(&key).copied().unwrap_or(m.expect),
                    });
                }
            }
        }
    }
    Ok(rows)
}

/// What one row observed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub row: Expectation,
    pub result: ProbeResult,
}

impl Outcome {
    pub fn observed(&self) -> Expect {
        if self.result.answer().is_some() {
            Expect::Reach
        } else {
            Expect::Blocked
        }
    }

    pub fn as_expected(&self) -> bool {
        self.observed() == self.row.expect
    }

    /// The answer line, or how the probe was turned away: a refused TCP
    /// probe got a reset, a refused UDP one an ICMP port unreachable, a
    /// dropped one timed out.
    pub fn detail(&self, timeout: Duration) -> String {
        match (&self.result, self.row.proto.as_str()) {
            (ProbeResult::Answered(line), _) => line.trim_end().to_owned(),
            (ProbeResult::Refused, "tcp") => "refused (TCP RST)".into(),
            (ProbeResult::Refused, "udp") => "refused (ICMP port unreachable)".into(),
            (ProbeResult::Refused, "sctp") => "refused (SCTP ABORT)".into(),
            (ProbeResult::TimedOut, _) => {
                format!("timed out (no answer in {} ms)", timeout.as_millis())
            }
            (other, _) => other.to_string(),
        }
    }
}

/// Probes every row, `parallel` at once, and returns the outcomes in the
/// rows' order. Endpoints are resolved once, before any probe, so a typo
/// fails the whole check instead of reading as "blocked".
pub fn run_check(
    cluster: &Cluster,
    state: &FabricState,
    rows: &[Expectation],
    timeout: Duration,
    parallel: usize,
) -> Result<Vec<Outcome>, String> {
    let mut endpoints: BTreeMap<&str, Endpoint> = BTreeMap::new();
    let mut jobs = Vec::with_capacity(rows.len());
    for r in rows {
        for name in [r.from.as_str(), r.to.as_str()] {
            if !endpoints.contains_key(name) {
                let ep = cluster.endpoint(state, name).map_err(|e| e.to_string())?;
                endpoints.insert(name, ep);
            }
        }
        let src = &endpoints[r.from.as_str()];
        if src.netns.as_os_str().is_empty() {
            return Err(format!(
                "{}: a probe must start from node/, pod/, host/ or router",
                r.from
            ));
        }
        let ip = endpoints[r.to.as_str()]
            .ip
            .ok_or_else(|| format!("{}: has no address", r.to))?;
        let proto: Proto = r
            .proto
            .parse()
            .map_err(|e| format!("proto {:?}: {e}", r.proto))?;
        jobs.push((src.netns.clone(), ip, r.port.unwrap_or(0), proto));
    }
    let results: Vec<Mutex<Option<Result<ProbeResult, String>>>> =
        jobs.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..parallel.clamp(1, jobs.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((netns, ip, port, proto)) = jobs.get(i) else {
                    break;
                };
                let r = probe(netns, *ip, *port, *proto, timeout).map_err(|e| e.to_string());
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            });
        }
    });
    rows.iter()
        .zip(results)
        .map(|(row, r)| {
            let result = r
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or(Ok(ProbeResult::TimedOut))
                .map_err(|e| format!("{} -> {}: {e}", row.from, row.to))?;
            Ok(Outcome {
                row: row.clone(),
                result,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_as_before() {
        let rows = parse_expectations(
            "- {from: pod/demo/client, to: pod/demo/web-2, port: 80, proto: tcp, expect: reach}\n- {from: pod/demo/client, to: host/legacy-db, port: 80, expect: blocked}\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].proto, "tcp");
        assert_eq!(rows[1].expect, Expect::Blocked);
    }

    #[test]
    fn a_matrix_expands_in_order_with_exceptions() {
        let rows = parse_expectations(
            "pods: [pod/x/a, pod/x/b]\nports: [80, 81]\nprotos: [tcp, udp]\nexcept:\n- {from: pod/x/a, to: pod/x/b, expect: blocked}\n- {from: pod/x/b, to: pod/x/a, port: 81, proto: udp, expect: blocked}\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 16);
        let blocked: Vec<(&str, &str, u16, &str)> = rows
            .iter()
            .filter(|r| r.expect == Expect::Blocked)
            .map(|r| {
                (
                    r.from.as_str(),
                    r.to.as_str(),
                    r.port.unwrap(),
                    r.proto.as_str(),
                )
            })
            .collect();
        assert_eq!(
            blocked,
            vec![
                ("pod/x/a", "pod/x/b", 80, "tcp"),
                ("pod/x/a", "pod/x/b", 81, "tcp"),
                ("pod/x/a", "pod/x/b", 80, "udp"),
                ("pod/x/a", "pod/x/b", 81, "udp"),
                ("pod/x/b", "pod/x/a", 81, "udp"),
            ]
        );
        assert_eq!(
            (rows[0].from.as_str(), rows[0].to.as_str()),
            ("pod/x/a", "pod/x/a")
        );
    }

    #[test]
    fn matrix_errors_name_the_field() {
        let e = parse_expectations(
            "pods: [pod/x/a]\nports: [80]\nexcept: [{from: pod/x/z, to: pod/x/a, expect: blocked}]\n",
        )
        .unwrap_err();
        assert!(e.contains("except[0].from") && e.contains("pod/x/z"), "{e}");
        let e = parse_expectations("pods: [pod/x/a]\nports: [80]\nprotos: [tcpp]\n").unwrap_err();
        assert!(e.contains("protos") && e.contains("tcpp"), "{e}");
        let e = parse_expectations("ports: [80]\n").unwrap_err();
        assert!(e.contains("pods"), "{e}");
        let e = parse_expectations("pods: [pod/x/a]\nports: [80]\nexpect: maybe\n").unwrap_err();
        assert!(e.contains("maybe") || e.contains("expect"), "{e}");
    }
}
