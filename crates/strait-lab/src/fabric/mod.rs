//! The lab fabric: the namespaces, switches and links a [`Topology`]
//! describes, built by [`Fabric::up`] and removed by [`Fabric::down`]; the
//! lab's state file; and running commands inside lab members ([`Target`]).
//!
//! Every L2 network is a switch namespace (`<lab>-sw-<net>`) holding a bridge
//! `br0`; every member (node, router, host) is joined to it by a veth pair
//! whose member end is `eth<k>` and whose switch end is a port of `br0`.
//! Both ends of every link are created inside lab namespaces (`ip -n`), so
//! nothing is ever added to the machine's own namespace.
//!
//! `state.rs` holds the state file and targets, `down.rs` the teardown.

mod down;
mod state;

pub use down::{lab_namespaces, netns_pids, DownReport};
pub use state::{FabricState, Interface, LabPaths, NsState, Target};

use crate::error::LabError;
use crate::netns::run_in_netns;
use crate::topology::{netns_name, NsKind, Topology, UNDERLAY};
use ipnet::Ipv4Net;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Where named namespaces live (`ip netns`).
pub const NETNS_DIR: &str = "/run/netns";

/// Builds and removes labs; `paths` says where their state lives.
#[derive(Debug, Clone, Default)]
pub struct Fabric {
    pub paths: LabPaths,
}

/// One L2 network being built: its switch namespace and its members.
struct Segment<'a> {
    network: &'a str,
    subnet: Ipv4Net,
    mtu: u32,
    /// (member namespace index, member interface, switch port, address)
    ports: Vec<(usize, String, String, std::net::Ipv4Addr)>,
}

impl Fabric {
    pub fn new(paths: LabPaths) -> Self {
        Fabric { paths }
    }

    /// Builds the lab. On any failure everything already built is removed
    /// (as by `down`) and the first error is returned.
    pub fn up(&self, topo: &Topology) -> Result<FabricState, LabError> {
        topo.validate()?;
        let lab = topo.name.as_str();
        let existing = lab_namespaces(lab)?;
        let dir = self.paths.lab_dir(lab);
        if !existing.is_empty() || dir.exists() {
            let mut found = existing;
            if dir.exists() {
                found.push(dir.display().to_string());
            }
            return Err(LabError::AlreadyUp {
                lab: lab.into(),
                found: found.join(", "),
            });
        }
        // Creating the lab directory is the lock: of two concurrent `up`s of
        // one lab, the second stops here, before making (or removing) anything.
        let root = &self.paths.root;
        std::fs::create_dir_all(root).map_err(LabError::io("creating state root", root))?;
        if let Err(e) = std::fs::create_dir(&dir) {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                return Err(LabError::AlreadyUp {
                    lab: lab.into(),
                    found: dir.display().to_string(),
                });
            }
            return Err(LabError::io("creating lab directory", &dir)(e));
        }
        self.build_or_remove(topo, Self::build)
    }

    /// Runs `build`; if it fails, removes whatever it made (tests pass a
    /// `build` that fails part-way).
    fn build_or_remove(
        &self,
        topo: &Topology,
        build: impl FnOnce(&Self, &Topology) -> Result<FabricState, LabError>,
    ) -> Result<FabricState, LabError> {
        build(self, topo).inspect_err(|_| {
            let _ = self.down(&topo.name);
        })
    }

    fn build(&self, topo: &Topology) -> Result<FabricState, LabError> {
        let (mut namespaces, segments) = plan(topo);
        for ns in &namespaces {
            run(
                &format!("creating namespace {}", ns.netns),
                Command::new("ip").args(["netns", "add", &ns.netns]),
            )?;
        }
        // Switches: the bridge and the veth pairs, the member ends moved
        // straight into the member namespaces.
        for seg in &segments {
            let sw = netns_name(&topo.name, NsKind::Switch, seg.network);
            let mut b = vec![
                "link set lo up".to_owned(),
                format!("link add br0 mtu {} type bridge", seg.mtu),
            ];
            for (member, ifname, port, addr) in &seg.ports {
                let mns = &namespaces[*member].netns;
                b.push(format!(
                    "link add {port} mtu {m} type veth peer name {ifname} mtu {m} netns {mns}",
                    m = seg.mtu
                ));
                b.push(format!("link set {port} master br0 up"));
                namespaces[*member].interfaces.push(Interface {
                    name: ifname.clone(),
                    network: seg.network.into(),
                    address: Ipv4Net::new(*addr, seg.subnet.prefix_len()).expect("prefix"),
                    switch_port: port.clone(),
                });
            }
            b.push("link set br0 up".into());
            batch(&sw, &b)?;
        }
        // Members: addresses, links up, routes.
        for ns in &namespaces {
            if ns.kind == NsKind::Switch {
                continue;
            }
            let mut b = vec!["link set lo up".to_owned()];
            for i in &ns.interfaces {
                b.push(format!("addr add {} dev {}", i.address, i.name));
                b.push(format!("link set {} up", i.name));
            }
            let routes: Vec<(String, std::net::Ipv4Addr)> = match ns.kind {
                NsKind::Node => topo
                    .node(&ns.name)
                    .map(|n| {
                        n.static_routes
                            .iter()
                            .map(|r| (r.to.to_string(), r.via))
                            .collect()
                    })
                    .unwrap_or_default(),
                NsKind::Router => topo
                    .router
                    .routes
                    .iter()
                    .map(|r| (r.to.to_string(), r.via))
                    .collect(),
                NsKind::Host => topo
                    .external_networks
                    .iter()
                    .find(|e| e.hosts.iter().any(|h| h.name == ns.name))
                    .map(|e| vec![("default".to_owned(), e.router_ip)])
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            for (to, via) in routes {
                b.push(format!("route add {to} via {via}"));
            }
            batch(&ns.netns, &b)?;
            if ns.kind == NsKind::Router {
                set_sysctl(&ns.path(), "net/ipv4/ip_forward", "1")?;
            }
        }
        let state = FabricState {
            lab: topo.name.clone(),
            topology: topo.clone(),
            namespaces,
        };
        state.save(&self.paths)?;
        Ok(state)
    }

    /// The state `up` saved.
    pub fn state(&self, lab: &str) -> Result<FabricState, LabError> {
        FabricState::load(&self.paths, lab)
    }

    /// Runs `argv` inside `target` of a lab that is up.
    pub fn exec(&self, lab: &str, target: &Target, argv: &[&str]) -> Result<Output, LabError> {
        self.state(lab)?.exec(target, argv)
    }
}

/// The namespaces and L2 segments of a topology (interfaces filled in later).
fn plan(topo: &Topology) -> (Vec<NsState>, Vec<Segment<'_>>) {
    let lab = &topo.name;
    let mut nss = Vec::new();
    let mut add = |kind: NsKind, name: &str| {
        nss.push(NsState {
            netns: netns_name(lab, kind, name),
            kind,
            name: name.into(),
            interfaces: Vec::new(),
        });
        nss.len() - 1
    };
    add(NsKind::Switch, UNDERLAY);
    for e in &topo.external_networks {
        add(NsKind::Switch, &e.name);
    }
    let router = add(NsKind::Router, "router");
    let mut underlay = Segment {
        network: UNDERLAY,
        subnet: topo.underlay.subnet,
        mtu: topo.underlay.mtu,
        ports: Vec::new(),
    };
    for (i, n) in topo.nodes.iter().enumerate() {
        let m = add(NsKind::Node, &n.name);
        underlay
            .ports
            .push((m, "eth0".into(), port_name('n', i, &n.name), n.ip));
    }
    underlay.ports.push((
        router,
        "eth0".into(),
        "r0-router".into(),
        topo.router.underlay_ip,
    ));
    let mut segments = vec![underlay];
    for (k, e) in topo.external_networks.iter().enumerate() {
        let mut seg = Segment {
            network: &e.name,
            subnet: e.subnet,
            mtu: crate::topology::DEFAULT_MTU,
            ports: vec![(
                router,
                format!("eth{}", k + 1),
                "r0-router".into(),
                e.router_ip,
            )],
        };
        for (j, h) in e.hosts.iter().enumerate() {
            let m = add(NsKind::Host, &h.name);
            seg.ports
                .push((m, "eth0".into(), port_name('h', j, &h.name), h.ip));
        }
        segments.push(seg);
    }
    (nss, segments)
}

/// A switch port name: `<kind letter><index>-<member>`, cut to the 15
/// characters Linux allows (the index keeps it unique).
fn port_name(kind: char, index: usize, member: &str) -> String {
    let mut s = format!("{kind}{index}-{member}");
    s.truncate(15);
    s
}

/// Runs one command; fails naming `what`, the command and its stderr.
fn run(what: &str, cmd: &mut Command) -> Result<String, LabError> {
    let out = cmd.output().map_err(|e| LabError::Command {
        what: what.into(),
        command: format!("{cmd:?}"),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(LabError::Command {
            what: what.into(),
            command: format!("{cmd:?}"),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip` commands in namespace `ns` as one batch (`ip -n NS -batch -`),
/// stopping at the first failure and naming the line that failed.
fn batch(ns: &str, lines: &[String]) -> Result<(), LabError> {
    let what = format!("configuring namespace {ns}");
    let text = lines.join("\n") + "\n";
    let fail = |command: String, detail: String| LabError::Command {
        what: what.clone(),
        command,
        detail,
    };
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("ip -n {ns} -batch -"), e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("ip -n {ns} -batch -"), e.to_string()))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    // iproute2 reports "Command failed -:N" with N counted from 1.
    let line = stderr
        .rsplit_once("Command failed -:")
        .and_then(|(_, n)| n.trim().parse::<usize>().ok())
        .and_then(|n| lines.get(n.wrapping_sub(1)));
    let command = match line {
        Some(l) => format!("ip -n {ns} {l}"),
        None => format!("ip -n {ns} -batch - <<< {text:?}"),
    };
    Err(fail(command, stderr))
}

/// Sets a sysctl of the namespace at `path` (`key` like `net/ipv4/ip_forward`).
fn set_sysctl(path: &Path, key: &str, value: &str) -> Result<(), LabError> {
    let file = Path::new("/proc/sys").join(key);
    let shown = file.clone();
    let value = value.to_owned();
    run_in_netns(path, move || std::fs::write(&file, value))
        .and_then(|r| r)
        .map_err(LabError::io(
            format!("setting sysctl in {}", path.display()),
            shown,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Netns;

    #[test]
    fn port_names_fit_and_stay_unique() {
        assert_eq!(port_name('n', 0, "node-1"), "n0-node-1");
        let long = port_name('n', 12, "a-very-long-node-name");
        assert_eq!(long, "n12-a-very-long");
        assert_ne!(port_name('n', 1, "x"), port_name('n', 10, "x"));
    }

    /// Needs root: a build that fails after making everything leaves nothing.
    #[test]
    fn a_failed_up_removes_what_it_made() {
        let dir = tempfile::tempdir().unwrap();
        let fabric = Fabric::new(LabPaths::new(dir.path()));
        let mut topo = Topology::default_lab();
        topo.name = format!("tf{}", std::process::id());
        // Removes the lab even if an assertion below fails.
        struct Down<'a>(&'a Fabric, String);
        impl Drop for Down<'_> {
            fn drop(&mut self) {
                let _ = self.0.down(&self.1);
            }
        }
        let _down = Down(&fabric, topo.name.clone());
        std::fs::create_dir(fabric.paths.lab_dir(&topo.name)).unwrap();
        let e = fabric
            .build_or_remove(&topo, |f, t| {
                let built = f.build(t)?;
                assert_eq!(down::lab_namespaces(&t.name).unwrap().len(), 6);
                assert!(f.paths.state_file(&t.name).is_file());
                drop(built);
                Err(LabError::target("x", "injected failure"))
            })
            .unwrap_err();
        assert!(e.to_string().contains("injected failure"), "{e}");
        assert!(down::lab_namespaces(&topo.name).unwrap().is_empty());
        assert!(!fabric.paths.lab_dir(&topo.name).exists());
    }

    /// Needs root: a failed batch names the command that failed.
    #[test]
    fn a_failed_batch_names_its_failing_line() {
        let ns = Netns::unique("stlabbatch").unwrap();
        let lines = [
            "link set lo up".to_owned(),
            "link set nosuch0 up".to_owned(),
        ];
        let e = batch(&ns.name, &lines).unwrap_err().to_string();
        assert!(
            e.contains(&format!("ip -n {} link set nosuch0 up", ns.name)),
            "{e}"
        );
        assert!(e.contains("configuring namespace"), "{e}");
    }
}
