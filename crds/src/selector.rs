//! Kubernetes label selectors, validated and ready to match (`matchLabels` and `matchExpressions` with
//! `In`, `NotIn`, `Exists`, `DoesNotExist`, ANDed; an empty selector matches everything).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

/// A selector operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operator {
    /// The label is present with one of the values.
    In,
    /// The label is absent or has none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// Labels a selector can be matched against: a `BTreeMap` of them, or a more compact copy.
pub trait LabelLookup {
    /// The value of label `key`, if the object has it.
    fn label(&self, key: &str) -> Option<&str>;
}

impl LabelLookup for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub operator: Operator,
    /// The values (empty for `Exists`/`DoesNotExist`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub values: BTreeSet<String>,
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches<L: LabelLookup + ?Sized>(&self, labels: &L) -> bool {
        let value = labels.label(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// A validated label selector. Serialises with the Kubernetes field names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    /// `matchLabels`: every pair must be present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// `matchExpressions`: every requirement must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
}

impl Selector {
    /// The selector matching everything (`{}`).
    pub fn everything() -> Self {
        Selector::default()
    }

    /// A selector requiring exactly these labels.
    pub fn labels<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Selector {
            match_labels: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            match_expressions: Vec::new(),
        }
    }

    /// True for `{}`, which matches every label set.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether `labels` are selected.
    pub fn matches<L: LabelLookup + ?Sized>(&self, labels: &L) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.label(k) == Some(v.as_str()))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }

    /// Validate and convert a Kubernetes `LabelSelector`. Errors are `(field path relative to the
    /// selector, problem)`, all of them.
    pub fn from_label_selector(sel: &LabelSelector) -> Result<Selector, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut match_labels = BTreeMap::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            if let Err(problem) = check_key(k) {
                errors.push((format!("matchLabels[{k}]"), problem));
            }
            if let Err(problem) = check_value(v) {
                errors.push((format!("matchLabels[{k}]"), problem));
            }
            match_labels.insert(k.clone(), v.clone());
        }
        let mut match_expressions = Vec::new();
        for (i, expr) in sel.match_expressions.iter().flatten().enumerate() {
            let at = |f: &str| format!("matchExpressions[{i}].{f}");
            if let Err(problem) = check_key(&expr.key) {
                errors.push((at("key"), problem));
            }
            let values: BTreeSet<String> = expr.values.iter().flatten().cloned().collect();
            let operator = match expr.operator.as_str() {
                "In" => Some(Operator::In),
                "NotIn" => Some(Operator::NotIn),
                "Exists" => Some(Operator::Exists),
                "DoesNotExist" => Some(Operator::DoesNotExist),
                other => {
                    errors.push((
                        at("operator"),
                        format!(
                            "unknown operator {other:?}: use In, NotIn, Exists or DoesNotExist"
                        ),
                    ));
                    None
                }
            };
            match operator {
                Some(Operator::In | Operator::NotIn) if values.is_empty() => {
                    errors.push((
                        at("values"),
                        format!("operator {} needs at least one value", expr.operator),
                    ));
                }
                Some(Operator::Exists | Operator::DoesNotExist) if !values.is_empty() => {
                    errors.push((
                        at("values"),
                        format!("operator {} takes no values", expr.operator),
                    ));
                }
                _ => {}
            }
            for v in &values {
                if let Err(problem) = check_value(v) {
                    errors.push((at("values"), problem));
                }
            }
            if let Some(operator) = operator {
                match_expressions.push(Requirement {
                    key: expr.key.clone(),
                    operator,
                    values,
                });
            }
        }
        if errors.is_empty() {
            Ok(Selector {
                match_labels,
                match_expressions,
            })
        } else {
            Err(errors)
        }
    }
}

/// True when any of `selectors` matches, or when there are none (the MetalLB convention for
/// `nodeSelectors`, `serviceSelectors`, …: an empty list selects everything).
pub fn any_matches(selectors: &[Selector], labels: &BTreeMap<String, String>) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters of
/// alphanumerics, `-`, `_`, `.`, beginning and ending with an alphanumeric.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "label key {key:?}: the prefix must be a lowercase DNS subdomain"
            ));
        }
    }
    if name.is_empty() {
        return Err(format!(
            "label key {key:?}: the name part must not be empty"
        ));
    }
    check_name_chars(name).map_err(|p| format!("label key {key:?}: {p}"))
}

fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_name_chars(value).map_err(|p| format!("label value {value:?}: {p}"))
}

fn check_name_chars(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err("must be at most 63 characters".into());
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    if !s
        .chars()
        .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
    {
        return Err("may contain only letters, digits, '-', '_' and '.'".into());
    }
    if !s.starts_with(alnum) || !s.ends_with(alnum) {
        return Err("must begin and end with a letter or digit".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|s| s.to_string()).collect())
            },
        }
    }

    #[test]
    fn matching() {
        let sel = Selector::from_label_selector(&LabelSelector {
            match_labels: Some(labels(&[("tier", "edge")])),
            match_expressions: Some(vec![
                req("zone", "In", &["a", "b"]),
                req("drain", "DoesNotExist", &[]),
                req("rack", "NotIn", &["r9"]),
                req("bgp", "Exists", &[]),
            ]),
        })
        .unwrap();
        assert!(sel.matches(&labels(&[("tier", "edge"), ("zone", "a"), ("bgp", "")])));
        assert!(sel.matches(&labels(&[
            ("tier", "edge"),
            ("zone", "b"),
            ("bgp", "y"),
            ("rack", "r1")
        ])));
        assert!(!sel.matches(&labels(&[("tier", "edge"), ("zone", "c"), ("bgp", "")])));
        assert!(!sel.matches(&labels(&[("tier", "core"), ("zone", "a"), ("bgp", "")])));
        assert!(!sel.matches(&labels(&[
            ("tier", "edge"),
            ("zone", "a"),
            ("bgp", ""),
            ("drain", "1")
        ])));
        assert!(!sel.matches(&labels(&[
            ("tier", "edge"),
            ("zone", "a"),
            ("bgp", ""),
            ("rack", "r9")
        ])));
        assert!(!sel.matches(&labels(&[("tier", "edge"), ("zone", "a")])));
        assert!(Selector::everything().matches(&BTreeMap::new()));
        assert!(any_matches(&[], &BTreeMap::new()));
        assert!(!any_matches(&[sel], &BTreeMap::new()));
    }

    #[test]
    fn invalid_selectors_report_every_problem() {
        let errs = Selector::from_label_selector(&LabelSelector {
            match_labels: Some(labels(&[("bad key!", "ok"), ("ok", "-bad")])),
            match_expressions: Some(vec![
                req("zone", "in", &["a"]),
                req("zone", "In", &[]),
                req("zone", "Exists", &["a"]),
            ]),
        })
        .unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "matchLabels[bad key!]",
                "matchLabels[ok]",
                "matchExpressions[0].operator",
                "matchExpressions[1].values",
                "matchExpressions[2].values"
            ]
        );
        assert!(errs[2].1.contains("\"in\""));
    }

    #[test]
    fn keys_with_prefixes() {
        assert!(check_key("kubernetes.io/hostname").is_ok());
        assert!(check_key("node-role.kubernetes.io/control-plane").is_ok());
        assert!(check_key("Example.com/x").is_err());
        assert!(check_key("/x").is_err());
        assert!(check_key("x/").is_err());
        assert!(check_key(&"a".repeat(64)).is_err());
    }
}
