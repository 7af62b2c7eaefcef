//! End to end against a real Kubernetes API server (etcd + kube-apiserver on 127.0.0.1, see
//! `ferrolb_interop_tests::apiserver`).
//!
//! Needs `KUBE_APISERVER` (a kube-apiserver binary), etcd (`/usr/bin/etcd`) and kubectl. Without
//! `KUBE_APISERVER` the tests print `SKIPPED: no KUBE_APISERVER` and pass, also with
//! `FERROLB_REQUIRE_INTEROP=1`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};

use ferrolb_interop_tests::apiserver::{kubectl_with, ApiServer, KubectlOutput, KUBECTL_TIMEOUT};
use ferrolb_interop_tests::apiserver_guard;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .canonicalize()
        .expect("deploy/ next to interop-tests/")
}

/// Runs one kubectl step as the admin, prints it, and records a problem when it fails. Returns the output.
fn step(api: &ApiServer, problems: &mut Vec<String>, args: &[&str]) -> KubectlOutput {
    let out = api.kubectl(args);
    eprintln!(
        "kubectl {} -> {} in {:.1}s",
        args.join(" "),
        if out.success() { "ok" } else { "FAILED" },
        out.elapsed.as_secs_f64()
    );
    for w in out.warnings() {
        eprintln!("    {w}");
    }
    if !out.success() {
        problems.push(out.to_string());
    }
    out
}

/// The CRDs, every overlay and every example apply cleanly to a real API server: the API server's own
/// validation of the CRD schemas (no "unrecognized format" warnings), of the RBAC objects and workloads of
/// each overlay, and of the example objects against the installed CRDs.
#[test]
fn crds_overlays_and_examples_apply_to_a_real_apiserver() {
    let bin = apiserver_guard!();
    let api = ApiServer::start(&bin).unwrap_or_else(|e| panic!("{e}"));
    let deploy = deploy_dir();
    let path = |rel: &str| deploy.join(rel).to_string_lossy().into_owned();
    let mut problems = Vec::new();

    // 1. The CRDs alone, as deploy/README.md says (`-k`: `-f` would also send deploy/crds/kustomization.yaml
    // to the server as an object), then every one of them established.
    let crds = step(&api, &mut problems, &["apply", "-k", &path("crds")]);
    let format_warnings: Vec<&str> = crds
        .warnings()
        .into_iter()
        .filter(|w| w.contains("unrecognized format"))
        .collect();
    if !format_warnings.is_empty() {
        problems.push(format!(
            "the API server warned about {} unrecognized format(s) in deploy/crds:\n{}",
            format_warnings.len(),
            format_warnings.join("\n")
        ));
    }
    step(
        &api,
        &mut problems,
        &[
            "wait",
            "--for",
            "condition=established",
            "--timeout=30s",
            "crd",
            "--all",
        ],
    );
    let want_crds = std::fs::read_dir(deploy.join("crds"))
        .expect("deploy/crds")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("ferrolb.io_"))
        .count();
    let listed = api.kubectl(&["get", "crd", "-o", "name"]);
    let have_crds = listed
        .stdout
        .lines()
        .filter(|l| l.ends_with(".ferrolb.io"))
        .count();
    if have_crds != want_crds {
        problems.push(format!(
            "{want_crds} ferrolb.io CRD files in deploy/crds but {have_crds} CRDs served: {listed}"
        ));
    }

    // 2. Every overlay (`both` last: it is the base's speaker), then the examples against them.
    for overlay in ["bgp-only", "l2-only", "both"] {
        step(
            &api,
            &mut problems,
            &["apply", "-k", &path(&format!("overlays/{overlay}"))],
        );
    }
    step(&api, &mut problems, &["apply", "-f", &path("examples")]);

    assert!(
        problems.is_empty(),
        "{} problem(s) applying deploy/ to kube-apiserver {}:\n\n{}",
        problems.len(),
        api.url(),
        problems.join("\n\n")
    );
}

/// What the harness promises: a ServiceAccount kubeconfig carries exactly that account's RBAC; Pods are
/// admitted without a `default` ServiceAccount; Services get cluster IPs of both families; tests can write
/// EndpointSlices; and dropping the server stops it and removes its directory.
#[test]
fn apiserver_harness_serves_service_accounts_pods_services_and_cleans_up() {
    let bin = apiserver_guard!();
    let api = ApiServer::start(&bin).unwrap_or_else(|e| panic!("{e}"));
    let ok = |args: &[&str]| {
        api.kubectl_ok(args)
            .unwrap_or_else(|e| panic!("{e}\n{}", api.log_tails()))
    };
    let apply = |yaml: &str| {
        let out = api.kubectl_stdin(&["apply", "-f", "-"], yaml);
        assert!(out.success(), "{out}");
    };
    ok(&["create", "namespace", "e2e"]);

    // A ServiceAccount that may only read ConfigMaps in its namespace.
    api.create_service_account("e2e", "reader")
        .unwrap_or_else(|e| panic!("{e}"));
    ok(&[
        "create",
        "role",
        "read-configmaps",
        "-n",
        "e2e",
        "--verb=get,list",
        "--resource=configmaps",
    ]);
    ok(&[
        "create",
        "rolebinding",
        "reader",
        "-n",
        "e2e",
        "--role=read-configmaps",
        "--serviceaccount=e2e:reader",
    ]);
    let kubeconfig = api
        .kubeconfig_for_service_account("e2e", "reader")
        .unwrap_or_else(|e| panic!("{e}"));
    let as_reader = |args: &[&str]| kubectl_with(&kubeconfig, args, KUBECTL_TIMEOUT);
    let allowed = as_reader(&["get", "configmaps"]);
    assert!(allowed.success(), "{allowed}");
    for denied in [
        as_reader(&["get", "secrets"]),
        as_reader(&["get", "configmaps", "-n", "default"]),
    ] {
        assert!(
            !denied.success()
                && denied.stderr.contains("forbidden")
                && denied.stderr.contains("system:serviceaccount:e2e:reader"),
            "{denied}"
        );
    }

    // A Pod without any ServiceAccount in its namespace (no controller creates `default`).
    apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web-0, namespace: e2e, labels: {app: web}}\n\
         spec: {containers: [{name: web, image: registry.invalid/web:1}]}\n",
    );
    // A dual-stack LoadBalancer Service: the API server assigns both cluster IPs itself.
    apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: e2e}\n\
         spec: {type: LoadBalancer, ipFamilyPolicy: PreferDualStack, selector: {app: web},\n\
         \x20 ports: [{port: 80, targetPort: 8080, protocol: TCP}]}\n",
    );
    let ips = ok(&[
        "get",
        "service",
        "web",
        "-n",
        "e2e",
        "-o",
        "jsonpath={.spec.clusterIPs[*]}",
    ]);
    let ips: Vec<&str> = ips.split_whitespace().collect();
    assert!(
        ips.len() == 2 && ips[0].starts_with("10.96.") && ips[1].starts_with("fd00:10:96::"),
        "cluster IPs {ips:?}"
    );
    // No controller makes the Service's EndpointSlice: a test writes it.
    apply(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {name: web-1, namespace: e2e, labels: {kubernetes.io/service-name: web}}\n\
         addressType: IPv4\nports: [{port: 8080, protocol: TCP}]\n\
         endpoints: [{addresses: [198.51.100.10], nodeName: node1, conditions: {ready: true}}]\n",
    );

    let dir = api.dir().to_path_buf();
    let port = api.port();
    drop(api);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "kube-apiserver still listening on {port}"
    );
}
