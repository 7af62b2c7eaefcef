//! `ferrolb controller`: the allocator in a Kubernetes cluster.
//!
//! One path for data: watches ([`watch`]) → the pure [`Core`] (allocator + comparison with what the
//! objects show) → [`Write`]s → [`Writer`] (server-side apply, events). Every replica watches, so a standby
//! is warm; only the holder of the Lease builds a [`Core`] and writes. On gaining the Lease, the new leader
//! starts from the objects as they are (import every status, then allocate), exactly as after a restart; on
//! losing it, it drops its state and stops writing before the next write.

mod core;
mod leader;
mod liveness;
mod metrics;
pub mod watch;
mod writer;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use kube::Client;
use tokio::sync::watch as signal;

pub use self::core::{Cluster, Core, Outcome, RecordedWarning, Severity, Write};
pub use self::leader::{
    decide as decide_leadership, elect, lease_name_for, Election, LeaderElection,
    DEFAULT_LEASE_NAME,
};
pub use self::liveness::stale_speakers;
pub use self::metrics::{register_unavailable, KindLabel, Metrics};
pub use self::watch::{Change, Readiness, Stores};
pub use self::writer::{Retry, Writer, FIELD_MANAGER};

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The namespace of the ferrolb objects (IPAddressPool, …) and of the leader Lease.
    pub namespace: String,
    /// The `loadBalancerClass` handled; `None`: Services without a class.
    pub class: Option<String>,
    /// This replica's name (its pod), for the Lease and for events.
    pub identity: String,
    /// `None` runs without leader election (a single replica).
    pub election: Option<LeaderElection>,
}

/// Delay before a failed write is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The shortest gap between two writes of pool statuses: under churn each pool's status is written at most
/// once a second, with the figures of the latest change.
const POOL_STATUS_EVERY: Duration = Duration::from_secs(1);

/// How long a stopping leader waits for the Lease's release before it exits anyway.
const RELEASE_DEADLINE: Duration = Duration::from_millis(1500);

/// Runs until `shutdown` resolves. `ready` turns true once every watch has listed its objects (or found
/// its kind unavailable) and, on the leader, the start-up allocation is written. On shutdown a leader stops
/// writing first, then releases the Lease, so that a standby takes over within its retry period.
pub async fn run(
    client: Client,
    options: Options,
    metrics: Metrics,
    ready: signal::Sender<Readiness>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    // Without election the flag is fixed at true; its sender must live as long as the loop.
    let mut _fixed = None;
    let (mut leading, election) = match &options.election {
        Some(e) => {
            let election = elect(client.clone(), &options.namespace, &options.identity, e);
            (election.leading.clone(), Some(election))
        }
        None => {
            let (tx, rx) = signal::channel(true);
            _fixed = Some(tx);
            (rx, None)
        }
    };
    let (stores, changes) = watch::start(client.clone(), &options.namespace);
    let writer = Writer::new(
        client,
        Some(options.identity.clone()),
        leading.clone(),
        metrics.clone(),
    );
    let (retry_tx, retry_rx) = mpsc::unbounded();
    let mut changes = futures::stream::select(changes, retry_rx);
    let mut loop_state = Loop {
        options: &options,
        stores: &stores,
        writer: &writer,
        metrics: &metrics,
        retry_tx,
        core: None,
        synced: BTreeSet::new(),
        unavailable: Default::default(),
        config_stale: false,
        pools_flushed: None,
        pools_due: false,
    };
    let mut liveness = tokio::time::interval(liveness::CHECK_EVERY);
    liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    metrics.leader(*leading.borrow());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let mut batch = Vec::new();
        tokio::select! {
            _ = &mut shutdown => break,
            _ = liveness.tick() => {
                if *leading.borrow() && loop_state.all_synced() {
                    let writes = liveness::stale_speakers(
                        &stores.speaker_states(),
                        k8s_openapi::jiff::Timestamp::now(),
                        liveness::STALE_AFTER,
                    );
                    for write in &writes {
                        if let Write::SpeakerNotReady { name, .. } = write {
                            tracing::warn!(speaker = %name, "speaker heartbeat stale; marking it not ready");
                        }
                    }
                    writer.apply(writes).await;
                }
                continue;
            }
            changed = leading.changed() => {
                if changed.is_err() {
                    tracing::error!("leader election stopped");
                    break;
                }
                let now = *leading.borrow_and_update();
                metrics.leader(now);
                tracing::info!(identity = %options.identity, leading = now, "leadership changed");
                if !now {
                    loop_state.core = None;
                }
            }
            change = changes.next() => {
                let Some(change) = change else { break };
                batch.push(change);
                while let Some(Some(change)) = changes.next().now_or_never() {
                    batch.push(change);
                }
            }
        }
        let leads = *leading.borrow();
        loop_state.step(batch, leads).await;
        // Once per batch, not per Service: the figures are rebuilt from the whole allocator.
        if let Some(core) = &loop_state.core {
            metrics.observe_allocator(core.allocator());
        }
        ready.send_replace(Readiness {
            ready: loop_state.all_synced() && (!leads || loop_state.core.is_some()),
            unavailable: loop_state.unavailable.clone(),
        });
    }
    if let Some(election) = election {
        election.stop(RELEASE_DEADLINE).await;
    }
    metrics.leader(false);
}

/// The state of the main loop between batches of changes.
struct Loop<'a> {
    options: &'a Options,
    stores: &'a Stores,
    writer: &'a Writer,
    metrics: &'a Metrics,
    retry_tx: mpsc::UnboundedSender<Change>,
    core: Option<Core>,
    synced: BTreeSet<&'static str>,
    /// Kinds that cannot be listed, with why: they count as listed and empty.
    unavailable: std::collections::BTreeMap<&'static str, String>,
    config_stale: bool,
    /// When pool statuses were last flushed, and whether a flush is waiting for its turn.
    pools_flushed: Option<Instant>,
    pools_due: bool,
}

impl Loop<'_> {
    fn all_synced(&self) -> bool {
        self.synced.len() == watch::SOURCES.len()
    }

    /// Handles a batch of changes: duplicates collapse, a relist or a configuration change covers every
    /// Service.
    async fn step(&mut self, batch: Vec<Change>, leads: bool) {
        let mut resync = false;
        let mut config = false;
        let mut services = BTreeSet::new();
        let mut namespaces = BTreeSet::new();
        for change in batch {
            match change {
                Change::Synced(source) => {
                    // A second InitDone means the watch relisted: events may have been missed.
                    resync |= !self.synced.insert(source);
                    if self.unavailable.remove(source).is_some() {
                        self.metrics.unavailable(source, false);
                        config = true;
                    }
                }
                Change::Unavailable(source, reason) => {
                    // Work goes on without this kind, as if it had no objects.
                    self.metrics.unavailable(source, true);
                    self.unavailable.insert(source, reason);
                    resync |= !self.synced.insert(source);
                }
                Change::Service(key) => {
                    services.insert(key);
                }
                Change::Namespace(name) => {
                    namespaces.insert(name);
                }
                Change::Config => config = true,
                Change::PoolStatus => self.pools_due = false,
                Change::Speakers => {}
            }
        }
        if !self.all_synced() || !leads {
            return;
        }
        let Some(core) = &mut self.core else {
            let recorded = self.writer.recorded_warnings().await;
            let started = Instant::now();
            match Core::start_with_recorded(self.options.class.clone(), self.stores, &recorded) {
                Ok((core, outcome)) => {
                    tracing::info!(
                        services = core.allocator().len(),
                        writes = outcome.writes.len(),
                        "took over: every existing assignment imported before allocating"
                    );
                    self.core = Some(core);
                    self.config_stale = false;
                    self.finish(outcome, "start", started).await;
                }
                Err(errors) => {
                    self.metrics.config(false, true);
                    for e in &errors {
                        tracing::error!(problem = %e, "configuration invalid; nothing is allocated until it is fixed");
                    }
                }
            }
            return;
        };
        let started = Instant::now();
        if config {
            let outcome = core.config_changed(self.stores);
            self.config_stale = outcome.config_errors.is_some();
            let covered_all = outcome.covered_all;
            self.finish(outcome, "config", started).await;
            if covered_all {
                return;
            }
        }
        let Some(core) = &mut self.core else { return };
        let started = Instant::now();
        if resync {
            let outcome = core.resync(self.stores);
            self.finish(outcome, "resync", started).await;
            return;
        }
        for ns in namespaces {
            let Some(core) = &mut self.core else { return };
            let started = Instant::now();
            let outcome = core.namespace_changed(self.stores, &ns);
            self.finish(outcome, "namespace", started).await;
        }
        for key in services {
            let Some(core) = &mut self.core else { return };
            let started = Instant::now();
            let outcome = core.service_changed(self.stores, &key);
            self.finish(outcome, "service", started).await;
        }
        self.flush_pool_statuses().await;
    }

    /// Writes the pool statuses that changed, at most once per [`POOL_STATUS_EVERY`]; a flush that comes
    /// too early is sent later by itself, with the figures as they are then.
    async fn flush_pool_statuses(&mut self) {
        if self.core.is_none() {
            return;
        }
        if let Some(last) = self.pools_flushed {
            let wait = POOL_STATUS_EVERY.saturating_sub(last.elapsed());
            if !wait.is_zero() {
                if !self.pools_due {
                    self.pools_due = true;
                    let tx = self.retry_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        let _ = tx.unbounded_send(Change::PoolStatus);
                    });
                }
                return;
            }
        }
        let Some(core) = &mut self.core else { return };
        let started = Instant::now();
        let outcome = core.flush_pool_statuses();
        if !outcome.writes.is_empty() {
            self.pools_flushed = Some(started);
        }
        self.finish(outcome, "pool", started).await;
    }

    /// Writes an outcome, schedules retries, updates the metrics.
    async fn finish(&mut self, outcome: Outcome, change: &str, started: Instant) {
        for code in &outcome.failures {
            self.metrics.allocation_failed(code);
        }
        if let Some(errors) = &outcome.config_errors {
            for e in errors {
                tracing::error!(problem = %e, "configuration invalid; the last valid one stays in force");
            }
        }
        self.metrics.config(true, self.config_stale);
        let retries = self.writer.apply(outcome.writes).await;
        if let Some(core) = &mut self.core {
            for retry in &retries {
                if let Retry::PoolStatus(name) = retry {
                    core.pool_status_lost(name);
                }
            }
        }
        let retries: Vec<Change> = retries
            .into_iter()
            .map(|r| match r {
                Retry::Service(key) => Change::Service(key),
                Retry::PoolStatus(_) => Change::PoolStatus,
            })
            .collect();
        if !retries.is_empty() {
            let tx = self.retry_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(RETRY_AFTER).await;
                for change in retries {
                    let _ = tx.unbounded_send(change);
                }
            });
        }
        self.metrics
            .reconciled(change, started.elapsed().as_secs_f64());
    }
}
