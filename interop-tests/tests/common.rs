//! Shared pieces of the interop tests: the route set every test announces and the speaker's config.
#![allow(dead_code)]

use ferrolb_interop_tests::netns::Netns;
use ferrolb_interop_tests::speaker::Speaker;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

pub const SPEAKER_AS: u32 = 64512;
pub const ROUTER_AS: u32 = 64500;
/// The one announced route a test pings through: it lives on the speaker namespace's `lo`.
pub const PING_ROUTE: &str = "203.0.113.10/32";
pub const PING_ADDR: &str = "203.0.113.10";
pub const V4_BULK: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
pub const V6_BULK: &str = "2001:db8:200::";
pub const COMMUNITY: &str = "64512:100";
pub const LARGE_COMMUNITY: &str = "64512:1:2";
pub const IBGP_LOCAL_PREF: u32 = 250;
pub const SETTLE: Duration = Duration::from_secs(30);

pub fn harness() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bgp-harness"))
}

/// 999 bulk /32 plus the ping route (1,000 IPv4) and `v6` /128.
pub fn routes(v4: u32, v6: u32) -> Value {
    json!({
        "v4_start": V4_BULK, "v4_count": v4.saturating_sub(1),
        "v6_start": V6_BULK, "v6_count": v6,
        "extra": if v4 > 0 { vec![PING_ROUTE] } else { vec![] },
        "communities": [COMMUNITY],
        "large_communities": [LARGE_COMMUNITY],
        "local_pref": IBGP_LOCAL_PREF,
    })
}

/// The prefixes `routes(v4, v6)` announces, as FRR/BIRD print them.
pub fn expected_prefixes(v4: u32, v6: u32) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut p4: BTreeSet<String> = (0..v4.saturating_sub(1))
        .map(|i| format!("{}/32", Ipv4Addr::from(u32::from(V4_BULK) + i)))
        .collect();
    if v4 > 0 {
        p4.insert(PING_ROUTE.to_owned());
    }
    let base: u128 = V6_BULK.parse::<Ipv6Addr>().unwrap().into();
    let p6 = (0..v6)
        .map(|i| format!("{}/128", Ipv6Addr::from(base + u128::from(i))))
        .collect();
    (p4, p6)
}

pub fn speaker_config(peer: &str, local_as: u32, peer_as: u32, extra: Value) -> Value {
    let mut cfg = json!({
        "peer": peer,
        "local_asn": local_as,
        "peer_asn": peer_as,
        "router_id": "198.51.100.1",
        "hold_time": 30,
        "connect_retry_ms": 2000,
        "idle_hold_initial_ms": 300,
        "idle_hold_max_ms": 4000,
        "routes": routes(1000, 1000),
    });
    if let (Some(obj), Some(more)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            obj.insert(k.clone(), v.clone());
        }
    }
    cfg
}

pub fn start_speaker(ns: &Netns, cfg: &Value) -> Speaker {
    Speaker::start(ns, &harness(), cfg).expect("speaker starts")
}

/// Puts the ping target on the speaker namespace's loopback, so that traffic routed to it ends there.
pub fn serve_ping_target(ns: &Netns) {
    ns.add_addr("lo", &format!("{PING_ADDR}/32"))
        .expect("address on lo");
}

/// Set equality that reports only the difference (a route table is too long to print whole).
pub fn assert_same(got: &BTreeSet<String>, want: &BTreeSet<String>, what: &str) {
    let missing: Vec<_> = want.difference(got).take(5).collect();
    let extra: Vec<_> = got.difference(want).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} expected, {} present; missing (first 5) {missing:?}, unexpected (first 5) {extra:?}",
        want.len(),
        got.len()
    );
}
