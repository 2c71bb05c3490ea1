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
                    vec![Key::Proto(L4Proto::Tcp), Key::Port(*p)],
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
