//! `strait demo`: the smallest end-to-end show of strait-cni. A node (a
//! network namespace), two pods (namespaces) attached by a CNI ADD exactly
//! as a runtime does it, a ping each way, then DEL and removal of it all.

use crate::plugins::{strait_cni_dir, REFERENCE_PLUGINS};
use serde_json::json;
use std::path::PathBuf;
use strait_lab::{CniCall, Netns};

pub fn run(cni_bin_dir: Option<PathBuf>) -> Result<(), String> {
    let dir = strait_cni_dir(cni_bin_dir)?;
    let state = tempdir()?;
    let node = Netns::unique("strait-demo-node").map_err(err("create the node namespace"))?;
    println!(
        "node    {} (a network namespace standing in for a Kubernetes node)",
        node.name
    );
    let conf = json!({
        "cniVersion": "1.1.0",
        "name": "demo",
        "type": "strait-cni",
        "ipam": {"ranges": [[{"subnet": "10.42.0.0/24"}]], "dataDir": state.join("ipam")},
    });

    let mut pods = Vec::new();
    for name in ["pod-a", "pod-b"] {
        let ns =
            Netns::unique(&format!("strait-demo-{name}")).map_err(err("create a pod namespace"))?;
        let mut call = CniCall::new("ADD", name, &ns.path(), "eth0");
        call.path = vec![dir.clone(), PathBuf::from(REFERENCE_PLUGINS)];
        call.host_netns = Some(node.name.clone());
        let out = call
            .exec("strait-cni", &conf)
            .map_err(err("run strait-cni"))?;
        if !out.exit_ok {
            return Err(format!("strait-cni ADD for {name} failed: {}", out.stdout));
        }
        let result = out.json();
        let ip = result["ips"][0]["address"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        println!(
            "{name}   eth0 {ip} via gateway {} on bridge strait0",
            result["ips"][0]["gateway"].as_str().unwrap_or("?")
        );
        pods.push((name, ns, call, ip));
    }

    let mut all_ok = true;
    for (from, to) in [(0, 1), (1, 0)] {
        let target = pods[to].3.split('/').next().unwrap_or_default().to_owned();
        let out = pods[from]
            .1
            .exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", &target])
            .map_err(err("run ping"))?;
        let summary = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("packets transmitted") || l.starts_with("rtt"))
            .collect::<Vec<_>>()
            .join("; ");
        let verdict = if out.status.success() { "ok" } else { "FAILED" };
        all_ok &= out.status.success();
        println!(
            "ping    {} -> {} ({target}): {verdict}  [{summary}]",
            pods[from].0, pods[to].0
        );
    }

    for (name, _, call, _) in &pods {
        let out = call
            .with_command("DEL")
            .exec("strait-cni", &conf)
            .map_err(err("run strait-cni"))?;
        if !out.exit_ok {
            return Err(format!("strait-cni DEL for {name} failed: {}", out.stdout));
        }
    }
    drop(pods);
    drop(node);
    let _ = std::fs::remove_dir_all(&state);
    println!("cleanup done: pods deleted with CNI DEL, namespaces removed");
    if all_ok {
        println!("\nThe pods reached each other. Next: `strait lab demo` runs a whole cluster.");
        Ok(())
    } else {
        Err("the pods could not reach each other".into())
    }
}

fn tempdir() -> Result<PathBuf, String> {
    let p = std::env::temp_dir().join(format!("strait-demo-{}", std::process::id()));
    std::fs::create_dir_all(&p).map_err(|e| format!("create {}: {e}", p.display()))?;
    Ok(p)
}

fn err(what: &'static str) -> impl Fn(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}
