//! Labels, and the label selectors pools use to pick Services and namespaces: the validated
//! [`ferrolb_crds::selector::Selector`] (validation rejects an `In` without values or an `Exists` with
//! values; here selectors are only evaluated, with the API server's rules).

use std::collections::BTreeMap;

pub use ferrolb_crds::selector::{
    Operator as SelectorOperator, Requirement, Selector as LabelSelector,
};

/// Labels of an object: sorted, so that rendering them is canonical.
pub type Labels = BTreeMap<String, String>;

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
