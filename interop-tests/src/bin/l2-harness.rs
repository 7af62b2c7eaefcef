//! The ferrolb layer-2 announcer (ARP/NDP responders) as a standalone process, for interop tests: it runs
//! inside a test network namespace (`ip netns exec NS l2-harness [OPTIONS-JSON]`), takes commands as JSON
//! lines on stdin and prints JSON lines on stdout.
//!
//! Options (all optional): `{"garp_interval_ms": 1100, "garp_for_ms": 5000, "rescan_ms": 10000,
//! "exclude": ["^docker.*", …]}` (defaults: `L2Options::default()`).
//!
//! Commands:
//! - `{"apply": {"203.0.113.10": ["eth0"], "2001:db8::10": "all"}}`: the whole desired state (a list of
//!   interface names is `Interfaces::Only`, `"all"` is `Interfaces::All`); answers
//!   `{"applied": {"<ip>": ["<if>", …]}, "errors": ["<item>: <problem>", …]}` (where each IP is answered
//!   now, and the item errors).
//! - `{"stats": null}`: answers `{"stats": {"<ip>": {"requests_received": n, "responses_sent": n,
//!   "gratuitous_sent": n}}}`.
//! - `{"shutdown": null}`: stops everything and exits.
//!
//! Prints `{"ready": true}` once started, `{"error": "…"}` for a command it cannot read, and
//! `{"done": "shutdown"}` before exiting — also on stdin EOF and on SIGTERM.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_speaker::announce::l2::{
    Interfaces, L2Announcement, L2Announcer, L2Desired, L2Options,
};
use ferrolb_speaker::announce::Announcer;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::signal::unix::{signal, SignalKind};

fn say(v: Value) {
    println!("{v}");
}

fn options(arg: Option<String>) -> Result<L2Options, String> {
    let mut o = L2Options::default();
    let Some(arg) = arg else { return Ok(o) };
    let v: Value = serde_json::from_str(&arg).map_err(|e| format!("options JSON: {e}"))?;
    let ms = |k: &str| v.get(k).and_then(Value::as_u64).map(Duration::from_millis);
    if let Some(d) = ms("garp_interval_ms") {
        o.garp_interval = d;
    }
    if let Some(d) = ms("garp_for_ms") {
        o.garp_for = d;
    }
    if let Some(d) = ms("rescan_ms") {
        o.interface_rescan = d;
    }
    if let Some(list) = v.get("exclude").and_then(Value::as_array) {
        let pats: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
        o.exclude = L2Options::exclude_patterns(&pats).map_err(|e| format!("exclude: {e}"))?;
    }
    Ok(o)
}

fn desired(v: &Value) -> Result<L2Desired, String> {
    let obj = v
        .as_object()
        .ok_or("apply: want an object of IP → interfaces")?;
    let mut out = L2Desired::new();
    for (ip, ifs) in obj {
        let ip: IpAddr = ip.parse().map_err(|e| format!("apply: {ip}: {e}"))?;
        let interfaces = match ifs {
            Value::String(s) if s == "all" => Interfaces::All,
            Value::Array(a) => Interfaces::Only(
                a.iter()
                    .map(|n| n.as_str().map(str::to_owned))
                    .collect::<Option<BTreeSet<_>>>()
                    .ok_or("apply: interface names must be strings")?,
            ),
            other => return Err(format!("apply: {ip}: want \"all\" or a list, got {other}")),
        };
        out.insert(
            ip,
            L2Announcement {
                services: BTreeSet::new(),
                interfaces,
            },
        );
    }
    Ok(out)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    ferrolb_speaker::logging::init(false);
    let opts = match options(std::env::args().nth(1)) {
        Ok(o) => o,
        Err(e) => {
            say(json!({ "error": e }));
            std::process::exit(2);
        }
    };
    let mut announcer = match L2Announcer::new(opts) {
        Ok(a) => a,
        Err(e) => {
            say(json!({ "error": e.to_string() }));
            std::process::exit(1);
        }
    };
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    say(json!({ "ready": true }));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = tokio::select! {
            l = lines.next_line() => match l {
                Ok(Some(l)) => l,
                _ => break,
            },
            _ = term.recv() => break,
        };
        if line.trim().is_empty() {
            continue;
        }
        let cmd: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                say(json!({ "error": format!("command JSON: {e}") }));
                continue;
            }
        };
        if let Some(want) = cmd.get("apply") {
            match desired(want) {
                Ok(d) => {
                    let errors = announcer.apply(&d).await;
                    let applied: BTreeMap<String, Vec<String>> = announcer
                        .announced()
                        .into_iter()
                        .map(|(ip, ifs)| (ip.to_string(), ifs.into_iter().collect()))
                        .collect();
                    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    say(json!({ "applied": applied, "errors": errors }));
                }
                Err(e) => say(json!({ "error": e })),
            }
        } else if cmd.get("stats").is_some() {
            let stats: BTreeMap<String, Value> = announcer
                .stats()
                .per_ip
                .into_iter()
                .map(|(ip, s)| {
                    (
                        ip.to_string(),
                        json!({
                            "requests_received": s.requests_received,
                            "responses_sent": s.responses_sent,
                            "gratuitous_sent": s.gratuitous_sent,
                        }),
                    )
                })
                .collect();
            say(json!({ "stats": stats }));
        } else if cmd.get("shutdown").is_some() {
            break;
        } else {
            say(json!({ "error": format!("unknown command {cmd}") }));
        }
    }
    announcer.shutdown().await;
    say(json!({ "done": "shutdown" }));
    // Exit now: tokio's stdin reader is a blocking thread still waiting in read(2) after SIGTERM, and
    // dropping the runtime would wait for it.
    std::process::exit(0);
}
