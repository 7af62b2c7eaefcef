//! Standalone mode (`ferrolb standalone`): the whole pipeline without an API server. The ferrolb objects,
//! Services, EndpointSlices and Nodes come from YAML manifests, re-read within a second of any change;
//! allocation is the allocator's whole-state `allocate_all`, so independent speakers reading the same
//! files agree on every IP. An invalid edit is reported and the last good state keeps being announced.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ferrolb_allocator::adapt::{pool_config, service_view};
use ferrolb_allocator::{allocate_all, ServiceKey};
use ferrolb_crds::manifest::Objects;
use tokio::sync::watch;

use crate::announce::bgp::NodeIdentity;
use crate::announce::Announcers;
use crate::decide::adapt::{node_info, service_info, slices_by_service};
use crate::decide::{NodeInfo, ServiceInfo};
use crate::membership::{self, Membership, MembershipOptions};
use crate::metrics::Metrics;
use crate::pipeline::{announcements, Announcements};

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
    /// Speaker liveness by SWIM membership (`None`: every node counts as alive).
    pub memberlist: Option<MemberlistOptions>,
}

/// Standalone membership: layer-2 ownership is elected among the speakers alive per the memberlist.
#[derive(Debug, Clone)]
pub struct MemberlistOptions {
    /// UDP address to listen on. With an unspecified IP, this node's `InternalIP` from its Node
    /// manifest is the address the others reach it at.
    pub bind: SocketAddr,
    /// Members to join; empty: every Node manifest's `InternalIP` addresses at the bind port (followed
    /// as the manifests change).
    pub peers: Vec<SocketAddr>,
    /// File holding the shared secret (surrounding whitespace, such as a final newline, is ignored).
    pub secret_file: PathBuf,
}

/// `ferrolb standalone …`: parses the arguments, then [`run`]s until SIGTERM. Exit status 2 on a usage
/// error, 1 on a failure to start.
pub fn cli(args: &[String]) -> std::process::ExitCode {
    use std::process::ExitCode;
    let usage = |m: &str| {
        eprintln!("ferrolb standalone: {m}\nusage: ferrolb standalone --node-name NODE --manifests PATH [--manifests PATH]... [--class NAME] [--metrics-addr ADDR] [--poll-ms N] [--log-format text|json] [--memberlist-bind ADDR:PORT --memberlist-secret-file PATH [--memberlist-peer ADDR:PORT]...]");
        ExitCode::from(2)
    };
    let mut options = Options {
        node_name: String::new(),
        manifests: Vec::new(),
        class: None,
        poll: Duration::from_millis(50),
        addresses: Vec::new(),
        metrics_addr: None,
        memberlist: None,
    };
    let mut memberlist_bind: Option<SocketAddr> = None;
    let mut memberlist_peers: Vec<SocketAddr> = Vec::new();
    let mut memberlist_secret: Option<PathBuf> = None;
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
            "--memberlist-bind" => match value.parse() {
                Ok(a) => memberlist_bind = Some(a),
                Err(e) => return usage(&format!("--memberlist-bind {value:?}: {e}")),
            },
            "--memberlist-peer" => match value.parse() {
                Ok(a) => memberlist_peers.push(a),
                Err(e) => return usage(&format!("--memberlist-peer {value:?}: {e}")),
            },
            "--memberlist-secret-file" => memberlist_secret = Some(PathBuf::from(value)),
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
    match (memberlist_bind, memberlist_secret) {
        (Some(bind), Some(secret_file)) => {
            options.memberlist = Some(MemberlistOptions {
                bind,
                peers: memberlist_peers,
                secret_file,
            })
        }
        (Some(_), None) => return usage("--memberlist-bind needs --memberlist-secret-file"),
        (None, Some(_)) => return usage("--memberlist-secret-file needs --memberlist-bind"),
        (None, None) if !memberlist_peers.is_empty() => {
            return usage("--memberlist-peer needs --memberlist-bind")
        }
        (None, None) => {}
    }
    crate::logging::init(json);
    crate::run_to_exit(run(options, crate::terminated()))
}

/// What this node announces, derived from one consistent reading of the manifests.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePlan {
    /// Every Service's IPs (whatever this node announces).
    pub assignments: BTreeMap<ServiceKey, Vec<IpAddr>>,
    pub announcements: Announcements,
}

/// From one reading of the manifests to this node's plan, with the speakers alive per the memberlist
/// (`None`: every node counts as alive); every problem if the objects are invalid.
pub fn plan_node(
    objects: &Objects,
    node: &NodeIdentity,
    class: Option<&str>,
    live: Option<&BTreeSet<String>>,
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
    let announcements = announcements(&config, &services, &nodes, live, node);
    let assignments = assignments
        .into_iter()
        .filter_map(|(k, r)| Some((k, r.ok()?.ips)))
        .collect();
    Ok(NodePlan {
        assignments,
        announcements,
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
    let (ready_tx, ready_rx) = watch::channel(ferrolb_allocator::controller::Readiness::default());
    let (metrics, server) = Metrics::serve(options.metrics_addr, ready_rx).await?;
    let mut announcers = Announcers::new();
    let membership = match &options.memberlist {
        Some(m) => Some(start_membership(&options.node_name, &options.manifests, m).await?),
        None => None,
    };
    let mut live_rx = membership.as_ref().map(Membership::live);
    let mut live_woke = false;
    // The objects of the last valid reading: re-planned when the live speakers change.
    let mut valid_objects: Option<Objects> = None;
    // The newest reading of the files gave no plan: reported as stale even while live changes re-plan.
    let mut files_invalid = false;
    let mut seen: Option<Fingerprint> = None;
    let mut current: Option<NodePlan> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let fingerprint = fingerprint(&options.manifests);
        let mut next: Option<(PlanResult, Option<SystemTime>)> = None;
        // A change may arrive while the poll timer wins the select: ask the channel too.
        let live_changed = std::mem::take(&mut live_woke)
            || live_rx
                .as_ref()
                .is_some_and(|rx| rx.has_changed().unwrap_or(false));
        let file_changed = seen.as_ref() != Some(&fingerprint);
        // Marked seen only when a plan is made with it.
        let live = if file_changed || live_changed {
            live_rx.as_mut().map(|rx| rx.borrow_and_update().clone())
        } else {
            None
        };
        if file_changed {
            let changed_at = newest(&fingerprint);
            seen = Some(fingerprint);
            let (objects, load_errors) = ferrolb_crds::load_paths(&options.manifests);
            if let (Some(m), Some(config)) = (&membership, &options.memberlist) {
                if config.peers.is_empty() {
                    m.set_seeds(node_peers(&objects, config.bind.port()));
                }
            }
            let plan = if load_errors.is_empty() {
                plan_node(&objects, &identity, options.class.as_deref(), live.as_ref())
            } else {
                Err(load_errors.iter().map(ToString::to_string).collect())
            };
            files_invalid = plan.is_err();
            if plan.is_ok() {
                valid_objects = Some(objects);
            }
            next = Some((plan, changed_at));
        }
        // The live speakers changed and the files gave no plan with them (unchanged, or invalid): the last
        // valid objects are planned again, so that a failover is not lost behind an invalid edit.
        if live_changed && !matches!(next, Some((Ok(_), _))) {
            if let Some((Err(problems), _)) = next.take() {
                report_invalid(&metrics, current.is_some(), &problems);
            }
            if let Some(objects) = &valid_objects {
                let plan = plan_node(objects, &identity, options.class.as_deref(), live.as_ref());
                next = Some((plan, Some(SystemTime::now())));
            }
        }
        if let Some((plan, changed_at)) = next {
            match plan {
                Err(problems) => report_invalid(&metrics, current.is_some(), &problems),
                Ok(plan) if current.as_ref() == Some(&plan) => metrics.config(true, files_invalid),
                Ok(plan) => {
                    metrics.config(true, files_invalid);
                    if let Some(previous) = &current {
                        warn_moves(previous, &plan);
                    }
                    for e in announcers.apply(&plan.announcements).await {
                        tracing::error!(%e, "announcement failed");
                    }
                    let since_change = changed_at.map(|at| {
                        SystemTime::now()
                            .duration_since(at)
                            .unwrap_or_default()
                            .as_secs_f64()
                    });
                    metrics.applied(
                        &identity.name,
                        current.as_ref().map(|c| &c.announcements),
                        &plan.announcements,
                        since_change,
                        announcers.bgp.status_receivers(),
                    );
                    log_plan(&plan);
                    current = Some(plan);
                    ready_tx.send_replace(ferrolb_allocator::controller::Readiness::ready());
                }
            }
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(options.poll) => {}
            _ = membership::live_changed(&mut live_rx) => live_woke = true,
        }
    }
    announcers.shutdown_leaving(membership).await;
    if let Some(server) = server {
        server.abort();
    }
    Ok(())
}

/// Manifests that give no plan: logged, and the last valid state stays announced.
fn report_invalid(metrics: &Metrics, announcing: bool, problems: &[String]) {
    metrics.config(announcing, true);
    for p in problems {
        tracing::error!(problem = %p, "manifests invalid; the last valid state stays announced");
    }
}

/// One planning: the plan, or every problem of the manifests.
type PlanResult = Result<NodePlan, Vec<String>>;

/// Every Node manifest's `InternalIP` addresses, at `port`.
fn node_peers(objects: &Objects, port: u16) -> Vec<SocketAddr> {
    let mut peers: Vec<SocketAddr> = objects
        .nodes
        .iter()
        .flat_map(internal_ips)
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    peers.sort();
    peers.dedup();
    peers
}

fn internal_ips(node: &k8s_openapi::api::core::v1::Node) -> Vec<IpAddr> {
    node.status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

/// Reads the secret, starts the membership and waits briefly for it to find the others, so that a
/// starting speaker does not first claim every layer-2 IP as if it were alone.
async fn start_membership(
    node_name: &str,
    manifests: &[PathBuf],
    config: &MemberlistOptions,
) -> Result<Membership, String> {
    let secret = membership::read_secret(&config.secret_file)?;
    let (objects, _) = ferrolb_crds::load_paths(manifests);
    let mut membership = MembershipOptions::new(node_name, config.bind, secret);
    membership.seeds = if config.peers.is_empty() {
        node_peers(&objects, config.bind.port())
    } else {
        config.peers.clone()
    };
    if config.bind.ip().is_unspecified() {
        let own = objects
            .nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(node_name))
            .map(internal_ips)
            .unwrap_or_default();
        let ip = own
            .iter()
            .find(|ip| ip.is_ipv4() == config.bind.is_ipv4())
            .or(own.first())
            .ok_or_else(|| {
                format!(
                    "--memberlist-bind {} has no specific IP and the Node manifest of {node_name} has no InternalIP to advertise",
                    config.bind
                )
            })?;
        membership.advertise = Some(SocketAddr::new(*ip, config.bind.port()));
    }
    let own = membership.advertise.unwrap_or(config.bind);
    let others = membership.seeds.iter().filter(|s| **s != own).count();
    let membership = Membership::start(membership)
        .await
        .map_err(|e| format!("memberlist on {}: {e}", config.bind))?;
    if others > 0 {
        let mut live = membership.live();
        let joined =
            tokio::time::timeout(Duration::from_millis(1500), live.wait_for(|l| l.len() > 1)).await;
        if joined.is_err() {
            tracing::info!("no other speaker answered yet; starting alone");
        }
    }
    Ok(membership)
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
    for a in &plan.announcements.desired.announced {
        tracing::info!(service = %a.service, ip = %a.ip, via = ?a.via, "announcing");
    }
    for n in &plan.announcements.desired.not_announced {
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
