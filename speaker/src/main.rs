//! `ferrolb`: the single binary of the project. Subcommands arrive with their issues; today it runs the
//! controller, lints manifests, plans allocations, writes the CRDs and reports its version.

use std::path::PathBuf;
use std::process::ExitCode;

use ferrolb_crds::{check, crdgen};

mod controller;
mod speaker_cmd;

const USAGE: &str = "ferrolb — a bare-metal Kubernetes LoadBalancer

usage: ferrolb <command>

commands:
  check <dir|file>...         lint ferrolb.io manifests offline: every problem, one line each
                              (file: Kind namespace/name: field: problem); exit status 1 if any
  crds [--output DIR | --reference FILE] [--check]
                              write the CustomResourceDefinitions, one YAML file per kind, into DIR
                              (default deploy/crds); with --check, write nothing and exit 1 if the
                              files in DIR differ from what this binary generates; with
                              --reference, the configuration reference (Markdown) instead
  plan [--output table|json] [--class NAME] <dir|file>...
                              print, touching nothing, the IP(s) and pool each Service in the
                              manifests would get, and why a Service gets none
  controller [--namespace NS] [--class NAME] [--metrics-addr ADDR] [--lease-name NAME]
             [--lease-duration D] [--lease-renew-deadline D] [--lease-retry-period D]
             [--no-leader-election] [--log-format text|json]
                              run the IP allocator against the Kubernetes API server (in-cluster
                              or KUBECONFIG): watch Services and ferrolb.io objects in NS (default
                              $POD_NAMESPACE or ferrolb-system), write Service status, events and
                              pool status while holding the Lease NAME (default ferrolb-controller,
                              ferrolb-controller-CLASS with --class); the Lease is taken over when
                              unchanged for D (default 15s), the leader steps down when it cannot
                              renew within D (default 10s), renewals and standby looks every D
                              (default 1s); a crashed leader is replaced within 16s, one that
                              stops within 1s; /metrics, /healthz, /readyz on ADDR (default
                              0.0.0.0:7472)
  speaker [--node-name NODE] [--namespace NS] [--speaker-pods SELECTOR] [--metrics-addr ADDR]
          [--memberlist-secret-file PATH [--memberlist-port N] [--pod-ip IP]] [--log-format text|json]
                              run the per-node speaker against the Kubernetes API server: announce
                              this node's share of the Service IPs (BGP, layer 2), report it in the
                              SpeakerState named after the node and in events on the Services;
                              NODE defaults to $NODE_NAME, NS to $POD_NAMESPACE or ferrolb-system;
                              with a memberlist secret, speakers (the pods matching SELECTOR) track
                              each other's liveness over UDP port N (default 7946) for layer 2
  standalone --node-name NODE --manifests PATH [--manifests PATH]... [--class NAME]
             [--metrics-addr ADDR] [--poll-ms N] [--log-format text|json]
             [--memberlist-bind ADDR:PORT --memberlist-secret-file PATH [--memberlist-peer ADDR:PORT]...]
                              run the speaker without Kubernetes: read ferrolb.io objects,
                              Services, EndpointSlices and Nodes from YAML files, allocate, and
                              announce this node's share over BGP; follow every file change
                              (an invalid edit is reported, the last good state stays); with a
                              memberlist, speakers track each other's liveness (layer-2 failover);
                              peers default to every Node manifest's InternalIP
  version                     print the version
  help                        print this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("version") | Some("--version") | Some("-V") => {
            println!("ferrolb {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        None | Some("help") | Some("--help") | Some("-h") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("check") => run_check(&args[1..]),
        Some("crds") => run_crds(&args[1..]),
        Some("plan") => run_plan(&args[1..]),
        Some("controller") => controller::run(&args[1..]),
        Some("standalone") => ferrolb_speaker::standalone::cli(&args[1..]),
        Some("speaker") => speaker_cmd::run(&args[1..]),
        Some(other) => usage_error(&format!("unknown command '{other}'")),
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("ferrolb: {message}\n\n{USAGE}");
    ExitCode::from(2)
}

/// `ferrolb check <dir|file>...`
fn run_check(args: &[String]) -> ExitCode {
    if args.is_empty() {
        return usage_error("check needs at least one directory or file");
    }
    if let Some(flag) = args.iter().find(|a| a.starts_with('-') && a.len() > 1) {
        return usage_error(&format!("check takes no option '{flag}'"));
    }
    let paths: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
    let report = check::check_paths(&paths);
    for line in &report.problems {
        println!("{line}");
    }
    if report.is_ok() {
        println!("{}", report.summary);
        ExitCode::SUCCESS
    } else {
        eprintln!("{}", report.summary);
        ExitCode::FAILURE
    }
}

/// `ferrolb crds [--output DIR] [--check]`
fn run_crds(args: &[String]) -> ExitCode {
    let mut dir = PathBuf::from(crdgen::DEFAULT_CRD_DIR);
    let mut check_only = false;
    let mut reference: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--output" | "-o" => match it.next() {
                Some(d) => dir = PathBuf::from(d),
                None => return usage_error("--output needs a directory"),
            },
            "--check" => check_only = true,
            "--reference" => match it.next() {
                Some(f) => reference = Some(PathBuf::from(f)),
                None => return usage_error("--reference needs a file"),
            },
            other => match other.strip_prefix("--output=") {
                Some(d) => dir = PathBuf::from(d),
                None => return usage_error(&format!("crds takes no argument '{other}'")),
            },
        }
    }
    if let Some(file) = reference {
        let text = crdgen::reference_markdown();
        if check_only {
            let same = std::fs::read_to_string(&file).is_ok_and(|t| t == text);
            if same {
                println!("{}: up to date", file.display());
                return ExitCode::SUCCESS;
            }
            println!(
                "{}: missing or differs from the generated reference",
                file.display()
            );
            eprintln!(
                "run `ferrolb crds --reference {}` to regenerate",
                file.display()
            );
            return ExitCode::FAILURE;
        }
        return match std::fs::write(&file, text) {
            Ok(()) => {
                println!("wrote {}", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ferrolb: cannot write {}: {e}", file.display());
                ExitCode::FAILURE
            }
        };
    }
    if check_only {
        let stale = crdgen::stale_crds(&dir);
        if stale.is_empty() {
            println!("{}: CRDs are up to date", dir.display());
            return ExitCode::SUCCESS;
        }
        for path in &stale {
            println!(
                "{}: missing or differs from the generated CRD",
                path.display()
            );
        }
        eprintln!(
            "run `ferrolb crds --output {}` to regenerate",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    match crdgen::write_crds(&dir) {
        Ok(written) => {
            for path in written {
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ferrolb: cannot write CRDs into {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

/// `ferrolb plan [--output table|json] [--class NAME] <dir|file>...`: the IPs and pool every Service would
/// get from these manifests, and why a Service gets none. Reads only; touches nothing.
fn run_plan(args: &[String]) -> ExitCode {
    let mut json = false;
    let mut class: Option<String> = None;
    let mut paths = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--output" | "-o" => match it.next().map(String::as_str) {
                Some("json") => json = true,
                Some("table") => json = false,
                other => {
                    return usage_error(&format!(
                        "plan --output takes table or json, not {other:?}"
                    ))
                }
            },
            "--class" => match it.next() {
                Some(c) => class = Some(c.clone()),
                None => return usage_error("plan --class needs a class name"),
            },
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return usage_error(&format!("plan takes no option '{flag}'"))
            }
            path => paths.push(PathBuf::from(path)),
        }
    }
    if paths.is_empty() {
        return usage_error("plan needs at least one directory or file");
    }
    let (objects, load_errors) = ferrolb_crds::load_paths(&paths);
    let config = ferrolb_crds::validate(&objects);
    if !load_errors.is_empty() || config.is_err() {
        for e in &load_errors {
            eprintln!("{e}");
        }
        for e in config.as_ref().err().into_iter().flatten() {
            eprintln!("{}", e.line());
        }
        eprintln!("plan: the manifests are not valid (see `ferrolb check`); nothing was planned");
        return ExitCode::FAILURE;
    }
    let config = config.expect("checked above");
    let pools: Vec<_> = config
        .pools
        .iter()
        .map(ferrolb_allocator::adapt::pool_config)
        .collect();
    let services: Vec<_> = objects
        .services
        .iter()
        .map(|s| ferrolb_allocator::adapt::service_view(s, &objects.namespaces))
        .collect();
    let plan = match ferrolb_allocator::plan(&pools, class.as_deref(), &services) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("plan: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("plan serialises")
        );
        return ExitCode::SUCCESS;
    }
    let mut rows = vec![[
        "SERVICE".to_owned(),
        "IPS".to_owned(),
        "POOL".to_owned(),
        "NOTE".to_owned(),
    ]];
    for (key, planned) in &plan.services {
        rows.push(match &planned.result {
            Ok(a) => [
                key.to_string(),
                a.ips
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                a.pool.clone().unwrap_or_else(|| "-".to_owned()),
                a.stranded
                    .as_ref()
                    .map_or(String::new(), |r| format!("kept, but {r}")),
            ],
            Err(e) => [
                key.to_string(),
                "-".to_owned(),
                "-".to_owned(),
                e.to_string(),
            ],
        });
    }
    for (key, why) in &plan.ignored {
        rows.push([
            key.to_string(),
            "-".to_owned(),
            "-".to_owned(),
            format!("ignored: {why}"),
        ]);
    }
    let widths: Vec<usize> = (0..3)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    for conflict in &plan.conflicts {
        println!("conflict: {conflict}");
    }
    for (pool, s) in &plan.pools {
        println!(
            "pool {pool}: IPv4 {} assigned, {} available; IPv6 {} assigned, {} available",
            s.assigned_ipv4, s.available_ipv4, s.assigned_ipv6, s.available_ipv6
        );
    }
    ExitCode::SUCCESS
}
