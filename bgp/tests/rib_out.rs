//! Adj-RIB-Out: only differences are sent, NLRI sharing attributes are packed to the 4096-octet limit,
//! withdrawals come first, End-of-RIB closes the initial table. Every UPDATE is decoded back to check it.

use ferrolb_bgp::rib_out::*;
use ferrolb_bgp::wire::update::attr;
use ferrolb_bgp::wire::{DecodeContext, Family, LargeCommunity, Message, PathAttribute, Update};
use ipnetwork::IpNetwork;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

fn ebgp() -> PeerContext {
    PeerContext {
        local_asn: 64512,
        ibgp: false,
        four_octet_as: true,
        families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        ipv4_next_hop: Some(Ipv4Addr::new(198, 51, 100, 1)),
        ipv6_next_hop: Some("2001:db8:1::1".parse().unwrap()),
        ipv6_link_local_next_hop: None,
    }
}

fn ibgp() -> PeerContext {
    PeerContext {
        ibgp: true,
        ..ebgp()
    }
}

fn v4_routes(n: u32, attrs: &Arc<RouteAttributes>) -> Routes {
    (0..n)
        .map(|i| {
            (
                IpNetwork::new(IpAddr::V4(Ipv4Addr::from(0x6440_0000 + i)), 32).unwrap(),
                attrs.clone(),
            )
        })
        .collect()
}

fn v6_routes(n: u32, attrs: &Arc<RouteAttributes>) -> Routes {
    let base: u128 = "2001:db8:100::".parse::<Ipv6Addr>().unwrap().into();
    (0..n)
        .map(|i| {
            (
                IpNetwork::new(IpAddr::V6(Ipv6Addr::from(base + u128::from(i))), 128).unwrap(),
                attrs.clone(),
            )
        })
        .collect()
}

fn decode_all(msgs: &[bytes::Bytes], cx: &PeerContext) -> Vec<Update> {
    let dcx = DecodeContext {
        four_octet_as: cx.four_octet_as,
        ebgp_peer_as: (!cx.ibgp).then_some(cx.local_asn),
    };
    msgs.iter()
        .map(|m| {
            assert!(m.len() <= 4096, "message of {} octets", m.len());
            match Message::decode(m, &dcx).expect("our own UPDATE decodes") {
                Message::Update(u) => {
                    assert!(
                        u.treat_as_withdraw.is_none() && u.discarded.is_empty(),
                        "{u:?}"
                    );
                    u
                }
                other => panic!("{other:?}"),
            }
        })
        .collect()
}

fn plain() -> Arc<RouteAttributes> {
    Arc::new(RouteAttributes::default())
}

/// How many UPDATEs `n` routes take, and how many routes the first one carries.
fn packing(routes: &Routes, cx: &PeerContext) -> (usize, usize) {
    let mut rib = AdjRibOut::new();
    let msgs = rib.sync(routes, cx);
    let ups = decode_all(&msgs, cx);
    (msgs.len(), ups[0].announced_count())
}

#[test]
fn ipv4_ebgp_packs_810_slash_32_per_update() {
    assert_eq!(packing(&v4_routes(810, &plain()), &ebgp()), (1, 810));
    assert_eq!(packing(&v4_routes(811, &plain()), &ebgp()), (2, 810));
    assert_eq!(packing(&v4_routes(810, &plain()), &ibgp()), (1, 810));
    assert_eq!(packing(&v4_routes(811, &plain()), &ibgp()), (2, 810));
}

#[test]
fn communities_shrink_the_room_for_nlri() {
    let one = Arc::new(RouteAttributes {
        communities: vec![0xfc00_0064],
        ..Default::default()
    });
    assert_eq!(packing(&v4_routes(809, &one), &ebgp()), (1, 809));
    assert_eq!(packing(&v4_routes(810, &one), &ebgp()), (2, 809));
    let large = Arc::new(RouteAttributes {
        large_communities: vec![LargeCommunity {
            global_admin: 64512,
            local_data1: 1,
            local_data2: 2,
        }],
        ..Default::default()
    });
    assert_eq!(packing(&v4_routes(807, &large), &ebgp()), (1, 807));
    assert_eq!(packing(&v4_routes(808, &large), &ebgp()), (2, 807));
}

#[test]
fn ipv6_packs_237_slash_128_per_update() {
    assert_eq!(packing(&v6_routes(237, &plain()), &ebgp()), (1, 237));
    assert_eq!(packing(&v6_routes(238, &plain()), &ebgp()), (2, 237));
    // With a link-local next hop (32-octet next hop) one fewer fits.
    let mut cx = ebgp();
    cx.ipv6_link_local_next_hop = Some("fe80::1".parse().unwrap());
    assert_eq!(packing(&v6_routes(236, &plain()), &cx), (1, 236));
    assert_eq!(packing(&v6_routes(237, &plain()), &cx), (2, 236));
}

#[test]
fn withdrawals_pack_814_ipv4_and_239_ipv6_per_update() {
    for (n, msgs) in [(814, 1), (815, 2)] {
        let mut rib = AdjRibOut::new();
        rib.sync(&v4_routes(n, &plain()), &ebgp());
        let w = rib.sync(&Routes::new(), &ebgp());
        assert_eq!(w.len(), msgs, "{n} withdrawals");
        let ups = decode_all(&w, &ebgp());
        assert_eq!(
            ups.iter().map(Update::withdrawn_count).sum::<usize>(),
            n as usize
        );
        assert_eq!(ups[0].withdrawn_count(), 814);
    }
    for (n, msgs) in [(239, 1), (240, 2)] {
        let mut rib = AdjRibOut::new();
        rib.sync(&v6_routes(n, &plain()), &ebgp());
        let w = rib.sync(&Routes::new(), &ebgp());
        assert_eq!(w.len(), msgs, "{n} IPv6 withdrawals");
        assert_eq!(decode_all(&w, &ebgp())[0].withdrawn_count(), 239);
    }
}

#[test]
fn only_differences_are_sent_and_withdrawals_go_first() {
    let mut rib = AdjRibOut::new();
    let cx = ebgp();
    let a = plain();
    let mut routes = v4_routes(10, &a);
    rib.sync(&routes, &cx);
    assert!(rib.sync(&routes, &cx).is_empty(), "no change, nothing sent");

    let first = *routes.keys().next().unwrap();
    routes.remove(&first);
    let tagged = Arc::new(RouteAttributes {
        communities: vec![1],
        ..Default::default()
    });
    let second = *routes.keys().next().unwrap();
    routes.insert(second, tagged);
    let new: IpNetwork = "203.0.113.10/32".parse().unwrap();
    routes.insert(new, a.clone());
    let ups = decode_all(&rib.sync(&routes, &cx), &cx);
    assert_eq!(ups.len(), 3, "{ups:?}");
    assert_eq!(
        ups[0]
            .withdrawn
            .iter()
            .map(|p| IpNetwork::V4(*p))
            .collect::<Vec<_>>(),
        vec![first]
    );
    let announced: Vec<IpNetwork> = ups[1..]
        .iter()
        .flat_map(|u| u.nlri.iter().map(|p| IpNetwork::V4(*p)))
        .collect();
    assert_eq!(announced.len(), 2);
    assert!(announced.contains(&second) && announced.contains(&new));
    assert_eq!(rib.advertised(Family::Ipv4Unicast), 10);
}

#[test]
fn initial_table_ends_with_end_of_rib_per_family() {
    let mut rib = AdjRibOut::new();
    let cx = ebgp();
    let mut routes = v4_routes(3, &plain());
    routes.extend(v6_routes(3, &plain()));
    let msgs = rib.initial(&routes, &cx);
    let ups = decode_all(&msgs, &cx);
    let eors: Vec<_> = ups.iter().filter_map(Update::end_of_rib).collect();
    assert_eq!(eors.len(), 2);
    assert!(ups[..ups.len() - 2]
        .iter()
        .all(|u| u.end_of_rib().is_none()));
    // An empty table still gets its End-of-RIB markers.
    let mut rib = AdjRibOut::new();
    assert_eq!(rib.initial(&Routes::new(), &cx).len(), 2);
}

#[test]
fn ebgp_attributes_prepend_our_as_and_never_carry_local_pref() {
    let attrs = Arc::new(RouteAttributes {
        local_pref: Some(300),
        med: Some(5),
        communities: vec![0xfc00_0064, 0xffff_ff01],
        large_communities: vec![LargeCommunity {
            global_admin: 64512,
            local_data1: 7,
            local_data2: 9,
        }],
        ..Default::default()
    });
    let mut routes = v4_routes(1, &attrs);
    routes.extend(v6_routes(1, &attrs));
    let mut rib = AdjRibOut::new();
    let ups = decode_all(&rib.sync(&routes, &ebgp()), &ebgp());
    for u in &ups {
        let Some(PathAttribute::AsPath(path)) = u.attribute(attr::AS_PATH) else {
            panic!()
        };
        assert_eq!(path[0].asns, vec![64512]);
        assert!(u.attribute(attr::LOCAL_PREF).is_none());
        assert_eq!(
            u.attribute(attr::MULTI_EXIT_DISC),
            Some(&PathAttribute::MultiExitDisc(5))
        );
        assert_eq!(
            u.attribute(attr::COMMUNITIES),
            Some(&PathAttribute::Communities(vec![0xfc00_0064, 0xffff_ff01]))
        );
        assert!(
            matches!(u.attribute(attr::LARGE_COMMUNITY), Some(PathAttribute::LargeCommunities(l)) if l[0].local_data1 == 7)
        );
    }
    let v4 = ups.iter().find(|u| !u.nlri.is_empty()).unwrap();
    assert_eq!(
        v4.attribute(attr::NEXT_HOP),
        Some(&PathAttribute::NextHop(Ipv4Addr::new(198, 51, 100, 1)))
    );
    let v6 = ups.iter().find_map(|u| u.mp_reach()).unwrap();
    assert_eq!(
        v6.next_hops,
        vec!["2001:db8:1::1".parse::<IpAddr>().unwrap()]
    );
    // MP_REACH_NLRI is the first attribute (RFC 7606 §5.1).
    let v6_update = ups.iter().find(|u| u.mp_reach().is_some()).unwrap();
    assert!(matches!(v6_update.attributes[0], PathAttribute::MpReach(_)));
}

#[test]
fn ibgp_gets_an_empty_as_path_and_local_pref() {
    let cx = ibgp();
    let with = Arc::new(RouteAttributes {
        local_pref: Some(250),
        ..Default::default()
    });
    let mut routes = v4_routes(1, &with);
    routes.insert("203.0.113.7/32".parse().unwrap(), plain());
    let mut rib = AdjRibOut::new();
    let ups = decode_all(&rib.sync(&routes, &cx), &cx);
    let mut prefs: Vec<_> = ups
        .iter()
        .map(|u| u.attribute(attr::LOCAL_PREF).cloned())
        .collect();
    prefs.sort_by_key(|p| format!("{p:?}"));
    assert_eq!(
        prefs,
        vec![
            Some(PathAttribute::LocalPref(100)),
            Some(PathAttribute::LocalPref(250))
        ]
    );
    assert!(ups
        .iter()
        .all(|u| u.attribute(attr::AS_PATH) == Some(&PathAttribute::AsPath(vec![]))));
}

#[test]
fn two_octet_peers_get_as_trans_and_as4_path() {
    let cx = PeerContext {
        local_asn: 4_200_000_001,
        four_octet_as: false,
        ..ebgp()
    };
    let mut rib = AdjRibOut::new();
    let msgs = rib.sync(&v4_routes(1, &plain()), &cx);
    let dcx = DecodeContext {
        four_octet_as: false,
        ebgp_peer_as: Some(23456),
    };
    let Message::Update(u) = Message::decode(&msgs[0], &dcx).unwrap() else {
        panic!()
    };
    assert!(
        matches!(u.attribute(attr::AS_PATH), Some(PathAttribute::AsPath(p)) if p[0].asns == vec![23456])
    );
    assert!(
        matches!(u.attribute(attr::AS4_PATH), Some(PathAttribute::As4Path(p)) if p[0].asns == vec![4_200_000_001])
    );
}

#[test]
fn routes_the_session_cannot_carry_are_held_back_with_a_reason() {
    let cx = PeerContext {
        families: vec![Family::Ipv4Unicast],
        ..ebgp()
    };
    let mut routes = v4_routes(2, &plain());
    routes.extend(v6_routes(3, &plain()));
    let mut rib = AdjRibOut::new();
    let ups = decode_all(&rib.sync(&routes, &cx), &cx);
    assert_eq!(ups.iter().map(Update::announced_count).sum::<usize>(), 2);
    let unsent = &rib.unsent[&Family::Ipv6Unicast];
    assert_eq!(unsent.count, 3);
    assert!(unsent.reason.contains("not negotiated"));

    let cx = PeerContext {
        ipv6_next_hop: None,
        ..ebgp()
    };
    let mut rib = AdjRibOut::new();
    rib.sync(&routes, &cx);
    assert!(rib.unsent[&Family::Ipv6Unicast].reason.contains("next hop"));
}

#[test]
fn resend_repeats_one_family() {
    let cx = ebgp();
    let mut routes = v4_routes(900, &plain());
    routes.extend(v6_routes(5, &plain()));
    let mut rib = AdjRibOut::new();
    rib.sync(&routes, &cx);
    let again = decode_all(&rib.resend(Family::Ipv4Unicast, &cx), &cx);
    assert_eq!(again.iter().map(|u| u.nlri.len()).sum::<usize>(), 900);
    assert!(again.iter().all(|u| u.mp_reach().is_none()));
}

#[test]
fn attributes_too_large_for_one_update_are_held_back_not_sent_broken() {
    let huge = Arc::new(RouteAttributes {
        communities: (0..1100).collect(),
        ..Default::default()
    });
    let mut routes = v4_routes(2, &huge);
    routes.extend(v4_routes(3, &plain()).into_iter().map(|(p, a)| {
        let IpNetwork::V4(v4) = p else { unreachable!() };
        (
            IpNetwork::new(IpAddr::V4(Ipv4Addr::from(u32::from(v4.ip()) + 100)), 32).unwrap(),
            a,
        )
    }));
    let mut rib = AdjRibOut::new();
    let ups = decode_all(&rib.sync(&routes, &ebgp()), &ebgp());
    assert_eq!(ups.iter().map(Update::announced_count).sum::<usize>(), 3);
    let unsent = &rib.unsent[&Family::Ipv4Unicast];
    assert_eq!(unsent.count, 2);
    assert!(unsent.reason.contains("do not fit"));
}
