//! MetalLB-style sample manifests (apiVersion renamed to ferrolb.io) survive a trip through the types:
//! every field comes back unchanged, and the only additions are the schema defaults the API server
//! would fill in.

use std::path::{Path, PathBuf};

use ferrolb_crds::crdgen::crd;
use ferrolb_crds::manifest::ConfigObject;
use ferrolb_crds::{load_paths, load_str, validate, Kind, Objects};
use serde::Deserialize;
use serde_json::Value;

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples")
}

/// Every document of every sample file, as JSON, in load order.
fn raw_documents() -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(samples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for d in serde_yaml::Deserializer::from_str(&text) {
            let v = serde_yaml::Value::deserialize(d).unwrap();
            if !v.is_null() {
                docs.push(serde_json::to_value(v).unwrap());
            }
        }
    }
    docs
}

/// The typed objects, re-serialized, keyed by kind and name.
fn serialized(objects: &Objects, kind: Kind, name: &str) -> Value {
    fn find<T: ConfigObject + serde::Serialize>(objects: &Objects, name: &str) -> Value {
        let o = T::all(objects)
            .iter()
            .find(|o| o.meta().name.as_deref() == Some(name))
            .expect("loaded");
        serde_json::to_value(o).unwrap()
    }
    match kind {
        Kind::IPAddressPool => find::<ferrolb_crds::IPAddressPool>(objects, name),
        Kind::BGPPeer => find::<ferrolb_crds::BGPPeer>(objects, name),
        Kind::BGPAdvertisement => find::<ferrolb_crds::BGPAdvertisement>(objects, name),
        Kind::L2Advertisement => find::<ferrolb_crds::L2Advertisement>(objects, name),
        Kind::Community => find::<ferrolb_crds::Community>(objects, name),
        Kind::BFDProfile => find::<ferrolb_crds::BFDProfile>(objects, name),
    }
}

/// `got` contains everything in `want` (objects: every key, recursively; everything else: equal).
fn assert_includes(got: &Value, want: &Value, path: &str) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                let gv = g.get(k).unwrap_or_else(|| panic!("{path}.{k} was dropped"));
                assert_includes(gv, wv, &format!("{path}.{k}"));
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{path}: list length changed");
            for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
                assert_includes(gv, wv, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(got, want, "{path} changed"),
    }
}

#[test]
fn samples_round_trip_through_the_types() {
    let (objects, errors) = load_paths(&[samples_dir()]);
    assert!(
        errors.is_empty(),
        "{:?}",
        errors.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    let docs = raw_documents();
    assert_eq!(docs.len(), 16);
    let loaded: usize = Kind::ALL.iter().map(|&k| objects.count(k)).sum();
    assert_eq!(loaded, docs.len(), "every sample document became an object");

    for raw in &docs {
        let kind = Kind::from_name(raw["kind"].as_str().unwrap()).unwrap();
        let name = raw["metadata"]["name"].as_str().unwrap();
        let got = serialized(&objects, kind, name);
        let what = format!("{kind} {name}");
        assert_includes(&got, raw, &what);

        // Whatever was added is a schema default, as the API server would have filled in.
        let crd = crd(kind);
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        let spec_schema = &schema["properties"]["spec"]["properties"];
        let empty = serde_json::Map::new();
        let raw_spec = raw.get("spec").and_then(Value::as_object).unwrap_or(&empty);
        for (field, value) in got["spec"].as_object().unwrap() {
            if !raw_spec.contains_key(field) {
                assert_eq!(
                    &spec_schema[field]["default"], value,
                    "{what}: spec.{field} added without being a schema default"
                );
            }
        }
        for top in got.as_object().unwrap().keys() {
            assert!(
                raw.get(top).is_some() || top == "spec",
                "{what}: unexpected top-level {top}"
            );
        }

        // Serializing and loading again gives the same object.
        let text = serde_yaml::to_string(&got).unwrap();
        let (again, errors) = load_str(&text, Path::new("again.yaml"));
        assert!(
            errors.is_empty(),
            "{what}: {:?}",
            errors.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
        assert_eq!(
            serialized(&again, kind, name),
            got,
            "{what}: not idempotent"
        );
    }
}

#[test]
fn defaults_are_filled_in() {
    let (objects, _) = load_paths(&[samples_dir()]);
    let simple = serialized(&objects, Kind::BGPAdvertisement, "simple");
    assert_eq!(
        simple["spec"],
        serde_json::json!({"aggregationLength": 32, "aggregationLengthV6": 128})
    );
    let peer = serialized(&objects, Kind::BGPPeer, "sample");
    assert_eq!(peer["spec"]["peerPort"], 179);
    assert_eq!(peer["spec"]["disableMP"], false);
    let pool = serialized(&objects, Kind::IPAddressPool, "first-pool");
    assert_eq!(
        (
            pool["spec"]["autoAssign"].clone(),
            pool["spec"]["avoidBuggyIPs"].clone()
        ),
        (true.into(), false.into())
    );
    let bfd = serialized(&objects, Kind::BFDProfile, "defaults");
    assert_eq!(
        bfd["spec"],
        serde_json::json!({"receiveInterval": 300, "transmitInterval": 300, "detectMultiplier": 3, "echoInterval": 50,
                           "echoMode": false, "passiveMode": false, "minimumTtl": 254})
    );
    assert_eq!(pool["apiVersion"], "ferrolb.io/v1beta1");
    assert_eq!(peer["apiVersion"], "ferrolb.io/v1beta2");
}

/// The samples form a consistent configuration.
#[test]
fn samples_validate_as_a_set() {
    let (objects, _) = load_paths(&[samples_dir()]);
    let config = validate(&objects).unwrap_or_else(|e| {
        panic!(
            "{:#?}",
            e.iter().map(ToString::to_string).collect::<Vec<_>>()
        )
    });
    assert_eq!(config.pools.len(), 3);
    let aggregated = config
        .bgp_advertisements
        .iter()
        .find(|a| a.name == "aggregated")
        .unwrap();
    assert_eq!(aggregated.pools, ["expensive"]);
    assert_eq!(
        config
            .bgp_advertisements
            .iter()
            .find(|a| a.name == "simple")
            .unwrap()
            .pools
            .len(),
        3
    );
}

/// Migrating from MetalLB is a change of group: the same text with metallb.io is refused with the
/// rename to make, and loads once renamed.
#[test]
fn migration_is_a_rename_of_the_group() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(samples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let ours = std::fs::read_to_string(&f).unwrap();
        let metallb = ours.replace("apiVersion: ferrolb.io/", "apiVersion: metallb.io/");
        let (objects, errors) = load_str(&metallb, &f);
        assert_eq!(
            Kind::ALL.iter().map(|&k| objects.count(k)).sum::<usize>(),
            0
        );
        assert!(!errors.is_empty());
        for e in &errors {
            assert_eq!(e.field.as_deref(), Some("apiVersion"));
            assert!(
                e.problem.contains("change apiVersion to ferrolb.io/"),
                "{e}"
            );
        }
        let renamed = metallb.replace("apiVersion: metallb.io/", "apiVersion: ferrolb.io/");
        assert!(load_str(&renamed, &f).1.is_empty());
    }
}
