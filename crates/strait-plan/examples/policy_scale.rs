//! Compile time (and, as root, `nft -f` time in a throwaway namespace) of
//! NetworkPolicy at scale: `cargo run --release -p strait-plan --example
//! policy_scale -- [policies] [pods]` (default 1000 over 5000). The cluster
//! mirrors `scripts/bench policy` (crates/strait/src/bench/policy.rs): 50
//! nodes, 50 namespaces, every tenth policy a namespace default deny, the
//! rest pod+namespace and ipBlock-except peers, named and ranged ports,
//! ingress and egress. Prints one line per step; nothing is kept.

use std::process::{Command, Stdio};
use std::time::Instant;
use strait_model::{parse_manifests, AgentConfig, Snapshot};
use strait_plan::{compile, nft, LocalNode};

/// `println!` that ignores a closed stdout (release builds abort on panic,
/// which would leave the namespace behind).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

const NODES: usize = 50;
const NAMESPACES: usize = 50;

fn manifests(policies: usize, pods: usize, relabel: bool) -> String {
    let mut y = String::new();
    for n in 0..NODES {
        y += &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: node-{n}}}\nspec: {{podCIDR: 10.42.{n}.0/24}}\nstatus: {{addresses: [{{type: InternalIP, address: 10.0.0.{}}}]}}\n---\n", n + 1);
    }
    for j in 0..NAMESPACES {
        let env = if j % 2 == 0 { "prod" } else { "dev" };
        y += &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns-{j}, labels: {{team: t{}, env: {env}}}}}\n---\n", j % 5);
    }
    let per_node = pods.div_ceil(NODES).max(1);
    for k in 0..pods {
        let (node, slot) = (k / per_node, k % per_node);
        let app = if relabel && k == 1 {
            "moved".to_string()
        } else {
            format!("a{}", k % 200)
        };
        let tier = ["front", "back", "db"][k % 3];
        y += &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p-{k}, namespace: ns-{}, labels: {{app: {app}, tier: {tier}}}}}\n\
             spec: {{nodeName: node-{node}, containers: [{{name: c, ports: [{{name: http, containerPort: 8080}}, {{name: metrics, containerPort: 9090}}]}}]}}\n\
             status: {{phase: Running, podIP: 10.42.{}.{}}}\n---\n",
            k % NAMESPACES, node % 250, 2 + slot % 250
        );
    }
    for m in 0..policies {
        let spec = if m % 10 == 0 {
            "{podSelector: {}, policyTypes: [Ingress, Egress]}".to_string()
        } else {
            format!(
                "{{podSelector: {{matchLabels: {{app: a{a}}}}}, policyTypes: [Ingress, Egress], \
                 ingress: [{{from: [{{podSelector: {{matchLabels: {{tier: front}}}}, namespaceSelector: {{matchLabels: {{team: t{t}}}}}}}, \
                 {{ipBlock: {{cidr: 192.168.{b}.0/24, except: [192.168.{b}.128/25]}}}}], ports: [{{port: http}}, {{port: 9000, endPort: 9100}}]}}], \
                 egress: [{{to: [{{namespaceSelector: {{matchExpressions: [{{key: env, operator: In, values: [prod]}}]}}}}], \
                 ports: [{{port: 5432}}, {{port: 53, protocol: UDP}}]}}]}}",
                a = m % 200,
                t = m % 5,
                b = m % 250
            )
        };
        y += &format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np-{m}, namespace: ns-{}}}\nspec: {spec}\n---\n", m % NAMESPACES);
    }
    y
}

fn nft_in(ns: &str, script: &str) -> Result<f64, String> {
    let t = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    use std::io::Write;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(script.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let policies = args.first().copied().unwrap_or(1000);
    let pods = args.get(1).copied().unwrap_or(5000);
    let cfg = AgentConfig::from_yaml(
        "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\nbackend: host-gw\n",
    )
    .unwrap();
    let local = LocalNode {
        name: "node-0".into(),
        underlay_ip: "10.0.0.1".parse().unwrap(),
        underlay_prefix: 16,
        underlay_dev: "eth0".into(),
        underlay_mtu: 1500,
    };
    let snap = |relabel| {
        Snapshot::from_objects(parse_manifests(&manifests(policies, pods, relabel), "gen").unwrap())
    };
    let (before, after) = (snap(false), snap(true));
    let t = Instant::now();
    let plan = compile(&cfg, &local, &before).unwrap();
    let compile_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let text = nft::render(&plan.nft);
    let render_ms = t.elapsed().as_secs_f64() * 1000.0;
    let elements: usize = plan
        .nft
        .concat_sets
        .iter()
        .filter(|s| s.interval)
        .map(|s| s.elements.len())
        .sum();
    say!(
        "{policies} policies, {pods} pods: compile {compile_ms:.0} ms, render {render_ms:.0} ms, {} counters, {elements} allow elements, {} bytes",
        plan.nft.counters.len(),
        text.len()
    );
    let t = Instant::now();
    let plan2 = compile(&cfg, &local, &after).unwrap();
    let diff = nft::incremental::changes(&plan.nft, &plan2.nft);
    say!(
        "one label change: compile + diff {:.0} ms, {}",
        t.elapsed().as_secs_f64() * 1000.0,
        match &diff {
            Some(d) => format!("{} element lines", d.lines().count()),
            None => "table rewrite".to_string(),
        }
    );
    let ns = format!("stpolscale-{}", std::process::id());
    if Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .is_ok_and(|s| s.success())
    {
        // Deleted however main returns.
        struct Guard(String);
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
            }
        }
        let _guard = Guard(ns.clone());
        let r = nft_in(&ns, &text);
        match r {
            Ok(ms) => say!("nft -f (whole table, fresh namespace): {ms:.0} ms"),
            Err(e) => say!(
                "nft -f failed: {}",
                e.lines().take(3).collect::<Vec<_>>().join(" | ")
            ),
        }
        if let Some(d) = &diff {
            if std::env::var("SHOW_DIFF").is_ok() {
                for l in d.lines() {
                    say!("  {}", &l[..l.len().min(160)]);
                }
            }
            match nft_in(&ns, d) {
                Ok(ms) => say!("nft -f (the label change's elements): {ms:.0} ms"),
                Err(e) => say!(
                    "nft -f of the diff failed: {}",
                    e.lines().take(3).collect::<Vec<_>>().join(" | ")
                ),
            }
        }
    } else {
        say!("(not root: no nft -f timing)");
    }
}
