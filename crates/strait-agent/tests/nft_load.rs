//! The netlink load (a dormant skeleton compiled by nft, copied with the
//! elements into the real table in one netlink transaction) must leave the
//! kernel holding exactly what the atomic `nft -f` of the whole table
//! leaves: checked for every golden Plan of strait-plan, over an older
//! table, listed by nft itself, in real namespaces.

mod common;
#[path = "../../strait-plan/tests/golden_case/mod.rs"]
mod golden_case;
use golden_case::{case_paths, compile_case};
use strait_agent::apply::Applier;
use strait_agent::nft_load::{load_by_netlink, BUILD_TABLE};
use strait_agent::run::{load_config, sync_once};
use strait_lab::Netns;

fn golden_tables() -> Vec<(String, strait_plan::nft::Table)> {
    case_paths()
        .into_iter()
        .filter_map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let plan = compile_case(&path).ok()?;
            Some((name, (*plan.nft).clone()))
        })
        .collect()
}

/// `nft -s list table` with its lines sorted (the order of elements in
/// a listing follows the kernel's hash order) and the stamp rule left out.
fn listing(ns: &Netns, table: &str) -> Vec<String> {
    let text = ns
        .exec_ok(&["nft", "-s", "list", "table", "inet", table])
        .unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_owned())
        .filter(|l| !l.contains("comment \"strait:"))
        .flat_map(|l| {
            // Element lists: one element per line, whatever nft's wrapping.
            l.split(", ").map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

/// `load_by_netlink` of `table` (stamp `strait:0123456789abcdef`) in `ns`;
/// how many elements went through netlink.
fn load_in(ns: &Netns, table: &strait_plan::nft::Table) -> Result<usize, String> {
    let t = table.clone();
    ns.run(move || load_by_netlink(&t, "strait:0123456789abcdef").map_err(|e| e.to_string()))
        .unwrap()
}

/// Loads `text` with `nft -f` in `ns`.
fn nft_file(ns: &Netns, text: &str) -> Result<String, String> {
    let script = std::env::temp_dir().join(format!("{}.nft", ns.name));
    std::fs::write(&script, text).unwrap();
    let out = ns.exec_ok(&["nft", "-f", script.to_str().unwrap()]);
    std::fs::remove_file(&script).unwrap();
    out.map_err(|e| e.to_string())
}

fn stamped(table: &strait_plan::nft::Table, stamp: &str) -> String {
    let mut text = strait_plan::nft::render(table);
    text.push_str(&format!(
        "add chain inet {t} stamp\nadd rule inet {t} stamp counter comment \"{stamp}\"\n",
        t = table.name
    ));
    text
}

#[test]
fn every_golden_table_loads_by_netlink_as_it_loads_atomically() {
    let tables = golden_tables();
    assert!(tables.len() >= 15, "golden cases: {}", tables.len());
    let mut with_elements = 0;
    // Each netlink load replaces the table of the case before it (another
    // shape: other chains, sets, counters), as a resync replaces an older
    // table; the first one finds none.
    let by_netlink = Netns::unique("stldB").unwrap();
    for (name, table) in tables {
        let atomic = Netns::unique("stldA").unwrap();
        nft_file(&atomic, &stamped(&table, "strait:0123456789abcdef"))
            .unwrap_or_else(|e| panic!("{name}: nft -f: {e}"));
        let n =
            load_in(&by_netlink, &table).unwrap_or_else(|e| panic!("{name}: load by netlink: {e}"));
        if n > 0 {
            with_elements += 1;
        }
        assert_eq!(
            listing(&by_netlink, &table.name),
            listing(&atomic, &table.name),
            "{name}: the kernel holds something else after the netlink load ({n} elements)"
        );
        let stamp = by_netlink
            .exec_ok(&["nft", "list", "chain", "inet", &table.name, "stamp"])
            .unwrap();
        assert!(stamp.contains("strait:0123456789abcdef"), "{name}: {stamp}");
        let tables = by_netlink.exec_ok(&["nft", "list", "tables"]).unwrap();
        assert_eq!(
            tables.trim(),
            format!("table inet {}", table.name),
            "{name}: the build table must go in the same transaction"
        );
    }
    // The cases exercise verdict maps, DNAT maps, mark maps, numgen keys,
    // concatenation sets and plain sets.
    assert!(
        with_elements >= 10,
        "only {with_elements} cases had elements"
    );
}

#[test]
fn a_refused_batch_leaves_the_table_the_kernel_held() {
    let ns = Netns::unique("stldF").unwrap();
    let (_, mut table) = golden_tables()
        .into_iter()
        .find(|(n, _)| n == "services-clusterip")
        .unwrap();
    nft_file(&ns, &stamped(&table, "strait:00000000000000aa")).unwrap();
    let before = listing(&ns, &table.name);
    // A verdict map element pointing at a chain the table does not have:
    // nft would refuse the whole script; the kernel refuses the batch.
    let map = table
        .maps
        .iter_mut()
        .find(|m| m.value == strait_plan::nft::MapValue::Verdict && !m.elements.is_empty())
        .expect("a verdict map with elements");
    map.elements[0].1 =
        strait_plan::nft::MapData::Verdict(strait_plan::nft::Verdict::Goto("no-such-chain".into()));
    let err = load_in(&ns, &table).unwrap_err();
    assert!(err.contains("netlink batch"), "{err}");
    assert_eq!(
        listing(&ns, &table.name),
        before,
        "a refused batch changed the table"
    );
    let stamp = ns
        .exec_ok(&["nft", "list", "chain", "inet", &table.name, "stamp"])
        .unwrap();
    assert!(stamp.contains("strait:00000000000000aa"), "{stamp}");
    // The refused load left its dormant build table (as an agent killed
    // mid-load would); the next load replaces it and removes it.
    let tables = ns.exec_ok(&["nft", "list", "tables"]).unwrap();
    assert!(tables.contains(BUILD_TABLE), "{tables}");
    let (_, good) = golden_tables()
        .into_iter()
        .find(|(n, _)| n == "services-clusterip")
        .unwrap();
    load_in(&ns, &good).unwrap();
    let tables = ns.exec_ok(&["nft", "list", "tables"]).unwrap();
    assert_eq!(tables.trim(), "table inet strait");
    // `strait agent --cleanup` removes a leftover build table too.
    let leftover = format!("table inet {BUILD_TABLE} {{\n flags dormant\n}}\n");
    nft_file(&ns, &leftover).unwrap();
    let node_file = std::env::temp_dir().join(format!("{}.json", ns.name));
    ns.run(move || {
        Applier::new(&node_file)
            .map_err(|e| e.to_string())?
            .cleanup("strait0")
            .map_err(|e| e.join("; "))
    })
    .unwrap()
    .unwrap();
    let tables = ns.exec_ok(&["nft", "list", "tables"]).unwrap();
    assert_eq!(tables.trim(), "", "left after cleanup: {tables}");
}

fn services(n: usize) -> String {
    let mut text = String::from(
        "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\nspec: {podCIDR: 10.42.1.0/24}\nstatus: {addresses: [{type: InternalIP, address: 10.0.0.1}]}\n",
    );
    for s in 0..n {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{s}, namespace: d}}\nspec:\n  clusterIP: 10.43.{}.{}\n  ports: [{{port: 80, targetPort: 8080}}]\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: s{s}-1, namespace: d, labels: {{kubernetes.io/service-name: s{s}}}}}\naddressType: IPv4\n\
             endpoints: [{{addresses: [10.42.2.{}]}}, {{addresses: [10.42.3.{}]}}]\nports: [{{port: 8080}}]\n",
            1 + s / 250,
            1 + s % 250,
            1 + s % 250,
            1 + s % 250
        ));
    }
    text
}

/// Through the agent: a first sync takes the netlink path; an agent started
/// later finds the stamp and changes nothing; a full resync with the table
/// present takes the netlink path too. A table deleted or changed behind
/// the agent's back is put back by the next ordinary (not full) sync.
#[test]
fn the_agent_loads_a_large_table_through_netlink() {
    let (ns, dir) = common::one_node("stldG");
    std::fs::write(dir.path().join("manifests/all.yaml"), services(600)).unwrap();
    let opts = common::once_options(dir.path(), "node-1");
    let [first, restarted, full, deleted, changed, quiet] = ns
        .run(move || -> Result<[Vec<String>; 6], String> {
            let cfg = load_config(&opts.config)?;
            let mut nl = strait_kernel::Netlink::open().map_err(|e| e.to_string())?;
            let mut applier = Applier::new(&opts.node_file).map_err(|e| e.to_string())?;
            let first = sync_once(&cfg, &opts, &mut applier, &mut nl, true, None)?.changes;
            // A new agent (restart): same Plan, the kernel's stamp matches.
            let mut applier = Applier::new(&opts.node_file).map_err(|e| e.to_string())?;
            let restarted = sync_once(&cfg, &opts, &mut applier, &mut nl, false, None)?.changes;
            let full = sync_once(&cfg, &opts, &mut applier, &mut nl, true, None)?.changes;
            strait_kernel::nft::apply("delete table inet strait\n").map_err(|e| e.to_string())?;
            let deleted = sync_once(&cfg, &opts, &mut applier, &mut nl, false, None)?.changes;
            strait_kernel::nft::apply("flush chain inet strait stamp\n")
                .map_err(|e| e.to_string())?;
            let changed = sync_once(&cfg, &opts, &mut applier, &mut nl, false, None)?.changes;
            let quiet = sync_once(&cfg, &opts, &mut applier, &mut nl, false, None)?.changes;
            Ok([first, restarted, full, deleted, changed, quiet])
        })
        .unwrap()
        .unwrap();
    let by_netlink = |changes: &[String]| {
        changes
            .iter()
            .any(|c| c.contains("loaded in one netlink transaction (1800 elements)"))
    };
    assert!(by_netlink(&first), "{first:?}");
    assert!(
        !restarted.iter().any(|c| c.contains("nft")),
        "a restarted agent rewrote a table that was right: {restarted:?}"
    );
    assert!(by_netlink(&full), "{full:?}");
    assert!(
        deleted
            .iter()
            .any(|c| c.contains("was deleted outside the agent"))
            && by_netlink(&deleted),
        "{deleted:?}"
    );
    assert!(
        changed
            .iter()
            .any(|c| c.contains("was changed outside the agent"))
            && changed.iter().any(|c| c.ends_with("rewritten")),
        "{changed:?}"
    );
    assert!(!quiet.iter().any(|c| c.contains("nft")), "{quiet:?}");
    // 600 Services x 2 endpoints reach the map, each key once.
    let eps = ns
        .exec_ok(&["nft", "list", "map", "inet", "strait", "eps-n2"])
        .unwrap();
    assert_eq!(eps.matches(" : 10.42.").count(), 1200, "{eps}");
}

/// The replacement is one transaction: a client connecting to a ClusterIP
/// over and over while the agent rewrites the whole table (full resyncs,
/// each through the netlink path) never finds it missing or half loaded.
/// A load that deleted the table first, or that filled the maps after the
/// rules, would refuse or lose connections in between.
#[test]
fn clients_see_no_gap_while_the_table_is_replaced() {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    let (ns, dir) = common::one_node("stldI");
    // s0's endpoints (10.42.2.1, 10.42.3.1 port 8080) live in this
    // namespace; the agent routes the service CIDR onto its bridge.
    for argv in [
        &["ip", "link", "set", "lo", "up"][..],
        &["ip", "link", "add", "ep0", "type", "bridge"],
        &["ip", "addr", "add", "10.42.2.1/32", "dev", "ep0"],
        &["ip", "addr", "add", "10.42.3.1/32", "dev", "ep0"],
        &["ip", "link", "set", "ep0", "up"],
    ] {
        ns.exec_ok(argv).unwrap();
    }
    std::fs::write(dir.path().join("manifests/all.yaml"), services(600)).unwrap();
    let opts = common::once_options(dir.path(), "node-1");
    let (loads, tries, failures) = ns
        .run(
            move || -> Result<(Vec<String>, usize, Vec<String>), String> {
                let listener = TcpListener::bind("0.0.0.0:8080").map_err(|e| e.to_string())?;
                std::thread::spawn(move || {
                    // Each client waits for this answer, so a slow acceptor
                    // (a busy 2-core machine) cannot overflow the backlog.
                    // The client closes first (the server reads to its
                    // EOF), so TIME_WAIT stays with the client, whose port
                    // choice avoids it; a server-side TIME_WAIT met by a
                    // reused client port answers with a reset.
                    for conn in listener.incoming().flatten() {
                        let _ = (&conn).write_all(b"ok");
                        let _ = (&conn).read_to_end(&mut Vec::new());
                    }
                });
                let cfg = load_config(&opts.config)?;
                let mut nl = strait_kernel::Netlink::open().map_err(|e| e.to_string())?;
                let mut applier = Applier::new(&opts.node_file).map_err(|e| e.to_string())?;
                let mut loads = sync_once(&cfg, &opts, &mut applier, &mut nl, true, None)?.changes;
                let stop = Arc::new(AtomicBool::new(false));
                let client = {
                    let stop = Arc::clone(&stop);
                    // Spawned from this thread: it is in the node's namespace.
                    std::thread::spawn(move || {
                        let to: SocketAddr = "10.43.1.1:80".parse().unwrap();
                        let (mut tries, mut failures) = (0, Vec::new());
                        while !stop.load(Ordering::Relaxed) {
                            tries += 1;
                            let answer = TcpStream::connect_timeout(&to, Duration::from_secs(1))
                                .and_then(|mut c| {
                                    c.set_read_timeout(Some(Duration::from_secs(1)))?;
                                    let mut buf = [0u8; 2];
                                    c.read_exact(&mut buf)
                                });
                            if let Err(e) = answer {
                                failures.push(format!("try {tries}: {e}"));
                            }
                            // About a thousand a second: a gap of a few
                            // milliseconds is still met, and the client's
                            // ports do not wrap around.
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        (tries, failures)
                    })
                };
                for _ in 0..5 {
                    loads
                        .extend(sync_once(&cfg, &opts, &mut applier, &mut nl, true, None)?.changes);
                }
                stop.store(true, Ordering::Relaxed);
                let (tries, failures) = client.join().unwrap();
                Ok((loads, tries, failures))
            },
        )
        .unwrap()
        .unwrap();
    let netlink_loads = loads
        .iter()
        .filter(|c| c.contains("loaded in one netlink transaction"))
        .count();
    assert_eq!(netlink_loads, 6, "{loads:?}");
    assert!(tries > 50, "only {tries} connections tried");
    assert!(
        failures.is_empty(),
        "{} of {tries} connections failed during the resyncs: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

/// An element-only change applied through netlink (`apply_changes`) leaves
/// the kernel holding what `nft -f` of the new table leaves: for every
/// golden table, each non-interval map loses its first element and its
/// second maps to the third's data; each non-interval set loses its first
/// element. Covers verdict maps, address . port maps, mark maps, numgen
/// keys, concatenation sets and plain address sets.
#[test]
fn element_changes_through_netlink_match_a_full_load() {
    use strait_agent::nft_update::{apply_changes, Path};
    use strait_plan::nft::incremental::changes_and_middles;
    let mut by_netlink = 0;
    for (name, old) in golden_tables() {
        let mut new = old.clone();
        for m in new.maps.iter_mut().filter(|m| !m.interval) {
            if m.elements.len() >= 3 {
                m.elements[1].1 = m.elements[2].1.clone();
            }
            if !m.elements.is_empty() {
                m.elements.remove(0);
            }
        }
        for s in new.concat_sets.iter_mut().filter(|s| !s.interval) {
            if !s.elements.is_empty() {
                s.elements.remove(0);
            }
        }
        for s in new
            .sets
            .iter_mut()
            .filter(|s| !s.interval && s.timeout.is_none())
        {
            if !s.elements.is_empty() {
                s.elements.remove(0);
            }
        }
        if new == old {
            continue;
        }
        let changed = Netns::unique("stldJ").unwrap();
        let full = Netns::unique("stldK").unwrap();
        nft_file(&changed, &stamped(&old, "strait:00000000000000aa")).unwrap();
        nft_file(&full, &stamped(&new, "strait:0123456789abcdef")).unwrap();
        let path = changed
            .run(move || {
                let changes = changes_and_middles(&old, &new).expect("elements only");
                apply_changes(&new, &changes, "strait:0123456789abcdef").map_err(|e| e.to_string())
            })
            .unwrap()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(path, Path::Netlink, "{name}");
        by_netlink += 1;
        assert_eq!(
            listing(&changed, "strait"),
            listing(&full, "strait"),
            "{name}: the netlink update left something else than a full load"
        );
        let stamp = changed
            .exec_ok(&["nft", "list", "chain", "inet", "strait", "stamp"])
            .unwrap();
        assert_eq!(
            stamp.matches("comment \"strait:0123456789abcdef\"").count(),
            1,
            "{name}: {stamp}"
        );
    }
    assert!(by_netlink >= 10, "only {by_netlink} cases changed");
}
