//! The allocator: MetalLB's rules (metallb-semantics.md §2, §3.1, §3.3) over per-CIDR free-address sets, plus
//! ferrolb's stability rules (issue 3 part 4). Pure: no I/O, no clock, and results never depend on hash seeds
//! or input order.
//!
//! Life of an assignment:
//! - **import** (on start, from `status.loadBalancer.ingress`) registers what Services already hold, before
//!   anything is allocated, so no held IP is ever handed out twice;
//! - **reconcile** keeps an assignment while it is valid, drops it when the *Service* asks for something else
//!   (another pool, other IPs, other families, an incompatible sharing key or port), and otherwise allocates;
//! - **set_pools** never renumbers: an assignment a pool edit or deletion leaves outside the rules is kept,
//!   still blocks its IP, and is reported as a [`PoolConflict`] until the pools admit it again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::addrset::AddressSpace;
use crate::annotations::{AliasUse, Annotations};
use crate::error::{
    AllocationError, ClearReason, ConfigError, PoolConflict, Shortfall, StrandedReason,
};
use crate::held::HeldIps;
use crate::pool::PoolConfig;
use crate::request::{Need, Request, ShareKey};
use crate::selector::{LabelSet, NamespaceLabels};
use crate::service::{Ignored, IpFamily, ServiceKey, ServiceView};
use crate::table::{Sid, StoredKey, Table, Vacant};

/// The IPs a Service holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// For `status.loadBalancer.ingress`: allocated dual-stack pairs are IPv4 first (as MetalLB writes them);
    /// requested and imported IPs keep their order.
    pub ips: Vec<IpAddr>,
    /// For the `ferrolb.io/ip-allocated-from-pool` annotation. None only for a stranded assignment whose pool
    /// is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Set when a pool edit or deletion left these IPs outside the rules; they are kept anyway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stranded: Option<StrandedReason>,
}

/// Something the controller may want to tell the user (as a Kubernetes Event) about one reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum AllocEvent {
    /// New IPs (`IPAllocated`).
    Allocated { ips: Vec<IpAddr>, pool: String },
    /// PreferDualStack: the missing family was added from the same pool (`IPAllocated`).
    AddedFamily { ip: IpAddr, pool: String },
    /// PreferDualStack: the missing family could not be added; the Service keeps one IP
    /// (`AdditionalAssignFailed`).
    AdditionalFamilyFailed { error: AllocationError },
    /// The previous IPs were dropped before allocating anew (`ClearAssignment`).
    Cleared {
        ips: Vec<IpAddr>,
        reason: ClearReason,
    },
    /// The Service's IP request is malformed; its current IPs are kept until it is fixed.
    RequestIgnored { error: AllocationError },
    /// A MetalLB-style annotation was read (`deprecatedAnnotation`).
    DeprecatedAnnotation { alias: AliasUse },
}

/// Result of [`Allocator::reconcile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// Not a Service this allocator handles; any IPs it held were released (clear its status).
    Ignored {
        reason: Ignored,
        released: Vec<IpAddr>,
    },
    /// A handled Service: its assignment or why it has none, and what happened on the way.
    Handled {
        result: Result<Assignment, AllocationError>,
        events: Vec<AllocEvent>,
    },
}

impl Reconciled {
    /// The assignment, if any.
    pub fn assignment(&self) -> Option<&Assignment> {
        match self {
            Reconciled::Handled { result: Ok(a), .. } => Some(a),
            _ => None,
        }
    }
}

/// Result of [`Allocator::import`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    /// The status IPs are registered; `stranded` tells if they no longer fit the pools (kept anyway).
    Registered {
        stranded: Option<StrandedReason>,
    },
    /// The status IPs cannot be kept (the Service now asks for something else, or another Service imported
    /// first holds them incompatibly); the next reconcile allocates anew.
    Rejected {
        ips: Vec<IpAddr>,
        reason: ClearReason,
    },
    /// Nothing in status.
    NoStatus,
    /// The allocator already tracks this Service; import changes nothing.
    AlreadyKnown,
    Ignored(Ignored),
}

/// Pool status figures (IPAddressPool `status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PoolStats {
    #[serde(rename = "assignedIPv4")]
    pub assigned_ipv4: i64,
    #[serde(rename = "assignedIPv6")]
    pub assigned_ipv6: i64,
    /// An IPv6 CIDR with ≥ 62 host bits makes this `i64::MAX`.
    #[serde(rename = "availableIPv4")]
    pub available_ipv4: i64,
    #[serde(rename = "availableIPv6")]
    pub available_ipv6: i64,
}

/// Allocates LoadBalancer IPs. See the module documentation for the life of an assignment.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    class: Option<String>,
    pools: Pools,
    /// Every Service holding IPs (or stranded with them).
    services: Table<Record>,
    /// Every IP some Service holds, in or out of a pool.
    held: HeldIps,
    /// Held IPs whose holders share them (non-empty sharing key), by key: where a sharing Service may join.
    shared: BTreeMap<ShareKey, BTreeSet<IpAddr>>,
    /// Services whose IPs are stranded.
    stranded: BTreeSet<Sid>,
    /// The namespaces' labels, one copy shared by the records of each. A change of a namespace's labels
    /// starts a new copy; records keep the old one until their Service is reconciled again.
    namespace_labels: NamespaceLabels,
}

#[derive(Debug, Clone)]
struct Record {
    ips: Ips,
    /// The pool the IPs came from (the last pool in which they were valid).
    pool: Option<Arc<str>>,
    /// Also the sharing identity of its IPs: all holders of an IP have equal `share`.
    request: Request,
    stranded: Option<Box<Stranded>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stranded {
    reason: StrandedReason,
    /// The IPs the reason applies to.
    ips: Vec<IpAddr>,
}

/// The Service an allocation or check is for: its slot if it is tracked (so that its own hold on an IP is
/// not a conflict), and its namespace (for pool admission).
#[derive(Debug, Clone, Copy)]
struct Claimant<'a> {
    sid: Option<Sid>,
    namespace: &'a str,
}

/// The one or two IPs of a Service, inline (at most one per family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ips {
    buf: [IpAddr; 2],
    len: u8,
}

impl Ips {
    fn new(ips: &[IpAddr]) -> Self {
        assert!(
            (1..=2).contains(&ips.len()),
            "a Service holds one or two IPs"
        );
        Self {
            buf: [ips[0], *ips.last().expect("non-empty")],
            len: ips.len() as u8,
        }
    }

    fn push(&mut self, ip: IpAddr) {
        assert_eq!(self.len, 1, "a Service holds one or two IPs");
        self.buf[1] = ip;
        self.len = 2;
    }
}

impl std::ops::Deref for Ips {
    type Target = [IpAddr];
    fn deref(&self) -> &[IpAddr] {
        &self.buf[..usize::from(self.len)]
    }
}

/// Why an existing assignment is not valid.
enum Invalid {
    /// The Service asks for something else: drop it and allocate anew (MetalLB behaviour).
    Explicit(ClearReason),
    /// It does not fit the pools: kept if the pools changed, re-allocated if the Service did.
    Placement(Stranded),
}

/// Outcome of the first half of a reconcile (see [`Allocator::settle`]).
#[derive(Debug)]
pub(crate) enum Settled {
    Done(Box<Reconciled>),
    Kept {
        sid: Sid,
        events: Vec<AllocEvent>,
    },
    Pending {
        key: StoredKey,
        vacant: Vacant,
        request: Box<Request>,
        events: Vec<AllocEvent>,
    },
}

impl Allocator {
    /// An allocator with no pools. `class`: `None` handles Services without `spec.loadBalancerClass`;
    /// `Some(x)` handles exactly class `x`.
    pub fn new(class: Option<String>) -> Self {
        Self {
            class,
            ..Self::default()
        }
    }

    /// Makes room for `additional` more Services (e.g. the number listed on start), so that importing them
    /// does not grow the tables step by step.
    pub fn reserve(&mut self, additional: usize) {
        self.services.reserve(additional);
        self.held.reserve(additional);
    }

    /// The handled `loadBalancerClass`.
    pub fn class(&self) -> Option<&str> {
        self.class.as_deref()
    }

    /// Replaces the pools. Existing assignments are kept, including those the new pools no longer admit; the
    /// result lists every such conflict. Pools with duplicate names or overlapping CIDRs are refused and leave
    /// the allocator unchanged (last valid configuration stays in force).
    pub fn set_pools(&mut self, pools: Vec<PoolConfig>) -> Result<Vec<PoolConflict>, ConfigError> {
        let mut new = Pools::build(pools).map_err(|e| self.added_first(e))?;
        for (ip, _) in self.held.iter() {
            new.take(ip);
        }
        self.pools = new;
        let Self {
            services,
            pools,
            stranded,
            ..
        } = self;
        for (sid, namespace, rec) in services.iter_mut() {
            match pools.placement(namespace, &rec.ips, rec.pool.as_deref(), &rec.request) {
                Ok(pi) => {
                    rec.pool = Some(pools.list[pi].name.clone());
                    rec.stranded = None;
                    stranded.remove(&sid);
                }
                Err(s) => {
                    rec.stranded = Some(Box::new(s));
                    stranded.insert(sid);
                }
            }
        }
        Ok(self.conflicts())
    }

    /// An overlap names first the CIDR that the current pools lack (the addition that causes it), when
    /// exactly one of the two is new.
    fn added_first(&self, e: ConfigError) -> ConfigError {
        let ConfigError::Overlap {
            pool,
            cidr,
            other_pool,
            other_cidr,
        } = e
        else {
            return e;
        };
        let known = |name: &str, c: &ipnetwork::IpNetwork| {
            self.pools().any(|p| p.name == name && p.cidrs.contains(c))
        };
        if known(&pool, &cidr) && !known(&other_pool, &other_cidr) {
            ConfigError::Overlap {
                pool: other_pool,
                cidr: other_cidr,
                other_pool: pool,
                other_cidr: cidr,
            }
        } else {
            ConfigError::Overlap {
                pool,
                cidr,
                other_pool,
                other_cidr,
            }
        }
    }

    /// The current pools, by name.
    pub fn pools(&self) -> impl Iterator<Item = &PoolConfig> {
        self.pools.list.iter().map(|p| &p.config)
    }

    /// Registers the IPs a Service already holds (its status), before anything is allocated. Call it for every
    /// Service on start, those with more ingress IPs first (as [`crate::allocate_all`] does).
    pub fn import(&mut self, svc: &ServiceView) -> Imported {
        self.import_found(svc).0
    }

    /// [`Self::import`], also returning where the Service is tracked now (or its vacancy), for a
    /// [`Self::settle_found`] that follows before anything else changes this Service's slot.
    pub(crate) fn import_found(&mut self, svc: &ServiceView) -> (Imported, Result<Sid, Vacant>) {
        let found = self.services.lookup(&svc.namespace, &svc.name);
        if let Err(reason) = svc.scope(self.class.as_deref()) {
            return (Imported::Ignored(reason), found);
        }
        if svc.ingress_ips.is_empty() {
            return (Imported::NoStatus, found);
        }
        let Err(vacant) = found else {
            return (Imported::AlreadyKnown, found);
        };
        let annotations = Annotations::read(&svc.annotations);
        let namespace_labels = self
            .namespace_labels
            .share(&svc.namespace, &svc.namespace_labels);
        let Ok(request) = Request::parse(svc, &annotations, namespace_labels) else {
            let ips = svc.ingress_ips.clone();
            let reason = ClearReason::NoClusterIp;
            return (Imported::Rejected { ips, reason }, found);
        };
        let from = annotations.allocated_from_pool.as_deref();
        match self.adopt(svc, vacant, from, request) {
            Ok((sid, stranded)) => (Imported::Registered { stranded }, Ok(sid)),
            Err(reason) => {
                let ips = svc.ingress_ips.clone();
                (Imported::Rejected { ips, reason }, found)
            }
        }
    }

    /// Brings one Service to its correct state: keeps, re-validates, clears or allocates its IPs, following
    /// MetalLB's order (requested IPs → address-pool annotation → matching serviceAllocation pools by priority
    /// → autoAssign pools without serviceAllocation, by name).
    pub fn reconcile(&mut self, svc: &ServiceView) -> Reconciled {
        let settled = self.settle(svc);
        self.finish(settled)
    }

    /// Forgets a Service (deleted), freeing its IPs unless other Services share them. Returns its IPs.
    pub fn release(&mut self, key: &ServiceKey) -> Vec<IpAddr> {
        match self.services.find(&key.namespace, &key.name) {
            Some(sid) => self.remove(sid).2,
            None => Vec::new(),
        }
    }

    /// The IPs a Service holds.
    pub fn assignment(&self, key: &ServiceKey) -> Option<Assignment> {
        let sid = self.services.find(&key.namespace, &key.name)?;
        Some(self.services.get(sid).assignment())
    }

    /// Every assignment, in namespace/name order.
    pub fn assignments(&self) -> impl Iterator<Item = (ServiceKey, Assignment)> + '_ {
        let mut sids: Vec<Sid> = self.services.iter().map(|(sid, _)| sid).collect();
        sids.sort_unstable_by(|a, b| self.services.cmp_keys(*a, *b));
        sids.into_iter()
            .map(|sid| (self.services.key(sid), self.services.get(sid).assignment()))
    }

    /// Number of Services holding IPs.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.len() == 0
    }

    /// The Services holding `ip`, in namespace/name order.
    pub fn holders(&self, ip: IpAddr) -> Vec<ServiceKey> {
        self.held
            .holders(ip)
            .map(|h| h.iter().map(|sid| self.services.key(*sid)).collect())
            .unwrap_or_default()
    }

    /// The pool that may hand out `ip` (inside one of its CIDRs, and not skipped by avoidBuggyIPs).
    pub fn pool_of(&self, ip: IpAddr) -> Option<&str> {
        match self.pools.where_is(ip) {
            Where::Pool(pi) => Some(&self.pools.list[pi].config.name),
            _ => None,
        }
    }

    /// Every kept-but-stranded IP, by pool then Service.
    pub fn conflicts(&self) -> Vec<PoolConflict> {
        let mut out = Vec::new();
        for &sid in &self.stranded {
            let rec = self.services.get(sid);
            let Some(s) = &rec.stranded else {
                continue;
            };
            let pool = stranded_pool(&s.reason, rec.pool.as_deref());
            for ip in &s.ips {
                out.push(PoolConflict {
                    pool: pool.clone(),
                    service: self.services.key(sid),
                    ip: *ip,
                    reason: s.reason.clone(),
                });
            }
        }
        out.sort_by(|a, b| (&a.pool, &a.service, a.ip).cmp(&(&b.pool, &b.service, b.ip)));
        out
    }

    /// Status figures of one pool, maintained incrementally (no scan of the pool).
    pub fn pool_stats(&self, name: &str) -> Option<PoolStats> {
        self.pools
            .by_name
            .get(name)
            .map(|&pi| self.pools.list[pi].stats())
    }

    /// Status figures of every pool, by name.
    pub fn stats(&self) -> BTreeMap<String, PoolStats> {
        self.pools
            .list
            .iter()
            .map(|p| (p.config.name.clone(), p.stats()))
            .collect()
    }

    // ----- reconcile, in two halves -----

    /// First half of a reconcile: everything that may *release* IPs (scope, validation of the existing
    /// assignment). `allocate_all` settles every Service before finishing any, so that all releases happen
    /// before any allocation and one pass reaches a fixed point.
    pub(crate) fn settle(&mut self, svc: &ServiceView) -> Settled {
        let found = self.services.lookup(&svc.namespace, &svc.name);
        self.settle_found(svc, found)
    }

    /// [`Self::settle`] with the Service's slot (or vacancy) already looked up.
    pub(crate) fn settle_found(
        &mut self,
        svc: &ServiceView,
        found: Result<Sid, Vacant>,
    ) -> Settled {
        if let Err(reason) = svc.scope(self.class.as_deref()) {
            let released = found.ok().map(|sid| self.remove(sid).2).unwrap_or_default();
            return Settled::Done(Box::new(Reconciled::Ignored { reason, released }));
        }
        let annotations = Annotations::read(&svc.annotations);
        let mut events: Vec<AllocEvent> = annotations
            .aliases
            .iter()
            .map(|a| AllocEvent::DeprecatedAnnotation { alias: a.clone() })
            .collect();
        let namespace_labels = self
            .namespace_labels
            .share(&svc.namespace, &svc.namespace_labels);
        let request = match Request::parse(svc, &annotations, namespace_labels) {
            Ok(r) => r,
            Err(e) => {
                // MetalLB clears the state of a Service without cluster IPs.
                if let Ok(sid) = found {
                    let (_, _, ips) = self.remove(sid);
                    events.push(AllocEvent::Cleared {
                        ips,
                        reason: ClearReason::NoClusterIp,
                    });
                }
                return Settled::Done(Box::new(Reconciled::Handled {
                    result: Err(e),
                    events,
                }));
            }
        };
        let sid = match found {
            Ok(sid) => sid,
            // Unknown Service with IPs in its status (created with a status, or came back in scope): adopt
            // them as import would.
            Err(vacant) if !svc.ingress_ips.is_empty() => {
                let from = annotations.allocated_from_pool.as_deref();
                match self.adopt(svc, vacant, from, request.clone()) {
                    Ok((sid, _)) => sid,
                    Err(reason) => {
                        let key = StoredKey::new(&svc.namespace, &svc.name);
                        events.push(AllocEvent::Cleared {
                            ips: svc.ingress_ips.clone(),
                            reason,
                        });
                        return pending(key, vacant, request, events);
                    }
                }
            }
            Err(vacant) => {
                let key = StoredKey::new(&svc.namespace, &svc.name);
                return pending(key, vacant, request, events);
            }
        };
        // A malformed IP request leaves the rest of the request in force: the current IPs are checked against
        // it and kept if still valid (MetalLB leaves the status alone), but nothing new is allocated.
        if let Some(error) = &request.invalid {
            events.push(AllocEvent::RequestIgnored {
                error: (**error).clone(),
            });
        }
        let rec = self.services.get(sid);
        let me = Claimant {
            sid: Some(sid),
            namespace: &svc.namespace,
        };
        match self.check(me, &rec.ips, rec.pool.as_deref(), &request) {
            Ok(pi) => {
                let invalid = request.invalid.is_some();
                self.update(sid, request, Ok(pi));
                if invalid {
                    let result = Ok(self.services.get(sid).assignment());
                    return Settled::Done(Box::new(Reconciled::Handled { result, events }));
                }
                Settled::Kept { sid, events }
            }
            Err(Invalid::Explicit(reason)) => {
                let (key, vacant, ips) = self.remove(sid);
                events.push(AllocEvent::Cleared { ips, reason });
                pending(key, vacant, request, events)
            }
            Err(Invalid::Placement(stranded)) => {
                // Whose change was it? If the stored request still fits the current pools, the Service
                // changed (MetalLB: clear and allocate again); otherwise the pools did, and the IPs stay.
                let service_changed = rec.request != request
                    && self
                        .pools
                        .placement(&svc.namespace, &rec.ips, rec.pool.as_deref(), &rec.request)
                        .is_ok();
                if service_changed {
                    let (key, vacant, ips) = self.remove(sid);
                    let reason = ClearReason::ServiceChanged(stranded.reason);
                    events.push(AllocEvent::Cleared { ips, reason });
                    pending(key, vacant, request, events)
                } else {
                    self.update(sid, request, Err(stranded));
                    let result = Ok(self.services.get(sid).assignment());
                    Settled::Done(Box::new(Reconciled::Handled { result, events }))
                }
            }
        }
    }

    /// Second half of a reconcile: everything that *takes* IPs.
    pub(crate) fn finish(&mut self, settled: Settled) -> Reconciled {
        match settled {
            Settled::Done(r) => *r,
            Settled::Kept { sid, mut events } => {
                self.add_missing_family(sid, &mut events);
                Reconciled::Handled {
                    result: Ok(self.services.get(sid).assignment()),
                    events,
                }
            }
            Settled::Pending {
                key,
                vacant,
                request,
                mut events,
            } => {
                // Pending Services are not tracked: they hold nothing.
                let me = Claimant {
                    sid: None,
                    namespace: key.namespace(),
                };
                match self.allocate(me, &request) {
                    Ok((pi, ips)) => {
                        let pool = self.pools.list[pi].name.clone();
                        events.push(AllocEvent::Allocated {
                            ips: ips.clone(),
                            pool: pool.to_string(),
                        });
                        let assignment = Assignment {
                            ips: ips.clone(),
                            pool: Some(pool.to_string()),
                            stranded: None,
                        };
                        let record = Record {
                            ips: Ips::new(&ips),
                            pool: Some(pool),
                            request: *request,
                            stranded: None,
                        };
                        self.register(key, vacant, record);
                        Reconciled::Handled {
                            result: Ok(assignment),
                            events,
                        }
                    }
                    Err(e) => Reconciled::Handled {
                        result: Err(e),
                        events,
                    },
                }
            }
        }
    }

    /// Why `svc` gets no IP in the current state, without changing anything (None if it would get one now).
    /// `plan` reports failures against the final state, so that running it again on its own output gives the
    /// same reasons.
    pub(crate) fn failure(&self, svc: &ServiceView) -> Option<AllocationError> {
        let namespace_labels = self
            .namespace_labels
            .get(&svc.namespace, &svc.namespace_labels)
            .unwrap_or_else(|| Arc::new(LabelSet::new(&svc.namespace_labels)));
        let request =
            match Request::parse(svc, &Annotations::read(&svc.annotations), namespace_labels) {
                Ok(r) => r,
                Err(e) => return Some(e),
            };
        if let Some(e) = request.invalid {
            return Some(*e);
        }
        let me = Claimant {
            sid: self.services.find(&svc.namespace, &svc.name),
            namespace: &svc.namespace,
        };
        self.allocate(me, &request).err()
    }

    /// PreferDualStack with one IP: try to add the other family from the same pool (MetalLB v0.14.9).
    fn add_missing_family(&mut self, sid: Sid, events: &mut Vec<AllocEvent>) {
        let rec = self.services.get(sid);
        let (Need::Dual { require: false, .. }, [held]) = (rec.request.need, &*rec.ips) else {
            return;
        };
        if !rec.request.requested.is_empty() || rec.stranded.is_some() {
            return;
        }
        let Some(&pi) = rec.pool.as_deref().and_then(|p| self.pools.by_name.get(p)) else {
            return;
        };
        let family = IpFamily::of(held).other();
        let pool = self.pools.list[pi].name.clone();
        let me = Claimant {
            sid: Some(sid),
            namespace: self.services.namespace(sid),
        };
        match self.offer(pi, family, me, &rec.request) {
            Some(ip) => {
                self.hold(ip, sid);
                self.services.get_mut(sid).ips.push(ip);
                events.push(AllocEvent::AddedFamily {
                    ip,
                    pool: pool.to_string(),
                });
            }
            None => {
                let shortfalls = vec![self.pools.shortfall(pi, family)];
                let error = AllocationError::NoAddress {
                    dual_stack_required: false,
                    shortfalls,
                };
                events.push(AllocEvent::AdditionalFamilyFailed { error });
            }
        }
    }

    // ----- validity of an existing assignment -----

    /// Registers IPs a Service already holds (import, or adoption of an unknown Service's status). Fails when the
    /// Service now asks for something else or the IPs are held incompatibly; a mere misfit with the pools is
    /// registered as stranded.
    fn adopt(
        &mut self,
        svc: &ServiceView,
        vacant: Vacant,
        allocated_from: Option<&str>,
        request: Request,
    ) -> Result<(Sid, Option<StrandedReason>), ClearReason> {
        let ips = &svc.ingress_ips[..];
        let invalid = |problem| ClearReason::InvalidStatus {
            ips: ips.to_vec(),
            problem,
        };
        match ips {
            [] => return Err(invalid("no addresses")),
            [a, b] if IpFamily::of(a) == IpFamily::of(b) => {
                return Err(invalid("two addresses of the same family"))
            }
            [_] | [_, _] => {}
            _ => return Err(invalid("more than two addresses")),
        }
        // Not tracked yet, so none of the IPs' holders is this Service.
        let me = Claimant {
            sid: None,
            namespace: &svc.namespace,
        };
        // The pool the IPs came from: the one they lie in, if they are valid there (a CIDR may have moved to
        // another pool); otherwise the one the controller recorded, so that a stranded assignment is judged
        // exactly as before the restart.
        let lies_in = self.pools.common_pool(ips);
        let mut pool: Option<Arc<str>> = lies_in.or_else(|| allocated_from.map(Arc::from));
        let mut checked = self.check(me, ips, pool.as_deref(), &request);
        if let Some(from) =
            allocated_from.filter(|f| checked.is_err() && pool.as_deref() != Some(*f))
        {
            pool = Some(from.into());
            checked = self.check(me, ips, Some(from), &request);
        }
        let placed = match checked {
            Ok(pi) => Ok(pi),
            Err(Invalid::Explicit(reason)) => return Err(reason),
            Err(Invalid::Placement(s)) => Err(s),
        };
        let reason = placed.as_ref().err().map(|s| s.reason.clone());
        let sid = self.register(
            StoredKey::new(&svc.namespace, &svc.name),
            vacant,
            Record {
                ips: Ips::new(ips),
                pool,
                request,
                stranded: None,
            },
        );
        self.set_placement(sid, placed);
        Ok((sid, reason))
    }

    /// MetalLB's per-reconcile checks of the current IPs (`convergeBalancer`): families, requested IPs, pool
    /// annotation and sharing first (the Service's wishes), then whether the pools still admit them.
    fn check(
        &self,
        me: Claimant,
        ips: &[IpAddr],
        pool: Option<&str>,
        req: &Request,
    ) -> Result<usize, Invalid> {
        if !req.families_fit(ips) {
            return Err(Invalid::Explicit(ClearReason::FamilyChanged {
                ips: ips.to_vec(),
                families: req.families(),
            }));
        }
        if !req.requested.is_empty() && !same_set(ips, &req.requested) {
            return Err(Invalid::Explicit(ClearReason::RequestedIpsChanged {
                requested: req.requested.clone(),
            }));
        }
        if let Some(wanted) = &req.pool {
            if pool != Some(wanted.as_str()) {
                let reason = ClearReason::PoolAnnotationChanged {
                    wanted: wanted.clone(),
                    current: pool.map(str::to_owned),
                };
                return Err(Invalid::Explicit(reason));
            }
        }
        for ip in ips {
            self.check_sharing(*ip, me, req)
                .map_err(|e| Invalid::Explicit(ClearReason::Sharing(Box::new(e))))?;
        }
        self.pools
            .placement(me.namespace, ips, pool, req)
            .map_err(Invalid::Placement)
    }

    /// Stores the new request of a kept assignment and its placement.
    fn update(&mut self, sid: Sid, request: Request, placed: Result<usize, Stranded>) {
        let rec = self.services.get_mut(sid);
        // An equal request (a resync, a restart: the common case) leaves the stored copy in place.
        if rec.request != request {
            let old = std::mem::replace(&mut rec.request, request);
            if old.share != rec.request.share {
                // Only a sole holder can get here with another key (check_sharing allows it to change it).
                let (ips, new) = (rec.ips, rec.request.share.clone());
                for ip in ips.iter() {
                    self.unindex(*ip, &old.share);
                    self.index(*ip, &new);
                }
            }
        }
        self.set_placement(sid, placed);
    }

    fn set_placement(&mut self, sid: Sid, placed: Result<usize, Stranded>) {
        let rec = self.services.get_mut(sid);
        match placed {
            Ok(pi) => {
                rec.pool = Some(self.pools.list[pi].name.clone());
                if rec.stranded.take().is_some() {
                    self.stranded.remove(&sid);
                }
            }
            Err(s) => {
                rec.stranded = Some(Box::new(s));
                self.stranded.insert(sid);
            }
        }
    }

    /// Whether `me` may use `ip` alongside its current holders (MetalLB `checkSharing`): a sole holder may
    /// always keep its IP (and change its key); otherwise keys must be compatible and ports disjoint.
    fn check_sharing(
        &self,
        ip: IpAddr,
        me: Claimant,
        req: &Request,
    ) -> Result<(), AllocationError> {
        let Some(holders) = self.held.holders(ip) else {
            return Ok(());
        };
        let mut others = holders.iter().filter(|h| Some(**h) != me.sid).peekable();
        let Some(&&first) = others.peek() else {
            return Ok(());
        };
        // All holders of an IP have the same sharing key.
        let share = &self.services.get(first).request.share;
        let share = (!share.sharing.is_empty()).then_some(share);
        if let Err(mismatch) = req.share.compatible_with(share) {
            return Err(AllocationError::SharingConflict {
                ip,
                holder: self.services.key(first),
                mismatch: Box::new(mismatch),
            });
        }
        for &holder in others {
            if let Some(port) = req.port_overlap(&self.services.get(holder).request.ports) {
                return Err(AllocationError::PortConflict {
                    ip,
                    holder: self.services.key(holder),
                    port,
                });
            }
        }
        Ok(())
    }

    // ----- fresh allocation -----

    /// MetalLB's `allocateIPs`: requested IPs, else the address-pool annotation, else the pinned pools by
    /// priority, else the autoAssign pools without serviceAllocation.
    fn allocate(
        &self,
        me: Claimant,
        req: &Request,
    ) -> Result<(usize, Vec<IpAddr>), AllocationError> {
        if !req.requested.is_empty() {
            return self
                .check_requested(me, req)
                .map(|pi| (pi, req.requested.clone()));
        }
        if let Some(name) = &req.pool {
            let &pi = self
                .pools
                .by_name
                .get(name)
                .ok_or_else(|| AllocationError::UnknownPool { pool: name.clone() })?;
            self.admitted(pi, me.namespace, req)?;
            return self
                .choose(&[pi], me, req)
                .map_err(|shortfalls| no_address(req, shortfalls));
        }
        if self.pools.list.is_empty() {
            return Err(AllocationError::NoPools);
        }
        let pinned: Vec<usize> = self
            .pools
            .pinned
            .iter()
            .copied()
            .filter(|&pi| self.admitted(pi, me.namespace, req).is_ok())
            .collect();
        let mut shortfalls = Vec::new();
        for tier in [&pinned, &self.pools.fallback] {
            if tier.is_empty() {
                continue;
            }
            match self.choose(tier, me, req) {
                Ok(found) => return Ok(found),
                Err(s) => shortfalls.extend(s),
            }
        }
        if pinned.is_empty() && self.pools.fallback.is_empty() {
            return Err(AllocationError::NoPoolAdmits);
        }
        Err(no_address(req, shortfalls))
    }

    /// Requested IPs must have the Service's families, lie in one pool that admits the Service (and is the
    /// annotated pool, if any), and be free or sharable.
    fn check_requested(&self, me: Claimant, req: &Request) -> Result<usize, AllocationError> {
        if !req.families_fit(&req.requested) || req.requested.len() != req.families().len() {
            return Err(AllocationError::RequestedFamilyMismatch {
                requested: req.requested.clone(),
                families: req.families(),
            });
        }
        let mut pools = Vec::new();
        for ip in &req.requested {
            match self.pools.where_is(*ip) {
                Where::Pool(pi) => pools.push(pi),
                Where::Buggy(pi) => {
                    return Err(AllocationError::RequestedIpBuggy {
                        ip: *ip,
                        pool: self.pools.name(pi).into(),
                    })
                }
                Where::Outside => return Err(AllocationError::RequestedIpNotInPool { ip: *ip }),
            }
        }
        pools.dedup();
        let [pi] = pools[..] else {
            return Err(AllocationError::RequestedIpsInDifferentPools {
                requested: req.requested.clone(),
                pools: pools
                    .iter()
                    .map(|&pi| self.pools.name(pi).to_owned())
                    .collect(),
            });
        };
        self.admitted(pi, me.namespace, req)?;
        if let Some(wanted) = &req.pool {
            if wanted != self.pools.name(pi) {
                return Err(AllocationError::RequestedIpWrongPool {
                    ip: req.requested[0],
                    pool: self.pools.name(pi).into(),
                    wanted: wanted.clone(),
                });
            }
        }
        for ip in &req.requested {
            self.check_sharing(*ip, me, req)?;
        }
        Ok(pi)
    }

    fn admitted(&self, pi: usize, namespace: &str, req: &Request) -> Result<(), AllocationError> {
        let pool = &self.pools.list[pi].config;
        pool.admits(namespace, &*req.namespace_labels, &req.labels)
            .map_err(|denied| AllocationError::PoolDoesNotAdmit {
                pool: pool.name.clone(),
                denied,
            })
    }

    /// MetalLB's `findBestPoolForService` over one tier of pools, in order. A single-family Service takes the
    /// first pool with a usable address. A dual-stack Service takes the first pool offering both families;
    /// failing that, PreferDualStack settles for the first pool offering the primary family, then the
    /// secondary one.
    fn choose(
        &self,
        tier: &[usize],
        me: Claimant,
        req: &Request,
    ) -> Result<(usize, Vec<IpAddr>), Vec<Shortfall>> {
        let mut shortfalls = Vec::new();
        match req.need {
            Need::Single(family) => {
                for &pi in tier {
                    match self.offer(pi, family, me, req) {
                        Some(ip) => return Ok((pi, vec![ip])),
                        None => shortfalls.push(self.pools.shortfall(pi, family)),
                    }
                }
            }
            Need::Dual { primary, require } => {
                let mut fallback: [Option<(usize, IpAddr)>; 2] = [None, None];
                for &pi in tier {
                    let v4 = self.offer(pi, IpFamily::IPv4, me, req);
                    let v6 = self.offer(pi, IpFamily::IPv6, me, req);
                    if let (Some(a), Some(b)) = (v4, v6) {
                        return Ok((pi, vec![a, b]));
                    }
                    for (family, ip) in [(IpFamily::IPv4, v4), (IpFamily::IPv6, v6)] {
                        match ip {
                            None => shortfalls.push(self.pools.shortfall(pi, family)),
                            Some(ip) => {
                                let slot = usize::from(family != primary);
                                fallback[slot].get_or_insert((pi, ip));
                            }
                        }
                    }
                }
                if !require {
                    if let Some((pi, ip)) = fallback[0].or(fallback[1]) {
                        return Ok((pi, vec![ip]));
                    }
                }
            }
        }
        Err(shortfalls)
    }

    /// The first address of `family` in pool `pi`, in CIDR order, that `me` may use: free, or held by
    /// Services it may share with. O(log n) per CIDR for a non-sharing Service.
    fn offer(&self, pi: usize, family: IpFamily, me: Claimant, req: &Request) -> Option<IpAddr> {
        self.pools.list[pi]
            .spaces
            .iter()
            .filter(|s| s.family == family)
            .find_map(|space| self.first_usable(space, me, req))
    }

    fn first_usable(&self, space: &AddressSpace, me: Claimant, req: &Request) -> Option<IpAddr> {
        let free = space.first_free();
        if req.share.sharing.is_empty() {
            return free;
        }
        // A held IP with our key that comes before the first free one wins, as in MetalLB's walk.
        let Some(candidates) = self.shared.get(&req.share) else {
            return free;
        };
        let (start, end) = (space.cidr.network(), space.cidr.broadcast());
        for &ip in candidates.range(start..=end) {
            if free.is_some_and(|f| ip > f) {
                break;
            }
            if space.allows(ip) && self.check_sharing(ip, me, req).is_ok() {
                return Some(ip);
            }
        }
        free
    }

    // ----- bookkeeping of held IPs -----

    fn register(&mut self, key: StoredKey, vacant: Vacant, rec: Record) -> Sid {
        let (ips, stranded) = (rec.ips, rec.stranded.is_some());
        let sid = self.services.insert(vacant, key, rec);
        for ip in ips.iter() {
            self.hold(*ip, sid);
        }
        if stranded {
            self.stranded.insert(sid);
        }
        sid
    }

    /// Stops tracking a Service and frees the IPs no one else holds. Returns its key, its vacancy and IPs.
    fn remove(&mut self, sid: Sid) -> (StoredKey, Vacant, Vec<IpAddr>) {
        let (key, vacant, rec) = self.services.remove(sid);
        self.stranded.remove(&sid);
        for ip in rec.ips.iter() {
            if self.held.remove(*ip, sid) {
                self.pools.put(*ip);
                self.unindex(*ip, &rec.request.share);
            }
        }
        (key, vacant, rec.ips.to_vec())
    }

    /// Adds a tracked Service to the holders of `ip` (kept in namespace/name order, so that conflicts name
    /// holders independently of arrival order).
    fn hold(&mut self, ip: IpAddr, sid: Sid) {
        let Self {
            services,
            held,
            pools,
            ..
        } = self;
        if held.add(ip, sid, |a, b| services.cmp_keys(a, b)) {
            pools.take(ip);
            let share = self.services.get(sid).request.share.clone();
            self.index(ip, &share);
        }
    }

    /// Lists a held IP under its holders' sharing key, if they share.
    fn index(&mut self, ip: IpAddr, share: &ShareKey) {
        if !share.sharing.is_empty() {
            self.shared.entry(share.clone()).or_default().insert(ip);
        }
    }

    fn unindex(&mut self, ip: IpAddr, share: &ShareKey) {
        if let Some(set) = self.shared.get_mut(share) {
            set.remove(&ip);
            if set.is_empty() {
                self.shared.remove(share);
            }
        }
    }

    /// Checks every internal index against the records. For tests.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut expected: BTreeMap<IpAddr, Vec<ServiceKey>> = BTreeMap::new();
        for (sid, rec) in self.services.iter() {
            let key = self.services.key(sid);
            for ip in rec.ips.iter() {
                expected.entry(*ip).or_default().push(key.clone());
            }
            if rec.stranded.is_some() != self.stranded.contains(&sid) {
                return Err(format!("{key}: stranded set out of date"));
            }
            if self.services.find(&key.namespace, &key.name) != Some(sid) {
                return Err(format!("{key}: not found under its own name"));
            }
        }
        if expected.len() != self.held.len() {
            return Err(format!(
                "{} IPs in records, {} held",
                expected.len(),
                self.held.len()
            ));
        }
        let mut sharing = 0;
        for (ip, holders) in self.held.iter() {
            let keys: Vec<ServiceKey> = holders.iter().map(|h| self.services.key(*h)).collect();
            if !keys.windows(2).all(|w| w[0] < w[1]) {
                return Err(format!("{ip}: holders {keys:?} not in order"));
            }
            let mut want = expected.get(&ip).cloned().unwrap_or_default();
            want.sort();
            if keys != want {
                return Err(format!("{ip}: holders {keys:?}, records say {want:?}"));
            }
            // All holders have one sharing key (none if they do not share), and the IP is indexed under it.
            let share = &self.services.get(holders[0]).request.share;
            for h in holders.iter() {
                if &self.services.get(*h).request.share != share {
                    let key = self.services.key(*h);
                    return Err(format!("{ip}: {key}'s sharing key differs from the IP's"));
                }
            }
            let indexed = self.shared.get(share).is_some_and(|s| s.contains(&ip));
            let shares = !share.sharing.is_empty();
            if indexed != shares {
                return Err(format!("{ip}: sharing index out of date"));
            }
            sharing += usize::from(indexed);
        }
        if self.shared.values().map(BTreeSet::len).sum::<usize>() != sharing {
            return Err("sharing index has stale entries".into());
        }
        for pool in &self.pools.list {
            for space in &pool.spaces {
                let inside = self.held.iter().filter(|(ip, _)| space.allows(*ip)).count() as u64;
                if inside != space.held {
                    return Err(format!(
                        "{}: {} counts {} held, {} are",
                        pool.config.name, space.cidr, space.held, inside
                    ));
                }
                if let Some((ip, _)) = self.held.iter().find(|(ip, _)| space.is_free(*ip)) {
                    return Err(format!("{ip} is held but free in {}", space.cidr));
                }
            }
        }
        Ok(())
    }
}

impl Record {
    fn assignment(&self) -> Assignment {
        Assignment {
            ips: self.ips.to_vec(),
            pool: self.pool.as_deref().map(str::to_owned),
            stranded: self.stranded.as_ref().map(|s| s.reason.clone()),
        }
    }
}

/// A Service that needs new IPs; with a malformed IP request it gets none until the request is fixed.
fn pending(key: StoredKey, vacant: Vacant, request: Request, events: Vec<AllocEvent>) -> Settled {
    match &request.invalid {
        Some(error) => {
            let result = Err((**error).clone());
            let events = events
                .into_iter()
                .filter(|e| !matches!(e, AllocEvent::RequestIgnored { .. }))
                .collect();
            Settled::Done(Box::new(Reconciled::Handled { result, events }))
        }
        None => Settled::Pending {
            key,
            vacant,
            request: Box::new(request),
            events,
        },
    }
}

fn same_set(a: &[IpAddr], b: &[IpAddr]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

fn no_address(req: &Request, shortfalls: Vec<Shortfall>) -> AllocationError {
    let dual_stack_required = matches!(req.need, Need::Dual { require: true, .. });
    AllocationError::NoAddress {
        dual_stack_required,
        shortfalls,
    }
}

/// The pool a conflict is reported against.
fn stranded_pool(reason: &StrandedReason, recorded: Option<&str>) -> Option<String> {
    match reason {
        StrandedReason::PoolDeleted { pool }
        | StrandedReason::BuggyIp { pool }
        | StrandedReason::NotAdmitted { pool, .. } => Some(pool.clone()),
        StrandedReason::LeftPool { pool, .. } => pool.clone(),
        StrandedReason::SplitAcrossPools { .. } => recorded.map(str::to_owned),
    }
}

// ----- the pools and their address spaces -----

#[derive(Debug, Clone, Default)]
struct Pools {
    /// Sorted by name.
    list: Vec<Pool>,
    by_name: BTreeMap<String, usize>,
    /// First address of every CIDR → (pool, space). CIDRs do not overlap, so the entry at or before an IP is
    /// the only candidate.
    index: BTreeMap<IpAddr, (usize, usize)>,
    /// autoAssign pools with serviceAllocation, by priority then name.
    pinned: Vec<usize>,
    /// autoAssign pools without serviceAllocation, by name (MetalLB: Go map order).
    fallback: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Pool {
    config: PoolConfig,
    name: Arc<str>,
    spaces: Vec<AddressSpace>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Pool(usize),
    /// Inside a pool's CIDR, but skipped by its avoidBuggyIPs.
    Buggy(usize),
    Outside,
}

impl Pool {
    fn stats(&self) -> PoolStats {
        let mut capacity = [0i64; 2];
        let mut assigned = [0i64; 2];
        for s in &self.spaces {
            let f = s.family.index();
            capacity[f] = capacity[f].saturating_add(s.capacity());
            assigned[f] += s.held as i64;
        }
        let available = |f: usize| {
            if capacity[f] == i64::MAX {
                i64::MAX
            } else {
                capacity[f] - assigned[f]
            }
        };
        PoolStats {
            assigned_ipv4: assigned[0],
            assigned_ipv6: assigned[1],
            available_ipv4: available(0),
            available_ipv6: available(1),
        }
    }
}

impl Pools {
    fn build(mut configs: Vec<PoolConfig>) -> Result<Self, ConfigError> {
        configs.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = configs.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(ConfigError::DuplicatePool {
                name: w[0].name.clone(),
            });
        }
        let mut cidrs: Vec<(IpAddr, IpAddr, usize, usize)> = Vec::new();
        for (pi, p) in configs.iter().enumerate() {
            for (si, c) in p.cidrs.iter().enumerate() {
                cidrs.push((c.network(), c.broadcast(), pi, si));
            }
        }
        cidrs.sort_unstable();
        // Sorted by first address, any overlap shows up between neighbours.
        if let Some(w) = cidrs.windows(2).find(|w| w[1].0 <= w[0].1) {
            let (a, b) = ((w[0].2, w[0].3), (w[1].2, w[1].3));
            return Err(ConfigError::Overlap {
                pool: configs[a.0].name.clone(),
                cidr: configs[a.0].cidrs[a.1],
                other_pool: configs[b.0].name.clone(),
                other_cidr: configs[b.0].cidrs[b.1],
            });
        }
        let index = cidrs
            .iter()
            .map(|&(first, _, pi, si)| (first, (pi, si)))
            .collect();
        let by_name = configs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        let mut pinned: Vec<usize> = (0..configs.len())
            .filter(|&i| configs[i].auto_assign && configs[i].allocation.is_some())
            .collect();
        pinned.sort_by(|&a, &b| configs[a].preference().cmp(&configs[b].preference()));
        let fallback = (0..configs.len())
            .filter(|&i| configs[i].auto_assign && configs[i].allocation.is_none())
            .collect();
        let list = configs
            .into_iter()
            .map(|config| Pool {
                name: config.name.as_str().into(),
                spaces: config
                    .cidrs
                    .iter()
                    .map(|c| AddressSpace::new(*c, config.avoid_buggy_ips))
                    .collect(),
                config,
            })
            .collect();
        Ok(Self {
            list,
            by_name,
            index,
            pinned,
            fallback,
        })
    }

    fn name(&self, pi: usize) -> &str {
        &self.list[pi].config.name
    }

    fn locate(&self, ip: IpAddr) -> Option<(usize, usize)> {
        let (_, &(pi, si)) = self.index.range(..=ip).next_back()?;
        self.list[pi].spaces[si].contains(ip).then_some((pi, si))
    }

    fn where_is(&self, ip: IpAddr) -> Where {
        match self.locate(ip) {
            Some((pi, si)) if self.list[pi].spaces[si].allows(ip) => Where::Pool(pi),
            Some((pi, _)) => Where::Buggy(pi),
            None => Where::Outside,
        }
    }

    /// The pool holding all of `ips`, if there is exactly one.
    fn common_pool(&self, ips: &[IpAddr]) -> Option<Arc<str>> {
        let mut found = None;
        for ip in ips {
            let Where::Pool(pi) = self.where_is(*ip) else {
                return None;
            };
            if found.is_some_and(|f| f != pi) {
                return None;
            }
            found = Some(pi);
        }
        found.map(|pi| self.list[pi].name.clone())
    }

    fn take(&mut self, ip: IpAddr) {
        if let Some((pi, si)) = self.locate(ip) {
            self.list[pi].spaces[si].take(ip);
        }
    }

    fn put(&mut self, ip: IpAddr) {
        if let Some((pi, si)) = self.locate(ip) {
            self.list[pi].spaces[si].put(ip);
        }
    }

    fn shortfall(&self, pi: usize, family: IpFamily) -> Shortfall {
        let exhausted = self.list[pi]
            .spaces
            .iter()
            .any(|s| s.family == family && s.capacity() > 0);
        Shortfall {
            pool: self.name(pi).to_owned(),
            family,
            exhausted,
        }
    }

    /// Whether held IPs still fit the pools: all inside one pool (the annotated one, if any) that may hand them
    /// out and admits the Service. `recorded`: the pool they came from.
    fn placement(
        &self,
        namespace: &str,
        ips: &[IpAddr],
        recorded: Option<&str>,
        req: &Request,
    ) -> Result<usize, Stranded> {
        // The common case, without allocating: every IP in one pool.
        if let Some((first, rest)) = ips.split_first() {
            if let Where::Pool(pi) = self.where_is(*first) {
                if rest.iter().all(|ip| self.where_is(*ip) == Where::Pool(pi)) {
                    return self.admits_held(pi, namespace, ips, req);
                }
            }
        }
        let mut inside: Vec<(usize, IpAddr)> = Vec::new();
        let mut outside = Vec::new();
        for ip in ips {
            match self.where_is(*ip) {
                Where::Pool(pi) => inside.push((pi, *ip)),
                Where::Buggy(pi) => {
                    return Err(Stranded {
                        reason: StrandedReason::BuggyIp {
                            pool: self.name(pi).into(),
                        },
                        ips: vec![*ip],
                    })
                }
                Where::Outside => outside.push(*ip),
            }
        }
        if !outside.is_empty() {
            let reason = match recorded {
                Some(p) if !self.by_name.contains_key(p) => {
                    StrandedReason::PoolDeleted { pool: p.into() }
                }
                _ => StrandedReason::LeftPool {
                    pool: recorded.map(str::to_owned),
                    now: None,
                },
            };
            return Err(Stranded {
                reason,
                ips: outside,
            });
        }
        let mut pools: Vec<usize> = inside.iter().map(|(pi, _)| *pi).collect();
        pools.sort_unstable();
        pools.dedup();
        let Some(&pi) = pools.first() else {
            return Err(Stranded {
                reason: StrandedReason::LeftPool {
                    pool: None,
                    now: None,
                },
                ips: Vec::new(),
            });
        };
        if pools.len() > 1 {
            let misplaced = inside
                .iter()
                .filter(|(p, _)| Some(self.name(*p)) != recorded)
                .map(|(_, ip)| *ip)
                .collect();
            let names = pools.iter().map(|&p| self.name(p).to_owned()).collect();
            return Err(Stranded {
                reason: StrandedReason::SplitAcrossPools { pools: names },
                ips: misplaced,
            });
        }
        self.admits_held(pi, namespace, ips, req)
    }

    /// IPs all inside pool `pi`: it must be the annotated pool, if any, and admit the Service.
    fn admits_held(
        &self,
        pi: usize,
        namespace: &str,
        ips: &[IpAddr],
        req: &Request,
    ) -> Result<usize, Stranded> {
        let name = self.name(pi);
        if let Some(pin) = req.pool.as_deref().filter(|pin| *pin != name) {
            let reason = StrandedReason::LeftPool {
                pool: Some(pin.into()),
                now: Some(name.into()),
            };
            return Err(Stranded {
                reason,
                ips: ips.to_vec(),
            });
        }
        self.list[pi]
            .config
            .admits(namespace, &*req.namespace_labels, &req.labels)
            .map_err(|denied| Stranded {
                reason: StrandedReason::NotAdmitted {
                    pool: name.into(),
                    denied,
                },
                ips: ips.to_vec(),
            })?;
        Ok(pi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::LabelLookup;

    fn with_pool(cidr: &str) -> Allocator {
        let mut alloc = Allocator::new(None);
        alloc
            .set_pools(vec![PoolConfig::new("pool", &[cidr])])
            .expect("pool");
        alloc
    }

    #[test]
    fn namespace_label_copies_stay_near_the_number_in_use() {
        // One address: the first Service gets it, the other 999 (each in a namespace of its own) get
        // nothing, so nothing keeps their namespaces' shared labels.
        let mut alloc = with_pool("198.51.100.1/32");
        for i in 0..1000 {
            let mut svc = ServiceView::load_balancer(format!("ns-{i}"), "web");
            svc.namespace_labels
                .insert("kubernetes.io/metadata.name".into(), svc.namespace.clone());
            let handled = matches!(
                alloc.reconcile(&svc),
                Reconciled::Handled { result: Ok(_), .. }
            );
            assert_eq!(handled, i == 0, "ns-{i}");
        }
        let (entries, used) = alloc.namespace_labels.counts();
        assert_eq!(used, 1);
        assert!(
            entries <= 2 * used + NamespaceLabels::SLACK,
            "{entries} entries for {used} in use"
        );
    }

    #[test]
    fn records_of_one_namespace_share_its_labels_and_follow_their_change() {
        let mut alloc = with_pool("198.51.100.0/24");
        let view = |name: &str, env: &str| {
            let mut svc = ServiceView::load_balancer("team", name);
            svc.namespace_labels.insert("env".into(), env.into());
            svc
        };
        let shared = |alloc: &Allocator, name: &str| {
            let sid = alloc.services.find("team", name).expect("tracked");
            Arc::clone(&alloc.services.get(sid).request.namespace_labels)
        };
        for name in ["a", "b"] {
            alloc.reconcile(&view(name, "dev"));
        }
        assert!(Arc::ptr_eq(&shared(&alloc, "a"), &shared(&alloc, "b")));
        // The namespace is relabelled: each record takes the new labels when its Service is reconciled.
        alloc.reconcile(&view("a", "prod"));
        assert_eq!(shared(&alloc, "a").label("env"), Some("prod"));
        assert_eq!(shared(&alloc, "b").label("env"), Some("dev"));
        alloc.reconcile(&view("b", "prod"));
        assert!(Arc::ptr_eq(&shared(&alloc, "a"), &shared(&alloc, "b")));
        assert_eq!(alloc.namespace_labels.counts(), (1, 1));
    }
}
