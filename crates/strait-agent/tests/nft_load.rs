//! The cold-start load (skeleton through `nft -f`, elements through one
//! netlink batch, then the stamp) must leave the kernel holding exactly
//! what the atomic `nft -f` of the whole table leaves: checked for every
//! golden Plan of strait-plan, listed by nft itself, in real namespaces.

mod common;
#[path = "../../strait-plan/tests/golden_case/mod.rs"]
mod golden_case;
use golden_case::{compile_case, golden_dir};
use std::path::PathBuf;
use strait_agent::apply::Applier;
use strait_agent::nft_load::load_in_steps;
use strait_agent::run::{load_config, sync_once};
use strait_lab::Netns;

fn golden_tables() -> Vec<(String, strait_plan::nft::Table)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
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

#[test]
fn every_golden_table_loads_in_steps_as_it_loads_atomically() {
    let tables = golden_tables();
    assert!(tables.len() >= 15, "golden cases: {}", tables.len());
    let mut with_elements = 0;
    for (name, table) in tables {
        let atomic = Netns::unique("stldA").unwrap();
        let steps = Netns::unique("stldB").unwrap();
        let mut text = strait_plan::nft::render(&table);
        text.push_str(&format!(
            "add chain inet {t} stamp\nadd rule inet {t} stamp return comment \"strait:0123456789abcdef\"\n",
            t = table.name
        ));
        let script = std::env::temp_dir().join(format!("{}.nft", atomic.name));
        std::fs::write(&script, &text).unwrap();
        atomic
            .exec_ok(&["nft", "-f", script.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("{name}: nft -f: {e}"));
        std::fs::remove_file(&script).unwrap();
        let t = table.clone();
        let n = steps
            .run(move || load_in_steps(&t, "strait:0123456789abcdef").map_err(|e| e.to_string()))
            .unwrap()
            .unwrap_or_else(|e| panic!("{name}: load in steps: {e}"));
        if n > 0 {
            with_elements += 1;
        }
        assert_eq!(
            listing(&steps, &table.name),
            listing(&atomic, &table.name),
            "{name}: the kernel holds something else after the load in steps ({n} elements by netlink)"
        );
        let stamp = steps
            .exec_ok(&["nft", "list", "chain", "inet", &table.name, "stamp"])
            .unwrap();
        assert!(stamp.contains("strait:0123456789abcdef"), "{name}: {stamp}");
    }
    // The cases exercise verdict maps, DNAT maps, mark maps, numgen keys,
    // concatenation sets and plain sets.
    assert!(
        with_elements >= 10,
        "only {with_elements} cases had elements"
    );
}

#[test]
fn a_refused_batch_changes_no_element_and_leaves_a_stamp_that_matches_no_plan() {
    let ns = Netns::unique("stldF").unwrap();
    let (_, mut table) = golden_tables()
        .into_iter()
        .find(|(n, _)| n == "services-clusterip")
        .unwrap();
    // A verdict map element pointing at a chain the table does not have:
    // nft would refuse the whole script; the kernel refuses the batch.
    let map = table
        .maps
        .iter_mut()
        .find(|m| m.value == strait_plan::nft::MapValue::Verdict && !m.elements.is_empty())
        .expect("a verdict map with elements");
    let elements_before = map.elements.len();
    map.elements[0].1 =
        strait_plan::nft::MapData::Verdict(strait_plan::nft::Verdict::Goto("no-such-chain".into()));
    let name = map.name.clone();
    let t = table.clone();
    let err = ns
        .run(move || load_in_steps(&t, "strait:0123456789abcdef").map_err(|e| e.to_string()))
        .unwrap()
        .unwrap_err();
    assert!(err.contains("netlink element batch"), "{err}");
    let listed = ns
        .exec_ok(&["nft", "list", "table", "inet", &table.name])
        .unwrap();
    assert!(listed.contains("strait:loading"), "{listed}");
    let map_listing = ns
        .exec_ok(&["nft", "list", "map", "inet", &table.name, &name])
        .unwrap();
    assert!(
        !map_listing.contains("elements"),
        "{elements_before} elements planned, none may be in the kernel: {map_listing}"
    );
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

/// Through the agent: a first sync into a namespace without the table takes
/// the netlink path; an agent started later finds the stamp and changes
/// nothing; the next sync with the table present is the atomic rewrite. A
/// table deleted or changed behind the agent's back is put back by the next
/// ordinary (not full) sync.
#[test]
fn the_agent_loads_a_large_table_through_netlink_only_when_none_exists() {
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
    assert!(
        first
            .iter()
            .any(|c| c.contains("elements loaded through netlink")),
        "{first:?}"
    );
    assert!(
        !restarted.iter().any(|c| c.contains("nft")),
        "a restarted agent rewrote a table that was right: {restarted:?}"
    );
    assert!(
        !full.iter().any(|c| c.contains("netlink")),
        "with the table present, a full resync must be one atomic nft transaction: {full:?}"
    );
    assert!(
        deleted
            .iter()
            .any(|c| c.contains("was deleted outside the agent"))
            && deleted
                .iter()
                .any(|c| c.contains("elements loaded through netlink")),
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
