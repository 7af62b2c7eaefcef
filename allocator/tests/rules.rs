//! Table tests, one group per rule of metallb-semantics.md (§1.1 pools, §2 Service inputs, §3 allocation) and
//! issue 3 part 4 (stability).

mod common;

use common::*;
use ferrolb_allocator::annotations::{
    ADDRESS_POOL, ALLOW_SHARED_IP, IP_ALLOCATED_FROM_POOL, LOAD_BALANCER_IPS,
};
use ferrolb_allocator::*;

// ----- §3.1 pool choice order -----

#[test]
fn fallback_pools_are_tried_by_name_and_addresses_in_cidr_order() {
    // Pool "b" is listed first, but fallback order is by name (MetalLB: Go map order).
    let mut a = allocator(vec![
        pool("b", &["198.51.100.0/30"]),
        pool("a", &["203.0.113.8/31", "203.0.113.0/31"]),
    ]);
    let got: Vec<_> = (0..6)
        .map(|i| assign(&mut a, &svc("ns", &format!("s{i}"))))
        .collect();
    assert_eq!(
        got,
        vec![
            Ok(ips(&["203.0.113.8"])),
            Ok(ips(&["203.0.113.9"])),
            Ok(ips(&["203.0.113.0"])), // next CIDR of pool a, in the order configured
            Ok(ips(&["203.0.113.1"])),
            Ok(ips(&["198.51.100.0"])), // then pool b
            Ok(ips(&["198.51.100.1"])),
        ]
    );
}

#[test]
fn freed_addresses_are_reused_first() {
    let mut a = allocator(vec![pool("p", &["203.0.113.0/24"])]);
    for i in 0..3 {
        assign(&mut a, &svc("ns", &format!("s{i}"))).unwrap();
    }
    assert_eq!(
        a.release(&ServiceKey::new("ns", "s1")),
        ips(&["203.0.113.1"])
    );
    assert_eq!(
        assign(&mut a, &svc("ns", "new")),
        Ok(ips(&["203.0.113.1"])),
        "first free, as MetalLB (#686)"
    );
    assert_eq!(
        assign(&mut a, &svc("ns", "next")),
        Ok(ips(&["203.0.113.3"]))
    );
}

#[test]
fn auto_assign_false_pools_are_only_reached_by_annotation_or_request() {
    let mut a = allocator(vec![manual(pool("reserved", &["203.0.113.0/24"]))]);
    assert_eq!(
        assign(&mut a, &svc("ns", "plain")),
        Err(AllocationError::NoPoolAdmits)
    );
    assert_eq!(
        assign(&mut a, &svc("ns", "pinned").ann(ADDRESS_POOL, "reserved")),
        Ok(ips(&["203.0.113.0"]))
    );
    assert_eq!(
        assign(&mut a, &svc("ns", "asked").lb_ip("203.0.113.9")),
        Ok(ips(&["203.0.113.9"]))
    );
}

#[test]
fn service_allocation_pools_are_ordered_by_priority_then_unset_then_name() {
    let pools = vec![
        pool("fallback", &["203.0.113.100/32"]),
        priority(pool("unset", &["203.0.113.50/32"]), 0),
        priority(pool("ten", &["203.0.113.10/32"]), 10),
        priority(pool("one-b", &["203.0.113.2/32"]), 1),
        priority(pool("one-a", &["203.0.113.1/32"]), 1),
    ];
    let mut a = allocator(pools);
    let order: Vec<_> = (0..6)
        .map(|i| assign(&mut a, &svc("ns", &format!("s{i}"))))
        .collect();
    assert_eq!(
        order,
        vec![
            Ok(ips(&["203.0.113.1"])),   // priority 1, name one-a
            Ok(ips(&["203.0.113.2"])),   // priority 1, name one-b
            Ok(ips(&["203.0.113.10"])),  // priority 10
            Ok(ips(&["203.0.113.50"])),  // priority 0 = unset = last of the pinned pools
            Ok(ips(&["203.0.113.100"])), // then the pools without serviceAllocation
            Err(AllocationError::NoAddress {
                dual_stack_required: false,
                shortfalls: ["one-a", "one-b", "ten", "unset", "fallback"]
                    .iter()
                    .map(|p| Shortfall {
                        pool: p.to_string(),
                        family: IpFamily::IPv4,
                        exhausted: true
                    })
                    .collect(),
            }),
        ]
    );
}

#[test]
fn a_pool_with_service_allocation_is_never_a_fallback() {
    let mut a = allocator(vec![for_namespaces(
        pool("team-a", &["203.0.113.0/24"]),
        &["team-a"],
    )]);
    assert_eq!(
        assign(&mut a, &svc("team-b", "web")),
        Err(AllocationError::NoPoolAdmits)
    );
    assert_eq!(
        assign(&mut a, &svc("team-a", "web")),
        Ok(ips(&["203.0.113.0"]))
    );
    // A namespace-matched pool wins over a fallback pool that sorts first.
    let mut a = allocator(vec![
        pool("aaa", &["198.51.100.0/24"]),
        for_namespaces(pool("zzz", &["203.0.113.0/24"]), &["team-a"]),
    ]);
    assert_eq!(
        assign(&mut a, &svc("team-a", "web")),
        Ok(ips(&["203.0.113.0"]))
    );
    assert_eq!(
        assign(&mut a, &svc("team-b", "web")),
        Ok(ips(&["198.51.100.0"]))
    );
}

#[test]
fn pinned_pools_must_also_auto_assign() {
    let p = manual(for_namespaces(
        pool("team-a", &["203.0.113.0/24"]),
        &["team-a"],
    ));
    let mut a = allocator(vec![p, pool("other", &["198.51.100.0/24"])]);
    assert_eq!(
        assign(&mut a, &svc("team-a", "web")),
        Ok(ips(&["198.51.100.0"]))
    );
    assert_eq!(
        assign(&mut a, &svc("team-a", "pinned").ann(ADDRESS_POOL, "team-a")),
        Ok(ips(&["203.0.113.0"]))
    );
}

#[test]
fn namespace_selectors_and_service_selectors() {
    let by_ns_label = allocation(
        pool("prod", &["203.0.113.0/24"]),
        ServiceAllocation {
            namespace_selectors: vec![LabelSelector::labels([("env", "prod")])],
            ..Default::default()
        },
    );
    let by_svc_label = allocation(
        pool("web", &["198.51.100.0/24"]),
        ServiceAllocation {
            priority: 1,
            service_selectors: vec![
                LabelSelector::labels([("app", "web")]),
                LabelSelector {
                    match_expressions: vec![LabelSelectorRequirement {
                        key: "tier".into(),
                        operator: SelectorOperator::In,
                        values: ["front".into()].into(),
                    }],
                    ..Default::default()
                },
            ],
            ..Default::default()
        },
    );
    let mut a = allocator(vec![by_ns_label, by_svc_label]);
    assert_eq!(
        assign(&mut a, &svc("shop", "a").ns_label("env", "prod")),
        Ok(ips(&["203.0.113.0"]))
    );
    assert_eq!(
        assign(&mut a, &svc("shop", "b").ns_label("env", "dev")),
        Err(AllocationError::NoPoolAdmits)
    );
    // Any service selector may match; priority 1 beats the unset priority of "prod".
    assert_eq!(
        assign(
            &mut a,
            &svc("shop", "c")
                .label("tier", "front")
                .ns_label("env", "prod")
        ),
        Ok(ips(&["198.51.100.0"]))
    );
    assert_eq!(
        assign(&mut a, &svc("shop", "d").label("app", "web")),
        Ok(ips(&["198.51.100.1"]))
    );
    // Listed namespaces and selected namespaces add up.
    let both = allocation(
        pool("p", &["203.0.113.0/24"]),
        ServiceAllocation {
            namespaces: vec!["listed".into()],
            namespace_selectors: vec![LabelSelector::labels([("env", "prod")])],
            ..Default::default()
        },
    );
    let mut a = allocator(vec![both]);
    assert!(assign(&mut a, &svc("listed", "x")).is_ok());
    assert!(assign(&mut a, &svc("other", "x").ns_label("env", "prod")).is_ok());
    assert_eq!(
        assign(&mut a, &svc("other", "y")),
        Err(AllocationError::NoPoolAdmits)
    );
}

#[test]
fn empty_service_allocation_admits_everyone_but_is_ordered_first() {
    let mut a = allocator(vec![
        pool("aaa", &["198.51.100.0/24"]),
        priority(pool("zzz", &["203.0.113.0/24"]), 3),
    ]);
    assert_eq!(assign(&mut a, &svc("any", "x")), Ok(ips(&["203.0.113.0"])));
}

// ----- §2 requested IPs -----

#[test]
fn requested_ips_must_lie_in_a_pool_that_admits_the_service() {
    let mut a = allocator(vec![
        pool("open", &["203.0.113.0/25"]),
        for_namespaces(pool("team", &["203.0.113.128/25"]), &["team"]),
    ]);
    assert_eq!(
        assign(&mut a, &svc("ns", "a").lb_ip("203.0.113.7")),
        Ok(ips(&["203.0.113.7"]))
    );
    let err = assign(&mut a, &svc("ns", "b").lb_ip("198.51.100.7")).unwrap_err();
    assert_eq!(err.to_string(), "requested IP 198.51.100.7 is in no pool");
    let err = assign(&mut a, &svc("ns", "c").lb_ip("203.0.113.200")).unwrap_err();
    assert!(
        matches!(&err, AllocationError::PoolDoesNotAdmit { pool, .. } if pool == "team"),
        "{err}"
    );
    assert_eq!(
        assign(&mut a, &svc("team", "d").lb_ip("203.0.113.200")),
        Ok(ips(&["203.0.113.200"]))
    );
    // The annotation form, and a pair across families.
    let mut a = allocator(vec![pool("ds", &["203.0.113.0/24", "2001:db8::/64"])]);
    let s = svc("ns", "pair")
        .dual(IpFamilyPolicy::RequireDualStack, IpFamily::IPv4)
        .ann(LOAD_BALANCER_IPS, "2001:db8::5, 203.0.113.5");
    assert_eq!(
        assign(&mut a, &s),
        Ok(ips(&["2001:db8::5", "203.0.113.5"])),
        "requested order is kept"
    );
}

#[test]
fn requested_ips_and_the_pool_annotation_must_agree() {
    let mut a = allocator(vec![
        pool("blue", &["203.0.113.0/24"]),
        pool("red", &["198.51.100.0/24"]),
    ]);
    let s = svc("ns", "a").lb_ip("203.0.113.7").ann(ADDRESS_POOL, "red");
    assert_eq!(
        assign(&mut a, &s).unwrap_err().to_string(),
        "requested IP 203.0.113.7 is in pool blue, but the address-pool annotation asks for pool red"
    );
    let s = svc("ns", "b")
        .lb_ip("203.0.113.7")
        .ann(ADDRESS_POOL, "blue");
    assert_eq!(assign(&mut a, &s), Ok(ips(&["203.0.113.7"])));
}

#[test]
fn malformed_ip_requests_are_errors() {
    let mut a = allocator(vec![pool("p", &["203.0.113.0/24", "2001:db8::/64"])]);
    let both = svc("ns", "both")
        .lb_ip("203.0.113.1")
        .ann(LOAD_BALANCER_IPS, "203.0.113.2");
    assert_eq!(
        assign(&mut a, &both).unwrap_err().to_string(),
        "annotation ferrolb.io/loadBalancerIPs and spec.loadBalancerIP cannot both be set"
    );
    let three = svc("ns", "three").ann(LOAD_BALANCER_IPS, "203.0.113.1,203.0.113.2,2001:db8::1");
    assert!(matches!(
        assign(&mut a, &three),
        Err(AllocationError::InvalidAnnotation { .. })
    ));
    let same = svc("ns", "same").ann(LOAD_BALANCER_IPS, "203.0.113.1,203.0.113.2");
    assert!(assign(&mut a, &same)
        .unwrap_err()
        .to_string()
        .contains("different families"));
    let junk = svc("ns", "junk").lb_ip("not-an-ip");
    assert_eq!(
        assign(&mut a, &junk),
        Err(AllocationError::InvalidLoadBalancerIp {
            value: "not-an-ip".into()
        })
    );
    // Requested families must be the Service's.
    let v6_for_v4 = svc("ns", "fam").lb_ip("2001:db8::1");
    assert!(matches!(
        assign(&mut a, &v6_for_v4),
        Err(AllocationError::RequestedFamilyMismatch { .. })
    ));
    let one_for_dual = svc("ns", "dual")
        .dual(IpFamilyPolicy::PreferDualStack, IpFamily::IPv4)
        .lb_ip("203.0.113.1");
    assert!(matches!(
        assign(&mut a, &one_for_dual),
        Err(AllocationError::RequestedFamilyMismatch { .. })
    ));
}

#[test]
fn changing_the_requested_ip_moves_the_service() {
    let mut a = allocator(vec![pool("p", &["203.0.113.0/24"])]);
    assert_eq!(assign(&mut a, &svc("ns", "a")), Ok(ips(&["203.0.113.0"])));
    let ev = events(&mut a, &svc("ns", "a").lb_ip("203.0.113.9"));
    assert!(ev.iter().any(|e| matches!(
        e,
        AllocEvent::Cleared {
            reason: ClearReason::RequestedIpsChanged { .. },
            ..
        }
    )));
    assert_eq!(
        a.assignment(&ServiceKey::new("ns", "a")).unwrap().ips,
        ips(&["203.0.113.9"])
    );
    assert!(a.holders(ip("203.0.113.0")).is_empty());
}

#[test]
fn a_malformed_request_keeps_the_current_ip() {
    let mut a = allocator(vec![pool("p", &["203.0.113.0/24"])]);
    assign(&mut a, &svc("ns", "a")).unwrap();
    let broken = svc("ns", "a").ann(LOAD_BALANCER_IPS, "203.0.113.300");
    match a.reconcile(&broken) {
        Reconciled::Handled {
            result: Ok(x),
            events,
        } => {
            assert_eq!(x.ips, ips(&["203.0.113.0"]));
            assert!(matches!(events[..], [AllocEvent::RequestIgnored { .. }]));
        }
        other => panic!("{other:?}"),
    }
}

// ----- §2 address-pool annotation -----

#[test]
fn address_pool_annotation() {
    let mut a = allocator(vec![
        pool("aaa", &["198.51.100.0/24"]),
        manual(pool("blue", &["203.0.113.0/31"])),
        for_namespaces(pool("team", &["203.0.113.128/25"]), &["team"]),
    ]);
    let blue = |n: &str| svc("ns", n).ann(ADDRESS_POOL, "blue");
    assert_eq!(assign(&mut a, &blue("a")), Ok(ips(&["203.0.113.0"])));
    assert_eq!(assign(&mut a, &blue("b")), Ok(ips(&["203.0.113.1"])));
    assert_eq!(
        assign(&mut a, &blue("c")).unwrap_err().to_string(),
        "no address available: pool blue is exhausted (no free IPv4 address)"
    );
    assert_eq!(
        assign(&mut a, &svc("ns", "d").ann(ADDRESS_POOL, "green")),
        Err(AllocationError::UnknownPool {
            pool: "green".into()
        })
    );
    assert!(matches!(
        assign(&mut a, &svc("ns", "e").ann(ADDRESS_POOL, "team")),
        Err(AllocationError::PoolDoesNotAdmit { .. })
    ));
    assert_eq!(
        assign(&mut a, &svc("ns", "f").v6().ann(ADDRESS_POOL, "aaa"))
            .unwrap_err()
            .to_string(),
        "no address available: pool aaa has no IPv6 addresses"
    );
}

#[test]
fn changing_the_address_pool_annotation_reallocates_there() {
    let mut a = allocator(vec![
        pool("blue", &["203.0.113.0/24"]),
        pool("red", &["198.51.100.0/24"]),
    ]);
    assert_eq!(assign(&mut a, &svc("ns", "a")), Ok(ips(&["203.0.113.0"])));
    let moved = svc("ns", "a").ann(ADDRESS_POOL, "red");
    let ev = events(&mut a, &moved);
    assert!(ev.contains(&AllocEvent::Cleared {
        ips: ips(&["203.0.113.0"]),
        reason: ClearReason::PoolAnnotationChanged {
            wanted: "red".into(),
            current: Some("blue".into())
        },
    }));
    assert!(ev.contains(&AllocEvent::Allocated {
        ips: ips(&["198.51.100.0"]),
        pool: "red".into()
    }));
    // Naming the current pool changes nothing.
    let mut a = allocator(vec![pool("blue", &["203.0.113.0/24"])]);
    assign(&mut a, &svc("ns", "a")).unwrap();
    assert_eq!(
        events(&mut a, &svc("ns", "a").ann(ADDRESS_POOL, "blue")),
        vec![]
    );
}

// ----- §3.3 IP sharing -----

fn shared(name: &str, key: &str, ports: &[ServicePort]) -> ServiceView {
    svc("ns", name).ann(ALLOW_SHARED_IP, key).ports(ports)
}

#[test]
fn sharing_needs_equal_keys_and_disjoint_ports() {
    use ServicePort as P;
    let mut a = allocator(vec![pool("p", &["203.0.113.0/24"])]);
    assert_eq!(
        assign(&mut a, &shared("dns-tcp", "k", &[P::tcp(53)])),
        Ok(ips(&["203.0.113.0"]))
    );
    assert_eq!(
        assign(&mut a, &shared("dns-udp", "k", &[P::udp(53)])),
        Ok(ips(&["203.0.113.0"])),
        "TCP/53 + UDP/53"
    );
    assert_eq!(
        assign(&mut a, &shared("dns-tcp2", "k", &[P::tcp(53)])),
        Ok(ips(&["203.0.113.1"])),
        "port overlap"
    );
    assert_eq!(
        assign(&mut a, &shared("other-key", "j", &[P::tcp(80)])),
        Ok(ips(&["203.0.113.2"]))
    );
    assert_eq!(
        assign(&mut a, &svc("ns", "no-key").ports(&[P::tcp(81)])),
        Ok(ips(&["203.0.113.3"]))
    );
    assert_eq!(
        assign(&mut a, &shared("web", "k", &[P::tcp(80)])),
        Ok(ips(&["203.0.113.0"])),
        "first sharable IP wins"
    );
    assert_eq!(a.holders(ip("203.0.113.0")).len(), 3);
    assert_eq!(
        a.pool_stats("p").unwrap().assigned_ipv4,
        4,
        "a shared IP counts once"
    );
}

#[test]
fn sharing_follows_the_first_usable_address_in_cidr_order() {
    let mut a = allocator(vec![pool("p", &["203.0.113.0/24"])]);
    assign(&mut a, &svc("ns", "a")).unwrap(); // .0, not sharable
    assign(&mut a, &svc("ns", "b")).unwrap(); // .1
    assign(&mut a, &shared("c", "k", &[ServicePort::tcp(80)])).unwrap(); // .2
    a.release(&ServiceKey::new("ns", "a")); // .0 free again, before the shared .2
    assert_eq!(
        assign(&mut a, &shared("d", "k", &[ServicePort::tcp(443)])),
        Ok(ips(&["203.0.113.0"]))
    );
    assert_eq!(
        assign(&mut a, &shared("e", "k", &[ServicePort::tcp(8443)])),
        Ok(ips(&["203.0.113.0"]))
    );
}

#[test]
fn local_traffic_policy_shares_only_with_the_same_selector() {
    let p = [ServicePort::tcp(80)];
    let q = [ServicePort::tcp(443)];
    let mut a = allocator(vec![pool("p", &["203.0.113.0/24"])]);
    assert_eq!(
        assign(&mut a, &shared("a", "k", &p).local(&[("app", "web")])),
        Ok(ips(&["203.0.113.0"]))
    );
    assert_eq!(
        assign(&mut a, &shared("b", "k", &q).local(&[("app", "web")])),
        Ok(ips(&["203.0.113.0"]))
    );
    assert_eq!(
        assign(
            &mut a,
            &shared("c", "k", &[ServicePort::tcp(1)]).local(&[("app", "db")])
        ),
        Ok(ips(&["203.0.113.1"]))
    );
    assert_eq!(
        assign(&mut a, &shared("d", "k", &[ServicePort::tcp(2)])),
        Ok(ips(&["203.0.113.2"])),
        "Cluster vs Local"
    );
    let err = assign(
        &mut a,
        &shared("e", "k", &[ServicePort::tcp(3)])
            .local(&[("app", "db")])
            .lb_ip("203.0.113.0"),
    )
    .unwrap_err();
    assert!(
        matches!(&err, AllocationError::SharingConflict { mismatch, .. }
            if matches!(**mismatch, SharingMismatch::DifferentBackends { .. })),
        "{err}"
    );
}

#[test]
fn requesting_a_held_ip_reports_the_holder() {
    let mut a = allocator(vec![pool("p", &["203.0.113.0/24"])]);
    assign(&mut a, &svc("default", "web").lb_ip("203.0.113.7")).unwrap();
    let err = assign(&mut a, &svc("ns", "x").lb_ip("203.0.113.7")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "IP 203.0.113.7 is held by default/web with an incompatible sharing key: the holder does not allow sharing"
    );
    let mut a = allocator(vec![pool("p", &["203.0.113.0/24"])]);
    assign(
        &mut a,
        &shared("web", "k", &[ServicePort::tcp(80)]).lb_ip("203.0.113.7"),
    )
    .unwrap();
    let err = assign(
        &mut a,
        &shared("x", "k", &[ServicePort::tcp(80)]).lb_ip("203.0.113.7"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "IP 203.0.113.7 is held by ns/web, which also uses port TCP/80"
    );
    assert_eq!(
        assign(
            &mut a,
            &shared("y", "k", &[ServicePort::tcp(81)]).lb_ip("203.0.113.7")
        ),
        Ok(ips(&["203.0.113.7"]))
    );
}

#[test]
fn a_sole_holder_may_change_its_key_but_a_sharer_must_move() {
    let mut a = allocator(vec![pool("p", &["203.0.113.0/24"])]);
    assign(&mut a, &shared("a", "k", &[ServicePort::tcp(80)])).unwrap();
    assert_eq!(
        assign(&mut a, &shared("a", "other", &[ServicePort::tcp(80)])),
        Ok(ips(&["203.0.113.0"]))
    );
    assert_eq!(
        assign(&mut a, &shared("b", "other", &[ServicePort::tcp(81)])),
        Ok(ips(&["203.0.113.0"]))
    );
    // Now two holders: a changing its key (or its ports onto b's) must move.
    let ev = events(&mut a, &shared("a", "third", &[ServicePort::tcp(80)]));
    assert!(
        ev.iter().any(|e| matches!(
            e,
            AllocEvent::Cleared {
                reason: ClearReason::Sharing(_),
                ..
            }
        )),
        "{ev:?}"
    );
    assert_eq!(
        a.assignment(&ServiceKey::new("ns", "a")).unwrap().ips,
        ips(&["203.0.113.1"])
    );
    assign(&mut a, &shared("c", "other", &[ServicePort::tcp(82)])).unwrap();
    let ev = events(&mut a, &shared("c", "other", &[ServicePort::tcp(81)]));
    assert!(
        ev.iter().any(|e| matches!(e, AllocEvent::Cleared { .. })),
        "{ev:?}"
    );
    assert_ne!(
        a.assignment(&ServiceKey::new("ns", "c")).unwrap().ips,
        ips(&["203.0.113.0"])
    );
}

// ----- §2 dual-stack -----

#[test]
fn require_dual_stack_takes_both_families_from_one_pool() {
    let mut a = allocator(vec![
        pool("a-v4", &["198.51.100.0/24"]),
        pool("b-both", &["2001:db8::/64", "203.0.113.0/24"]),
    ]);
    let s = svc("ns", "ds").dual(IpFamilyPolicy::RequireDualStack, IpFamily::IPv6);
    assert_eq!(
        assign(&mut a, &s),
        Ok(ips(&["203.0.113.0", "2001:db8::"])),
        "IPv4 first, as MetalLB writes them"
    );
    let mut a = allocator(vec![
        pool("x", &["198.51.100.0/24"]),
        pool("y", &["2001:db8::/64"]),
    ]);
    assert_eq!(
        assign(&mut a, &s).unwrap_err().to_string(),
        "RequireDualStack needs IPv4 and IPv6 from one pool, but pool x has no IPv6 addresses; \
         pool y has no IPv4 addresses"
    );
}

#[test]
fn prefer_dual_stack_takes_what_it_can_then_adds_the_missing_family_from_the_same_pool() {
    let v4_only = pool("p", &["203.0.113.0/24"]);
    let mut a = allocator(vec![v4_only.clone(), pool("q", &["2001:db8:1::/64"])]);
    let s = svc("ns", "ds").dual(IpFamilyPolicy::PreferDualStack, IpFamily::IPv4);
    match a.reconcile(&s) {
        Reconciled::Handled { result: Ok(x), .. } => assert_eq!(x.ips, ips(&["203.0.113.0"])),
        other => panic!("{other:?}"),
    }
    // Next reconcile: still no IPv6 in pool p (pool q does not count).
    let ev = events(&mut a, &s);
    assert!(
        matches!(ev[..], [AllocEvent::AdditionalFamilyFailed { .. }]),
        "{ev:?}"
    );
    let mut with_v6 = v4_only;
    with_v6.cidrs.push("2001:db8::/64".parse().unwrap());
    assert_eq!(
        a.set_pools(vec![with_v6, pool("q", &["2001:db8:1::/64"])]),
        Ok(vec![])
    );
    let ev = events(&mut a, &s);
    assert_eq!(
        ev,
        vec![AllocEvent::AddedFamily {
            ip: ip("2001:db8::"),
            pool: "p".into()
        }]
    );
    assert_eq!(
        a.assignment(&s.key()).unwrap().ips,
        ips(&["203.0.113.0", "2001:db8::"])
    );
}

#[test]
fn prefer_dual_stack_prefers_a_pool_with_both_then_the_primary_family() {
    let pools = vec![
        pool("a", &["198.51.100.0/24"]),
        pool("b", &["2001:db8::/64"]),
        pool("c", &["2001:db8:1::/64", "203.0.113.0/24"]),
    ];
    let mut a = allocator(pools.clone());
    let s = svc("ns", "x").dual(IpFamilyPolicy::PreferDualStack, IpFamily::IPv6);
    assert_eq!(
        assign(&mut a, &s),
        Ok(ips(&["203.0.113.0", "2001:db8:1::"]))
    );
    let mut a = allocator(pools[..2].to_vec());
    assert_eq!(
        assign(&mut a, &s),
        Ok(ips(&["2001:db8::"])),
        "primary family IPv6 → pool b"
    );
    let s4 = svc("ns", "y").dual(IpFamilyPolicy::PreferDualStack, IpFamily::IPv4);
    assert_eq!(
        assign(&mut a, &s4),
        Ok(ips(&["198.51.100.0"])),
        "primary family IPv4 → pool a"
    );
}

#[test]
fn single_stack_uses_its_cluster_ip_family_and_no_cluster_ip_means_no_allocation() {
    let mut a = allocator(vec![pool("p", &["203.0.113.0/24", "2001:db8::/64"])]);
    assert_eq!(
        assign(&mut a, &svc("ns", "v6").v6()),
        Ok(ips(&["2001:db8::"]))
    );
    assert_eq!(assign(&mut a, &svc("ns", "v4")), Ok(ips(&["203.0.113.0"])));
    let mut headless = svc("ns", "none");
    headless.cluster_ip_families.clear();
    assert_eq!(assign(&mut a, &headless), Err(AllocationError::NoClusterIp));
    // Losing the cluster IP clears the assignment (MetalLB).
    let mut lost = svc("ns", "v4");
    lost.cluster_ip_families.clear();
    assert_eq!(assign(&mut a, &lost), Err(AllocationError::NoClusterIp));
    assert!(a.assignment(&lost.key()).is_none());
}

#[test]
fn a_family_change_reallocates() {
    let mut a = allocator(vec![pool("p", &["203.0.113.0/24", "2001:db8::/64"])]);
    assign(&mut a, &svc("ns", "a")).unwrap();
    let ev = events(
        &mut a,
        &svc("ns", "a").dual(IpFamilyPolicy::RequireDualStack, IpFamily::IPv4),
    );
    assert!(ev.iter().any(|e| matches!(
        e,
        AllocEvent::Cleared {
            reason: ClearReason::FamilyChanged { .. },
            ..
        }
    )));
    assert_eq!(
        a.assignment(&ServiceKey::new("ns", "a")).unwrap().ips,
        ips(&["203.0.113.0", "2001:db8::"])
    );
}

// ----- §1.1 avoidBuggyIPs -----

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255() {
    let mut a = allocator(vec![buggy(pool("p", &["100.64.0.0/23"]))]);
    assert_eq!(
        assign(&mut a, &svc("ns", "first")),
        Ok(ips(&["100.64.0.1"]))
    );
    for i in 0..253 {
        assign(&mut a, &svc("ns", &format!("fill{i}"))).unwrap();
    }
    assert_eq!(
        a.assignment(&ServiceKey::new("ns", "fill252")).unwrap().ips,
        ips(&["100.64.0.254"])
    );
    assert_eq!(
        assign(&mut a, &svc("ns", "next")),
        Ok(ips(&["100.64.1.1"])),
        "skips .255 and .0"
    );
    assert_eq!(
        assign(&mut a, &svc("ns", "asked").lb_ip("100.64.1.255")),
        Err(AllocationError::RequestedIpBuggy {
            ip: ip("100.64.1.255"),
            pool: "p".into()
        })
    );
    assert_eq!(
        a.pool_stats("p").unwrap(),
        PoolStats {
            assigned_ipv4: 255,
            available_ipv4: 508 - 255,
            ..Default::default()
        }
    );
}

#[test]
fn without_avoid_buggy_ips_network_and_broadcast_addresses_are_allocated() {
    let mut a = allocator(vec![pool("p", &["203.0.113.0/30"])]);
    let got: Vec<_> = (0..4)
        .map(|i| assign(&mut a, &svc("ns", &format!("s{i}"))).unwrap())
        .collect();
    assert_eq!(
        got.concat(),
        ips(&["203.0.113.0", "203.0.113.1", "203.0.113.2", "203.0.113.3"])
    );
    assert_eq!(
        assign(&mut a, &svc("ns", "lb")).unwrap_err().to_string(),
        "no address available: pool p is exhausted (no free IPv4 address)"
    );
}

// ----- §2 classes, types, deletion -----

#[test]
fn classes_select_which_services_are_handled() {
    let pools = vec![pool("p", &["203.0.113.0/24"])];
    let mut default = allocator(pools.clone());
    assert!(matches!(
        default.reconcile(&svc("ns", "c").class("x")),
        Reconciled::Ignored {
            reason: Ignored::OtherClass { .. },
            ..
        }
    ));
    assert!(default
        .reconcile(&svc("ns", "plain"))
        .assignment()
        .is_some());

    let mut x = Allocator::new(Some("x".into()));
    x.set_pools(pools).unwrap();
    assert!(x
        .reconcile(&svc("ns", "c").class("x"))
        .assignment()
        .is_some());
    assert!(matches!(
        x.reconcile(&svc("ns", "plain")),
        Reconciled::Ignored { .. }
    ));
    assert!(matches!(
        x.reconcile(&svc("ns", "y").class("y")),
        Reconciled::Ignored { .. }
    ));
    // Leaving the class releases the IP.
    match x.reconcile(&svc("ns", "c").class("other")) {
        Reconciled::Ignored { released, .. } => assert_eq!(released, ips(&["203.0.113.0"])),
        other => panic!("{other:?}"),
    }
    assert!(x.is_empty());
}

#[test]
fn services_that_stop_being_load_balancers_or_are_deleted_release_their_ips() {
    let mut a = allocator(vec![pool("p", &["203.0.113.0/31"])]);
    assign(&mut a, &svc("ns", "a")).unwrap();
    assign(&mut a, &svc("ns", "b")).unwrap();
    let mut cluster_ip = svc("ns", "a");
    cluster_ip.is_load_balancer = false;
    assert_eq!(
        a.reconcile(&cluster_ip),
        Reconciled::Ignored {
            reason: Ignored::NotLoadBalancer,
            released: ips(&["203.0.113.0"])
        }
    );
    assert_eq!(
        a.release(&ServiceKey::new("ns", "b")),
        ips(&["203.0.113.1"])
    );
    assert_eq!(a.pool_stats("p").unwrap().assigned_ipv4, 0);
    assert_eq!(assign(&mut a, &svc("ns", "c")), Ok(ips(&["203.0.113.0"])));
}

// ----- §2 annotation aliases -----

#[test]
fn metallb_annotations_work_as_aliases_and_are_reported() {
    let mut a = allocator(vec![
        pool("aaa", &["198.51.100.0/24"]),
        pool("blue", &["203.0.113.0/24"]),
    ]);
    let s = svc("ns", "a").ann("metallb.io/address-pool", "blue");
    match a.reconcile(&s) {
        Reconciled::Handled {
            result: Ok(x),
            events,
        } => {
            assert_eq!(x.ips, ips(&["203.0.113.0"]));
            assert!(events.contains(&AllocEvent::DeprecatedAnnotation {
                alias: AliasUse {
                    key: "metallb.io/address-pool".into(),
                    canonical: ADDRESS_POOL.into(),
                    shadowed: false
                },
            }));
        }
        other => panic!("{other:?}"),
    }
    let s = svc("ns", "b").ann("metallb.universe.tf/loadBalancerIPs", "203.0.113.9");
    assert_eq!(assign(&mut a, &s), Ok(ips(&["203.0.113.9"])));
    let s1 = svc("ns", "c")
        .ann("metallb.io/allow-shared-ip", "k")
        .ports(&[ServicePort::tcp(1)])
        .lb_ip("198.51.100.5");
    let s2 = svc("ns", "d")
        .ann(ALLOW_SHARED_IP, "k")
        .ports(&[ServicePort::tcp(2)])
        .lb_ip("198.51.100.5");
    assert!(assign(&mut a, &s1).is_ok() && assign(&mut a, &s2).is_ok());
    // ferrolb.io wins over the alias.
    let s = svc("ns", "e")
        .ann(ADDRESS_POOL, "aaa")
        .ann("metallb.io/address-pool", "blue");
    assert_eq!(assign(&mut a, &s), Ok(ips(&["198.51.100.0"])));
    assert!(aliases_used(&s.annotations)[0].shadowed);
}

// ----- stability (issue 3 part 4) -----

#[test]
fn deleting_a_pool_keeps_its_ips_and_reports_conflicts() {
    let mut a = allocator(vec![
        pool("blue", &["203.0.113.0/24"]),
        pool("red", &["198.51.100.0/24"]),
    ]);
    assign(&mut a, &svc("ns", "web").ann(ADDRESS_POOL, "blue")).unwrap();
    assign(&mut a, &svc("ns", "db").ann(ADDRESS_POOL, "red")).unwrap();
    let conflicts = a
        .set_pools(vec![pool("red", &["198.51.100.0/24"])])
        .unwrap();
    assert_eq!(
        conflicts,
        vec![PoolConflict {
            pool: Some("blue".into()),
            service: ServiceKey::new("ns", "web"),
            ip: ip("203.0.113.0"),
            reason: StrandedReason::PoolDeleted {
                pool: "blue".into()
            },
        }]
    );
    assert_eq!(
        conflicts[0].to_string(),
        "ns/web keeps 203.0.113.0 although pool blue no longer exists"
    );
    // Reconciling the unchanged Service keeps it (no renumbering), and says why.
    let s = svc("ns", "web").ann(ADDRESS_POOL, "blue");
    let r = a.reconcile(&s);
    let x = r.assignment().unwrap();
    assert_eq!(
        (x.ips.clone(), x.pool.as_deref()),
        (ips(&["203.0.113.0"]), Some("blue"))
    );
    assert_eq!(
        x.stranded,
        Some(StrandedReason::PoolDeleted {
            pool: "blue".into()
        })
    );
    // The pool comes back: valid again, no conflict; and the held IP is never handed out twice.
    assert_eq!(
        a.set_pools(vec![
            pool("blue", &["203.0.113.0/24"]),
            pool("red", &["198.51.100.0/24"])
        ]),
        Ok(vec![])
    );
    assert_eq!(
        assign(&mut a, &svc("ns", "new").ann(ADDRESS_POOL, "blue")),
        Ok(ips(&["203.0.113.1"]))
    );
    a.check_invariants().unwrap();
}

#[test]
fn shrinking_a_pool_keeps_stranded_ips_out_of_other_hands() {
    let mut a = allocator(vec![pool("p", &["203.0.113.0/24"])]);
    for i in 0..3 {
        assign(&mut a, &svc("ns", &format!("s{i}"))).unwrap();
    }
    // .0–.2 held; the pool now only covers .2–.3 and a new pool covers .0–.1.
    let conflicts = a
        .set_pools(vec![
            pool("p", &["203.0.113.2/31"]),
            manual(for_namespaces(pool("q", &["203.0.113.0/31"]), &["other"])),
        ])
        .unwrap();
    assert_eq!(conflicts.len(), 2);
    assert!(
        conflicts
            .iter()
            .all(|c| matches!(&c.reason, StrandedReason::NotAdmitted { pool, .. } if pool == "q")),
        "{conflicts:?}"
    );
    assert_eq!(
        a.pool_stats("q").unwrap().assigned_ipv4,
        2,
        "stranded IPs still occupy their addresses"
    );
    assert_eq!(assign(&mut a, &svc("ns", "new")), Ok(ips(&["203.0.113.3"])));
    assert_eq!(
        assign(&mut a, &svc("other", "x").ann(ADDRESS_POOL, "q"))
            .unwrap_err()
            .to_string(),
        "no address available: pool q is exhausted (no free IPv4 address)"
    );
    // Removing the CIDR entirely: LeftPool.
    let conflicts = a.set_pools(vec![pool("p", &["203.0.113.2/31"])]).unwrap();
    assert!(
        conflicts.iter().all(|c| c.reason
            == StrandedReason::LeftPool {
                pool: Some("p".into()),
                now: None
            }),
        "{conflicts:?}"
    );
    a.check_invariants().unwrap();
}

#[test]
fn pool_edits_that_strand_ips_never_renumber() {
    let base = pool("p", &["203.0.113.0/24"]);
    let mut a = allocator(vec![base.clone()]);
    assign(&mut a, &svc("team", "web")).unwrap();
    // serviceAllocation now excludes the namespace.
    let conflicts = a
        .set_pools(vec![for_namespaces(base.clone(), &["other"])])
        .unwrap();
    assert!(matches!(
        &conflicts[..],
        [PoolConflict {
            reason: StrandedReason::NotAdmitted { .. },
            ..
        }]
    ));
    assert_eq!(
        assign(&mut a, &svc("team", "web")),
        Ok(ips(&["203.0.113.0"]))
    );
    // An unrelated change to the Service keeps it stranded rather than moving it.
    assert_eq!(
        assign(&mut a, &svc("team", "web").label("version", "2")),
        Ok(ips(&["203.0.113.0"]))
    );
    // avoidBuggyIPs switched on with .0 held.
    let conflicts = a.set_pools(vec![buggy(base.clone())]).unwrap();
    assert_eq!(
        conflicts[0].reason,
        StrandedReason::BuggyIp { pool: "p".into() }
    );
    assert_eq!(
        a.pool_stats("p").unwrap().assigned_ipv4,
        0,
        "a skipped address is not counted"
    );
    // Back to the original: no conflict.
    assert_eq!(a.set_pools(vec![base]), Ok(vec![]));
}

#[test]
fn a_service_change_that_leaves_the_pool_reallocates() {
    let selective = allocation(
        pool("web", &["203.0.113.0/24"]),
        ServiceAllocation {
            service_selectors: vec![LabelSelector::labels([("app", "web")])],
            ..Default::default()
        },
    );
    let mut a = allocator(vec![selective, pool("rest", &["198.51.100.0/24"])]);
    assert_eq!(
        assign(&mut a, &svc("ns", "x").label("app", "web")),
        Ok(ips(&["203.0.113.0"]))
    );
    let ev = events(&mut a, &svc("ns", "x").label("app", "db"));
    assert!(
        ev.iter().any(|e| matches!(
            e,
            AllocEvent::Cleared {
                reason: ClearReason::ServiceChanged(_),
                ..
            }
        )),
        "{ev:?}"
    );
    assert_eq!(
        a.assignment(&ServiceKey::new("ns", "x")).unwrap().ips,
        ips(&["198.51.100.0"])
    );
}

#[test]
fn a_pinned_service_keeps_its_ip_when_the_cidr_moves_to_another_pool() {
    let mut a = allocator(vec![
        pool("a", &["203.0.113.0/24"]),
        pool("b", &["198.51.100.0/24"]),
    ]);
    let pinned = svc("ns", "pinned").ann(ADDRESS_POOL, "a");
    let free = svc("ns", "free");
    assign(&mut a, &pinned).unwrap();
    assign(&mut a, &free).unwrap();
    let conflicts = a
        .set_pools(vec![
            pool("a", &["198.51.100.0/24"]),
            pool("b", &["203.0.113.0/24"]),
        ])
        .unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        conflicts[0].reason,
        StrandedReason::LeftPool {
            pool: Some("a".into()),
            now: Some("b".into())
        }
    );
    // The unpinned one simply follows its CIDR into pool b.
    assert_eq!(
        a.assignment(&free.key()).unwrap().pool.as_deref(),
        Some("b")
    );
    assert_eq!(assign(&mut a, &pinned), Ok(ips(&["203.0.113.0"])));
}

#[test]
fn import_registers_existing_assignments_before_anything_is_allocated() {
    let pools = vec![pool("p", &["203.0.113.0/24"])];
    // "a-new" sorts first but must not take .0, which "z-old" holds in its status.
    let services = vec![
        svc("ns", "a-new"),
        svc("ns", "z-old").status(&["203.0.113.0"]),
    ];
    let got = allocate_all(&pools, None, &services).unwrap();
    assert_eq!(
        got[&ServiceKey::new("ns", "z-old")].as_ref().unwrap().ips,
        ips(&["203.0.113.0"])
    );
    assert_eq!(
        got[&ServiceKey::new("ns", "a-new")].as_ref().unwrap().ips,
        ips(&["203.0.113.1"])
    );
    // Controller style: import, then reconcile.
    let mut a = allocator(pools);
    assert_eq!(
        a.import(&services[1]),
        Imported::Registered { stranded: None }
    );
    assert_eq!(a.import(&services[1]), Imported::AlreadyKnown);
    assert_eq!(a.import(&services[0]), Imported::NoStatus);
    assert_eq!(assign(&mut a, &services[0]), Ok(ips(&["203.0.113.1"])));
}

#[test]
fn reconcile_adopts_the_status_of_a_service_it_does_not_know() {
    let mut a = allocator(vec![pool("p", &["203.0.113.0/24"])]);
    let restored = svc("ns", "restored").status(&["203.0.113.40"]);
    match a.reconcile(&restored) {
        Reconciled::Handled {
            result: Ok(x),
            events,
        } => {
            assert_eq!(x.ips, ips(&["203.0.113.40"]));
            assert!(events.is_empty(), "nothing new was allocated: {events:?}");
        }
        other => panic!("{other:?}"),
    }
    // A second Service claiming the same IP in its status cannot have it.
    let copy = svc("ns", "copy").status(&["203.0.113.40"]);
    let ev = events(&mut a, &copy);
    assert!(ev.iter().any(|e| matches!(
        e,
        AllocEvent::Cleared {
            reason: ClearReason::Sharing(_),
            ..
        }
    )));
    assert_eq!(
        a.assignment(&copy.key()).unwrap().ips,
        ips(&["203.0.113.0"])
    );
    a.check_invariants().unwrap();
}

#[test]
fn the_allocator_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Allocator>();
}

#[test]
fn import_of_conflicting_statuses_keeps_the_first_and_moves_the_other() {
    let pools = vec![pool("p", &["203.0.113.0/24", "2001:db8::/64"])];
    let dual = svc("ns", "z-dual")
        .dual(IpFamilyPolicy::RequireDualStack, IpFamily::IPv4)
        .status(&["203.0.113.5", "2001:db8::5"]);
    let single = svc("ns", "a-single").status(&["203.0.113.5"]);
    let plan = plan(&pools, None, &[single.clone(), dual.clone()]).unwrap();
    // More ingress IPs first: the dual-stack Service keeps .5 although it sorts last.
    assert_eq!(
        plan.services[&dual.key()].result.as_ref().unwrap().ips,
        ips(&["203.0.113.5", "2001:db8::5"])
    );
    let other = &plan.services[&single.key()];
    assert_eq!(other.result.as_ref().unwrap().ips, ips(&["203.0.113.0"]));
    assert!(other.events.iter().any(|e| matches!(
        e,
        AllocEvent::Cleared {
            reason: ClearReason::Sharing(_),
            ..
        }
    )));
}

#[test]
fn import_keeps_status_ips_outside_every_pool_and_names_the_pool_they_came_from() {
    let pools = vec![pool("p", &["203.0.113.0/24"])];
    let s = svc("ns", "old")
        .status(&["198.51.100.7"])
        .ann(IP_ALLOCATED_FROM_POOL, "gone");
    let plan = plan(&pools, None, std::slice::from_ref(&s)).unwrap();
    let x = plan.services[&s.key()].result.as_ref().unwrap();
    assert_eq!(x.ips, ips(&["198.51.100.7"]));
    assert_eq!(
        x.stranded,
        Some(StrandedReason::PoolDeleted {
            pool: "gone".into()
        })
    );
    assert_eq!(plan.conflicts[0].pool.as_deref(), Some("gone"));
    // Without the annotation the pool is unknown.
    let s = svc("ns", "old").status(&["198.51.100.7"]);
    let plan = ferrolb_allocator::plan(&pools, None, std::slice::from_ref(&s)).unwrap();
    assert_eq!(
        plan.conflicts[0].reason,
        StrandedReason::LeftPool {
            pool: None,
            now: None
        }
    );
    assert_eq!(plan.conflicts[0].reason.to_string(), "the IP is in no pool");
}

#[test]
fn allocate_all_serves_older_services_first_so_a_new_one_renumbers_nothing() {
    let pools = vec![pool("blue", &["203.0.113.0/28"])];
    let created = |mut s: ServiceView, ms: i64| {
        s.created = Some(ms);
        s
    };
    let web = created(svc("shop", "web"), 1_000);
    let before = allocate_all(&pools, None, std::slice::from_ref(&web)).unwrap();
    assert_eq!(
        before[&web.key()].as_ref().unwrap().ips,
        ips(&["203.0.113.0"])
    );
    // "db" sorts before "web" by name but was created later: web keeps its address.
    let db = created(svc("shop", "db"), 2_000);
    let after = allocate_all(&pools, None, &[db.clone(), web.clone()]).unwrap();
    assert_eq!(
        after[&web.key()].as_ref().unwrap().ips,
        ips(&["203.0.113.0"])
    );
    assert_eq!(
        after[&db.key()].as_ref().unwrap().ips,
        ips(&["203.0.113.1"])
    );
    // Without timestamps the name decides, and Services with one come first.
    let old = svc("shop", "aaa");
    let all = allocate_all(&pools, None, &[old.clone(), db.clone(), web.clone()]).unwrap();
    assert_eq!(all[&web.key()].as_ref().unwrap().ips, ips(&["203.0.113.0"]));
    assert_eq!(all[&old.key()].as_ref().unwrap().ips, ips(&["203.0.113.2"]));
}

#[test]
fn allocate_all_takes_the_last_copy_of_a_service_listed_twice() {
    // Keys should be unique, but manifests can repeat one: the last copy counts, as applying the manifests
    // in order would leave it. The other copy is not half-processed (here it would clear the imported IP).
    let pools = vec![pool("blue", &["203.0.113.0/28"])];
    let held = svc("shop", "web").status(&["203.0.113.5"]);
    let mut moved = held.clone();
    moved.load_balancer_ip = Some("203.0.113.9".into());
    for (services, want) in [
        ([held.clone(), moved.clone()], "203.0.113.9"),
        ([moved.clone(), held.clone()], "203.0.113.5"),
    ] {
        let all = allocate_all(&pools, None, &services).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[&held.key()].as_ref().unwrap().ips, ips(&[want]));
        let plan = plan(&pools, None, &services).unwrap();
        assert_eq!(plan.pools["blue"].assigned_ipv4, 1, "{plan:?}");
    }
}

#[test]
fn allocate_all_is_order_independent_and_idempotent() {
    let pools = vec![
        pool("blue", &["203.0.113.0/28"]),
        priority(
            for_namespaces(
                pool("team", &["198.51.100.0/30", "2001:db8::/126"]),
                &["team"],
            ),
            1,
        ),
    ];
    let services = vec![
        svc("team", "a").dual(IpFamilyPolicy::PreferDualStack, IpFamily::IPv6),
        svc("team", "b"),
        svc("ns", "c")
            .ann(ALLOW_SHARED_IP, "k")
            .ports(&[ServicePort::tcp(80)]),
        svc("ns", "d")
            .ann(ALLOW_SHARED_IP, "k")
            .ports(&[ServicePort::tcp(443)]),
        svc("ns", "e").lb_ip("203.0.113.3"),
        svc("ns", "f").status(&["203.0.113.0"]),
        svc("ns", "g").class("other"),
    ];
    let first = allocate_all(&pools, None, &services).unwrap();
    assert_eq!(first.len(), 6, "the other-class Service is left out");
    let mut reversed = services.clone();
    reversed.reverse();
    assert_eq!(allocate_all(&pools, None, &reversed).unwrap(), first);
    let again: Vec<ServiceView> = services
        .iter()
        .map(|s| written_back(s, first.get(&s.key()).and_then(|r| r.as_ref().ok())))
        .collect();
    assert_eq!(allocate_all(&pools, None, &again).unwrap(), first);
    assert_eq!(
        first[&ServiceKey::new("ns", "f")].as_ref().unwrap().ips,
        ips(&["203.0.113.0"])
    );
    assert_eq!(
        first[&ServiceKey::new("ns", "c")],
        first[&ServiceKey::new("ns", "d")]
    );
}

#[test]
fn invalid_pool_sets_are_refused_and_change_nothing() {
    let mut a = allocator(vec![pool("p", &["203.0.113.0/24"])]);
    assign(&mut a, &svc("ns", "x")).unwrap();
    let dup = a.set_pools(vec![
        pool("p", &["203.0.113.0/24"]),
        pool("p", &["198.51.100.0/24"]),
    ]);
    assert_eq!(dup, Err(ConfigError::DuplicatePool { name: "p".into() }));
    let overlap = a.set_pools(vec![
        pool("p", &["203.0.113.0/24"]),
        pool("q", &["203.0.113.128/25"]),
    ]);
    // The message names the pool being added (q, whose CIDR the current pools lack) first, and both.
    let Err(e) = overlap else {
        panic!("overlap accepted")
    };
    assert_eq!(
        e.to_string(),
        "pool q: 203.0.113.128/25 overlaps 203.0.113.0/24 of pool p; an address can belong to one pool only"
    );
    // Also when the new pool's CIDR sorts after the existing one's and its name before.
    let Err(ConfigError::Overlap {
        pool, other_pool, ..
    }) = a.set_pools(vec![
        pool("p", &["203.0.113.0/24"]),
        pool("a", &["203.0.113.192/26"]),
    ])
    else {
        panic!("overlap accepted")
    };
    assert_eq!((pool.as_str(), other_pool.as_str()), ("a", "p"));
    assert_eq!(a.pools().count(), 1);
    assert_eq!(
        a.assignment(&ServiceKey::new("ns", "x"))
            .unwrap()
            .pool
            .as_deref(),
        Some("p")
    );
}

// ----- pool statistics -----

#[test]
fn pool_statistics_per_family() {
    let mut a = allocator(vec![
        pool("p", &["203.0.113.0/24", "2001:db8::/64"]),
        pool("small", &["2001:db8:1::/120"]),
    ]);
    assign(&mut a, &svc("ns", "a")).unwrap();
    assign(&mut a, &svc("ns", "b").v6()).unwrap();
    assign(&mut a, &svc("ns", "c").v6().ann(ADDRESS_POOL, "small")).unwrap();
    let stats = a.stats();
    assert_eq!(
        stats["p"],
        PoolStats {
            assigned_ipv4: 1,
            assigned_ipv6: 1,
            available_ipv4: 255,
            available_ipv6: i64::MAX
        }
    );
    assert_eq!(
        stats["small"],
        PoolStats {
            assigned_ipv4: 0,
            assigned_ipv6: 1,
            available_ipv4: 0,
            available_ipv6: 255
        }
    );
}

#[test]
fn plan_serialises_for_json_output() {
    let pools = vec![pool("p", &["203.0.113.0/31"])];
    let services = vec![
        svc("ns", "a"),
        svc("ns", "b").lb_ip("198.51.100.1"),
        svc("ns", "c").class("x"),
    ];
    let json = serde_json::to_value(plan(&pools, None, &services).unwrap()).unwrap();
    assert_eq!(
        json["services"]["ns/a"]["result"]["assignment"]["ips"][0],
        "203.0.113.0"
    );
    assert_eq!(
        json["services"]["ns/a"]["result"]["assignment"]["pool"],
        "p"
    );
    assert_eq!(
        json["services"]["ns/b"]["result"]["error"]["reason"],
        "RequestedIPNotInPool"
    );
    assert_eq!(
        json["services"]["ns/b"]["result"]["error"]["message"],
        "requested IP 198.51.100.1 is in no pool"
    );
    assert_eq!(json["ignored"]["ns/c"]["reason"], "otherClass");
    assert_eq!(json["pools"]["p"]["assignedIPv4"], 1);
    // Inputs round-trip through JSON with Kubernetes-like names.
    let s = svc("ns", "a")
        .dual(IpFamilyPolicy::PreferDualStack, IpFamily::IPv6)
        .lb_ip("203.0.113.1")
        .status(&["203.0.113.1"]);
    let text = serde_json::to_string(&s).unwrap();
    assert!(
        text.contains("\"loadBalancerIP\"")
            && text.contains("\"ingressIPs\"")
            && text.contains("\"PreferDualStack\"")
    );
    assert_eq!(serde_json::from_str::<ServiceView>(&text).unwrap(), s);
}
