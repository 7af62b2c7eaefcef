//! The compiled `ferrolb` binary: `check`, `crds`, and `controller`'s arguments and start-up errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ferrolb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(args)
        .output()
        .expect("run ferrolb")
}

fn fixtures(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crds/tests/fixtures")
        .join(name)
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn check_reports_the_ten_mistakes_and_fails() {
    let dir = fixtures("invalid");
    let out = ferrolb(&["check", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10, "{text}");
    for (file, object_field) in [
        (
            "pools.yaml",
            "IPAddressPool ferrolb-system/reversed: spec.addresses[0]: ",
        ),
        (
            "pools.yaml",
            "IPAddressPool ferrolb-system/overlapping: spec.addresses[1]: ",
        ),
        (
            "pools.yaml",
            "IPAddressPool ferrolb-system/typo: spec.autoAsign: ",
        ),
        (
            "peers.yaml",
            "BGPPeer ferrolb-system/short-hold: spec.holdTime: ",
        ),
        (
            "peers.yaml",
            "BGPPeer ferrolb-system/slow-keepalive: spec.keepaliveTime: ",
        ),
        (
            "peers.yaml",
            "BGPPeer ferrolb-system/ibgp-multihop: spec.ebgpMultiHop: ",
        ),
        (
            "peers.yaml",
            "BGPPeer ferrolb-system/mixed-family: spec.sourceAddress: ",
        ),
        (
            "advertisements.yaml",
            "BGPAdvertisement ferrolb-system/too-wide: spec.aggregationLength: ",
        ),
        (
            "advertisements.yaml",
            "BGPAdvertisement ferrolb-system/unknown-alias: spec.communities[0]: ",
        ),
        (
            "l2.yaml",
            "L2Advertisement ferrolb-system/missing-pool: spec.ipAddressPools[0]: ",
        ),
    ] {
        let line = lines
            .iter()
            .find(|l| l.contains(object_field))
            .unwrap_or_else(|| panic!("{object_field} not reported:\n{text}"));
        assert!(line.contains(&format!("{file}: {object_field}")), "{line}");
    }
    assert!(stderr(&out).contains("10 problems found"));
}

#[test]
fn check_passes_the_valid_set() {
    let dir = fixtures("valid");
    let out = ferrolb(&["check", dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "one summary line: {text}");
    assert!(
        text.starts_with("ok: 3 IPAddressPools, 2 BGPPeers"),
        "{text}"
    );
}

#[test]
fn check_takes_several_files() {
    let dir = fixtures("valid");
    let files: Vec<String> = ["pools.yaml", "l2.yaml"]
        .iter()
        .map(|f| dir.join(f).to_str().unwrap().to_owned())
        .collect();
    let out = ferrolb(&["check", &files[0], &files[1]]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        stdout(&out).trim(),
        "ok: 3 IPAddressPools, 1 L2Advertisement"
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(ferrolb(&["check"]).status.code(), Some(2));
    assert_eq!(ferrolb(&["check", "--strict", "x"]).status.code(), Some(2));
    assert_eq!(ferrolb(&["crds", "--output"]).status.code(), Some(2));
    assert_eq!(ferrolb(&["crds", "extra"]).status.code(), Some(2));
    assert_eq!(ferrolb(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(ferrolb(&["controller", "--bogus"]).status.code(), Some(2));
    assert_eq!(
        ferrolb(&["controller", "--log-format", "xml"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        ferrolb(&["controller", "--metrics-addr", "nowhere"])
            .status
            .code(),
        Some(2)
    );
    let help = ferrolb(&["help"]);
    assert_eq!(help.status.code(), Some(0));
    for command in ["check", "crds", "controller", "version", "help"] {
        assert!(
            stdout(&help).contains(&format!("  {command} ")),
            "help lists {command}"
        );
    }
    assert!(stdout(&ferrolb(&["version"])).starts_with("ferrolb "));
}

#[test]
fn crds_writes_one_file_per_kind_and_checks_them() {
    let dir = std::env::temp_dir().join(format!("ferrolb-cli-crds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    assert_eq!(
        ferrolb(&["crds", "--check", "--output", d]).status.code(),
        Some(1),
        "nothing written yet"
    );
    let out = ferrolb(&["crds", "--output", d]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ferrolb.io_bfdprofiles.yaml",
            "ferrolb.io_bgpadvertisements.yaml",
            "ferrolb.io_bgppeers.yaml",
            "ferrolb.io_communities.yaml",
            "ferrolb.io_ipaddresspools.yaml",
            "ferrolb.io_l2advertisements.yaml",
            "ferrolb.io_speakerstates.yaml",
        ]
    );
    assert_eq!(
        ferrolb(&["crds", "--check", &format!("--output={d}")])
            .status
            .code(),
        Some(0)
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // The committed files are what this binary generates.
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    let out = ferrolb(&["crds", "--check", "--output", committed.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "deploy/crds is stale; run `cargo run -p ferrolb-speaker -- crds`\n{}",
        stdout(&out)
    );
}

#[test]
fn controller_without_an_api_server_says_so_and_fails() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(["controller", "--metrics-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .expect("run ferrolb");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot reach the Kubernetes API server"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_configuration_reference_is_what_the_types_generate() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    let out = ferrolb(&["crds", "--check", "--reference", doc.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "docs/configuration.md is stale: run `ferrolb crds --reference docs/configuration.md`\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}
