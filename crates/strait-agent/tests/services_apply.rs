//! The agent's incremental nft path for Services, in a real namespace: a
//! Service whose endpoint count moves it to a group that does not exist
//! yet is one incremental transaction (new map and chain added, the
//! emptied group removed), not a table rewrite, and the kernel ends up
//! holding what a full rewrite would.

mod common;
use strait_agent::apply::Applier;
use strait_agent::run::{load_config, sync_once};
use strait_lab::Netns;

fn web(endpoints: &[&str]) -> String {
    let eps: Vec<String> = endpoints
        .iter()
        .map(|e| format!("{{addresses: [{e}]}}"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: node-1}}\nspec: {{podCIDR: 10.42.1.0/24}}\nstatus: {{addresses: [{{type: InternalIP, address: 10.0.0.1}}]}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: d}}\nspec:\n  clusterIP: 10.43.0.10\n  ports: [{{port: 80, targetPort: 8080}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-1, namespace: d, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\nendpoints: [{}]\nports: [{{port: 8080}}]\n",
        eps.join(", ")
    )
}

/// `nft -s list table` (no counters) with its lines sorted (listing order follows creation
/// order, which differs between a rewrite and incremental additions).
fn listing(ns: &Netns) -> Vec<String> {
    let text = ns
        .exec_ok(&["nft", "-s", "list", "table", "inet", "strait"])
        .unwrap();
    let mut lines: Vec<String> = text.lines().map(|l| l.trim().to_owned()).collect();
    lines.sort();
    lines
}

/// The changes of the second sync, the listing after it, and the listing
/// after a full rewrite of the same Plan.
type Outcome = (Vec<String>, Vec<String>, Vec<String>);

#[test]
fn a_new_endpoint_count_group_is_added_incrementally() {
    let (ns, dir) = common::one_node("stsvcap");
    let file = dir.path().join("manifests/all.yaml");
    std::fs::write(&file, web(&["10.42.2.5", "10.42.2.6"])).unwrap();
    let opts = common::once_options(dir.path(), "node-1");
    let (changes, incremental, rewritten) = ns
        .run(move || -> Result<Outcome, String> {
            let cfg = load_config(&opts.config)?;
            let mut applier = Applier::new(&opts.node_file).map_err(|e| e.to_string())?;
            let mut nl = strait_kernel::Netlink::open().map_err(|e| e.to_string())?;
            sync_once(&cfg, &opts, &mut applier, &mut nl, true, None)?;
            // Three endpoints: group eps-n3 does not exist yet.
            std::fs::write(&file, web(&["10.42.2.5", "10.42.2.6", "10.42.2.7"]))
                .map_err(|e| e.to_string())?;
            let changes = sync_once(&cfg, &opts, &mut applier, &mut nl, false, None)?.changes;
            let list = |what: &str| -> Result<Vec<String>, String> {
                let out = std::process::Command::new("nft")
                    .args(["-s", "list", "table", "inet", "strait"])
                    .output()
                    .map_err(|e| format!("{what}: {e}"))?;
                let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(|l| l.trim().to_owned())
                    .collect();
                lines.sort();
                Ok(lines)
            };
            let incremental = list("after the incremental update")?;
            // The same Plan written in full.
            sync_once(&cfg, &opts, &mut applier, &mut nl, true, None)?;
            Ok((changes, incremental, list("after a rewrite")?))
        })
        .unwrap()
        .unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(
        changes[0].starts_with("nft table inet strait: ")
            && changes[0].contains("element updates")
            && changes[0].contains("objects added"),
        "not incremental: {changes:?}"
    );
    let text = incremental.join("\n");
    assert!(
        text.contains("map eps-n3 {") && !text.contains("map eps-n2 {"),
        "{text}"
    );
    assert!(text.contains("10.42.2.7 . 8080"), "{text}");
    assert_eq!(incremental, rewritten);
    assert_eq!(listing(&ns), rewritten);
}

/// An element changed behind the agent's back (the stamp still matches):
/// the netlink update that deletes it is refused, and the same sync loads
/// the whole table instead of failing on every sync after it.
#[test]
fn a_refused_incremental_update_loads_the_whole_table() {
    let (ns, dir) = common::one_node("stsvcrf");
    let file = dir.path().join("manifests/all.yaml");
    std::fs::write(&file, web(&["10.42.2.5", "10.42.2.6"])).unwrap();
    let opts = common::once_options(dir.path(), "node-1");
    let changes = ns
        .run(move || -> Result<Vec<String>, String> {
            let cfg = load_config(&opts.config)?;
            let mut applier = Applier::new(&opts.node_file).map_err(|e| e.to_string())?;
            let mut nl = strait_kernel::Netlink::open().map_err(|e| e.to_string())?;
            sync_once(&cfg, &opts, &mut applier, &mut nl, true, None)?;
            strait_kernel::nft::apply("flush map inet strait eps-n2\n")
                .map_err(|e| e.to_string())?;
            std::fs::write(&file, web(&["10.42.2.5", "10.42.2.7"])).map_err(|e| e.to_string())?;
            Ok(sync_once(&cfg, &opts, &mut applier, &mut nl, false, None)?.changes)
        })
        .unwrap()
        .unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("incremental update refused")),
        "{changes:?}"
    );
    assert!(
        changes.iter().any(|c| c.ends_with("rewritten")),
        "{changes:?}"
    );
    let map = ns
        .exec_ok(&["nft", "list", "map", "inet", "strait", "eps-n2"])
        .unwrap();
    assert!(
        map.contains("10.42.2.5 . 8080") && map.contains("10.42.2.7 . 8080"),
        "{map}"
    );
}
