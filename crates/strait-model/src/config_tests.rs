use super::*;

const BASE: &str = "clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.0.0/16\n";

fn err(text: &str) -> String {
    AgentConfig::from_yaml(text).unwrap_err().to_string()
}

fn err_with(extra: &str) -> String {
    err(&format!("{BASE}{extra}"))
}

#[test]
fn full_config_parses() {
    let cfg = AgentConfig::from_yaml(
        "clusterCIDR: 10.42.0.0/16
serviceCIDR: 10.43.0.0/16
backend: host-gw
mtu: 9000
nonMasqueradeCIDRs: [192.168.0.0/16, 172.16.0.0/12]
nodeRoutes:
  - {to: 192.168.2.0/24, via: 192.168.1.1}
vxlan: {vni: 7, port: 4789}
bridge: cbr0
",
    )
    .unwrap();
    assert_eq!(cfg.cluster_cidr, "10.42.0.0/16".parse().unwrap());
    assert_eq!(cfg.service_cidr, "10.43.0.0/16".parse().unwrap());
    assert_eq!(cfg.backend, Backend::HostGw);
    assert_eq!(cfg.mtu, Some(9000));
    assert_eq!(cfg.non_masquerade_cidrs.len(), 2);
    assert_eq!(
        cfg.node_routes,
        vec![NodeRoute {
            to: "192.168.2.0/24".parse().unwrap(),
            via: "192.168.1.1".parse().unwrap(),
        }]
    );
    assert_eq!(cfg.vxlan, VxlanConfig { vni: 7, port: 4789 });
    assert_eq!(cfg.bridge, "cbr0");
}

#[test]
fn defaults() {
    let cfg = AgentConfig::from_yaml(BASE).unwrap();
    assert_eq!(cfg.backend, Backend::Vxlan);
    assert_eq!(cfg.mtu, None);
    assert!(cfg.non_masquerade_cidrs.is_empty());
    assert!(cfg.node_routes.is_empty());
    assert_eq!(cfg.vxlan, VxlanConfig { vni: 1, port: 8472 });
    assert_eq!(cfg.bridge, "strait0");
    // A partial vxlan block keeps the other default.
    let cfg = AgentConfig::from_yaml(&format!("{BASE}vxlan: {{vni: 5}}\n")).unwrap();
    assert_eq!(cfg.vxlan, VxlanConfig { vni: 5, port: 8472 });
}

#[test]
fn json_is_accepted_and_round_trips() {
    let cfg = AgentConfig::from_yaml(
        r#"{"clusterCIDR": "10.42.0.0/16", "serviceCIDR": "10.43.0.0/16", "backend": "vxlan",
            "nodeRoutes": [{"to": "192.168.2.0/24", "via": "192.168.1.1"}]}"#,
    )
    .unwrap();
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(
        json,
        r#"{"clusterCIDR":"10.42.0.0/16","serviceCIDR":"10.43.0.0/16","backend":"vxlan","nonMasqueradeCIDRs":[],"nodeRoutes":[{"to":"192.168.2.0/24","via":"192.168.1.1"}],"vxlan":{"vni":1,"port":8472},"bridge":"strait0"}"#
    );
    assert_eq!(AgentConfig::from_yaml(&json).unwrap(), cfg);
}

#[test]
fn syntax_errors() {
    assert_eq!(
        err("clusterCIDR: [10.42\n"),
        "agent config is not valid YAML or JSON: did not find expected ',' or ']' at line 2 column 1, while parsing a flow sequence at line 1 column 14"
    );
    assert_eq!(
        err("- 1\n"),
        "invalid type: sequence, expected struct AgentConfig"
    );
}

#[test]
fn missing_fields() {
    assert_eq!(err(""), "missing field `clusterCIDR`");
    assert_eq!(
        err("clusterCIDR: 10.42.0.0/16\n"),
        "missing field `serviceCIDR`"
    );
}

#[test]
fn unknown_fields_are_named() {
    assert_eq!(
        err_with("foo: 1\n"),
        "foo: unknown field `foo`, expected one of `clusterCIDR`, `serviceCIDR`, `backend`, `mtu`, `nonMasqueradeCIDRs`, `nodeRoutes`, `vxlan`, `bridge`"
    );
    assert_eq!(
        err_with("vxlan: {vnid: 3}\n"),
        "vxlan.vnid: unknown field `vnid`, expected `vni` or `port`"
    );
    assert_eq!(
        err_with("nodeRoutes: [{to: 1.2.3.0/24, via: 1.1.1.1, dev: eth0}]\n"),
        "nodeRoutes[0].dev: unknown field `dev`, expected `to` or `via`"
    );
}

#[test]
fn bad_values_name_field_and_value() {
    assert_eq!(
        err("clusterCIDR: 10.42.0.0\nserviceCIDR: 10.43.0.0/16\n"),
        "clusterCIDR: 10.42.0.0 is not a CIDR (address/prefix, e.g. 10.42.0.0/16)"
    );
    assert_eq!(
        err("clusterCIDR: 10.42.0.0/16\nserviceCIDR: [1]\n"),
        "serviceCIDR: invalid type: sequence, expected a string"
    );
    assert_eq!(
        err_with(
            "nodeRoutes: [{to: 1.2.3.0/24, via: 1.1.1.1}, {to: 10.1.0.0/16, via: 10.0.0.300}]\n"
        ),
        "nodeRoutes[1].via: 10.0.0.300 is not an IP address"
    );
    assert_eq!(
        err_with("nodeRoutes: [{to: 1.2.3.0/33, via: 1.1.1.1}]\n"),
        "nodeRoutes[0].to: 1.2.3.0/33 is not a CIDR (address/prefix, e.g. 10.42.0.0/16)"
    );
    assert_eq!(
        err_with("nodeRoutes: [{via: 1.1.1.1}]\n"),
        "nodeRoutes[0]: missing field `to`"
    );
    assert_eq!(
        err_with("nodeRoutes: {to: 1}\n"),
        "nodeRoutes: invalid type: map, expected a sequence"
    );
    assert_eq!(
        err_with("nonMasqueradeCIDRs: [1.0.0.0/8, x]\n"),
        "nonMasqueradeCIDRs[1]: x is not a CIDR (address/prefix, e.g. 10.42.0.0/16)"
    );
    assert_eq!(
        err_with("backend: vxlan2\n"),
        "backend: unknown variant `vxlan2`, expected `vxlan` or `host-gw`"
    );
    assert_eq!(
        err_with("mtu: -1\n"),
        "mtu: invalid value: integer `-1`, expected u32"
    );
    assert_eq!(
        err_with("vxlan: {port: 70000}\n"),
        "vxlan.port: invalid value: integer `70000`, expected u16"
    );
}

#[test]
fn host_bits_are_rejected() {
    assert_eq!(
        err("clusterCIDR: 10.42.0.5/16\nserviceCIDR: 10.43.0.0/16\n"),
        "clusterCIDR: 10.42.0.5/16 has host bits set (did you mean 10.42.0.0/16?)"
    );
    assert_eq!(
        err("clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.43.1.0/16\n"),
        "serviceCIDR: 10.43.1.0/16 has host bits set (did you mean 10.43.0.0/16?)"
    );
    assert_eq!(
        err_with("nonMasqueradeCIDRs: [192.168.1.5/24]\n"),
        "nonMasqueradeCIDRs[0]: 192.168.1.5/24 has host bits set (did you mean 192.168.1.0/24?)"
    );
    assert_eq!(
        err_with("nodeRoutes: [{to: 192.168.2.1/24, via: 192.168.1.1}]\n"),
        "nodeRoutes[0].to: 192.168.2.1/24 has host bits set (did you mean 192.168.2.0/24?)"
    );
}

#[test]
fn overlaps_are_rejected() {
    assert_eq!(
        err("clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.42.0.0/16\n"),
        "serviceCIDR: 10.42.0.0/16 overlaps clusterCIDR 10.42.0.0/16"
    );
    assert_eq!(
        err("clusterCIDR: 10.42.0.0/16\nserviceCIDR: 10.0.0.0/8\n"),
        "serviceCIDR: 10.0.0.0/8 overlaps clusterCIDR 10.42.0.0/16"
    );
    assert_eq!(
        err_with("nodeRoutes: [{to: 10.42.5.0/24, via: 192.168.1.1}]\n"),
        "nodeRoutes[0].to: 10.42.5.0/24 overlaps clusterCIDR 10.42.0.0/16"
    );
    assert_eq!(
        err_with("nodeRoutes: [{to: 10.0.0.0/8, via: 192.168.1.1}]\n"),
        "nodeRoutes[0].to: 10.0.0.0/8 overlaps clusterCIDR 10.42.0.0/16"
    );
    assert_eq!(
        err_with("nodeRoutes: [{to: 10.43.0.0/24, via: 192.168.1.1}]\n"),
        "nodeRoutes[0].to: 10.43.0.0/24 overlaps serviceCIDR 10.43.0.0/16"
    );
    assert_eq!(
        err_with(
            "nodeRoutes: [{to: 192.168.2.0/24, via: 192.168.1.1}, {to: 192.168.3.0/24, via: 192.168.1.1}, {to: 192.168.2.0/24, via: 192.168.1.2}]\n"
        ),
        "nodeRoutes[2].to: 192.168.2.0/24 is already routed by nodeRoutes[0]"
    );
}

#[test]
fn node_route_families_must_match() {
    assert_eq!(
        err_with("nodeRoutes: [{to: 192.168.2.0/24, via: 'fd00::1'}]\n"),
        "nodeRoutes[0].via: fd00::1 is not in the address family of to 192.168.2.0/24"
    );
    let cfg = AgentConfig::from_yaml(&format!(
        "{BASE}nodeRoutes: [{{to: 'fd00:2::/64', via: 'fd00::1'}}]\n"
    ))
    .unwrap();
    assert_eq!(cfg.node_routes[0].via, "fd00::1".parse::<IpAddr>().unwrap());
}

#[test]
fn ranges() {
    assert_eq!(
        err_with("mtu: 100\n"),
        "mtu: 100 is out of range (576-65535)"
    );
    assert_eq!(
        err_with("mtu: 70000\n"),
        "mtu: 70000 is out of range (576-65535)"
    );
    assert!(AgentConfig::from_yaml(&format!("{BASE}mtu: 576\n")).is_ok());
    assert_eq!(
        err_with("vxlan: {vni: 16777216}\n"),
        "vxlan.vni: 16777216 is out of range (0-16777215)"
    );
    assert!(AgentConfig::from_yaml(&format!("{BASE}vxlan: {{vni: 16777215}}\n")).is_ok());
    assert_eq!(
        err_with("vxlan: {port: 0}\n"),
        "vxlan.port: 0 is out of range (1-65535)"
    );
}

#[test]
fn bridge_name() {
    assert_eq!(
        err_with("bridge: a-very-long-bridge-name\n"),
        "bridge: \"a-very-long-bridge-name\" is not a valid interface name (1-15 characters, no '/', ':' or whitespace)"
    );
    assert_eq!(
        err_with("bridge: ''\n"),
        "bridge: \"\" is not a valid interface name (1-15 characters, no '/', ':' or whitespace)"
    );
    assert!(err_with("bridge: a/b\n").starts_with("bridge: \"a/b\" is not"));
    assert!(err_with("bridge: 'a b'\n").starts_with("bridge: \"a b\" is not"));
    assert!(valid_interface_name("strait.vxlan"));
    assert!(!valid_interface_name(".."));
}
