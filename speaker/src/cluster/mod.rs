//! Kubernetes mode (`ferrolb speaker`): the same pipeline as standalone mode, fed by the API server.
//! Service IPs come from `status.loadBalancer.ingress` (the controller allocates); the speaker decides
//! what its node announces, applies it, and reports it in its `SpeakerState` and in events on the Services.

mod report;
mod watch;
mod writer;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use ferrolb_allocator::controller::Readiness;
use ferrolb_crds::config::Config;
use futures::{FutureExt, StreamExt};
use kube::Client;
use tokio::sync::watch as signal;

pub use report::{announcement_events, events_after_restart, speaker_status, ServiceEvent};
pub use watch::{Change, Stores, SOURCES};
pub use writer::{Writer, FIELD_MANAGER, HEARTBEAT_EVERY};

use crate::announce::bgp::NodeIdentity;
use crate::announce::Announcers;
use crate::membership::{live_changed, Membership, MembershipOptions};
use crate::metrics::Metrics;
use crate::pipeline::{announcements, Announcements};

/// How the speaker runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// This node (the pod's `spec.nodeName`).
    pub node_name: String,
    /// The namespace of the ferrolb objects, Secrets and SpeakerStates.
    pub namespace: String,
    /// Label selector of the speaker pods (membership seeds).
    pub speaker_pods: String,
    pub metrics_addr: Option<SocketAddr>,
    /// Speaker liveness for the layer-2 election; `None`: every node counts as alive.
    pub memberlist: Option<Memberlist>,
}

/// The memberlist in Kubernetes mode: the speaker pods (host network) find each other by their pod IPs.
#[derive(Clone)]
pub struct Memberlist {
    /// This pod's IP (`status.podIP`, the node's address with host networking).
    pub pod_ip: std::net::IpAddr,
    /// The UDP port every speaker uses (MetalLB: 7946).
    pub port: u16,
    /// The shared secret (from a Secret mounted as a file).
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Memberlist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memberlist")
            .field("pod_ip", &self.pod_ip)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// The longest the status waits after a change before it is written, and the shortest gap between two
/// writes.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Runs until `shutdown` resolves.
pub async fn run(
    client: Client,
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let identity = NodeIdentity {
        name: options.node_name.clone(),
        addresses: ferrolb_bgp::identity::host_addresses(),
    };
    let (ready_tx, ready_rx) = signal::channel(Readiness::default());
    let (metrics, server) = Metrics::serve(options.metrics_addr, ready_rx).await?;
    let (stores, mut changes) =
        watch::start(client.clone(), &options.namespace, &options.speaker_pods);
    let mut writer = Writer::new(client, &options.namespace, &options.node_name);
    // What this node's previous speaker reported: the first decision's events are against it.
    let mut previous = writer.previous().await;
    let mut announcers = Announcers::new();
    let membership = match &options.memberlist {
        Some(m) => {
            let bind = SocketAddr::new(m.pod_ip, m.port);
            let membership = Membership::start(MembershipOptions::new(
                &options.node_name,
                bind,
                m.secret.clone(),
            ))
            .await
            .map_err(|e| format!("memberlist on {bind}: {e}"))?;
            Some(membership)
        }
        None => None,
    };
    let mut live_rx = membership.as_ref().map(Membership::live);
    let mut synced: BTreeSet<&'static str> = BTreeSet::new();
    // Kinds that cannot be listed, with why: they count as listed and empty.
    let mut unavailable: std::collections::BTreeMap<&'static str, String> = Default::default();
    let mut config: Option<Config> = None;
    let mut config_errors: Vec<String> = Vec::new();
    let mut current: Option<Announcements> = None;
    let mut dirty = false;
    // A configuration kind (or a Secret) changed: validate again. Other changes reuse the last result.
    let mut config_dirty = true;
    // When the oldest change not yet applied arrived: the start of the announce latency.
    let mut changed_at: Option<std::time::Instant> = None;
    let mut ticker = tokio::time::interval(STATUS_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let mut status_due = false;
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => status_due = true,
            _ = live_changed(&mut live_rx) => {
                changed_at.get_or_insert_with(std::time::Instant::now);
                dirty = true;
            }
            change = changes.next() => {
                let Some(change) = change else { break };
                let mut batch = vec![change];
                while let Some(Some(c)) = changes.next().now_or_never() {
                    batch.push(c);
                }
                changed_at.get_or_insert_with(std::time::Instant::now);
                for c in batch {
                    match c {
                        Change::Synced(kind) => {
                            synced.insert(kind);
                            if unavailable.remove(kind).is_some() {
                                metrics.unavailable(kind, false);
                            }
                            dirty = true;
                            config_dirty |= watch::is_config(kind);
                        }
                        Change::Unavailable(kind, reason) => {
                            synced.insert(kind);
                            metrics.unavailable(kind, true);
                            unavailable.insert(kind, reason);
                            dirty = true;
                            config_dirty |= watch::is_config(kind);
                        }
                        Change::Changed(kind) => {
                            dirty = true;
                            config_dirty |= watch::is_config(kind);
                        }
                    }
                }
            }
        }
        // Nothing is announced before every watch has listed its objects once.
        if dirty && synced.len() == SOURCES.len() {
            dirty = false;
            if std::mem::take(&mut config_dirty) {
                match ferrolb_crds::validate(&stores.config_objects()) {
                    Ok(valid) => {
                        config = Some(valid);
                        config_errors.clear();
                    }
                    Err(errors) => {
                        config_errors = errors.iter().map(ToString::to_string).collect();
                        for e in &config_errors {
                            tracing::error!(problem = %e, "configuration invalid; the last valid one stays in force");
                        }
                    }
                }
            }
            metrics.config(config.is_some(), !config_errors.is_empty());
            let Some(config) = &config else { continue };
            if let (Some(m), Some(list)) = (&membership, &options.memberlist) {
                let seeds = stores.speaker_pod_ips().into_iter();
                m.set_seeds(seeds.map(|ip| SocketAddr::new(ip, list.port)).collect());
            }
            let live = live_rx.as_mut().map(|rx| rx.borrow_and_update().clone());
            let plan = announcements(
                config,
                &stores.services(),
                &stores.nodes(),
                live.as_ref(),
                &identity,
            );
            let since = changed_at.take();
            if current.as_ref() != Some(&plan) {
                for e in announcers.apply(&plan).await {
                    tracing::error!(%e, "announcement failed");
                }
                let events = match (&current, previous.take()) {
                    (Some(before), _) => {
                        announcement_events(&options.node_name, &before.desired, &plan.desired)
                    }
                    (None, Some(status)) => {
                        events_after_restart(&options.node_name, &status, &plan.desired)
                    }
                    (None, None) => {
                        announcement_events(&options.node_name, &Default::default(), &plan.desired)
                    }
                };
                for event in events {
                    let svc = writer::lookup(&stores.services, &event.service);
                    writer.event(&event, svc.as_deref()).await;
                }
                metrics.applied(
                    &options.node_name,
                    current.as_ref(),
                    &plan,
                    since.map(|t| t.elapsed().as_secs_f64()),
                    announcers.bgp.status_receivers(),
                );
                current = Some(plan);
            }
            ready_tx.send_replace(Readiness {
                ready: current.is_some(),
                unavailable: unavailable.clone(),
            });
        }
        if status_due {
            if let Some(plan) = &current {
                let status = speaker_status(
                    &options.node_name,
                    &config_errors,
                    &plan.desired,
                    &announcers.bgp.status(),
                );
                if let Err(error) = writer.status(status).await {
                    tracing::warn!(%error, "cannot write SpeakerState");
                }
            }
        }
    }
    announcers.shutdown_leaving(membership).await;
    if let Err(error) = writer.stopped().await {
        tracing::warn!(%error, "cannot record in SpeakerState that this speaker stopped");
    }
    if let Some(server) = server {
        server.abort();
    }
    Ok(())
}
