//! ADD / CHECK / DEL / GC / STATUS / VERSION of the real binary, as root, on
//! a throwaway node namespace with throwaway pod namespaces.

mod common;

use common::*;
use serde_json::{json, Value};
use strait_lab::Netns;

#[test]
fn version_lists_every_supported_version() {
    let node = Node::new();
    let pod = Netns::unique("stp").unwrap();
    let out = node.run("VERSION", "x", &pod, &json!({"cniVersion": "1.0.0"}));
    assert!(out.exit_ok, "{out:?}");
    let v = out.json();
    assert_eq!(v["cniVersion"], "1.0.0");
    assert_eq!(
        v["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}

/// The full lifecycle in each version's shapes.
#[test]
fn lifecycle_in_every_version() {
    for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let node = Node::new();
        let pod = Netns::unique("stp").unwrap();
        let conf = node.conf(version, json!({"mtu": 1400}));
        let add = node.run("ADD", "c1", &pod, &conf);
        assert!(add.exit_ok, "{version}: {add:?}");
        let r = add.json();
        assert_eq!(r["cniVersion"], version);
        // bridge, host veth, pod interface; the IP points at the pod's.
        assert_eq!(r["interfaces"][0]["name"], "strait0");
        assert_eq!(r["interfaces"][2]["name"], "eth0");
        assert_eq!(
            r["interfaces"][2]["sandbox"],
            pod.path().display().to_string()
        );
        assert_eq!(r["ips"][0]["interface"], 2);
        assert_eq!(r["ips"][0]["gateway"], "10.77.0.1");
        assert_eq!(r["ips"][0]["address"], "10.77.0.2/24");
        assert_eq!(
            r["routes"][0],
            json!({"dst": "0.0.0.0/0", "gw": "10.77.0.1"})
        );
        if version.starts_with("0.") {
            assert_eq!(r["ips"][0]["version"], "4", "{version}");
        } else {
            assert!(r["ips"][0].get("version").is_none(), "{version}");
        }
        assert_eq!(r["interfaces"][2].get("mtu").is_some(), version == "1.1.0");

        // The kernel holds what the result says.
        assert_eq!(addresses(&pod, "eth0"), vec!["10.77.0.2/24".to_owned()]);
        let mtu = pod.exec_ok(&["cat", "/sys/class/net/eth0/mtu"]).unwrap();
        assert_eq!(mtu.trim(), "1400");
        assert!(
            ping(&pod, "10.77.0.1"),
            "{version}: pod cannot reach its gateway"
        );
        let hairpin = node
            .ns
            .exec_ok(&["ip", "-j", "-d", "link", "show", "master", "strait0"])
            .unwrap();
        assert!(hairpin.contains("\"hairpin\":true"), "{hairpin}");

        let mut with_prev = conf.clone();
        with_prev["prevResult"] = r.clone();
        if version != "0.3.1" {
            let check = node.run("CHECK", "c1", &pod, &with_prev);
            assert!(check.exit_ok, "{version}: {check:?}");
        } else {
            let check = node.run("CHECK", "c1", &pod, &with_prev);
            assert_eq!(check.json()["code"], 1, "{check:?}");
        }

        let del = node.run("DEL", "c1", &pod, &with_prev);
        assert!(del.exit_ok, "{version}: {del:?}");
        assert!(addresses(&pod, "eth0").is_empty());
        assert!(node.links("stv").is_empty(), "host veth left behind");
        assert!(node.allocated().is_empty(), "address not released");
        // DEL again, and DEL with the namespace gone: both succeed.
        assert!(node.run("DEL", "c1", &pod, &with_prev).exit_ok);
        let gone = node.run(
            "DEL",
            "c1",
            &Netns {
                name: "does-not-exist".into(),
            },
            &conf,
        );
        assert!(gone.exit_ok, "{gone:?}");
    }
}

#[test]
fn two_pods_on_the_bridge_reach_each_other() {
    let node = Node::new();
    let (a, b) = (Netns::unique("stp").unwrap(), Netns::unique("stp").unwrap());
    let conf = node.conf("1.0.0", json!({}));
    let ra = node.run("ADD", "a", &a, &conf).json();
    let rb = node.run("ADD", "b", &b, &conf).json();
    assert_ne!(first_ip(&ra), first_ip(&rb));
    assert!(ping(&a, &first_ip(&rb)));
    assert!(ping(&b, &first_ip(&ra)));
}

#[test]
fn ptp_mode_routes_each_pod_without_a_bridge() {
    let node = Node::new();
    let (a, b) = (Netns::unique("stp").unwrap(), Netns::unique("stp").unwrap());
    let conf = node.conf("1.1.0", json!({"mode": "ptp"}));
    let add = node.run("ADD", "a", &a, &conf);
    assert!(add.exit_ok, "{add:?}");
    let ra = add.json();
    let rb = node.run("ADD", "b", &b, &conf).json();
    assert_eq!(ra["interfaces"][1]["name"], "eth0");
    assert_eq!(ra["ips"][0]["interface"], 1);
    assert_eq!(ra["ips"][0]["address"], "10.77.0.2/32");
    assert!(node.links("strait0").is_empty(), "ptp mode made a bridge");
    let routes = node.ns.exec_ok(&["ip", "route", "show"]).unwrap();
    assert!(routes.contains("10.77.0.2 dev stv"), "{routes}");
    assert!(ping(&a, &first_ip(&rb)), "ptp pods cannot reach each other");
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = ra;
    assert!(node.run("CHECK", "a", &a, &with_prev).exit_ok);
    // Drift: remove the host route.
    node.ns
        .exec_ok(&["ip", "route", "del", "10.77.0.2/32"])
        .unwrap();
    let check = node.run("CHECK", "a", &a, &with_prev);
    assert!(!check.exit_ok);
    assert!(
        check.json()["msg"]
            .as_str()
            .unwrap()
            .contains("host route 10.77.0.2/32"),
        "{check:?}"
    );
    assert!(node.run("DEL", "a", &a, &with_prev).exit_ok);
    assert!(node.run("DEL", "b", &b, &conf).exit_ok);
    assert!(node.links("stv").is_empty());
}

#[test]
fn dual_stack_pods_get_both_families() {
    let node = Node::new();
    let (a, b) = (Netns::unique("stp").unwrap(), Netns::unique("stp").unwrap());
    let conf = node.conf(
        "1.0.0",
        json!({"ipam": {"dataDir": node.data_dir(), "ranges": [
            [{"subnet": "10.77.0.0/24"}],
            [{"subnet": "fd77::/64"}]
        ]}}),
    );
    let ra = node.run("ADD", "a", &a, &conf).json();
    let rb = node.run("ADD", "b", &b, &conf).json();
    assert_eq!(ra["ips"][1]["address"], "fd77::2/64", "{ra}");
    assert_eq!(ra["routes"][1], json!({"dst": "::/0", "gw": "fd77::1"}));
    let b6 = rb["ips"][1]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(a
        .exec(&["ping", "-6", "-c", "1", "-W", "2", &b6])
        .unwrap()
        .status
        .success());
    assert!(a
        .exec(&["ping", "-6", "-c", "1", "-W", "2", "fd77::1"])
        .unwrap()
        .status
        .success());
    let mut prev = conf.clone();
    prev["prevResult"] = ra;
    assert!(node.run("CHECK", "a", &a, &prev).exit_ok);
}

#[test]
fn check_names_what_drifted() {
    let node = Node::new();
    let pod = Netns::unique("stp").unwrap();
    let conf = node.conf("1.0.0", json!({}));
    let r = node.run("ADD", "c1", &pod, &conf).json();
    let mut prev = conf.clone();
    prev["prevResult"] = r;

    pod.exec_ok(&["ip", "route", "del", "default"]).unwrap();
    let out = node.run("CHECK", "c1", &pod, &prev);
    let msg = out.json()["msg"].as_str().unwrap_or_default().to_owned();
    assert!(
        msg.contains("route 0.0.0.0/0 via 10.77.0.1 is missing on eth0"),
        "{msg}"
    );

    pod.exec_ok(&["ip", "addr", "flush", "dev", "eth0"])
        .unwrap();
    let msg = node.run("CHECK", "c1", &pod, &prev).json()["msg"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("address 10.77.0.2/24 is missing on eth0"),
        "{msg}"
    );

    pod.exec_ok(&["ip", "link", "del", "eth0"]).unwrap();
    let msg = node.run("CHECK", "c1", &pod, &prev).json()["msg"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("interface eth0 in") && msg.contains("is missing"),
        "{msg}"
    );

    let mut no_prev = conf.clone();
    no_prev.as_object_mut().unwrap().remove("prevResult");
    let out = node.run("CHECK", "c1", &pod, &no_prev).json();
    assert_eq!(out["code"], 7);
    assert!(out["msg"].as_str().unwrap().contains("prevResult"));
}

#[test]
fn failed_add_leaves_nothing_behind() {
    let node = Node::new();
    let pod = Netns::unique("stp").unwrap();
    // Something else already owns eth0 in the pod: ADD must fail late (after
    // allocating and creating the bridge) and undo its own work.
    pod.exec_ok(&["ip", "link", "add", "eth0", "type", "bridge"])
        .unwrap();
    let out = node.run("ADD", "c1", &pod, &node.conf("1.0.0", json!({})));
    assert!(!out.exit_ok);
    let msg = out.json()["msg"].as_str().unwrap().to_owned();
    assert!(msg.contains("eth0 already exists"), "{msg}");
    assert!(
        node.allocated().is_empty(),
        "address kept after a failed ADD"
    );
    assert!(node.links("stv").is_empty(), "veth kept after a failed ADD");
}

#[test]
fn missing_netns_is_unknown_container() {
    let node = Node::new();
    let out = node.run(
        "ADD",
        "c1",
        &Netns {
            name: "no-such-ns".into(),
        },
        &node.conf("1.0.0", json!({})),
    );
    assert_eq!(out.json()["code"], 3, "{out:?}");
    assert!(out.json()["msg"].as_str().unwrap().contains("CNI_NETNS"));
    assert!(node.allocated().is_empty());
}

#[test]
fn exhaustion_names_the_range_and_usage() {
    let node = Node::new();
    let conf = node.conf(
        "1.0.0",
        json!({"ipam": {"dataDir": node.data_dir(), "ranges": [[{"subnet": "10.78.0.0/30"}]]}}),
    );
    let a = Netns::unique("stp").unwrap();
    let b = Netns::unique("stp").unwrap();
    assert!(node.run("ADD", "a", &a, &conf).exit_ok);
    let out = node.run("ADD", "b", &b, &conf).json();
    assert_eq!(out["code"], 102);
    let msg = out["msg"].as_str().unwrap();
    assert!(
        msg.contains("10.78.0.0/30") && msg.contains("1 of 1 in use"),
        "{msg}"
    );
    assert!(node.links("stv").len() == 1);
}

#[test]
fn node_file_supplies_range_and_mtu() {
    let node = Node::new();
    let pod = Netns::unique("stp").unwrap();
    let conf = node.conf("1.1.0", json!({"ipam": {"dataDir": node.data_dir()}}));
    // No ranges and no node file: ADD and STATUS both say why.
    let out = node.run("ADD", "c1", &pod, &conf).json();
    assert!(
        out["msg"].as_str().unwrap().contains("node pod CIDR"),
        "{out}"
    );
    let status = node.run("STATUS", "", &pod, &conf);
    assert_eq!(status.json()["code"], 50, "{status:?}");

    std::fs::write(
        node.node_file(),
        r#"{"podCIDRs": ["10.79.3.0/24"], "mtu": 1450, "gsoMaxSize": 64000}"#,
    )
    .unwrap();
    assert!(node.run("STATUS", "", &pod, &conf).exit_ok);
    let r = node.run("ADD", "c1", &pod, &conf).json();
    assert_eq!(r["ips"][0]["address"], "10.79.3.2/24", "{r}");
    assert_eq!(r["interfaces"][2]["mtu"], 1450);
    // The pod interface takes the node's GSO limit (VXLAN nodes set it).
    let link = pod.exec_ok(&["ip", "-d", "link", "show", "eth0"]).unwrap();
    assert!(link.contains("gso_max_size 64000 "), "{link}");
}

#[test]
fn status_reports_an_unwritable_store() {
    let node = Node::new();
    let pod = Netns::unique("stp").unwrap();
    let blocker = node.dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let conf = node.conf(
        "1.1.0",
        json!({"ipam": {"dataDir": blocker.join("sub"), "ranges": [[{"subnet": "10.77.0.0/24"}]]}}),
    );
    let out = node.run("STATUS", "", &pod, &conf).json();
    assert_eq!(out["code"], 50, "{out}");
    assert!(out["msg"].as_str().unwrap().contains("IPAM store"), "{out}");
    // STATUS is a 1.1 verb.
    let old = node
        .run("STATUS", "", &pod, &node.conf("1.0.0", json!({})))
        .json();
    assert_eq!(old["code"], 1);
}

#[test]
fn gc_releases_what_the_runtime_no_longer_lists() {
    let node = Node::new();
    let pods: Vec<Netns> = (0..3).map(|_| Netns::unique("stp").unwrap()).collect();
    let conf = node.conf("1.1.0", json!({}));
    for (i, p) in pods.iter().enumerate() {
        assert!(node.run("ADD", &format!("c{i}"), p, &conf).exit_ok);
    }
    assert_eq!(node.allocated().len(), 3);
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "eth0"}]);
    let out = node.run("GC", "", &pods[0], &gc);
    assert!(out.exit_ok, "{out:?}");
    assert_eq!(node.allocated(), vec!["10.77.0.3".to_owned()]);
    // The leaked pods' veths are gone, the valid one stays.
    assert_eq!(node.links("stv").len(), 1);
    assert_eq!(addresses(&pods[1], "eth0"), vec!["10.77.0.3/24".to_owned()]);
    assert!(addresses(&pods[0], "eth0").is_empty());
}

#[test]
fn other_ipam_types_are_delegated() {
    let node = Node::new();
    let pod = Netns::unique("stp").unwrap();
    let data = node.dir.path().join("host-local");
    let conf = node.conf(
        "1.0.0",
        json!({"ipam": {"type": "host-local", "subnet": "10.80.0.0/24", "dataDir": data}}),
    );
    let add = node.run("ADD", "c1", &pod, &conf);
    assert!(add.exit_ok, "{add:?}");
    let r = add.json();
    assert_eq!(r["ips"][0]["address"], "10.80.0.2/24", "{r}");
    assert!(data.join("testnet").join("10.80.0.2").exists());
    assert!(ping(&pod, "10.80.0.1"));
    let mut prev = conf.clone();
    prev["prevResult"] = r;
    assert!(node.run("CHECK", "c1", &pod, &prev).exit_ok);
    assert!(node.run("DEL", "c1", &pod, &prev).exit_ok);
    assert!(!data.join("testnet").join("10.80.0.2").exists());

    let missing = node.conf("1.0.0", json!({"ipam": {"type": "no-such-ipam"}}));
    let out = node.run("ADD", "c2", &pod, &missing).json();
    assert_eq!(out["code"], 7);
    assert!(
        out["msg"]
            .as_str()
            .unwrap()
            .contains("no plugin \"no-such-ipam\""),
        "{out}"
    );
}

#[test]
fn malformed_input_gets_an_error_object() {
    let node = Node::new();
    let pod = Netns::unique("stp").unwrap();
    let call = node.call("ADD", "c1", &pod, "eth0");
    let cases: [(Value, u64); 3] = [
        (Value::String("{".into()), 6),
        (
            json!({"cniVersion": "2.0.0", "name": "n", "type": "strait-cni"}),
            1,
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "n", "type": "strait-cni", "mtu": -1}),
            7,
        ),
    ];
    for (input, code) in cases {
        let out = call.exec("strait-cni", &input).unwrap();
        assert!(!out.exit_ok);
        assert_eq!(out.json()["code"], code, "{input}: {out:?}");
    }
    let mut bad_env = call.clone();
    bad_env.ifname = "much-too-long-name".into();
    let out = bad_env
        .exec("strait-cni", &node.conf("1.0.0", json!({})))
        .unwrap();
    assert_eq!(out.json()["code"], 4, "{out:?}");
}
