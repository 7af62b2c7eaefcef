//! Manifest loading: multi-document YAML, strict ferrolb kinds, MetalLB objects, other objects.

use std::path::Path;

use ferrolb_crds::{load_str, validate, Kind, LoadError};

fn load(text: &str) -> (ferrolb_crds::Objects, Vec<LoadError>) {
    load_str(text, Path::new("test.yaml"))
}

fn lines(errors: &[LoadError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

const POOL: &str = "apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata:
  name: public
  namespace: ferrolb-system
spec:
  addresses: [203.0.113.0/24]
";

#[test]
fn multi_document_yaml_with_empty_documents_and_sources() {
    let text = format!(
        "---\n# only a comment\n---\n{POOL}---\n---\n{}",
        POOL.replace("public", "second")
            .replace("203.0.113.0/24", "198.51.100.0/24")
    );
    let (objects, errors) = load(&text);
    assert!(errors.is_empty(), "{:?}", lines(&errors));
    assert_eq!(objects.ip_address_pools.len(), 2);
    let src = objects.source(Kind::IPAddressPool, 1).unwrap();
    assert_eq!(src.file, Path::new("test.yaml"));
    assert_eq!(
        src.document, 4,
        "documents are counted 1-based, empty ones included"
    );
    assert!(
        objects.ip_address_pools[0].spec.auto_assign,
        "defaults applied"
    );
}

#[test]
fn metallb_objects_get_the_rename() {
    let text = POOL.replace("ferrolb.io/v1beta1", "metallb.io/v1beta1")
        + "---\napiVersion: metallb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: tor, namespace: metallb-system}\nspec: {myASN: 1, peerASN: 2, peerAddress: 100.64.0.1}\n";
    let (objects, errors) = load(&text);
    assert_eq!(objects.count(Kind::IPAddressPool), 0);
    let l = lines(&errors);
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(
        l[0],
        "test.yaml: IPAddressPool ferrolb-system/public: apiVersion: metallb.io/v1beta1 is MetalLB's API; ferrolb serves the same kinds and fields under ferrolb.io: change apiVersion to ferrolb.io/v1beta1"
    );
    assert!(
        l[1].contains("change apiVersion to ferrolb.io/v1beta2"),
        "BGPPeer is served as v1beta2: {}",
        l[1]
    );
}

#[test]
fn unknown_fields_are_errors_with_paths_and_suggestions() {
    let text = "apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: tor, namespace: ferrolb-system}
spec:
  myAsn: 64512
  peerASN: 64513
  peerAddress: 100.64.0.1
  nodeSelectors:
    - matchLabel: {rack: a}
  passwordSecret: {name: s, key: password}
specs: {}
";
    let (objects, errors) = load(text);
    assert_eq!(
        objects.bgp_peers.len(),
        0,
        "a peer with unknown fields is refused"
    );
    let l = lines(&errors);
    let expected = [
        "test.yaml: BGPPeer ferrolb-system/tor: specs: unknown field (did you mean spec?)",
        "test.yaml: BGPPeer ferrolb-system/tor: spec.myAsn: unknown field (did you mean myASN?)",
        "test.yaml: BGPPeer ferrolb-system/tor: spec.nodeSelectors[0].matchLabel: unknown field (did you mean matchLabels?)",
        "test.yaml: BGPPeer ferrolb-system/tor: spec.passwordSecret.key: unknown field",
    ];
    for e in expected {
        assert!(l.iter().any(|x| x == e), "missing {e:?} in {l:#?}");
    }
    // myASN is then missing, which the typed parse reports too.
    assert!(
        l.iter().any(|x| x.contains("spec: missing field `myASN`")),
        "{l:#?}"
    );
}

#[test]
fn type_errors_name_the_field() {
    let text = "apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: tor, namespace: ferrolb-system}
spec:
  myASN: 64512
  peerASN: 4294967296
  peerAddress: 100.64.0.1
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: tor2, namespace: ferrolb-system}
spec:
  myASN: 64512
  peerASN: 64513
  peerAddress: 100.64.0.1
  holdTime: 90
";
    let (_, errors) = load(text);
    let l = lines(&errors);
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(l[0].starts_with("test.yaml: BGPPeer ferrolb-system/tor: spec.peerASN: invalid value: integer `4294967296`"), "{}", l[0]);
    assert_eq!(l[1], "test.yaml: BGPPeer ferrolb-system/tor2: spec.holdTime: invalid type: integer `90`, expected a string");

    let text = "apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: tor}
spec: {myASN: 64512, peerASN: 1, peerAddress: 100.64.0.1, dynamicASN: Internal}
";
    let l = lines(&load(text).1);
    assert!(l[0].starts_with("test.yaml: BGPPeer tor: spec.dynamicASN: unknown variant `Internal`, expected `internal` or `external`"), "{}", l[0]);
}

#[test]
fn unknown_kinds_versions_and_non_objects() {
    let text = "apiVersion: ferrolb.io/v1beta1
kind: IpAddressPool
metadata: {name: a}
spec: {addresses: [203.0.113.0/24]}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {name: old}
spec: {myASN: 1, peerASN: 2, peerAddress: 100.64.0.1}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
spec: {addresses: [203.0.113.0/24]}
---
- just
- a list
---
kind: Service
metadata: {name: x}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: speaker}
";
    let (objects, errors) = load(text);
    let l = lines(&errors);
    assert_eq!(l.len(), 5, "{l:#?}");
    assert!(l[0].contains("IpAddressPool a: kind: unknown ferrolb.io kind \"IpAddressPool\" (did you mean IPAddressPool?)"), "{}", l[0]);
    assert!(l[1].contains("BGPPeer old: apiVersion: BGPPeer is served as ferrolb.io/v1beta2, not ferrolb.io/v1beta1"), "{}", l[1]);
    assert!(
        l[2].contains("document 3: IPAddressPool: metadata.name: metadata.name is required"),
        "{}",
        l[2]
    );
    assert!(
        l[3].contains("document 4: not a Kubernetes object"),
        "{}",
        l[3]
    );
    assert!(
        l[4].contains("document 5: not a Kubernetes object: apiVersion and kind are required"),
        "{}",
        l[4]
    );
    assert_eq!(objects.ignored, 1, "the Deployment");
    assert!(objects.failed_to_load(Kind::BGPPeer, "old"));
}

#[test]
fn yaml_syntax_errors_name_the_document() {
    let text = format!("{POOL}---\napiVersion: v1\nkind: [unclosed\n");
    let (objects, errors) = load(&text);
    assert_eq!(
        objects.ip_address_pools.len(),
        1,
        "documents before the error still load"
    );
    let l = lines(&errors);
    assert_eq!(l.len(), 1);
    assert!(
        l[0].starts_with("test.yaml: document 2: not valid YAML"),
        "{}",
        l[0]
    );
}

#[test]
fn core_objects_and_lists() {
    let text = "apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: shop}
    spec: {type: LoadBalancer, ports: [{port: 80}]}
  - apiVersion: v1
    kind: Namespace
    metadata: {name: shop, labels: {team: shop}}
  - apiVersion: v1
    kind: Secret
    metadata: {name: bgp, namespace: ferrolb-system}
    type: kubernetes.io/basic-auth
    data: {password: aHVudGVyMg==}
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: other}
";
    let (objects, errors) = load(text);
    assert!(errors.is_empty(), "{:?}", lines(&errors));
    assert_eq!(objects.services.len(), 1);
    assert_eq!(
        objects.services[0].spec.as_ref().unwrap().type_.as_deref(),
        Some("LoadBalancer")
    );
    assert_eq!(objects.namespaces.len(), 1);
    assert_eq!(
        objects.secrets[0].data.as_ref().unwrap()["password"].0,
        b"hunter2"
    );
    assert_eq!(objects.ignored, 1);
}

/// An object that failed to load does not also produce "no such pool" errors in the objects that
/// reference it: one mistake, one line.
#[test]
fn failed_objects_do_not_cascade() {
    let text = format!(
        "{}---\napiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: l2, namespace: ferrolb-system}}\nspec: {{ipAddressPools: [public]}}\n",
        POOL.replace("addresses:", "adresses:")
    );
    let (objects, errors) = load(&text);
    assert_eq!(
        lines(&errors).len(),
        2,
        "unknown field + missing field: {:?}",
        lines(&errors)
    );
    assert!(
        validate(&objects).is_ok(),
        "the L2Advertisement's reference to the refused pool is not reported again"
    );
}

#[test]
fn load_paths_walks_directories_recursively() {
    let dir = std::env::temp_dir().join(format!("ferrolb-manifest-walk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(dir.join(".hidden")).unwrap();
    std::fs::write(dir.join("a.yaml"), POOL).unwrap();
    std::fs::write(
        dir.join("sub/deeper/b.yml"),
        POOL.replace("public", "b")
            .replace("203.0.113", "198.51.100"),
    )
    .unwrap();
    std::fs::write(dir.join("sub/notes.txt"), "not yaml: [").unwrap();
    std::fs::write(dir.join(".hidden/c.yaml"), "broken: [").unwrap();
    let (objects, errors) = ferrolb_crds::load_paths(&[&dir]);
    assert!(errors.is_empty(), "{:?}", lines(&errors));
    let names: Vec<_> = objects
        .ip_address_pools
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["public", "b"]);
    assert_eq!(
        objects.source(Kind::IPAddressPool, 1).unwrap().file,
        dir.join("sub/deeper/b.yml")
    );
    // A file named explicitly is read whatever its extension.
    let (_, errors) = ferrolb_crds::load_paths(&[dir.join("sub/notes.txt")]);
    assert!(lines(&errors)[0].contains("not valid YAML"));
    std::fs::remove_dir_all(&dir).unwrap();
}
