//! ferrolb-bgp against FRR 8.4 (bgpd + zebra) in network namespaces: sessions over IPv4 and IPv6,
//! eBGP and iBGP, 1,000 /32 and 1,000 /128 with their attributes, kernel installation and forwarding,
//! exact withdrawal, Cease, TCP-MD5, hold timer, graceful restart, passive mode and collisions.

mod common;

use common::*;
use ferrolb_interop_tests::frr::{Frr, FrrConfig, FrrNeighbor, BGPD, ZEBRA};
use ferrolb_interop_tests::{interop_guard, Afi, LinkedPair};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The speaker lives in `pair.a` (198.51.100.1, 2001:db8:100::1), FRR in `pair.b` (.2, ::2).
fn frr_for(pair: &LinkedPair, router_as: u32, neighbor: FrrNeighbor) -> Frr {
    // The router originates routes of its own: the speaker must count them and install nothing.
    let cfg = FrrConfig::new(router_as, &pair.b_v4)
        .with_zebra()
        .network_v4("203.0.113.128/25")
        .network_v6("2001:db8:300::/48")
        .neighbor(neighbor);
    Frr::start(&pair.b, &cfg).expect("FRR starts")
}

fn neighbor(addr: &str, asn: u32) -> FrrNeighbor {
    FrrNeighbor::new(addr, asn)
        .ipv4()
        .ipv6()
        .connect_retry(Some(1))
}

/// Prefixes FRR learned from the speaker (its own originated routes left out).
fn learned(frr: &Frr, afi: Afi, from: &str) -> BTreeSet<String> {
    frr.routes(afi)
        .expect("FRR table")
        .into_iter()
        .filter(|(_, paths)| paths.iter().any(|p| p.peer.as_deref() == Some(from)))
        .map(|(prefix, _)| prefix)
        .collect()
}

/// Both families FRR learned from `from` are exactly the expected sets.
fn assert_learned(frr: &Frr, from: &str, want: (&BTreeSet<String>, &BTreeSet<String>), what: &str) {
    assert_same(
        &learned(frr, Afi::Ipv4, from),
        want.0,
        &format!("IPv4 {what}"),
    );
    assert_same(
        &learned(frr, Afi::Ipv6, from),
        want.1,
        &format!("IPv6 {what}"),
    );
}

/// One session, both families, every attribute checked; then exact withdrawal and Cease.
fn full_exchange(ibgp: bool, v6_transport: bool) {
    interop_guard!(BGPD, ZEBRA);
    let pair = LinkedPair::new().unwrap();
    let router_as = if ibgp { SPEAKER_AS } else { ROUTER_AS };
    let (speaker_addr, router_addr) = if v6_transport {
        (&pair.a_v6, &pair.b_v6)
    } else {
        (&pair.a_v4, &pair.b_v4)
    };
    let frr = frr_for(&pair, router_as, neighbor(speaker_addr, SPEAKER_AS));
    serve_ping_target(&pair.a);
    // The session's own family gives one next hop; the other is configured.
    let nh = if v6_transport {
        json!({"ipv4_next_hop": pair.a_v4})
    } else {
        json!({"ipv6_next_hop": pair.a_v6})
    };
    let mut speaker = start_speaker(
        &pair.a,
        &speaker_config(router_addr, SPEAKER_AS, router_as, nh),
    );

    frr.wait_established(speaker_addr, SETTLE)
        .map_err(|e| frr.diagnose(e))
        .unwrap();
    frr.wait_pfx_rcd(speaker_addr, Afi::Ipv4, 1000, SETTLE)
        .unwrap();
    frr.wait_pfx_rcd(speaker_addr, Afi::Ipv6, 1000, SETTLE)
        .unwrap();
    let (want4, want6) = expected_prefixes(1000, 1000);
    assert_learned(&frr, speaker_addr, (&want4, &want6), "routes at FRR");

    for (prefix, next_hop) in [
        (PING_ROUTE, &pair.a_v4),
        ("2001:db8:200::3e7/128", &pair.a_v6),
    ] {
        let path = frr.wait_best(prefix, SETTLE).unwrap();
        assert_eq!(&path.next_hop, next_hop, "{prefix}: {:?}", path.raw);
        assert!(
            path.communities.contains(&COMMUNITY.to_owned()),
            "{prefix}: {:?}",
            path.communities
        );
        assert_eq!(path.large_communities, vec![LARGE_COMMUNITY.to_owned()]);
        assert_eq!(path.origin, "IGP");
        if ibgp {
            assert!(
                path.as_path_list.is_empty(),
                "iBGP: empty AS_PATH, got {:?}",
                path.as_path
            );
            assert_eq!(path.local_pref, Some(IBGP_LOCAL_PREF));
        } else {
            assert_eq!(path.as_path_list, vec![SPEAKER_AS]);
        }
    }

    // zebra installed them in the router's kernel, and traffic follows them into the speaker's namespace.
    let kernel = frr.netns().kernel_routes(Some("bgp")).unwrap();
    let v4 = kernel.iter().filter(|r| r.dst.contains('.')).count();
    let v6 = kernel.iter().filter(|r| r.dst.contains(':')).count();
    assert!(
        v4 >= 1000 && v6 >= 1000,
        "kernel has {v4} IPv4 and {v6} IPv6 BGP routes"
    );
    let route = frr
        .netns()
        .kernel_route(PING_ROUTE)
        .unwrap()
        .expect("ping route in the kernel");
    assert_eq!(route.gateways, vec![pair.a_v4.clone()]);
    frr.netns()
        .wait_ping(PING_ADDR, None, Duration::from_secs(5))
        .unwrap();

    // Withdraw 500 of each family: exactly those disappear.
    speaker.set_routes(&routes(500, 500)).unwrap();
    let (keep4, keep6) = expected_prefixes(500, 500);
    frr.wait_for("500 routes left per family", SETTLE, |f| {
        learned(f, Afi::Ipv4, speaker_addr).len() == 500
            && learned(f, Afi::Ipv6, speaker_addr).len() == 500
    })
    .unwrap();
    assert_learned(
        &frr,
        speaker_addr,
        (&keep4, &keep6),
        "routes left after withdrawing 500",
    );

    // The router's own routes are counted, never installed in the speaker's namespace.
    let deadline = Instant::now() + SETTLE;
    let status = loop {
        let s = speaker.status().unwrap();
        if s["received"]["prefixes"].as_u64() >= Some(2) || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // FRR sends its own two routes (and echoes ours back towards an external peer).
    assert!(
        status["received"]["prefixes"].as_u64() >= Some(2),
        "{}\n{}",
        status["received"],
        speaker.log()
    );
    assert_eq!(status["prefixes_advertised_ipv4"], 500);
    assert_eq!(status["prefixes_advertised_ipv6"], 500);
    assert!(pair.a.kernel_route("203.0.113.128/25").unwrap().is_none());
    assert!(pair.a.kernel_routes(Some("bgp")).unwrap().is_empty());

    // Cease: FRR names the reason, and the routes go at once (long before the 30 s hold time).
    speaker
        .shutdown("ferrolb interop: planned shutdown")
        .unwrap();
    frr.wait_for("the routes to leave", Duration::from_secs(5), |f| {
        learned(f, Afi::Ipv4, speaker_addr).is_empty()
            && learned(f, Afi::Ipv6, speaker_addr).is_empty()
    })
    .unwrap();
    let info = frr.neighbor_info(speaker_addr).unwrap();
    assert_eq!(
        info.last_notification.as_deref(),
        Some("Cease/Administrative Shutdown"),
        "{:?}",
        info.raw
    );
    assert_eq!(info.last_error_code_subcode.as_deref(), Some("0602"));
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

#[test]
fn tcp_md5_right_key_establishes_wrong_key_never_does() {
    interop_guard!(BGPD, ZEBRA);
    let pair = LinkedPair::new().unwrap();
    let frr = frr_for(
        &pair,
        ROUTER_AS,
        neighbor(&pair.a_v4, SPEAKER_AS).password("s3cret-Key"),
    );
    let wrong = start_speaker(
        &pair.a,
        &speaker_config(
            &pair.b_v4,
            SPEAKER_AS,
            ROUTER_AS,
            json!({"password": "not-the-key"}),
        ),
    );
    let mut wrong = wrong;
    // Never Established: watch it over several connect attempts.
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        assert_ne!(wrong.state().unwrap(), "Established");
        assert_ne!(frr.peer_state(&pair.a_v4).as_deref(), Some("Established"));
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = wrong.status().unwrap();
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("TCP-MD5"),
        "the error must say why: {status}"
    );
    assert!(status["connect_attempts"].as_u64().unwrap() >= 2);
    drop(wrong);

    let mut right = start_speaker(
        &pair.a,
        &speaker_config(
            &pair.b_v4,
            SPEAKER_AS,
            ROUTER_AS,
            json!({"password": "s3cret-Key"}),
        ),
    );
    right.wait_state("Established", SETTLE).unwrap();
    frr.wait_pfx_rcd(&pair.a_v4, Afi::Ipv4, 1000, SETTLE)
        .unwrap();
}

#[test]
fn hold_timer_detects_a_silent_link_and_the_table_returns_after() {
    interop_guard!(BGPD, ZEBRA, "/usr/sbin/nft");
    let pair = LinkedPair::new().unwrap();
    let frr = frr_for(
        &pair,
        ROUTER_AS,
        neighbor(&pair.a_v4, SPEAKER_AS).timers(1, 3),
    );
    let mut speaker = start_speaker(
        &pair.a,
        &speaker_config(
            &pair.b_v4,
            SPEAKER_AS,
            ROUTER_AS,
            json!({"hold_time": 3, "ipv6_next_hop": pair.a_v6}),
        ),
    );
    let up = speaker.wait_state("Established", SETTLE).unwrap();
    assert_eq!(up["negotiated"]["hold_time"], 3);
    frr.wait_pfx_rcd(&pair.a_v4, Afi::Ipv4, 1000, SETTLE)
        .unwrap();

    // Silence: every BGP packet in the speaker's namespace is dropped.
    pair.a.nft_drop_tcp_port(179).unwrap();
    let silenced = Instant::now();
    let down = speaker
        .wait_state("Idle", Duration::from_secs(10))
        .or_else(|_| speaker.wait_state("Connect", Duration::from_secs(1)))
        .unwrap();
    let detected = silenced.elapsed();
    assert_eq!(
        down["last_notification_sent"]["name"], "Hold Timer Expired",
        "{down}"
    );
    assert_eq!(down["flaps"], 1);
    eprintln!("hold timer: left Established {detected:?} after the link went silent (negotiated hold 3 s)");

    // Retries while the link stays silent, spaced by back-off.
    let attempts_at_down = down["connect_attempts"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(7));
    let later = speaker.status().unwrap();
    let attempts = later["connect_attempts"].as_u64().unwrap() - attempts_at_down;
    assert!(
        (1..=5).contains(&attempts),
        "retried {attempts} times in 7 s: {later}"
    );

    // Link back: the session returns and the full table with it.
    pair.a.nft_flush().unwrap();
    speaker.wait_state("Established", SETTLE).unwrap();
    frr.wait_pfx_rcd(&pair.a_v4, Afi::Ipv4, 1000, SETTLE)
        .unwrap();
    frr.wait_pfx_rcd(&pair.a_v4, Afi::Ipv6, 1000, SETTLE)
        .unwrap();
    assert_same(
        &learned(&frr, Afi::Ipv4, &pair.a_v4),
        &expected_prefixes(1000, 1000).0,
        "IPv4 routes after the link returned",
    );
}

#[test]
fn graceful_restart_keeps_the_route_in_the_kernel_throughout() {
    interop_guard!(BGPD, ZEBRA);
    let pair = LinkedPair::new().unwrap();
    let frr = frr_for(&pair, ROUTER_AS, neighbor(&pair.a_v4, SPEAKER_AS));
    serve_ping_target(&pair.a);
    let gr = |restarting: bool| {
        speaker_config(
            &pair.b_v4,
            SPEAKER_AS,
            ROUTER_AS,
            json!({"ipv6_next_hop": pair.a_v6, "graceful_restart": {"restart_time": 120, "restarting": restarting}}),
        )
    };
    let speaker = start_speaker(&pair.a, &gr(false));
    frr.wait_pfx_rcd(&pair.a_v4, Afi::Ipv4, 1000, SETTLE)
        .unwrap();
    frr.netns().wait_route(PING_ROUTE, true, SETTLE).unwrap();

    // Poll the router's kernel every 50 ms for the whole restart.
    let stop = Arc::new(AtomicBool::new(false));
    let (polls, misses) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let poller = {
        let (ns, stop, polls, misses) = (
            frr.netns().clone(),
            stop.clone(),
            polls.clone(),
            misses.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                polls.fetch_add(1, Ordering::SeqCst);
                if !ns.route_present(PING_ROUTE) {
                    misses.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let restart = Instant::now();
    speaker.exit_for_restart().unwrap();
    // A restart that takes a moment, as an image upgrade would.
    std::thread::sleep(Duration::from_secs(2));
    let mut speaker = start_speaker(&pair.a, &gr(true));
    speaker.wait_state("Established", SETTLE).unwrap();
    frr.wait_for("the stale routes to be refreshed", SETTLE, |f| {
        f.route(PING_ROUTE)
            .ok()
            .and_then(|p| p.first().cloned())
            .is_some_and(|p| p.raw.get("stale").is_none())
    })
    .unwrap();
    let restarted = restart.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    poller.join().unwrap();
    let (polls, misses) = (polls.load(Ordering::SeqCst), misses.load(Ordering::SeqCst));
    eprintln!("graceful restart: {polls} polls over {restarted:?}, {misses} without the route");
    assert!(polls > 20, "only {polls} polls");
    assert_eq!(
        misses, 0,
        "the route left the kernel during a graceful restart"
    );
    frr.wait_pfx_rcd(&pair.a_v4, Afi::Ipv4, 1000, SETTLE)
        .unwrap();
    frr.netns()
        .wait_ping(PING_ADDR, None, Duration::from_secs(5))
        .unwrap();
}

#[test]
fn passive_speaker_is_dialled_by_the_router() {
    interop_guard!(BGPD, ZEBRA);
    let pair = LinkedPair::new().unwrap();
    let frr = frr_for(&pair, ROUTER_AS, neighbor(&pair.a_v4, SPEAKER_AS));
    let listen = format!("{}:179", pair.a_v4);
    let mut speaker = start_speaker(
        &pair.a,
        &speaker_config(
            &pair.b_v4,
            SPEAKER_AS,
            ROUTER_AS,
            json!({"mode": "passive", "listen": listen, "ipv6_next_hop": pair.a_v6}),
        ),
    );
    let up = speaker.wait_state("Established", SETTLE).unwrap();
    assert_eq!(up["connect_attempts"], 0, "a passive speaker never dials");
    frr.wait_pfx_rcd(&pair.a_v4, Afi::Ipv4, 1000, SETTLE)
        .unwrap();
    frr.wait_pfx_rcd(&pair.a_v4, Afi::Ipv6, 1000, SETTLE)
        .unwrap();
}

/// Both sides dial and listen. To make the two connections certain rather than a race, bgpd is frozen
/// (SIGSTOP) while both SYNs are in flight: the kernels still complete both TCP handshakes, so when
/// bgpd resumes each side holds two connections and §6.8 must keep exactly one.
#[test]
fn simultaneous_opens_resolve_to_one_session() {
    interop_guard!(BGPD, ZEBRA, "/usr/sbin/nft");
    let pair = LinkedPair::new().unwrap();
    pair.a.nft_drop_tcp_port(179).unwrap();
    let frr = frr_for(&pair, ROUTER_AS, neighbor(&pair.a_v4, SPEAKER_AS));
    let listen = format!("{}:179", pair.a_v4);
    let mut speaker = start_speaker(
        &pair.a,
        &speaker_config(
            &pair.b_v4,
            SPEAKER_AS,
            ROUTER_AS,
            json!({"mode": "both", "listen": listen, "connect_retry_ms": 30000, "ipv6_next_hop": pair.a_v6}),
        ),
    );
    // Both sides are dialling into the drop rule; freeze bgpd, open the gate, let the SYN
    // retransmissions (1 s, 3 s) complete both handshakes, then resume bgpd.
    std::thread::sleep(Duration::from_millis(1500));
    let bgpd = frr.pid().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &bgpd])
        .status()
        .unwrap();
    pair.a.nft_flush().unwrap();
    std::thread::sleep(Duration::from_secs(5));
    std::process::Command::new("kill")
        .args(["-CONT", &bgpd])
        .status()
        .unwrap();

    speaker.wait_state("Established", SETTLE).unwrap();
    frr.wait_established(&pair.a_v4, SETTLE).unwrap();
    frr.wait_pfx_rcd(&pair.a_v4, Afi::Ipv4, 1000, SETTLE)
        .unwrap();
    // One session, and it stays.
    std::thread::sleep(Duration::from_secs(3));
    let s = speaker.status().unwrap();
    assert_eq!(s["state"], "Established");
    assert_eq!(s["flaps"], 0, "{s}");
    // Either side may resolve it first (§6.8 runs on both): we count the ones we resolved, and a
    // Cease/Connection Collision Resolution from FRR shows one it resolved.
    let ours = s["last_notification_sent"]["name"].as_str();
    let theirs = s["last_notification_received"]["name"].as_str();
    let resolution = Some("Cease/Connection Collision Resolution");
    assert!(
        (s["collisions"].as_u64().unwrap() >= 1 && ours == resolution) || theirs == resolution,
        "no collision was resolved by either side: {s}"
    );
    let info = frr.neighbor_info(&pair.a_v4).unwrap();
    assert_eq!(info.state, "Established");
    eprintln!(
        "collision: speaker resolved {} (sent {ours:?}, received {theirs:?}); FRR connections established {}",
        s["collisions"], info.connections_established
    );
}

/// GTSM, a non-standard peer port and an explicit source address, all on one session: FRR listens on
/// port 1179 with `ttl-security hops 1`, so it accepts only packets sent with TTL 255 from one hop away.
#[test]
fn gtsm_peer_port_and_source_address() {
    interop_guard!(BGPD, ZEBRA);
    let pair = LinkedPair::new().unwrap();
    pair.a.add_addr(&pair.a_if, "198.51.100.11/24").unwrap();
    let cfg = FrrConfig::new(ROUTER_AS, &pair.b_v4)
        .with_zebra()
        .listen_port(1179)
        .neighbor(
            neighbor("198.51.100.11", SPEAKER_AS)
                .ttl_security(1)
                .passive(),
        );
    let frr = Frr::start(&pair.b, &cfg).expect("FRR starts");
    let mut speaker = start_speaker(
        &pair.a,
        &speaker_config(
            &pair.b_v4,
            SPEAKER_AS,
            ROUTER_AS,
            json!({"peer_port": 1179, "source": "198.51.100.11", "gtsm_hops": 1, "ipv6_next_hop": pair.a_v6}),
        ),
    );
    let up = speaker.wait_state("Established", SETTLE).unwrap();
    assert_eq!(
        up["local_address"],
        "198.51.100.11:".to_owned()
            + up["local_address"]
                .as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
    );
    frr.wait_pfx_rcd("198.51.100.11", Afi::Ipv4, 1000, SETTLE)
        .unwrap();
    // The next hop defaults to the session's source address.
    assert_eq!(
        frr.wait_best(PING_ROUTE, SETTLE).unwrap().next_hop,
        "198.51.100.11"
    );
}

/// GTSM on our side: with `gtsm_hops: 1` the speaker's kernel accepts only packets that arrive with
/// TTL 255. A plain eBGP FRR neighbor sends with TTL 1, so the session never comes up.
#[test]
fn gtsm_drops_a_peer_that_does_not_send_ttl_255() {
    interop_guard!(BGPD, ZEBRA);
    let pair = LinkedPair::new().unwrap();
    let frr = frr_for(&pair, ROUTER_AS, neighbor(&pair.a_v4, SPEAKER_AS));
    let mut speaker = start_speaker(
        &pair.a,
        &speaker_config(&pair.b_v4, SPEAKER_AS, ROUTER_AS, json!({"gtsm_hops": 1})),
    );
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        assert_ne!(speaker.state().unwrap(), "Established");
        assert_ne!(frr.peer_state(&pair.a_v4).as_deref(), Some("Established"));
        std::thread::sleep(Duration::from_millis(200));
    }
    // The kernel dropped every packet FRR sent after the handshake: not one message got through.
    let s = speaker.status().unwrap();
    assert_eq!(s["messages_received"]["open"], 0, "{s}");
}

/// More routes from the router than the configured limit close the session with Cease/Maximum Number
/// of Prefixes Reached, and FRR names it.
#[test]
fn max_prefix_limit_closes_with_cease() {
    interop_guard!(BGPD, ZEBRA);
    let pair = LinkedPair::new().unwrap();
    let frr = frr_for(&pair, ROUTER_AS, neighbor(&pair.a_v4, SPEAKER_AS));
    let mut speaker = start_speaker(
        &pair.a,
        &speaker_config(
            &pair.b_v4,
            SPEAKER_AS,
            ROUTER_AS,
            json!({"max_prefixes": 1, "ipv6_next_hop": pair.a_v6}),
        ),
    );
    let s = speaker
        .wait_status(SETTLE, |s| s["flaps"].as_u64() >= Some(1))
        .unwrap();
    assert_eq!(
        s["last_notification_sent"]["name"], "Cease/Maximum Number of Prefixes Reached",
        "{s}"
    );
    frr.wait_for("FRR to record the Cease", SETTLE, |f| {
        f.neighbor_info(&pair.a_v4)
            .ok()
            .and_then(|i| i.last_notification)
            .as_deref()
            == Some("Cease/Maximum Number of Prefixes Reached")
    })
    .unwrap();
}

/// TCP-MD5 on the listening side: FRR dials the passive speaker with a key; the listener carries the
/// key for that peer, so the signed SYN is accepted. A listener with another key never lets it in.
#[test]
fn tcp_md5_on_the_passive_listener() {
    interop_guard!(BGPD, ZEBRA);
    for (key, should_establish) in [("other-key", false), ("s3cret-Key", true)] {
        let pair = LinkedPair::new().unwrap();
        let frr = frr_for(
            &pair,
            ROUTER_AS,
            neighbor(&pair.a_v4, SPEAKER_AS).password("s3cret-Key"),
        );
        let listen = format!("{}:179", pair.a_v4);
        let mut speaker = start_speaker(
            &pair.a,
            &speaker_config(
                &pair.b_v4,
                SPEAKER_AS,
                ROUTER_AS,
                json!({"mode": "passive", "listen": listen, "password": key, "ipv6_next_hop": pair.a_v6}),
            ),
        );
        if should_establish {
            speaker.wait_state("Established", SETTLE).unwrap();
            frr.wait_pfx_rcd(&pair.a_v4, Afi::Ipv4, 1000, SETTLE)
                .unwrap();
        } else {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                assert_ne!(speaker.state().unwrap(), "Established");
                std::thread::sleep(Duration::from_millis(200));
            }
            assert_eq!(speaker.status().unwrap()["messages_received"]["open"], 0);
        }
    }
}
