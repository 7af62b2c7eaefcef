//! Labels, and the label selectors pools use to pick Services and namespaces: the validated
//! [`ferrolb_crds::selector::Selector`] (validation rejects an `In` without values or an `Exists` with
//! values; here selectors are only evaluated, with the API server's rules).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use ferrolb_crds::selector::{
    LabelLookup, Operator as SelectorOperator, Requirement, Selector as LabelSelector,
};

/// Labels of an object: sorted, so that rendering them is canonical.
pub type Labels = BTreeMap<String, String>;

/// Labels as the allocator keeps them for every Service it tracks: the sorted pairs in one boxed slice.
/// A `BTreeMap` node has room for eleven pairs, so one label in a map costs about 600 bytes; here, about 100.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSet(Box<[(Box<str>, Box<str>)]>);

impl LabelSet {
    pub fn new(labels: &Labels) -> Self {
        Self(
            labels
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
        )
    }

    /// Whether these are exactly `labels`.
    pub fn is(&self, labels: &Labels) -> bool {
        self.0.len() == labels.len()
            && self
                .0
                .iter()
                .zip(labels)
                .all(|((k, v), (lk, lv))| **k == **lk && **v == **lv)
    }
}

/// The labels of each namespace, shared by the records of its Services: real namespaces always carry
/// `kubernetes.io/metadata.name`, and a copy per Service would cost as much as the rest of its record.
///
/// Entries that no record uses any more (their Services are gone or got no IP, or the labels changed since)
/// are swept when the map has doubled since the last sweep: it stays within twice the entries in use at
/// that sweep, plus a few, at an amortised constant cost per new entry.
#[derive(Debug, Clone, Default)]
pub(crate) struct NamespaceLabels {
    by_namespace: HashMap<Box<str>, Arc<LabelSet>>,
    /// Entries the last sweep left.
    kept: usize,
}

impl NamespaceLabels {
    /// Entries allowed beyond twice those in use before a sweep.
    pub const SLACK: usize = 64;

    /// `labels` of `namespace` as shared, if the shared copy is current.
    pub fn get(&self, namespace: &str, labels: &Labels) -> Option<Arc<LabelSet>> {
        self.by_namespace
            .get(namespace)
            .filter(|shared| shared.is(labels))
            .cloned()
    }

    /// `labels` of `namespace`, shared from now on with every record that asks for the same.
    pub fn share(&mut self, namespace: &str, labels: &Labels) -> Arc<LabelSet> {
        if let Some(shared) = self.get(namespace, labels) {
            return shared;
        }
        if self.by_namespace.len() >= 2 * self.kept + Self::SLACK {
            self.by_namespace
                .retain(|_, shared| Arc::strong_count(shared) > 1);
            self.kept = self.by_namespace.len();
        }
        let shared = Arc::new(LabelSet::new(labels));
        self.by_namespace
            .insert(namespace.into(), Arc::clone(&shared));
        shared
    }

    /// (entries, entries some record uses).
    #[cfg(test)]
    pub fn counts(&self) -> (usize, usize) {
        let used = self
            .by_namespace
            .values()
            .filter(|shared| Arc::strong_count(shared) > 1)
            .count();
        (self.by_namespace.len(), used)
    }
}

impl LabelLookup for LabelSet {
    fn label(&self, key: &str) -> Option<&str> {
        // Sorted by key, as the map they came from.
        let i = self.0.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
        Some(&self.0[i].1)
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
            match_expressions: vec![Requirement {
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
    fn a_compact_label_set_matches_as_its_map_does() {
        let map = labels(&[("app", "web"), ("env", "prod"), ("tier", "")]);
        let set = LabelSet::new(&map);
        assert!(set.is(&map));
        assert!(!set.is(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(!set.is(&labels(&[("app", "web"), ("env", "dev"), ("tier", "")])));
        for key in ["app", "env", "tier", "absent", ""] {
            assert_eq!(set.label(key), map.label(key), "{key}");
        }
        let selectors = [
            LabelSelector::labels([("app", "web")]),
            LabelSelector::labels([("app", "web"), ("env", "dev")]),
            expr("env", SelectorOperator::In, &["prod", "staging"]),
            expr("env", SelectorOperator::NotIn, &["prod"]),
            expr("tier", SelectorOperator::Exists, &[]),
            expr("zone", SelectorOperator::DoesNotExist, &[]),
            expr("zone", SelectorOperator::Exists, &[]),
        ];
        for s in &selectors {
            assert_eq!(s.matches(&set), s.matches(&map), "{s:?}");
        }
        assert!(LabelSet::default().is(&Labels::new()));
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
