//! `ferrolb controller`: the allocator against the API server (see `ferrolb_allocator::controller`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use ferrolb_allocator::controller::{self, LeaderElection, Metrics, Options};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::usage_error;
use ferrolb_speaker::{logging, serve};

/// MetalLB's controller serves its metrics on 7472 too.
const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:7472";

pub fn run(args: &[String]) -> ExitCode {
    let mut namespace = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "ferrolb-system".into());
    let mut class = None;
    let mut metrics_addr = DEFAULT_METRICS_ADDR.to_owned();
    let mut election = Some(LeaderElection::default());
    let mut lease_name = None;
    let mut json = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let parsed: Result<(), String> = match arg.as_str() {
            "--namespace" => value("--namespace").map(|v| namespace = v),
            "--class" => value("--class").map(|v| class = Some(v)),
            "--metrics-addr" => value("--metrics-addr").map(|v| metrics_addr = v),
            "--lease-name" => value("--lease-name").map(|v| lease_name = Some(v)),
            flag @ ("--lease-duration" | "--lease-renew-deadline" | "--lease-retry-period") => {
                value(flag).and_then(|v| {
                    let d = parse_positive_duration(flag, &v)?;
                    if let Some(e) = &mut election {
                        match flag {
                            "--lease-duration" => e.lease_duration = d,
                            "--lease-renew-deadline" => e.renew_deadline = d,
                            _ => e.retry_period = d,
                        }
                    }
                    Ok(())
                })
            }
            "--no-leader-election" => {
                election = None;
                Ok(())
            }
            "--log-format" => value("--log-format").and_then(|v| {
                json = match v.as_str() {
                    "json" => true,
                    "text" => false,
                    other => return Err(format!("--log-format takes text or json, not {other:?}")),
                };
                Ok(())
            }),
            other => Err(format!("controller takes no argument '{other}'")),
        };
        if let Err(message) = parsed {
            return usage_error(&message);
        }
    }
    if let Some(e) = &mut election {
        e.lease_name = lease_name.unwrap_or_else(|| controller::lease_name_for(class.as_deref()));
        if let Err(message) = e.check() {
            return usage_error(&message);
        }
    }
    let metrics_addr: SocketAddr = match metrics_addr.parse() {
        Ok(a) => a,
        Err(e) => return usage_error(&format!("--metrics-addr {metrics_addr:?}: {e}")),
    };
    logging::init(json);
    let identity = std::env::var("POD_NAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "ferrolb-controller".into());
    let options = Options {
        namespace,
        class,
        identity,
        election,
    };
    ferrolb_speaker::run_to_exit(serve_controller(options, metrics_addr))
}

async fn serve_controller(options: Options, metrics_addr: SocketAddr) -> Result<(), String> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot reach the Kubernetes API server: {e}"))?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let (ready_tx, ready_rx) = watch::channel(controller::Readiness::default());
    let (metrics_addr, server) = serve::bind(metrics_addr, Arc::new(registry), ready_rx)
        .await
        .map_err(|e| format!("cannot listen on {metrics_addr}: {e}"))?;
    let server = tokio::spawn(server);
    tracing::info!(namespace = %options.namespace, identity = %options.identity, %metrics_addr,
        lease = options.election.as_ref().map(|e| e.lease_name.as_str()), "ferrolb controller starting");
    controller::run(
        client,
        options,
        metrics,
        ready_tx,
        ferrolb_speaker::terminated(),
    )
    .await;
    server.abort();
    Ok(())
}

/// A Go duration (`15s`, `1m30s`) that is positive.
fn parse_positive_duration(flag: &str, value: &str) -> Result<std::time::Duration, String> {
    ferrolb_crds::duration::GoDuration::parse(value)
        .ok()
        .and_then(|d| d.to_std())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{flag} takes a positive duration such as 15s or 1m, not {value:?}"))
}
