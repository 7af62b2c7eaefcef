//! Kubernetes label selectors (`metav1.LabelSelector`) with the API server's matching rules.
//!
//! Pools select Services and namespaces with these. The validation layer rejects malformed selectors (an `In`
//! without values, an `Exists` with values); here every selector is simply evaluated.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Labels of an object: sorted, so that rendering them is canonical.
pub type Labels = BTreeMap<String, String>;

/// A label selector. The empty selector matches every object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Every `key: value` here must be present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: Labels,
    /// Every requirement here must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// The four operators of `matchExpressions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    /// Whether `labels` satisfy every `matchLabels` entry and every expression (an empty selector matches all).
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }

    /// A selector requiring exactly these labels (convenience for tests and callers).
    pub fn labels<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            match_labels: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            match_expressions: Vec::new(),
        }
    }
}

impl LabelSelectorRequirement {
    /// Kubernetes semantics: `NotIn` and `DoesNotExist` hold when the key is absent.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

/// `labels.Set(m).String()` from apimachinery: `k1=v1,k2=v2` in key order. Used as the ETP=Local backend key.
pub(crate) fn render_labels(labels: &Labels) -> String {
    let mut out = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, operator: SelectorOperator, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_labels: Labels::new(),
            match_expressions: vec![LabelSelectorRequirement {
                key: key.into(),
                operator,
                values: values.iter().map(|v| v.to_string()).collect(),
            }],
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::default().matches(&Labels::new()));
        assert!(LabelSelector::default().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_needs_every_pair() {
        let s = LabelSelector::labels([("app", "web"), ("tier", "front")]);
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "front"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "back")])));
    }

    #[test]
    fn operators_follow_kubernetes() {
        use SelectorOperator::*;
        let web = labels(&[("app", "web")]);
        let none = Labels::new();
        assert!(expr("app", In, &["web", "db"]).matches(&web));
        assert!(!expr("app", In, &["db"]).matches(&web));
        assert!(!expr("app", In, &["web"]).matches(&none));
        assert!(expr("app", NotIn, &["db"]).matches(&web));
        assert!(!expr("app", NotIn, &["web"]).matches(&web));
        assert!(
            expr("app", NotIn, &["web"]).matches(&none),
            "NotIn holds when the key is absent"
        );
        assert!(expr("app", Exists, &[]).matches(&web));
        assert!(!expr("app", Exists, &[]).matches(&none));
        assert!(expr("app", DoesNotExist, &[]).matches(&none));
        assert!(!expr("app", DoesNotExist, &[]).matches(&web));
    }

    #[test]
    fn rendering_is_sorted_like_apimachinery() {
        assert_eq!(render_labels(&labels(&[("b", "2"), ("a", "1")])), "a=1,b=2");
        assert_eq!(render_labels(&Labels::new()), "");
    }

    #[test]
    fn serde_uses_kubernetes_field_names() {
        let s: LabelSelector = serde_json::from_str(
            r#"{"matchLabels":{"a":"b"},"matchExpressions":[{"key":"k","operator":"NotIn","values":["v"]}]}"#,
        )
        .unwrap();
        assert_eq!(s.match_labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(s.match_expressions[0].operator, SelectorOperator::NotIn);
    }
}
