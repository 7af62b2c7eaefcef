//! Table tests of the pure FSM (RFC 4271 §8): events in, actions out, no sockets or clocks.

use ferrolb_bgp::fsm::*;
use ferrolb_bgp::wire::notification::{cease, code, fsm as fsm_sub, open as open_sub};
use ferrolb_bgp::wire::open::{Capability, AS_TRANS};
use ferrolb_bgp::wire::{Afi, Safi};
use ferrolb_bgp::wire::{Family, Message, Notification, Open, RouteRefresh, Update};
use std::net::Ipv4Addr;
use std::time::Duration;

const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

fn config(mode: ConnectMode) -> FsmConfig {
    let mut c = FsmConfig::new(64512, 64500, LOCAL_ID);
    c.mode = mode;
    c.hold_time = 9;
    c.connect_retry = Duration::from_secs(5);
    c
}

fn peer_open(asn: u32, hold: u16, id: Ipv4Addr) -> Open {
    Open {
        version: 4,
        my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
        hold_time: hold,
        bgp_id: id,
        capabilities: vec![
            Capability::Multiprotocol {
                afi: Afi::IPV4,
                safi: Safi::UNICAST,
            },
            Capability::Multiprotocol {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
            },
            Capability::RouteRefresh,
            Capability::FourOctetAs(asn),
        ],
    }
}

fn sent_notification(actions: &[Action]) -> Option<(ConnId, u8, u8)> {
    actions.iter().find_map(|a| match a {
        Action::Send(id, Message::Notification(n)) => Some((*id, n.code, n.subcode)),
        _ => None,
    })
}

fn started_timer(actions: &[Action], t: Timer) -> Option<Duration> {
    actions.iter().find_map(|a| match a {
        Action::StartTimer(x, d) if *x == t => Some(*d),
        _ => None,
    })
}

/// Drives an active session to Established on connection 1.
fn established(cfg: FsmConfig) -> (Fsm, Vec<Action>) {
    let mut fsm = Fsm::new(cfg);
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected(1));
    fsm.handle(Event::Message(
        1,
        Message::Open(peer_open(64500, 30, PEER_ID)),
    ));
    let actions = fsm.handle(Event::Message(1, Message::Keepalive));
    assert_eq!(fsm.state(), State::Established);
    (fsm, actions)
}

#[test]
fn active_start_dials_and_arms_connect_retry_with_jitter() {
    let mut fsm = Fsm::new(config(ConnectMode::Active));
    assert_eq!(fsm.state(), State::Idle);
    let a = fsm.handle(Event::Start);
    assert!(a.contains(&Action::Connect));
    let retry = started_timer(&a, Timer::ConnectRetry).unwrap();
    assert!(
        retry >= Duration::from_millis(3750) && retry <= Duration::from_secs(5),
        "{retry:?}"
    );
    assert_eq!(fsm.state(), State::Connect);
}

#[test]
fn passive_start_waits_in_active_without_dialling() {
    let mut fsm = Fsm::new(config(ConnectMode::Passive));
    let a = fsm.handle(Event::Start);
    assert!(!a.contains(&Action::Connect));
    assert_eq!(fsm.state(), State::Active);
    let a = fsm.handle(Event::TcpAccepted(7));
    assert!(matches!(a[0], Action::Send(7, Message::Open(_))));
    assert_eq!(started_timer(&a, Timer::Hold(7)), Some(OPEN_SENT_HOLD));
    assert_eq!(fsm.state(), State::OpenSent);
}

#[test]
fn active_only_refuses_inbound_connections() {
    let mut fsm = Fsm::new(config(ConnectMode::Active));
    fsm.handle(Event::Start);
    assert_eq!(fsm.handle(Event::TcpAccepted(9)), vec![Action::Close(9)]);
}

#[test]
fn tcp_up_sends_open_with_our_capabilities() {
    let mut cfg = config(ConnectMode::Active);
    cfg.local_asn = 4_200_000_000;
    cfg.graceful_restart = Some(GracefulRestartConfig {
        restart_time: 120,
        restarting: true,
        forwarding_preserved: true,
    });
    let mut fsm = Fsm::new(cfg);
    fsm.handle(Event::Start);
    let a = fsm.handle(Event::TcpConnected(1));
    let Some(Action::Send(1, Message::Open(open))) =
        a.iter().find(|x| matches!(x, Action::Send(..)))
    else {
        panic!("{a:?}")
    };
    assert_eq!(
        open.my_as, AS_TRANS,
        "4-octet ASN travels as AS_TRANS in My AS"
    );
    assert_eq!(open.asn(), 4_200_000_000);
    assert_eq!(open.hold_time, 9);
    let gr = open.graceful_restart().unwrap();
    assert!(gr.restart_state && gr.restart_time == 120 && gr.families.iter().all(|f| f.2));
    assert!(open.supports_route_refresh());
    assert_eq!(open.families().len(), 2);
    assert_eq!(started_timer(&a, Timer::Hold(1)), Some(OPEN_SENT_HOLD));
}

#[test]
fn hold_time_is_the_minimum_and_keepalive_a_third() {
    let mut fsm = Fsm::new(config(ConnectMode::Active));
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected(1));
    let a = fsm.handle(Event::Message(
        1,
        Message::Open(peer_open(64500, 6, PEER_ID)),
    ));
    assert!(a.contains(&Action::Send(1, Message::Keepalive)));
    assert_eq!(
        started_timer(&a, Timer::Hold(1)),
        Some(Duration::from_secs(6))
    );
    let ka = started_timer(&a, Timer::Keepalive(1)).unwrap();
    assert!(ka <= Duration::from_secs(2) && ka >= Duration::from_millis(1500));
    assert_eq!(fsm.state(), State::OpenConfirm);
    let a = fsm.handle(Event::Message(1, Message::Keepalive));
    let Some(Action::Established(1, neg)) = a.iter().find(|x| matches!(x, Action::Established(..)))
    else {
        panic!()
    };
    assert_eq!((neg.hold_time, neg.keepalive_time), (6, 2));
    assert_eq!(neg.families, vec![Family::Ipv4Unicast, Family::Ipv6Unicast]);
    assert!(neg.four_octet_as && neg.route_refresh && !neg.ibgp);
}

#[test]
fn zero_hold_time_means_no_hold_timer_and_no_keepalives() {
    let mut fsm = Fsm::new(config(ConnectMode::Active));
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected(1));
    let a = fsm.handle(Event::Message(
        1,
        Message::Open(peer_open(64500, 0, PEER_ID)),
    ));
    assert!(a.contains(&Action::StopTimer(Timer::Hold(1))));
    assert_eq!(started_timer(&a, Timer::Keepalive(1)), None);
    let a = fsm.handle(Event::Message(1, Message::Keepalive));
    assert_eq!(started_timer(&a, Timer::Hold(1)), None);
}

#[test]
fn peer_without_multiprotocol_capabilities_gets_ipv4_only() {
    let mut open = peer_open(64500, 30, PEER_ID);
    open.capabilities
        .retain(|c| !matches!(c, Capability::Multiprotocol { .. }));
    let mut fsm = Fsm::new(config(ConnectMode::Active));
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected(1));
    fsm.handle(Event::Message(1, Message::Open(open)));
    fsm.handle(Event::Message(1, Message::Keepalive));
    assert_eq!(
        fsm.established().unwrap().1.families,
        vec![Family::Ipv4Unicast]
    );
}

#[test]
fn wrong_peer_as_is_bad_peer_as() {
    let mut fsm = Fsm::new(config(ConnectMode::Active));
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected(1));
    let a = fsm.handle(Event::Message(
        1,
        Message::Open(peer_open(65001, 30, PEER_ID)),
    ));
    assert_eq!(
        sent_notification(&a),
        Some((1, code::OPEN, open_sub::BAD_PEER_AS))
    );
    assert!(a.contains(&Action::Close(1)));
    assert!(started_timer(&a, Timer::IdleHold).is_some());
    assert_eq!(fsm.state(), State::Idle);
    assert!(fsm.last_error.as_deref().unwrap().contains("65001"));
}

#[test]
fn internal_peer_with_our_router_id_is_bad_identifier() {
    let mut cfg = config(ConnectMode::Active);
    cfg.peer_asn = 64512;
    let mut fsm = Fsm::new(cfg);
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected(1));
    let a = fsm.handle(Event::Message(
        1,
        Message::Open(peer_open(64512, 30, LOCAL_ID)),
    ));
    assert_eq!(
        sent_notification(&a),
        Some((1, code::OPEN, open_sub::BAD_BGP_IDENTIFIER))
    );
}

#[test]
fn unexpected_messages_are_fsm_errors_with_the_state_subcode() {
    // KEEPALIVE in OpenSent.
    let mut fsm = Fsm::new(config(ConnectMode::Active));
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected(1));
    let a = fsm.handle(Event::Message(1, Message::Keepalive));
    assert_eq!(
        sent_notification(&a),
        Some((1, code::FSM, fsm_sub::UNEXPECTED_IN_OPENSENT))
    );
    // UPDATE in OpenConfirm.
    let mut fsm = Fsm::new(config(ConnectMode::Active));
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected(1));
    fsm.handle(Event::Message(
        1,
        Message::Open(peer_open(64500, 30, PEER_ID)),
    ));
    let a = fsm.handle(Event::Message(1, Message::Update(Update::default())));
    assert_eq!(
        sent_notification(&a),
        Some((1, code::FSM, fsm_sub::UNEXPECTED_IN_OPENCONFIRM))
    );
    // OPEN in Established.
    let (mut fsm, _) = established(config(ConnectMode::Active));
    let a = fsm.handle(Event::Message(
        1,
        Message::Open(peer_open(64500, 30, PEER_ID)),
    ));
    assert_eq!(
        sent_notification(&a),
        Some((1, code::FSM, fsm_sub::UNEXPECTED_IN_ESTABLISHED))
    );
    assert!(a.iter().any(|x| matches!(x, Action::SessionDown(_))));
    assert_eq!(fsm.flaps, 1);
}

#[test]
fn hold_timer_expiry_sends_hold_timer_expired_and_backs_off() {
    let (mut fsm, _) = established(config(ConnectMode::Active));
    let a = fsm.handle(Event::TimerExpired(Timer::Hold(1)));
    assert_eq!(
        sent_notification(&a),
        Some((1, code::HOLD_TIMER_EXPIRED, 0))
    );
    assert!(a.iter().any(|x| matches!(x, Action::SessionDown(_))));
    assert_eq!(fsm.state(), State::Idle);
    let first = started_timer(&a, Timer::IdleHold).unwrap();
    assert!(first <= Duration::from_secs(1));
    // IdleHold expiry dials again.
    let a = fsm.handle(Event::TimerExpired(Timer::IdleHold));
    assert!(a.contains(&Action::Connect));
}

#[test]
fn idle_hold_backoff_grows_exponentially_to_its_cap_and_resets_when_established() {
    let mut cfg = config(ConnectMode::Active);
    cfg.idle_hold = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(8),
    };
    let mut fsm = Fsm::new(cfg);
    fsm.handle(Event::Start);
    let mut delays = Vec::new();
    for _ in 0..6 {
        let a = fsm.handle(Event::TcpConnectFailed("refused".into()));
        delays.push(started_timer(&a, Timer::IdleHold).unwrap());
        assert_eq!(fsm.state(), State::Idle);
        fsm.handle(Event::TimerExpired(Timer::IdleHold));
        assert_eq!(fsm.state(), State::Connect);
    }
    let secs: Vec<f64> = delays.iter().map(Duration::as_secs_f64).collect();
    for (i, nominal) in [1.0, 2.0, 4.0, 8.0, 8.0, 8.0].iter().enumerate() {
        assert!(
            secs[i] <= *nominal && secs[i] >= nominal * 0.75,
            "attempt {i}: {secs:?}"
        );
    }
    assert_eq!(fsm.last_error.as_deref(), Some("refused"));
    // Established resets the backoff.
    fsm.handle(Event::TcpConnected(1));
    fsm.handle(Event::Message(
        1,
        Message::Open(peer_open(64500, 30, PEER_ID)),
    ));
    fsm.handle(Event::Message(1, Message::Keepalive));
    let a = fsm.handle(Event::TcpClosed(1, "reset".into()));
    assert!(started_timer(&a, Timer::IdleHold).unwrap() <= Duration::from_secs(1));
}

#[test]
fn connect_retry_expiry_while_connecting_abandons_and_backs_off() {
    let mut fsm = Fsm::new(config(ConnectMode::Active));
    fsm.handle(Event::Start);
    let a = fsm.handle(Event::TimerExpired(Timer::ConnectRetry));
    assert_eq!(a[0], Action::AbortConnect);
    assert!(started_timer(&a, Timer::IdleHold).is_some());
    assert_eq!(fsm.state(), State::Idle);
    assert!(fsm
        .last_error
        .as_deref()
        .unwrap()
        .contains("not established"));
    let a = fsm.handle(Event::TimerExpired(Timer::IdleHold));
    assert!(a.contains(&Action::Connect));
}

#[test]
fn keepalive_timer_sends_keepalive_and_rearms() {
    let (mut fsm, _) = established(config(ConnectMode::Active));
    let a = fsm.handle(Event::TimerExpired(Timer::Keepalive(1)));
    assert_eq!(a[0], Action::Send(1, Message::Keepalive));
    assert!(started_timer(&a, Timer::Keepalive(1)).is_some());
}

#[test]
fn messages_in_established_restart_the_hold_timer() {
    let (mut fsm, established_actions) = established(config(ConnectMode::Active));
    assert_eq!(
        started_timer(&established_actions, Timer::Hold(1)),
        Some(Duration::from_secs(9))
    );
    for m in [Message::Keepalive, Message::Update(Update::default())] {
        let a = fsm.handle(Event::Message(1, m));
        assert_eq!(
            started_timer(&a, Timer::Hold(1)),
            Some(Duration::from_secs(9))
        );
    }
}

#[test]
fn route_refresh_resends_negotiated_families_only() {
    let (mut fsm, _) = established(config(ConnectMode::Active));
    let rr = |afi, safi| {
        Message::RouteRefresh(RouteRefresh {
            afi,
            subtype: 0,
            safi,
        })
    };
    let a = fsm.handle(Event::Message(1, rr(Afi::IPV6, Safi::UNICAST)));
    assert!(a.contains(&Action::ResendFamily(Family::Ipv6Unicast)));
    let a = fsm.handle(Event::Message(1, rr(Afi(25), Safi(70))));
    assert!(!a.iter().any(|x| matches!(x, Action::ResendFamily(_))));
}

#[test]
fn notification_from_peer_closes_without_reply() {
    let (mut fsm, _) = established(config(ConnectMode::Active));
    let n = Notification::cease(cease::ADMINISTRATIVE_RESET, Some("maintenance"));
    let a = fsm.handle(Event::Message(1, Message::Notification(n)));
    assert_eq!(sent_notification(&a), None);
    assert!(a.contains(&Action::Close(1)));
    assert_eq!(
        fsm.last_notification_received
            .as_ref()
            .unwrap()
            .shutdown_communication()
            .as_deref(),
        Some("maintenance")
    );
    assert!(fsm.last_error.as_deref().unwrap().contains("maintenance"));
}

#[test]
fn stop_sends_cease_with_shutdown_communication_and_stays_idle() {
    let (mut fsm, _) = established(config(ConnectMode::Active));
    let a = fsm.handle(Event::Stop(Stop::Cease {
        subcode: cease::ADMINISTRATIVE_SHUTDOWN,
        text: Some("node draining".into()),
    }));
    let Some(Action::Send(1, Message::Notification(n))) =
        a.iter().find(|x| matches!(x, Action::Send(..)))
    else {
        panic!("{a:?}")
    };
    assert_eq!(
        (n.code, n.subcode),
        (code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN)
    );
    assert_eq!(n.shutdown_communication().as_deref(), Some("node draining"));
    assert!(a.contains(&Action::Close(1)));
    assert_eq!(
        started_timer(&a, Timer::IdleHold),
        None,
        "an administrative stop does not restart"
    );
    assert_eq!(fsm.state(), State::Idle);
    // And refuses the peer afterwards.
    assert_eq!(fsm.handle(Event::TcpAccepted(5)), vec![Action::Close(5)]);
}

#[test]
fn stop_for_restart_closes_without_notification() {
    let (mut fsm, _) = established(config(ConnectMode::Active));
    let a = fsm.handle(Event::Stop(Stop::ForRestart));
    assert_eq!(sent_notification(&a), None);
    assert!(a.contains(&Action::Close(1)));
}

#[test]
fn max_prefix_limit_closes_with_cease_subcode_1() {
    let mut cfg = config(ConnectMode::Active);
    cfg.max_prefixes = Some(2);
    let (mut fsm, _) = established(cfg);
    let mut u = Update {
        nlri: vec![
            "203.0.113.1/32".parse().unwrap(),
            "203.0.113.2/32".parse().unwrap(),
        ],
        ..Default::default()
    };
    let a = fsm.handle(Event::Message(1, Message::Update(u.clone())));
    assert_eq!(sent_notification(&a), None);
    assert_eq!(fsm.received.prefixes, 2);
    u.nlri.truncate(1);
    u.nlri[0] = "203.0.113.3/32".parse().unwrap();
    let a = fsm.handle(Event::Message(1, Message::Update(u)));
    assert_eq!(
        sent_notification(&a),
        Some((1, code::CEASE, cease::MAX_PREFIXES_REACHED))
    );
}

#[test]
fn received_routes_are_counted_not_stored() {
    let (mut fsm, _) = established(config(ConnectMode::Active));
    let u = Update {
        nlri: (1..=3)
            .map(|i| format!("203.0.113.{i}/32").parse().unwrap())
            .collect(),
        ..Default::default()
    };
    fsm.handle(Event::Message(1, Message::Update(u)));
    let w = Update {
        withdrawn: vec!["203.0.113.1/32".parse().unwrap()],
        ..Default::default()
    };
    fsm.handle(Event::Message(1, Message::Update(w)));
    assert_eq!(
        fsm.received,
        ReceivedCounts {
            announced: 3,
            withdrawn: 1,
            treated_as_withdraw: 0,
            prefixes: 2
        }
    );
}

/// Both sides dial at once: outbound connection 1 and inbound connection 2, the peer's OPEN on 1
/// arriving first. Returns the actions of that OPEN.
fn collision(local_id: Ipv4Addr) -> (Fsm, Vec<Action>) {
    let mut cfg = config(ConnectMode::Both);
    cfg.router_id = local_id;
    let mut fsm = Fsm::new(cfg);
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected(1));
    fsm.handle(Event::TcpAccepted(2));
    let a = fsm.handle(Event::Message(
        1,
        Message::Open(peer_open(64500, 30, PEER_ID)),
    ));
    (fsm, a)
}

#[test]
fn collision_keeps_the_connection_dialled_by_the_higher_identifier() {
    // Our identifier is higher: keep our outbound connection 1, close the inbound 2.
    let (mut fsm, a) = collision(Ipv4Addr::new(198, 51, 100, 9));
    assert_eq!(
        sent_notification(&a),
        Some((2, code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION))
    );
    assert_eq!(fsm.state(), State::OpenConfirm);
    fsm.handle(Event::Message(1, Message::Keepalive));
    assert_eq!(fsm.established().map(|(id, _)| id), Some(1));
    assert_eq!(fsm.collisions, 1);

    // Our identifier is lower: keep the peer's connection 2, close ours.
    let (mut fsm, a) = collision(Ipv4Addr::new(198, 51, 100, 1));
    assert_eq!(
        sent_notification(&a),
        Some((1, code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION))
    );
    assert_eq!(fsm.state(), State::OpenSent);
    fsm.handle(Event::Message(
        2,
        Message::Open(peer_open(64500, 30, PEER_ID)),
    ));
    fsm.handle(Event::Message(2, Message::Keepalive));
    assert_eq!(fsm.established().map(|(id, _)| id), Some(2));
}

#[test]
fn collision_is_resolved_as_soon_as_the_first_open_names_the_peer() {
    // Outbound 1 and inbound 2 both in OpenSent; the peer's OPEN arrives on 1 first. The peer's
    // identifier is higher, so its connection (2) wins at once, before 1 can reach Established.
    let mut fsm = Fsm::new(config(ConnectMode::Both));
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected(1));
    fsm.handle(Event::TcpAccepted(2));
    let a = fsm.handle(Event::Message(
        1,
        Message::Open(peer_open(64500, 30, PEER_ID)),
    ));
    assert_eq!(
        sent_notification(&a),
        Some((1, code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION))
    );
    assert_eq!(fsm.state(), State::OpenSent);
    fsm.handle(Event::Message(
        2,
        Message::Open(peer_open(64500, 30, PEER_ID)),
    ));
    fsm.handle(Event::Message(2, Message::Keepalive));
    assert_eq!(fsm.established().map(|(id, _)| id), Some(2));
    assert_eq!(fsm.flaps, 0);
}

#[test]
fn a_redial_replaces_the_peers_earlier_connection_that_never_sent_an_open() {
    // Seen against FRR: both sides dialled (inbound 1, outbound 2, both in OpenSent); the peer then
    // reset 1 and dialled again (3), and the accept of 3 came before the reset of 1. The new connection
    // takes 1's place (it used to be refused as a third one, leaving the peer nothing to talk on), and
    // the collision is then resolved on 2 and 3 as usual.
    let mut cfg = config(ConnectMode::Both);
    cfg.router_id = Ipv4Addr::new(198, 51, 100, 1);
    let mut fsm = Fsm::new(cfg);
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpAccepted(1));
    fsm.handle(Event::TcpConnected(2));
    let a = fsm.handle(Event::TcpAccepted(3));
    assert!(a.contains(&Action::Close(1)), "{a:?}");
    assert!(!a.contains(&Action::Close(3)), "{a:?}");
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::Send(3, Message::Open(_)))),
        "{a:?}"
    );
    assert_eq!(
        sent_notification(&a),
        None,
        "1 never spoke: nothing to tell it"
    );
    // The reset of 1 arrives late and changes nothing.
    assert!(fsm
        .handle(Event::TcpClosed(1, "reset by peer".into()))
        .is_empty());
    // The peer's OPEN on 2: its identifier is higher, so its connection 3 wins.
    let a = fsm.handle(Event::Message(
        2,
        Message::Open(peer_open(64500, 30, PEER_ID)),
    ));
    assert_eq!(
        sent_notification(&a),
        Some((2, code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION))
    );
    fsm.handle(Event::Message(
        3,
        Message::Open(peer_open(64500, 30, PEER_ID)),
    ));
    fsm.handle(Event::Message(3, Message::Keepalive));
    assert_eq!(fsm.established().map(|(id, _)| id), Some(3));
    assert_eq!(fsm.collisions, 1);

    // A third connection while the peer's earlier one has sent its OPEN is still refused.
    let mut fsm = Fsm::new(config(ConnectMode::Both));
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpAccepted(1));
    fsm.handle(Event::Message(
        1,
        Message::Open(peer_open(64500, 30, PEER_ID)),
    ));
    fsm.handle(Event::TcpConnected(2));
    assert_eq!(fsm.handle(Event::TcpAccepted(3)), vec![Action::Close(3)]);
}

#[test]
fn a_new_connection_never_displaces_an_established_session() {
    let mut cfg = config(ConnectMode::Both);
    cfg.router_id = Ipv4Addr::new(198, 51, 100, 1);
    let (mut fsm, _) = established(cfg);
    fsm.handle(Event::TcpAccepted(2));
    let a = fsm.handle(Event::Message(
        2,
        Message::Open(peer_open(64500, 30, PEER_ID)),
    ));
    assert_eq!(
        sent_notification(&a),
        Some((2, code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION))
    );
    assert_eq!(fsm.established().map(|(id, _)| id), Some(1));
}

#[test]
fn establishing_closes_a_connection_accepted_late() {
    // Connection 1 is in OpenConfirm when the peer dials again (2, no OPEN yet): reaching Established
    // on 1 closes 2.
    let mut fsm = Fsm::new(config(ConnectMode::Both));
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpConnected(1));
    fsm.handle(Event::Message(
        1,
        Message::Open(peer_open(64500, 30, PEER_ID)),
    ));
    fsm.handle(Event::TcpAccepted(2));
    let a = fsm.handle(Event::Message(1, Message::Keepalive));
    assert_eq!(
        sent_notification(&a),
        Some((2, code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION))
    );
    assert_eq!(fsm.established().map(|(id, _)| id), Some(1));
}

#[test]
fn an_inbound_session_established_abandons_the_outbound_attempt() {
    let mut fsm = Fsm::new(config(ConnectMode::Both));
    fsm.handle(Event::Start);
    fsm.handle(Event::TcpAccepted(2));
    fsm.handle(Event::Message(
        2,
        Message::Open(peer_open(64500, 30, PEER_ID)),
    ));
    let a = fsm.handle(Event::Message(2, Message::Keepalive));
    assert!(a.contains(&Action::AbortConnect));
    assert!(a.contains(&Action::StopTimer(Timer::ConnectRetry)));
}

#[test]
fn events_for_unknown_connections_are_ignored() {
    let (mut fsm, _) = established(config(ConnectMode::Active));
    assert!(fsm
        .handle(Event::Message(42, Message::Keepalive))
        .is_empty());
    assert!(fsm.handle(Event::TcpClosed(42, "x".into())).is_empty());
    assert_eq!(fsm.state(), State::Established);
}
