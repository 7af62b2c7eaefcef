//! Standalone mode (`ferrolb standalone`): the whole pipeline without an API server. The ferrolb objects,
//! Services, EndpointSlices and Nodes come from YAML manifests, re-read within a second of any change;
//! allocation is the allocator's whole-state `allocate_all`, so independent speakers reading the same
//! files agree on every IP. An invalid edit is reported and the last good state keeps being announced.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferrolb_allocator::adapt::{pool_config, service_view};
use ferrolb_allocator::{allocate_all, ServiceKey};
use ferrolb_crds::manifest::Objects;
use tokio::sync::watch;

use crate::announce::bgp::{session_config, BgpAnnouncer, BgpDesired, NodeIdentity, PeerSession};
use crate::announce::l2::{L2Announcer, L2Options};
use crate::announce::{Announcer, ItemError};
use crate::decide::adapt::{node_info, service_info, slices_by_service};
use crate::decide::{decide, Desired, Inputs, NodeInfo, ServiceInfo};
use crate::metrics::Metrics;
use ferrolb_crds::selector::any_matches;

/// How the standalone speaker runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// This node's name, as in the `Node` manifests and EndpointSlices' `nodeName`.
    pub node_name: String,
    /// Files or directories of YAML manifests.
    pub manifests: Vec<PathBuf>,
    /// The `loadBalancerClass` handled (`None`: Services without a class).
    pub class: Option<String>,
    /// How often the manifests are checked for changes.
    pub poll: Duration,
    /// Addresses to pick the router ID from when a BGPPeer sets none (default: the host's).
    pub addresses: Vec<std::net::IpAddr>,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub metrics_addr: Option<SocketAddr>,
}

/// `ferrolb standalone …`: parses the arguments, then [`run`]s until SIGTERM. Exit status 2 on a usage
/// error, 1 on a failure to start.
pub fn cli(args: &[String]) -> std::process::ExitCode {
    use std::process::ExitCode;
    let usage = |m: &str| {
        eprintln!("ferrolb standalone: {m}\nusage: ferrolb standalone --node-name NODE --manifests PATH [--manifests PATH]... [--class NAME] [--metrics-addr ADDR] [--poll-ms N] [--log-format text|json]");
        ExitCode::from(2)
    };
    let mut options = Options {
        node_name: String::new(),
        manifests: Vec::new(),
        class: None,
        poll: Duration::from_millis(50),
        addresses: Vec::new(),
        metrics_addr: None,
    };
    let mut json = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(value) = it.next() else {
            return usage(&format!("{arg} needs a value"));
        };
        match arg.as_str() {
            "--node-name" => options.node_name = value.clone(),
            "--manifests" => options.manifests.push(PathBuf::from(value)),
            "--class" => options.class = Some(value.clone()),
            "--metrics-addr" => match value.parse() {
                Ok(a) => options.metrics_addr = Some(a),
                Err(e) => return usage(&format!("--metrics-addr {value:?}: {e}")),
            },
            "--poll-ms" => match value.parse::<u64>() {
                Ok(ms) if ms > 0 => options.poll = Duration::from_millis(ms),
                _ => return usage(&format!("--poll-ms {value:?} is not a positive number")),
            },
            "--log-format" => match value.as_str() {
                "json" => json = true,
                "text" => json = false,
                other => return usage(&format!("--log-format takes text or json, not {other:?}")),
            },
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    if options.node_name.is_empty() {
        return usage("--node-name is required");
    }
    if options.manifests.is_empty() {
        return usage("--manifests is required");
    }
    crate::logging::init(json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferrolb: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options, crate::terminated())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// What this node announces, derived from one consistent reading of the manifests.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePlan {
    /// Every Service's IPs (whatever this node announces).
    pub assignments: BTreeMap<ServiceKey, Vec<IpAddr>>,
    pub desired: Desired,
    pub bgp: BgpDesired,
    /// Peers selected for this node that cannot run, and why.
    pub peer_errors: Vec<ItemError>,
}

/// From one reading of the manifests to this node's plan; every problem if the objects are invalid.
pub fn plan_node(
    objects: &Objects,
    node: &NodeIdentity,
    class: Option<&str>,
) -> Result<NodePlan, Vec<String>> {
    let config = ferrolb_crds::validate(objects)
        .map_err(|errors| errors.iter().map(|e| e.line()).collect::<Vec<_>>())?;
    let pools: Vec<_> = config.pools.iter().map(pool_config).collect();
    let views: Vec<_> = objects
        .services
        .iter()
        .map(|s| service_view(s, &objects.namespaces))
        .collect();
    let assignments = allocate_all(&pools, class, &views).map_err(|e| vec![e.to_string()])?;
    let slices = slices_by_service(&objects.endpoint_slices);
    let services: Vec<ServiceInfo> = objects
        .services
        .iter()
        .zip(&views)
        .filter_map(|(svc, view)| {
            let key = view.key();
            let ips = assignments.get(&key)?.as_ref().ok()?.ips.clone();
            let empty = Vec::new();
            Some(service_info(svc, ips, slices.get(&key).unwrap_or(&empty)))
        })
        .collect();
    let nodes: BTreeMap<String, NodeInfo> = objects
        .nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.clone()?, node_info(n))))
        .collect();
    let desired = decide(&Inputs {
        node: &node.name,
        config: &config,
        services: &services,
        nodes: &nodes,
        live: None,
    });
    let node_labels = nodes
        .get(&node.name)
        .map(|n| n.labels.clone())
        .unwrap_or_default();
    let mut bgp = BgpDesired::new();
    let mut peer_errors = Vec::new();
    for peer in config
        .peers
        .iter()
        .filter(|p| any_matches(&p.node_selectors, &node_labels))
    {
        match session_config(peer, node) {
            Ok(config) => {
                let routes = desired.bgp.get(&peer.name).cloned().unwrap_or_default();
                bgp.insert(peer.name.clone(), PeerSession { config, routes });
            }
            Err(problem) => peer_errors.push(ItemError {
                item: format!("peer {}", peer.name),
                problem,
            }),
        }
    }
    let assignments = assignments
        .into_iter()
        .filter_map(|(k, r)| Some((k, r.ok()?.ips)))
        .collect();
    Ok(NodePlan {
        assignments,
        desired,
        bgp,
        peer_errors,
    })
}

/// Runs until `shutdown` resolves: reads the manifests, announces, and follows every change.
pub async fn run(
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let identity = NodeIdentity {
        name: options.node_name.clone(),
        addresses: if options.addresses.is_empty() {
            ferrolb_bgp::identity::host_addresses()
        } else {
            options.addresses.clone()
        },
    };
    let (ready_tx, ready_rx) = watch::channel(false);
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let server = match options.metrics_addr {
        Some(addr) => {
            let (addr, server) = crate::serve::bind(addr, Arc::new(registry), ready_rx)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
            Some(tokio::spawn(server))
        }
        None => None,
    };
    let mut bgp = BgpAnnouncer::new();
    // Layer 2 needs raw sockets (CAP_NET_RAW); without them BGP still works and L2 items are reported.
    let mut l2 = match L2Announcer::new(L2Options::default()) {
        Ok(l2) => Some(l2),
        Err(e) => {
            tracing::warn!(error = %e, "layer 2 unavailable (needs CAP_NET_RAW); BGP only");
            None
        }
    };
    let mut seen: Option<Fingerprint> = None;
    let mut current: Option<NodePlan> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let fingerprint = fingerprint(&options.manifests);
        if seen.as_ref() != Some(&fingerprint) {
            let changed_at = newest(&fingerprint);
            seen = Some(fingerprint);
            let (objects, load_errors) = ferrolb_crds::load_paths(&options.manifests);
            let plan = if load_errors.is_empty() {
                plan_node(&objects, &identity, options.class.as_deref())
            } else {
                Err(load_errors.iter().map(ToString::to_string).collect())
            };
            match plan {
                Err(problems) => {
                    metrics.config(current.is_some(), true);
                    for p in &problems {
                        tracing::error!(problem = %p, "manifests invalid; the last valid state stays announced");
                    }
                }
                Ok(plan) if current.as_ref() == Some(&plan) => metrics.config(true, false),
                Ok(plan) => {
                    metrics.config(true, false);
                    if let Some(previous) = &current {
                        warn_moves(previous, &plan);
                    }
                    for e in &plan.peer_errors {
                        tracing::error!(%e, "peer not started");
                    }
                    let mut errors = bgp.apply(&plan.bgp).await;
                    match &mut l2 {
                        Some(l2) => errors.extend(l2.apply(&plan.desired.l2).await),
                        None => {
                            errors.extend(
                                plan.desired.l2.keys().map(|ip| ItemError {
                                    item: format!("ip {ip}"),
                                    problem:
                                        "layer 2 is unavailable on this node (needs CAP_NET_RAW)"
                                            .into(),
                                }),
                            )
                        }
                    }
                    for e in &errors {
                        tracing::error!(%e, "announcement failed");
                    }
                    if let Some(at) = changed_at {
                        let age = SystemTime::now()
                            .duration_since(at)
                            .unwrap_or_default()
                            .as_secs_f64();
                        if current.as_ref().map(|c| &c.bgp) != Some(&plan.bgp) {
                            metrics.latency("bgp", age);
                        }
                        if current.as_ref().map(|c| &c.desired.l2) != Some(&plan.desired.l2) {
                            metrics.latency("layer2", age);
                        }
                    }
                    *metrics.sessions().lock().expect("session status lock") =
                        bgp.status_receivers();
                    metrics.announced(&identity.name, &plan.desired);
                    log_plan(&plan);
                    current = Some(plan);
                    ready_tx.send_replace(true);
                }
            }
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(options.poll) => {}
        }
    }
    tracing::info!("shutting down: withdrawing everything");
    match l2 {
        Some(l2) => futures::join!(bgp.shutdown(), l2.shutdown()).0,
        None => bgp.shutdown().await,
    }
    if let Some(server) = server {
        server.abort();
    }
    Ok(())
}

/// The whole-state allocation serves older Services first, so adding a Service never renumbers another;
/// removing one can (a younger Service may now get a lower address). Say so, and how to prevent it.
fn warn_moves(previous: &NodePlan, plan: &NodePlan) {
    for (key, ips) in &plan.assignments {
        if let Some(before) = previous.assignments.get(key) {
            if before != ips {
                tracing::warn!(
                    service = %key,
                    from = ?before,
                    to = ?ips,
                    "the Service's IPs changed after other Services were removed; pin them with status.loadBalancer.ingress or the ferrolb.io/loadBalancerIPs annotation to keep them"
                );
            }
        }
    }
}

fn log_plan(plan: &NodePlan) {
    for a in &plan.desired.announced {
        tracing::info!(service = %a.service, ip = %a.ip, via = ?a.via, "announcing");
    }
    for n in &plan.desired.not_announced {
        tracing::info!(service = %n.service, ip = %n.ip, reason = %n.reason, "not announcing");
    }
}

/// The latest modification time among the manifests: when the change being applied was made.
fn newest(fingerprint: &Fingerprint) -> Option<SystemTime> {
    fingerprint.iter().filter_map(|f| f.2).max()
}

/// Every manifest file with its size and modification time: any edit, addition or removal changes it.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out);
    }
    out.sort();
    out
}

fn walk(path: &Path, out: &mut Fingerprint) {
    let Ok(meta) = std::fs::metadata(path) else {
        out.push((path.to_owned(), 0, None));
        return;
    };
    if meta.is_dir() {
        out.push((path.to_owned(), 0, meta.modified().ok()));
        if let Ok(entries) = std::fs::read_dir(path) {
            for e in entries.flatten() {
                walk(&e.path(), out);
            }
        }
    } else {
        out.push((path.to_owned(), meta.len(), meta.modified().ok()));
    }
}
