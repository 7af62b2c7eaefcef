//! Allocator benchmark: N Services into 100.64.0.0/10, then a restart.
//!
//! ```sh
//! cargo run --release -p ferrolb-allocator --example bench -- --sizes 10000,100000,1000000
//! ```
//!
//! Each size runs in its own child process, so the peak memory (`VmHWM`) is that size's alone. Per size:
//! - **allocate**: a fresh allocator reconciles N new Services one by one (the controller path);
//! - **restart**: a fresh allocator imports all N statuses (sorted as on start-up) and reconciles every
//!   Service again; it must change nothing;
//! - **allocate_all**: the standalone whole-state function on the N Services with their statuses; it must
//!   return the same assignments.
//!
//! Building the N input objects is not timed, but its memory is part of the peak; nor is sorting them into
//! start-up order for the restart (the caller's work; reported as `caller_sort_s`). Dropping the allocator
//! is timed only inside `allocate_all`, which builds and drops one. The last line is JSON.

use std::net::IpAddr;
use std::process::Command;
use std::time::Instant;

use ferrolb_allocator::{
    allocate_all, Allocator, PoolConfig, Reconciled, ServicePort, ServiceView,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let n: usize = args[i + 1].parse().expect("size");
        println!("{}", run(n));
        return;
    }
    let sizes: Vec<usize> = match args.iter().position(|a| a == "--sizes") {
        Some(i) => args[i + 1]
            .split(',')
            .map(|s| s.trim().replace('_', "").parse().expect("size"))
            .collect(),
        None => vec![10_000, 100_000, 1_000_000],
    };
    let exe = std::env::current_exe().expect("own path");
    println!("ferrolb-allocator bench: N Services into 100.64.0.0/10 (one child process per size)");
    println!(
        "{:>10} {:>12} {:>12} {:>14} {:>14} {:>12}",
        "services", "allocate s", "restart s", "allocate_all s", "µs/svc (alloc)", "peak MiB"
    );
    let mut results = Vec::new();
    for n in sizes {
        let out = Command::new(&exe)
            .args(["--child", &n.to_string()])
            .output()
            .expect("run child");
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).expect("utf-8");
        let v: serde_json::Value = serde_json::from_str(line.trim()).expect("child JSON");
        println!(
            "{:>10} {:>12.3} {:>12.3} {:>14.3} {:>14.2} {:>12.1}",
            n,
            v["allocate_s"].as_f64().unwrap(),
            v["restart_s"].as_f64().unwrap(),
            v["allocate_all_s"].as_f64().unwrap(),
            v["allocate_s"].as_f64().unwrap() * 1e6 / n as f64,
            v["peak_rss_kib"].as_f64().unwrap() / 1024.0,
        );
        results.push(v);
    }
    println!(
        "{}",
        serde_json::json!({ "bench": "allocator", "pool": "100.64.0.0/10", "results": results })
    );
}

/// One size, in this (child) process.
fn run(n: usize) -> serde_json::Value {
    let pools = vec![PoolConfig::new("bench", &["100.64.0.0/10"])];
    let mut services: Vec<ServiceView> = (0..n)
        .map(|i| {
            let mut s = ServiceView::load_balancer(format!("ns-{}", i % 1000), format!("svc-{i}"));
            s.ports = vec![ServicePort::tcp(80)];
            s
        })
        .collect();

    // Allocate: the controller reconciling N new Services.
    let start = Instant::now();
    let mut live = Allocator::new(None);
    live.set_pools(pools.clone()).expect("pool");
    for s in &services {
        match live.reconcile(s) {
            Reconciled::Handled { result: Ok(_), .. } => {}
            other => panic!("{}: {other:?}", s.key()),
        }
    }
    let allocate_s = start.elapsed().as_secs_f64();
    assert_eq!(live.len(), n);

    // The controller writes the statuses, then restarts (the old allocator is gone).
    for s in &mut services {
        s.ingress_ips = live.assignment(&s.key()).expect("assigned").ips;
    }
    let stats = live.pool_stats("bench").expect("pool");
    drop(live);

    // Restart: import every status first (more ingress IPs first, then by key), then reconcile everything.
    // Putting the Services in that order is the caller's work (the controller sorts its own objects), so it
    // is timed on its own, not as part of the restart.
    let start = Instant::now();
    let mut order: Vec<&ServiceView> = services.iter().collect();
    order.sort_by(|a, b| {
        (b.ingress_ips.len(), &a.namespace, &a.name).cmp(&(
            a.ingress_ips.len(),
            &b.namespace,
            &b.name,
        ))
    });
    let caller_sort_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut restarted = Allocator::new(None);
    restarted.set_pools(pools.clone()).expect("pool");
    restarted.reserve(services.len()); // the controller knows how many Services it listed
    for s in order {
        restarted.import(s);
    }
    let mut changed = 0usize;
    for s in &services {
        let ips: Option<Vec<IpAddr>> = restarted.reconcile(s).assignment().map(|a| a.ips.clone());
        changed += usize::from(ips.as_ref() != Some(&s.ingress_ips));
    }
    let restart_s = start.elapsed().as_secs_f64();
    assert_eq!(changed, 0, "a restart changed assignments");
    drop(restarted);

    // Standalone: the whole-state function on the same objects.
    let start = Instant::now();
    let all = allocate_all(&pools, None, &services).expect("pool");
    let allocate_all_s = start.elapsed().as_secs_f64();
    let changed_all = services
        .iter()
        .filter(|s| {
            all.get(&s.key())
                .and_then(|r| r.as_ref().ok())
                .map(|a| &a.ips)
                != Some(&s.ingress_ips)
        })
        .count();
    assert_eq!(changed_all, 0, "allocate_all changed assignments");

    serde_json::json!({
        "services": n,
        "allocate_s": allocate_s,
        "restart_s": restart_s,
        "caller_sort_s": caller_sort_s,
        "allocate_all_s": allocate_all_s,
        "changed_after_restart": changed,
        "changed_by_allocate_all": changed_all,
        "assigned_ipv4": stats.assigned_ipv4,
        "available_ipv4": stats.available_ipv4,
        "peak_rss_kib": peak_rss_kib(),
    })
}

/// `VmHWM` of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
