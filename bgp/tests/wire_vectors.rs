//! Encoding checked against hand-assembled byte vectors, and decode(encode(x)) == x.

use ferrolb_bgp::fsm::{FsmConfig, GracefulRestartConfig};
use ferrolb_bgp::wire::notification::cease;
use ferrolb_bgp::wire::update::{AsSegment, MpReach, MpUnreach, Origin};
use ferrolb_bgp::wire::*;
use std::net::Ipv4Addr;

const CX: DecodeContext = DecodeContext {
    four_octet_as: true,
    ebgp_peer_as: None,
};

#[test]
fn keepalive_is_the_bare_header() {
    let mut want = vec![0xff; 16];
    want.extend_from_slice(&[0, 19, 4]);
    assert_eq!(&keepalive()[..], &want[..]);
}

#[test]
fn our_open_matches_the_rfc_layout() {
    let mut cfg = FsmConfig::new(64512, 64500, Ipv4Addr::new(198, 51, 100, 1));
    cfg.graceful_restart = Some(GracefulRestartConfig {
        restart_time: 120,
        restarting: false,
        forwarding_preserved: true,
    });
    let bytes = Message::Open(cfg.open()).encode(&CX);
    #[rustfmt::skip]
    let body: &[u8] = &[
        4, 0xfc, 0x00, 0, 90, 198, 51, 100, 1, // version, AS 64512, hold 90, identifier
        34,                                    // optional parameters length
        2, 32,                                 // one Capabilities parameter of 32 octets
        1, 4, 0, 1, 0, 1,                      // MP IPv4 unicast
        1, 4, 0, 2, 0, 1,                      // MP IPv6 unicast
        2, 0,                                  // route refresh
        65, 4, 0, 0, 0xfc, 0x00,               // 4-octet AS 64512
        64, 10, 0x00, 120, 0, 1, 1, 0x80, 0, 2, 1, 0x80, // GR 120 s, F bit for both families
    ];
    assert_eq!(&bytes[19..], body);
    assert_eq!(
        u16::from_be_bytes([bytes[16], bytes[17]]) as usize,
        bytes.len()
    );
    assert_eq!(
        Message::decode(&bytes, &CX).unwrap(),
        Message::Open(cfg.open())
    );
}

#[test]
fn cease_carries_the_shutdown_communication() {
    let n = Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN, Some("draining node-a"));
    let bytes = Message::Notification(n.clone()).encode(&CX);
    assert_eq!(&bytes[19..22], &[6, 2, 15]);
    assert_eq!(&bytes[22..], b"draining node-a");
    let Message::Notification(back) = Message::decode(&bytes, &CX).unwrap() else {
        panic!()
    };
    assert_eq!(
        back.shutdown_communication().as_deref(),
        Some("draining node-a")
    );
    assert_eq!(
        back.to_string(),
        "Cease/Administrative Shutdown (6/2): \"draining node-a\""
    );
    // Truncated to 255 octets on a character boundary.
    let long = "é".repeat(200);
    let n = Notification::cease(cease::ADMINISTRATIVE_RESET, Some(&long));
    assert_eq!(n.data[0], 254);
    assert!(n.shutdown_communication().is_some());
    // Other subcodes carry no text.
    assert!(Notification::cease(cease::PEER_DECONFIGURED, Some("x"))
        .data
        .is_empty());
}

#[test]
fn route_refresh_round_trips() {
    let rr = Message::RouteRefresh(RouteRefresh {
        afi: Afi::IPV6,
        subtype: 0,
        safi: Safi::UNICAST,
    });
    let bytes = rr.encode(&CX);
    assert_eq!(&bytes[16..], &[0, 23, 5, 0, 2, 0, 1]);
    assert_eq!(Message::decode(&bytes, &CX).unwrap(), rr);
}

#[test]
fn update_with_every_attribute_round_trips() {
    let u = Update {
        withdrawn: vec!["198.51.100.0/24".parse().unwrap()],
        attributes: vec![
            PathAttribute::MpReach(MpReach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                next_hops: vec!["2001:db8::1".parse().unwrap(), "fe80::1".parse().unwrap()],
                nlri: vec![
                    "2001:db8:5::/48".parse().unwrap(),
                    "2001:db8::7/128".parse().unwrap(),
                ],
            }),
            PathAttribute::Origin(Origin::Incomplete),
            PathAttribute::AsPath(vec![
                AsSegment {
                    kind: 2,
                    asns: vec![64512, 4_200_000_000],
                },
                AsSegment {
                    kind: 1,
                    asns: vec![1, 2],
                },
            ]),
            PathAttribute::NextHop(Ipv4Addr::new(198, 51, 100, 1)),
            PathAttribute::MultiExitDisc(10),
            PathAttribute::LocalPref(200),
            PathAttribute::AtomicAggregate,
            PathAttribute::Aggregator {
                asn: 64512,
                address: Ipv4Addr::new(203, 0, 113, 1),
            },
            PathAttribute::Communities((0..70).collect()), // > 255 octets: extended length
            PathAttribute::LargeCommunities(vec![LargeCommunity {
                global_admin: 1,
                local_data1: 2,
                local_data2: 3,
            }]),
            PathAttribute::MpUnreach(MpUnreach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                withdrawn: vec!["2001:db8:9::/64".parse().unwrap()],
            }),
        ],
        nlri: vec![
            "203.0.113.0/25".parse().unwrap(),
            "203.0.113.128/32".parse().unwrap(),
        ],
        treat_as_withdraw: None,
        discarded: vec![],
    };
    let bytes = Message::Update(u.clone()).encode(&CX);
    assert_eq!(Message::decode(&bytes, &CX).unwrap(), Message::Update(u));
}

#[test]
fn an_frr_style_open_with_many_capabilities_decodes() {
    // An OPEN laid out as FRR 8.4 sends it (AS 64500, hold 180, id 198.51.100.2) with MP v4/v6, route refresh (2 and 128),
    // enhanced route refresh, 4-octet AS, ADD-PATH, FQDN "r1", graceful restart (helper) and LLGR.
    #[rustfmt::skip]
    let body: &[u8] = &[
        4, 0xfb, 0xf4, 0, 180, 198, 51, 100, 2, 48,
        2, 46,
        1, 4, 0, 1, 0, 1,
        1, 4, 0, 2, 0, 1,
        128, 0, 2, 0, 70, 0,
        65, 4, 0, 0, 0xfb, 0xf4,
        69, 8, 0, 1, 1, 1, 0, 2, 1, 1,
        73, 4, 2, b'r', b'1', 0,
        64, 2, 0x40, 120,
        71, 0,
    ];
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(1);
    m.extend_from_slice(body);
    let Message::Open(o) = Message::decode(&m, &CX).unwrap() else {
        panic!()
    };
    assert_eq!((o.asn(), o.hold_time), (64500, 180));
    assert!(o.supports_route_refresh() && o.supports_four_octet_as());
    assert_eq!(o.families().len(), 2);
    let gr = o.graceful_restart().unwrap();
    assert!(gr.notification && gr.restart_time == 120 && gr.families.is_empty());
}
