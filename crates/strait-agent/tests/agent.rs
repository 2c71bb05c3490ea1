//! The agent on two real node namespaces joined by an underlay switch, both
//! backends: routes, VXLAN FDB/neighbours, nft, drift repair, departed
//! nodes, cleanup. (Pods and the full lab are tested in the lab's suite.)

mod common;
use strait_agent::apply::Applier;
use strait_agent::run::{load_config, sync_once};
use strait_lab::Netns;

struct TwoNodes {
    _switch: Netns,
    nodes: Vec<Netns>,
    dir: tempfile::TempDir,
}

fn node_yaml(name: &str, ip: &str, cidr: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\nspec:\n  podCIDR: {cidr}\nstatus:\n  addresses:\n  - type: InternalIP\n    address: {ip}\n"
    )
}

fn setup(backend: &str) -> TwoNodes {
    let (switch, nodes) =
        strait_lab::switched_hosts("stsw", "stnode", &["192.0.2.11/24", "192.0.2.12/24"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::write(
        dir.path().join("agent.yaml"),
        format!("clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\nbackend: {backend}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("manifests/nodes.yaml"),
        format!(
            "{}---\n{}",
            node_yaml("node-1", "192.0.2.11", "10.42.1.0/24"),
            node_yaml("node-2", "192.0.2.12", "10.42.2.0/24")
        ),
    )
    .unwrap();
    TwoNodes {
        _switch: switch,
        nodes,
        dir,
    }
}

/// One sync of `node` inside its namespace; the changes it made.
fn sync(t: &TwoNodes, i: usize) -> Vec<String> {
    let opts = common::once_options(t.dir.path(), &format!("node-{}", i + 1));
    t.nodes[i]
        .run(move || -> Result<Vec<String>, String> {
            let cfg = load_config(&opts.config)?;
            let mut applier = Applier::new(&opts.node_file).map_err(|e| e.to_string())?;
            let mut nl = strait_kernel::Netlink::open().map_err(|e| e.to_string())?;
            sync_once(&cfg, &opts, &mut applier, &mut nl, true, None).map(|s| s.changes)
        })
        .unwrap()
        .unwrap_or_else(|e| panic!("sync of node-{} failed: {e}", i + 1))
}

fn cleanup(t: &TwoNodes, i: usize) {
    let opts = common::once_options(t.dir.path(), &format!("node-{}", i + 1));
    t.nodes[i]
        .run(move || strait_agent::run::cleanup(&opts))
        .unwrap()
        .unwrap();
}

fn ping(ns: &Netns, to: &str) -> bool {
    ns.exec(&["ping", "-c", "1", "-W", "2", to])
        .unwrap()
        .status
        .success()
}

#[test]
fn vxlan_backend_end_to_end() {
    let t = setup("vxlan");
    assert!(!sync(&t, 0).is_empty());
    assert!(!sync(&t, 1).is_empty());
    let n1 = &t.nodes[0];
    let routes = n1.exec_ok(&["ip", "route", "show", "proto", "90"]).unwrap();
    assert!(
        routes.contains("10.42.2.0/24 via 10.42.2.0 dev strait.vxlan onlink"),
        "{routes}"
    );
    let fdb = n1
        .exec_ok(&["bridge", "fdb", "show", "dev", "strait.vxlan"])
        .unwrap();
    assert!(
        fdb.contains("0a:58:c0:00:02:0c dst 192.0.2.12 self permanent"),
        "{fdb}"
    );
    let neigh = n1
        .exec_ok(&["ip", "neigh", "show", "dev", "strait.vxlan"])
        .unwrap();
    assert!(
        neigh.contains("10.42.2.0 lladdr 0a:58:c0:00:02:0c PERMANENT"),
        "{neigh}"
    );
    let link = n1
        .exec_ok(&["ip", "-d", "link", "show", "strait.vxlan"])
        .unwrap();
    assert!(
        link.contains("mtu 1450") && link.contains("vxlan id 1"),
        "{link}"
    );
    let node_file = std::fs::read_to_string(t.dir.path().join("node-1.json")).unwrap();
    assert_eq!(
        node_file,
        r#"{"podCIDRs":["10.42.1.0/24"],"mtu":1450,"gsoMaxSize":64000}"#
    );
    let nft = n1
        .exec_ok(&["nft", "list", "table", "inet", "strait"])
        .unwrap();
    assert!(nft.contains("masquerade"), "{nft}");

    // Across the tunnel: node-1 reaches node-2's pod gateway.
    assert!(ping(n1, "10.42.2.1"), "no path through the VXLAN tunnel");

    // A second sync with nothing changed changes nothing.
    assert_eq!(sync(&t, 0), Vec::<String>::new());

    // Drift: a deleted route and FDB entry come back.
    n1.exec_ok(&["ip", "route", "del", "10.42.2.0/24"]).unwrap();
    n1.exec_ok(&[
        "bridge",
        "fdb",
        "del",
        "0a:58:c0:00:02:0c",
        "dev",
        "strait.vxlan",
        "dst",
        "192.0.2.12",
        "self",
    ])
    .unwrap();
    let repaired = sync(&t, 0);
    assert_eq!(repaired.len(), 2, "{repaired:?}");
    assert!(ping(n1, "10.42.2.1"));

    // node-2 leaves: node-1 forgets it.
    std::fs::write(
        t.dir.path().join("manifests/nodes.yaml"),
        node_yaml("node-1", "192.0.2.11", "10.42.1.0/24"),
    )
    .unwrap();
    sync(&t, 0);
    let routes = n1.exec_ok(&["ip", "route", "show", "proto", "90"]).unwrap();
    assert!(!routes.contains("10.42.2.0"), "{routes}");
    let fdb = n1
        .exec_ok(&["bridge", "fdb", "show", "dev", "strait.vxlan"])
        .unwrap();
    assert!(!fdb.contains("192.0.2.12"), "{fdb}");

    // Cleanup leaves the node as it was.
    cleanup(&t, 0);
    let links = n1.exec_ok(&["ip", "-o", "link"]).unwrap();
    assert!(!links.contains("strait"), "{links}");
    assert!(n1
        .exec_ok(&["ip", "route", "show", "proto", "90"])
        .unwrap()
        .is_empty());
    assert!(
        n1.exec(&["nft", "list", "table", "inet", "strait"])
            .unwrap()
            .status
            .code()
            != Some(0)
    );
    assert!(!t.dir.path().join("node-1.json").exists());
}

#[test]
fn host_gw_backend_end_to_end() {
    let t = setup("host-gw");
    sync(&t, 0);
    sync(&t, 1);
    let n1 = &t.nodes[0];
    let routes = n1.exec_ok(&["ip", "route", "show", "proto", "90"]).unwrap();
    assert!(
        routes.contains("10.42.2.0/24 via 192.0.2.12 dev eth0"),
        "{routes}"
    );
    assert!(n1
        .exec_ok(&["ip", "link", "show"])
        .unwrap()
        .find("strait.vxlan")
        .is_none());
    let node_file = std::fs::read_to_string(t.dir.path().join("node-1.json")).unwrap();
    assert_eq!(node_file, r#"{"podCIDRs":["10.42.1.0/24"],"mtu":1500}"#);
    assert!(ping(n1, "10.42.2.1"), "no routed path to node-2's pods");
    cleanup(&t, 0);
    cleanup(&t, 1);
}

/// When only endpoints change, the agent sends element updates instead of
/// rewriting the table, and the kernel holds the new endpoint afterwards.
#[test]
fn endpoint_changes_are_element_updates() {
    let t = setup("vxlan");
    let svc = |ep2: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: d}}\nspec:\n  clusterIP: 10.43.0.10\n  ports: [{{port: 80, targetPort: 8080}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-1, namespace: d, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\nendpoints: [{{addresses: [10.42.2.5]}}, {{addresses: [{ep2}]}}]\nports: [{{port: 8080}}]\n")
    };
    let manifests = t.dir.path().join("manifests");
    std::fs::write(manifests.join("web.yaml"), svc("10.42.2.6")).unwrap();
    let opts = common::once_options(t.dir.path(), "node-1");
    let changes = t.nodes[0]
        .run(move || -> Result<Vec<String>, String> {
            let cfg = load_config(&opts.config)?;
            let mut applier = Applier::new(&opts.node_file).map_err(|e| e.to_string())?;
            let mut nl = strait_kernel::Netlink::open().map_err(|e| e.to_string())?;
            sync_once(&cfg, &opts, &mut applier, &mut nl, true, None)?;
            std::fs::write(opts.manifests.join("web.yaml"), svc("10.42.2.7"))
                .map_err(|e| e.to_string())?;
            let changes = sync_once(&cfg, &opts, &mut applier, &mut nl, false, None)?.changes;
            // The stamp written with the elements is the Plan's: a fresh
            // agent finds nothing to do.
            let mut fresh = Applier::new(&opts.node_file).map_err(|e| e.to_string())?;
            let again = sync_once(&cfg, &opts, &mut fresh, &mut nl, false, None)?.changes;
            if again.iter().any(|c| c.contains("nft")) {
                return Err(format!("a fresh agent changed the table: {again:?}"));
            }
            Ok(changes)
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        changes,
        vec!["nft table inet strait: 2 element updates (netlink)".to_owned()],
        "{changes:?}"
    );
    let map = t.nodes[0]
        .exec_ok(&["nft", "list", "map", "inet", "strait", "eps-n2"])
        .unwrap();
    assert!(
        map.contains("10.42.2.7 . 8080") && !map.contains("10.42.2.6"),
        "{map}"
    );
    // The stamp moved with it: a fresh agent would find nothing to do.
    let stamp = t.nodes[0]
        .exec_ok(&["nft", "list", "chain", "inet", "strait", "stamp"])
        .unwrap();
    assert!(stamp.contains("comment \"strait:"), "{stamp}");
}
