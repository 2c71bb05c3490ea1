//! CNI benchmark: per-pod ADD and DEL latency over N sequential pods, and
//! the ADD/DEL rate with K plugin processes at once, for strait-cni and for
//! the reference `bridge` + `host-local` in the same run.
//!
//! Each side gets its own node namespace; pod namespaces are made before
//! the clock starts. Plugins are spawned from a thread that entered the node
//! namespace (so no `ip netns exec` overhead is timed): what is timed is one
//! plugin invocation, exec to exit, as a runtime pays it.

use super::report::{machine, ms, percentile, write_section};
use crate::plugins::{strait_cni_dir, REFERENCE_PLUGINS};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use strait_lab::Netns;

struct Side {
    label: &'static str,
    plugin: PathBuf,
    conf: Value,
}

/// What no plugin can go below on this machine: spawning a process that
/// does nothing, and the kernel's own cost to create and delete a veth pair.
#[derive(Default)]
struct Floors {
    spawn: Vec<Duration>,
    veth_create: Vec<Duration>,
    veth_delete: Vec<Duration>,
}

#[derive(Default)]
struct Numbers {
    add: Vec<Duration>,
    del: Vec<Duration>,
    par_add_rate: f64,
    par_del_rate: f64,
}

pub fn run(
    pods: usize,
    parallel: usize,
    cni_bin_dir: Option<PathBuf>,
    write: Option<PathBuf>,
) -> Result<(), String> {
    if pods == 0 || pods > 250 || parallel == 0 {
        return Err(format!(
            "--pods must be 1-250 (one /24) and --parallel at least 1; got {pods} and {parallel}"
        ));
    }
    let dir = strait_cni_dir(cni_bin_dir)?;
    // Both plugins keep their IPAM state on /run (tmpfs), strait-cni's
    // default store location; same directory tree for both.
    let state = PathBuf::from(format!("/run/strait-bench-{}", std::process::id()));
    std::fs::create_dir_all(&state).map_err(|e| e.to_string())?;
    let sides = [
        Side {
            label: "strait-cni (in-process IPAM)",
            plugin: dir.join("strait-cni"),
            conf: json!({"cniVersion": "1.0.0", "name": "bench", "type": "strait-cni",
                "ipam": {"ranges": [[{"subnet": "10.90.0.0/24"}]], "dataDir": state.join("strait")}}),
        },
        Side {
            label: "reference bridge + host-local",
            plugin: PathBuf::from(REFERENCE_PLUGINS).join("bridge"),
            conf: json!({"cniVersion": "1.0.0", "name": "bench", "type": "bridge",
                "bridge": "cni0", "isGateway": true,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.90.0.0/24"}]],
                         "dataDir": state.join("reference")}}),
        },
    ];
    if !sides[1].plugin.is_file() {
        return Err(format!(
            "{} is missing: install Debian's containernetworking-plugins",
            sides[1].plugin.display()
        ));
    }
    eprintln!("bench: floors (process spawn, kernel veth create/delete) ...");
    let floors = measure_floors(pods)?;
    let mut results = Vec::new();
    for side in &sides {
        eprintln!("bench: {} ...", side.label);
        results.push(measure(side, pods, parallel)?);
    }
    let _ = std::fs::remove_dir_all(&state);

    let mut table = String::new();
    table.push_str(
        "| plugin | ADD p50 | ADD p99 | DEL p50 | DEL p99 | parallel ADD/s | parallel DEL/s |\n",
    );
    table.push_str("|---|---|---|---|---|---|---|\n");
    for (side, n) in sides.iter().zip(&results) {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} |\n",
            side.label,
            ms(percentile(&n.add, 50.0)),
            ms(percentile(&n.add, 99.0)),
            ms(percentile(&n.del, 50.0)),
            ms(percentile(&n.del, 99.0)),
            n.par_add_rate,
            n.par_del_rate
        ));
    }
    table.push_str(&format!(
        "| floor: spawn a no-op process (/bin/true) | {} | {} | {} | {} | | |\n",
        ms(percentile(&floors.spawn, 50.0)),
        ms(percentile(&floors.spawn, 99.0)),
        ms(percentile(&floors.spawn, 50.0)),
        ms(percentile(&floors.spawn, 99.0)),
    ));
    table.push_str(&format!(
        "| floor: kernel veth create / delete (one netlink request each) | {} | {} | {} | {} | | |\n",
        ms(percentile(&floors.veth_create, 50.0)),
        ms(percentile(&floors.veth_create, 99.0)),
        ms(percentile(&floors.veth_delete, 50.0)),
        ms(percentile(&floors.veth_delete, 99.0)),
    ));
    let ratio = |f: fn(&Numbers) -> f64| f(&results[1]) / f(&results[0]).max(f64::EPSILON);
    let add_x = ratio(|n| percentile(&n.add, 50.0).as_secs_f64());
    let del_x = ratio(|n| percentile(&n.del, 50.0).as_secs_f64());
    let par_x = 1.0 / ratio(|n| n.par_add_rate);
    let summary = format!(
        "strait-cni vs reference: ADD p50 {add_x:.1}x lower, DEL p50 {del_x:.1}x lower, parallel ADD rate {par_x:.1}x higher \
         (target: ADD and DEL p50 at least 5x lower). DEL is bound by the kernel: deleting one veth pair takes {} p50 by itself, \
         which both plugins must pay because CNI DEL deletes the interface",
        ms(percentile(&floors.veth_delete, 50.0))
    );
    println!("{table}\n{summary}");
    if let Some(file) = write {
        let body = format!(
            "## CNI ADD/DEL: strait-cni vs reference bridge + host-local\n\n\
             Command: `sudo ./scripts/bench cni` (= `strait bench cni --pods {pods} --parallel {parallel} --write docs/benchmarks.md`, release build)\n\n\
             Machine: {}\n\n{table}\n{summary}.\n\n\
             Each ADD/DEL is one plugin process, exec to exit, spawned from a thread inside the node namespace; \
             {pods} pods sequentially, then {pods} more with {parallel} processes at once. \
             Pod namespaces are created before timing. Both plugins keep IPAM state under /run (tmpfs, strait-cni's default) and use the same /24 and a bridge with the gateway address; \
             strait-cni also turns on hairpin mode, the reference does not by default. \
             The floor rows are what no plugin can go below here: the harness spawning a no-op process, and one netlink request \
             creating (its read-back included) or deleting a veth pair whose peer is in a pod namespace. \
             strait-cni is built statically (`scripts/build-release`), as it is shipped.",
            machine()
        );
        write_section(&file, "cni", &body)?;
        eprintln!("bench: wrote {}", file.display());
    }
    Ok(())
}

fn measure_floors(pods: usize) -> Result<Floors, String> {
    use strait_kernel::{link, Netlink, NetnsHandle};
    let node = Netns::unique("stbench").map_err(|e| e.to_string())?;
    let pod = Netns::unique("stbp").map_err(|e| e.to_string())?;
    let pod_path = pod.path();
    node.run(move || -> Result<Floors, String> {
        let mut f = Floors::default();
        let pod_ns = NetnsHandle::open(&pod_path).map_err(|e| e.to_string())?;
        let mut nl = Netlink::open().map_err(|e| e.to_string())?;
        for _ in 0..pods {
            let start = Instant::now();
            let out = Command::new("/bin/true")
                .output()
                .map_err(|e| e.to_string())?;
            f.spawn.push(start.elapsed());
            if !out.status.success() {
                return Err("/bin/true failed".into());
            }
            let spec = link::VethSpec {
                host_name: "stfloor0",
                peer_name: "eth0",
                peer_netns: &pod_ns.file,
                mtu: 1500,
                master: None,
                peer_gso_max_size: None,
            };
            let start = Instant::now();
            let l = link::create_veth(&mut nl, &spec).map_err(|e| e.to_string())?;
            f.veth_create.push(start.elapsed());
            let start = Instant::now();
            link::delete(&mut nl, l.index, "stfloor0").map_err(|e| e.to_string())?;
            f.veth_delete.push(start.elapsed());
        }
        f.spawn.sort();
        f.veth_create.sort();
        f.veth_delete.sort();
        Ok(f)
    })
    .map_err(|e| e.to_string())?
}

fn measure(side: &Side, pods: usize, parallel: usize) -> Result<Numbers, String> {
    let node = Netns::unique("stbench").map_err(|e| e.to_string())?;
    let ns: Vec<Netns> = (0..pods)
        .map(|_| Netns::unique("stbp"))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let paths: Vec<PathBuf> = ns.iter().map(Netns::path).collect();
    let plugin = side.plugin.clone();
    let conf = side.conf.to_string();
    node.run(move || -> Result<Numbers, String> {
        let mut n = Numbers::default();
        // Warm up caches (page cache of the binaries, the bridge).
        invoke(&plugin, "ADD", "warm", &paths[0], &conf)?;
        invoke(&plugin, "DEL", "warm", &paths[0], &conf)?;
        for (i, p) in paths.iter().enumerate() {
            n.add
                .push(invoke(&plugin, "ADD", &format!("s{i}"), p, &conf)?);
        }
        for (i, p) in paths.iter().enumerate() {
            n.del
                .push(invoke(&plugin, "DEL", &format!("s{i}"), p, &conf)?);
        }
        n.add.sort();
        n.del.sort();
        n.par_add_rate = in_parallel(&plugin, "ADD", &paths, &conf, parallel)?;
        n.par_del_rate = in_parallel(&plugin, "DEL", &paths, &conf, parallel)?;
        Ok(n)
    })
    .map_err(|e| e.to_string())?
}

/// Runs `command` for every pod with `parallel` processes at once; pods/s.
fn in_parallel(
    plugin: &Path,
    command: &str,
    paths: &[PathBuf],
    conf: &str,
    parallel: usize,
) -> Result<f64, String> {
    let start = Instant::now();
    let chunks: Vec<Vec<(usize, PathBuf)>> = (0..parallel)
        .map(|w| {
            paths
                .iter()
                .enumerate()
                .filter(|(i, _)| i % parallel == w)
                .map(|(i, p)| (i, p.clone()))
                .collect()
        })
        .collect();
    // Threads spawned here inherit this thread's network namespace.
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let plugin = plugin.to_path_buf();
            let conf = conf.to_owned();
            let command = command.to_owned();
            std::thread::spawn(move || -> Result<(), String> {
                for (i, p) in chunk {
                    invoke(&plugin, &command, &format!("p{i}"), &p, &conf)?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "a worker panicked".to_owned())??;
    }
    Ok(paths.len() as f64 / start.elapsed().as_secs_f64())
}

fn invoke(
    plugin: &Path,
    command: &str,
    id: &str,
    netns: &Path,
    conf: &str,
) -> Result<Duration, String> {
    let start = Instant::now();
    let mut child = Command::new(plugin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", REFERENCE_PLUGINS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", plugin.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(conf.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{} {command} for {id} failed: {}{}",
            plugin.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(took)
}
