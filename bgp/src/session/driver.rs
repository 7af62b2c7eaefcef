//! The per-peer task: turns socket reads, timer expiries and caller commands into FSM events, and the
//! FSM's actions into socket writes, timers and Adj-RIB-Out updates.
//!
//! Each connection has a reader task (framing only, so a slow decoder never stalls TCP) and a writer task
//! (so a peer that stops reading never blocks this loop: the hold timer still fires).

use super::socket;
use super::status::{NegotiatedSummary, NotificationRecord, PeerStatus};
use super::{Command, SessionConfig, CLOSE_LINGER};
use crate::fsm::{Action, ConnId, Event, Fsm, State, Stop, Timer};
use crate::rib_out::{AdjRibOut, PeerContext, Routes};
use crate::wire::notification::cease;
use crate::wire::{self, Family, Message, MessageType, Notification, HEADER_LEN};
use bytes::{Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Batches of encoded messages waiting for one connection's writer. A peer that leaves this many
/// batches unread is treated as gone.
const WRITE_QUEUE: usize = 1024;
/// Frames in flight from the readers to this loop.
const READ_QUEUE: usize = 256;

enum ConnEvent {
    Frame(ConnId, Bytes),
    HeaderError(ConnId, Notification),
    Closed(ConnId, String),
}

struct ConnIo {
    tx: mpsc::Sender<Vec<Bytes>>,
    writer: JoinHandle<()>,
    local: SocketAddr,
}

pub(super) struct Driver {
    cfg: SessionConfig,
    fsm: Fsm,
    rib: AdjRibOut,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Receiver<TcpStream>,
    routes: watch::Receiver<Arc<Routes>>,
    routes_open: bool,
    status: watch::Sender<PeerStatus>,
    conns: HashMap<ConnId, ConnIo>,
    next_id: ConnId,
    connecting: Option<JoinHandle<io::Result<TcpStream>>>,
    timers: HashMap<Timer, Instant>,
    events_tx: mpsc::Sender<ConnEvent>,
    events_rx: mpsc::Receiver<ConnEvent>,
    closing: Vec<JoinHandle<()>>,
    peer_ctx: Option<PeerContext>,
    sent: super::MessageCounters,
    received: super::MessageCounters,
    connect_attempts: u64,
    established_at: Option<u64>,
    local_address: Option<SocketAddr>,
    eor_received: Vec<Family>,
    last_state: State,
}

impl Driver {
    pub(super) fn new(
        cfg: SessionConfig,
        commands: mpsc::Receiver<Command>,
        inbound: mpsc::Receiver<TcpStream>,
        routes: watch::Receiver<Arc<Routes>>,
        status: watch::Sender<PeerStatus>,
    ) -> Driver {
        let (events_tx, events_rx) = mpsc::channel(READ_QUEUE);
        Driver {
            fsm: Fsm::new(cfg.fsm.clone()),
            cfg,
            rib: AdjRibOut::new(),
            commands,
            inbound,
            routes,
            routes_open: true,
            status,
            conns: HashMap::new(),
            next_id: 1,
            connecting: None,
            timers: HashMap::new(),
            events_tx,
            events_rx,
            closing: Vec::new(),
            peer_ctx: None,
            sent: Default::default(),
            received: Default::default(),
            connect_attempts: 0,
            established_at: None,
            local_address: None,
            eor_received: Vec::new(),
            last_state: State::Idle,
        }
    }

    pub(super) async fn run(mut self) {
        self.feed(Event::Start);
        loop {
            self.publish();
            let deadline = self.timers.values().min().copied();
            let established = self.fsm.established().is_some();
            tokio::select! {
                cmd = self.commands.recv() => {
                    let (stop, done) = match cmd {
                        Some(Command::Stop(stop, done)) => (stop, Some(done)),
                        // Every handle is gone: close politely.
                        None => (Stop::Cease { subcode: cease::ADMINISTRATIVE_SHUTDOWN, text: None }, None),
                    };
                    self.feed(Event::Stop(stop));
                    self.publish();
                    for closing in self.closing.drain(..) {
                        let _ = closing.await;
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
                Some(stream) = self.inbound.recv() => self.accept(stream),
                Some(ev) = self.events_rx.recv() => self.conn_event(ev),
                res = wait_connect(&mut self.connecting) => {
                    self.connecting = None;
                    match res {
                        Ok(stream) => match self.register(stream) {
                            Ok(id) => self.feed(Event::TcpConnected(id)),
                            Err(e) => self.feed(Event::TcpConnectFailed(format!("connection unusable: {e}"))),
                        },
                        Err(e) => self.feed(Event::TcpConnectFailed(format!("connect to {}:{} failed: {e}", self.cfg.peer_address, self.cfg.peer_port))),
                    }
                }
                changed = self.routes.changed(), if established && self.routes_open => {
                    match changed {
                        Ok(()) => self.sync_routes(),
                        Err(_) => self.routes_open = false,
                    }
                }
                _ = sleep_until(deadline) => self.fire_timers(),
            }
        }
    }

    fn feed(&mut self, first: Event) {
        let mut queue = VecDeque::from([first]);
        while let Some(ev) = queue.pop_front() {
            for action in self.fsm.handle(ev) {
                self.act(action, &mut queue);
            }
        }
        let state = self.fsm.state();
        if state != self.last_state {
            tracing::info!(
                from = self.last_state.name(),
                to = state.name(),
                "BGP state change"
            );
            self.last_state = state;
        }
    }

    fn act(&mut self, action: Action, queue: &mut VecDeque<Event>) {
        match action {
            Action::Connect => {
                self.connect_attempts += 1;
                let cfg = self.cfg.clone();
                self.connecting = Some(tokio::spawn(async move { socket::connect(&cfg).await }));
            }
            Action::AbortConnect => {
                if let Some(h) = self.connecting.take() {
                    h.abort();
                }
            }
            Action::Send(id, msg) => {
                if let Message::Notification(n) = &msg {
                    tracing::warn!(notification = %n, "sending NOTIFICATION");
                }
                let cx = self.fsm.decode_context(id);
                let bytes = msg.encode(&cx);
                self.send(id, vec![bytes], queue);
            }
            Action::Close(id) => {
                if let Some(conn) = self.conns.remove(&id) {
                    // Dropping the sender lets the writer flush, half-close and drain; the watchdog bounds it.
                    drop(conn.tx);
                    let mut writer = conn.writer;
                    self.closing.push(tokio::spawn(async move {
                        if tokio::time::timeout(CLOSE_LINGER * 2, &mut writer)
                            .await
                            .is_err()
                        {
                            writer.abort();
                        }
                    }));
                    self.closing.retain(|h| !h.is_finished());
                }
            }
            Action::StartTimer(t, after) => {
                self.timers.insert(t, Instant::now() + after);
            }
            Action::StopTimer(t) => {
                self.timers.remove(&t);
            }
            Action::Established(id, neg) => {
                let local = self.conns.get(&id).map(|c| c.local);
                self.local_address = local;
                self.established_at = Some(unix_now());
                self.eor_received.clear();
                let ctx = self.peer_context(local, &neg);
                tracing::info!(remote_id = %neg.remote_id, hold = neg.hold_time, families = ?neg.families, "session established");
                let desired = self.routes.borrow_and_update().clone();
                let msgs = self.rib.initial(&desired, &ctx);
                self.peer_ctx = Some(ctx);
                self.send(id, msgs, queue);
            }
            Action::SessionDown(reason) => {
                tracing::warn!(%reason, "session down");
                self.rib.reset();
                self.peer_ctx = None;
                self.established_at = None;
            }
            Action::ResendFamily(family) => {
                if let (Some((id, _)), Some(ctx)) = (self.fsm.established(), &self.peer_ctx) {
                    tracing::info!(%family, "route refresh requested");
                    let msgs = self.rib.resend(family, ctx);
                    self.send(id, msgs, queue);
                }
            }
        }
    }

    fn send(&mut self, id: ConnId, msgs: Vec<Bytes>, queue: &mut VecDeque<Event>) {
        if msgs.is_empty() {
            return;
        }
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        for m in &msgs {
            if let Some(t) = MessageType::from_u8(m[HEADER_LEN - 1]) {
                self.sent.count(t);
            }
        }
        if conn.tx.try_send(msgs).is_err() {
            queue.push_back(Event::TcpClosed(
                id,
                "peer is not reading: send queue full".to_owned(),
            ));
        }
    }

    fn sync_routes(&mut self) {
        let (Some((id, _)), Some(ctx)) = (self.fsm.established(), self.peer_ctx.clone()) else {
            return;
        };
        let desired = self.routes.borrow_and_update().clone();
        let msgs = self.rib.sync(&desired, &ctx);
        let mut queue = VecDeque::new();
        self.send(id, msgs, &mut queue);
        while let Some(ev) = queue.pop_front() {
            self.feed(ev);
        }
    }

    fn peer_context(&self, local: Option<SocketAddr>, neg: &crate::fsm::Negotiated) -> PeerContext {
        let local_ip = local.map(|a| match a.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        });
        PeerContext {
            local_asn: self.cfg.fsm.local_asn,
            ibgp: neg.ibgp,
            four_octet_as: neg.four_octet_as,
            families: neg.families.clone(),
            ipv4_next_hop: self.cfg.ipv4_next_hop.or(match local_ip {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            }),
            ipv6_next_hop: self.cfg.ipv6_next_hop.or(match local_ip {
                Some(IpAddr::V6(a)) => Some(a),
                _ => None,
            }),
            ipv6_link_local_next_hop: self.cfg.ipv6_link_local_next_hop,
        }
    }

    fn accept(&mut self, stream: TcpStream) {
        if let Err(e) = socket::prepare_inbound(&stream, &self.cfg) {
            tracing::warn!(error = %e, "inbound connection unusable");
            return;
        }
        match self.register(stream) {
            Ok(id) => self.feed(Event::TcpAccepted(id)),
            Err(e) => tracing::warn!(error = %e, "inbound connection unusable"),
        }
    }

    /// Starts the reader and writer of a new connection.
    fn register(&mut self, stream: TcpStream) -> io::Result<ConnId> {
        let local = stream.local_addr()?;
        let id = self.next_id;
        self.next_id += 1;
        let (rd, wr) = stream.into_split();
        let reader = tokio::spawn(read_loop(id, rd, self.events_tx.clone()));
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let writer = tokio::spawn(write_loop(id, wr, rx, self.events_tx.clone(), reader));
        self.conns.insert(id, ConnIo { tx, writer, local });
        Ok(id)
    }

    fn conn_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Frame(id, frame) => {
                if !self.conns.contains_key(&id) {
                    return;
                }
                let cx = self.fsm.decode_context(id);
                match Message::decode(&frame, &cx) {
                    Ok(msg) => {
                        self.received.count(msg.message_type());
                        if let Message::Update(u) = &msg {
                            if let Some(err) = &u.treat_as_withdraw {
                                tracing::warn!(error = %err.error, attribute = err.type_code, "malformed attribute: routes treated as withdrawn (RFC 7606)");
                            }
                            if let Some((afi, safi)) = u.end_of_rib() {
                                if let Some(f) = Family::from_afi_safi(afi, safi) {
                                    if !self.eor_received.contains(&f) {
                                        self.eor_received.push(f);
                                    }
                                }
                            }
                        }
                        if let Message::Notification(n) = &msg {
                            tracing::warn!(notification = %n, "received NOTIFICATION");
                        }
                        self.feed(Event::Message(id, msg));
                    }
                    Err(n) => {
                        tracing::warn!(error = %n, "undecodable message from peer");
                        self.feed(Event::DecodeError(id, n));
                    }
                }
            }
            ConnEvent::HeaderError(id, n) => {
                tracing::warn!(error = %n, "bad message header from peer");
                self.feed(Event::DecodeError(id, n));
            }
            ConnEvent::Closed(id, reason) => self.feed(Event::TcpClosed(id, reason)),
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let mut due: Vec<(Instant, Timer)> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, at)| (*at, *t))
            .collect();
        due.sort();
        for (_, t) in due {
            // An earlier expiry in this batch may have re-armed or stopped it.
            if self.timers.get(&t).is_some_and(|at| *at <= now) {
                self.timers.remove(&t);
                self.feed(Event::TimerExpired(t));
            }
        }
    }

    fn publish(&mut self) {
        let fsm = &self.fsm;
        let mut last_error = fsm.last_error.clone();
        if self.cfg.password.is_some() {
            if let Some(e) = &mut last_error {
                if e.starts_with("TCP connection not established") {
                    e.push_str(
                        "; TCP-MD5 is configured, and a key mismatch looks exactly like this: \
                         the peer's kernel silently drops SYNs whose signature does not match",
                    );
                }
            }
        }
        let state = fsm.state();
        let negotiated = fsm.established().map(|(_, n)| NegotiatedSummary::from(n));
        let unsent = PeerStatus::unsent_from(&self.rib.unsent);
        self.status.send_modify(|s| {
            s.fsm_state = state;
            s.state = state.name();
            s.established_at = self.established_at;
            s.local_address = self.local_address;
            s.negotiated = negotiated;
            s.messages_sent = self.sent;
            s.messages_received = self.received;
            s.prefixes_advertised_ipv4 = self.rib.advertised(Family::Ipv4Unicast);
            s.prefixes_advertised_ipv6 = self.rib.advertised(Family::Ipv6Unicast);
            s.unsent = unsent;
            s.received = fsm.received.into();
            s.end_of_rib_sent = state == State::Established;
            s.end_of_rib_received = self.eor_received.iter().map(Family::to_string).collect();
            s.flaps = fsm.flaps;
            s.collisions = fsm.collisions;
            s.connect_attempts = self.connect_attempts;
            s.last_error = last_error;
            s.last_notification_sent = fsm
                .last_notification_sent
                .as_ref()
                .map(NotificationRecord::from);
            s.last_notification_received = fsm
                .last_notification_received
                .as_ref()
                .map(NotificationRecord::from);
        });
    }
}

async fn wait_connect(c: &mut Option<JoinHandle<io::Result<TcpStream>>>) -> io::Result<TcpStream> {
    match c {
        Some(h) => match h.await {
            Ok(res) => res,
            Err(e) => Err(io::Error::other(e)),
        },
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Splits the byte stream into messages. After a header error it keeps reading (and discarding) so that
/// the NOTIFICATION we send is not destroyed by a TCP reset for unread data.
async fn read_loop(id: ConnId, mut rd: OwnedReadHalf, events: mpsc::Sender<ConnEvent>) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        match wire::frame(&mut buf) {
            Ok(Some(frame)) => {
                if events.send(ConnEvent::Frame(id, frame)).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(None) => {}
            Err(n) => {
                let _ = events.send(ConnEvent::HeaderError(id, n)).await;
                let mut sink = [0u8; 4096];
                while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
        }
        let reason = match rd.read_buf(&mut buf).await {
            Ok(0) => "peer closed the connection".to_owned(),
            Ok(_) => continue,
            Err(e) => format!("read failed: {e}"),
        };
        let _ = events.send(ConnEvent::Closed(id, reason)).await;
        return;
    }
}

async fn write_loop(
    id: ConnId,
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Vec<Bytes>>,
    events: mpsc::Sender<ConnEvent>,
    mut reader: JoinHandle<()>,
) {
    while let Some(batch) = rx.recv().await {
        for msg in batch {
            if let Err(e) = wr.write_all(&msg).await {
                let _ = events.try_send(ConnEvent::Closed(id, format!("write failed: {e}")));
                reader.abort();
                return;
            }
        }
    }
    // Closed by the session: everything queued is written. Half-close, then give the peer a moment to
    // read our last message and close its side (RFC 4271 §8: NOTIFICATION then close).
    let _ = wr.shutdown().await;
    if tokio::time::timeout(CLOSE_LINGER, &mut reader)
        .await
        .is_err()
    {
        reader.abort();
    }
}
