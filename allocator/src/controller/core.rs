//! The controller's decisions, without I/O: from what the watches show ([`Cluster`]) to the writes that make
//! the cluster agree with the allocator ([`Write`]).
//!
//! The allocator's memory is the truth while this replica leads; the API objects are only compared against
//! it, so that a write is produced only when the object says something else (no status churn), and a write
//! the watch has not echoed yet never causes a second allocation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_crds::config::Config;
use ferrolb_crds::manifest::Objects;
use ferrolb_crds::{validate, IPAddressPoolStatus, PoolConflictStatus};
use k8s_openapi::api::core::v1::{ObjectReference, Service};

use crate::adapt::{ingress_ips, pool_config, service_key, service_view_with};
use crate::annotations::IP_ALLOCATED_FROM_POOL;
use crate::{AllocEvent, Allocator, Ignored, Imported, Labels, Reconciled, ServiceKey};

/// What the controller reads: the watched objects, as the reflectors currently hold them.
pub trait Cluster {
    /// One Service.
    fn service(&self, key: &ServiceKey) -> Option<Arc<Service>>;
    /// Every Service.
    fn services(&self) -> Vec<Arc<Service>>;
    /// The labels of a Namespace (for `namespaceSelectors`); empty when unknown.
    fn namespace_labels(&self, namespace: &str) -> Labels;
    /// The ferrolb objects of the controller's namespace.
    fn config_objects(&self) -> Objects;
}

/// Severity of a Kubernetes Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

/// One change to make in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Set (server-side apply) or remove the `ferrolb.io/ip-allocated-from-pool` annotation.
    PoolAnnotation {
        service: ServiceKey,
        pool: Option<String>,
    },
    /// Set (server-side apply) or clear (`ips` empty) `status.loadBalancer.ingress`.
    Ingress {
        service: ServiceKey,
        ips: Vec<IpAddr>,
    },
    /// Record an Event about a Service.
    Event {
        regarding: ObjectReference,
        severity: Severity,
        reason: &'static str,
        note: String,
    },
    /// Server-side apply an IPAddressPool's status.
    PoolStatus {
        namespace: Option<String>,
        name: String,
        status: IPAddressPoolStatus,
    },
    /// Mark a speaker whose heartbeat stopped not ready (its SpeakerState's `Ready` condition).
    SpeakerNotReady {
        namespace: Option<String>,
        name: String,
        condition: ferrolb_crds::SpeakerCondition,
    },
}

impl Write {
    /// The Service a write concerns, if any: writes for one Service must be made in order.
    pub fn service(&self) -> Option<ServiceKey> {
        match self {
            Write::PoolAnnotation { service, .. } | Write::Ingress { service, .. } => {
                Some(service.clone())
            }
            Write::Event { regarding, .. } => Some(ServiceKey::new(
                regarding.namespace.clone().unwrap_or_default(),
                regarding.name.clone().unwrap_or_default(),
            )),
            Write::PoolStatus { .. } | Write::SpeakerNotReady { .. } => None,
        }
    }
}

/// What one step decided.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// In order; writes about one Service keep their relative order.
    pub writes: Vec<Write>,
    /// The code of every allocation failure newly reported (the `AllocationFailed` events of this step).
    pub failures: Vec<&'static str>,
    /// Set when the configuration just read is invalid: every problem, one line each. The last good
    /// configuration stays in force.
    pub config_errors: Option<Vec<String>>,
    /// Every Service was reconciled and the pool statuses flushed (a resync): nothing else in the same
    /// batch needs doing, and doing it again would repeat writes the watches have not echoed yet.
    pub covered_all: bool,
}

impl Outcome {
    fn extend(&mut self, other: Outcome) {
        self.writes.extend(other.writes);
        self.failures.extend(other.failures);
        self.covered_all |= other.covered_all;
        if other.config_errors.is_some() {
            self.config_errors = other.config_errors;
        }
    }
}

/// The controller's state while it leads: the allocator plus what it has already told the user.
#[derive(Debug)]
pub struct Core {
    allocator: Allocator,
    /// The configuration in force (the last valid one).
    config: Config,
    /// Warnings last reported per Service, so that a condition that persists is reported once, not on every
    /// resync. A Service in here with an `AllocationFailed` warning is waiting for an address.
    reported: HashMap<ServiceKey, BTreeSet<(&'static str, String)>>,
    /// Namespace labels as last seen, to reconcile a namespace's Services only when its labels change.
    namespace_labels: HashMap<String, Labels>,
    /// Pool status as last written (or observed on start), by pool name.
    pool_status: BTreeMap<String, IPAddressPoolStatus>,
}

const ALLOCATION_FAILED: &str = "AllocationFailed";

/// Every reason of a warning event the controller records.
pub const WARNING_REASONS: [&str; 5] = [
    ALLOCATION_FAILED,
    "AdditionalAssignFailed",
    "InvalidRequest",
    "DeprecatedAnnotation",
    "PoolConflict",
];

/// A warning event found on a Service at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedWarning {
    pub service: ServiceKey,
    /// The uid of the Service the event is about.
    pub uid: String,
    pub reason: String,
    pub note: String,
}

impl Core {
    /// Takes over from whatever ran before: reads the configuration, registers every IP that Services
    /// already hold (those with more IPs first), and only then reconciles every Service. Fails, changing
    /// nothing, when the configuration is invalid: nothing can be allocated safely without the pools.
    pub fn start(
        class: Option<String>,
        cluster: &dyn Cluster,
    ) -> Result<(Core, Outcome), Vec<String>> {
        Core::start_with_recorded(class, cluster, &[])
    }

    /// [`Core::start`], knowing the warnings already recorded as events on the Services (by an earlier
    /// leader or run): a warning that still holds is not recorded again.
    pub fn start_with_recorded(
        class: Option<String>,
        cluster: &dyn Cluster,
        recorded: &[RecordedWarning],
    ) -> Result<(Core, Outcome), Vec<String>> {
        let objects = cluster.config_objects();
        let config = validate(&objects).map_err(|errors| lines(&errors))?;
        let mut allocator = Allocator::new(class);
        allocator
            .set_pools(config.pools.iter().map(pool_config).collect())
            .map_err(|e| vec![e.to_string()])?;
        let pool_status = objects
            .ip_address_pools
            .iter()
            .filter_map(|p| Some((p.metadata.name.clone()?, p.status.clone()?)))
            .collect();
        let mut core = Core {
            allocator,
            config,
            reported: HashMap::new(),
            namespace_labels: HashMap::new(),
            pool_status,
        };

        for warning in recorded {
            let Some(reason) = WARNING_REASONS.iter().find(|r| **r == warning.reason) else {
                continue;
            };
            // Only about the Service as it is now, not an earlier one of the same name.
            let current = cluster.service(&warning.service);
            if current.is_some_and(|s| s.metadata.uid.as_deref() == Some(warning.uid.as_str())) {
                core.reported
                    .entry(warning.service.clone())
                    .or_default()
                    .insert((reason, warning.note.clone()));
            }
        }
        let mut services = cluster.services();
        services.sort_by_cached_key(|s| (std::cmp::Reverse(ingress_ips(s).len()), service_key(s)));
        core.allocator.reserve(services.len());
        let mut outcome = Outcome::default();
        for svc in &services {
            let view = core.view(cluster, svc);
            // A rejected import is reported by the reconcile below, which allocates anew.
            let _: Imported = core.allocator.import(&view);
        }
        services.sort_by_cached_key(|s| service_key(s));
        for svc in &services {
            outcome.extend(core.reconcile(cluster, svc));
        }
        outcome.extend(core.flush_pool_statuses());
        Ok((core, outcome))
    }

    /// The allocator (read-only), for metrics.
    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    /// A Service was added or changed (`Some`), or deleted (`None` in the cluster).
    pub fn service_changed(&mut self, cluster: &dyn Cluster, key: &ServiceKey) -> Outcome {
        match cluster.service(key) {
            Some(svc) => self.reconcile(cluster, &svc),
            None => {
                self.reported.remove(key);
                let released = self.allocator.release(key);
                let mut outcome = Outcome::default();
                if !released.is_empty() {
                    outcome.extend(self.retry_waiting(cluster));
                }
                outcome
            }
        }
    }

    /// A Namespace was added or changed: its Services are reconciled if its labels changed.
    pub fn namespace_changed(&mut self, cluster: &dyn Cluster, namespace: &str) -> Outcome {
        let labels = cluster.namespace_labels(namespace);
        if self.namespace_labels.get(namespace) == Some(&labels) {
            return Outcome::default();
        }
        self.namespace_labels.insert(namespace.to_owned(), labels);
        let mut services: Vec<Arc<Service>> = cluster
            .services()
            .into_iter()
            .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
            .collect();
        services.sort_by_cached_key(|s| service_key(s));
        let mut outcome = Outcome::default();
        for svc in &services {
            outcome.extend(self.reconcile(cluster, svc));
        }
        outcome
    }

    /// One of the ferrolb objects changed. An invalid configuration is reported and changes nothing; a valid
    /// one whose pools differ is put in force and every Service reconciled against it (assigned IPs that no
    /// longer fit are kept and reported, never renumbered).
    pub fn config_changed(&mut self, cluster: &dyn Cluster) -> Outcome {
        let config = match validate(&cluster.config_objects()) {
            Ok(config) => config,
            Err(errors) => {
                return Outcome {
                    config_errors: Some(lines(&errors)),
                    ..Outcome::default()
                }
            }
        };
        if config.pools == self.config.pools {
            self.config = config;
            return Outcome::default();
        }
        if let Err(e) = self
            .allocator
            .set_pools(config.pools.iter().map(pool_config).collect())
        {
            return Outcome {
                config_errors: Some(vec![e.to_string()]),
                ..Outcome::default()
            };
        }
        self.config = config;
        self.resync(cluster)
    }

    /// Reconciles every Service and forgets the ones that are gone (after the watch lost track and
    /// relisted).
    pub fn resync(&mut self, cluster: &dyn Cluster) -> Outcome {
        let mut services = cluster.services();
        services.sort_by_cached_key(|s| service_key(s));
        let present: BTreeSet<ServiceKey> = services.iter().map(|s| service_key(s)).collect();
        let gone: Vec<ServiceKey> = self
            .allocator
            .assignments()
            .map(|(k, _)| k)
            .filter(|k| !present.contains(k))
            .collect();
        for key in &gone {
            self.allocator.release(key);
            self.reported.remove(key);
        }
        self.reported.retain(|k, _| present.contains(k));
        let mut outcome = Outcome::default();
        for svc in &services {
            outcome.extend(self.reconcile(cluster, svc));
        }
        outcome.extend(self.flush_pool_statuses());
        outcome.covered_all = true;
        outcome
    }

    /// A pool status write failed: write it again on the next step.
    pub fn pool_status_lost(&mut self, name: &str) {
        self.pool_status.remove(name);
    }

    /// Services waiting for an address get another try (some were just freed).
    fn retry_waiting(&mut self, cluster: &dyn Cluster) -> Outcome {
        let mut waiting: Vec<ServiceKey> = self
            .reported
            .iter()
            .filter(|(_, r)| r.iter().any(|(reason, _)| *reason == ALLOCATION_FAILED))
            .map(|(k, _)| k.clone())
            .collect();
        waiting.sort();
        let mut outcome = Outcome::default();
        for key in waiting {
            if let Some(svc) = cluster.service(&key) {
                outcome.extend(self.reconcile(cluster, &svc));
            }
        }
        outcome
    }

    fn view(&mut self, cluster: &dyn Cluster, svc: &Service) -> crate::ServiceView {
        let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
        let labels = match self.namespace_labels.get(ns) {
            Some(l) => l.clone(),
            None => {
                let l = cluster.namespace_labels(ns);
                self.namespace_labels.insert(ns.to_owned(), l.clone());
                l
            }
        };
        let mut view = service_view_with(svc, labels);
        // A LoadBalancer Service of another class holds its IPs too: they are registered under this
        // controller's class, so that its allocator treats them as taken (see `reconcile`).
        if view.is_load_balancer && view.load_balancer_class.as_deref() != self.allocator.class() {
            view.load_balancer_class = self.allocator.class().map(str::to_owned);
            // Never shared with a Service of this class: the other controller decides about sharing.
            view.annotations
                .retain(|k, _| !crate::annotations::is_sharing_key(k));
        }
        view
    }

    /// Whether a Service is a LoadBalancer of another class: another controller allocates it, and its IPs
    /// are only kept out of this controller's reach.
    fn is_foreign(&self, svc: &Service) -> bool {
        let spec = svc.spec.as_ref();
        spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
            && spec.and_then(|s| s.load_balancer_class.as_deref()) != self.allocator.class()
    }

    /// One Service: allocate or check, then the writes that bring its object in line, and the events.
    fn reconcile(&mut self, cluster: &dyn Cluster, svc: &Service) -> Outcome {
        let view = self.view(cluster, svc);
        let key = view.key();
        if self.is_foreign(svc) {
            // Another class: register exactly the IPs its status shows (none: nothing held), never
            // allocate, write or report anything about it. Two controllers of different classes thus
            // never hand out one IP twice.
            let released = self.allocator.release(&key);
            let mut outcome = Outcome::default();
            if !view.ingress_ips.is_empty() {
                if let Imported::Rejected { .. } = self.allocator.import(&view) {
                    outcome.extend(self.settle_contest(cluster, svc, &view));
                }
            }
            let still: Vec<IpAddr> = self
                .allocator
                .assignment(&key)
                .map(|a| a.ips)
                .unwrap_or_default();
            if released.iter().any(|ip| !still.contains(ip)) {
                outcome.extend(self.retry_waiting(cluster));
            }
            return outcome;
        }
        let mut outcome = Outcome::default();
        let mut warnings: BTreeSet<(&'static str, String)> = BTreeSet::new();
        let mut freed = false;
        let desired: Option<(Vec<IpAddr>, Option<String>)> = match self.allocator.reconcile(&view) {
            Reconciled::Ignored { reason, released } => {
                let ours = observed_pool(svc).is_some();
                if !released.is_empty() {
                    freed = true;
                    outcome.writes.push(event(
                        svc,
                        Severity::Normal,
                        "ClearAssignment",
                        format!("released {}: {reason}", join(&released)),
                    ));
                }
                // Clear only what ferrolb wrote: a Service of another class belongs to another controller.
                let clear = !released.is_empty() || (reason == Ignored::NotLoadBalancer && ours);
                clear.then(|| (Vec::new(), None))
            }
            Reconciled::Handled { result, events } => {
                for e in events {
                    match e {
                        AllocEvent::Allocated { ips, pool } => outcome.writes.push(event(
                            svc,
                            Severity::Normal,
                            "IPAllocated",
                            format!("assigned IP {} from pool {pool}", join(&ips)),
                        )),
                        AllocEvent::AddedFamily { ip, pool } => outcome.writes.push(event(
                            svc,
                            Severity::Normal,
                            "IPAllocated",
                            format!("added IP {ip} from pool {pool} (PreferDualStack)"),
                        )),
                        AllocEvent::Cleared { ips, reason } => {
                            freed = true;
                            outcome.writes.push(event(
                                svc,
                                Severity::Normal,
                                "ClearAssignment",
                                format!("cleared {}: {reason}", join(&ips)),
                            ))
                        }
                        AllocEvent::AdditionalFamilyFailed { error } => {
                            warnings.insert(("AdditionalAssignFailed", error.to_string()));
                        }
                        AllocEvent::RequestIgnored { error } => {
                            warnings.insert((
                                "InvalidRequest",
                                format!("{error}; keeping the current IPs"),
                            ));
                        }
                        AllocEvent::DeprecatedAnnotation { alias } => {
                            warnings.insert(("DeprecatedAnnotation", alias.to_string()));
                        }
                    }
                }
                match result {
                    Ok(assignment) => {
                        if let Some(stranded) = &assignment.stranded {
                            warnings.insert((
                                "PoolConflict",
                                format!("keeps {} although {}", join(&assignment.ips), stranded),
                            ));
                        }
                        Some((assignment.ips, assignment.pool))
                    }
                    Err(error) => {
                        warnings.insert((ALLOCATION_FAILED, error.to_string()));
                        if !self.already_reported(&key, ALLOCATION_FAILED, &error.to_string()) {
                            outcome.failures.push(error.code());
                        }
                        Some((Vec::new(), None))
                    }
                }
            }
        };

        let before = self.reported.remove(&key).unwrap_or_default();
        for (reason, note) in warnings.difference(&before) {
            outcome
                .writes
                .push(event(svc, Severity::Warning, reason, note.clone()));
        }
        if !warnings.is_empty() {
            self.reported.insert(key.clone(), warnings);
        }

        if let Some((ips, pool)) = desired {
            let mut writes = status_writes(svc, &key, &ips, pool);
            // The annotation and the status go before the events that describe them.
            writes.append(&mut outcome.writes);
            outcome.writes = writes;
        }
        if freed {
            outcome.extend(self.retry_waiting(cluster));
        }
        outcome
    }

    /// A Service of another class shows an IP that one of this controller's Services holds: the two
    /// controllers allocated it at the same moment, before either saw the other's write. Both apply the
    /// same rule, so exactly one gives way: the Service created later (then by name) is renumbered, and
    /// the older keeps its IP.
    fn settle_contest(
        &mut self,
        cluster: &dyn Cluster,
        foreign: &Service,
        view: &crate::ServiceView,
    ) -> Outcome {
        let age = |s: &Service| {
            (
                s.metadata.creation_timestamp.as_ref().map(|t| t.0),
                service_key(s),
            )
        };
        let foreign_age = age(foreign);
        let mut ours: Vec<ServiceKey> = view
            .ingress_ips
            .iter()
            .flat_map(|ip| self.allocator.holders(*ip))
            .collect();
        ours.sort();
        ours.dedup();
        let mut yielded = Vec::new();
        for key in ours {
            let Some(svc) = cluster.service(&key) else {
                continue;
            };
            if age(&svc) > foreign_age {
                let ips = self.allocator.release(&key);
                yielded.push((svc, ips));
            }
        }
        let mut outcome = Outcome::default();
        if yielded.is_empty() {
            return outcome;
        }
        let _: Imported = self.allocator.import(view);
        for (svc, ips) in yielded {
            outcome.writes.push(event(
                &svc,
                Severity::Warning,
                "IPContested",
                format!(
                    "{} was allocated at the same moment to {}, of another class, created earlier; allocating anew",
                    join(&ips),
                    service_key(foreign)
                ),
            ));
            outcome.extend(self.reconcile(cluster, &svc));
        }
        outcome
    }

    fn already_reported(&self, key: &ServiceKey, reason: &str, note: &str) -> bool {
        self.reported
            .get(key)
            .is_some_and(|r| r.iter().any(|(r, n)| *r == reason && n == note))
    }

    /// Pool status writes for every pool whose figures or conflicts changed since last written. Service and
    /// namespace changes leave this to the caller, so that a batch of them writes each pool once.
    pub fn flush_pool_statuses(&mut self) -> Outcome {
        // One writer per pool status: the controller of Services without a class. It counts the IPs of
        // every class (they are registered in its allocator too), so a class controller has nothing to add.
        if self.allocator.class().is_some() {
            return Outcome::default();
        }
        let stats = self.allocator.stats();
        let mut conflicts: BTreeMap<String, Vec<PoolConflictStatus>> = BTreeMap::new();
        for c in self.allocator.conflicts() {
            if let Some(pool) = c.pool {
                conflicts.entry(pool).or_default().push(PoolConflictStatus {
                    service: c.service.to_string(),
                    ip: c.ip.to_string(),
                    reason: c.reason.to_string(),
                });
            }
        }
        let mut outcome = Outcome::default();
        for pool in &self.config.pools {
            let Some(s) = stats.get(&pool.name) else {
                continue;
            };
            let status = IPAddressPoolStatus {
                assigned_ipv4: s.assigned_ipv4,
                assigned_ipv6: s.assigned_ipv6,
                available_ipv4: s.available_ipv4,
                available_ipv6: s.available_ipv6,
                conflicts: conflicts.remove(&pool.name).unwrap_or_default(),
            };
            if self.pool_status.get(&pool.name) != Some(&status) {
                self.pool_status.insert(pool.name.clone(), status.clone());
                outcome.writes.push(Write::PoolStatus {
                    namespace: pool.namespace.clone(),
                    name: pool.name.clone(),
                    status,
                });
            }
        }
        outcome
    }
}

/// The writes that make a Service's object show `ips` and `pool`: nothing when it already does.
fn status_writes(
    svc: &Service,
    key: &ServiceKey,
    ips: &[IpAddr],
    pool: Option<String>,
) -> Vec<Write> {
    let mut writes = Vec::new();
    if observed_pool(svc) != pool.as_deref() {
        writes.push(Write::PoolAnnotation {
            service: key.clone(),
            pool,
        });
    }
    if !ingress_matches(svc, ips) {
        writes.push(Write::Ingress {
            service: key.clone(),
            ips: ips.to_vec(),
        });
    }
    writes
}

fn observed_pool(svc: &Service) -> Option<&str> {
    svc.metadata
        .annotations
        .as_ref()?
        .get(IP_ALLOCATED_FROM_POOL)
        .map(String::as_str)
}

/// Whether `status.loadBalancer.ingress` lists exactly `ips`, in order, and nothing else (no hostname entry).
fn ingress_matches(svc: &Service, ips: &[IpAddr]) -> bool {
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or_default();
    ingress.len() == ips.len()
        && ingress
            .iter()
            .zip(ips)
            .all(|(i, ip)| i.ip.as_deref().and_then(|s| s.parse().ok()) == Some(*ip))
}

fn event(svc: &Service, severity: Severity, reason: &'static str, note: String) -> Write {
    Write::Event {
        regarding: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            namespace: svc.metadata.namespace.clone(),
            name: svc.metadata.name.clone(),
            uid: svc.metadata.uid.clone(),
            resource_version: svc.metadata.resource_version.clone(),
            ..ObjectReference::default()
        },
        severity,
        reason,
        note,
    }
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn lines(errors: &[ferrolb_crds::validate::ConfigError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}
