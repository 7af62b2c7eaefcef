//! Guards, without an API server, the two things a real API server checks when a CRD is created and that
//! the other tests did not see:
//! - every `default` must pass its own field's schema and CEL rules (the API server validates defaults);
//! - every list, map and string a CEL rule can read, or that lies above a rule (an unbounded list of
//!   items multiplies the cost of each item's rules), must be bounded, or the rule's estimated cost
//!   exceeds the API server's budget and the CRD is refused.
//!
//! Also: no integer `format` Kubernetes does not know, and no hard-wrapped description.

use ferrolb_crds::crdgen;
use serde_json::Value;

fn schemas() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (name, yaml) in crdgen::crd_files() {
        let crd: Value = serde_yaml::from_str(&yaml).unwrap();
        for version in crd["spec"]["versions"].as_array().unwrap() {
            let schema = version["schema"]["openAPIV3Schema"].clone();
            out.push((
                format!("{name} {}", version["name"].as_str().unwrap()),
                schema,
            ));
        }
    }
    out
}

/// The nodes above a node, with their paths.
type Ancestors<'a> = Vec<(&'a Value, String)>;

/// Calls `f(path, node, ancestors)` for every schema node.
fn walk<'a>(
    node: &'a Value,
    path: &str,
    ancestors: &mut Ancestors<'a>,
    f: &mut dyn FnMut(&str, &'a Value, &Ancestors<'a>),
) {
    f(path, node, ancestors);
    ancestors.push((node, path.to_owned()));
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, child) in props {
            walk(child, &format!("{path}.{k}"), ancestors, f);
        }
    }
    if let Some(items) = node.get("items") {
        walk(items, &format!("{path}[]"), ancestors, f);
    }
    if let Some(ap) = node.get("additionalProperties").filter(|v| v.is_object()) {
        walk(ap, &format!("{path}{{}}"), ancestors, f);
    }
    ancestors.pop();
}

fn has_rules(node: &Value) -> bool {
    node.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty())
}

/// The structural checks the API server makes on a default (type, bounds, enum).
fn structural_problems(schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let ty = schema.get("type").and_then(Value::as_str);
    let type_ok = match (ty, value) {
        (Some("string"), Value::String(_))
        | (Some("boolean"), Value::Bool(_))
        | (Some("object"), Value::Object(_))
        | (Some("array"), Value::Array(_))
        | (None, _) => true,
        (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Some("number"), Value::Number(_)) => true,
        _ => false,
    };
    if !type_ok {
        problems.push(format!("{path}: default {value} is not of type {ty:?}"));
        return problems;
    }
    if let (Some(max), Value::String(s)) = (schema.get("maxLength").and_then(Value::as_u64), value)
    {
        if s.chars().count() as u64 > max {
            problems.push(format!("{path}: default longer than maxLength {max}"));
        }
    }
    if let (Some(min), Value::String(s)) = (schema.get("minLength").and_then(Value::as_u64), value)
    {
        if (s.chars().count() as u64) < min {
            problems.push(format!("{path}: default shorter than minLength {min}"));
        }
    }
    if let Some(n) = value.as_f64() {
        if schema
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
        {
            problems.push(format!("{path}: default {n} below minimum"));
        }
        if schema
            .get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n > m)
        {
            problems.push(format!("{path}: default {n} above maximum"));
        }
    }
    if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
        if !choices.contains(value) {
            problems.push(format!("{path}: default {value} not in enum"));
        }
    }
    if let (Some(required), Value::Object(map)) =
        (schema.get("required").and_then(Value::as_array), value)
    {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                problems.push(format!("{path}: default lacks required field {r}"));
            }
        }
    }
    problems
}

/// Every default of `schema`, checked against its own node: structure and CEL rules.
fn default_problems(schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    walk(schema, "", &mut Vec::new(), &mut |path, node, _| {
        let Some(default) = node.get("default") else {
            return;
        };
        problems.extend(structural_problems(node, default, path));
        if let Err(errors) = kube::core::cel::Validator::new().validate(node, default, None) {
            for e in errors.as_slice() {
                problems.push(format!(
                    "{path}: default {default} fails its rule `{}`: {}",
                    e.rule, e.message
                ));
            }
        }
    });
    problems
}

fn unbounded(node: &Value) -> Option<&'static str> {
    match node.get("type").and_then(Value::as_str) {
        Some("array") if node.get("maxItems").is_none() => Some("array without maxItems"),
        Some("object")
            if node
                .get("additionalProperties")
                .is_some_and(Value::is_object)
                && node.get("maxProperties").is_none() =>
        {
            Some("map without maxProperties")
        }
        Some("string")
            if node.get("maxLength").is_none()
                && node.get("enum").is_none()
                && !matches!(
                    node.get("format").and_then(Value::as_str),
                    Some("date-time" | "date" | "duration" | "int-or-string")
                ) =>
        {
            Some("string without maxLength")
        }
        _ => None,
    }
}

/// Every unbounded list, map or string that a CEL rule reads (the rule's node and everything under it) or
/// that lies above a rule.
fn cost_problems(schema: &Value) -> Vec<String> {
    let mut problems = std::collections::BTreeSet::new();
    walk(schema, "", &mut Vec::new(), &mut |path, node, ancestors| {
        if !has_rules(node) {
            return;
        }
        let rule_path = if path.is_empty() { "<root>" } else { path };
        // Above the rule: its cost is multiplied by every enclosing list's or map's size.
        for (a, apath) in ancestors {
            if let Some(what @ ("array without maxItems" | "map without maxProperties")) =
                unbounded(a)
            {
                problems.insert(format!("{apath}: {what}, above the rule at {rule_path}"));
            }
        }
        // What the rule can read: its node when that is a list, map or string, and the subtree of every
        // field of its node that the rule names.
        let rules: Vec<&str> = node["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("rule").and_then(Value::as_str))
            .collect();
        let mut read: Vec<(String, &Value)> = Vec::new();
        if node.get("properties").is_none() {
            read.push((path.to_owned(), node));
        }
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (k, child) in props {
                if rules.iter().any(|r| r.contains(&format!(".{k}"))) {
                    read.push((format!("{path}.{k}"), child));
                }
            }
        }
        for (p, n) in read {
            walk(n, &p, &mut Vec::new(), &mut |p, n, _| {
                if let Some(what) = unbounded(n) {
                    problems.insert(format!("{p}: {what}, read by the rule at {rule_path}"));
                }
            });
        }
    });
    problems.into_iter().collect()
}

#[test]
fn every_default_passes_its_own_schema_and_rules() {
    let mut all = Vec::new();
    for (name, schema) in schemas() {
        all.extend(
            default_problems(&schema)
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
    }
    assert!(
        all.is_empty(),
        "defaults the API server refuses:\n{}",
        all.join("\n")
    );
}

#[test]
fn everything_under_a_cel_rule_is_bounded() {
    let mut all = Vec::new();
    for (name, schema) in schemas() {
        all.extend(
            cost_problems(&schema)
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
    }
    assert!(
        all.is_empty(),
        "unbounded under a CEL rule:\n{}",
        all.join("\n")
    );
}

#[test]
fn only_integer_formats_kubernetes_knows() {
    for (name, schema) in schemas() {
        walk(&schema, "", &mut Vec::new(), &mut |path, node, _| {
            if let Some(f) = node.get("format").and_then(Value::as_str) {
                assert!(
                    !f.starts_with("uint") && !matches!(f, "int8" | "int16"),
                    "{name}{path}: format {f} is unknown to Kubernetes"
                );
            }
        });
    }
}

#[test]
fn descriptions_are_paragraphs_not_hard_wrapped() {
    for (name, schema) in schemas() {
        walk(&schema, "", &mut Vec::new(), &mut |path, node, _| {
            if let Some(d) = node.get("description").and_then(Value::as_str) {
                for line in d.lines().filter(|l| !l.is_empty()) {
                    assert!(
                        !d.contains(&format!("{line}\n"))
                            || d.contains(&format!("{line}\n\n"))
                            || d.split(&format!("{line}\n")).nth(1).is_some_and(|rest| {
                                rest.starts_with("- ")
                                    || rest.starts_with("* ")
                                    || rest
                                        .split_once(". ")
                                        .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
                            }),
                        "{name}{path}: hard-wrapped description: {d:?}"
                    );
                }
            }
        });
    }
}

/// The guard catches what the API server refused in the shipped Community CRD: empty-string defaults
/// that fail their own rules, and a list of ruled items without `maxItems`.
#[test]
fn the_guard_catches_the_faults_a_real_api_server_refused() {
    let refused: Value = serde_json::json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"communities": {
            "type": "array",
            "items": {"type": "object", "properties": {
                "name": {"type": "string", "default": "", "maxLength": 253,
                         "x-kubernetes-validations": [{"rule": "self != ''", "message": "the alias name must not be empty"}]},
                "value": {"type": "string", "default": "", "maxLength": 64,
                          "x-kubernetes-validations": [{"rule": "self.matches('^[0-9]{1,5}:[0-9]{1,5}$')", "message": "value must be AA:NN"}]}
            }}
        }}}}
    });
    let defaults = default_problems(&refused);
    assert_eq!(defaults.len(), 2, "{defaults:#?}");
    assert!(
        defaults[0].contains(".spec.communities[].name"),
        "{defaults:#?}"
    );
    assert!(defaults[0].contains("must not be empty"), "{defaults:#?}");
    let cost = cost_problems(&refused);
    assert!(
        cost.iter()
            .any(|p| p.starts_with(".spec.communities: array without maxItems")),
        "{cost:#?}"
    );
}
