//! `ferrolb`: the single binary of the project. Subcommands arrive with their issues (`controller`,
//! `speaker`, `standalone`, `check`, `plan`, `crds`); today it reports its version and what it contains.

use std::process::ExitCode;

const USAGE: &str = "ferrolb — a bare-metal Kubernetes LoadBalancer

usage: ferrolb <command>

commands:
  version    print the version
  help       print this text
";

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("version") | Some("--version") | Some("-V") => {
            println!("ferrolb {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        None | Some("help") | Some("--help") | Some("-h") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("ferrolb: unknown command '{other}'\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
