//! `ferrolb-lab`: the lab (see `ferrolb_interop_tests::lab`). Run it through `./lab.sh`, which installs
//! what is missing and builds everything first.
//!
//! ```text
//! ferrolb-lab [up] [--speaker PATH [--speaker-arg ARG]...]   build the topology, show ferrolb working, clean up
//! ferrolb-lab down                                           remove what an interrupted run left behind
//! ferrolb-lab serve-http TEXT | http-get SOURCE IP           (used inside the namespaces)
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use ferrolb_interop_tests::lab::{self, say, Lab};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("up") => up(args.get(1..).unwrap_or_default()),
        Some("down") => {
            let n = ferrolb_interop_tests::netns::reap_stale_namespaces();
            say(&format!("removed {n} namespace(s) left by an earlier run"));
            ExitCode::SUCCESS
        }
        Some("serve-http") => match args.get(1).map(|t| lab::serve_http(t)) {
            Some(Ok(())) => ExitCode::SUCCESS,
            Some(Err(e)) => {
                eprintln!("serve-http: {e}");
                ExitCode::FAILURE
            }
            None => ExitCode::from(2),
        },
        Some("http-get") => match (args.get(1), args.get(2)) {
            (Some(src), Some(ip)) => match lab::http_get(src, ip) {
                Ok(body) => {
                    println!("{body}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("http-get {ip} from {src}: {e}");
                    ExitCode::FAILURE
                }
            },
            _ => ExitCode::from(2),
        },
        Some(other) => {
            eprintln!("ferrolb-lab: unknown command {other:?} (up, down)");
            ExitCode::from(2)
        }
    }
}

fn up(args: &[String]) -> ExitCode {
    let me = std::env::current_exe().expect("own path");
    let dir = me.parent().expect("own directory").to_owned();
    let mut speaker: PathBuf = dir.join("ferrolb");
    let mut speaker_args: Vec<String> = vec!["standalone".into()];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--speaker", Some(p)) => {
                speaker = PathBuf::from(p);
                speaker_args.clear();
            }
            ("--speaker-arg", Some(v)) => speaker_args.push(v.clone()),
            _ => {
                eprintln!("ferrolb-lab up: unexpected argument {a:?}");
                return ExitCode::from(2);
            }
        }
    }
    if let Err(missing) = lab::preflight() {
        eprintln!("The lab cannot run on this machine:");
        for m in missing {
            eprintln!("  - {m}");
        }
        eprintln!(
            "It needs root, network namespace support (ip netns), iproute2 and FRR (bgpd, zebra)."
        );
        return ExitCode::from(2);
    }
    if !speaker.exists() {
        eprintln!("ferrolb-lab: no speaker binary at {} (build it: cargo build --release -p ferrolb-speaker)", speaker.display());
        return ExitCode::from(2);
    }
    let stale = ferrolb_interop_tests::netns::reap_stale_namespaces();
    if stale > 0 {
        say(&format!(
            "(removed {stale} namespace(s) left by an earlier run)"
        ));
    }
    say("ferrolb lab: one FRR router (AS 64500, ECMP), 3 nodes running `ferrolb standalone`, a client,");
    say("and a layer-2 segment, all in network namespaces of this machine.");
    let prefix: Vec<&str> = speaker_args.iter().map(String::as_str).collect();
    let mut lab = match Lab::up(&me, &speaker, &prefix) {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("ferrolb-lab: building the topology failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = lab.run();
    drop(lab);
    say("\n(the lab's namespaces and processes are removed)");
    match result {
        Ok(report) if report.backends.len() >= 2 && report.ecmp_next_hops.len() == lab::NODES => {
            ExitCode::SUCCESS
        }
        Ok(report) => {
            eprintln!("ferrolb-lab: the lab ran but did not show what it should: {report:?}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("ferrolb-lab: {e}");
            ExitCode::FAILURE
        }
    }
}
