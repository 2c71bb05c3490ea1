//! The lab fabric on real namespaces (root): the default lab's underlay,
//! router and external network work; a node without the static route cannot
//! reach the external host; `down` removes everything, twice, and after
//! kill -9. Every test uses its own lab name and removes its lab on drop.

mod common;

use common::{namespaces_of, topology, TestLab};
use std::process::Stdio;
use std::time::{Duration, Instant};
use strait_lab::echo::sctp_supported;
use strait_lab::topology::NsKind;
use strait_lab::{run_in_netns, EchoServer, LabError, ProbeResult, Proto};

#[test]
fn default_lab_underlay_router_and_external_host_work() {
    let lab = TestLab::up(&topology());
    let name = lab.lab().to_owned();

    // The namespaces, the state file, the addresses.
    let mut expected: Vec<String> = [
        "sw-underlay",
        "sw-external",
        "router",
        "node-node-1",
        "node-node-2",
        "host-legacy-db",
    ]
    .iter()
    .map(|s| format!("{name}-{s}"))
    .collect();
    expected.sort();
    let mut found = namespaces_of(&name);
    found.sort();
    assert_eq!(found, expected);
    let saved = lab.fabric.state(&name).expect("state file");
    assert_eq!(saved, lab.state);
    assert!(lab.dir.path().join(&name).join("state.json").is_file());
    let router = lab.state.member(&TestLab::target("router")).unwrap();
    assert_eq!(router.kind, NsKind::Router);
    let ifs: Vec<(String, String)> = router
        .interfaces
        .iter()
        .map(|i| (i.name.clone(), i.address.to_string()))
        .collect();
    assert_eq!(
        ifs,
        [
            ("eth0".into(), "192.168.1.1/24".into()),
            ("eth1".into(), "192.168.2.1/24".into())
        ]
    );
    assert!(lab
        .exec(
            "node/node-1",
            &["ip", "-4", "-o", "addr", "show", "dev", "eth0"]
        )
        .contains("192.168.1.11/24"));
    assert_eq!(
        lab.exec("router", &["cat", "/proc/sys/net/ipv4/ip_forward"])
            .trim(),
        "1"
    );
    // The router has only its connected routes.
    let routes = lab.exec("router", &["ip", "-4", "route", "show"]);
    let mut dests: Vec<&str> = routes
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    dests.sort();
    assert_eq!(dests, ["192.168.1.0/24", "192.168.2.0/24"], "{routes}");
    assert!(lab
        .exec("host/legacy-db", &["ip", "-4", "route", "show"])
        .contains("default via 192.168.2.1 dev eth0"));
    // Three ports on the underlay switch's bridge, two on the external one.
    let ports = lab.exec(
        "switch/underlay",
        &["ip", "-o", "link", "show", "master", "br0"],
    );
    assert_eq!(ports.lines().count(), 3, "{ports}");
    let ports = lab.exec(
        "switch/external",
        &["ip", "-o", "link", "show", "master", "br0"],
    );
    assert_eq!(ports.lines().count(), 2, "{ports}");

    // The underlay.
    for to in ["192.168.1.12", "192.168.1.1"] {
        let r = lab.probe("node/node-1", to, 0, Proto::Icmp);
        assert!(
            r.answer().is_some_and(|l| l.contains(to)),
            "node-1 -> {to}: {r}"
        );
    }

    // legacy-db through the router, by the static route.
    let db = lab
        .state
        .netns_path(&TestLab::target("host/legacy-db"))
        .unwrap();
    let echo = EchoServer::start_in(&db, "host/legacy-db", &[7000], &[7000], &[7001]).unwrap();
    let r = lab.probe("node/node-1", "192.168.2.10", 0, Proto::Icmp);
    assert!(r.answer().is_some_and(|l| l.contains("ttl=63")), "{r}");
    for proto in [Proto::Tcp, Proto::Udp] {
        let r = lab.probe("node/node-1", "192.168.2.10", 7000, proto);
        let line = r.answer().unwrap_or_else(|| panic!("{proto}: {r}"));
        assert!(
            line.starts_with("host/legacy-db 192.168.1.11:"),
            "{proto}: {line}"
        );
        let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
        assert!(port > 0);
        let r = lab.probe("node/node-2", "192.168.2.10", 7999, proto);
        assert_eq!(r, ProbeResult::Refused, "{proto} to a closed port");
    }
    let sctp_in_lab = run_in_netns(&db, sctp_supported).unwrap();
    assert_eq!(echo.sctp_skipped, !sctp_in_lab);
    if sctp_in_lab {
        let r = lab.probe("node/node-2", "192.168.2.10", 7001, Proto::Sctp);
        assert!(
            r.answer()
                .is_some_and(|l| l.starts_with("host/legacy-db 192.168.1.12:")),
            "{r}"
        );
    }

    // legacy-db reaches the nodes: its default route goes to the router,
    // which is connected to the underlay.
    let r = lab.probe("host/legacy-db", "192.168.1.12", 0, Proto::Icmp);
    assert!(r.answer().is_some(), "legacy-db -> node-2: {r}");

    // Nothing of the lab is in the machine's own namespace.
    let root = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    let root = String::from_utf8_lossy(&root.stdout);
    for port in ["n0-node-1", "n1-node-2", "r0-router", "h0-legacy-db"] {
        assert!(
            !root.contains(&format!(" {port}@")),
            "{port} in the root namespace"
        );
    }
    drop(echo);
}

#[test]
fn a_node_without_the_static_route_cannot_reach_the_external_host() {
    let mut topo = topology();
    topo.nodes[1].static_routes.clear();
    let lab = TestLab::up(&topo);
    let db = lab
        .state
        .netns_path(&TestLab::target("host/legacy-db"))
        .unwrap();
    let _echo = EchoServer::start_in(&db, "host/legacy-db", &[7000], &[], &[]).unwrap();

    let r = lab.probe("node/node-1", "192.168.2.10", 7000, Proto::Tcp);
    assert!(r.answer().is_some(), "node-1 keeps its route: {r}");
    let short = Duration::from_millis(500);
    for proto in [Proto::Tcp, Proto::Icmp] {
        let r = lab.probe_within("node/node-2", "192.168.2.10", 7000, proto, short);
        assert!(
            matches!(r, ProbeResult::Unreachable(_) | ProbeResult::TimedOut),
            "{proto} from node-2: {r}"
        );
    }
    // legacy-db's echo requests reach node-2, but node-2 cannot answer.
    let r = lab.probe_within("host/legacy-db", "192.168.1.12", 0, Proto::Icmp, short);
    assert!(r.answer().is_none(), "{r}");
    let r = lab.probe_within("host/legacy-db", "192.168.1.11", 0, Proto::Icmp, short);
    assert!(r.answer().is_some(), "{r}");
}

#[test]
fn down_removes_everything_twice_and_after_kill_9() {
    let lab = TestLab::up(&topology());
    let name = lab.lab().to_owned();
    let spawn = |target: &str, argv: &[&str]| {
        let mut c = lab
            .state
            .command(&TestLab::target(target), argv[0])
            .unwrap();
        c.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c.spawn().expect("spawn")
    };
    // Left running: a plain sleep, and one that ignores SIGTERM.
    let mut sleeper = spawn("node/node-1", &["sleep", "1000"]);
    let mut stubborn = spawn(
        "host/legacy-db",
        &["sh", "-c", "trap '' TERM; sleep 1000; true"],
    );
    // A crashed process (kill -9) and a corrupt state file.
    let mut crashed = spawn("router", &["sleep", "1000"]);
    crashed.kill().unwrap();
    crashed.wait().unwrap();
    let state_file = lab.dir.path().join(&name).join("state.json");
    std::fs::write(&state_file, "{ not json").unwrap();
    // Wait until the spawned processes are inside their namespaces, the
    // stubborn shell's sleep too (so its trap is set).
    let node1 = lab
        .state
        .netns_path(&TestLab::target("node/node-1"))
        .unwrap();
    let db = lab
        .state
        .netns_path(&TestLab::target("host/legacy-db"))
        .unwrap();
    let t0 = Instant::now();
    while strait_lab::fabric::netns_pids(&[node1.clone(), db.clone()]).len() < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "processes never entered"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    let t0 = Instant::now();
    let report = lab.fabric.down(&name).expect("down");
    // SIGTERM was ignored by one of them: down waited, then used SIGKILL.
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
    let mut removed = report.namespaces.clone();
    removed.sort();
    assert_eq!(removed.len(), 6, "{removed:?}");
    assert!(report.killed.contains(&(sleeper.id() as i32)), "{report:?}");
    assert!(
        namespaces_of(&name).is_empty(),
        "{:?}",
        namespaces_of(&name)
    );
    assert!(!lab.dir.path().join(&name).exists());
    for child in [&mut sleeper, &mut stubborn] {
        let status = child.wait().unwrap();
        assert!(!status.success(), "killed, not exited: {status:?}");
    }
    assert!(matches!(
        lab.fabric.state(&name),
        Err(LabError::NotUp { .. })
    ));

    let again = lab.fabric.down(&name).expect("second down");
    assert!(
        again.namespaces.is_empty() && again.killed.is_empty(),
        "{again:?}"
    );
}

#[test]
fn up_refuses_a_lab_that_is_already_up() {
    let topo = topology();
    let lab = TestLab::up(&topo);
    match lab.fabric.up(&topo) {
        Err(LabError::AlreadyUp { lab: l, found }) => {
            assert_eq!(l, topo.name);
            assert!(found.contains(&format!("{}-router", topo.name)), "{found}");
        }
        other => panic!("second up: {other:?}"),
    }
    // The first lab is untouched.
    let r = lab.probe("node/node-2", "192.168.1.11", 0, Proto::Icmp);
    assert!(r.answer().is_some(), "{r}");
    assert!(lab
        .state
        .exec(&TestLab::target("node/node-9"), &["true"])
        .is_err());
}
