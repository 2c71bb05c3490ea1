//! Makes the kernel match a Plan: reads what exists, changes only what
//! differs, and touches only what the agent owns (routes with its protocol
//! number, `strait0`, `strait.vxlan` and their addresses, FDB and neighbour
//! entries on the VXLAN device, the `inet strait` table, the node file).
//!
//! Every call compares against the live kernel, so anything deleted by hand
//! comes back on the next sync; the nft table is rewritten in one
//! transaction when its text changed, and on every full resync. Whether
//! the kernel still holds the table this agent loaded is checked on every
//! sync (its stamp, read through netlink).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strait_kernel::link::{self, Link};
use strait_kernel::neighbour::{self, Entry};
use strait_kernel::route::{self, RouteSpec};
use strait_kernel::{address, nft, sysctl, Netlink, NetlinkError};
use strait_plan::nft::{incremental, Table};
use strait_plan::{Plan, STRAIT_ROUTE_PROTO};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Kernel(#[from] NetlinkError),
    #[error("nftables: {0}")]
    Nft(#[from] nft::NftError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Conflict(String),
}

/// The chain holding the table's stamp (see [`stamped`]).
pub(crate) const STAMP_CHAIN: &str = "stamp";

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ApplyError {
    let what = what.into();
    move |source| ApplyError::Io { what, source }
}

/// What one sync changed and what the agent owns afterwards.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub changes: Vec<String>,
    pub routes: usize,
    pub fdb: usize,
    pub neighbours: usize,
    /// The nft table was loaded whole (created or rewritten): its counters
    /// started again at zero.
    pub nft_reloaded: bool,
}

pub struct Applier {
    nl: Netlink,
    node_file: PathBuf,
    /// The stamp (hash) of the table the kernel holds.
    last_nft: Option<String>,
    /// The table this agent last put into the kernel (for element diffs),
    /// shared with the Plan it came from, and its stamp's parts.
    last_table: Option<(Arc<Table>, Stamp)>,
}

impl Applier {
    pub fn new(node_file: &Path) -> Result<Self, ApplyError> {
        Ok(Applier {
            nl: Netlink::open().map_err(io("open a netlink socket"))?,
            node_file: node_file.to_path_buf(),
            last_nft: None,
            last_table: None,
        })
    }

    /// One sync. `full` also rewrites the nft table even if unchanged (the
    /// periodic resync that repairs drift nobody reported).
    pub fn apply(&mut self, plan: &Plan, full: bool) -> Result<Report, ApplyError> {
        let mut r = Report::default();
        self.ensure_bridge(plan, &mut r)?;
        let vxlan = self.ensure_vxlan(plan, &mut r)?;
        // After the links: some sysctls belong to strait0 and strait.vxlan.
        for (key, value) in &plan.sysctls {
            sysctl::ensure(key, value).map_err(io(format!("set sysctl {key}={value}")))?;
        }
        self.sync_routes(plan, &mut r)?;
        if let Some(vx) = &vxlan {
            self.sync_entries(plan, vx, &mut r)?;
        }
        self.sync_nft(&plan.nft, full, &mut r)?;
        let node_json = serde_json::to_string(&plan.node_file).unwrap_or_default();
        if crate::node_file::write_if_changed(&self.node_file, &node_json)
            .map_err(io(format!("write {}", self.node_file.display())))?
        {
            r.changes
                .push(format!("node file {} written", self.node_file.display()));
        }
        Ok(r)
    }

    /// Makes the kernel's `inet strait` table match `table`: nothing when it
    /// is the table this agent installed last (until a `full` resync);
    /// element and object changes as one incremental transaction when the
    /// rest is alike; otherwise the whole table in one transaction.
    pub fn sync_nft(
        &mut self,
        table: &Arc<Table>,
        full: bool,
        r: &mut Report,
    ) -> Result<(), ApplyError> {
        let name = strait_plan::NFT_TABLE;
        // Every sync: is the kernel's table still the one this agent loaded
        // last? Two small netlink dumps; a table deleted or replaced behind
        // the agent's back (`nft flush ruleset`, a firewall reload) is put
        // back by this sync, not the next full resync.
        let (absent, in_kernel) = match kernel_stamp()? {
            KernelTable::Absent => (true, None),
            KernelTable::Stamped(s) => (false, s),
        };
        if in_kernel != self.last_nft {
            if let Some(mine) = &self.last_nft {
                r.changes.push(format!(
                    "nft table inet {name} was {} outside the agent (stamp {}, loaded {mine})",
                    if absent { "deleted" } else { "changed" },
                    in_kernel.as_deref().unwrap_or("none")
                ));
            }
            // Nothing to diff against: what the kernel holds is not known.
            self.last_nft = in_kernel;
            self.last_table = None;
        }
        if let (false, Some((old, old_stamp))) = (full, &self.last_table) {
            // The same Plan again (a periodic sync without a source change).
            if Arc::ptr_eq(old, table) {
                return Ok(());
            }
            // Only elements changed (endpoints, Services coming and going),
            // maybe with whole maps and chains added or removed (a Service
            // moving to an endpoint-count group of its own): send those and
            // a new stamp in one transaction. Anything else, and every full
            // resync, rewrites the table.
            if let Some(changes) = incremental::changes_and_middles(old, table) {
                let stamp = old_stamp.after(old, table, &changes.middles);
                let applied = if changes.text.is_empty() {
                    Ok(())
                } else {
                    crate::nft_update::apply_changes(table, &changes, &stamp.text).map(|path| {
                        let mut summary = incremental_summary(name, &changes.text);
                        if path == crate::nft_update::Path::Netlink {
                            summary.push_str(" (netlink)");
                        }
                        r.changes.push(summary);
                    })
                };
                match applied {
                    Ok(()) => {
                        self.last_nft = Some(stamp.text.clone());
                        self.keep(table, stamp);
                        return Ok(());
                    }
                    // The kernel's table is not what this agent loaded
                    // after all (an element someone deleted by hand): load
                    // the whole table now instead of failing every sync.
                    Err(e) => {
                        r.changes.push(format!(
                            "incremental update refused ({e}); whole table loaded"
                        ));
                        self.last_nft = None;
                    }
                }
            }
        }
        let stamp = Stamp::of(table);
        let changed = self.last_nft.as_deref() != Some(stamp.text.as_str());
        if full || changed {
            crate::nft_load::load_table(table, &stamp.text, r)?;
            r.nft_reloaded = true;
            if changed && !absent {
                r.changes.push(format!("nft table inet {name} rewritten"));
            }
        }
        self.last_nft = Some(stamp.text.clone());
        self.keep(table, stamp);
        Ok(())
    }

    /// Keeps `table` as the one the kernel holds. The table it replaces
    /// (110,000 elements at 10,000 Services: milliseconds of `free`) is
    /// dropped on a thread of its own, after the kernel already has the
    /// change.
    fn keep(&mut self, table: &Arc<Table>, stamp: Stamp) {
        if let Some((old, _)) = self.last_table.replace((Arc::clone(table), stamp)) {
            drop_elsewhere(old);
        }
    }

    fn ensure_bridge(&mut self, plan: &Plan, r: &mut Report) -> Result<Link, ApplyError> {
        let b = &plan.bridge;
        let link = match link::by_name(&mut self.nl, &b.name)? {
            Some(l) => l,
            None => {
                link::create_bridge(&mut self.nl, &b.name, b.mtu)?;
                r.changes.push(format!("created bridge {}", b.name));
                link::by_name(&mut self.nl, &b.name)?.ok_or_else(|| {
                    ApplyError::Conflict(format!("bridge {} vanished after creation", b.name))
                })?
            }
        };
        if link.kind.as_deref() != Some("bridge") {
            return Err(ApplyError::Conflict(format!(
                "{} exists and is a {}, not a bridge: remove it or set `bridge` in the agent config",
                b.name,
                link.kind.as_deref().unwrap_or("device of unknown kind")
            )));
        }
        if !link.up {
            link::set_up(&mut self.nl, link.index, &b.name)?;
            r.changes.push(format!("set {} up", b.name));
        }
        self.sync_addresses(&link, &b.addresses, r)?;
        Ok(link)
    }

    fn ensure_vxlan(&mut self, plan: &Plan, r: &mut Report) -> Result<Option<Link>, ApplyError> {
        let name = strait_plan::VXLAN_DEV;
        let existing = link::by_name(&mut self.nl, name)?;
        let Some(v) = &plan.vxlan else {
            if let Some(l) = existing {
                link::delete(&mut self.nl, l.index, name)?;
                r.changes
                    .push(format!("deleted {name} (backend is not vxlan)"));
            }
            return Ok(None);
        };
        let want_mac = link::format_mac(&v.mac);
        let fits = |l: &Link| {
            l.kind.as_deref() == Some("vxlan")
                && l.mac.as_deref() == Some(want_mac.as_str())
                && l.vxlan.as_ref().is_some_and(|x| {
                    x.vni == v.vni && x.port == v.port && x.local == Some(v.local) && !x.learning
                })
        };
        let link = match existing {
            Some(l) if fits(&l) => l,
            other => {
                if let Some(old) = other {
                    link::delete(&mut self.nl, old.index, name)?;
                    r.changes.push(format!(
                        "deleted {name}: its parameters differ from the plan"
                    ));
                }
                let under = link::by_name(&mut self.nl, &v.underlay_dev)?.ok_or_else(|| {
                    ApplyError::Conflict(format!("underlay interface {} not found", v.underlay_dev))
                })?;
                let l = link::create_vxlan(
                    &mut self.nl,
                    &link::VxlanSpec {
                        name,
                        vni: v.vni,
                        port: v.port,
                        local: v.local,
                        underlay_index: under.index,
                        mtu: v.mtu,
                        mac: v.mac,
                    },
                )?;
                r.changes
                    .push(format!("created {name} (VNI {}, port {})", v.vni, v.port));
                l
            }
        };
        if link.mtu != Some(v.mtu) {
            link::set_mtu(&mut self.nl, link.index, name, v.mtu)?;
            r.changes.push(format!("set MTU {} on {name}", v.mtu));
        }
        if !link.up {
            link::set_up(&mut self.nl, link.index, name)?;
            r.changes.push(format!("set {name} up"));
        }
        self.sync_addresses(&link, std::slice::from_ref(&v.address), r)?;
        Ok(Some(link))
    }

    /// Global addresses on a link we own: exactly `want`.
    fn sync_addresses(
        &mut self,
        link: &Link,
        want: &[ipnet::IpNet],
        r: &mut Report,
    ) -> Result<(), ApplyError> {
        let have: Vec<ipnet::IpNet> = address::list(&mut self.nl, link.index)?
            .into_iter()
            .filter(|a| !is_link_local(a.addr()))
            .collect();
        for a in want {
            if !have.contains(a) {
                address::add(&mut self.nl, link.index, &link.name, *a)?;
                r.changes.push(format!("added {a} to {}", link.name));
            }
        }
        for a in &have {
            if !want.contains(a) {
                address::delete(&mut self.nl, link.index, &link.name, *a)?;
                r.changes.push(format!("removed {a} from {}", link.name));
            }
        }
        Ok(())
    }

    fn sync_routes(&mut self, plan: &Plan, r: &mut Report) -> Result<(), ApplyError> {
        let mut want = Vec::new();
        for p in &plan.routes {
            let oif = match &p.dev {
                Some(dev) => {
                    link::by_name(&mut self.nl, dev)?
                        .ok_or_else(|| {
                            ApplyError::Conflict(format!("route {} needs device {dev}", p.dst))
                        })?
                        .index
                }
                None => 0,
            };
            want.push(RouteSpec {
                dst: p.dst,
                gateway: p.gateway,
                oif,
                protocol: STRAIT_ROUTE_PROTO,
                onlink: p.onlink,
            });
        }
        let have: Vec<RouteSpec> = route::list(&mut self.nl)?
            .into_iter()
            .filter(|h| h.protocol == STRAIT_ROUTE_PROTO)
            .collect();
        // A route installed without a device comes back with the one the
        // kernel chose: compare the device only where the plan names one.
        let same = same_route;
        for w in &want {
            if !have.iter().any(|h| same(w, h)) {
                route::replace(&mut self.nl, w)?;
                r.changes.push(format!("route {}", route::describe(w)));
            }
        }
        for h in &have {
            if !want.iter().any(|w| same(w, h)) {
                route::delete(&mut self.nl, h)?;
                r.changes
                    .push(format!("removed route {}", route::describe(h)));
            }
        }
        r.routes = want.len();
        Ok(())
    }

    fn sync_entries(&mut self, plan: &Plan, vx: &Link, r: &mut Report) -> Result<(), ApplyError> {
        let (want_fdb, want_neigh) = wanted_entries(plan, vx.index);
        let have_fdb: BTreeSet<Entry> = neighbour::fdb(&mut self.nl, vx.index)?
            .into_iter()
            .filter(|e| !e.ip.is_unspecified())
            .collect();
        let have_neigh: BTreeSet<Entry> = neighbour::neighbours(&mut self.nl, vx.index)?
            .into_iter()
            .collect();
        for e in want_fdb.difference(&have_fdb) {
            neighbour::set_fdb(&mut self.nl, e)?;
            r.changes
                .push(format!("FDB {} -> {}", link::format_mac(&e.mac), e.ip));
        }
        for e in have_fdb.difference(&want_fdb) {
            neighbour::delete_fdb(&mut self.nl, e)?;
            r.changes.push(format!(
                "removed FDB {} -> {}",
                link::format_mac(&e.mac),
                e.ip
            ));
        }
        for e in want_neigh.difference(&have_neigh) {
            neighbour::set_neighbour(&mut self.nl, e)?;
            r.changes.push(format!(
                "neighbour {} -> {}",
                e.ip,
                link::format_mac(&e.mac)
            ));
        }
        for e in have_neigh.difference(&want_neigh) {
            neighbour::delete_neighbour(&mut self.nl, e)?;
            r.changes.push(format!("removed neighbour {}", e.ip));
        }
        r.fdb = want_fdb.len();
        r.neighbours = want_neigh.len();
        Ok(())
    }

    /// Removes everything the agent owns (`strait agent --cleanup`).
    /// Keeps going past failures and reports all of them.
    pub fn cleanup(&mut self, bridge: &str) -> Result<Vec<String>, Vec<String>> {
        let mut done = Vec::new();
        let mut failed = Vec::new();
        match route::list(&mut self.nl) {
            Ok(routes) => {
                for h in routes.iter().filter(|h| h.protocol == STRAIT_ROUTE_PROTO) {
                    match route::delete(&mut self.nl, h) {
                        Ok(()) => done.push(format!("removed route {}", route::describe(h))),
                        Err(e) => failed.push(e.to_string()),
                    }
                }
            }
            Err(e) => failed.push(e.to_string()),
        }
        for name in [strait_plan::VXLAN_DEV, bridge] {
            match link::by_name(&mut self.nl, name) {
                Ok(Some(l)) => match link::delete(&mut self.nl, l.index, name) {
                    Ok(()) => done.push(format!("deleted {name}")),
                    Err(e) => failed.push(e.to_string()),
                },
                Ok(None) => {}
                Err(e) => failed.push(e.to_string()),
            }
        }
        match nft::delete_table("inet", strait_plan::NFT_TABLE) {
            Ok(()) => done.push("deleted nft table inet strait".into()),
            Err(e) => failed.push(e.to_string()),
        }
        // Left by an agent killed in the middle of a large load.
        if let Err(e) = nft::delete_table("inet", crate::nft_load::BUILD_TABLE) {
            failed.push(e.to_string());
        }
        match std::fs::remove_file(&self.node_file) {
            Ok(()) => done.push(format!("removed {}", self.node_file.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => failed.push(format!("remove {}: {e}", self.node_file.display())),
        }
        self.last_nft = None;
        self.last_table = None;
        if failed.is_empty() {
            Ok(done)
        } else {
            Err(failed)
        }
    }
}

/// The VXLAN device's FDB and neighbour entries the Plan wants, on the
/// device with this index (the agent applies them, doctor compares them).
pub(crate) fn wanted_entries(plan: &Plan, ifindex: u32) -> (BTreeSet<Entry>, BTreeSet<Entry>) {
    let fdb = plan
        .fdb
        .iter()
        .map(|f| Entry {
            ifindex,
            ip: f.dst,
            mac: f.mac,
        })
        .collect();
    let neighbours = plan
        .neighbours
        .iter()
        .map(|n| Entry {
            ifindex,
            ip: n.ip,
            mac: n.mac,
        })
        .collect();
    (fdb, neighbours)
}

/// Drops `value` on a short-lived thread (the caller is done with it and
/// should not wait for the frees); on the spot when no thread can start.
fn drop_elsewhere<T: Send + 'static>(value: T) {
    // A failed spawn drops the closure, and `value` with it, right here.
    let _ = std::thread::Builder::new()
        .name("drop".into())
        .spawn(move || drop(value));
}

/// A hash of the table, written into the kernel as the comment of the one
/// rule of chain `stamp` (see [`stamped_text`]), so an agent that starts
/// later can tell whether the kernel already holds exactly this ruleset.
pub(crate) fn stamp_of(table: &Table) -> String {
    Stamp::of(table).text
}

/// The stamp ([`stamp_of`]) and what it was computed from. Declarations
/// and chains are serialised straight into the hasher; the elements of
/// maps and concatenation sets (100,000 and more at scale) are hashed one
/// by one and summed (wrapping), which is several times cheaper than
/// serialising them and does not depend on their order. The sums are kept
/// (in the table's order), so the next stamp after a few element changes
/// subtracts and adds those elements' hashes instead of hashing every
/// element again ([`Stamp::after`]). (std's hasher may change between Rust
/// releases: that costs one extra rewrite after an upgrade, nothing more.)
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stamp {
    pub(crate) text: String,
    concat_sums: Vec<u64>,
    map_sums: Vec<u64>,
}

type Hasher = std::collections::hash_map::DefaultHasher;

struct HashWriter<'a>(&'a mut Hasher);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::hash::Hasher::write(self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn concat_element_hash(e: &[strait_plan::nft::Key]) -> u64 {
    use std::hash::{Hash, Hasher as _};
    let mut h = Hasher::new();
    // As a Vec hashes (length first), so the stamps of existing tables stay.
    e.hash(&mut h);
    h.finish()
}

fn map_element_hash(k: &[strait_plan::nft::Key], v: &strait_plan::nft::MapData) -> u64 {
    use std::hash::{Hash, Hasher as _};
    use strait_plan::nft::MapData;
    let mut h = Hasher::new();
    k.hash(&mut h);
    match v {
        MapData::AddrPort(ip, port) => (ip, port).hash(&mut h),
        other => {
            let _ = serde_json::to_writer(HashWriter(&mut h), other);
        }
    }
    h.finish()
}

fn sum(hashes: impl Iterator<Item = u64>) -> u64 {
    hashes.fold(0u64, u64::wrapping_add)
}

/// The element-hash sums of the `new` lists (maps, or concatenation sets;
/// `parts` gives a list's name and elements): a list `old` also holds
/// keeps its sum from `old_sums`, less its old middle's hashes and plus its
/// new middle's; a new list is summed whole.
fn sums_after<'a, L, E: 'a>(
    old: &'a [L],
    old_sums: &[u64],
    new: &'a [L],
    parts: impl Fn(&'a L) -> (&'a str, &'a [E]),
    middles: &HashMap<&str, incremental::Middle<'_, E>>,
    hash: impl Fn(&E) -> u64,
) -> Vec<u64> {
    let was: HashMap<&str, u64> = old
        .iter()
        .map(|l| parts(l).0)
        .zip(old_sums.iter().copied())
        .collect();
    new.iter()
        .map(|l| {
            let (name, elements) = parts(l);
            match (was.get(name), middles.get(name)) {
                (None, _) => sum(elements.iter().map(&hash)),
                (Some(was), None) => *was,
                (Some(was), Some((o, n))) => was
                    .wrapping_sub(sum(o.iter().map(&hash)))
                    .wrapping_add(sum(n.iter().map(&hash))),
            }
        })
        .collect()
}

impl Stamp {
    pub(crate) fn of(table: &Table) -> Stamp {
        let concat_sums = table
            .concat_sets
            .iter()
            .map(|c| sum(c.elements.iter().map(|e| concat_element_hash(e))))
            .collect();
        let map_sums = table
            .maps
            .iter()
            .map(|m| sum(m.elements.iter().map(|(k, v)| map_element_hash(k, v))))
            .collect();
        Stamp::from_sums(table, concat_sums, map_sums)
    }

    /// The stamp of `new`, from this one (of `old`) and the element lists
    /// where the two differ (from [`incremental::changes_and_middles`]).
    fn after(&self, old: &Table, new: &Table, middles: &incremental::Middles) -> Stamp {
        let concat_sums = sums_after(
            &old.concat_sets,
            &self.concat_sums,
            &new.concat_sets,
            |c| (c.name.as_str(), c.elements.as_slice()),
            &middles.concat_sets,
            |e| concat_element_hash(e),
        );
        let map_sums = sums_after(
            &old.maps,
            &self.map_sums,
            &new.maps,
            |m| (m.name.as_str(), m.elements.as_slice()),
            &middles.maps,
            |(k, v)| map_element_hash(k, v),
        );
        Stamp::from_sums(new, concat_sums, map_sums)
    }

    fn from_sums(table: &Table, concat_sums: Vec<u64>, map_sums: Vec<u64>) -> Stamp {
        use std::hash::Hasher as _;
        let mut h = Hasher::new();
        let _ = serde_json::to_writer(
            HashWriter(&mut h),
            &(
                &table.family,
                &table.name,
                &table.sets,
                &table.chains,
                &table.counters,
            ),
        );
        for (c, sum) in table.concat_sets.iter().zip(&concat_sums) {
            let _ = serde_json::to_writer(
                HashWriter(&mut h),
                &(&c.name, &c.key, &c.interval, &c.comment),
            );
            h.write_u64(*sum);
        }
        for (m, sum) in table.maps.iter().zip(&map_sums) {
            let _ = serde_json::to_writer(
                HashWriter(&mut h),
                &(&m.name, &m.key, &m.value, &m.interval, &m.comment),
            );
            h.write_u64(*sum);
        }
        Stamp {
            text: format!("strait:{:016x}", h.finish()),
            concat_sums,
            map_sums,
        }
    }
}

/// The table's text with its stamp chain, and the stamp (what a rewrite
/// loads; doctor compares both with the kernel).
pub(crate) fn stamped(table: &Table) -> (String, String) {
    let stamp = stamp_of(table);
    (stamped_text(table, &stamp), stamp)
}

/// The table's text with the stamp chain: a rule in a chain nothing jumps
/// to, because nft 1.0.6 neither lists table comments nor updates chain
/// comments. The rule is `counter comment "..."`, not a verdict: a new rule
/// with a verdict marks the table for the kernel's loop check of every
/// chain at commit, a counter does not (1-2 ms at 10,000 Services, measured
/// with nft). The chain goes in a second block for the same table (same
/// transaction), so the table itself is rendered as it is, without a copy.
pub(crate) fn stamped_text(table: &Table, stamp: &str) -> String {
    with_stamp(
        strait_plan::nft::render(table),
        table.family,
        &table.name,
        stamp,
    )
}

/// `text` (a rendering of table `<family> <name>`) with the stamp chain
/// block appended.
pub(crate) fn with_stamp(
    mut text: String,
    family: strait_plan::nft::Family,
    name: &str,
    stamp: &str,
) -> String {
    use strait_plan::nft::{Chain, Rule, Verdict};
    let mut block = Table::new(family, name.to_owned());
    block.chains.push(Chain {
        name: STAMP_CHAIN.into(),
        base: None,
        rules: vec![Rule {
            matches: vec![],
            statements: vec![],
            verdict: Verdict::Continue,
            counter: true,
            comment: Some(stamp.to_owned()),
        }],
    });
    let rendered = strait_plan::nft::render(&block);
    // Only the block: its own "add table" / "delete table" prelude would
    // delete what the first part just wrote.
    let head = format!("table {} {name} {{", family.as_str());
    if let Some(at) = rendered.find(&head) {
        text.push_str(&rendered[at..]);
    }
    text
}

/// `nft table inet strait: 2 element updates` (and how many maps, sets
/// and chains came or went, when any did).
fn incremental_summary(table: &str, diff: &str) -> String {
    let elements = diff
        .lines()
        .filter(|l| l.starts_with("add element ") || l.starts_with("delete element "))
        .count();
    let added = diff
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("chain ") || l.starts_with("map ") || l.starts_with("set ")
        })
        .count();
    let removed = diff
        .lines()
        .filter(|l| {
            l.starts_with("delete chain ")
                || l.starts_with("delete map ")
                || l.starts_with("delete set ")
        })
        .count();
    let mut text = format!("nft table inet {table}: {elements} element updates");
    if added + removed > 0 {
        text.push_str(&format!(", {added} objects added, {removed} removed"));
    }
    text
}

pub(crate) fn kernel_stamp() -> Result<KernelTable, ApplyError> {
    use strait_kernel::nft_batch::FAMILY_INET;
    use strait_kernel::nft_read;
    // Through netlink: any `nft list` of the table fetches every element
    // first (2 s at 10,000 Services).
    // `rule_comments` already says None when the table does not exist.
    let Some(comments) = nft_read::rule_comments(FAMILY_INET, strait_plan::NFT_TABLE, STAMP_CHAIN)?
    else {
        return Ok(KernelTable::Absent);
    };
    Ok(KernelTable::Stamped(
        comments.into_iter().find(|c| c.starts_with("strait:")),
    ))
}

/// The transaction lines that replace the stamp of table `<family> <name>`.
pub(crate) fn stamp_update(family: &str, name: &str, stamp: &str) -> String {
    format!(
        "flush chain {family} {name} {STAMP_CHAIN}\nadd rule {family} {name} {STAMP_CHAIN} counter comment \"{stamp}\"\n"
    )
}

/// What the kernel holds of the agent's table.
pub(crate) enum KernelTable {
    /// No table: nothing can break while it is being loaded.
    Absent,
    /// The table, with the stamp of its last complete load if it has one.
    Stamped(Option<String>),
}

/// Whether the kernel's route `h` is the wanted `w` (a route installed
/// without a device comes back with the one the kernel chose: the device
/// counts only where `w` names one).
pub(crate) fn same_route(w: &RouteSpec, h: &RouteSpec) -> bool {
    w.dst == h.dst
        && w.gateway == h.gateway
        && w.onlink == h.onlink
        && (w.oif == 0 || w.oif == h.oif)
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => v.is_link_local(),
        IpAddr::V6(v) => (v.segments()[0] & 0xffc0) == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strait_plan::nft::{Family, Key, KeyType, L4Proto, Map, MapData, MapValue, Table};

    fn table(elements: &[(u16, u16)]) -> Table {
        let mut t = Table::new(Family::Inet, "strait");
        t.maps.push(Map {
            interval: false,
            name: "m".into(),
            key: vec![KeyType::InetProto, KeyType::InetService],
            value: MapValue::Ipv4AddrPort,
            elements: elements
                .iter()
                .map(|(k, v)| {
                    (
                        [Key::Proto(L4Proto::Tcp), Key::Port(*k)]
                            .into_iter()
                            .collect(),
                        MapData::AddrPort("10.42.1.5".parse().unwrap(), *v),
                    )
                })
                .collect(),
            comment: None,
        });
        t
    }

    #[test]
    fn the_stamp_follows_content_not_element_order() {
        let a = stamp_of(&table(&[(80, 8080), (81, 8081)]));
        assert_eq!(a, stamp_of(&table(&[(81, 8081), (80, 8080)])));
        assert_ne!(a, stamp_of(&table(&[(80, 8080), (81, 9999)])));
        assert_ne!(a, stamp_of(&table(&[(80, 8080)])));
        let mut renamed = table(&[(80, 8080), (81, 8081)]);
        renamed.maps[0].name = "n".into();
        assert_ne!(a, stamp_of(&renamed));
        assert!(a.starts_with("strait:"));
    }

    /// The stamp followed through element middles equals the stamp of the
    /// new table computed from scratch, over random edit sequences: elements
    /// added, removed and changed anywhere, maps and sets appearing and
    /// going.
    #[test]
    fn the_stamp_after_a_change_equals_the_stamp_from_scratch() {
        use strait_plan::nft::ConcatSet;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n.max(1) as u64) as usize
        };
        let key = |i: usize| -> strait_plan::nft::KeyVec {
            [Key::Proto(L4Proto::Tcp), Key::Port(i as u16)]
                .into_iter()
                .collect()
        };
        let mut t = table(&(0..40).map(|i| (i, 1000 + i)).collect::<Vec<_>>());
        t.concat_sets.push(ConcatSet {
            interval: false,
            name: "c".into(),
            key: vec![KeyType::InetProto, KeyType::InetService],
            elements: (0..30).map(key).collect(),
            comment: None,
        });
        let mut old = Arc::new(t);
        let mut stamp = Stamp::of(&old);
        let mut checked = 0;
        for round in 0..400 {
            let mut new = (*old).clone();
            for _ in 0..1 + next(3) {
                match next(6) {
                    0 if !new.maps.is_empty() => {
                        let m = next(new.maps.len());
                        let at = next(new.maps[m].elements.len() + 1);
                        let v = MapData::AddrPort("10.42.1.6".parse().unwrap(), next(9) as u16);
                        new.maps[m].elements.insert(at, (key(5000 + round), v));
                    }
                    1 if !new.maps.is_empty() && !new.maps[0].elements.is_empty() => {
                        let at = next(new.maps[0].elements.len());
                        new.maps[0].elements.remove(at);
                    }
                    2 if !new.maps.is_empty() && !new.maps[0].elements.is_empty() => {
                        let at = next(new.maps[0].elements.len());
                        new.maps[0].elements[at].1 =
                            MapData::AddrPort("10.42.1.7".parse().unwrap(), round as u16);
                    }
                    3 => {
                        let c = &mut new.concat_sets[0].elements;
                        if next(2) == 0 && !c.is_empty() {
                            c.remove(next(c.len()));
                        } else {
                            c.insert(next(c.len() + 1), key(7000 + round));
                        }
                    }
                    4 if new.maps.len() < 3 => {
                        let mut extra = table(&[(round as u16, 1)]).maps.remove(0);
                        extra.name = format!("m{round}");
                        new.maps.push(extra);
                    }
                    _ if new.maps.len() > 1 => {
                        new.maps.remove(1 + next(new.maps.len() - 1));
                    }
                    _ => {}
                }
            }
            let new = Arc::new(new);
            let changes =
                incremental::changes_and_middles(&old, &new).expect("elements and objects only");
            let followed = stamp.after(&old, &new, &changes.middles);
            assert_eq!(followed, Stamp::of(&new), "round {round}");
            checked += 1;
            stamp = followed;
            old = new;
        }
        assert_eq!(checked, 400);
    }
}
