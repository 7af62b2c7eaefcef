//! Whole-state allocation: the same objects always give the same assignments, whatever order they come in.
//!
//! Standalone speakers run this independently and must agree; `ferrolb plan` runs it to show what would happen.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use crate::allocator::{AllocEvent, Allocator, Assignment, PoolStats, Reconciled, Settled};
use crate::error::{AllocationError, ConfigError, PoolConflict};
use crate::pool::PoolConfig;
use crate::service::{Ignored, ServiceKey, ServiceView};

/// What every Service gets under these pools, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Handled Services (LoadBalancers of the handled class).
    pub services: BTreeMap<ServiceKey, Planned>,
    /// Services outside the allocator's scope, and why.
    pub ignored: BTreeMap<ServiceKey, Ignored>,
    /// Assigned IPs kept although the pools no longer admit them.
    pub conflicts: Vec<PoolConflict>,
    /// Pool status figures after allocation.
    pub pools: BTreeMap<String, PoolStats>,
}

/// One handled Service's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Planned {
    #[serde(serialize_with = "result_as_object")]
    pub result: Result<Assignment, AllocationError>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<AllocEvent>,
}

/// `{"assignment": …}` or `{"error": …}`.
fn result_as_object<S: Serializer>(
    r: &Result<Assignment, AllocationError>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    enum Outcome<'a> {
        Assignment(&'a Assignment),
        Error(&'a AllocationError),
    }
    match r {
        Ok(a) => Outcome::Assignment(a).serialize(s),
        Err(e) => Outcome::Error(e).serialize(s),
    }
}

/// Allocates for every handled Service from scratch, keeping the IPs in their status: the standalone and
/// `plan` entry point. Services outside the handled scope are left out of the result.
///
/// Deterministic: existing assignments are imported first (Services with more ingress IPs first, then by
/// namespace/name), then every Service is reconciled, oldest first (`creationTimestamp`, then
/// namespace/name), all releases before any allocation. The input order does not matter, and running again on the output (status = the result)
/// changes nothing. Service keys must be unique.
pub fn allocate_all(
    pools: &[PoolConfig],
    class: Option<&str>,
    services: &[ServiceView],
) -> Result<BTreeMap<ServiceKey, Result<Assignment, AllocationError>>, ConfigError> {
    // Collected, then built in one go: the keys arrive (nearly) sorted, which BTreeMap bulk-builds in O(n).
    let mut out = Vec::with_capacity(services.len());
    run(pools, class, services, |svc, outcome| {
        if let Reconciled::Handled { result, .. } = outcome {
            out.push((svc.key(), result));
        }
    })?;
    Ok(out.into_iter().collect())
}

/// [`allocate_all`] with the reasons, events, conflicts and pool figures `ferrolb plan` shows.
pub fn plan(
    pools: &[PoolConfig],
    class: Option<&str>,
    services: &[ServiceView],
) -> Result<Plan, ConfigError> {
    let mut handled = Vec::with_capacity(services.len());
    let mut ignored = Vec::new();
    let allocator = run(pools, class, services, |svc, outcome| match outcome {
        Reconciled::Ignored { reason, .. } => ignored.push((svc.key(), reason)),
        Reconciled::Handled { result, events } => {
            handled.push((svc.key(), Planned { result, events }))
        }
    })?;
    Ok(Plan {
        services: handled.into_iter().collect(),
        ignored: ignored.into_iter().collect(),
        conflicts: allocator.conflicts(),
        pools: allocator.stats(),
    })
}

/// The whole-state pass. `each` receives every Service's outcome once (successes in allocation order,
/// then failures); the allocator is returned in its final state.
fn run(
    pools: &[PoolConfig],
    class: Option<&str>,
    services: &[ServiceView],
    mut each: impl FnMut(&ServiceView, Reconciled),
) -> Result<Allocator, ConfigError> {
    let mut allocator = Allocator::new(class.map(str::to_owned));
    allocator.set_pools(pools.to_vec())?;
    allocator.reserve(services.len());

    let by_key =
        |a: &&ServiceView, b: &&ServiceView| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name));
    let mut order: Vec<&ServiceView> = services.iter().collect();
    // Restart order (MetalLB's reload pass): dual-stack holders claim both addresses before single ones.
    order.sort_unstable_by(|a, b| {
        b.ingress_ips
            .len()
            .cmp(&a.ingress_ips.len())
            .then_with(|| by_key(a, b))
    });
    for svc in &order {
        // Rejections are reported again, as a Cleared event, when the Service is settled below.
        allocator.import(svc);
    }

    // Allocation order: older Services first (creationTimestamp; those without one last), then by
    // namespace/name. A new Service therefore never takes an address an older one would get.
    order.sort_unstable_by(|a, b| {
        (a.created.is_none(), a.created)
            .cmp(&(b.created.is_none(), b.created))
            .then_with(|| by_key(a, b))
    });
    // Every release (settle) before any allocation (finish), so that one pass reaches a fixed point.
    let settled: Vec<Settled> = order.iter().map(|svc| allocator.settle(svc)).collect();
    let mut failed = Vec::new();
    for (svc, settled) in order.iter().zip(settled) {
        match allocator.finish(settled) {
            Reconciled::Handled {
                result: Err(error),
                events,
            } => failed.push((*svc, error, events)),
            outcome => each(svc, outcome),
        }
    }
    // A failure is explained against the final state (the one a re-run would see), not the state at the
    // moment the Service was tried: allocations only add holders, so it still fails, for reasons that do
    // not depend on the order Services were tried in.
    for (svc, error, events) in failed {
        let error = allocator.failure(svc).unwrap_or(error);
        each(
            svc,
            Reconciled::Handled {
                result: Err(error),
                events,
            },
        );
    }
    Ok(allocator)
}
