//! End-to-end checks of the harness itself with real daemons: FRR ↔ BIRD eBGP over IPv4
//! and IPv6 (attributes, kernel install via zebra and BIRD's kernel protocol, pings through
//! the learned routes, notifications), and GoBGP → FRR bulk loading via MRT. They prove the
//! helpers work before the ferrolb interop tests rely on them.

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::bird::{self, Bird, BirdConfig, BirdNeighbor};
use crate::frr::{self, Frr, FrrConfig, FrrNeighbor};
use crate::gobgp::{self, Gobgp, GobgpConfig, GobgpNeighbor};
use crate::mrt::MrtRoute;
use crate::netns::LinkedPair;
use crate::{interop_guard, proc_stats, Afi};

const T: Duration = Duration::from_secs(30);

#[test]
fn frr_bird_ebgp_ipv4_ipv6_kernel_and_ping() {
    interop_guard!(frr::BGPD, frr::ZEBRA, bird::BIRD, bird::BIRDC);
    let pair = LinkedPair::new().unwrap();
    let (a4, b4, a6, b6) = (&pair.a_v4, &pair.b_v4, &pair.a_v6, &pair.b_v6);

    // a: FRR AS 64501 with zebra; announces 203.0.113.0/25 and 2001:db8:99::/48, which it
    // also owns on lo so b can ping them through its BGP-learned routes.
    pair.a.add_addr("lo", "203.0.113.1/32").unwrap();
    pair.a.add_addr("lo", "2001:db8:99::1/128").unwrap();
    let frr_cfg = FrrConfig::new(64501, a4)
        .with_zebra()
        .neighbor(
            FrrNeighbor::new(b4, 64502)
                .ipv4()
                .password("flb-md5")
                .timers(3, 9)
                .extra_af("route-map LP in"),
        )
        .neighbor(FrrNeighbor::new(b6, 64502).ipv6())
        .network_v4("203.0.113.0/25")
        .network_v6("2001:db8:99::/48")
        .config_line("route-map LP permit 10")
        .config_line(" set local-preference 150");
    let frr = Frr::start(&pair.a, &frr_cfg).unwrap();

    // b: BIRD AS 64502 with kernel export; static routes with communities.
    let bird_cfg = BirdConfig::new(b4)
        .with_kernel()
        .static_v4(
            "203.0.113.128/25 unreachable { bgp_community.add((64502,100)); bgp_large_community.add((64502,1,2)); }",
        )
        .static_v6("2001:db8:77::/48 unreachable { bgp_large_community.add((4200000000,7,8)); }")
        .neighbor(
            BirdNeighbor::new("frr4", 64502, a4, 64501)
                .local_addr(b4)
                .password("flb-md5")
                .hold_time(9)
                .ipv4()
                .export_static(),
        )
        .neighbor(
            BirdNeighbor::new("frr6", 64502, a6, 64501)
                .local_addr(b6)
                .ipv6()
                .export_static(),
        );
    let bird = Bird::start(&pair.b, &bird_cfg).unwrap();

    frr.wait_established(b4, T).unwrap();
    frr.wait_established(b6, T).unwrap();
    bird.wait_established("frr4", T).unwrap();
    bird.wait_established("frr6", T).unwrap();
    let p = bird.protocol("frr4").unwrap();
    assert_eq!(p.hold_time, Some(9), "{p:?}");

    // FRR's view of BIRD's routes.
    let p = frr.wait_best("203.0.113.128/25", T).unwrap();
    assert_eq!(frr.route("203.0.113.128/25").unwrap().len(), 1);
    assert_eq!(p.as_path, "64502");
    assert_eq!(p.next_hop, *b4);
    assert_eq!(p.communities, vec!["64502:100"]);
    assert_eq!(p.large_communities, vec!["64502:1:2"]);
    assert_eq!(p.local_pref, Some(150));
    let p6 = frr.wait_best("2001:db8:77::/48", T).unwrap();
    assert_eq!(p6.next_hop, *b6);
    assert_eq!(p6.large_communities, vec!["4200000000:7:8"]);
    assert!(
        p6.next_hops.iter().any(|n| n.starts_with("fe80:")),
        "{p6:?}"
    );
    frr.wait_pfx_rcd(b4, Afi::Ipv4, 1, T).unwrap();
    frr.wait_pfx_rcd(b6, Afi::Ipv6, 1, T).unwrap();
    let v4 = frr.routes_v4().unwrap();
    assert_eq!(
        v4.len() as u64,
        frr.route_count(Afi::Ipv4).unwrap(),
        "{v4:?}"
    );
    assert_eq!(frr.routes_v6().unwrap().len(), 2);
    let s = frr.summary().unwrap();
    // FRR also sends BIRD's own route back to it (BIRD drops it: AS loop).
    assert_eq!(s.ipv4[b4.as_str()].pfx_snt, 2);

    // BIRD's view of FRR's routes.
    let r = bird.wait_route("203.0.113.0/25", true, T).unwrap();
    assert_eq!(r[0].as_path.as_deref(), Some("64501"));
    assert_eq!(r[0].next_hop(), Some(a4.as_str()));
    assert!(!r[0].unreachable());
    let r6 = bird.wait_route("2001:db8:99::/48", true, T).unwrap();
    assert_eq!(r6[0].next_hop(), Some(a6.as_str()));
    bird.wait_for("2 BGP routes in BIRD", T, |b| {
        b.route_count().ok() == Some(2)
    })
    .unwrap();

    // Kernel tables: zebra in a (proto bgp), BIRD in b (proto bird); pings through them.
    pair.a.wait_route("203.0.113.128/25", true, T).unwrap();
    pair.a.wait_route("2001:db8:77::/48", true, T).unwrap();
    let k = pair.a.kernel_route("203.0.113.128/25").unwrap().unwrap();
    assert_eq!(k.protocol, "bgp");
    assert_eq!(k.gateways, vec![b4.clone()]);
    assert!(!pair.a.kernel_routes(Some("bgp")).unwrap().is_empty());
    pair.b.wait_route("203.0.113.0/25", true, T).unwrap();
    pair.b.wait_route("2001:db8:99::/48", true, T).unwrap();
    assert_eq!(
        pair.b
            .kernel_route("203.0.113.0/25")
            .unwrap()
            .unwrap()
            .protocol,
        "bird"
    );
    pair.b.wait_ping("203.0.113.1", None, T).unwrap();
    pair.b.wait_ping("2001:db8:99::1", None, T).unwrap();

    // BIRD shuts the IPv4 session: FRR records the Cease notification and withdraws.
    bird.disable("frr4").unwrap();
    frr.wait_for("FRR to record BIRD's notification", T, |f| {
        f.neighbor_info(b4)
            .map(|n| n.last_notification.as_deref() == Some("Cease/Administrative Shutdown"))
            .unwrap_or(false)
    })
    .unwrap();
    let n = frr.neighbor_info(b4).unwrap();
    assert_eq!(n.last_error_code_subcode.as_deref(), Some("0602"), "{n:?}");
    assert_eq!(
        n.last_reset_reason.as_deref(),
        Some("BGP Notification received")
    );
    assert_ne!(n.state, "Established");
    frr.wait_route("203.0.113.128/25", false, T).unwrap();
    pair.a.wait_route("203.0.113.128/25", false, T).unwrap();
    assert!(frr.neighbor("198.51.100.99").is_err());

    // FRR shuts the IPv6 session: BIRD reports it as its last error.
    frr.configure(&["router bgp 64501", &format!("neighbor {b6} shutdown")])
        .unwrap();
    bird.wait_for("BIRD to record FRR's shutdown", T, |b| {
        b.protocol("frr6")
            .ok()
            .and_then(|p| p.last_error)
            .is_some_and(|e| e.contains("Administrative shutdown"))
    })
    .unwrap();
    bird.wait_route("2001:db8:99::/48", false, T).unwrap();
    assert!(bird.route("2001:db8:99::/48").unwrap().is_empty());
    assert!(frr
        .configure(&["router bgp 64501", "neighbor bogus"])
        .is_err());
    assert!(bird.birdc("show nonsense").is_err());
}

#[test]
fn bad_configs_are_reported() {
    interop_guard!(frr::BGPD, bird::BIRD, bird::BIRDC);
    let ns = crate::Netns::new().unwrap();
    let cfg = FrrConfig::new(64501, "198.51.100.1")
        .neighbor(FrrNeighbor::new("198.51.100.2", 64502).extra("no-such-knob 7"));
    let e = Frr::start(&ns, &cfg).unwrap_err();
    assert!(e.message().contains("no-such-knob"), "{e}");
    let cfg = BirdConfig::new("198.51.100.1").extra("this is not bird config;");
    let e = Bird::start(&ns, &cfg).unwrap_err();
    assert!(e.message().contains("syntax error"), "{e}");
}

#[test]
fn gobgp_feeds_10k_routes_to_frr() {
    interop_guard!(frr::BGPD, gobgp::GOBGPD, gobgp::GOBGP);
    const N: u32 = 10_000;
    let pair = LinkedPair::new().unwrap();
    let (a4, b4) = (pair.a_v4.clone(), pair.b_v4.clone());
    // GoBGP listens (passive) and FRR dials with connect retry 1 s: GoBGP's own connect
    // loop is slow (≥ 5 s between attempts).
    let g = Gobgp::start(
        &pair.a,
        &GobgpConfig::new(64510, &a4)
            .listen_port(179)
            .local_address(&a4)
            .neighbor(GobgpNeighbor::new(&b4, 64501).passive()),
    )
    .unwrap();
    let frr = Frr::start(
        &pair.b,
        &FrrConfig::new(64501, &b4).neighbor(FrrNeighbor::new(&a4, 64510).ipv4()),
    )
    .unwrap();
    g.disable_neighbor(&b4).unwrap();
    let t0 = Instant::now();
    // 0.0.0.0 as MRT next hop → GoBGP sets next-hop-self per peer.
    g.load_host_routes_v4("100.64.0.0".parse().unwrap(), N, "0.0.0.0".parse().unwrap())
        .unwrap();
    let load = t0.elapsed();
    assert_eq!(g.global_rib_count(Afi::Ipv4).unwrap(), u64::from(N));
    assert_eq!(
        frr.peer_state(&a4).as_deref().map(|s| s != "Established"),
        Some(true)
    );

    g.enable_neighbor(&b4).unwrap();
    frr.wait_established(&a4, T).unwrap();
    let t1 = Instant::now();
    frr.wait_pfx_rcd(&a4, Afi::Ipv4, u64::from(N), Duration::from_secs(120))
        .unwrap();
    let propagate = t1.elapsed();
    assert_eq!(frr.route_count(Afi::Ipv4).unwrap(), u64::from(N));
    g.wait_state(&b4, "established", T).unwrap();
    let last = frr.route("100.64.39.15/32").unwrap(); // the 10,000th route
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].next_hop, a4);
    assert_eq!(last[0].as_path, "64510");

    // IPv6 through MRT too (full-form MP_REACH); RIB only, the session is IPv4-only.
    let v6: Vec<MrtRoute> = (0..100u16)
        .map(|i| {
            let p = Ipv6Addr::new(0x2001, 0xdb8, 0x1000, i, 0, 0, 0, 0);
            MrtRoute::new(IpAddr::V6(p), 64, IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        })
        .collect();
    g.load_routes(&v6, 100).unwrap();
    assert_eq!(g.global_rib_count(Afi::Ipv6).unwrap(), 100);

    let gs = proc_stats::read(g.pid()).unwrap();
    let fs = proc_stats::read(frr.pid()).unwrap();
    eprintln!(
        "GoBGP→FRR {N} routes: MRT load {:.2}s, Established→all received {:.2}s; gobgpd {:.2} CPU s / {} KiB peak; bgpd {:.2} CPU s / {} KiB peak",
        load.as_secs_f64(),
        propagate.as_secs_f64(),
        gs.cpu_seconds,
        gs.peak_rss_kib,
        fs.cpu_seconds,
        fs.peak_rss_kib
    );
}

#[test]
fn hold_timer_expiry_via_nft_and_frr_restart() {
    interop_guard!(frr::BGPD, bird::BIRD, bird::BIRDC, "nft");
    let pair = LinkedPair::new().unwrap();
    let (a4, b4) = (&pair.a_v4, &pair.b_v4);
    let mut frr = Frr::start(
        &pair.a,
        &FrrConfig::new(64501, a4)
            .neighbor(FrrNeighbor::new(b4, 64502).ipv4().timers(1, 3))
            .network_v4("203.0.113.0/25"),
    )
    .unwrap();
    let bird = Bird::start(
        &pair.b,
        &BirdConfig::new(b4).neighbor(
            BirdNeighbor::new("frr", 64502, a4, 64501)
                .hold_time(3)
                .keepalive_time(1)
                .ipv4(),
        ),
    )
    .unwrap();
    frr.wait_established(b4, T).unwrap();
    bird.wait_established("frr", T).unwrap();
    bird.wait_route("203.0.113.0/25", true, T).unwrap();

    // Silently drop BGP in b: both hold timers expire.
    pair.b.nft_drop_tcp_port(179).unwrap();
    frr.wait_for("FRR hold timer expiry", T, |f| {
        f.neighbor_info(b4)
            .map(|n| n.state != "Established" && n.last_reset_reason.is_some())
            .unwrap_or(false)
    })
    .unwrap();
    let n = frr.neighbor_info(b4).unwrap();
    eprintln!(
        "FRR after hold expiry: state={} reset={:?} notification={:?} code={:?}",
        n.state, n.last_reset_reason, n.last_notification, n.last_error_code_subcode
    );
    // lastNotificationReason covers sent and received NOTIFICATIONs; lastResetDueTo tells
    // which ("BGP Notification send" / "BGP Notification received").
    assert_eq!(
        n.last_notification.as_deref(),
        Some("Hold Timer Expired"),
        "{n:?}"
    );
    assert_eq!(n.last_error_code_subcode.as_deref(), Some("0400"));
    assert_eq!(
        n.last_reset_reason.as_deref(),
        Some("BGP Notification send")
    );
    bird.wait_for("BIRD hold timer expiry", T, |b| {
        b.protocol("frr").is_ok_and(|p| !p.established())
            && b.log().contains("frr: Hold timer expired")
    })
    .unwrap();
    // FRR advertises graceful restart, so BIRD (GR-aware by default) treats the expiry as
    // a neighbor restart: no `Last error`, and the routes stay (stale) for the restart time.
    let p = bird.protocol("frr").unwrap();
    assert!(p.graceful_restart_active, "{p:?}");
    assert_eq!(p.last_error, None);
    assert_eq!(
        bird.route("203.0.113.0/25").unwrap().len(),
        1,
        "GR keeps the stale route"
    );

    pair.b.nft_flush().unwrap();
    frr.wait_established(b4, T).unwrap();
    bird.wait_established("frr", T).unwrap();

    // Crash and restart bgpd: BIRD notices, then the session comes back.
    frr.kill_bgpd();
    assert!(!frr.is_running());
    bird.wait_for("BIRD to notice bgpd died", T, |b| {
        b.protocol("frr").is_ok_and(|p| !p.established())
    })
    .unwrap();
    assert_eq!(
        bird.protocol("frr").unwrap().last_error.as_deref(),
        Some("Socket: Connection closed")
    );
    frr.restart().unwrap();
    assert!(frr.is_running());
    frr.wait_established(b4, T).unwrap();
    bird.wait_route("203.0.113.0/25", true, T).unwrap();
}
