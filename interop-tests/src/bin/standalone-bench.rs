//! Benchmark: Service changes in standalone mode → route present/absent at FRR. One node runs
//! `speaker-standalone` (the code of `ferrolb standalone`, default settings) against FRR with zebra; the
//! benchmark adds N/2 Services one at a time, then deletes them one at a time, each a manifest file
//! written (or removed) atomically, and times each change from the file operation to the moment FRR
//! installs (or removes) the /32 in the router's kernel, seen on `ip monitor route`. Prints p50/p99/max
//! for additions, deletions and all, and one JSON line.
//!
//! Run as root: `cargo run --release -p ferrolb-interop-tests --bin standalone-bench -- --changes 200`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferrolb_interop_tests::frr::{Frr, FrrConfig, FrrNeighbor, BGPD, ZEBRA};
use ferrolb_interop_tests::manifests::{write_atomically, TestService};
use ferrolb_interop_tests::{guard, LinkedPair, Result};

const LIMIT: Duration = Duration::from_secs(30);

fn write(dir: &Path, name: &str, text: &str) {
    write_atomically(dir, name, text).unwrap();
}

/// Service `svc-i` with its IP pinned, so that deleting others never moves it.
fn service(i: usize) -> String {
    let name = format!("svc-{i}");
    let cluster_ip = format!("10.96.1.{}", i % 250 + 1);
    let ip = ip(i);
    TestService {
        annotations: &[("ferrolb.io/loadBalancerIPs", &ip)],
        endpoints_on: &["node1"],
        ..TestService::new("bench", &name, &cluster_ip)
    }
    .yaml()
}

fn ip(i: usize) -> String {
    format!("203.0.113.{}", 10 + i)
}

const CONFIG: &str = r#"apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: bench, namespace: ferrolb-system}
spec: {addresses: ["203.0.113.0/24"]}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bench, namespace: ferrolb-system}
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: tor, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64500, peerAddress: "198.51.100.2", connectTime: 1s}
---
apiVersion: v1
kind: Node
metadata: {name: node1}
"#;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(name: &str, ms: &mut [f64]) -> serde_json::Value {
    ms.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99, max) = (percentile(ms, 50.0), percentile(ms, 99.0), ms[ms.len() - 1]);
    println!(
        "{name:>10}: n={:<4} p50 {p50:7.1} ms   p99 {p99:7.1} ms   max {max:7.1} ms",
        ms.len()
    );
    serde_json::json!({"n": ms.len(), "p50_ms": p50, "p99_ms": p99, "max_ms": max})
}

fn main() -> Result<()> {
    let mut changes = 200usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--changes" => changes = args.next().and_then(|v| v.parse().ok()).unwrap_or(changes),
            other => panic!("unknown argument {other} (use --changes N)"),
        }
    }
    let services = changes.div_ceil(2).min(240);
    if !guard(&[BGPD, ZEBRA]) {
        return Ok(());
    }
    let pair = LinkedPair::new()?; // a = node1 (198.51.100.1), b = tor (198.51.100.2)
    let frr = Frr::start(
        &pair.b,
        &FrrConfig::new(64500, &pair.b_v4).with_zebra().neighbor(
            FrrNeighbor::new(&pair.a_v4, 64512)
                .ipv4()
                .connect_retry(Some(1)),
        ),
    )?;
    let dir = tempfile::tempdir()?;
    write(dir.path(), "config.yaml", CONFIG);
    let logs = tempfile::tempdir()?;
    let speaker_bin = ferrolb_interop_tests::process::sibling_binary("speaker-standalone", None);
    let mut speaker = pair.a.spawn_logged(
        [
            speaker_bin.to_str().unwrap(),
            "--node-name",
            "node1",
            "--manifests",
            dir.path().to_str().unwrap(),
        ],
        &logs.path().join("speaker.log"),
    )?;
    frr.wait_established(&pair.a_v4, LIMIT)?;

    // Route events from the router's kernel, stamped on arrival.
    let mut monitor = pair
        .b
        .exec(["ip", "monitor", "route"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let out = monitor.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    while rx.try_recv().is_ok() {}

    let wait = |want: &str, deleted: bool, since: Instant| -> Result<f64> {
        loop {
            let (at, line) = rx.recv_timeout(LIMIT).map_err(|_| {
                ferrolb_interop_tests::Error::msg(format!("no route event for {want}"))
            })?;
            let is_delete = line.starts_with("Deleted ");
            let dst = line
                .trim_start_matches("Deleted ")
                .split_whitespace()
                .next();
            if dst == Some(want) && is_delete == deleted {
                return Ok(at.duration_since(since).as_secs_f64() * 1000.0);
            }
        }
    };

    let mut adds = Vec::new();
    let mut deletes = Vec::new();
    for i in 0..services {
        let start = Instant::now();
        write(dir.path(), &format!("svc-{i}.yaml"), &service(i));
        adds.push(wait(&ip(i), false, start)?);
    }
    for i in 0..services {
        let start = Instant::now();
        std::fs::remove_file(dir.path().join(format!("svc-{i}.yaml")))?;
        deletes.push(wait(&ip(i), true, start)?);
    }
    let _ = monitor.kill();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &speaker.id().to_string()])
        .status();
    let _ = speaker.wait();

    println!(
        "standalone: file change -> route in/out of FRR's kernel table ({} changes)",
        adds.len() + deletes.len()
    );
    let mut all: Vec<f64> = adds.iter().chain(&deletes).copied().collect();
    let a = summary("add", &mut adds);
    let d = summary("delete", &mut deletes);
    let t = summary("all", &mut all);
    println!(
        "{}",
        serde_json::json!({"bench": "standalone-latency", "changes": all.len(), "add": a, "delete": d, "all": t, "target_p99_ms": 200})
    );
    Ok(())
}
