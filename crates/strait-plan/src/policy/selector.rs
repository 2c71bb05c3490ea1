//! Label selectors (`metav1.LabelSelector`): `matchLabels` and
//! `matchExpressions` with `In`, `NotIn`, `Exists`, `DoesNotExist`, all
//! ANDed. An empty selector selects everything. A selector the API server
//! would reject (unknown operator, `In` without values, values on `Exists`)
//! is an error naming the field, so the caller can say which policy is
//! wrong and leave it out.

use std::collections::BTreeMap;
use strait_model::k8s::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Labels as Kubernetes stores them.
pub type Labels = BTreeMap<String, String>;

/// One requirement on one label key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    pub fn matches(&self, labels: &Labels) -> bool {
        match self {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            // NotIn also matches objects without the label (as upstream).
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// A checked selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// Checks `sel`; `field` (e.g. `spec.podSelector`) starts every error.
    pub fn parse(sel: &LabelSelector, field: &str) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::In(k.clone(), vec![v.clone()]));
        }
        for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
            let at = format!("{field}.matchExpressions[{i}]");
            let values = e.values.clone().unwrap_or_default();
            let key = e.key.clone();
            if key.is_empty() {
                return Err(format!("{at}.key is empty"));
            }
            let r = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(format!(
                        "{at}: operator {} needs at least one value",
                        e.operator
                    ))
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(format!(
                        "{at}: operator {} takes no values, got {values:?}",
                        e.operator
                    ))
                }
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => {
                    return Err(format!(
                        "{at}.operator {other:?} is not In, NotIn, Exists or DoesNotExist"
                    ))
                }
            };
            requirements.push(r);
        }
        Ok(Selector { requirements })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether it selects everything (`{}`).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

#[cfg(test)]
#[path = "selector_tests.rs"]
mod tests;
