//! The on-disk store: allocation policy, file layout, and many threads at once.

mod common;

use std::collections::HashSet;
use std::fs;
use std::sync::Arc;

use common::{check_index, id, index_name, ip, names_in, owner_of, sets};
use strait_ipam::{range_set_from_cidr, IpamError, Store};

fn store() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&tmp.path().join("data").join("mynet")).expect("open");
    (tmp, store)
}

#[test]
fn open_creates_the_directory() {
    let (_tmp, store) = store();
    assert!(store.dir().is_dir());
    store.check_writable().expect("writable");
    assert_eq!(names_in(store.dir()), ["lock"]);
}

#[test]
fn allocate_get_release() {
    let (_tmp, store) = store();
    let sets = sets(r#"[[{"subnet": "10.42.0.0/24"}]]"#);
    let a = id("c1", "eth0");
    let got = store.allocate(&a, &sets).expect("allocate");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].address.to_string(), "10.42.0.2/24");
    assert_eq!(got[0].gateway, Some(ip("10.42.0.1")));
    assert_eq!(store.get(&a).expect("get"), [ip("10.42.0.2")]);
    assert_eq!(
        store.get(&id("c1", "eth1")).expect("get"),
        Vec::<std::net::IpAddr>::new()
    );

    // host-local's layout and content format.
    let file = store.dir().join("10.42.0.2");
    assert_eq!(fs::read_to_string(file).expect("read"), "c1\r\neth0");
    let last = store.dir().join("last_reserved_ip.0");
    assert_eq!(fs::read_to_string(last).expect("read"), "10.42.0.2");

    assert_eq!(store.release(&a).expect("release"), [ip("10.42.0.2")]);
    assert_eq!(store.get(&a).expect("get"), Vec::<std::net::IpAddr>::new());
    // Releasing again is fine and releases nothing.
    assert_eq!(
        store.release(&a).expect("release"),
        Vec::<std::net::IpAddr>::new()
    );
    assert_eq!(names_in(store.dir()), ["last_reserved_ip.0", "lock"]);
}

#[test]
fn allocate_is_idempotent() {
    let (_tmp, store) = store();
    let sets = sets(r#"[[{"subnet": "10.42.0.0/24"}], [{"subnet": "fd00::/64"}]]"#);
    let a = id("c1", "eth0");
    let first = store.allocate(&a, &sets).expect("allocate");
    let again = store.allocate(&a, &sets).expect("allocate again");
    assert_eq!(first, again);
    assert_eq!(store.allocations().expect("list").len(), 2);
}

#[test]
fn dual_stack_returns_one_address_per_set() {
    let (_tmp, store) = store();
    let sets = sets(r#"[[{"subnet": "10.42.0.0/24"}], [{"subnet": "fd00:42::/64"}]]"#);
    let got = store.allocate(&id("c1", "eth0"), &sets).expect("allocate");
    let addrs: Vec<String> = got.iter().map(|a| a.address.to_string()).collect();
    assert_eq!(addrs, ["10.42.0.2/24", "fd00:42::2/64"]);
    assert_eq!(got[1].gateway, Some(ip("fd00:42::1")));
    assert!(store.dir().join("fd00:42::2").is_file());
    assert!(store.dir().join("last_reserved_ip.1").is_file());
}

#[test]
fn all_or_nothing_across_sets() {
    let (_tmp, store) = store();
    // The IPv6 set has two addresses: fd00::2 and fd00::3.
    let sets = sets(r#"[[{"subnet": "10.42.0.0/24"}], [{"subnet": "fd00::/126"}]]"#);
    store.allocate(&id("a", "eth0"), &sets).expect("a");
    store.allocate(&id("b", "eth0"), &sets).expect("b");
    let before = store.allocations().expect("list");

    let err = store
        .allocate(&id("c", "eth0"), &sets)
        .expect_err("IPv6 exhausted");
    assert!(matches!(err, IpamError::Exhausted { set: 1, .. }), "{err}");
    // The IPv4 address taken for c was given back, with its index link.
    assert_eq!(store.allocations().expect("list"), before);
    check_index(store.dir()).expect("index");
    assert_eq!(
        store.get(&id("c", "eth0")).expect("get"),
        Vec::<std::net::IpAddr>::new()
    );
}

#[test]
fn failed_call_keeps_addresses_held_before_it() {
    let (_tmp, store) = store();
    let v4 = sets(r#"[[{"subnet": "10.42.0.0/24"}]]"#);
    let dual = sets(r#"[[{"subnet": "10.42.0.0/24"}], [{"subnet": "fd00::/126"}]]"#);
    let c = id("c", "eth0");
    store.allocate(&c, &v4).expect("v4 only");
    store.allocate(&id("a", "eth0"), &dual[1..]).expect("a");
    store.allocate(&id("b", "eth0"), &dual[1..]).expect("b");
    store.allocate(&c, &dual).expect_err("IPv6 exhausted");
    // c's IPv4 address predates the failed call, so it stays.
    assert_eq!(store.get(&c).expect("get"), [ip("10.42.0.2")]);
}

#[test]
fn round_robin_does_not_reuse_a_just_freed_address() {
    let (_tmp, store) = store();
    let sets = sets(r#"[[{"subnet": "10.0.0.0/29"}]]"#);
    // .2 to .6 are allocatable.
    let a = store.allocate(&id("a", "eth0"), &sets).expect("a");
    let b = store.allocate(&id("b", "eth0"), &sets).expect("b");
    assert_eq!(b[0].address.addr(), ip("10.0.0.3"));
    store.release(&id("b", "eth0")).expect("release b");
    let c = store.allocate(&id("c", "eth0"), &sets).expect("c");
    assert_eq!(c[0].address.addr(), ip("10.0.0.4"));
    // Freed addresses come back once the range wraps around.
    store.release(&id("a", "eth0")).expect("release a");
    let rest: Vec<_> = ["d", "e", "f", "g"]
        .iter()
        .map(|n| {
            store.allocate(&id(n, "eth0"), &sets).expect("alloc")[0]
                .address
                .addr()
        })
        .collect();
    assert_eq!(
        rest,
        ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3"].map(ip)
    );
    assert_eq!(a[0].address.addr(), ip("10.0.0.2"));
}

#[test]
fn exhaustion_names_the_range_set_and_usage() {
    let (_tmp, store) = store();
    let sets = sets(r#"[[{"subnet": "10.42.0.0/24"}]]"#);
    for n in 0..253 {
        store
            .allocate(&id(&format!("c{n}"), "eth0"), &sets)
            .expect("room left");
    }
    let err = store
        .allocate(&id("late", "eth0"), &sets)
        .expect_err("full");
    assert_eq!(
        err.to_string(),
        "no free address in 10.42.0.0/24 (10.42.0.2-10.42.0.254): 253 of 253 in use"
    );
    let held: HashSet<_> = store
        .allocations()
        .expect("list")
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(held.len(), 253);
}

#[test]
fn exhaustion_counts_only_addresses_inside_the_set() {
    let (_tmp, store) = store();
    let small = sets(r#"[[{"subnet": "10.0.0.0/30"}, {"subnet": "10.1.0.0/30"}]]"#);
    let other = sets(r#"[[{"subnet": "10.9.0.0/24"}]]"#);
    store.allocate(&id("x", "eth0"), &other).expect("x");
    store.allocate(&id("a", "eth0"), &small).expect("a");
    store.allocate(&id("b", "eth0"), &small).expect("b");
    let err = store.allocate(&id("c", "eth0"), &small).expect_err("full");
    assert_eq!(
        err.to_string(),
        "no free address in 10.0.0.0/30 (10.0.0.2-10.0.0.2), 10.1.0.0/30 (10.1.0.2-10.1.0.2): \
         2 of 2 in use"
    );
}

#[test]
fn allocations_outside_the_configured_ranges_are_honoured() {
    let (_tmp, store) = store();
    let old = sets(r#"[[{"subnet": "10.1.0.0/24"}]]"#);
    let new = sets(r#"[[{"subnet": "10.2.0.0/24"}]]"#);
    let a = id("a", "eth0");
    store.allocate(&a, &old).expect("old config");
    // After the config changed, a gets an address in the new range too...
    let got = store.allocate(&a, &new).expect("new config");
    assert_eq!(got[0].address.addr(), ip("10.2.0.2"));
    assert_eq!(
        store.get(&a).expect("get"),
        [ip("10.1.0.2"), ip("10.2.0.2")]
    );
    // ...and release and gc still see the old one.
    assert_eq!(store.release(&a).expect("release").len(), 2);
    store.allocate(&id("b", "eth0"), &old).expect("b");
    assert_eq!(store.gc(&[]).expect("gc"), [ip("10.1.0.2")]);
}

#[test]
fn gc_releases_what_is_not_valid() {
    let (_tmp, store) = store();
    let sets = sets(r#"[[{"subnet": "10.42.0.0/24"}], [{"subnet": "fd00::/64"}]]"#);
    for n in ["a", "b", "c"] {
        store.allocate(&id(n, "eth0"), &sets).expect("allocate");
    }
    let released = store.gc(&[id("b", "eth0")]).expect("gc");
    assert_eq!(
        released,
        ["10.42.0.2", "10.42.0.4", "fd00::2", "fd00::4"].map(ip)
    );
    let left: Vec<_> = store.allocations().expect("list");
    assert_eq!(
        left,
        vec![
            (ip("10.42.0.3"), id("b", "eth0")),
            (ip("fd00::3"), id("b", "eth0"))
        ]
    );
}

#[test]
fn stale_temp_files_are_removed() {
    let (_tmp, store) = store();
    let sets = sets(r#"[[{"subnet": "10.42.0.0/24"}]]"#);
    let stale = store.dir().join(".tmp-99999-7");
    fs::write(&stale, "half").expect("write");
    store.gc(&[]).expect("gc");
    assert!(!stale.exists());

    // Including one named like the next temp file this process will write.
    fs::write(&stale, "half").expect("write");
    let pid = std::process::id();
    for n in 0..64 {
        fs::write(store.dir().join(format!(".tmp-{pid}-{n}")), "").expect("write");
    }
    store.allocate(&id("a", "eth0"), &sets).expect("allocate");
    let link = index_name(&id("a", "eth0"), ip("10.42.0.2"));
    assert_eq!(
        names_in(store.dir()),
        ["10.42.0.2", &link, "last_reserved_ip.0", "lock"]
    );
}

#[test]
fn unrecognised_files_are_left_alone() {
    let (_tmp, store) = store();
    let sets = sets(r#"[[{"subnet": "fd00::/64"}]]"#);
    // Not canonical address text, so not an allocation of ours.
    fs::write(store.dir().join("FD00::2"), "x\r\ny").expect("write");
    fs::write(store.dir().join("notes"), "").expect("write");
    let got = store.allocate(&id("a", "eth0"), &sets).expect("allocate");
    assert_eq!(got[0].address.to_string(), "fd00::2/64");
    assert_eq!(store.gc(&[]).expect("gc"), [ip("fd00::2")]);
    assert!(store.dir().join("notes").exists());
}

#[test]
fn damaged_allocation_file_is_held_until_gc() {
    let (_tmp, store) = store();
    let sets = sets(r#"[[{"subnet": "10.0.0.0/30"}]]"#);
    // Written by something else; it still blocks the address.
    fs::write(store.dir().join("10.0.0.2"), "").expect("write");
    store
        .allocate(&id("a", "eth0"), &sets)
        .expect_err("the only address is held");
    assert_eq!(store.gc(&[id("a", "eth0")]).expect("gc"), [ip("10.0.0.2")]);
    store.allocate(&id("a", "eth0"), &sets).expect("free now");
}

#[test]
fn invalid_input_is_an_error_not_a_panic() {
    let (_tmp, store) = store();
    let good = sets(r#"[[{"subnet": "10.0.0.0/24"}]]"#);
    let err = store
        .allocate(&id("", "eth0"), &good)
        .expect_err("empty id");
    assert_eq!(
        err.to_string(),
        r#"attachment container_id "": must not be empty"#
    );
    let err = store
        .allocate(&id("c\r\nx", "eth0"), &good)
        .expect_err("line break");
    assert!(err.to_string().contains("line breaks"), "{err}");
    store
        .allocate(&id("c", ""), &good)
        .expect_err("empty ifname");

    let mut bad = good[0].clone();
    bad.0[0].start = ip("10.0.0.200");
    bad.0[0].end = ip("10.0.0.100");
    let err = store
        .allocate(&id("c", "eth0"), &[bad])
        .expect_err("reversed");
    assert_eq!(
        err.to_string(),
        "range set 0: range 0 rangeEnd: 10.0.0.100 is before rangeStart 10.0.0.200"
    );
    let empty = strait_ipam::RangeSet(vec![]);
    let err = store
        .allocate(&id("c", "eth0"), &[empty])
        .expect_err("empty");
    assert_eq!(err.to_string(), "range set 0: is empty");
    assert_eq!(store.allocations().expect("list"), vec![]);
}

#[test]
fn huge_ipv6_range_allocates_without_enumerating() {
    let (_tmp, store) = store();
    let sets = vec![range_set_from_cidr("fd00::/8".parse().expect("net")).expect("set")];
    let got = store.allocate(&id("a", "eth0"), &sets).expect("allocate");
    assert_eq!(got[0].address.to_string(), "fd00::2/8");
    // Continue right after the end of the space: wraps to the start.
    let last = "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    fs::write(store.dir().join("last_reserved_ip.0"), last).expect("write");
    let got = store.allocate(&id("b", "eth0"), &sets).expect("allocate");
    assert_eq!(got[0].address.to_string(), "fd00::3/8");
}

#[test]
fn check_writable_fails_on_an_unwritable_place() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, "").expect("write");
    assert!(Store::open(&file.join("net")).is_err());
    // A store whose directory turned into a file after open.
    let store = Store::open(&tmp.path().join("net")).expect("open");
    fs::remove_dir_all(store.dir()).expect("remove");
    fs::write(store.dir(), "").expect("write");
    let err = store.check_writable().expect_err("not a directory");
    assert!(matches!(err, IpamError::Io { .. }), "{err}");
}

#[test]
fn sixteen_threads_with_their_own_store_get_distinct_addresses() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = Arc::new(tmp.path().join("net"));
    let sets = Arc::new(sets(r#"[[{"subnet": "10.42.0.0/24"}]]"#));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (dir, sets) = (Arc::clone(&dir), Arc::clone(&sets));
            std::thread::spawn(move || {
                let store = Store::open(&dir).expect("open");
                (0..10)
                    .map(|n| {
                        let who = id(&format!("t{t}-{n}"), "eth0");
                        let got = store.allocate(&who, &sets).expect("allocate");
                        (got[0].address.addr(), who)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut expected: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    expected.sort();
    let distinct: HashSet<_> = expected.iter().map(|(a, _)| *a).collect();
    assert_eq!(distinct.len(), 160);
    let store = Store::open(&dir).expect("open");
    assert_eq!(store.allocations().expect("list"), expected);
}

#[test]
fn threads_sharing_one_store_exclude_each_other_too() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(tmp.path()).expect("open"));
    let sets = Arc::new(sets(r#"[[{"subnet": "10.42.0.0/24"}]]"#));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (store, sets) = (Arc::clone(&store), Arc::clone(&sets));
            std::thread::spawn(move || {
                for n in 0..20 {
                    let who = id(&format!("t{t}-{n}"), "eth0");
                    store.allocate(&who, &sets).expect("allocate");
                    if n % 2 == 0 {
                        store.release(&who).expect("release");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let all = store.allocations().expect("list");
    assert_eq!(all.len(), 80);
    let owners: HashSet<_> = all.iter().map(|(_, o)| o.clone()).collect();
    assert_eq!(owners.len(), 80);
}

fn link_count(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).expect("stat").nlink()
}

#[test]
fn index_links_are_created_and_removed_with_allocations() {
    let (_tmp, store) = store();
    let sets = sets(r#"[[{"subnet": "10.42.0.0/24"}], [{"subnet": "fd00::/64"}]]"#);
    let a = id("c1", "eth0");
    store.allocate(&a, &sets).expect("allocate");
    let v4 = index_name(&a, ip("10.42.0.2"));
    let v6 = index_name(&a, ip("fd00::2"));
    assert!(v6.ends_with("_fd00::2"), "{v6}");
    assert_eq!(
        names_in(store.dir()),
        [
            "10.42.0.2",
            &v4,
            &v6,
            "fd00::2",
            "last_reserved_ip.0",
            "last_reserved_ip.1",
            "lock"
        ]
    );
    // The same file under two names: host-local's name and content, and the index's.
    assert_eq!(
        fs::read_to_string(store.dir().join(&v6)).expect("read"),
        "c1\r\neth0"
    );
    assert_eq!(link_count(&store.dir().join("fd00::2")), 2);
    check_index(store.dir()).expect("index");

    assert_eq!(
        store.release(&a).expect("release"),
        [ip("10.42.0.2"), ip("fd00::2")]
    );
    assert_eq!(
        names_in(store.dir()),
        ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]
    );
}

#[test]
fn stale_index_links_are_ignored_and_cleaned() {
    let (_tmp, store) = store();
    let sets = sets(r#"[[{"subnet": "10.42.0.0/24"}]]"#);
    let (a, b, c) = (id("a", "eth0"), id("b", "eth0"), id("c", "eth0"));
    // A kill after a's index link was made, before its allocation file was.
    let stale_a = store.dir().join(index_name(&a, ip("10.42.0.2")));
    fs::write(&stale_a, "a\r\neth0").expect("write");
    assert_eq!(store.get(&a).expect("get"), Vec::<std::net::IpAddr>::new());
    // The address is free: b gets it, and a's stale link now sits beside b's file.
    let got = store.allocate(&b, &sets).expect("b");
    assert_eq!(got[0].address.addr(), ip("10.42.0.2"));
    assert!(stale_a.exists());
    assert_eq!(store.get(&a).expect("get"), Vec::<std::net::IpAddr>::new());
    assert_eq!(store.get(&b).expect("get"), [ip("10.42.0.2")]);
    // A kill while releasing c: its allocation file was removed, its link was not.
    let stale_c = store.dir().join(index_name(&c, ip("10.42.0.9")));
    fs::write(&stale_c, "c\r\neth0").expect("write");
    assert_eq!(check_index(store.dir()).map_err(|_| ()), Err(()));

    // a's own lookups remove a's stale link; gc removes everyone's.
    assert_eq!(
        store.release(&a).expect("release"),
        Vec::<std::net::IpAddr>::new()
    );
    assert!(!stale_a.exists());
    assert!(stale_c.exists());
    assert_eq!(
        store.gc(std::slice::from_ref(&b)).expect("gc"),
        Vec::<std::net::IpAddr>::new()
    );
    assert!(!stale_c.exists());
    check_index(store.dir()).expect("index");
    assert_eq!(store.get(&b).expect("get"), [ip("10.42.0.2")]);

    // A stale link of the very name an allocation needs is replaced.
    let stale = store.dir().join(index_name(&a, ip("10.42.0.3")));
    fs::write(&stale, "a\r\neth0").expect("write");
    let got = store.allocate(&a, &sets).expect("a");
    assert_eq!(got[0].address.addr(), ip("10.42.0.3"));
    check_index(store.dir()).expect("index");
    assert_eq!(store.release(&a).expect("release"), [ip("10.42.0.3")]);
    check_index(store.dir()).expect("index");
}

#[test]
fn a_key_shared_with_another_attachment_is_confirmed_by_content() {
    let (_tmp, store) = store();
    let sets = sets(r#"[[{"subnet": "10.42.0.0/24"}]]"#);
    let (a, c) = (id("a", "eth0"), id("c", "eth0"));
    store.allocate(&a, &sets).expect("a");
    // c's allocation under a's key, as if the two keys were equal.
    let file = store.dir().join("10.42.0.7");
    fs::write(&file, "c\r\neth0").expect("write");
    fs::hard_link(&file, store.dir().join(index_name(&a, ip("10.42.0.7")))).expect("link");
    assert_eq!(store.get(&a).expect("get"), [ip("10.42.0.2")]);
    assert_eq!(
        store.allocate(&a, &sets).expect("again")[0].address.addr(),
        ip("10.42.0.2")
    );
    assert_eq!(store.release(&a).expect("release"), [ip("10.42.0.2")]);
    assert!(file.exists());
    // gc relinks the file under its owner's own key.
    assert_eq!(
        store.gc(std::slice::from_ref(&c)).expect("gc"),
        Vec::<std::net::IpAddr>::new()
    );
    check_index(store.dir()).expect("index");
    assert_eq!(store.get(&c).expect("get"), [ip("10.42.0.7")]);
}

/// Allocation files as host-local (or strait before the index) writes them.
fn host_local_store() -> (tempfile::TempDir, Store) {
    let (tmp, store) = store();
    for (addr, content) in [
        ("10.42.0.2", "a\r\neth0"),
        ("10.42.0.3", "b\r\neth0"),
        ("fd00::2", "a\r\neth0"),
        ("10.42.0.4", "c\r\neth0\n"),
    ] {
        fs::write(store.dir().join(addr), content).expect("write");
    }
    fs::write(store.dir().join("last_reserved_ip.0"), "10.42.0.4").expect("write");
    (tmp, store)
}

#[test]
fn allocations_without_index_links_are_released() {
    let (_tmp, store) = host_local_store();
    store.check_writable().expect("creates the lock file");
    let before = names_in(store.dir());
    assert_eq!(
        store.get(&id("a", "eth0")).expect("get"),
        [ip("10.42.0.2"), ip("fd00::2")]
    );
    // get changes nothing.
    assert_eq!(names_in(store.dir()), before);
    assert_eq!(
        store.release(&id("a", "eth0")).expect("release"),
        [ip("10.42.0.2"), ip("fd00::2")]
    );
    assert_eq!(
        store.release(&id("c", "eth0")).expect("release"),
        [ip("10.42.0.4")]
    );
    // Releasing linked the others, so later lookups find them by name.
    check_index(store.dir()).expect("index");
    assert_eq!(
        store.allocations().expect("list"),
        vec![(ip("10.42.0.3"), id("b", "eth0"))]
    );
    assert_eq!(
        store.release(&id("b", "eth0")).expect("release"),
        [ip("10.42.0.3")]
    );
    assert_eq!(names_in(store.dir()), ["last_reserved_ip.0", "lock"]);
}

#[test]
fn allocate_finds_and_links_allocations_without_index_links() {
    let (_tmp, store) = host_local_store();
    let sets = sets(r#"[[{"subnet": "10.42.0.0/24"}], [{"subnet": "fd00::/64"}]]"#);
    let got = store.allocate(&id("a", "eth0"), &sets).expect("allocate");
    let addrs: Vec<_> = got.iter().map(|a| a.address.addr()).collect();
    assert_eq!(addrs, [ip("10.42.0.2"), ip("fd00::2")]);
    check_index(store.dir()).expect("index");
    let got = store.allocate(&id("d", "eth0"), &sets).expect("allocate");
    assert_eq!(got[0].address.addr(), ip("10.42.0.5"));
    assert_eq!(got[1].address.addr(), ip("fd00::3"));
}

#[test]
fn gc_handles_allocations_without_index_links() {
    let (_tmp, store) = host_local_store();
    assert_eq!(
        store.gc(&[id("a", "eth0"), id("c", "eth0")]).expect("gc"),
        [ip("10.42.0.3")]
    );
    check_index(store.dir()).expect("index");
    assert!(store
        .dir()
        .join(index_name(&id("c", "eth0"), ip("10.42.0.4")))
        .exists());
    assert_eq!(
        store.allocations().expect("list"),
        vec![
            (ip("10.42.0.2"), id("a", "eth0")),
            (ip("10.42.0.4"), id("c", "eth0")),
            (ip("fd00::2"), id("a", "eth0")),
        ]
    );
    assert_eq!(store.gc(&[]).expect("gc").len(), 3);
    assert_eq!(names_in(store.dir()), ["last_reserved_ip.0", "lock"]);
}

#[test]
fn host_local_style_release_by_content_removes_index_links_too() {
    let (_tmp, store) = store();
    let sets = sets(r#"[[{"subnet": "10.42.0.0/24"}]]"#);
    store.allocate(&id("a", "eth0"), &sets).expect("a");
    store.allocate(&id("b", "eth0"), &sets).expect("b");
    // host-local's ReleaseByID: remove every file whose trimmed content matches.
    for name in names_in(store.dir()) {
        let path = store.dir().join(&name);
        if fs::read_to_string(&path).is_ok_and(|c| owner_of(&c) == id("a", "eth0")) {
            fs::remove_file(path).expect("remove");
        }
    }
    check_index(store.dir()).expect("index");
    assert_eq!(
        store.allocations().expect("list"),
        vec![(ip("10.42.0.3"), id("b", "eth0"))]
    );
}

#[test]
fn round_robin_hint_is_rewritten_in_place_and_only_a_hint() {
    let (_tmp, store) = store();
    let sets = sets(r#"[[{"subnet": "10.42.0.0/24"}]]"#);
    let hint = store.dir().join("last_reserved_ip.0");
    // A longer old address: the new one must not keep its tail.
    fs::write(&hint, "10.42.0.254").expect("write");
    let got = store.allocate(&id("a", "eth0"), &sets).expect("a");
    assert_eq!(got[0].address.addr(), ip("10.42.0.2"));
    assert_eq!(fs::read_to_string(&hint).expect("read"), "10.42.0.2");
    // A torn hint (new text over a longer old one) or garbage costs only position.
    for torn in ["10.42.0.1054", "10.42.", "", "\0\0\0"] {
        fs::write(&hint, torn).expect("write");
        let who = id(&format!("t{}", torn.len()), "eth0");
        let got = store.allocate(&who, &sets).expect("allocate");
        assert_eq!(got[0].address.addr(), ip("10.42.0.3"), "{torn:?}");
        store.release(&who).expect("release");
    }
}
