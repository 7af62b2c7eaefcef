//! The BGP finite state machine of RFC 4271 §8, sans-IO: [`Fsm::handle`] takes an [`Event`] and returns the
//! [`Action`]s for the driver to carry out (open or close TCP, send, arm timers). No sockets, no clocks, no
//! tokio: every transition is a plain function call that tests drive directly.
//!
//! One `Fsm` is one peer. It may hold two TCP connections at once (one we dialled, one the peer dialled)
//! until connection collision detection (§6.8) keeps one of them.

use crate::wire::notification::{cease, code, fsm as fsm_sub, open as open_sub};
use crate::wire::open::{Capability, GracefulRestart, AS_TRANS, BGP_VERSION};
use crate::wire::{DecodeContext, Family, Message, Notification, Open, RouteRefresh, Update};
use std::net::Ipv4Addr;
use std::time::Duration;

/// RFC 4271 §8: the hold timer in OpenSent is "a large value"; 4 minutes is suggested.
pub const OPEN_SENT_HOLD: Duration = Duration::from_secs(240);

/// Who opens the TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectMode {
    /// We dial the peer and refuse its connections.
    Active,
    /// We only accept the peer's connections.
    Passive,
    /// Both; a collision is resolved by §6.8.
    Both,
}

impl ConnectMode {
    fn dials(self) -> bool {
        self != ConnectMode::Passive
    }
    fn accepts(self) -> bool {
        self != ConnectMode::Active
    }
}

/// Graceful restart as the restarting speaker (RFC 4724).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Seconds the peer keeps our routes while we are away (≤ 4095).
    pub restart_time: u16,
    /// Set the R bit: this session follows a restart of ours.
    pub restarting: bool,
    /// Set the F bit: forwarding (the kernel's and kube-proxy's) survived the restart.
    pub forwarding_preserved: bool,
}

/// Exponential backoff between a failure and the next attempt (the IdleHold timer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsmConfig {
    pub local_asn: u32,
    pub peer_asn: u32,
    pub router_id: Ipv4Addr,
    /// Seconds; 0 (no keepalives, no hold timer) or ≥ 3.
    pub hold_time: u16,
    /// Seconds; default hold time / 3. Never more than the negotiated hold time / 3.
    pub keepalive_time: Option<u16>,
    pub connect_retry: Duration,
    pub mode: ConnectMode,
    pub families: Vec<Family>,
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// Close the session with Cease/Maximum Number of Prefixes Reached above this many received routes.
    pub max_prefixes: Option<u64>,
    pub idle_hold: Backoff,
    /// Seed for timer jitter, so that a test run is reproducible and two peers do not retry in lockstep.
    pub jitter_seed: u64,
}

impl FsmConfig {
    pub fn new(local_asn: u32, peer_asn: u32, router_id: Ipv4Addr) -> Self {
        FsmConfig {
            local_asn,
            peer_asn,
            router_id,
            hold_time: 90,
            keepalive_time: None,
            connect_retry: Duration::from_secs(120),
            mode: ConnectMode::Active,
            families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
            graceful_restart: None,
            max_prefixes: None,
            idle_hold: Backoff::default(),
            jitter_seed: u64::from(u32::from(router_id)) << 32 | u64::from(peer_asn),
        }
    }

    pub fn is_ibgp(&self) -> bool {
        self.local_asn == self.peer_asn
    }

    /// Our OPEN for this peer.
    pub fn open(&self) -> Open {
        let mut capabilities: Vec<Capability> = self
            .families
            .iter()
            .map(|f| {
                let (afi, safi) = f.afi_safi();
                Capability::Multiprotocol { afi, safi }
            })
            .collect();
        capabilities.push(Capability::RouteRefresh);
        capabilities.push(Capability::FourOctetAs(self.local_asn));
        if let Some(gr) = &self.graceful_restart {
            capabilities.push(Capability::GracefulRestart(GracefulRestart {
                restart_state: gr.restarting,
                notification: false,
                restart_time: gr.restart_time.min(4095),
                families: self
                    .families
                    .iter()
                    .map(|f| {
                        let (afi, safi) = f.afi_safi();
                        (afi, safi, gr.forwarding_preserved)
                    })
                    .collect(),
            }));
        }
        Open {
            version: BGP_VERSION,
            my_as: u16::try_from(self.local_asn).unwrap_or(AS_TRANS),
            hold_time: self.hold_time,
            bgp_id: self.router_id,
            capabilities,
        }
    }
}

/// The peer-level state (RFC 4271 §8.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        }
    }
}

/// A TCP connection, numbered by the driver.
pub type ConnId = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Outbound,
    Inbound,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    ConnectRetry,
    IdleHold,
    Hold(ConnId),
    Keepalive(ConnId),
}

/// How the session is being closed on purpose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Send Cease with this subcode (and shutdown communication), then close.
    Cease { subcode: u8, text: Option<String> },
    /// Close without a NOTIFICATION so that a graceful-restart helper keeps our routes (RFC 4724).
    ForRestart,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Start,
    Stop(Stop),
    /// The outbound connection attempt succeeded.
    TcpConnected(ConnId),
    TcpConnectFailed(String),
    /// The peer connected to us.
    TcpAccepted(ConnId),
    /// The connection ended (EOF, reset, write error).
    TcpClosed(ConnId, String),
    TimerExpired(Timer),
    Message(ConnId, Message),
    /// A message failed to decode; the NOTIFICATION to send.
    DecodeError(ConnId, Notification),
}

/// What was agreed in the OPEN exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub hold_time: u16,
    pub keepalive_time: u16,
    pub four_octet_as: bool,
    pub families: Vec<Family>,
    pub route_refresh: bool,
    pub peer_graceful_restart: Option<GracefulRestart>,
    pub remote_id: Ipv4Addr,
    pub remote_asn: u32,
    pub ibgp: bool,
}

impl Negotiated {
    pub fn decode_context(&self) -> DecodeContext {
        DecodeContext {
            four_octet_as: self.four_octet_as,
            ebgp_peer_as: (!self.ibgp).then_some(self.remote_asn),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open an outbound TCP connection; answer with `TcpConnected` or `TcpConnectFailed`.
    Connect,
    /// Abandon the outbound attempt in progress.
    AbortConnect,
    Send(ConnId, Message),
    /// Close after what was queued for sending has been written.
    Close(ConnId),
    StartTimer(Timer, Duration),
    StopTimer(Timer),
    /// The session is up on this connection: send the whole Adj-RIB-Out and End-of-RIB.
    Established(ConnId, Negotiated),
    /// The session left Established: what was sent is forgotten.
    SessionDown(String),
    /// The peer asked for our routes of this family again (RFC 2918).
    ResendFamily(Family),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Clone, Debug)]
struct Conn {
    id: ConnId,
    direction: Direction,
    state: ConnState,
    negotiated: Option<Negotiated>,
}

/// Routes the peer sent, counted but never stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceivedCounts {
    /// NLRI announced since the session came up (including ones treated as withdrawn).
    pub announced: u64,
    pub withdrawn: u64,
    /// UPDATEs whose routes RFC 7606 made us treat as withdrawn.
    pub treated_as_withdraw: u64,
    /// Announced minus withdrawn, never below zero: an upper bound on the routes the peer holds towards
    /// us (a route re-announced with new attributes counts twice). Kept without storing any route.
    pub prefixes: u64,
}

pub struct Fsm {
    config: FsmConfig,
    admin_up: bool,
    /// The state when no connection has got as far as OpenSent.
    pre_open: State,
    connect_pending: bool,
    conns: Vec<Conn>,
    backoff_attempt: u32,
    rng: u64,
    pub received: ReceivedCounts,
    /// Times the session left Established.
    pub flaps: u64,
    /// Collisions resolved by §6.8.
    pub collisions: u64,
    pub last_error: Option<String>,
    pub last_notification_sent: Option<Notification>,
    pub last_notification_received: Option<Notification>,
}

impl Fsm {
    pub fn new(config: FsmConfig) -> Self {
        let rng = config.jitter_seed | 1;
        Fsm {
            config,
            admin_up: false,
            pre_open: State::Idle,
            connect_pending: false,
            conns: Vec::new(),
            backoff_attempt: 0,
            rng,
            received: ReceivedCounts::default(),
            flaps: 0,
            collisions: 0,
            last_error: None,
            last_notification_sent: None,
            last_notification_received: None,
        }
    }

    pub fn config(&self) -> &FsmConfig {
        &self.config
    }

    pub fn state(&self) -> State {
        let best = self.conns.iter().map(|c| c.state).max_by_key(|s| *s as u8);
        match best {
            Some(ConnState::Established) => State::Established,
            Some(ConnState::OpenConfirm) => State::OpenConfirm,
            Some(ConnState::OpenSent) => State::OpenSent,
            None => self.pre_open,
        }
    }

    /// The negotiated parameters of the established connection, if any.
    pub fn established(&self) -> Option<(ConnId, &Negotiated)> {
        self.conns
            .iter()
            .find(|c| c.state == ConnState::Established)
            .and_then(|c| Some((c.id, c.negotiated.as_ref()?)))
    }

    /// How to decode messages arriving on a connection (4-octet AS, external peer AS).
    pub fn decode_context(&self, conn: ConnId) -> DecodeContext {
        self.conns
            .iter()
            .find(|c| c.id == conn)
            .and_then(|c| c.negotiated.as_ref())
            .map(Negotiated::decode_context)
            .unwrap_or(DecodeContext {
                four_octet_as: false,
                ebgp_peer_as: (!self.config.is_ibgp()).then_some(self.config.peer_asn),
            })
    }

    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Start => self.start(&mut out),
            Event::Stop(stop) => self.stop(stop, &mut out),
            Event::TcpConnected(id) => {
                self.connect_pending = false;
                out.push(Action::StopTimer(Timer::ConnectRetry));
                if self.admin_up {
                    self.open_connection(id, Direction::Outbound, &mut out);
                } else {
                    out.push(Action::Close(id));
                }
            }
            Event::TcpConnectFailed(reason) => {
                if self.connect_pending {
                    self.connect_pending = false;
                    out.push(Action::StopTimer(Timer::ConnectRetry));
                    self.last_error = Some(reason.clone());
                    if self.conns.is_empty() {
                        self.enter_idle(&mut out);
                    } else {
                        self.pre_open = State::Active;
                    }
                }
            }
            Event::TcpAccepted(id) => {
                let idle = self.pre_open == State::Idle && self.conns.is_empty();
                // A peer dials one connection at a time: a new one from it while its previous one still
                // has not sent an OPEN means it gave that one up (reset it, or restarted), so the new one
                // takes its place instead of being turned away behind a connection that is going nowhere.
                let stale = self
                    .conns
                    .iter()
                    .find(|c| c.direction == Direction::Inbound && c.negotiated.is_none())
                    .map(|c| c.id);
                if !self.admin_up || idle || !self.config.mode.accepts() {
                    out.push(Action::Close(id));
                } else if let Some(stale) = stale {
                    self.open_connection(id, Direction::Inbound, &mut out);
                    let reason = "replaced by a newer connection from the peer".to_string();
                    self.drop_conn(stale, reason, &mut out);
                } else if self.conns.len() >= 2 {
                    out.push(Action::Close(id));
                } else {
                    self.open_connection(id, Direction::Inbound, &mut out);
                }
            }
            Event::TcpClosed(id, reason) => {
                if self.conns.iter().any(|c| c.id == id) {
                    self.last_error = Some(reason.clone());
                    self.drop_conn(id, reason, &mut out);
                }
            }
            Event::TimerExpired(timer) => self.timer(timer, &mut out),
            Event::Message(id, msg) => {
                if self.conns.iter().any(|c| c.id == id) {
                    self.message(id, msg, &mut out);
                }
            }
            Event::DecodeError(id, n) => {
                if self.conns.iter().any(|c| c.id == id) {
                    self.conn_error(id, n, &mut out);
                }
            }
        }
        out
    }

    fn start(&mut self, out: &mut Vec<Action>) {
        if self.admin_up {
            return;
        }
        self.admin_up = true;
        self.backoff_attempt = 0;
        self.go_active(out);
    }

    /// Leave Idle: dial the peer, or wait for it to dial us.
    fn go_active(&mut self, out: &mut Vec<Action>) {
        if self.config.mode.dials() {
            self.dial(out);
        } else {
            self.pre_open = State::Active;
        }
    }

    fn dial(&mut self, out: &mut Vec<Action>) {
        self.pre_open = State::Connect;
        self.connect_pending = true;
        out.push(Action::Connect);
        let retry = self.jitter(self.config.connect_retry);
        out.push(Action::StartTimer(Timer::ConnectRetry, retry));
    }

    fn stop(&mut self, stop: Stop, out: &mut Vec<Action>) {
        if !self.admin_up && self.conns.is_empty() {
            return;
        }
        self.admin_up = false;
        if std::mem::take(&mut self.connect_pending) {
            out.push(Action::AbortConnect);
        }
        out.push(Action::StopTimer(Timer::ConnectRetry));
        out.push(Action::StopTimer(Timer::IdleHold));
        let was_established = self.state() == State::Established;
        for conn in std::mem::take(&mut self.conns) {
            if let Stop::Cease { subcode, text } = &stop {
                let n = Notification::cease(*subcode, text.as_deref());
                self.last_notification_sent = Some(n.clone());
                out.push(Action::Send(conn.id, Message::Notification(n)));
            }
            out.push(Action::Close(conn.id));
            out.push(Action::StopTimer(Timer::Hold(conn.id)));
            out.push(Action::StopTimer(Timer::Keepalive(conn.id)));
        }
        self.pre_open = State::Idle;
        if was_established {
            self.flaps += 1;
            let why = match stop {
                Stop::Cease { .. } => "administrative stop",
                Stop::ForRestart => "stopped for graceful restart",
            };
            out.push(Action::SessionDown(why.to_owned()));
        }
    }

    fn open_connection(&mut self, id: ConnId, direction: Direction, out: &mut Vec<Action>) {
        self.conns.push(Conn {
            id,
            direction,
            state: ConnState::OpenSent,
            negotiated: None,
        });
        out.push(Action::Send(id, Message::Open(self.config.open())));
        out.push(Action::StartTimer(Timer::Hold(id), OPEN_SENT_HOLD));
    }

    fn timer(&mut self, timer: Timer, out: &mut Vec<Action>) {
        match timer {
            Timer::IdleHold => {
                if self.admin_up && self.pre_open == State::Idle && self.conns.is_empty() {
                    self.go_active(out);
                }
            }
            Timer::ConnectRetry => {
                if !self.admin_up {
                    return;
                }
                if self.connect_pending {
                    // RFC 4271 §8.2.2 Connect state, event 9, with damping: a peer that does not answer
                    // (silent link, TCP-MD5 mismatch) is retried after the same growing back-off as any
                    // other failure instead of every ConnectRetry interval.
                    self.last_error = Some(format!(
                        "TCP connection not established within {:?}",
                        self.config.connect_retry
                    ));
                    out.push(Action::AbortConnect);
                    self.connect_pending = false;
                    if self.conns.is_empty() {
                        self.enter_idle(out);
                    } else {
                        self.pre_open = State::Active;
                    }
                } else if self.pre_open == State::Active && self.config.mode.dials() {
                    self.dial(out);
                }
            }
            Timer::Hold(id) => {
                if self.conns.iter().any(|c| c.id == id) {
                    let n = Notification::new(code::HOLD_TIMER_EXPIRED, 0);
                    self.conn_error(id, n, out);
                }
            }
            Timer::Keepalive(id) => {
                let Some(conn) = self.conns.iter().find(|c| c.id == id) else {
                    return;
                };
                let Some(neg) = &conn.negotiated else { return };
                if neg.keepalive_time > 0 {
                    out.push(Action::Send(id, Message::Keepalive));
                    let every = Duration::from_secs(neg.keepalive_time.into());
                    let every = self.jitter(every);
                    out.push(Action::StartTimer(Timer::Keepalive(id), every));
                }
            }
        }
    }

    fn message(&mut self, id: ConnId, msg: Message, out: &mut Vec<Action>) {
        let state = self.conn(id).state;
        let unexpected = |state| {
            let subcode = match state {
                ConnState::OpenSent => fsm_sub::UNEXPECTED_IN_OPENSENT,
                ConnState::OpenConfirm => fsm_sub::UNEXPECTED_IN_OPENCONFIRM,
                ConnState::Established => fsm_sub::UNEXPECTED_IN_ESTABLISHED,
            };
            Notification::new(code::FSM, subcode)
        };
        match (state, msg) {
            (_, Message::Notification(n)) => {
                let reason = format!("peer sent NOTIFICATION {n}");
                self.last_error = Some(reason.clone());
                self.last_notification_received = Some(n);
                self.drop_conn(id, reason, out);
            }
            (ConnState::OpenSent, Message::Open(open)) => self.open_received(id, open, out),
            (ConnState::OpenConfirm, Message::Keepalive) => self.establish(id, out),
            (ConnState::Established, Message::Keepalive) => self.restart_hold(id, out),
            (ConnState::Established, Message::Update(update)) => {
                self.restart_hold(id, out);
                self.count_received(&update);
                if let Some(limit) = self.config.max_prefixes {
                    if self.received.prefixes > limit {
                        // RFC 4486 §4: AFI, SAFI and the upper bound as data.
                        let mut data = vec![0, 1, 1];
                        data.extend_from_slice(&(limit.min(u32::MAX as u64) as u32).to_be_bytes());
                        let n =
                            Notification::with_data(code::CEASE, cease::MAX_PREFIXES_REACHED, data);
                        self.conn_error(id, n, out);
                    }
                }
            }
            (ConnState::Established, Message::RouteRefresh(rr)) => {
                self.restart_hold(id, out);
                self.route_refresh(id, rr, out);
            }
            (state, _) => self.conn_error(id, unexpected(state), out),
        }
    }

    fn count_received(&mut self, update: &Update) {
        let announced = update.announced_count() as u64;
        let withdrawn = update.withdrawn_count() as u64;
        let r = &mut self.received;
        r.announced += announced;
        r.withdrawn += withdrawn;
        r.prefixes = r.prefixes.saturating_sub(withdrawn);
        if update.treat_as_withdraw.is_some() {
            r.treated_as_withdraw += 1;
            r.withdrawn += announced;
            r.prefixes = r.prefixes.saturating_sub(announced);
        } else {
            r.prefixes += announced;
        }
    }

    fn route_refresh(&mut self, id: ConnId, rr: RouteRefresh, out: &mut Vec<Action>) {
        let Some(neg) = &self.conn(id).negotiated else {
            return;
        };
        // RFC 2918 §4: a request for a family that was not negotiated is ignored. Subtypes 1 and 2
        // (BoRR/EoRR, RFC 7313) are markers, not requests.
        match Family::from_afi_safi(rr.afi, rr.safi) {
            Some(f) if rr.subtype == 0 && neg.families.contains(&f) => {
                out.push(Action::ResendFamily(f))
            }
            _ => {}
        }
    }

    fn open_received(&mut self, id: ConnId, open: Open, out: &mut Vec<Action>) {
        let cfg = &self.config;
        let peer_asn = open.asn();
        if peer_asn != cfg.peer_asn {
            let n = Notification::with_data(
                code::OPEN,
                open_sub::BAD_PEER_AS,
                open.my_as.to_be_bytes().to_vec(),
            );
            self.last_error = Some(format!(
                "peer announced AS {peer_asn}, configured peer AS is {}",
                cfg.peer_asn
            ));
            return self.conn_error(id, n, out);
        }
        if cfg.is_ibgp() && open.bgp_id == cfg.router_id {
            let n = Notification::with_data(
                code::OPEN,
                open_sub::BAD_BGP_IDENTIFIER,
                open.bgp_id.octets().to_vec(),
            );
            self.last_error = Some(format!(
                "internal peer uses our own router ID {}",
                open.bgp_id
            ));
            return self.conn_error(id, n, out);
        }

        // §6.8: a second connection to the same peer. Keep the Established one; otherwise keep the
        // connection opened by the side with the higher identifier. Connections still in OpenSent are
        // examined too (§6.8 allows it once the peer's identifier is known, and this OPEN tells it): both
        // sides then decide by the same rule before either is Established, instead of racing to it.
        let this_dir = self.conn(id).direction;
        let other = self
            .conns
            .iter()
            .find(|c| c.id != id)
            .map(|c| (c.id, c.state, c.direction));
        if let Some((other_id, other_state, other_dir)) = other {
            let local = (u32::from(cfg.router_id), cfg.local_asn);
            let remote = (u32::from(open.bgp_id), peer_asn);
            let keep_outbound = local > remote;
            let loser = if other_state == ConnState::Established
                || (other_dir != this_dir && (this_dir == Direction::Outbound) != keep_outbound)
            {
                id
            } else {
                other_id
            };
            self.collisions += 1;
            let n = Notification::new(code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION);
            self.conn_error(loser, n, out);
            if loser == id {
                return;
            }
        }

        let neg = self.negotiate(&open);
        out.push(Action::Send(id, Message::Keepalive));
        if neg.hold_time > 0 {
            let hold = Duration::from_secs(neg.hold_time.into());
            out.push(Action::StartTimer(Timer::Hold(id), hold));
            let ka = self.jitter(Duration::from_secs(neg.keepalive_time.into()));
            out.push(Action::StartTimer(Timer::Keepalive(id), ka));
        } else {
            out.push(Action::StopTimer(Timer::Hold(id)));
        }
        let conn = self.conn_mut(id);
        conn.state = ConnState::OpenConfirm;
        conn.negotiated = Some(neg);
    }

    fn negotiate(&self, open: &Open) -> Negotiated {
        let cfg = &self.config;
        let hold_time = cfg.hold_time.min(open.hold_time);
        let keepalive_time = if hold_time == 0 {
            0
        } else {
            let default = hold_time / 3;
            cfg.keepalive_time
                .map_or(default, |k| k.min(default))
                .max(1)
        };
        let theirs = open.families();
        let families = cfg
            .families
            .iter()
            .copied()
            .filter(|f| theirs.contains(&f.afi_safi()))
            .collect();
        Negotiated {
            hold_time,
            keepalive_time,
            four_octet_as: open.supports_four_octet_as(),
            families,
            route_refresh: open.supports_route_refresh(),
            peer_graceful_restart: open.graceful_restart().cloned(),
            remote_id: open.bgp_id,
            remote_asn: open.asn(),
            ibgp: cfg.is_ibgp(),
        }
    }

    fn establish(&mut self, id: ConnId, out: &mut Vec<Action>) {
        // Any other connection to this peer loses the collision now (§6.8).
        let others: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| c.id != id)
            .map(|c| c.id)
            .collect();
        for other in others {
            let n = Notification::new(code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION);
            self.collisions += 1;
            self.conn_error(other, n, out);
        }
        if std::mem::take(&mut self.connect_pending) {
            out.push(Action::AbortConnect);
        }
        out.push(Action::StopTimer(Timer::ConnectRetry));
        let conn = self.conn_mut(id);
        conn.state = ConnState::Established;
        let neg = conn
            .negotiated
            .clone()
            .expect("OpenConfirm has negotiated parameters");
        self.backoff_attempt = 0;
        self.received = ReceivedCounts::default();
        self.last_error = None;
        self.restart_hold(id, out);
        out.push(Action::Established(id, neg));
    }

    fn restart_hold(&mut self, id: ConnId, out: &mut Vec<Action>) {
        if let Some(neg) = &self.conn(id).negotiated {
            if neg.hold_time > 0 {
                let hold = Duration::from_secs(neg.hold_time.into());
                out.push(Action::StartTimer(Timer::Hold(id), hold));
            }
        }
    }

    /// Close one connection with a NOTIFICATION.
    fn conn_error(&mut self, id: ConnId, n: Notification, out: &mut Vec<Action>) {
        let reason = format!("sent NOTIFICATION {n}");
        if n.code != code::CEASE || n.subcode != cease::CONNECTION_COLLISION_RESOLUTION {
            self.last_error = Some(match self.last_error.take() {
                Some(detail) if n.code == code::OPEN => format!("{reason}: {detail}"),
                _ => reason.clone(),
            });
        }
        self.last_notification_sent = Some(n.clone());
        out.push(Action::Send(id, Message::Notification(n)));
        self.drop_conn(id, reason, out);
    }

    /// Forget one connection; with none left, fall back to Idle and back off.
    fn drop_conn(&mut self, id: ConnId, reason: String, out: &mut Vec<Action>) {
        let Some(pos) = self.conns.iter().position(|c| c.id == id) else {
            return;
        };
        let conn = self.conns.remove(pos);
        out.push(Action::Close(id));
        out.push(Action::StopTimer(Timer::Hold(id)));
        out.push(Action::StopTimer(Timer::Keepalive(id)));
        if conn.state == ConnState::Established {
            self.flaps += 1;
            out.push(Action::SessionDown(reason.clone()));
        }
        if self.conns.is_empty() && !self.connect_pending && self.admin_up {
            self.enter_idle(out);
        }
    }

    fn enter_idle(&mut self, out: &mut Vec<Action>) {
        self.pre_open = State::Idle;
        out.push(Action::StopTimer(Timer::ConnectRetry));
        let exp = self
            .config
            .idle_hold
            .initial
            .saturating_mul(1u32 << self.backoff_attempt.min(16));
        let delay = self.jitter(exp.min(self.config.idle_hold.max));
        self.backoff_attempt = self.backoff_attempt.saturating_add(1);
        out.push(Action::StartTimer(Timer::IdleHold, delay));
    }

    /// RFC 4271 §10: timers are jittered to 75–100 % of their value.
    fn jitter(&mut self, d: Duration) -> Duration {
        // xorshift64: small, deterministic for a given seed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let fraction = 0.75 + 0.25 * (self.rng % 1_000_000) as f64 / 1_000_000.0;
        d.mul_f64(fraction)
    }

    fn conn(&self, id: ConnId) -> &Conn {
        self.conns
            .iter()
            .find(|c| c.id == id)
            .expect("caller checked the connection exists")
    }

    fn conn_mut(&mut self, id: ConnId) -> &mut Conn {
        self.conns
            .iter_mut()
            .find(|c| c.id == id)
            .expect("caller checked the connection exists")
    }
}
