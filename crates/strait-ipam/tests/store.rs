//! The on-disk store: allocation policy, file layout, and many threads at once.

mod common;

use std::collections::HashSet;
use std::fs;
use std::sync::Arc;

use common::{id, ip, names_in, sets};
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
    // The IPv4 address taken for c was given back.
    assert_eq!(store.allocations().expect("list"), before);
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
    assert_eq!(
        names_in(store.dir()),
        ["10.42.0.2", "last_reserved_ip.0", "lock"]
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
