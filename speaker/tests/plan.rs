//! `ferrolb plan`: what each Service would get, and why one gets nothing, without touching anything.

use std::process::Command;

fn ferrolb(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(args)
        .output()
        .expect("ferrolb runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/plan");

fn line<'a>(out: &'a str, service: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(service))
        .unwrap_or_else(|| panic!("no line for {service} in:\n{out}"))
}

#[test]
fn table_names_ips_pools_and_reasons() {
    let (ok, out, err) = ferrolb(&["plan", FIXTURE]);
    assert!(ok, "{err}");
    // First free in name order: first and second take the two addresses, third finds the pool exhausted.
    assert!(
        line(&out, "shop/first").contains("203.0.113.10")
            && line(&out, "shop/first").contains("small")
    );
    assert!(line(&out, "shop/second").contains("203.0.113.11"));
    assert!(line(&out, "shop/third").contains("exhausted"), "{out}");
    assert!(
        line(&out, "shop/pinned").contains("198.51.100.7")
            && line(&out, "shop/pinned").contains("no pool"),
        "{out}"
    );
    assert!(line(&out, "shop/other-class").contains("ignored"), "{out}");
    assert!(
        out.contains("pool small: IPv4 2 assigned, 0 available"),
        "{out}"
    );
}

#[test]
fn json_output_is_machine_readable_and_order_independent() {
    let (ok, out, err) = ferrolb(&["plan", "--output", "json", FIXTURE]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        v["services"]["shop/first"]["result"]["assignment"]["ips"][0],
        "203.0.113.10"
    );
    assert!(
        v["services"]["shop/third"]["result"]["error"].is_string()
            || v["services"]["shop/third"]["result"]["error"].is_object()
    );
    // Same objects in reverse document order: same plan.
    let text = std::fs::read_to_string(format!("{FIXTURE}/all.yaml")).unwrap();
    let reversed: Vec<&str> = text
        .split("\n---\n")
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let dir = std::env::temp_dir().join(format!("ferrolb-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("all.yaml"), reversed.join("\n---\n")).unwrap();
    let (_, again, _) = ferrolb(&["plan", "--output", "json", dir.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(
        v,
        serde_json::from_str::<serde_json::Value>(&again).unwrap()
    );
}

#[test]
fn invalid_manifests_plan_nothing() {
    let (ok, _, err) = ferrolb(&[
        "plan",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../crds/tests/fixtures/invalid"
        ),
    ]);
    assert!(!ok);
    assert!(err.contains("nothing was planned"), "{err}");
}
