//! The topology schema: the default lab, the documented example, and the
//! errors bad topologies give (no root needed).

use strait_lab::topology::{is_lab_netns, netns_name, Backend, NsKind, Topology};
use strait_lab::{LabError, Target};

const DOCS: &str = include_str!("../../../docs/lab.md");

/// The default lab as YAML, edited by `f` (a line-level text edit keeps the
/// tests close to what a user writes).
fn default_yaml() -> String {
    Topology::default_lab().to_yaml()
}

fn err(yaml: &str) -> (String, String) {
    match Topology::from_yaml(yaml) {
        Err(LabError::Topology { field, message }) => (field, message),
        other => panic!("expected a topology error, got {other:?}"),
    }
}

fn err_of(t: &Topology) -> (String, String) {
    match t.validate() {
        Err(LabError::Topology { field, message }) => (field, message),
        other => panic!("expected a topology error, got {other:?}"),
    }
}

#[test]
fn default_lab_validates_and_is_what_the_brief_says() {
    let t = Topology::default_lab();
    t.validate().expect("default lab validates");
    assert_eq!(t.name, "strait");
    assert_eq!(t.underlay.subnet.to_string(), "192.168.1.0/24");
    assert_eq!(t.underlay.mtu, 1500);
    assert_eq!(t.router.underlay_ip.to_string(), "192.168.1.1");
    assert!(t.router.routes.is_empty());
    let ext = &t.external_networks[0];
    assert_eq!(
        (ext.subnet.to_string(), ext.router_ip.to_string()),
        ("192.168.2.0/24".into(), "192.168.2.1".into())
    );
    assert_eq!(ext.hosts[0].name, "legacy-db");
    assert_eq!(ext.hosts[0].ip.to_string(), "192.168.2.10");
    let nodes: Vec<(String, String)> = t
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.ip.to_string()))
        .collect();
    assert_eq!(
        nodes,
        [
            ("node-1".into(), "192.168.1.11".into()),
            ("node-2".into(), "192.168.1.12".into())
        ]
    );
    for n in &t.nodes {
        assert_eq!(n.static_routes.len(), 1);
        assert_eq!(n.static_routes[0].to.to_string(), "192.168.2.0/24");
        assert_eq!(n.static_routes[0].via.to_string(), "192.168.1.1");
    }
    let cidrs: Vec<String> = t
        .pod_cidrs()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(cidrs, ["10.42.1.0/24", "10.42.2.0/24"]);
    assert_eq!(t.service_cidr.to_string(), "10.43.0.0/16");
    assert_eq!(t.backend, Backend::Vxlan);
    assert_eq!(t.netns(NsKind::Node, "node-1"), "strait-node-node-1");
    assert_eq!(t.netns(NsKind::Router, ""), "strait-router");
    assert_eq!(t.netns(NsKind::Host, "legacy-db"), "strait-host-legacy-db");
    assert_eq!(t.netns(NsKind::Switch, "underlay"), "strait-sw-underlay");
}

#[test]
fn default_lab_round_trips_through_yaml() {
    let back = Topology::from_yaml(&default_yaml()).expect("parses");
    assert_eq!(back, Topology::default_lab());
}

#[test]
fn documented_example_parses() {
    let start = DOCS
        .find("```yaml\nname: strait")
        .expect("docs/lab.md has the example")
        + 8;
    let end = start + DOCS[start..].find("```").unwrap();
    let t = Topology::from_yaml(&DOCS[start..end]).expect("the documented example is valid");
    assert_eq!(t.nodes.len(), 3);
    assert!(t.nodes[2].static_routes.is_empty());
    let cidrs: Vec<String> = t
        .pod_cidrs()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(cidrs, ["10.42.1.0/24", "10.42.2.0/24", "10.42.100.0/24"]);
    let agent = t.agent_config();
    assert_eq!(agent["clusterCIDR"].as_str(), Some("10.42.0.0/16"));
    assert_eq!(agent["backend"].as_str(), Some("vxlan"));
    assert_eq!(agent["mtu"].as_u64(), Some(1500));
    assert_eq!(
        agent["nonMasqueradeCIDRs"][0].as_str(),
        Some("192.168.2.0/24")
    );
    assert_eq!(agent["nodeRoutes"][0]["via"].as_str(), Some("192.168.1.1"));
}

#[test]
fn a_minimal_topology_gets_defaults() {
    let t = Topology::from_yaml(
        "underlay: {subnet: 10.0.0.0/24}\nrouter: {underlayIP: 10.0.0.1}\n\
         nodes: [{name: a, ip: 10.0.0.2}]\nclusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\n",
    )
    .unwrap();
    assert_eq!(
        (t.name.as_str(), t.underlay.mtu, t.backend),
        ("strait", 1500, Backend::Vxlan)
    );
    assert!(t.external_networks.is_empty() && t.agent.is_none() && t.mtu.is_none());
}

#[test]
fn syntax_and_schema_errors_name_field_and_value() {
    assert!(matches!(
        Topology::from_yaml("nodes: [unclosed"),
        Err(LabError::TopologySyntax(_))
    ));
    let (f, m) = err(&default_yaml().replace("underlay:\n", "underlay:\n  colour: blue\n"));
    assert_eq!(f, "underlay.colour");
    assert!(m.contains("unknown field `colour`"), "{m}");

    let (f, m) = err(&default_yaml().replace("ip: 192.168.1.12", "ip: 192.168.1.300"));
    assert_eq!(f, "nodes[1].ip");
    assert!(m.contains("192.168.1.300"), "{m}");

    let (f, m) = err(&default_yaml().replace("backend: vxlan", "backend: geneve"));
    assert_eq!(f, "backend");
    assert!(m.contains("geneve"), "{m}");

    let (f, m) = err(&default_yaml().replace("serviceCIDR: 10.43.0.0/16\n", ""));
    assert_eq!(f, "");
    assert!(m.contains("serviceCIDR"), "{m}");

    let (f, m) = err(&default_yaml().replace("mtu: 1500", "mtu: lots"));
    assert_eq!(f, "underlay.mtu");
    assert!(m.contains("lots"), "{m}");
}

#[test]
fn addresses_must_be_inside_their_subnets_and_unique() {
    let mut t = Topology::default_lab();
    t.nodes[1].ip = "192.168.3.12".parse().unwrap();
    let (f, m) = err_of(&t);
    assert_eq!(f, "nodes[1].ip");
    assert!(
        m.contains("192.168.3.12") && m.contains("underlay.subnet 192.168.1.0/24"),
        "{m}"
    );

    let mut t = Topology::default_lab();
    t.nodes[1].ip = t.nodes[0].ip;
    let (f, m) = err_of(&t);
    assert_eq!(f, "nodes[1].ip");
    assert!(
        m.contains("192.168.1.11 is already used by nodes[0].ip"),
        "{m}"
    );

    let mut t = Topology::default_lab();
    t.nodes[0].ip = "192.168.1.1".parse().unwrap();
    let (f, m) = err_of(&t);
    assert_eq!(f, "nodes[0].ip");
    assert!(m.contains("router.underlayIP"), "{m}");

    let mut t = Topology::default_lab();
    t.external_networks[0].hosts[0].ip = "192.168.1.50".parse().unwrap();
    let (f, m) = err_of(&t);
    assert_eq!(f, "externalNetworks[0].hosts[0].ip");
    assert!(m.contains("192.168.1.50"), "{m}");

    let mut t = Topology::default_lab();
    t.router.underlay_ip = "192.168.1.255".parse().unwrap();
    let (f, m) = err_of(&t);
    assert_eq!(f, "router.underlayIP");
    assert!(m.contains("broadcast"), "{m}");

    let mut t = Topology::default_lab();
    t.external_networks[0].subnet = "192.168.1.128/25".parse().unwrap();
    let (f, m) = err_of(&t);
    assert_eq!(f, "externalNetworks[0].subnet");
    assert!(m.contains("overlaps underlay.subnet"), "{m}");

    let mut t = Topology::default_lab();
    t.cluster_cidr = "10.42.0.1/16".parse().unwrap();
    let (f, m) = err_of(&t);
    assert_eq!(f, "clusterCIDR");
    assert!(m.contains("10.42.0.1/16 has host bits set"), "{m}");
}

#[test]
fn names_must_be_unique_valid_and_fit() {
    let mut t = Topology::default_lab();
    t.nodes[1].name = "node-1".into();
    let (f, m) = err_of(&t);
    assert_eq!(f, "nodes[1].name");
    assert!(
        m.contains("\"node-1\" is already the name of nodes[0].name"),
        "{m}"
    );

    let mut t = Topology::default_lab();
    t.nodes[0].name = "Node_1".into();
    assert_eq!(err_of(&t).0, "nodes[0].name");

    let mut t = Topology::default_lab();
    t.name = "my-lab".into();
    let (f, m) = err_of(&t);
    assert_eq!(f, "name");
    assert!(m.contains("my-lab"), "{m}");

    let mut t = Topology::default_lab();
    t.external_networks[0].name = "underlay".into();
    assert_eq!(err_of(&t).0, "externalNetworks[0].name");

    let mut t = Topology::default_lab();
    t.name = "abcdefghijklmnop".into();
    t.external_networks[0].hosts[0].name = "a-very-long-external-host-name-x".into();
    let (f, m) = err_of(&t);
    assert_eq!(f, "externalNetworks[0].hosts[0].name");
    assert!(m.contains("more than 50"), "{m}");
}

#[test]
fn pod_cidrs_must_be_inside_the_cluster_and_apart() {
    let mut t = Topology::default_lab();
    t.nodes[0].pod_cidr = Some("10.50.1.0/24".parse().unwrap());
    let (f, m) = err_of(&t);
    assert_eq!(f, "nodes[0].podCIDR");
    assert!(
        m.contains("10.50.1.0/24 is not inside clusterCIDR 10.42.0.0/16"),
        "{m}"
    );

    // node-2 explicitly takes node-1's default /24.
    let mut t = Topology::default_lab();
    t.nodes[1].pod_cidr = Some("10.42.1.0/25".parse().unwrap());
    let (f, m) = err_of(&t);
    assert_eq!(f, "nodes[1].podCIDR");
    assert!(
        m.contains("overlaps the pod CIDR 10.42.1.0/24 of nodes[0] (node-1)"),
        "{m}"
    );

    // A /24 cluster has no /24 number 1 for the first node.
    let mut t = Topology::default_lab();
    t.cluster_cidr = "10.42.0.0/24".parse().unwrap();
    assert_eq!(err_of(&t).0, "nodes[0].podCIDR");
}

#[test]
fn routes_and_agent_are_checked() {
    let mut t = Topology::default_lab();
    t.nodes[0].static_routes[0].via = "192.168.2.1".parse().unwrap();
    let (f, m) = err_of(&t);
    assert_eq!(f, "nodes[0].staticRoutes[0].via");
    assert!(m.contains("192.168.2.1"), "{m}");

    let mut t = Topology::default_lab();
    t.nodes[1].static_routes[0].to = "192.168.1.0/24".parse().unwrap();
    let (f, m) = err_of(&t);
    assert_eq!(f, "nodes[1].staticRoutes[0].to");
    assert!(
        m.contains("192.168.1.0/24 is a connected network already"),
        "{m}"
    );

    let mut t = Topology::default_lab();
    let again = t.nodes[0].static_routes[0].clone();
    t.nodes[0].static_routes.push(again);
    let (f, m) = err_of(&t);
    assert_eq!(f, "nodes[0].staticRoutes[1].to");
    assert!(
        m.contains("already has a route (nodes[0].staticRoutes[0])"),
        "{m}"
    );

    let yaml = default_yaml().replace(
        "  underlayIP: 192.168.1.1\n",
        "  underlayIP: 192.168.1.1\n  routes: [{to: 10.42.0.0/16, via: 10.0.0.1}]\n",
    );
    let (f, m) = err(&yaml);
    assert_eq!(f, "router.routes[0].via");
    assert!(m.contains("10.0.0.1"), "{m}");

    let (f, _) = err(&format!(
        "{}agent: {{clusterCIDR: 10.0.0.0/8}}\n",
        default_yaml()
    ));
    assert_eq!(f, "agent.clusterCIDR");
    let (f, m) = err(&format!("{}agent: [1, 2]\n", default_yaml()));
    assert_eq!(f, "agent");
    assert!(m.contains("mapping"), "{m}");
}

#[test]
fn lab_namespace_names_and_targets() {
    assert_eq!(netns_name("t1", NsKind::Pod, "x"), "t1-pod-x");
    assert!(is_lab_netns("strait", "strait-node-node-1"));
    assert!(is_lab_netns("strait", "strait-router"));
    assert!(is_lab_netns("strait", "strait-sw-underlay"));
    assert!(!is_lab_netns("strait", "strait-demo-node-12-0"));
    assert!(!is_lab_netns("strait", "straitx-node-a"));
    assert!(!is_lab_netns("strait", "strait-routerx"));
    assert!(!is_lab_netns("strait", "strait-node-"));

    for s in [
        "node/node-1",
        "host/legacy-db",
        "router",
        "switch/underlay",
        "pod/default/web",
    ] {
        assert_eq!(s.parse::<Target>().unwrap().to_string(), s);
    }
    for s in ["", "node", "node/", "pod/x", "vm/a", "router/x"] {
        assert!(s.parse::<Target>().is_err(), "{s:?} parsed");
    }
}
