//! Per-operation timing at several store sizes. Ignored by default and asserts nothing
//! about time; run with
//! `cargo test --release -p strait-ipam -- --ignored bench_ --nocapture`
//! (BENCH_DIR=/dev/shm to put the store on tmpfs, like the default under /run).

mod common;

use std::time::{Duration, Instant};

use common::{id, sets};
use strait_ipam::Store;

const ROUNDS: u32 = 500;

fn micros(total: Duration) -> f64 {
    total.as_secs_f64() * 1e6 / f64::from(ROUNDS)
}

#[test]
#[ignore = "timing only; run in release mode with --ignored"]
fn bench_allocate_release_get() {
    // A /20: 4094 allocatable addresses, room for 2000 held plus the churn.
    let sets = sets(r#"[[{"subnet": "10.32.0.0/20"}]]"#);
    for existing in [10, 200, 2000] {
        let tmp = match std::env::var_os("BENCH_DIR") {
            Some(dir) => tempfile::tempdir_in(dir),
            None => tempfile::tempdir(),
        }
        .expect("tempdir");
        let store = Store::open(tmp.path()).expect("open");
        for n in 0..existing {
            store
                .allocate(&id(&format!("held-{n}"), "eth0"), &sets)
                .expect("prefill");
        }
        let (mut alloc, mut release, mut get) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for n in 0..ROUNDS {
            let who = id(&format!("churn-{n}"), "eth0");
            let t = Instant::now();
            store.allocate(&who, &sets).expect("allocate");
            alloc += t.elapsed();
            let t = Instant::now();
            assert_eq!(store.get(&who).expect("get").len(), 1);
            get += t.elapsed();
            let t = Instant::now();
            assert_eq!(store.release(&who).expect("release").len(), 1);
            release += t.elapsed();
        }
        println!(
            "bench {existing:>5} existing: allocate {:>7.1} us, get {:>7.1} us, release {:>7.1} us",
            micros(alloc),
            micros(get),
            micros(release),
        );
    }
}
