use super::*;
use crate::nft::ir::*;

fn table(maps: Vec<Map>, chains: Vec<Chain>) -> Table {
    let mut t = Table::new(Family::Inet, "t");
    t.maps = maps;
    t.chains = chains;
    t
}

fn vmap(name: &str, elements: &[(u16, &str)]) -> Map {
    Map {
        interval: false,
        name: name.into(),
        key: vec![KeyType::InetProto, KeyType::InetService],
        value: MapValue::Verdict,
        elements: elements
            .iter()
            .map(|(p, c)| {
                (
                    smallvec::smallvec![Key::Proto(L4Proto::Tcp), Key::Port(*p)],
                    MapData::Verdict(Verdict::Goto((*c).into())),
                )
            })
            .collect(),
        comment: None,
    }
}

fn chain(name: &str, verdict: Verdict) -> Chain {
    Chain {
        name: name.into(),
        base: None,
        rules: vec![Rule {
            matches: vec![],
            statements: vec![],
            verdict,
            counter: false,
            comment: None,
        }],
    }
}

#[test]
fn new_and_removed_chains_go_with_their_elements() {
    let old = table(
        vec![vmap("m", &[(80, "a")])],
        vec![chain("a", Verdict::Accept)],
    );
    let new = table(
        vec![vmap("m", &[(80, "b")])],
        vec![chain("b", Verdict::Drop)],
    );
    let text = changes(&old, &new).expect("incremental");
    let lines: Vec<&str> = text.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} missing in\n{text}"))
    };
    // The new chain exists before an element points at it; the old one is
    // deleted after the element that pointed at it.
    assert!(at("table inet t {") < at("add element inet t m"));
    assert!(at("chain b {") < at("add element inet t m"));
    assert!(at("delete element inet t m { tcp . 80 }") < at("delete chain inet t a"));
    assert!(at("flush chain inet t a") < at("delete chain inet t a"));
    assert!(!text.contains("add table") && !text.contains("delete table"));
    assert_eq!(changes(&new, &new).as_deref(), Some(""));
}

#[test]
fn a_changed_chain_or_declaration_is_a_rewrite() {
    let old = table(vec![vmap("m", &[])], vec![chain("a", Verdict::Accept)]);
    let new = table(vec![vmap("m", &[])], vec![chain("a", Verdict::Drop)]);
    assert!(changes(&old, &new).is_none());
    let mut other = vmap("m", &[]);
    other.comment = Some("x".into());
    let new = table(vec![other], vec![chain("a", Verdict::Accept)]);
    assert!(changes(&old, &new).is_none());
}

#[test]
fn only_the_differing_middle_is_compared() {
    let keys: Vec<u32> = (0..10).collect();
    let mut moved = keys.clone();
    moved[4] = 40;
    assert_eq!(middles(&keys, &moved), (&keys[4..5], &moved[4..5]));
    assert_eq!(middles(&keys, &keys), (&keys[..0], &keys[..0]));
    let grown: Vec<u32> = (0..11).collect();
    assert_eq!(middles(&keys, &grown), (&keys[10..], &grown[10..]));
    // Elements that moved place: both middles hold them, and the map diff
    // built from them finds no change.
    let old = table(
        vec![vmap("m", &[(80, "a"), (81, "a"), (82, "a")])],
        vec![chain("a", Verdict::Accept)],
    );
    let new = table(
        vec![vmap("m", &[(82, "a"), (81, "a"), (80, "a")])],
        vec![chain("a", Verdict::Accept)],
    );
    assert_eq!(changes(&old, &new).as_deref(), Some(""));
    let new = table(
        vec![vmap("m", &[(82, "a"), (80, "a")])],
        vec![chain("a", Verdict::Accept)],
    );
    assert_eq!(
        changes(&old, &new).as_deref(),
        Some("delete element inet t m { tcp . 81 }\n")
    );
}

fn pods(name: &str, addrs: &[[u8; 4]]) -> Set {
    Set {
        name: name.into(),
        kind: SetKind::Ipv4Addr,
        interval: false,
        elements: addrs
            .iter()
            .map(|a| ipnet::IpNet::from(std::net::IpAddr::from(*a)))
            .collect(),
        comment: None,
        timeout: None,
    }
}

#[test]
fn plain_set_elements_and_named_counters_are_incremental() {
    let counter = |name: &str| CounterObj {
        name: name.into(),
        comment: None,
    };
    let mut old = table(vec![], vec![]);
    old.sets = vec![pods("isolated", &[[10, 42, 1, 2], [10, 42, 1, 3]])];
    old.counters = vec![counter("pol-a")];
    let mut new = table(vec![], vec![]);
    new.sets = vec![pods("isolated", &[[10, 42, 1, 3], [10, 42, 1, 4]])];
    new.counters = vec![counter("pol-b")];
    let text = changes(&old, &new).expect("incremental");
    assert!(text.contains("counter pol-b"), "{text}");
    assert!(
        text.contains("delete element inet t isolated { 10.42.1.2 }"),
        "{text}"
    );
    assert!(
        text.contains("add element inet t isolated { 10.42.1.4 }"),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with("delete counter inet t pol-a"),
        "{text}"
    );
    // An interval set whose elements change is a rewrite.
    let mut a = old.clone();
    a.sets[0].interval = true;
    let mut b = new.clone();
    b.sets[0].interval = true;
    b.counters = a.counters.clone();
    assert_eq!(changes(&a, &b), None);
}
