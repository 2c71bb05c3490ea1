use super::*;
use proptest::prelude::*;
use strait_model::k8s::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    }
}

fn sel(match_labels: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>) -> Selector {
    Selector::parse(
        &LabelSelector {
            match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
            match_expressions: (!exprs.is_empty()).then_some(exprs),
        },
        "spec.podSelector",
    )
    .unwrap()
}

#[test]
fn empty_selects_everything() {
    let s = sel(&[], vec![]);
    assert!(s.is_empty());
    assert!(s.matches(&labels(&[])));
    assert!(s.matches(&labels(&[("a", "b")])));
}

#[test]
fn operators() {
    let l = labels(&[("app", "web"), ("tier", "front")]);
    assert!(sel(&[("app", "web")], vec![]).matches(&l));
    assert!(!sel(&[("app", "db")], vec![]).matches(&l));
    assert!(sel(&[], vec![expr("app", "In", &["db", "web"])]).matches(&l));
    assert!(!sel(&[], vec![expr("app", "NotIn", &["db", "web"])]).matches(&l));
    assert!(sel(&[], vec![expr("x", "NotIn", &["y"])]).matches(&l));
    assert!(sel(&[], vec![expr("tier", "Exists", &[])]).matches(&l));
    assert!(!sel(&[], vec![expr("x", "Exists", &[])]).matches(&l));
    assert!(sel(&[], vec![expr("x", "DoesNotExist", &[])]).matches(&l));
    assert!(!sel(&[], vec![expr("app", "DoesNotExist", &[])]).matches(&l));
    // matchLabels and matchExpressions are ANDed.
    assert!(!sel(&[("app", "web")], vec![expr("tier", "In", &["back"])]).matches(&l));
}

#[test]
fn bad_selectors_name_the_field() {
    for (e, want) in [
        (
            expr("a", "Has", &[]),
            "spec.podSelector.matchExpressions[0].operator \"Has\"",
        ),
        (expr("a", "In", &[]), "needs at least one value"),
        (expr("a", "Exists", &["x"]), "takes no values"),
        (expr("", "Exists", &[]), "key is empty"),
    ] {
        let err = Selector::parse(
            &LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![e]),
            },
            "spec.podSelector",
        )
        .unwrap_err();
        assert!(err.contains(want), "{err}");
    }
}

proptest! {
    /// NotIn is the complement of In, DoesNotExist of Exists, for any labels.
    #[test]
    fn complements(
        pairs in proptest::collection::btree_map("[ab]", "[xyz]", 0..3),
        key in "[ab]",
        values in proptest::collection::vec("[xyz]", 1..3),
    ) {
        let vs: Vec<&str> = values.iter().map(|s| s.as_str()).collect();
        let l: Labels = pairs;
        let is_in = sel(&[], vec![expr(&key, "In", &vs)]).matches(&l);
        let not_in = sel(&[], vec![expr(&key, "NotIn", &vs)]).matches(&l);
        prop_assert_ne!(is_in, not_in);
        let exists = sel(&[], vec![expr(&key, "Exists", &[])]).matches(&l);
        let absent = sel(&[], vec![expr(&key, "DoesNotExist", &[])]).matches(&l);
        prop_assert_ne!(exists, absent);
        prop_assert_eq!(is_in, l.get(&key).is_some_and(|v| values.contains(v)));
    }
}
