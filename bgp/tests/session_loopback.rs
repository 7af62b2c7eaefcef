//! The tokio driver against a scripted peer on loopback: bad input gets the right NOTIFICATION and
//! leaves other sessions alone, the hold timer fires, route refresh re-sends, Cease is delivered.

use bytes::BytesMut;
use ferrolb_bgp::fsm::{Backoff, FsmConfig};
use ferrolb_bgp::rib_out::{RouteAttributes, Routes};
use ferrolb_bgp::session::{PeerStatus, SessionConfig, SessionHandle};
use ferrolb_bgp::wire::{self, DecodeContext, Message, Notification, RouteRefresh};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::timeout;

const CX: DecodeContext = DecodeContext {
    four_octet_as: true,
    ebgp_peer_as: Some(64512),
};
const WAIT: Duration = Duration::from_secs(15);

/// A scripted BGP peer: AS 64500, identifier 198.51.100.2 (via loopback).
struct FakePeer {
    stream: TcpStream,
    buf: BytesMut,
}

impl FakePeer {
    async fn accept(listener: &TcpListener) -> FakePeer {
        let (stream, _) = timeout(WAIT, listener.accept())
            .await
            .expect("speaker dials")
            .unwrap();
        FakePeer {
            stream,
            buf: BytesMut::new(),
        }
    }

    async fn recv(&mut self) -> Option<Message> {
        loop {
            if let Some(frame) = wire::frame(&mut self.buf).expect("speaker sends valid framing") {
                return Some(Message::decode(&frame, &CX).expect("speaker sends valid messages"));
            }
            let n = timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("speaker answers")
                .ok()?;
            if n == 0 {
                return None;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// OPEN exchange up to Established.
    async fn establish(&mut self, hold: u16) {
        let Some(Message::Open(_)) = self.recv().await else {
            panic!("expected OPEN")
        };
        let mut cfg = FsmConfig::new(64500, 64512, Ipv4Addr::new(198, 51, 100, 2));
        cfg.hold_time = hold;
        self.send(&Message::Open(cfg.open()).encode(&CX)).await;
        self.send(&wire::keepalive()).await;
        assert_eq!(self.recv().await, Some(Message::Keepalive));
    }

    /// Reads until a NOTIFICATION (skipping UPDATEs and KEEPALIVEs) and then expects the close.
    async fn notification(&mut self) -> Notification {
        loop {
            match self.recv().await {
                Some(Message::Notification(n)) => {
                    assert_eq!(
                        self.recv().await,
                        None,
                        "connection closes after NOTIFICATION"
                    );
                    return n;
                }
                Some(_) => continue,
                None => panic!("closed without NOTIFICATION"),
            }
        }
    }
}

fn session(port: u16, hold: u16) -> SessionConfig {
    let mut fsm = FsmConfig::new(64512, 64500, Ipv4Addr::new(198, 51, 100, 1));
    fsm.hold_time = hold;
    fsm.connect_retry = Duration::from_secs(2);
    fsm.idle_hold = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(1),
    };
    let mut cfg = SessionConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), fsm);
    cfg.peer_port = port;
    cfg.ipv6_next_hop = Some("2001:db8:1::1".parse().unwrap());
    cfg
}

async fn wait_for(
    status: &mut watch::Receiver<PeerStatus>,
    what: &str,
    f: impl Fn(&PeerStatus) -> bool,
) -> PeerStatus {
    let s = timeout(WAIT, status.wait_for(|s| f(s)))
        .await
        .unwrap_or_else(|_| panic!("waiting for {what}"));
    s.unwrap().clone()
}

fn routes(n: u32) -> Arc<Routes> {
    let attrs = Arc::new(RouteAttributes::default());
    Arc::new(
        (0..n)
            .map(|i| {
                (
                    ipnetwork::IpNetwork::new(IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + i)), 32)
                        .unwrap(),
                    attrs.clone(),
                )
            })
            .collect(),
    )
}

#[tokio::test]
async fn garbage_gets_the_right_notification_and_spares_other_sessions() {
    let good_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let good = SessionHandle::spawn_with_routes(
        session(good_listener.local_addr().unwrap().port(), 30),
        routes(3),
    );
    let mut good_peer = FakePeer::accept(&good_listener).await;
    good_peer.establish(30).await;
    let mut good_status = good.status();
    wait_for(
        &mut good_status,
        "good session up",
        PeerStatus::is_established,
    )
    .await;

    let bad_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bad = SessionHandle::spawn(session(bad_listener.local_addr().unwrap().port(), 30));
    let mut bad_status = bad.status();

    let mut keepalive_bad_marker = wire::keepalive().to_vec();
    keepalive_bad_marker[0] = 0;
    let mut update_too_long = vec![0xff; 16];
    update_too_long.extend_from_slice(&[0x20, 0x00, 2]);
    let cases: Vec<(Vec<u8>, (u8, u8))> = vec![
        (keepalive_bad_marker, (1, 1)),
        (update_too_long, (1, 2)),
        ([&[0xff; 16][..], &[0, 19, 9]].concat(), (1, 3)),
        // An UPDATE with an unrecognised well-known attribute.
        (
            [&[0xff; 16][..], &[0, 27, 2, 0, 0, 0, 4, 0x40, 99, 1, 0]].concat(),
            (3, 2),
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), (1, 1)),
    ];
    for (garbage, (code, subcode)) in cases {
        let mut peer = FakePeer::accept(&bad_listener).await;
        peer.establish(30).await;
        peer.send(&garbage).await;
        let n = peer.notification().await;
        assert_eq!((n.code, n.subcode), (code, subcode), "for {garbage:02x?}");
        let s = wait_for(&mut bad_status, "error recorded", |s| {
            s.last_notification_sent.is_some() && !s.is_established()
        })
        .await;
        let sent = s.last_notification_sent.unwrap();
        assert_eq!((sent.code, sent.subcode), (code, subcode));
        assert!(s.last_error.unwrap().contains(&sent.name));
    }
    // The good session never noticed.
    let s = good.status().borrow().clone();
    assert!(s.is_established());
    assert_eq!(s.flaps, 0);
    assert_eq!(s.prefixes_advertised_ipv4, 3);
    good.shutdown(None).await;
    bad.shutdown(None).await;
}

#[tokio::test]
async fn a_malformed_attribute_is_treat_as_withdraw_and_the_session_stays_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s = SessionHandle::spawn(session(listener.local_addr().unwrap().port(), 30));
    let mut peer = FakePeer::accept(&listener).await;
    peer.establish(30).await;
    // ORIGIN with value 7, AS_PATH [64500], NEXT_HOP, NLRI 203.0.113.1/32.
    let body = [
        0, 0, 0, 20, 0x40, 1, 1, 7, 0x40, 2, 6, 2, 1, 0, 0, 0xfb, 0xf4, 0x40, 3, 4, 198, 51, 100,
        2, 32, 203, 0, 113, 1,
    ];
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(2);
    m.extend_from_slice(&body);
    peer.send(&m).await;
    let mut status = s.status();
    let st = wait_for(&mut status, "update counted", |s| {
        s.received.treated_as_withdraw == 1
    })
    .await;
    assert!(st.is_established());
    assert_eq!(st.received.prefixes, 0);
    s.shutdown(None).await;
}

#[tokio::test]
async fn a_silent_peer_trips_the_hold_timer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s = SessionHandle::spawn(session(listener.local_addr().unwrap().port(), 3));
    let mut peer = FakePeer::accept(&listener).await;
    peer.establish(3).await;
    // Say nothing more: the speaker must give up within the negotiated 3 s.
    let n = peer.notification().await;
    assert_eq!((n.code, n.subcode), (4, 0));
    let mut status = s.status();
    let st = wait_for(&mut status, "flap recorded", |s| s.flaps == 1).await;
    assert_eq!(
        st.last_notification_sent.unwrap().name,
        "Hold Timer Expired"
    );
    // And it comes back by itself.
    let mut again = FakePeer::accept(&listener).await;
    again.establish(30).await;
    wait_for(&mut status, "re-established", PeerStatus::is_established).await;
    s.shutdown(None).await;
}

#[tokio::test]
async fn route_refresh_resends_the_table_and_shutdown_sends_cease_with_text() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s = SessionHandle::spawn_with_routes(
        session(listener.local_addr().unwrap().port(), 30),
        routes(900),
    );
    let mut peer = FakePeer::accept(&listener).await;
    peer.establish(30).await;
    let count = |m: &Message| match m {
        Message::Update(u) => u.announced_count(),
        _ => 0,
    };
    let mut initial = 0;
    while initial < 900 {
        initial += count(&peer.recv().await.unwrap());
    }
    let Some(Message::Update(eor)) = peer.recv().await else {
        panic!()
    };
    assert!(eor.end_of_rib().is_some());
    peer.send(
        &Message::RouteRefresh(RouteRefresh {
            afi: wire::Afi::IPV4,
            subtype: 0,
            safi: wire::Safi::UNICAST,
        })
        .encode(&CX),
    )
    .await;
    let mut again = 0;
    while again < 900 {
        again += count(&peer.recv().await.unwrap());
    }
    assert_eq!(again, 900);
    // Withdraw 500 by stating the smaller table.
    s.set_routes(routes(400));
    let mut withdrawn = 0;
    while withdrawn < 500 {
        if let Some(Message::Update(u)) = peer.recv().await {
            withdrawn += u.withdrawn_count();
        }
    }
    assert_eq!(withdrawn, 500);
    let shutdown = tokio::spawn(async move { s.shutdown(Some("ferrolb test over")).await });
    let n = peer.notification().await;
    assert_eq!(
        n.shutdown_communication().as_deref(),
        Some("ferrolb test over")
    );
    shutdown.await.unwrap();
}

#[tokio::test]
async fn a_wrong_peer_as_is_refused_and_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = session(listener.local_addr().unwrap().port(), 30);
    cfg.fsm.peer_asn = 65001;
    let s = SessionHandle::spawn(cfg);
    let mut peer = FakePeer::accept(&listener).await;
    let Some(Message::Open(_)) = peer.recv().await else {
        panic!()
    };
    peer.send(
        &Message::Open(FsmConfig::new(64500, 64512, Ipv4Addr::new(198, 51, 100, 2)).open())
            .encode(&CX),
    )
    .await;
    let n = peer.notification().await;
    assert_eq!((n.code, n.subcode), (2, 2));
    let mut status = s.status();
    let st = wait_for(&mut status, "error", |s| s.last_error.is_some()).await;
    assert!(st.last_error.unwrap().contains("64500"));
    s.shutdown(None).await;
}
