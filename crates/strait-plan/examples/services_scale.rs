//! Compile time of Services at scale, and of the compile after one
//! endpoint change: `cargo run --release -p strait-plan --example
//! services_scale -- [services] [rounds]` (default 10000, 5). The cluster
//! mirrors `strait bench services` (crates/strait/src/bench/services): 200
//! peer nodes, N Services of one port with 10 ready endpoints each. Each
//! step compiles from scratch and then with the agent's compile cache (the
//! changed snapshot shares every other object with the plain one, as a
//! source hands it over) and checks both give one table. Prints one line
//! per step, then the fastest and the median of each; a profiler can run
//! it (`perf record -g`). `SERVICES_SCALE_RENDER=<file>` also
//! writes the rendered table (for timing `nft` against it by hand).

use std::time::Instant;
use strait_model::{AgentConfig, Object, Snapshot};
use strait_plan::{compile, compile_cached, CompileCache, LocalNode};

macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

fn json<T: serde::de::DeserializeOwned>(text: String) -> T {
    serde_json::from_str(&text).expect("a valid object")
}

fn snapshot(n: usize, moved: bool) -> Snapshot {
    let mut objects = Vec::new();
    objects.push(Object::Node(json(
        r#"{"metadata":{"name":"node-1"},"spec":{"podCIDR":"10.42.1.0/24"},"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.1"}]}}"#.into(),
    )));
    for i in 0..200 {
        objects.push(Object::Node(json(format!(
            r#"{{"metadata":{{"name":"peer-{i}"}},"spec":{{"podCIDR":"10.42.{}.0/24"}},"status":{{"addresses":[{{"type":"InternalIP","address":"10.0.{}.{}"}}]}}}}"#,
            2 + i,
            1 + i / 250,
            2 + i % 250
        ))));
    }
    for s in 0..n {
        objects.push(Object::Service(json(format!(
            r#"{{"metadata":{{"name":"svc-{s}","namespace":"bench"}},"spec":{{"clusterIP":"10.43.{}.{}","ports":[{{"name":"http","port":80,"protocol":"TCP","targetPort":8080}}]}}}}"#,
            (s + 10) / 250,
            1 + (s + 10) % 250
        ))));
        let eps: Vec<String> = (0..10)
            .map(|e| {
                let k = s * 10 + e;
                let ip = if moved && s == n - 1 && e == 0 {
                    "10.42.250.250".to_string()
                } else {
                    format!("10.42.{}.{}", 2 + (k / 250) % 200, 2 + k % 250)
                };
                format!(r#"{{"addresses":["{ip}"],"conditions":{{"ready":true}}}}"#)
            })
            .collect();
        objects.push(Object::EndpointSlice(json(format!(
            r#"{{"metadata":{{"name":"svc-{s}-1","namespace":"bench","labels":{{"kubernetes.io/service-name":"svc-{s}"}}}},"addressType":"IPv4","endpoints":[{}],"ports":[{{"name":"http","port":8080,"protocol":"TCP"}}]}}"#,
            eps.join(",")
        ))));
    }
    Snapshot::from_objects(objects)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let n = args.first().copied().unwrap_or(10_000);
    let rounds = args.get(1).copied().unwrap_or(5);
    let cfg = AgentConfig::from_yaml(
        "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\nbackend: host-gw\n",
    )
    .expect("config");
    let local = LocalNode {
        name: "node-1".into(),
        underlay_ip: "10.0.0.1".parse().expect("an address"),
        underlay_prefix: 16,
        underlay_dev: "eth0".into(),
        underlay_mtu: 1500,
    };
    let plain = snapshot(n, false);
    if let Ok(path) = std::env::var("SERVICES_SCALE_RENDER") {
        let plan = compile(&cfg, &local, &plain).expect("compile");
        std::fs::write(path, strait_plan::nft::render(&plan.nft)).expect("write the table");
    }
    // As a source hands it over: the same objects but the changed slice.
    let mut moved = plain.clone();
    let changed = snapshot(n, true);
    let last = moved.endpoint_slices.len() - 1;
    moved.endpoint_slices[last] = changed.endpoint_slices[last].clone();
    let mut cache = CompileCache::default();
    compile_cached(&cfg, &local, &plain, &mut cache).expect("compile");
    let (mut whole, mut cached) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for (what, snap) in [("plain", &plain), ("moved", &moved)] {
            let start = Instant::now();
            let plan = compile(&cfg, &local, snap).expect("compile");
            let took = start.elapsed();
            whole.push(took.as_secs_f64() * 1000.0);
            let start = Instant::now();
            let again = compile_cached(&cfg, &local, snap, &mut cache).expect("compile");
            let took_cached = start.elapsed();
            cached.push(took_cached.as_secs_f64() * 1000.0);
            assert!(*plan.nft == *again.nft, "the cache changed the table");
            let elements: usize = plan.nft.maps.iter().map(|m| m.elements.len()).sum();
            say!(
                "round {round} {what}: compile {:.1} ms, with the cache {:.1} ms ({:?}; {elements} map elements)",
                took.as_secs_f64() * 1000.0,
                took_cached.as_secs_f64() * 1000.0,
                cache.services.last_use(),
            );
        }
    }
    for (what, mut times) in [("compile", whole), ("with the cache", cached)] {
        times.sort_by(f64::total_cmp);
        if let (Some(min), Some(median)) = (times.first(), times.get(times.len() / 2)) {
            say!("{what}: min {min:.1} ms, median {median:.1} ms");
        }
    }
}
