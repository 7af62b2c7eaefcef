//! `ferrolb check` on the fixture directories: ten deliberate mistakes are all reported with their object
//! and field; the valid set passes.

use std::path::{Path, PathBuf};

use ferrolb_crds::check::check_paths;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `(file, object, field, words of the problem)` for each of the ten mistakes.
pub const MISTAKES: [(&str, &str, &str, &str); 10] = [
    (
        "pools.yaml",
        "IPAddressPool ferrolb-system/reversed",
        "spec.addresses[0]",
        "is reversed",
    ),
    (
        "pools.yaml",
        "IPAddressPool ferrolb-system/overlapping",
        "spec.addresses[1]",
        "overlaps 198.51.100.0/24 of IPAddressPool ferrolb-system/main",
    ),
    (
        "pools.yaml",
        "IPAddressPool ferrolb-system/typo",
        "spec.autoAsign",
        "unknown field (did you mean autoAssign?)",
    ),
    (
        "peers.yaml",
        "BGPPeer ferrolb-system/short-hold",
        "spec.holdTime",
        "must be 0 (no hold timer) or 3s to 65535s",
    ),
    (
        "peers.yaml",
        "BGPPeer ferrolb-system/slow-keepalive",
        "spec.keepaliveTime",
        "1m0s is longer than holdTime 30s",
    ),
    (
        "peers.yaml",
        "BGPPeer ferrolb-system/ibgp-multihop",
        "spec.ebgpMultiHop",
        "session is iBGP",
    ),
    (
        "peers.yaml",
        "BGPPeer ferrolb-system/mixed-family",
        "spec.sourceAddress",
        "2001:db8::10 is IPv6 but peerAddress 100.64.0.4 is IPv4",
    ),
    (
        "advertisements.yaml",
        "BGPAdvertisement ferrolb-system/too-wide",
        "spec.aggregationLength",
        "24 is shorter than the prefix length of 203.0.113.64/26",
    ),
    (
        "advertisements.yaml",
        "BGPAdvertisement ferrolb-system/unknown-alias",
        "spec.communities[0]",
        "\"no-such-alias\" is neither a community value",
    ),
    (
        "l2.yaml",
        "L2Advertisement ferrolb-system/missing-pool",
        "spec.ipAddressPools[0]",
        "there is no IPAddressPool named \"office\"",
    ),
];

#[test]
fn reports_all_ten_mistakes_with_object_and_field() {
    let report = check_paths(&[fixture("invalid")]);
    assert!(!report.is_ok());
    for line in &report.problems {
        println!("{line}");
    }
    assert_eq!(
        report.problems.len(),
        10,
        "exactly the ten mistakes, nothing cascades: {:#?}",
        report.problems
    );
    for (file, object, field, problem) in MISTAKES {
        let prefix = format!("{object}: {field}: ");
        let line = report
            .problems
            .iter()
            .find(|l| l.contains(&prefix))
            .unwrap_or_else(|| panic!("no line for {object} {field} in {:#?}", report.problems));
        let (path, rest) = line.split_once(": ").unwrap();
        assert!(path.ends_with(file), "{line}: expected file {file}");
        assert!(Path::new(path).exists(), "{line}: the file exists");
        assert!(
            rest.starts_with(&prefix),
            "{line}: format is `file: Kind ns/name: field: problem`"
        );
        assert!(rest.contains(problem), "{line}: expected {problem:?}");
    }
    assert_eq!(report.summary, "10 problems found");
}

#[test]
fn the_valid_set_passes() {
    let report = check_paths(&[fixture("valid")]);
    assert!(report.is_ok(), "{:#?}", report.problems);
    assert_eq!(
        report.summary,
        "ok: 3 IPAddressPools, 2 BGPPeers, 3 BGPAdvertisements, 1 L2Advertisement, 1 Community, 1 BFDProfile \
         (and 3 Services, 1 Namespace, 1 Secret); 1 other object ignored"
    );
}

#[test]
fn files_can_be_named_one_by_one() {
    let valid = fixture("valid");
    let files: Vec<PathBuf> = ["pools.yaml", "bgp.yaml", "l2.yaml", "services.yaml"]
        .iter()
        .map(|f| valid.join(f))
        .collect();
    assert!(check_paths(&files).is_ok());
    // Without the pools, every reference to them is reported.
    let report = check_paths(&files[1..]);
    assert!(report.problems.iter().any(|l| l.contains("BGPAdvertisement ferrolb-system/web: spec.ipAddressPools[0]: there is no IPAddressPool named \"dual-stack\"")), "{:#?}", report.problems);
    assert!(report
        .problems
        .iter()
        .any(|l| l.contains("L2Advertisement ferrolb-system/office: spec.ipAddressPools[0]")));
}

#[test]
fn nothing_to_check_is_a_problem() {
    let empty = std::env::temp_dir().join(format!("ferrolb-check-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let report = check_paths(&[&empty]);
    assert_eq!(report.problems.len(), 1);
    assert!(report.problems[0].contains("no ferrolb.io objects found"));
    let missing = check_paths(&[empty.join("missing.yaml")]);
    assert!(
        missing.problems[0].contains("cannot read"),
        "{:?}",
        missing.problems
    );
    std::fs::remove_dir_all(&empty).unwrap();
}
