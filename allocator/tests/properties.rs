//! Property tests: random sequences of Service create/update/delete and pool edits, driven the way the
//! controller drives the allocator (reconcile the touched Service, reprocess everything after pool edits,
//! write each result back into the Service's status). After every step:
//!
//! - no IP is held by two Services that may not share it;
//! - every assigned IP lies in a pool that admits its Service, or is reported as a stranded conflict;
//! - pool edits never renumber a Service (a PreferDualStack Service may only gain its missing family);
//! - a restart (fresh allocator, import of every status) reproduces every assignment;
//! - `allocate_all` gives the same result whatever the input order, and is a fixed point on its own output;
//! - pool statistics equal a recount from scratch.
//!
//! `PROPTEST_CASES` raises the case count (default here: 48, to keep the default test run short).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use common::*;
use ferrolb_allocator::annotations::{
    Annotations, ADDRESS_POOL, ALLOW_SHARED_IP, LOAD_BALANCER_IPS,
};
use ferrolb_allocator::*;
use proptest::prelude::*;

/// Non-overlapping blocks that pools are built from; small so that pools run out and IPs get shared.
/// .248/29 and 198.51.100.252/30 contain .255, 203.0.113.0/29 contains .0 (avoidBuggyIPs matters).
const BLOCKS: [&str; 8] = [
    "203.0.113.0/29",
    "203.0.113.8/30",
    "203.0.113.248/29",
    "198.51.100.0/30",
    "198.51.100.252/30",
    "2001:db8::/126",
    "2001:db8::10/126",
    "2001:db8:1::/64",
];

/// IPs Services may request: inside various blocks, buggy ones, and one outside every block.
const WANTED: [&str; 8] = [
    "203.0.113.1",
    "203.0.113.9",
    "203.0.113.255",
    "198.51.100.1",
    "198.51.100.200",
    "2001:db8::1",
    "2001:db8::11",
    "2001:db8:1::5",
];

const NAMESPACES: [&str; 2] = ["a", "b"];
const NAMES: usize = 5;

#[derive(Debug, Clone)]
struct PoolSpec {
    /// For each block: the pool (0..4) it belongs to, or none (4, 5).
    owner: [u8; 8],
    auto: [bool; 4],
    buggy: [bool; 4],
    /// 0 none, 1 namespaces [a], 2 service selector app=web, 3 namespace selector env=prod, 4 priority only.
    alloc: [u8; 4],
    priority: [i32; 4],
}

#[derive(Debug, Clone)]
struct SvcSpec {
    idx: usize,
    lb: bool,
    other_class: bool,
    /// 0 v4, 1 v6, 2 Prefer v4-first, 3 Prefer v6-first, 4 Require v4-first, 5 Prefer on a v4-only cluster.
    family: u8,
    /// 0 none, 1 "k", 2 "j"; alias: spell it metallb.io/.
    share: u8,
    ports: u8,
    local: Option<u8>,
    /// 0..4 "p0".."p3", 4 "missing", else none.
    pool: u8,
    /// Index into WANTED (a second one of the other family is added for dual-stack Services).
    request: Option<usize>,
    /// Request via spec.loadBalancerIP (single) instead of the annotation; with `broken`, a malformed value.
    spec_field: bool,
    broken: bool,
    alias: bool,
    app: bool,
    prod: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(SvcSpec),
    Delete(usize),
    Pools(PoolSpec),
    ReprocessAll,
}

fn pool_spec() -> impl Strategy<Value = PoolSpec> {
    (
        proptest::array::uniform8(0u8..6),
        proptest::array::uniform4(proptest::bool::weighted(0.8)),
        proptest::array::uniform4(proptest::bool::weighted(0.3)),
        proptest::array::uniform4(prop_oneof![4 => Just(0u8), 4 => 1u8..5]),
        proptest::array::uniform4(0i32..3),
    )
        .prop_map(|(owner, auto, buggy, alloc, priority)| PoolSpec {
            owner,
            auto,
            buggy,
            alloc,
            priority,
        })
}

fn svc_spec() -> impl Strategy<Value = SvcSpec> {
    (
        (
            0..NAMESPACES.len() * NAMES,
            proptest::bool::weighted(0.9),
            proptest::bool::weighted(0.05),
            0u8..6,
        ),
        (
            0u8..3,
            0u8..8,
            proptest::option::weighted(0.3, 0u8..2),
            0u8..20,
        ),
        (
            proptest::option::weighted(0.25, 0..WANTED.len()),
            any::<bool>(),
            proptest::bool::weighted(0.1),
        ),
        (proptest::bool::weighted(0.2), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (idx, lb, other_class, family),
                (share, ports, local, pool),
                (request, spec_field, broken),
                (alias, app, prod),
            )| {
                SvcSpec {
                    idx,
                    lb,
                    other_class,
                    family,
                    share,
                    ports,
                    local,
                    pool,
                    request,
                    spec_field,
                    broken,
                    alias,
                    app,
                    prod,
                }
            },
        )
}

fn sharing_svc_spec() -> impl Strategy<Value = SvcSpec> {
    (svc_spec(), 1u8..3, 0u8..3).prop_map(|(mut s, share, family)| {
        s.share = share;
        s.family = family;
        s.pool = 5;
        s.lb = true;
        s.other_class = false;
        s
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => svc_spec().prop_map(Op::Upsert),
        2 => (0..NAMESPACES.len() * NAMES).prop_map(Op::Delete),
        2 => pool_spec().prop_map(Op::Pools),
        1 => Just(Op::ReprocessAll),
    ]
}

fn key_of(idx: usize) -> ServiceKey {
    ServiceKey::new(NAMESPACES[idx / NAMES], format!("s{}", idx % NAMES))
}

fn build_pools(spec: &PoolSpec) -> Vec<PoolConfig> {
    (0..4)
        .map(|i| {
            let cidrs: Vec<&str> = BLOCKS
                .iter()
                .zip(spec.owner)
                .filter(|(_, o)| usize::from(*o) == i)
                .map(|(b, _)| *b)
                .collect();
            let mut p = pool(&format!("p{i}"), &cidrs);
            p.auto_assign = spec.auto[i];
            p.avoid_buggy_ips = spec.buggy[i];
            p.allocation = match spec.alloc[i] {
                0 => None,
                1 => Some(ServiceAllocation {
                    namespaces: vec!["a".into()],
                    ..Default::default()
                }),
                2 => Some(ServiceAllocation {
                    service_selectors: vec![LabelSelector::labels([("app", "web")])],
                    ..Default::default()
                }),
                3 => Some(ServiceAllocation {
                    namespace_selectors: vec![LabelSelector::labels([("env", "prod")])],
                    ..Default::default()
                }),
                _ => Some(ServiceAllocation::default()),
            };
            if let Some(a) = &mut p.allocation {
                a.priority = spec.priority[i];
            }
            p
        })
        .collect()
}

fn build_service(spec: &SvcSpec, previous: Option<&ServiceView>) -> ServiceView {
    let key = key_of(spec.idx);
    let mut s = svc(&key.namespace, &key.name);
    s.is_load_balancer = spec.lb;
    if spec.other_class {
        s = s.class("other");
    }
    s = match spec.family {
        0 => s,
        1 => s.v6(),
        2 => s.dual(IpFamilyPolicy::PreferDualStack, IpFamily::IPv4),
        3 => s.dual(IpFamilyPolicy::PreferDualStack, IpFamily::IPv6),
        4 => s.dual(IpFamilyPolicy::RequireDualStack, IpFamily::IPv4),
        _ => {
            s.ip_family_policy = Some(IpFamilyPolicy::PreferDualStack);
            s
        }
    };
    let prefix = if spec.alias {
        "metallb.io/"
    } else {
        "ferrolb.io/"
    };
    let ann = |k: &str| format!("{prefix}{}", k.trim_start_matches("ferrolb.io/"));
    if spec.share > 0 {
        s = s.ann(
            &ann(ALLOW_SHARED_IP),
            if spec.share == 1 { "k" } else { "j" },
        );
    }
    let all_ports = [
        ServicePort::tcp(80),
        ServicePort::tcp(443),
        ServicePort::udp(53),
    ];
    s.ports = all_ports
        .iter()
        .enumerate()
        .filter(|(i, _)| spec.ports & (1 << i) != 0)
        .map(|(_, p)| *p)
        .collect();
    if let Some(app) = spec.local {
        s = s.local(&[("app", if app == 0 { "x" } else { "y" })]);
    }
    if spec.pool < 5 {
        let name = if spec.pool == 4 {
            "missing".to_string()
        } else {
            format!("p{}", spec.pool)
        };
        s = s.ann(&ann(ADDRESS_POOL), &name);
    }
    if let Some(i) = spec.request {
        let first = WANTED[i];
        let dual = s.cluster_ip_families.len() == 2;
        if spec.broken {
            s = s.ann(&ann(LOAD_BALANCER_IPS), "203.0.113.999");
        } else if spec.spec_field && !dual {
            s = s.lb_ip(first);
        } else {
            let mut list = first.to_string();
            if dual {
                let family = IpFamily::of(&ip(first));
                let other = WANTED
                    .iter()
                    .find(|w| IpFamily::of(&ip(w)) != family)
                    .unwrap();
                list = format!("{first},{other}");
            }
            s = s.ann(&ann(LOAD_BALANCER_IPS), &list);
        }
    }
    s = s
        .label("app", if spec.app { "web" } else { "db" })
        .ns_label("env", if spec.prod { "prod" } else { "dev" });
    // The status and pool annotation are the controller's: carried over from the previous version.
    if let Some(prev) = previous {
        s.ingress_ips = prev.ingress_ips.clone();
        if let Some(p) = prev.annotations.get(annotations::IP_ALLOCATED_FROM_POOL) {
            s.annotations
                .insert(annotations::IP_ALLOCATED_FROM_POOL.into(), p.clone());
        }
    }
    s
}

/// The cluster as the controller sees it, and the allocator it drives.
struct World {
    pools: Vec<PoolConfig>,
    services: BTreeMap<ServiceKey, ServiceView>,
    alloc: Allocator,
}

impl World {
    fn new(pools: Vec<PoolConfig>) -> Self {
        Self {
            alloc: allocator(pools.clone()),
            pools,
            services: BTreeMap::new(),
        }
    }

    /// Reconciles and writes the outcome back into the Service's status, as the controller would.
    fn reconcile(&mut self, key: &ServiceKey) {
        let view = self.services[key].clone();
        let outcome = self.alloc.reconcile(&view);
        let assignment = outcome.assignment().cloned();
        assert_eq!(
            self.alloc.assignment(key),
            assignment,
            "reconcile result is the stored state"
        );
        self.services
            .insert(key.clone(), written_back(&view, assignment.as_ref()));
    }

    fn reprocess_all(&mut self) {
        let keys: Vec<ServiceKey> = self.services.keys().cloned().collect();
        for k in &keys {
            self.reconcile(k);
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Upsert(spec) => {
                let key = key_of(spec.idx);
                let view = build_service(spec, self.services.get(&key));
                self.services.insert(key.clone(), view);
                self.reconcile(&key);
            }
            Op::Delete(idx) => {
                let key = key_of(*idx);
                self.services.remove(&key);
                self.alloc.release(&key);
            }
            Op::Pools(spec) => {
                let before: BTreeMap<ServiceKey, Vec<IpAddr>> =
                    self.alloc.assignments().map(|(k, a)| (k, a.ips)).collect();
                self.pools = build_pools(spec);
                self.alloc
                    .set_pools(self.pools.clone())
                    .expect("generated pools are valid");
                self.reprocess_all();
                // Pool edits never renumber: same IPs, or a PreferDualStack Service's missing family added.
                for (key, old) in before {
                    let now = self
                        .alloc
                        .assignment(&key)
                        .map(|a| a.ips)
                        .unwrap_or_default();
                    prop_assert!(
                        old.iter().all(|ip| now.contains(ip)),
                        "{key} renumbered by a pool edit: {old:?} → {now:?}"
                    );
                }
            }
            Op::ReprocessAll => self.reprocess_all(),
        }
        Ok(())
    }

    fn check(&self) -> Result<(), TestCaseError> {
        self.alloc.check_invariants().map_err(TestCaseError::fail)?;
        let assignments: BTreeMap<ServiceKey, Assignment> = self.alloc.assignments().collect();
        let conflicted: BTreeSet<ServiceKey> = self
            .alloc
            .conflicts()
            .into_iter()
            .map(|c| c.service)
            .collect();

        // Only current, in-scope Services hold IPs; every IP's holders may share it.
        let mut holders: BTreeMap<IpAddr, Vec<&ServiceView>> = BTreeMap::new();
        for (key, a) in &assignments {
            let view = self
                .services
                .get(key)
                .ok_or_else(|| TestCaseError::fail(format!("{key} deleted but holds IPs")))?;
            prop_assert!(view.scope(None).is_ok(), "{key} out of scope but holds IPs");
            for ip in &a.ips {
                holders.entry(*ip).or_default().push(view);
            }
        }
        for (ip, views) in &holders {
            for (i, x) in views.iter().enumerate() {
                for y in &views[i + 1..] {
                    prop_assert!(
                        may_share(x, y),
                        "{ip} held by {} and {}, which may not share",
                        x.key(),
                        y.key()
                    );
                }
            }
        }

        // Every assignment is valid for its Service, or reported as stranded.
        for (key, a) in &assignments {
            let view = &self.services[key];
            match &a.stranded {
                Some(_) => {
                    prop_assert!(conflicted.contains(key), "{key} stranded but not reported")
                }
                None => {
                    let why = valid_for(&self.pools, view, a);
                    prop_assert!(
                        why.is_none(),
                        "{key} holds {:?}: {}",
                        a.ips,
                        why.unwrap_or_default()
                    );
                    prop_assert!(!conflicted.contains(key));
                }
            }
        }

        // Statistics equal a recount.
        prop_assert_eq!(self.alloc.stats(), recount(&self.pools, &assignments));

        // A restart (import of every status into a fresh allocator) reproduces every assignment.
        let mut fresh = allocator(self.pools.clone());
        let mut order: Vec<&ServiceView> = self.services.values().collect();
        order.sort_by_key(|s| (std::cmp::Reverse(s.ingress_ips.len()), s.key()));
        for s in order {
            let outcome = fresh.import(s);
            prop_assert!(
                !matches!(outcome, Imported::Rejected { .. }),
                "{}: {outcome:?}",
                s.key()
            );
        }
        let replayed: BTreeMap<ServiceKey, Assignment> = fresh.assignments().collect();
        prop_assert_eq!(&replayed, &assignments);

        // allocate_all: order-independent, and a fixed point on its own output.
        let views: Vec<ServiceView> = self.services.values().cloned().collect();
        let first = allocate_all(&self.pools, None, &views).unwrap();
        let mut shuffled = views.clone();
        shuffled.reverse();
        shuffled.rotate_left(views.len() / 3);
        prop_assert_eq!(&allocate_all(&self.pools, None, &shuffled).unwrap(), &first);
        let written: Vec<ServiceView> = views
            .iter()
            .map(|v| written_back(v, first.get(&v.key()).and_then(|r| r.as_ref().ok())))
            .collect();
        prop_assert_eq!(&allocate_all(&self.pools, None, &written).unwrap(), &first);
        Ok(())
    }
}

/// MetalLB §3.3, stated independently of the allocator: equal non-empty keys, equal backend keys, disjoint
/// ports.
fn may_share(x: &ServiceView, y: &ServiceView) -> bool {
    let key = |s: &ServiceView| {
        Annotations::read(&s.annotations)
            .allow_shared_ip
            .unwrap_or_default()
    };
    let backend = |s: &ServiceView| match s.external_traffic_policy {
        ExternalTrafficPolicy::Local => Some(s.selector.clone()),
        ExternalTrafficPolicy::Cluster => None,
    };
    !key(x).is_empty()
        && key(x) == key(y)
        && backend(x) == backend(y)
        && x.ports.iter().all(|p| !y.ports.contains(p))
}

/// Why `a` is not a valid assignment for `view` under `pools` (None if it is).
fn valid_for(pools: &[PoolConfig], view: &ServiceView, a: &Assignment) -> Option<String> {
    let owners: BTreeSet<&str> = a
        .ips
        .iter()
        .map(|ip| owner(pools, *ip).map_or("-", |p| p.name.as_str()))
        .collect();
    if owners.len() != 1 || owners.contains("-") {
        return Some(format!("IPs lie in pools {owners:?}"));
    }
    let pool = pools
        .iter()
        .find(|p| owners.contains(p.name.as_str()))
        .unwrap();
    if a.pool.as_deref() != Some(pool.name.as_str()) {
        return Some(format!("reported pool {:?}, lies in {}", a.pool, pool.name));
    }
    let sa = pool.allocation.clone().unwrap_or_default();
    let ns_ok = (sa.namespaces.is_empty() && sa.namespace_selectors.is_empty())
        || sa.namespaces.contains(&view.namespace)
        || sa
            .namespace_selectors
            .iter()
            .any(|s| s.matches(&view.namespace_labels));
    let svc_ok = sa.service_selectors.is_empty()
        || sa.service_selectors.iter().any(|s| s.matches(&view.labels));
    if !(ns_ok && svc_ok) {
        return Some(format!("pool {} does not admit it", pool.name));
    }
    let ann = Annotations::read(&view.annotations);
    if ann.address_pool.as_ref().is_some_and(|p| *p != pool.name) {
        return Some(format!("annotation asks for {:?}", ann.address_pool));
    }
    let fams: Vec<IpFamily> = a.ips.iter().map(IpFamily::of).collect();
    let cluster: BTreeSet<IpFamily> = view.cluster_ip_families.iter().copied().collect();
    let prefer = view.family_policy() == IpFamilyPolicy::PreferDualStack;
    let fams_ok = match fams[..] {
        [f] => cluster == BTreeSet::from([f]) || (prefer && cluster.len() == 2),
        [f, g] => f != g && cluster.len() == 2,
        _ => false,
    };
    if !fams_ok {
        return Some(format!(
            "families {fams:?} for cluster families {cluster:?}"
        ));
    }
    let requested: Option<BTreeSet<IpAddr>> = match (&ann.load_balancer_ips, &view.load_balancer_ip)
    {
        (Some((_, v)), None) => v.split(',').map(|p| p.trim().parse().ok()).collect(),
        (None, Some(v)) => v.parse().ok().map(|ip| BTreeSet::from([ip])),
        _ => None,
    };
    if requested.is_some_and(|r| r != a.ips.iter().copied().collect()) {
        return Some("not the requested IPs".into());
    }
    None
}

/// The pool whose CIDRs contain `ip` and may hand it out.
fn owner(pools: &[PoolConfig], ip: IpAddr) -> Option<&PoolConfig> {
    pools
        .iter()
        .find(|p| p.cidrs.iter().any(|c| c.contains(ip)) && !(p.avoid_buggy_ips && is_buggy(ip)))
}

fn is_buggy(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if matches!(v4.octets()[3], 0 | 255))
}

/// Pool statistics from scratch: count every allowed address of every CIDR.
fn recount(
    pools: &[PoolConfig],
    assignments: &BTreeMap<ServiceKey, Assignment>,
) -> BTreeMap<String, PoolStats> {
    let held: BTreeSet<IpAddr> = assignments
        .values()
        .flat_map(|a| a.ips.iter().copied())
        .collect();
    pools
        .iter()
        .map(|p| {
            let mut capacity = [0i64; 2];
            for c in &p.cidrs {
                let f = usize::from(c.is_ipv6());
                if c.is_ipv6() && 128 - c.prefix() >= 62 {
                    capacity[f] = i64::MAX;
                } else if capacity[f] != i64::MAX {
                    capacity[f] += c
                        .iter()
                        .filter(|ip| !(p.avoid_buggy_ips && is_buggy(*ip)))
                        .count() as i64;
                }
            }
            let mut assigned = [0i64; 2];
            for ip in held
                .iter()
                .filter(|ip| owner(std::slice::from_ref(p), **ip).is_some())
            {
                assigned[usize::from(ip.is_ipv6())] += 1;
            }
            let available = |f: usize| {
                if capacity[f] == i64::MAX {
                    i64::MAX
                } else {
                    capacity[f] - assigned[f]
                }
            };
            let stats = PoolStats {
                assigned_ipv4: assigned[0],
                assigned_ipv6: assigned[1],
                available_ipv4: available(0),
                available_ipv6: available(1),
            };
            (p.name.clone(), stats)
        })
        .collect()
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Everyone wants to share one small dual-stack pool: sharing keys, ports and backends decide.
    #[test]
    fn crowded_sharing_histories_keep_every_invariant(
        ops in proptest::collection::vec(prop_oneof![
            6 => sharing_svc_spec().prop_map(Op::Upsert),
            2 => (0..NAMESPACES.len() * NAMES).prop_map(Op::Delete),
            1 => Just(Op::ReprocessAll),
        ], 1..40)
    ) {
        // Pool p0: 203.0.113.8/30 and 2001:db8::/126 only.
        let owner = [5, 0, 5, 5, 5, 0, 5, 5];
        let crowded = PoolSpec { owner, auto: [true; 4], buggy: [false; 4], alloc: [0; 4], priority: [0; 4] };
        let mut world = World::new(build_pools(&crowded));
        for op in &ops {
            world.apply(op)?;
            world.check()?;
        }
    }

    #[test]
    fn random_histories_keep_every_invariant(initial in pool_spec(), ops in proptest::collection::vec(op(), 1..40)) {
        let mut world = World::new(build_pools(&initial));
        for op in &ops {
            world.apply(op)?;
            world.check()?;
        }
    }
}
