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
/// changes nothing. Service keys should be unique; of a repeated one, the last copy counts.
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

    // Namespace/name order once, then both orders below sort plain integers (see `by_key`).
    let by_key = by_key(services);
    let mut ranked: Vec<(usize, u32)> = by_key
        .iter()
        .enumerate()
        .map(|(rank, svc)| (usize::MAX - svc.ingress_ips.len(), rank as u32))
        .collect();
    // Restart order (MetalLB's reload pass): dual-stack holders claim both addresses before single ones.
    ranked.sort_unstable();
    // Where import left each Service (by rank), so that settling it below needs no second lookup.
    let mut found = vec![None; by_key.len()];
    for &(_, rank) in &ranked {
        // Rejections are reported again, as a Cleared event, when the Service is settled below.
        let (_, slot) = allocator.import_found(by_key[rank as usize]);
        found[rank as usize] = Some(slot);
    }

    // Allocation order: older Services first (creationTimestamp; those without one last), then by
    // namespace/name. A new Service therefore never takes an address an older one would get.
    let mut ranked: Vec<(bool, Option<i64>, u32)> = by_key
        .iter()
        .enumerate()
        .map(|(rank, svc)| (svc.created.is_none(), svc.created, rank as u32))
        .collect();
    ranked.sort_unstable();
    let order: Vec<(&ServiceView, u32)> = ranked
        .iter()
        .map(|&(_, _, r)| (by_key[r as usize], r))
        .collect();
    drop((ranked, by_key));
    // Every release (settle) before any allocation (finish), so that one pass reaches a fixed point.
    // Settling a Service changes only its own slot, so each one found above is still current.
    let settled: Vec<Settled> = order
        .iter()
        .map(|&(svc, rank)| {
            let slot = found[rank as usize].take().expect("imported");
            allocator.settle_found(svc, slot)
        })
        .collect();
    drop(found);
    let mut failed = Vec::new();
    for (&(svc, _), settled) in order.iter().zip(settled) {
        match allocator.finish(settled) {
            Reconciled::Handled {
                result: Err(error),
                events,
            } => failed.push((svc, error, events)),
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

/// `services` in namespace/name order, each key once: a repeated key keeps its last copy in input order, as
/// applying the same manifests to a cluster would. Sorted on inline copies of the first 16 bytes of both
/// strings, so that comparisons rarely follow the pointers to the strings: with a million Services, each of
/// those is a cache miss, and a comparison sort makes ~20 million comparisons.
fn by_key(services: &[ServiceView]) -> Vec<&ServiceView> {
    let mut keys: Vec<(Prefix, Prefix, usize, &ServiceView)> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (Prefix::of(&s.namespace), Prefix::of(&s.name), i, s))
        .collect();
    // The latest copy of a key first, so that `dedup_by` (which keeps the first of a run) keeps it.
    keys.sort_unstable_by(|a, b| {
        (a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1))).then_with(|| b.2.cmp(&a.2))
    });
    keys.dedup_by(|later, first| later.0 == first.0 && later.1 == first.1);
    keys.into_iter().map(|(_, _, _, s)| s).collect()
}

/// A string, ordered as `str` is, with its first 16 bytes inline.
#[derive(Clone, Copy)]
struct Prefix<'a> {
    /// The first 16 bytes, big-endian, zero-padded.
    head: u128,
    s: &'a str,
}

impl<'a> Prefix<'a> {
    fn of(s: &'a str) -> Self {
        let mut head = [0u8; 16];
        let n = s.len().min(16);
        head[..n].copy_from_slice(&s.as_bytes()[..n]);
        Self {
            head: u128::from_be_bytes(head),
            s,
        }
    }
}

impl Ord for Prefix<'_> {
    /// Different heads decide (the first differing byte, or the end of the shorter string, comes first: zero
    /// padding sorts before any byte but 0, and a 0 byte ties with padding). Equal heads of two strings of at
    /// most 16 bytes mean one is a prefix of the other; otherwise the full strings decide.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.head.cmp(&other.head).then_with(|| {
            if self.s.len() <= 16 && other.s.len() <= 16 {
                self.s.len().cmp(&other.s.len())
            } else {
                self.s.cmp(other.s)
            }
        })
    }
}

impl PartialOrd for Prefix<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Prefix<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Prefix<'_> {}

#[cfg(test)]
mod tests {
    use super::Prefix;
    use proptest::prelude::*;

    fn check(a: &str, b: &str) {
        assert_eq!(
            Prefix::of(a).cmp(&Prefix::of(b)),
            a.cmp(b),
            "{a:?} vs {b:?}"
        );
    }

    #[test]
    fn prefix_orders_as_str() {
        let cases = [
            "",
            "\0",
            "a",
            "a\0",
            "a\0b",
            "ab",
            "ab\0",
            "b",
            "ns-1",
            "ns-10",
            "ns-1-x",
            "svc-123456",
            "svc-1234567890123456",
            "svc-1234567890123457",
            "svc-123456789012345",
            "\u{ff}\u{ff}",
        ];
        for a in cases {
            for b in cases {
                check(a, b);
            }
        }
    }

    proptest! {
        #[test]
        fn prefix_orders_as_random_str(a in "[\\x00ab-]{0,20}", b in "[\\x00ab-]{0,20}") {
            check(&a, &b);
        }
    }
}
