//! ferrolb-bgp against BIRD 2.0 in network namespaces: eBGP and iBGP over IPv4 and IPv6, 1,000 /32 and
//! 1,000 /128 with their attributes read back from `birdc show route all`, installed in the kernel,
//! exact withdrawal, and Cease with its shutdown communication.

mod common;

use common::*;
use ferrolb_interop_tests::bird::{Bird, BirdConfig, BirdNeighbor, BirdRoute, REQUIRED};
use ferrolb_interop_tests::{interop_guard, Afi, LinkedPair};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const PROTO: &str = "ferrolb";

/// Routes BIRD learned from the speaker, by prefix.
fn learned(bird: &Bird, afi: Afi) -> BTreeMap<String, BirdRoute> {
    bird.routes_afi(afi)
        .expect("BIRD table")
        .into_iter()
        .filter(|r| r.protocol == PROTO)
        .map(|r| (r.prefix.clone(), r))
        .collect()
}

fn keys(m: &BTreeMap<String, BirdRoute>) -> BTreeSet<String> {
    m.keys().cloned().collect()
}

fn full_exchange(ibgp: bool, v6_transport: bool) {
    interop_guard!(REQUIRED[0], REQUIRED[1]);
    let pair = LinkedPair::new().unwrap();
    let router_as = if ibgp { SPEAKER_AS } else { ROUTER_AS };
    let (speaker_addr, router_addr) = if v6_transport {
        (&pair.a_v6, &pair.b_v6)
    } else {
        (&pair.a_v4, &pair.b_v4)
    };
    let mut neighbor = BirdNeighbor::new(PROTO, router_as, speaker_addr, SPEAKER_AS)
        .ipv4()
        .ipv6();
    neighbor.local_addr = Some(router_addr.clone());
    // BIRD sends its own static routes: the speaker counts them and installs nothing.
    neighbor = neighbor
        .export_v4("where proto = \"static4\"")
        .export_v6("where proto = \"static6\"");
    let cfg = BirdConfig::new(&pair.b_v4)
        .with_kernel()
        .static_v4("203.0.113.128/25 blackhole")
        .static_v6("2001:db8:300::/48 blackhole")
        .neighbor(neighbor);
    let bird = Bird::start(&pair.b, &cfg).expect("BIRD starts");
    serve_ping_target(&pair.a);
    let nh = if v6_transport {
        json!({"ipv4_next_hop": pair.a_v4})
    } else {
        json!({"ipv6_next_hop": pair.a_v6})
    };
    let mut speaker = start_speaker(
        &pair.a,
        &speaker_config(router_addr, SPEAKER_AS, router_as, nh),
    );

    bird.wait_established(PROTO, SETTLE)
        .map_err(|e| bird.diagnose(e))
        .unwrap();
    bird.wait_for("1,000 routes per family", SETTLE, |b| {
        learned(b, Afi::Ipv4).len() == 1000 && learned(b, Afi::Ipv6).len() == 1000
    })
    .map_err(|e| bird.diagnose(e))
    .unwrap();
    let (want4, want6) = expected_prefixes(1000, 1000);
    let (v4, v6) = (learned(&bird, Afi::Ipv4), learned(&bird, Afi::Ipv6));
    assert_same(&keys(&v4), &want4, "IPv4 routes at BIRD");
    assert_same(&keys(&v6), &want6, "IPv6 routes at BIRD");

    for (route, next_hop) in [
        (&v4[PING_ROUTE], &pair.a_v4),
        (&v6["2001:db8:200::3e7/128"], &pair.a_v6),
    ] {
        assert!(!route.unreachable(), "{route:?}");
        assert_eq!(route.next_hop(), Some(next_hop.as_str()), "{route:?}");
        assert!(
            route
                .communities
                .contains(&format!("({})", COMMUNITY.replace(':', ",")))
                || route.communities.contains(&COMMUNITY.to_owned()),
            "{:?}",
            route.communities
        );
        assert!(
            route
                .large_communities
                .iter()
                .any(|c| c.contains("64512") && c.contains('1') && c.contains('2')),
            "{:?}",
            route.large_communities
        );
        assert_eq!(route.origin.as_deref(), Some("IGP"));
        if ibgp {
            assert_eq!(route.as_path_list(), Vec::<u32>::new());
            assert_eq!(route.local_pref, Some(IBGP_LOCAL_PREF));
        } else {
            assert_eq!(route.as_path_list(), vec![SPEAKER_AS]);
        }
    }

    // BIRD's kernel protocol installs them; traffic follows into the speaker's namespace.
    bird.netns().wait_route(PING_ROUTE, true, SETTLE).unwrap();
    let kernel = bird.netns().kernel_routes(Some("bird")).unwrap();
    assert!(
        kernel.iter().filter(|r| r.dst.contains('.')).count() >= 1000,
        "{} kernel routes",
        kernel.len()
    );
    bird.netns()
        .wait_ping(PING_ADDR, None, Duration::from_secs(5))
        .unwrap();

    // The router's routes reach the speaker only as counts.
    let status = speaker
        .wait_status(SETTLE, |s| s["received"]["prefixes"].as_u64() >= Some(2))
        .unwrap();
    assert_eq!(status["received"]["prefixes"], 2, "{}", status["received"]);
    assert!(pair.a.kernel_route("203.0.113.128/25").unwrap().is_none());

    // Withdraw 500 of each family: exactly those disappear.
    speaker.set_routes(&routes(500, 500)).unwrap();
    bird.wait_for("500 routes left per family", SETTLE, |b| {
        learned(b, Afi::Ipv4).len() == 500 && learned(b, Afi::Ipv6).len() == 500
    })
    .unwrap();
    let (keep4, keep6) = expected_prefixes(500, 500);
    assert_same(
        &keys(&learned(&bird, Afi::Ipv4)),
        &keep4,
        "IPv4 routes left after withdrawing 500",
    );
    assert_same(
        &keys(&learned(&bird, Afi::Ipv6)),
        &keep6,
        "IPv6 routes left after withdrawing 500",
    );

    // Cease: BIRD shows the reason and the shutdown communication; the routes go at once.
    speaker
        .shutdown("ferrolb interop: planned shutdown")
        .unwrap();
    bird.wait_for("the routes to leave", Duration::from_secs(5), |b| {
        learned(b, Afi::Ipv4).is_empty() && learned(b, Afi::Ipv6).is_empty()
    })
    .unwrap();
    let proto = bird.protocol(PROTO).unwrap();
    let error = proto.last_error.clone().unwrap_or_default();
    assert!(error.contains("Administrative shutdown"), "{}", proto.raw);
    assert!(
        proto.raw.contains("ferrolb interop: planned shutdown"),
        "{}",
        proto.raw
    );
}

#[test]
fn ebgp_over_ipv4() {
    full_exchange(false, false);
}

#[test]
fn ebgp_over_ipv6() {
    full_exchange(false, true);
}

#[test]
fn ibgp_over_ipv4() {
    full_exchange(true, false);
}

#[test]
fn ibgp_over_ipv6() {
    full_exchange(true, true);
}
