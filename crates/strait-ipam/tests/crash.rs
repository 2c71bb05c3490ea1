//! `kill -9` at random moments: worker processes (this test binary re-executed with
//! `--exact worker_loop`) allocate and release in a loop until SIGKILLed; afterwards the
//! store must be consistent and every free address must still be allocatable.

mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{check_index, id, index_name, names_in, owner_of, sets};
use strait_ipam::{AttachmentId, IpamError, RangeSet, Store};

const DIR_ENV: &str = "STRAIT_IPAM_CRASH_DIR";
const PREFIX_ENV: &str = "STRAIT_IPAM_CRASH_PREFIX";
const READY_ENV: &str = "STRAIT_IPAM_CRASH_READY";
/// How many attachments a worker keeps at once; bounds what killed rounds leave behind.
const WINDOW: usize = 3;
const ROUNDS: usize = 20;
const WORKERS: usize = 2;
const V4_SIZE: usize = 253;
const V6_SIZE: usize = 254;

fn dual_stack() -> Vec<RangeSet> {
    sets(r#"[[{"subnet": "10.42.0.0/24"}], [{"subnet": "fd00::/120"}]]"#)
}

fn attachment(prefix: &str, k: usize) -> AttachmentId {
    id(&format!("{prefix}-{k}"), "eth0")
}

/// Allocates `prefix-k` for k = 0, 1, ... and releases `prefix-(k-WINDOW)`; forever when
/// `iterations` is None.
fn work(dir: &Path, prefix: &str, ready: Option<&Path>, iterations: Option<usize>) {
    let store = Store::open(dir).expect("open");
    let sets = dual_stack();
    if let Some(ready) = ready {
        fs::write(ready, "").expect("signal ready");
    }
    let mut k = 0;
    while iterations.is_none_or(|n| k < n) {
        match store.allocate(&attachment(prefix, k), &sets) {
            Ok(got) => assert_eq!(got.len(), 2),
            // Possible if killed rounds left much behind; not a failure of the store.
            Err(IpamError::Exhausted { .. }) => {}
            Err(e) => panic!("allocate: {e}"),
        }
        if k >= WINDOW {
            store
                .release(&attachment(prefix, k - WINDOW))
                .expect("release");
        }
        if k % 7 == 0 {
            store.get(&attachment(prefix, k)).expect("get");
        }
        k += 1;
    }
}

/// As a worker (env set by `killed_workers_leave_a_consistent_store`): loop until killed.
/// Otherwise: a bounded run of the same loop, checked.
#[test]
fn worker_loop() {
    if let (Some(dir), Some(prefix)) = (std::env::var_os(DIR_ENV), std::env::var(PREFIX_ENV).ok()) {
        let ready = std::env::var_os(READY_ENV).map(PathBuf::from);
        work(Path::new(&dir), &prefix, ready.as_deref(), None);
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    work(tmp.path(), "solo", None, Some(200));
    let store = Store::open(tmp.path()).expect("open");
    let held = store.allocations().expect("list");
    let expected: Vec<AttachmentId> = (200 - WINDOW..200).map(|k| attachment("solo", k)).collect();
    for k in 200 - WINDOW..200 {
        assert_eq!(store.get(&attachment("solo", k)).expect("get").len(), 2);
    }
    assert_eq!(held.len(), 2 * WINDOW);
    check_index(tmp.path()).expect("consistent index");
    assert!(held.iter().all(|(_, o)| expected.contains(o)));
}

/// xorshift64: enough randomness for kill timing without another dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn spawn_worker(dir: &Path, prefix: &str, ready: &Path) -> Child {
    let exe = std::env::current_exe().expect("current exe");
    Command::new(exe)
        .args(["--exact", "worker_loop", "--nocapture", "--test-threads=1"])
        .env(DIR_ENV, dir)
        .env(PREFIX_ENV, prefix)
        .env(READY_ENV, ready)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn worker")
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(Instant::now() < deadline, "worker never got ready");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn kill(child: Child) {
    let mut child = child;
    child.kill().expect("SIGKILL");
    let out = child.wait_with_output().expect("wait");
    // Anything but SIGKILL means the worker stopped by itself: it failed.
    assert_eq!(
        out.status.signal(),
        Some(9),
        "worker exited early: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file in the store is the lock, a round-robin hint, a temp file, or a
/// well-formed allocation of a worker's attachment or index link to one (possibly stale:
/// a kill between creating the index link and the allocation file, or between removing
/// them, leaves one behind).
fn check_files(dir: &Path) {
    let names = names_in(dir);
    let stale = names
        .iter()
        .filter_map(|n| n.strip_prefix('@')?.split_once('_'))
        .filter(|(_, addr)| !names.iter().any(|n| n == addr))
        .count();
    eprintln!("index links without their allocation file: {stale}");
    for name in names {
        let path = dir.join(&name);
        if name == "lock" || name.starts_with(".tmp-") {
            continue;
        }
        let content = fs::read_to_string(&path).expect("read");
        if name.starts_with("last_reserved_ip.") {
            // Written in place: a kill between the write and the truncation leaves the
            // new address followed by the tail of a longer old one. That only moves
            // round-robin, so just check it holds address text and nothing else.
            assert!(
                !content.is_empty()
                    && content
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':'),
                "{name}: {content:?}"
            );
            continue;
        }
        let addr = match name.strip_prefix('@') {
            Some(rest) => {
                let (_, addr) = rest.split_once('_').expect("index link name");
                let addr = addr.parse().expect("index link names an address");
                assert_eq!(name, index_name(&owner_of(&content), addr), "{content:?}");
                addr
            }
            None => name
                .parse::<std::net::IpAddr>()
                .expect("allocation named by address"),
        };
        assert_eq!(
            addr.to_string(),
            name.rsplit('_').next().unwrap_or_default()
        );
        let (cid, ifname) = content
            .split_once("\r\n")
            .unwrap_or_else(|| panic!("{name}: malformed content {content:?}"));
        assert_eq!(ifname, "eth0", "{name}: {content:?}");
        assert!(is_worker_id(cid), "{name}: {content:?}");
    }
}

/// `r{round}w{worker}-{k}`, as the workers name their attachments.
fn is_worker_id(cid: &str) -> bool {
    let numbers = cid
        .strip_prefix('r')
        .and_then(|rest| rest.split_once('w'))
        .and_then(|(round, rest)| rest.split_once('-').map(|(w, k)| [round, w, k]));
    numbers.is_some_and(|ns| ns.iter().all(|n| n.parse::<usize>().is_ok()))
}

/// Allocates fresh attachments from `sets` until exhausted; returns how many succeeded.
fn fill(store: &Store, sets: &[RangeSet], tag: &str) -> usize {
    let mut n = 0;
    loop {
        match store.allocate(&id(&format!("{tag}-{n}"), "eth0"), sets) {
            Ok(_) => n += 1,
            Err(IpamError::Exhausted { .. }) => return n,
            Err(e) => panic!("fill: {e}"),
        }
    }
}

#[test]
fn killed_workers_leave_a_consistent_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("net");
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("kill timing seed {seed}");
    let mut rng = Rng(seed);
    for round in 0..ROUNDS {
        let workers: Vec<Child> = (0..WORKERS)
            .map(|w| {
                let ready = tmp.path().join(format!("ready-{round}-{w}"));
                let child = spawn_worker(&dir, &format!("r{round}w{w}"), &ready);
                wait_for(&ready);
                child
            })
            .collect();
        for child in workers {
            std::thread::sleep(Duration::from_micros(rng.below(15_000)));
            kill(child);
        }
    }

    check_files(&dir);
    let store = Store::open(&dir).expect("open");
    let sets = dual_stack();
    let all = store.allocations().expect("list");
    assert!(!all.is_empty(), "the workers never allocated anything");
    let mut per_set: HashMap<(AttachmentId, usize), usize> = HashMap::new();
    for (addr, owner) in &all {
        let s = sets
            .iter()
            .position(|s| s.find(*addr).is_some())
            .expect("in a set");
        *per_set.entry((owner.clone(), s)).or_default() += 1;
    }
    assert!(
        per_set.values().all(|n| *n == 1),
        "an attachment holds two addresses in a set"
    );

    // Keep the attachments with an even number; the rest are gone.
    let valid: Vec<AttachmentId> = all
        .iter()
        .map(|(_, o)| o.clone())
        .filter(|o| o.container_id.ends_with(['0', '2', '4', '6', '8']))
        .collect();
    store.gc(&valid).expect("gc");
    assert!(
        !names_in(&dir).iter().any(|n| n.starts_with(".tmp-")),
        "gc left a temp file"
    );
    check_index(&dir).expect("gc left the index consistent");
    let kept = store.allocations().expect("list");
    assert!(kept.iter().all(|(_, o)| valid.contains(o)));
    let held = |s: usize| {
        kept.iter()
            .filter(|(a, _)| sets[s].find(*a).is_some())
            .count()
    };
    let (held4, held6) = (held(0), held(1));

    assert_eq!(fill(&store, &sets[..1], "fill4"), V4_SIZE - held4);
    assert_eq!(fill(&store, &sets[1..], "fill6"), V6_SIZE - held6);
    assert_eq!(store.allocations().expect("list").len(), V4_SIZE + V6_SIZE);
    check_index(&dir).expect("consistent index after filling");
}
