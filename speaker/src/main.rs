//! `ferrolb`: the single binary of the project. Subcommands arrive with their issues (`controller`,
//! `speaker`, `standalone`, `check`, `plan`, `crds`); today it lints manifests, writes the CRDs and
//! reports its version.

use std::path::PathBuf;
use std::process::ExitCode;

use ferrolb_crds::{check, crdgen};

const USAGE: &str = "ferrolb — a bare-metal Kubernetes LoadBalancer

usage: ferrolb <command>

commands:
  check <dir|file>...         lint ferrolb.io manifests offline: every problem, one line each
                              (file: Kind namespace/name: field: problem); exit status 1 if any
  crds [--output DIR] [--check]
                              write the CustomResourceDefinitions, one YAML file per kind, into DIR
                              (default deploy/crds); with --check, write nothing and exit 1 if the
                              files in DIR differ from what this binary generates
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
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--output" | "-o" => match it.next() {
                Some(d) => dir = PathBuf::from(d),
                None => return usage_error("--output needs a directory"),
            },
            "--check" => check_only = true,
            other => match other.strip_prefix("--output=") {
                Some(d) => dir = PathBuf::from(d),
                None => return usage_error(&format!("crds takes no argument '{other}'")),
            },
        }
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
