//! The controller's Prometheus metrics. Names follow MetalLB's where an equivalent exists (`metallb_` →
//! `ferrolb_`), so that existing dashboards keep working after the rename.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::Allocator;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// `ferrolb_watch_unavailable{kind}`: 1 while a kind cannot be listed (CRD missing, no permission).
pub fn register_unavailable(registry: &mut Registry) -> Family<KindLabel, Gauge> {
    let family = Family::<KindLabel, Gauge>::default();
    registry.sub_registry_with_prefix("ferrolb").register(
        "watch_unavailable",
        "1 while a watched kind cannot be listed (its CRD is missing or RBAC forbids it); the process works without it",
        family.clone(),
    );
    family
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabel {
    /// `start`, `service`, `namespace`, `config` or `resync`.
    change: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    /// `annotation`, `status`, `event` or `pool_status`.
    target: String,
    /// `ok` or `error`.
    result: String,
}

/// 0.5 ms to 16 s.
fn reconcile_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Handles to every controller metric; cheap to clone (they share the values).
#[derive(Clone, Debug)]
pub struct Metrics {
    addresses_total: Family<PoolLabel, Gauge<f64, AtomicU64>>,
    addresses_in_use: Family<PoolLabel, Gauge<f64, AtomicU64>>,
    pool_conflicts: Family<PoolLabel, Gauge>,
    allocation_failures: Family<ReasonLabel, Counter>,
    reconcile_seconds: Family<ChangeLabel, Histogram>,
    writes: Family<WriteLabels, Counter>,
    config_loaded: Gauge,
    config_stale: Gauge,
    leader: Gauge,
    services: Gauge,
    unavailable: Family<KindLabel, Gauge>,
}

impl Metrics {
    /// Creates the metrics and registers them under `ferrolb_` in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let mut m = Metrics::unregistered();
        m.unavailable = register_unavailable(registry);
        let r = registry.sub_registry_with_prefix("ferrolb");
        r.register(
            "allocator_addresses_total",
            "Number of usable IP addresses, per pool (an IPv6 /64 or larger counts as 2^63-1)",
            m.addresses_total.clone(),
        );
        r.register(
            "allocator_addresses_in_use_total",
            "Number of IP addresses in use, per pool",
            m.addresses_in_use.clone(),
        );
        r.register(
            "allocator_pool_conflicts",
            "Assigned IPs that the pool no longer admits (kept, not renumbered), per pool",
            m.pool_conflicts.clone(),
        );
        r.register(
            "allocator_allocation_failures",
            "Allocation failures reported (an AllocationFailed event), by reason",
            m.allocation_failures.clone(),
        );
        r.register(
            "allocator_reconcile_duration_seconds",
            "Time to decide and write the result of one change, by kind of change",
            m.reconcile_seconds.clone(),
        );
        r.register(
            "allocator_writes",
            "Writes to the API server, by target and result",
            m.writes.clone(),
        );
        r.register(
            "k8s_client_config_loaded_bool",
            "1 if the ferrolb configuration has been loaded at least once",
            m.config_loaded.clone(),
        );
        r.register(
            "k8s_client_config_stale_bool",
            "1 if the latest configuration is invalid and an older one is in force",
            m.config_stale.clone(),
        );
        r.register(
            "allocator_leader",
            "1 while this replica holds the leader Lease and writes",
            m.leader.clone(),
        );
        r.register(
            "allocator_services",
            "Number of Services holding addresses",
            m.services.clone(),
        );
        m
    }

    /// Metrics not exposed anywhere (tests, tools).
    pub fn unregistered() -> Self {
        Metrics {
            addresses_total: Family::default(),
            addresses_in_use: Family::default(),
            pool_conflicts: Family::default(),
            allocation_failures: Family::default(),
            reconcile_seconds: Family::new_with_constructor(reconcile_buckets),
            writes: Family::default(),
            config_loaded: Gauge::default(),
            config_stale: Gauge::default(),
            leader: Gauge::default(),
            services: Gauge::default(),
            unavailable: Family::default(),
        }
    }

    /// Whether a watched kind cannot be listed.
    pub fn unavailable(&self, kind: &str, unavailable: bool) {
        self.unavailable
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .set(unavailable as i64);
    }

    /// Pool figures and counts, from the allocator's incremental statistics.
    pub fn observe_allocator(&self, allocator: &Allocator) {
        self.addresses_total.clear();
        self.addresses_in_use.clear();
        self.pool_conflicts.clear();
        for (pool, s) in allocator.stats() {
            let label = PoolLabel { pool };
            let total = (s.assigned_ipv4 as f64 + s.available_ipv4 as f64)
                + (s.assigned_ipv6 as f64 + s.available_ipv6 as f64);
            self.addresses_total
                .get_or_create(&label)
                .set(total.min(i64::MAX as f64));
            self.addresses_in_use
                .get_or_create(&label)
                .set((s.assigned_ipv4 + s.assigned_ipv6) as f64);
            self.pool_conflicts.get_or_create(&label).set(0);
        }
        for c in allocator.conflicts() {
            if let Some(pool) = c.pool {
                self.pool_conflicts.get_or_create(&PoolLabel { pool }).inc();
            }
        }
        self.services.set(allocator.len() as i64);
    }

    pub fn allocation_failed(&self, code: &str) {
        self.allocation_failures
            .get_or_create(&ReasonLabel {
                reason: code.to_owned(),
            })
            .inc();
    }

    pub fn reconciled(&self, change: &str, seconds: f64) {
        self.reconcile_seconds
            .get_or_create(&ChangeLabel {
                change: change.to_owned(),
            })
            .observe(seconds);
    }

    pub fn wrote(&self, target: &str, ok: bool) {
        self.writes
            .get_or_create(&WriteLabels {
                target: target.to_owned(),
                result: if ok { "ok" } else { "error" }.to_owned(),
            })
            .inc();
    }

    /// `loaded`: a valid configuration is in force; `stale`: the latest one is invalid.
    pub fn config(&self, loaded: bool, stale: bool) {
        self.config_loaded.set(loaded.into());
        self.config_stale.set(stale.into());
    }

    pub fn leader(&self, leading: bool) {
        self.leader.set(leading.into());
    }
}
