//! doctor's pure parts: nft text counts, CIDR overlaps, CNI config order.

use super::nft_check::{chain_rules, element_drift, elements};
use super::*;

#[test]
fn counts_rules_and_elements_from_nft_text() {
    let text = "table inet strait {\n\tset s {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.0.0.0/24, 10.0.1.0/24,\n\t\t\t     10.9.0.0/16 }\n\t}\n\n\tset e {\n\t\ttype ipv4_addr\n\t}\n\n\tmap m {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t\telements = { 10.43.0.2 . udp . 53 : accept }\n\t}\n\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tip saddr @s counter packets 0 bytes 0 accept comment \"from pods\"\n\t\tip daddr @s accept\n\t}\n\n\tchain empty {\n\t}\n}\n";
    let e = elements(text);
    assert_eq!(e["s"], ["10.0.0.0/24", "10.0.1.0/24", "10.9.0.0/16"]);
    assert!(e["e"].is_empty());
    assert_eq!(e["m"], ["10.43.0.2 . udp . 53 : accept"]);
    assert_eq!(e.len(), 3);
    assert_eq!(chain_rules(text), [("forward", 2), ("empty", 0)]);
}

#[test]
fn element_drift_names_missing_changed_and_extra_elements() {
    let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let plan = v(&[
        "10.43.0.10 . tcp . 80 : goto lb-a",
        "10.43.0.11 . tcp . 80 : goto lb-b",
    ]);
    assert_eq!(element_drift("m", &plan, &plan), None);
    let kernel = v(&[
        "10.43.0.10 . tcp . 80 : goto lb-x",
        "10.43.0.99 . udp . 53 : accept",
    ]);
    assert_eq!(
        element_drift("m", &plan, &kernel).unwrap(),
        "set or map m: 1 element(s) of the Plan missing from the kernel: 10.43.0.11 . tcp . 80 : goto lb-b; \
         1 element(s) changed (the Plan's first): 10.43.0.10 . tcp . 80 : goto lb-a is 10.43.0.10 . tcp . 80 : goto lb-x in the kernel; \
         1 element(s) in the kernel that the Plan does not hold: 10.43.0.99 . udp . 53 : accept"
    );
    // Plain sets: a flushed set names what is missing, at most 5.
    let many = v(&["a", "b", "c", "d", "e", "f", "g"]);
    assert_eq!(
        element_drift("s", &many, &[]).unwrap(),
        "set or map s: 7 element(s) of the Plan missing from the kernel: a, b, c, d, e and 2 more"
    );
}

fn cfg(cluster: &str, service: &str) -> AgentConfig {
    AgentConfig::from_yaml(&format!("clusterCIDR: {cluster}\nserviceCIDR: {service}\n")).unwrap()
}

fn local() -> LocalNode {
    LocalNode {
        name: "n".into(),
        underlay_ip: "192.168.1.11".parse().unwrap(),
        underlay_prefix: 24,
        underlay_dev: "eth0".into(),
        underlay_mtu: 1500,
    }
}

#[test]
fn overlapping_cidrs_are_named() {
    let routed = RouteSpec::new(
        "10.96.0.0/12".parse().unwrap(),
        Some("192.168.1.1".parse().unwrap()),
        2,
    );
    let mut out = Vec::new();
    overlaps(
        &cfg("10.42.0.0/16", "10.43.0.0/16"),
        &local(),
        std::slice::from_ref(&routed),
        &mut out,
    );
    assert!(out.is_empty(), "{out:?}");
    overlaps(
        &cfg("192.168.0.0/16", "10.100.0.0/16"),
        &local(),
        &[routed],
        &mut out,
    );
    let problems: Vec<&str> = out.iter().map(|f| f.problem.as_str()).collect();
    assert_eq!(
        problems,
        [
            "clusterCIDR 192.168.0.0/16 overlaps the node network 192.168.1.0/24",
            "serviceCIDR 10.100.0.0/16 overlaps the routed network 10.96.0.0/12 via 192.168.1.1 oif 2",
        ]
    );
}

#[test]
fn cni_configs_sorting_before_ours_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("10-strait.conflist"),
        r#"{"plugins":[{"type":"strait-cni"}]}"#,
    )
    .unwrap();
    let mut out = Vec::new();
    cni_configs(dir.path(), &mut out);
    assert!(out.is_empty());
    std::fs::write(dir.path().join("05-flannel.conflist"), "{}").unwrap();
    std::fs::write(dir.path().join("99-late.conf"), "{}").unwrap();
    cni_configs(dir.path(), &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].problem.contains("05-flannel.conflist sorts before"));
}
