//! Benchmark: announce N /32 routes to FRR and measure the time until FRR holds all N, once with the
//! ferrolb speaker and once, in the same run and against the same FRR set-up, with GoBGP as the feeder.
//! Prints both times, their ratio, each feeder's CPU seconds and peak RSS, and one JSON line.
//!
//! Run as root via `scripts/bench.sh [--routes N]` (it builds this and the speaker harness in release).
//! Times run from the moment the session is Established to the moment FRR reports N prefixes received:
//! ferrolb's Established comes from its own event stream, GoBGP's from polling its CLI every few
//! milliseconds, and FRR is polled the same way for both.

use ferrolb_interop_tests::frr::{Frr, FrrConfig, FrrNeighbor, BGPD};
use ferrolb_interop_tests::gobgp::{Gobgp, GobgpConfig, GobgpNeighbor, GOBGPD};
use ferrolb_interop_tests::speaker::{harness_binary, Speaker};
use ferrolb_interop_tests::{guard, proc_stats, LinkedPair, Result};
use serde_json::json;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const FEEDER_AS: u32 = 64512;
const FRR_AS: u32 = 64500;
const BULK: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
const LIMIT: Duration = Duration::from_secs(300);

struct Run {
    seconds: f64,
    cpu_seconds: f64,
    peak_rss_mib: f64,
}

/// Polls FRR until it holds `n` prefixes from `from`; returns when that was first seen.
fn wait_all(frr: &Frr, from: &str, n: u64) -> Result<Instant> {
    let start = Instant::now();
    loop {
        if let Ok(s) = frr.summary() {
            if s.peer(from).is_some_and(|p| p.pfx_rcd >= n) {
                return Ok(Instant::now());
            }
        }
        if start.elapsed() > LIMIT {
            return Err(ferrolb_interop_tests::Error::msg(format!(
                "FRR did not reach {n} prefixes in {LIMIT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn frr(pair: &LinkedPair, neighbor: FrrNeighbor) -> Result<Frr> {
    // bgpd alone (no zebra): the figure is BGP reception, not kernel installation.
    Frr::start(
        &pair.b,
        &FrrConfig::new(FRR_AS, &pair.b_v4).neighbor(neighbor),
    )
}

fn ferrolb(n: u32) -> Result<Run> {
    let pair = LinkedPair::new()?;
    let frr = frr(&pair, FrrNeighbor::new(&pair.a_v4, FEEDER_AS).ipv4())?;
    let config = json!({
        "peer": pair.b_v4, "local_asn": FEEDER_AS, "peer_asn": FRR_AS, "router_id": pair.a_v4,
        "routes": {"v4_start": BULK, "v4_count": n},
    });
    let speaker = Speaker::start(&pair.a, &harness_binary(), &config)?;
    speaker.wait_line("Established", LIMIT, |v| {
        v["event"] == "state" && v["state"] == "Established"
    })?;
    let established = speaker.state_event("Established", 1).expect("seen");
    let done = wait_all(&frr, &pair.a_v4, u64::from(n))?;
    let stats = proc_stats::read(speaker.pid())?;
    speaker.shutdown("benchmark done")?;
    Ok(Run {
        seconds: (done - established).as_secs_f64(),
        cpu_seconds: stats.cpu_seconds,
        peak_rss_mib: stats.peak_rss_kib as f64 / 1024.0,
    })
}

fn gobgp(n: u32) -> Result<Run> {
    let pair = LinkedPair::new()?;
    // GoBGP listens and FRR dials (GoBGP's own dialling is slow to start; see the harness notes).
    let cfg = GobgpConfig::new(FEEDER_AS, &pair.a_v4)
        .listen_port(179)
        .local_address(&pair.a_v4)
        .neighbor(GobgpNeighbor::new(&pair.b_v4, FRR_AS).passive());
    let gobgp = Gobgp::start(&pair.a, &cfg)?;
    gobgp.disable_neighbor(&pair.b_v4)?;
    gobgp.load_host_routes_v4(BULK, n, Ipv4Addr::UNSPECIFIED)?;
    let frr = frr(&pair, FrrNeighbor::new(&pair.a_v4, FEEDER_AS).ipv4())?;
    let cpu_before = proc_stats::read(gobgp.pid())?.cpu_seconds;
    gobgp.enable_neighbor(&pair.b_v4)?;
    let start = Instant::now();
    let established = loop {
        if gobgp.neighbor_state(&pair.b_v4).ok() == Some("established") {
            break Instant::now();
        }
        if start.elapsed() > LIMIT {
            return Err(ferrolb_interop_tests::Error::msg(
                "GoBGP never reached Established",
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let done = wait_all(&frr, &pair.a_v4, u64::from(n))?;
    let stats = proc_stats::read(gobgp.pid())?;
    Ok(Run {
        seconds: (done - established).as_secs_f64(),
        // Loading the table into GoBGP is set-up, not announcing: count only the CPU spent after.
        cpu_seconds: stats.cpu_seconds - cpu_before,
        peak_rss_mib: stats.peak_rss_kib as f64 / 1024.0,
    })
}

fn main() {
    let mut n: u32 = 100_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--routes" => {
                n = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--routes N")
            }
            "-h" | "--help" => {
                println!("usage: bgp-bench [--routes N]   (as root; default N = 100000)");
                return;
            }
            other => panic!("unknown argument {other}"),
        }
    }
    if !guard(&[BGPD, GOBGPD]) {
        std::process::exit(2);
    }
    let ours = ferrolb(n).unwrap_or_else(|e| panic!("ferrolb run: {e}"));
    let theirs = gobgp(n).unwrap_or_else(|e| panic!("GoBGP run: {e}"));
    let ratio = ours.seconds / theirs.seconds;
    println!("{n} /32 routes to FRR 8.4, time from Established until FRR holds all of them:");
    println!(
        "  ferrolb  {:>8.3} s   CPU {:>6.2} s   peak RSS {:>7.1} MiB",
        ours.seconds, ours.cpu_seconds, ours.peak_rss_mib
    );
    println!(
        "  GoBGP    {:>8.3} s   CPU {:>6.2} s   peak RSS {:>7.1} MiB",
        theirs.seconds, theirs.cpu_seconds, theirs.peak_rss_mib
    );
    println!("  ratio ferrolb/GoBGP: {ratio:.2} (target ≤ 1.0); ferrolb peak RSS target ≤ 64 MiB");
    println!(
        "{}",
        json!({
            "routes": n,
            "ferrolb_seconds": ours.seconds,
            "gobgp_seconds": theirs.seconds,
            "ratio": ratio,
            "ferrolb_cpu_seconds": ours.cpu_seconds,
            "ferrolb_peak_rss_mib": ours.peak_rss_mib,
            "gobgp_cpu_seconds": theirs.cpu_seconds,
            "gobgp_peak_rss_mib": theirs.peak_rss_mib,
        })
    );
}
