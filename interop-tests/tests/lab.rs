//! The lab (`./lab.sh` → `ferrolb-lab`) run as a test, so that what it shows cannot rot: the BGP
//! sessions, the router's ECMP route with one next hop per node, answers from several backends, and
//! the failover of both the BGP route and the layer-2 VIP. It uses `speaker-standalone`, the same code
//! as `ferrolb standalone`.

use std::process::Command;

use ferrolb_interop_tests::frr::{BGPD, ZEBRA};
use ferrolb_interop_tests::interop_guard;

#[test]
fn the_lab_shows_ecmp_several_backends_and_both_failovers() {
    interop_guard!(BGPD, ZEBRA);
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb-lab"))
        .args(["up", "--speaker", env!("CARGO_BIN_EXE_speaker-standalone")])
        .output()
        .expect("run ferrolb-lab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "lab failed:\n{stdout}\n{stderr}");

    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("no line `{prefix}` in:\n{stdout}"))
    };
    let mut hops: Vec<String> = line("ECMP next hops at the router: ")
        .split(", ")
        .map(str::to_owned)
        .collect();
    hops.sort();
    assert_eq!(hops, ["198.51.100.10", "198.51.100.2", "198.51.100.6"]);
    let backends: usize = line("backends answering the BGP VIP: ").parse().unwrap();
    assert!(backends >= 2, "{backends} backend(s)");
    let bgp = line("failover: BGP converged in ");
    assert!(bgp.ends_with(" s"), "{bgp}");
    let l2 = line("failover: layer-2 VIP moved from ");
    assert!(l2.contains(" to node") && l2.ends_with(" s"), "{l2}");
    assert!(stdout.contains("hello from node"), "{stdout}");
    assert!(
        stdout.contains("the lab's namespaces and processes are removed"),
        "{stdout}"
    );
    // After the failover both VIPs still answer.
    assert!(stdout.contains("http://203.0.113.200/ now: hello from node"));
    assert!(stdout.contains("http://198.51.100.200/ now: hello from node"));
}
