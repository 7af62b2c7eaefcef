//! Speaker liveness: SWIM membership among the speakers (the `foca` crate) over UDP, every datagram
//! authenticated with a shared secret ([`wire`]). Layer-2 ownership is elected among the live speakers
//! only, so that a dead node's VIPs move to a live one (metallb-semantics.md §5).
//!
//! A member is a node name, the address the others reach it at, and a start stamp (milliseconds since
//! the epoch when the process started, bumped on an automatic rejoin): a restarted speaker at the same
//! address is a newer identity that replaces the old one at once, without waiting for the old one to be
//! declared down. The live set is the names of the members that are alive *or suspected* (a suspect is
//! still given the chance to refute), always including this node.
//!
//! # Timings
//!
//! The defaults ([`MembershipOptions::new`]) are tuned for a LAN and for layer-2 failover in well under
//! two seconds, against MetalLB's memberlist LAN defaults (probe 1 s, suspicion ≥ 4 s: 5–10 s in practice):
//!
//! | knob | default | effect |
//! |---|---|---|
//! | `probe_period` | 300 ms | each member probes one other member per period (round robin) |
//! | `probe_rtt` | 150 ms | no direct ack by then ⇒ 3 other members probe indirectly; any ack within the period clears it |
//! | `suspect_to_down_after` | 700 ms | a suspect that does not refute in this time is down |
//! | `gossip_interval` | 100 ms | pending updates (suspect, down, joins) go to 3 members this often |
//! | `rejoin_interval` | 5 s | announce to every seed that is not a live member (partition heal, restarts) |
//!
//! A SIGKILLed speaker is first probed by some member within about one period (each of the others
//! probes it at least every other period in a 3-node cluster), is suspected one period later and
//! declared down 700 ms after that: about 1.0–1.6 s, and the down gossip reaches the rest within a
//! gossip round or two. The price is traffic (a ping and an ack per member every 300 ms: trivial) and
//! sensitivity: a speaker that cannot answer for a whole period (300 ms, direct or indirect) becomes
//! suspect, but a suspect still counts as live, so nothing moves; only a stall longer than about one
//! second (period + suspicion, minus the time the refutation takes to arrive) gets it declared down. A
//! speaker declared down while alive (long stall, partition) notices and rejoins under a renewed
//! identity by itself. Raise `suspect_to_down_after` on busy or lossy networks.

pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foca::{AccumulatingRuntime, Config, Foca, OwnedNotification, PeriodicParams, PostcardCodec};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use wire::{Opener, Reject, Sealer, OVERHEAD};

/// MetalLB's memberlist port.
pub const DEFAULT_PORT: u16 = 7946;

/// How a [`Membership`] runs.
#[derive(Clone)]
pub struct MembershipOptions {
    /// This member's name (the Node name).
    pub node_name: String,
    /// The UDP address to listen on.
    pub bind: SocketAddr,
    /// The address the others reach this member at (default: `bind`, which must then be a specific IP).
    pub advertise: Option<SocketAddr>,
    /// Members to join (and rejoin every `rejoin_interval` while they are not live members); may
    /// include this member's own address, which is skipped.
    pub seeds: Vec<SocketAddr>,
    /// The shared secret that authenticates every datagram (HMAC-SHA256 key; not empty).
    pub secret: Vec<u8>,
    pub probe_period: Duration,
    pub probe_rtt: Duration,
    pub suspect_to_down_after: Duration,
    pub gossip_interval: Duration,
    pub rejoin_interval: Duration,
    /// How far a sender's clock may be from ours before its datagrams are refused as stale.
    pub max_clock_skew: Duration,
}

impl std::fmt::Debug for MembershipOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MembershipOptions")
            .field("node_name", &self.node_name)
            .field("bind", &self.bind)
            .field("advertise", &self.advertise)
            .field("seeds", &self.seeds)
            .field("secret", &"<redacted>")
            .field("probe_period", &self.probe_period)
            .field("probe_rtt", &self.probe_rtt)
            .field("suspect_to_down_after", &self.suspect_to_down_after)
            .finish_non_exhaustive()
    }
}

impl MembershipOptions {
    /// The options with the default timings (see the module documentation).
    pub fn new(node_name: impl Into<String>, bind: SocketAddr, secret: Vec<u8>) -> Self {
        MembershipOptions {
            node_name: node_name.into(),
            bind,
            advertise: None,
            seeds: Vec::new(),
            secret,
            probe_period: Duration::from_millis(300),
            probe_rtt: Duration::from_millis(150),
            suspect_to_down_after: Duration::from_millis(700),
            gossip_interval: Duration::from_millis(100),
            rejoin_interval: Duration::from_secs(5),
            max_clock_skew: Duration::from_secs(60),
        }
    }

    fn foca_config(&self) -> Config {
        let mut c = Config::simple();
        c.probe_period = self.probe_period;
        c.probe_rtt = self.probe_rtt;
        c.num_indirect_probes = NonZeroUsize::new(3).expect("3");
        // Each update rides on this many messages; generous for small clusters, cheap for any.
        c.max_transmissions = NonZeroU8::new(6).expect("6");
        c.suspect_to_down_after = self.suspect_to_down_after;
        c.remove_down_after = Some(Duration::from_secs(600));
        c.max_packet_size = NonZeroUsize::new(1400 - OVERHEAD).expect("positive");
        // Tell a member we consider down, so it rejoins under a renewed identity.
        c.notify_down_members = true;
        c.periodic_announce = Some(PeriodicParams {
            frequency: Duration::from_secs(10),
            num_members: NonZeroUsize::new(1).expect("1"),
        });
        c.periodic_announce_to_down_members = Some(PeriodicParams {
            frequency: Duration::from_secs(5),
            num_members: NonZeroUsize::new(2).expect("2"),
        });
        c.periodic_gossip = Some(PeriodicParams {
            frequency: self.gossip_interval,
            num_members: NonZeroUsize::new(3).expect("3"),
        });
        c
    }
}

/// A member's identity on the wire.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Id {
    name: String,
    addr: SocketAddr,
    /// Start stamp: a restarted speaker has a newer one and wins the address.
    stamp: u64,
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}#{}", self.name, self.addr, self.stamp)
    }
}

impl foca::Identity for Id {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Id {
            stamp: self.stamp.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.stamp > adversary.stamp
    }
}

/// Datagram counters.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    truncated: AtomicU64,
    bad_magic: AtomicU64,
    bad_tag: AtomicU64,
    stale: AtomicU64,
    replayed: AtomicU64,
    malformed: AtomicU64,
    sent: AtomicU64,
}

/// What the membership has received and sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MembershipStats {
    /// Authentic, fresh datagrams handed to SWIM.
    pub accepted: u64,
    /// Refused: too short, not our magic, or a tag that does not verify (tampered, another secret).
    pub unauthenticated: u64,
    /// Refused: authentic but already received, or from a sender whose clock is too far off.
    pub replayed_or_stale: u64,
    /// Authentic but not a valid SWIM message.
    pub malformed: u64,
    pub sent: u64,
}

/// A running membership (a background task). Dropping it stops the task without a goodbye (the others
/// then declare this member down by probing); [`Membership::leave`] says goodbye first.
pub struct Membership {
    live: watch::Receiver<BTreeSet<String>>,
    seeds: watch::Sender<Vec<SocketAddr>>,
    leave: Option<oneshot::Sender<oneshot::Sender<()>>>,
    counters: Arc<Counters>,
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("local", &self.local)
            .field("live", &*self.live.borrow())
            .finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Reads a memberlist secret file, the same way in every mode: its bytes, without surrounding ASCII
/// whitespace (a trailing newline is usual in mounted Secrets), and never empty.
pub fn read_secret(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let secret = std::fs::read(path)
        .map_err(|e| format!("cannot read the memberlist secret {}: {e}", path.display()))?;
    let secret = secret.trim_ascii().to_vec();
    if secret.is_empty() {
        return Err(format!("the memberlist secret {} is empty", path.display()));
    }
    Ok(secret)
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}

impl Membership {
    /// Binds the socket and starts the protocol, announcing to the seeds at once.
    pub async fn start(options: MembershipOptions) -> std::io::Result<Membership> {
        if options.secret.is_empty() {
            return Err(invalid("the memberlist secret is empty".into()));
        }
        if options.node_name.is_empty() {
            return Err(invalid("the member name is empty".into()));
        }
        let socket = UdpSocket::bind(options.bind).await?;
        let local = socket.local_addr()?;
        let advertise = match options.advertise {
            Some(a) if a.port() == 0 => SocketAddr::new(a.ip(), local.port()),
            Some(a) => a,
            None if local.ip().is_unspecified() => {
                return Err(invalid(format!(
                    "bound to {local}: give the address the others reach this member at"
                )))
            }
            None => local,
        };
        let id = Id {
            name: options.node_name.clone(),
            addr: advertise,
            stamp: now_ms(),
        };
        let config = options.foca_config();
        let foca = Foca::new(id, config, rand::make_rng(), PostcardCodec);
        let (live_tx, live) = watch::channel(BTreeSet::from([options.node_name.clone()]));
        let (seeds, seeds_rx) = watch::channel(options.seeds.clone());
        let (leave, leave_rx) = oneshot::channel();
        let counters = Arc::new(Counters::default());
        let task = Task {
            foca,
            runtime: AccumulatingRuntime::new(),
            socket,
            sealer: Sealer::new(&options.secret, rand::random()),
            opener: Opener::new(&options.secret, options.max_clock_skew),
            timers: BTreeMap::new(),
            timer_seq: 0,
            live_tx,
            counters: counters.clone(),
            name: options.node_name.clone(),
        };
        tracing::info!(member = ?task.foca.identity(), %local, seeds = ?options.seeds, "memberlist started");
        let task = tokio::spawn(task.run(seeds_rx, leave_rx, options.rejoin_interval));
        Ok(Membership {
            live,
            seeds,
            leave: Some(leave),
            counters,
            local,
            task,
        })
    }

    /// The names of the live speakers (this one included), updated on every change.
    pub fn live(&self) -> watch::Receiver<BTreeSet<String>> {
        self.live.clone()
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Joins these seeds now and keeps rejoining those that are not live members.
    pub fn set_seeds(&self, seeds: Vec<SocketAddr>) {
        self.seeds.send_if_modified(|s| {
            if *s == seeds {
                false
            } else {
                *s = seeds;
                true
            }
        });
    }

    pub fn stats(&self) -> MembershipStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MembershipStats {
            accepted: get(&c.accepted),
            unauthenticated: get(&c.truncated) + get(&c.bad_magic) + get(&c.bad_tag),
            replayed_or_stale: get(&c.replayed) + get(&c.stale),
            malformed: get(&c.malformed),
            sent: get(&c.sent),
        }
    }

    /// Announces this member's departure to the others (so they react at once rather than after the
    /// failure detection), then stops.
    pub async fn leave(mut self) {
        if let Some(leave) = self.leave.take() {
            let (done_tx, done_rx) = oneshot::channel();
            if leave.send(done_tx).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(1), done_rx).await;
            }
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Task {
    foca: Foca<Id, PostcardCodec, rand::rngs::StdRng, foca::NoCustomBroadcast>,
    runtime: AccumulatingRuntime<Id>,
    socket: UdpSocket,
    sealer: Sealer,
    opener: Opener,
    timers: BTreeMap<(Instant, u64), foca::Timer<Id>>,
    timer_seq: u64,
    live_tx: watch::Sender<BTreeSet<String>>,
    counters: Arc<Counters>,
    name: String,
}

impl Task {
    async fn run(
        mut self,
        mut seeds: watch::Receiver<Vec<SocketAddr>>,
        mut leave: oneshot::Receiver<oneshot::Sender<()>>,
        rejoin_interval: Duration,
    ) {
        let mut buf = vec![0u8; 65536];
        let mut rejoin = tokio::time::interval(rejoin_interval);
        rejoin.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seeds_open = true;
        loop {
            let next_timer = self.timers.keys().next().map(|(at, _)| *at);
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, from)) => self.datagram(&buf[..n], from),
                    Err(e) => {
                        tracing::debug!(error = %e, "memberlist receive");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                _ = tokio::time::sleep_until(next_timer.unwrap_or_else(Instant::now)), if next_timer.is_some() => {
                    self.due_timers();
                }
                _ = rejoin.tick() => {
                    let seeds = seeds.borrow_and_update().clone();
                    self.join(&seeds);
                }
                changed = seeds.changed(), if seeds_open => match changed {
                    Ok(()) => {
                        let seeds = seeds.borrow_and_update().clone();
                        tracing::info!(?seeds, "memberlist seeds changed");
                        self.join(&seeds);
                    }
                    Err(_) => seeds_open = false,
                },
                done = &mut leave => {
                    if let Err(e) = self.foca.leave_cluster(&mut self.runtime) {
                        tracing::warn!(error = %e, "memberlist leave");
                    }
                    self.drain();
                    tracing::info!("left the memberlist");
                    if let Ok(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
            }
        }
    }

    fn datagram(&mut self, data: &[u8], from: SocketAddr) {
        let counters = &self.counters;
        match self.opener.open(data, now_ms()) {
            Ok(payload) => {
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.foca.handle_data(payload, &mut self.runtime) {
                    if matches!(e, foca::Error::Decode(_) | foca::Error::MalformedPacket) {
                        counters.malformed.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!(%from, error = %e, "memberlist datagram not handled");
                }
            }
            Err(reject) => {
                let counter = match reject {
                    Reject::Truncated => &counters.truncated,
                    Reject::BadMagic => &counters.bad_magic,
                    Reject::BadTag => &counters.bad_tag,
                    Reject::Stale => &counters.stale,
                    Reject::Replayed => &counters.replayed,
                };
                // Only the first of each kind is worth a warning; the counters tell the rest.
                if counter.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(%from, ?reject, "memberlist datagram refused (wrong secret, tampering or replay?)");
                } else {
                    tracing::debug!(%from, ?reject, "memberlist datagram refused");
                }
            }
        }
        self.drain();
    }

    fn due_timers(&mut self) {
        let now = Instant::now();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            if let Err(e) = self.foca.handle_timer(timer, &mut self.runtime) {
                tracing::debug!(error = %e, "memberlist timer");
            }
        }
        self.drain();
    }

    /// Announces to every seed that is neither this member nor a live member.
    fn join(&mut self, seeds: &[SocketAddr]) {
        let own = self.foca.identity().addr;
        let members: BTreeSet<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        for seed in seeds {
            if *seed == own || members.contains(seed) {
                continue;
            }
            let dst = Id {
                name: String::new(),
                addr: *seed,
                stamp: 0,
            };
            if let Err(e) = self.foca.announce(dst, &mut self.runtime) {
                tracing::debug!(%seed, error = %e, "memberlist announce");
            }
        }
        self.drain();
    }

    /// Sends what SWIM wants sent, schedules its timers, and publishes the live set.
    fn drain(&mut self) {
        let now = now_ms();
        while let Some((to, data)) = self.runtime.to_send() {
            let datagram = self.sealer.seal(&data, now);
            match self.socket.try_send_to(&datagram, to.addr) {
                Ok(_) => {
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(to = %to.addr, error = %e, "memberlist send"),
            }
        }
        let at = Instant::now();
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.timer_seq += 1;
            self.timers.insert((at + after, self.timer_seq), timer);
        }
        while let Some(notification) = self.runtime.to_notify() {
            match notification {
                OwnedNotification::MemberUp(id) => tracing::info!(member = ?id, "speaker up"),
                OwnedNotification::MemberDown(id) => tracing::info!(member = ?id, "speaker down"),
                OwnedNotification::Rename(old, new) => {
                    tracing::info!(old = ?old, new = ?new, "speaker restarted")
                }
                OwnedNotification::Rejoin(id) => {
                    tracing::warn!(member = ?id, "declared down by the others; rejoined")
                }
                OwnedNotification::Idle => tracing::debug!("no other speaker"),
                OwnedNotification::Defunct => tracing::warn!("memberlist defunct"),
                OwnedNotification::Active => tracing::debug!("memberlist active"),
            }
        }
        let mut live: BTreeSet<String> = self
            .foca
            .iter_members()
            .map(|m| m.id().name.clone())
            .collect();
        live.insert(self.name.clone());
        self.live_tx.send_if_modified(|current| {
            if *current == live {
                false
            } else {
                tracing::info!(live = live.len(), speakers = ?live, "live speakers changed");
                *current = live;
                true
            }
        });
    }
}

/// Resolves when the live set changes. Never resolves without a membership, nor once it has stopped
/// (the receiver is then dropped, so later calls do not spin).
pub async fn live_changed(live: &mut Option<watch::Receiver<BTreeSet<String>>>) {
    match live {
        Some(rx) => {
            if rx.changed().await.is_err() {
                *live = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a test secret of sufficient length";

    async fn start(name: &str, seeds: Vec<SocketAddr>) -> Membership {
        let mut o = MembershipOptions::new(name, "127.0.0.1:0".parse().unwrap(), SECRET.to_vec());
        o.seeds = seeds;
        Membership::start(o).await.unwrap()
    }

    async fn wait_live(m: &Membership, want: &[&str], within: Duration) {
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        let mut rx = m.live();
        let r = tokio::time::timeout(within, rx.wait_for(|l| *l == want)).await;
        assert!(r.is_ok(), "live {:?}, want {want:?}", *m.live.borrow());
    }

    #[tokio::test]
    async fn three_members_join_leave_and_die() {
        let a = start("a", vec![]).await;
        let b = start("b", vec![a.local_addr()]).await;
        let c = start("c", vec![b.local_addr()]).await;
        let t = Duration::from_secs(5);
        for m in [&a, &b, &c] {
            wait_live(m, &["a", "b", "c"], t).await;
        }

        // A goodbye is seen at once (no failure detection needed).
        let started = std::time::Instant::now();
        c.leave().await;
        wait_live(&a, &["a", "b"], t).await;
        wait_live(&b, &["a", "b"], t).await;
        println!("leave noticed after {:?}", started.elapsed());

        // A member that vanishes (task aborted, socket closed) is declared down by probing.
        let d = start("d", vec![a.local_addr()]).await;
        for m in [&a, &b, &d] {
            wait_live(m, &["a", "b", "d"], t).await;
        }
        let started = std::time::Instant::now();
        drop(d);
        wait_live(&a, &["a", "b"], t).await;
        wait_live(&b, &["a", "b"], t).await;
        println!("death noticed after {:?}", started.elapsed());
        assert!(a.stats().accepted > 0 && a.stats().sent > 0);
        assert_eq!(a.stats().unauthenticated, 0);
    }

    #[tokio::test]
    async fn wrong_secret_and_garbage_are_refused_and_counted() {
        let a = start("a", vec![]).await;
        let mut o = MembershipOptions::new(
            "intruder",
            "127.0.0.1:0".parse().unwrap(),
            b"not the secret".to_vec(),
        );
        o.seeds = vec![a.local_addr()];
        let intruder = Membership::start(o).await.unwrap();
        // Raw garbage, a truncated envelope, and a replayed authentic datagram.
        let raw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        raw.send_to(b"\x00\x01garbage", a.local_addr())
            .await
            .unwrap();
        raw.send_to(b"FLM1", a.local_addr()).await.unwrap();
        let mut sealer = Sealer::new(SECRET, 99);
        let authentic_garbage = sealer.seal(b"\xff\xff\xff not swim", now_ms());
        raw.send_to(&authentic_garbage, a.local_addr())
            .await
            .unwrap();
        raw.send_to(&authentic_garbage, a.local_addr())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(*a.live().borrow(), BTreeSet::from(["a".to_string()]));
        assert_eq!(
            *intruder.live().borrow(),
            BTreeSet::from(["intruder".to_string()])
        );
        let s = a.stats();
        assert!(s.unauthenticated >= 3, "{s:?}");
        assert_eq!(s.replayed_or_stale, 1, "{s:?}");
        assert_eq!(s.malformed, 1, "{s:?}");
        assert_eq!(s.accepted, 1, "{s:?}");
    }

    #[tokio::test]
    async fn a_restarted_member_rejoins() {
        let a = start("a", vec![]).await;
        let b = start("b", vec![a.local_addr()]).await;
        let t = Duration::from_secs(5);
        wait_live(&a, &["a", "b"], t).await;
        let addr = b.local_addr();
        drop(b);
        wait_live(&a, &["a"], t).await;
        // Same name and address, new process: accepted as a newer identity.
        let mut o = MembershipOptions::new("b", addr, SECRET.to_vec());
        o.seeds = vec![a.local_addr()];
        let b = Membership::start(o).await.unwrap();
        wait_live(&a, &["a", "b"], t).await;
        wait_live(&b, &["a", "b"], t).await;
    }

    #[test]
    fn options_debug_hides_the_secret() {
        let o = MembershipOptions::new("n", "127.0.0.1:1".parse().unwrap(), b"hunter2".to_vec());
        assert!(!format!("{o:?}").contains("hunter2"));
    }
}
