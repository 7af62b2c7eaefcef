//! The per-node speaker (issue 4) and the pieces every long-running `ferrolb` command shares.
//!
//! One path for data: objects (API server or manifests) → [`decide`] (pure: what this node announces) →
//! [`announce`] (BGP sessions, ARP/NDP responders: diff against what is announced, then the wire).

pub mod announce;
pub mod cluster;
pub mod decide;
pub mod logging;
pub mod membership;
pub mod metrics;
pub mod pipeline;
pub mod serve;
pub mod standalone;
#[cfg(test)]
mod test_support;

/// Resolves on SIGTERM or SIGINT.
pub async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Runs a command's main future on a new runtime; an error is logged and makes the exit status 1.
pub fn run_to_exit(
    main: impl std::future::Future<Output = Result<(), String>>,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferrolb: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            std::process::ExitCode::FAILURE
        }
    }
}
