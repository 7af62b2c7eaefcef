//! The deployment manifests in deploy/: every overlay builds with `kubectl kustomize` into exactly the
//! expected objects, with the expected (least) privileges, and the examples pass `ferrolb check`.
//!
//! Without kubectl the overlay tests print `SKIPPED: kubectl not installed` and pass, unless
//! `FERROLB_REQUIRE_INTEROP=1` (as CI sets). `FERROLB_KUBECTL` names another kubectl to build with.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::{json, Value};

const NS: &str = "ferrolb-system";
const IMAGE: &str = "ghcr.io/ferrolb/ferrolb:0.1.0";
const SECRET_FILE: &str = "/etc/ferrolb/memberlist/secret";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `kubectl kustomize deploy/overlays/<overlay>`, one `Value` per document; `None` (after printing
/// SKIPPED) when there is no kubectl and it is not required.
fn render(overlay: &str) -> Option<Vec<Value>> {
    let kubectl = std::env::var("FERROLB_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let dir = repo().join("deploy/overlays").join(overlay);
    let out = match Command::new(&kubectl).arg("kustomize").arg(&dir).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var("FERROLB_REQUIRE_INTEROP").as_deref() == Ok("1") {
                panic!("kubectl not installed ({kubectl}) and FERROLB_REQUIRE_INTEROP=1");
            }
            eprintln!("SKIPPED: kubectl not installed");
            println!("SKIPPED: kubectl not installed");
            return None;
        }
        Err(e) => panic!("cannot run {kubectl}: {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{kubectl} kustomize {} failed: {stderr}",
        dir.display()
    );
    // kustomize v5 warns on stderr about deprecated kustomization fields (`bases:`,
    // `patchesStrategicMerge:`, ...); the manifests use only current ones.
    assert!(
        !stderr.to_lowercase().contains("deprecated"),
        "{kubectl} kustomize {} warned: {stderr}",
        dir.display()
    );
    let text = String::from_utf8(out.stdout).expect("kustomize prints UTF-8");
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("kustomize prints valid YAML"))
        .filter(|v| !v.is_null())
        .collect();
    assert!(!docs.is_empty(), "{overlay}: nothing rendered");
    Some(docs)
}

fn str_of<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `(kind, namespace, name)` of a document.
fn id(doc: &Value) -> (String, String, String) {
    (
        str_of(doc, "/kind").to_owned(),
        str_of(doc, "/metadata/namespace").to_owned(),
        str_of(doc, "/metadata/name").to_owned(),
    )
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| str_of(d, "/kind") == kind && str_of(d, "/metadata/name") == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn expected_objects() -> BTreeSet<(String, String, String)> {
    let mut want = BTreeSet::new();
    let mut add = |kind: &str, ns: &str, name: &str| {
        want.insert((kind.to_owned(), ns.to_owned(), name.to_owned()));
    };
    add("Namespace", "", NS);
    for plural in [
        "bfdprofiles",
        "bgpadvertisements",
        "bgppeers",
        "communities",
        "ipaddresspools",
        "l2advertisements",
        "speakerstates",
    ] {
        add(
            "CustomResourceDefinition",
            "",
            &format!("{plural}.ferrolb.io"),
        );
    }
    for who in ["ferrolb-controller", "ferrolb-speaker"] {
        add("ServiceAccount", NS, who);
        add("ClusterRole", "", who);
        add("ClusterRoleBinding", "", who);
        add("Role", NS, who);
        add("RoleBinding", NS, who);
    }
    add("Deployment", NS, "ferrolb-controller");
    add("DaemonSet", NS, "ferrolb-speaker");
    want
}

/// A role's rules as `apiGroup resource[/name] verb` lines, one per grant.
fn grants(role: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let list = |rule: &Value, key: &str| -> Vec<String> {
        rule.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    for rule in role["rules"].as_array().expect("rules") {
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "{}: nonResourceURLs",
            str_of(role, "/metadata/name")
        );
        let names = list(rule, "resourceNames");
        let names = if names.is_empty() {
            vec![String::new()]
        } else {
            names
        };
        for group in list(rule, "apiGroups") {
            for resource in list(rule, "resources") {
                for name in &names {
                    for verb in list(rule, "verbs") {
                        let group = if group.is_empty() { "core" } else { &group };
                        let target = if name.is_empty() {
                            resource.clone()
                        } else {
                            format!("{resource}/{name}")
                        };
                        out.insert(format!("{group} {target} {verb}"));
                    }
                }
            }
        }
    }
    out
}

fn expand(spec: &[(&str, &[&str], &[&str])]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (group, resources, verbs) in spec {
        for r in *resources {
            for v in *verbs {
                out.insert(format!("{group} {r} {v}"));
            }
        }
    }
    out
}

const CONFIG_KINDS: &[&str] = &[
    "ipaddresspools",
    "bgppeers",
    "bgpadvertisements",
    "l2advertisements",
    "communities",
    "bfdprofiles",
];
const READ: &[&str] = &["get", "list", "watch"];

/// Every grant, exactly: widening a role (or narrowing it) must show up here and in deploy/README.md.
fn expected_grants(kind: &str, who: &str) -> BTreeSet<String> {
    match (kind, who) {
        ("ClusterRole", "ferrolb-controller") => expand(&[
            ("core", &["services"], READ),
            ("core", &["services/status"], &["patch"]),
            ("core", &["namespaces"], READ),
            ("events.k8s.io", &["events"], &["create", "patch"]),
            ("core", &["events"], &["list"]),
        ]),
        ("Role", "ferrolb-controller") => expand(&[
            ("ferrolb.io", CONFIG_KINDS, READ),
            ("ferrolb.io", &["ipaddresspools/status"], &["patch"]),
            ("ferrolb.io", &["speakerstates"], READ),
            ("ferrolb.io", &["speakerstates/status"], &["patch"]),
            ("coordination.k8s.io", &["leases"], &["create"]),
            (
                "coordination.k8s.io",
                &["leases/ferrolb-controller"],
                &["get", "update"],
            ),
        ]),
        ("ClusterRole", "ferrolb-speaker") => expand(&[
            ("core", &["services", "nodes"], READ),
            ("discovery.k8s.io", &["endpointslices"], READ),
            ("events.k8s.io", &["events"], &["create", "patch"]),
        ]),
        ("Role", "ferrolb-speaker") => expand(&[
            ("ferrolb.io", CONFIG_KINDS, READ),
            ("core", &["secrets"], READ),
            ("core", &["pods"], &["list", "watch"]),
            (
                "ferrolb.io",
                &["speakerstates"],
                &["get", "create", "patch"],
            ),
            ("ferrolb.io", &["speakerstates/status"], &["patch"]),
        ]),
        other => panic!("unexpected role {other:?}"),
    }
}

fn check_rbac(overlay: &str, docs: &[Value]) {
    for doc in docs {
        let kind = str_of(doc, "/kind");
        if kind != "ClusterRole" && kind != "Role" {
            continue;
        }
        let name = str_of(doc, "/metadata/name");
        let got = grants(doc);
        for grant in &got {
            assert!(
                !grant.contains('*'),
                "{overlay}: {kind} {name} grants {grant}"
            );
            if kind == "ClusterRole" {
                assert!(
                    !grant.contains(" secrets"),
                    "{overlay}: ClusterRole {name} grants {grant}: Secrets only by a Role in {NS}"
                );
            }
        }
        assert_eq!(
            got,
            expected_grants(kind, name),
            "{overlay}: {kind} {name} grants"
        );
        if kind == "Role" {
            assert_eq!(str_of(doc, "/metadata/namespace"), NS, "{overlay}: {name}");
        }
    }
    // Secrets: only the speaker's Role, in ferrolb-system.
    let secret_readers: Vec<_> = docs
        .iter()
        .filter(|d| grants_any(d, "secrets"))
        .map(id)
        .collect();
    assert_eq!(
        secret_readers,
        vec![(
            "Role".to_owned(),
            NS.to_owned(),
            "ferrolb-speaker".to_owned()
        )],
        "{overlay}: who may read Secrets"
    );
    // Each binding gives its own role to its own ServiceAccount, and nothing else.
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        for who in ["ferrolb-controller", "ferrolb-speaker"] {
            let b = find(docs, kind, who);
            let role_kind = kind.trim_end_matches("Binding");
            assert_eq!(
                b["roleRef"],
                json!({"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": who}),
                "{overlay}: {kind} {who}"
            );
            assert_eq!(
                b["subjects"],
                json!([{"kind": "ServiceAccount", "name": who, "namespace": NS}]),
                "{overlay}: {kind} {who}"
            );
        }
    }
}

fn grants_any(doc: &Value, resource: &str) -> bool {
    let kind = str_of(doc, "/kind");
    (kind == "Role" || kind == "ClusterRole")
        && grants(doc)
            .iter()
            .any(|g| g.split(' ').nth(1).unwrap().split('/').next() == Some(resource))
}

fn env_field(container: &Value, name: &str) -> String {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == name)
        .map(|e| str_of(e, "/valueFrom/fieldRef/fieldPath").to_owned())
        .unwrap_or_else(|| panic!("no env {name}"))
}

fn args(container: &Value) -> Vec<&str> {
    container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

/// The probe's path and the container port number it reaches.
fn probe(container: &Value, which: &str) -> (String, u64) {
    let get = &container[which]["httpGet"];
    let port = match &get["port"] {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::String(name) => container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("{which}: no port named {name}")),
        other => panic!("{which}: port {other}"),
    };
    (str_of(get, "/path").to_owned(), port)
}

/// The hardening every container gets, and the capabilities it adds.
fn hardened(what: &str, pod: &Value, container: &Value) -> Vec<String> {
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{what}");
    assert!(sc.get("privileged").is_none_or(|p| p == false), "{what}");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{what}"
    );
    assert_eq!(container["image"], IMAGE, "{what}");
    for section in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][section][resource].is_string(),
                "{what}: resources.{section}.{resource}"
            );
        }
    }
    assert_eq!(probe(container, "readinessProbe"), ("/readyz".into(), 7472));
    assert_eq!(probe(container, "livenessProbe"), ("/healthz".into(), 7472));
    sc["capabilities"]["add"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

fn non_root(what: &str, pod: &Value, container: &Value) {
    for sc in [&pod["securityContext"], &container["securityContext"]] {
        if sc.get("runAsNonRoot").is_some() || sc.get("runAsUser").is_some() {
            assert_eq!(sc["runAsNonRoot"], true, "{what}");
            assert_eq!(sc["runAsUser"], 65532, "{what}");
        }
    }
    let effective = |key: &str| {
        let c = &container["securityContext"][key];
        if c.is_null() {
            pod["securityContext"][key].clone()
        } else {
            c.clone()
        }
    };
    assert_eq!(effective("runAsNonRoot"), true, "{what}");
    assert_eq!(effective("runAsUser"), 65532, "{what}");
}

fn check_controller(overlay: &str, docs: &[Value]) {
    let d = find(docs, "Deployment", "ferrolb-controller");
    assert_eq!(d["spec"]["replicas"], 2, "{overlay}");
    let pod = &d["spec"]["template"]["spec"];
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/name"], "ferrolb");
    assert_eq!(labels["app.kubernetes.io/component"], "controller");
    assert_eq!(pod["serviceAccountName"], "ferrolb-controller");
    assert!(pod.get("hostNetwork").is_none_or(|h| h == false));
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(args(c)[0], "controller", "{overlay}");
    assert_eq!(env_field(c, "POD_NAMESPACE"), "metadata.namespace");
    assert_eq!(env_field(c, "POD_NAME"), "metadata.name");
    let what = format!("{overlay}: controller");
    let added = hardened(&what, pod, c);
    assert!(added.is_empty(), "{what} adds {added:?}");
    non_root(&what, pod, c);
}

/// `layer2`: the speaker runs the memberlist and holds CAP_NET_RAW.
fn check_speaker(overlay: &str, docs: &[Value], layer2: bool) {
    let ds = find(docs, "DaemonSet", "ferrolb-speaker");
    let pod = &ds["spec"]["template"]["spec"];
    let labels = &ds["spec"]["template"]["metadata"]["labels"];
    // The speaker's own --speaker-pods default: it finds its peers by these labels.
    assert_eq!(labels["app.kubernetes.io/name"], "ferrolb");
    assert_eq!(labels["app.kubernetes.io/component"], "speaker");
    assert_eq!(pod["hostNetwork"], true, "{overlay}");
    assert_eq!(pod["serviceAccountName"], "ferrolb-speaker");
    for key in [
        "node-role.kubernetes.io/control-plane",
        "node-role.kubernetes.io/master",
    ] {
        assert!(
            pod["tolerations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["key"] == key && t["effect"] == "NoSchedule"),
            "{overlay}: toleration {key}"
        );
    }
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let a = args(c);
    assert_eq!(a[0], "speaker", "{overlay}");
    assert_eq!(env_field(c, "NODE_NAME"), "spec.nodeName");
    assert_eq!(env_field(c, "POD_NAMESPACE"), "metadata.namespace");
    assert_eq!(env_field(c, "POD_IP"), "status.podIP");
    let what = format!("{overlay}: speaker");
    let added = hardened(&what, pod, c);

    let secret_volumes: Vec<&Value> = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v.get("secret").is_some())
        .collect();
    let flag = a.iter().position(|x| *x == "--memberlist-secret-file");
    if layer2 {
        assert_eq!(added, ["NET_RAW"], "{what}: capabilities added");
        assert_eq!(flag.map(|i| a[i + 1]), Some(SECRET_FILE), "{what}: {a:?}");
        assert_eq!(secret_volumes.len(), 1, "{what}");
        let v = secret_volumes[0];
        assert_eq!(v["secret"]["secretName"], "ferrolb-memberlist", "{what}");
        assert_eq!(v["secret"]["optional"], false, "{what}");
        let mount = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == v["name"])
            .unwrap_or_else(|| panic!("{what}: memberlist Secret not mounted"));
        assert_eq!(
            Path::new(SECRET_FILE).parent().unwrap(),
            Path::new(str_of(mount, "/mountPath"))
        );
        assert_eq!(mount["readOnly"], true, "{what}");
    } else {
        assert!(added.is_empty(), "{what} adds {added:?}");
        assert_eq!(flag, None, "{what}: {a:?}");
        assert!(secret_volumes.is_empty(), "{what}: {secret_volumes:?}");
        assert!(
            c["volumeMounts"].as_array().is_none_or(|m| m.is_empty()),
            "{what}"
        );
        // Nothing needs root without a capability.
        non_root(&what, pod, c);
    }
}

fn check_overlay(overlay: &str, layer2: bool) -> Option<Vec<Value>> {
    let docs = render(overlay)?;
    let got: BTreeSet<_> = docs.iter().map(id).collect();
    assert_eq!(
        got.len(),
        docs.len(),
        "{overlay}: an object is rendered twice"
    );
    assert_eq!(got, expected_objects(), "{overlay}: rendered objects");
    check_rbac(overlay, &docs);
    check_controller(overlay, &docs);
    check_speaker(overlay, &docs, layer2);
    Some(docs)
}

#[test]
fn overlay_bgp_only() {
    check_overlay("bgp-only", false);
}

#[test]
fn overlay_l2_only() {
    check_overlay("l2-only", true);
}

#[test]
fn overlay_both() {
    check_overlay("both", true);
}

/// The overlays differ in the speaker's DaemonSet alone.
#[test]
fn overlays_differ_only_in_the_speaker() {
    let Some(both) = check_overlay("both", true) else {
        return;
    };
    let others = |docs: Vec<Value>| -> BTreeMap<(String, String, String), Value> {
        docs.into_iter()
            .filter(|d| d["kind"] != "DaemonSet")
            .map(|d| (id(&d), d))
            .collect()
    };
    let both = others(both);
    for overlay in ["bgp-only", "l2-only"] {
        let docs = render(overlay).expect("rendered above");
        assert!(
            others(docs) == both,
            "{overlay} differs from both outside the speaker"
        );
    }
}

#[test]
fn examples_pass_check() {
    let dir = repo().join("deploy/examples");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .arg("check")
        .arg(&dir)
        .output()
        .expect("run ferrolb");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ferrolb check {}: {:?}\n{stdout}{}",
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ok: "), "{stdout}");
}

/// Every address in the examples (YAML and router configuration) is a documentation address, and every
/// AS number a private one.
#[test]
fn examples_use_documentation_addresses_and_private_asns() {
    let dir = repo().join("deploy/examples");
    let asn = regex::Regex::new(r"(?:ASN:|router bgp|remote-as|\bas)\s+(\d+)").unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in [
        "bgp-frr.yaml",
        "bgp-frr-router.conf",
        "bgp-bird.yaml",
        "bgp-bird-router.conf",
        "l2.yaml",
        "dual-stack.yaml",
        "ip-sharing.yaml",
    ] {
        assert!(names.contains(name), "deploy/examples/{name} missing");
    }
    let documentation = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => matches!(v4.octets(), [198, 51, 100, _] | [203, 0, 113, _]),
        IpAddr::V6(v6) => v6.segments()[..2] == [0x2001, 0xdb8],
    };
    let mut seen = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let tokens = text.split(|c: char| !(c.is_ascii_hexdigit() || ":./-".contains(c)));
        for token in tokens {
            for part in token.split('-') {
                let addr = part.split('/').next().unwrap();
                if let Ok(ip) = addr.parse::<IpAddr>() {
                    seen += 1;
                    assert!(documentation(ip), "{}: {ip}", file.display());
                }
            }
        }
        for cap in asn.captures_iter(&text) {
            let n: u32 = cap[1].parse().unwrap();
            assert!(
                (64512..=65534).contains(&n),
                "{}: AS {n} is not private",
                file.display()
            );
        }
    }
    assert!(seen > 10, "only {seen} addresses found");
}
