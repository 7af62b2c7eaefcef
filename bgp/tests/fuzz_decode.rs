//! Fuzzing the decoder and the FSM: whatever arrives, decoding returns a message or a NOTIFICATION and
//! never panics; whatever events arrive, the FSM keeps its invariants.
//!
//! `fuzz_decoder_for_a_bounded_time` mutates valid messages for `FERROLB_FUZZ_SECONDS` (default 5);
//! CI runs it with a larger budget. The proptest properties run a fixed number of cases.

use bytes::BytesMut;
use ferrolb_bgp::fsm::{Action, ConnectMode, Event, Fsm, FsmConfig, State, Stop, Timer};
use ferrolb_bgp::rib_out::{AdjRibOut, PeerContext, RouteAttributes, Routes};
use ferrolb_bgp::wire::{self, DecodeContext, Family, Message, Notification};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONTEXTS: [DecodeContext; 3] = [
    DecodeContext {
        four_octet_as: true,
        ebgp_peer_as: Some(64500),
    },
    DecodeContext {
        four_octet_as: false,
        ebgp_peer_as: Some(64500),
    },
    DecodeContext {
        four_octet_as: true,
        ebgp_peer_as: None,
    },
];

/// Valid messages of every type to mutate from.
fn corpus() -> Vec<Vec<u8>> {
    let cx = CONTEXTS[0];
    let mut fsm_cfg = FsmConfig::new(64500, 64512, Ipv4Addr::new(198, 51, 100, 2));
    fsm_cfg.graceful_restart = Some(ferrolb_bgp::fsm::GracefulRestartConfig {
        restart_time: 120,
        restarting: true,
        forwarding_preserved: true,
    });
    let mut out = vec![
        Message::Open(fsm_cfg.open()).encode(&cx).to_vec(),
        wire::keepalive().to_vec(),
        Message::Notification(Notification::cease(2, Some("bye")))
            .encode(&cx)
            .to_vec(),
        Message::RouteRefresh(wire::RouteRefresh {
            afi: wire::Afi::IPV4,
            subtype: 0,
            safi: wire::Safi::UNICAST,
        })
        .encode(&cx)
        .to_vec(),
    ];
    let attrs = Arc::new(RouteAttributes {
        med: Some(1),
        communities: vec![1, 2],
        large_communities: vec![wire::LargeCommunity {
            global_admin: 1,
            local_data1: 2,
            local_data2: 3,
        }],
        ..Default::default()
    });
    let mut routes = Routes::new();
    for i in 0..20u32 {
        routes.insert(
            ipnetwork::IpNetwork::new(IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + i)), 32).unwrap(),
            attrs.clone(),
        );
        let v6 = Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i));
        routes.insert(
            ipnetwork::IpNetwork::new(IpAddr::V6(v6), 128).unwrap(),
            attrs.clone(),
        );
    }
    for ibgp in [false, true] {
        let pcx = PeerContext {
            local_asn: 64500,
            ibgp,
            four_octet_as: true,
            families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
            ipv4_next_hop: Some(Ipv4Addr::new(198, 51, 100, 2)),
            ipv6_next_hop: Some("2001:db8:1::2".parse().unwrap()),
            ipv6_link_local_next_hop: Some("fe80::2".parse().unwrap()),
        };
        let mut rib = AdjRibOut::new();
        out.extend(rib.initial(&routes, &pcx).iter().map(|b| b.to_vec()));
        out.extend(rib.sync(&Routes::new(), &pcx).iter().map(|b| b.to_vec()));
    }
    out
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, m: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !m.is_empty() => {
                let i = rng.below(m.len());
                m[i] = rng.next() as u8;
            }
            1 if !m.is_empty() => {
                let i = rng.below(m.len());
                m[i] ^= 1 << rng.below(8);
            }
            2 => m.truncate(rng.below(m.len() + 1)),
            3 => {
                let i = rng.below(m.len() + 1);
                m.insert(i, rng.next() as u8);
            }
            4 if m.len() > 19 => {
                // Interesting values in the body: lengths and type codes live there.
                let i = 19 + rng.below(m.len() - 19);
                m[i] = [0, 1, 2, 3, 4, 0x7f, 0x80, 0xff][rng.below(8)];
            }
            _ => {}
        }
    }
    // Keep the header's length consistent half of the time, to get past framing.
    if m.len() >= 19 && rng.below(2) == 0 {
        let len = m.len() as u16;
        m[16..18].copy_from_slice(&len.to_be_bytes());
    }
}

fn decode_never_panics(bytes: &[u8]) {
    for cx in &CONTEXTS {
        if let Ok(Message::Update(u)) = Message::decode(bytes, cx) {
            // Whatever decoded must re-encode and decode again.
            let again = Message::Update(u.clone()).encode(cx);
            if again.len() <= wire::MAX_MESSAGE_LEN {
                let _ = Message::decode(&again, cx);
            }
        }
    }
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(_)) = wire::frame(&mut buf) {}
}

#[test]
fn fuzz_decoder_for_a_bounded_time() {
    let budget: u64 = std::env::var("FERROLB_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let corpus = corpus();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ budget);
    let deadline = Instant::now() + Duration::from_secs(budget);
    let mut runs = 0u64;
    while Instant::now() < deadline {
        for _ in 0..1000 {
            let mut m = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, &mut m);
            decode_never_panics(&m);
            runs += 1;
        }
    }
    eprintln!("fuzz: {runs} mutated messages decoded without a panic in {budget} s");
    assert!(runs > 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600), t in 0u8..8) {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        m.push(t);
        m.extend_from_slice(&body);
        decode_never_panics(&m);
        decode_never_panics(&body);
    }

    #[test]
    fn random_attribute_lists_never_panic(attrs in proptest::collection::vec(
        (any::<u8>(), prop_oneof![Just(1u8), Just(2), Just(3), Just(4), Just(5), Just(6), Just(7), Just(8),
            Just(9), Just(10), Just(14), Just(15), Just(17), Just(18), Just(32), any::<u8>()],
         proptest::collection::vec(any::<u8>(), 0..40)), 0..8)) {
        let mut a = Vec::new();
        for (flags, t, v) in &attrs {
            a.extend_from_slice(&[flags & !0x10, *t, v.len() as u8]);
            a.extend_from_slice(v);
        }
        let mut body = vec![0, 0];
        body.extend_from_slice(&(a.len() as u16).to_be_bytes());
        body.extend_from_slice(&a);
        body.extend_from_slice(&[32, 203, 0, 113, 1]);
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        m.push(2);
        m.extend_from_slice(&body);
        decode_never_panics(&m);
    }

    #[test]
    fn fsm_survives_any_event_sequence(events in proptest::collection::vec(0u8..14, 1..80), mode in 0u8..3) {
        let mut cfg = FsmConfig::new(64512, 64500, Ipv4Addr::new(198, 51, 100, 1));
        cfg.mode = [ConnectMode::Active, ConnectMode::Passive, ConnectMode::Both][mode as usize];
        let mut fsm = Fsm::new(cfg);
        let peer = FsmConfig::new(64500, 64512, Ipv4Addr::new(198, 51, 100, 2)).open();
        let mut live_timers = std::collections::HashSet::new();
        for (i, e) in events.iter().enumerate() {
            let conn = (i % 3) as u64;
            let ev = match e {
                0 => Event::Start,
                1 => Event::Stop(Stop::Cease { subcode: 2, text: None }),
                2 => Event::Stop(Stop::ForRestart),
                3 => Event::TcpConnected(conn),
                4 => Event::TcpConnectFailed("x".into()),
                5 => Event::TcpAccepted(conn),
                6 => Event::TcpClosed(conn, "x".into()),
                7 => Event::Message(conn, Message::Open(peer.clone())),
                8 => Event::Message(conn, Message::Keepalive),
                9 => Event::Message(conn, Message::Update(Default::default())),
                10 => Event::TimerExpired(Timer::Hold(conn)),
                11 => Event::TimerExpired(Timer::IdleHold),
                12 => Event::TimerExpired(Timer::ConnectRetry),
                _ => Event::DecodeError(conn, Notification::new(1, 1)),
            };
            for a in fsm.handle(ev) {
                match a {
                    Action::StartTimer(t, _) => { live_timers.insert(t); }
                    Action::StopTimer(t) => { live_timers.remove(&t); }
                    _ => {}
                }
            }
            if fsm.state() == State::Established {
                prop_assert!(fsm.established().is_some());
            }
            if fsm.state() == State::Idle && fsm.established().is_none() {
                prop_assert!(!live_timers.iter().any(|t| matches!(t, Timer::Hold(_) | Timer::Keepalive(_))),
                    "per-connection timers left running in Idle: {live_timers:?}");
            }
        }
    }
}
