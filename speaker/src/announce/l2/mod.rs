//! Layer-2 announcer: ARP and NDP responders for the IPs this node owns.
//!
//! What it does, per owned IP and per eligible interface (MetalLB's layer-2 behaviour, see
//! `metallb-semantics.md` §5):
//!
//! - **ARP** (IPv4): one AF_PACKET socket per interface bound to ETH_P_ARP, with a classic BPF filter that
//!   passes only requests. A request for an owned IP, sent to broadcast or to the interface's MAC, is
//!   answered with the MAC of the interface it came in on. Replies are never answered.
//! - **NDP** (IPv6): one AF_PACKET socket per interface bound to ETH_P_IPV6, with a BPF filter that passes
//!   only ICMPv6 Neighbor Solicitations; user space validates them fully (RFC 4861 §7.1.1, hop limit 255,
//!   checksum). The solicited-node group of each owned IP is joined with `IPV6_ADD_MEMBERSHIP` on a
//!   per-interface UDP socket (refcounted: IPs sharing the low 24 bits share the group), so the kernel
//!   programs the NIC's multicast filter *and* sends MLD reports, which MLD-snooping switches need.
//!   Answers follow RFC 4861 §7.2.4 (see [`ndp::Solicitation::reply_for`]): NS with a source link-layer
//!   option get a solicited NA (S=1, O=0, target link-layer option = receiving interface's MAC); DAD
//!   probes (unspecified source) for an owned IP get an NA to all nodes (S=0, O=1), defending the address
//!   as its owner would; unicast NUD probes without the option are answered to the frame's source MAC;
//!   multicast NS from a specified source without the option are invalid and ignored.
//! - **Gratuitous announcements** on gaining an IP on an interface: at once, then every `garp_interval`
//!   until `garp_for` has passed — a gratuitous ARP request and reply (sender = target = the IP, to
//!   broadcast) for IPv4, an unsolicited NA to ff02::1 with O=1 for IPv6. On losing an IP the node just
//!   stops answering (no goodbye), as MetalLB does.
//!
//! Interfaces are eligible when up, broadcast-capable, Ethernet, ARP on, not enslaved
//! (`/sys/class/net/<if>/master`), and not matching the exclude list; they are rescanned every
//! `interface_rescan` and on every `apply`. Sockets are opened only on interfaces that have something to
//! answer in that family, and closed when they have nothing left.

mod arp;
mod iface;
mod ndp;
mod sys;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use ferrolb_allocator::ServiceKey;
use regex::Regex;
use socket2::{Domain, SockFilter, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{Announcer, ItemError};

/// Which interfaces an IP is answered on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interfaces {
    /// Every eligible interface (up, broadcast-capable, ARP on, not enslaved, not matching the exclude
    /// list).
    All,
    /// Only these (`L2Advertisement.interfaces`), still minus the ineligible ones.
    Only(BTreeSet<String>),
}

/// One IP this node owns on layer 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Announcement {
    /// The Services sharing this IP (one unless `allow-shared-ip`).
    pub services: BTreeSet<ServiceKey>,
    pub interfaces: Interfaces,
}

/// Everything this node answers for on layer 2.
pub type L2Desired = BTreeMap<IpAddr, L2Announcement>;

/// MetalLB's default `announcedInterfacesToExclude` (ConfigMap `metallb-excludel2`).
pub const DEFAULT_EXCLUDE: &[&str] = &[
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo$",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    "^nodelocaldns.*",
    "^lxc.*",
];

/// Tuning of the layer-2 announcer. `Default` is MetalLB's behaviour.
#[derive(Debug, Clone)]
pub struct L2Options {
    /// Interfaces whose name matches any of these never answer.
    pub exclude: Vec<Regex>,
    /// Gap between gratuitous rounds (1.1 s: just over Linux's default ARP `locktime` of 1 s).
    pub garp_interval: Duration,
    /// How long gratuitous rounds go on after gaining an IP (5 s: five rounds).
    pub garp_for: Duration,
    /// How often interfaces are rescanned between `apply` calls.
    pub interface_rescan: Duration,
}

impl L2Options {
    /// Compiles exclude patterns (e.g. from `announcedInterfacesToExclude`).
    pub fn exclude_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<Vec<Regex>, regex::Error> {
        patterns.iter().map(|p| Regex::new(p.as_ref())).collect()
    }
}

impl Default for L2Options {
    fn default() -> Self {
        L2Options {
            exclude: Self::exclude_patterns(DEFAULT_EXCLUDE).expect("default patterns compile"),
            garp_interval: Duration::from_millis(1100),
            garp_for: Duration::from_secs(5),
            interface_rescan: Duration::from_secs(10),
        }
    }
}

/// Counters of one IP (MetalLB's `layer2_requests_received`, `layer2_responses_sent`,
/// `layer2_gratuitous_sent`, label `ip`). They exist while the IP is desired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L2IpStats {
    /// ARP requests / Neighbor Solicitations for the IP that this node answers.
    pub requests_received: u64,
    /// ARP replies / solicited (or DAD-defending) Neighbor Advertisements sent.
    pub responses_sent: u64,
    /// Gratuitous ARP frames (requests and replies) / unsolicited Neighbor Advertisements sent.
    pub gratuitous_sent: u64,
}

/// Counters of every desired IP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Stats {
    pub per_ip: BTreeMap<IpAddr, L2IpStats>,
}

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct Mac(pub [u8; 6]);

impl Mac {
    pub(crate) const BROADCAST: Mac = Mac([0xff; 6]);

    /// `aa:bb:cc:dd:ee:ff` (as in `/sys/class/net/<if>/address`).
    pub(crate) fn parse(s: &str) -> Option<Mac> {
        let mut m = [0u8; 6];
        let mut parts = s.trim().split(':');
        for b in &mut m {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 2 {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(Mac(m))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T: Clone>(l: &RwLock<T>) -> T {
    l.read().unwrap_or_else(PoisonError::into_inner).clone()
}

type StatsMap = Arc<Mutex<BTreeMap<IpAddr, L2IpStats>>>;

/// The ARP and NDP responders of this node. Needs `CAP_NET_RAW` and a tokio runtime.
pub struct L2Announcer {
    inner: Arc<Mutex<Inner>>,
    stats: StatsMap,
    rescan: Option<JoinHandle<()>>,
}

impl fmt::Debug for L2Announcer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("L2Announcer")
            .field("announced", &self.announced())
            .finish_non_exhaustive()
    }
}

impl L2Announcer {
    /// Starts the announcer (nothing announced yet) and its periodic interface rescan. Fails when packet
    /// sockets cannot be opened (no `CAP_NET_RAW`) or when called outside a tokio runtime.
    pub fn new(options: L2Options) -> io::Result<L2Announcer> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
            io::Error::other(format!("the layer-2 announcer needs a tokio runtime: {e}"))
        })?;
        drop(sys::packet_socket().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open a packet socket (CAP_NET_RAW needed): {e}"),
            )
        })?);
        let stats: StatsMap = Arc::default();
        let every = options.interface_rescan;
        let inner = Arc::new(Mutex::new(Inner {
            options: Arc::new(options),
            desired: L2Desired::new(),
            ifaces: BTreeMap::new(),
            stats: stats.clone(),
            last_errors: Vec::new(),
        }));
        let weak = Arc::downgrade(&inner);
        let rescan = runtime.spawn(async move {
            let mut tick = tokio::time::interval_at(Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let mut inner = lock(&inner);
                let errors = inner.reconcile();
                if errors != inner.last_errors {
                    for e in &errors {
                        tracing::warn!(error = %e, "layer 2: after interface rescan");
                    }
                    inner.last_errors = errors;
                }
            }
        });
        Ok(L2Announcer {
            inner,
            stats,
            rescan: Some(rescan),
        })
    }

    /// The counters of every desired IP.
    pub fn stats(&self) -> L2Stats {
        L2Stats {
            per_ip: lock(&self.stats).clone(),
        }
    }

    /// Where each IP is answered right now (IPs answered nowhere are left out).
    pub fn announced(&self) -> BTreeMap<IpAddr, BTreeSet<String>> {
        let inner = lock(&self.inner);
        let mut out: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
        for (name, iface) in &inner.ifaces {
            for ip in iface.announced.keys() {
                out.entry(*ip).or_default().insert(name.clone());
            }
        }
        out
    }
}

impl Announcer for L2Announcer {
    type Desired = L2Desired;

    async fn apply(&mut self, desired: &L2Desired) -> Vec<ItemError> {
        let mut inner = lock(&self.inner);
        inner.desired = desired.clone();
        let errors = inner.reconcile();
        inner.last_errors = errors.clone();
        errors
    }

    async fn shutdown(mut self) {
        let mut handles = Vec::new();
        if let Some(r) = self.rescan.take() {
            r.abort();
            handles.push(r);
        }
        let ifaces = std::mem::take(&mut lock(&self.inner).ifaces);
        for iface in ifaces.into_values() {
            handles.extend(iface.stop());
        }
        lock(&self.inner).desired.clear();
        for h in handles {
            let _ = h.await;
        }
    }
}

impl Drop for L2Announcer {
    fn drop(&mut self) {
        if let Some(r) = self.rescan.take() {
            r.abort();
        }
        // Interfaces (their tasks abort on drop) go with the last reference to `inner`.
        lock(&self.inner).ifaces.clear();
    }
}

/// A spawned task that is aborted when dropped.
struct Task(Option<JoinHandle<()>>);

impl Task {
    fn spawn(f: impl std::future::Future<Output = ()> + Send + 'static) -> Task {
        Task(Some(tokio::spawn(f)))
    }

    /// Aborts and hands back the handle (to await the end).
    fn stop(mut self) -> Option<JoinHandle<()>> {
        let h = self.0.take()?;
        h.abort();
        Some(h)
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

struct Inner {
    options: Arc<L2Options>,
    desired: L2Desired,
    ifaces: BTreeMap<String, Iface>,
    stats: StatsMap,
    last_errors: Vec<ItemError>,
}

fn unusable(ip: IpAddr) -> Option<&'static str> {
    let bad = match ip {
        IpAddr::V4(v4) => {
            v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || v4.is_loopback()
        }
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast() || v6.is_loopback(),
    };
    bad.then_some("not a unicast address: cannot be announced on layer 2")
}

impl Inner {
    /// Converges the responders on `self.desired` with a fresh interface scan.
    fn reconcile(&mut self) -> Vec<ItemError> {
        let mut errors = Vec::new();
        let scan = match iface::scan(&self.options.exclude) {
            Ok(s) => s,
            Err(e) => {
                return vec![ItemError {
                    item: "interfaces".into(),
                    problem: format!("cannot list /sys/class/net: {e}"),
                }];
            }
        };
        // Interfaces that went away, became ineligible, or were replaced (new index or MAC) lose
        // everything; a replacement starts afresh below (with new gratuitous rounds).
        self.ifaces.retain(|name, i| {
            let keep = scan
                .eligible
                .get(name)
                .is_some_and(|n| n.index == i.index && n.mac == i.port.mac);
            if !keep {
                tracing::info!(interface = %name, "layer 2: interface gone or no longer eligible");
            }
            keep
        });

        let mut want: BTreeMap<&str, BTreeSet<IpAddr>> = BTreeMap::new();
        for (ip, ann) in &self.desired {
            if let Some(why) = unusable(*ip) {
                errors.push(ItemError {
                    item: format!("ip {ip}"),
                    problem: why.into(),
                });
                continue;
            }
            let names: Vec<&str> = match &ann.interfaces {
                Interfaces::All => scan.eligible.keys().map(String::as_str).collect(),
                Interfaces::Only(set) => set
                    .iter()
                    .filter(|n| scan.eligible.contains_key(n.as_str()))
                    .map(String::as_str)
                    .collect(),
            };
            if names.is_empty() {
                let problem = match &ann.interfaces {
                    Interfaces::All => "no eligible interface on this node".to_owned(),
                    Interfaces::Only(set) => format!(
                        "none of the selected interfaces can answer: {}",
                        set.iter()
                            .map(|n| format!("{n} ({})", scan.why_not(n)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                errors.push(ItemError {
                    item: format!("ip {ip}"),
                    problem,
                });
            }
            for n in names {
                want.entry(n).or_default().insert(*ip);
            }
        }

        self.ifaces
            .retain(|name, _| want.contains_key(name.as_str()));
        for (name, ips) in &want {
            let Some(info) = scan.eligible.get(*name) else {
                continue;
            };
            let iface = self
                .ifaces
                .entry((*name).to_owned())
                .or_insert_with(|| Iface::new(name, info, self.stats.clone()));
            *iface
                .port
                .link_local
                .write()
                .unwrap_or_else(PoisonError::into_inner) = info.link_local;
            let gone: Vec<IpAddr> = iface
                .announced
                .keys()
                .filter(|ip| !ips.contains(ip))
                .copied()
                .collect();
            for ip in gone {
                iface.remove(ip);
            }
            for ip in ips {
                if iface.announced.contains_key(ip) {
                    continue;
                }
                if let Err(e) = iface.add(*ip, &self.options) {
                    errors.push(ItemError {
                        item: format!("ip {ip}"),
                        problem: format!("interface {name}: {e}"),
                    });
                }
            }
            iface.close_unused();
        }

        let mut stats = lock(&self.stats);
        stats.retain(|ip, _| self.desired.contains_key(ip));
        for ip in self.desired.keys() {
            stats.entry(*ip).or_default();
        }
        errors
    }
}

/// What the tasks of one interface share.
struct Port {
    name: String,
    mac: Mac,
    link_local: RwLock<Option<Ipv6Addr>>,
    v4: RwLock<BTreeSet<Ipv4Addr>>,
    v6: RwLock<BTreeSet<Ipv6Addr>>,
    stats: StatsMap,
}

impl Port {
    fn count(&self, ip: IpAddr, f: impl FnOnce(&mut L2IpStats)) {
        if let Some(s) = lock(&self.stats).get_mut(&ip) {
            f(s);
        }
    }

    fn owns_v4(&self, ip: Ipv4Addr) -> bool {
        self.v4
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&ip)
    }

    fn owns_v6(&self, ip: Ipv6Addr) -> bool {
        self.v6
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&ip)
    }
}

type PacketSocket = Arc<AsyncFd<Socket>>;

/// A responder: its socket (shared with the gratuitous tasks) and its receive loop.
struct Responder {
    sock: PacketSocket,
    task: Task,
}

/// One interface that answers for at least one IP.
struct Iface {
    index: u32,
    port: Arc<Port>,
    arp: Option<Responder>,
    ndp: Option<Responder>,
    /// Holds the solicited-node group memberships (dropping it leaves them all).
    mc: Option<Socket>,
    groups: BTreeMap<Ipv6Addr, usize>,
    /// The IPs answered here, each with its gratuitous task (finished after `garp_for`).
    announced: BTreeMap<IpAddr, Task>,
}

/// BPF: ARP requests only (operation at offset 20 of the Ethernet frame).
const ARP_FILTER: [(u16, u8, u8, u32); 4] = [
    (0x28, 0, 0, 20),     // ldh [20]
    (0x15, 0, 1, 1),      // jeq #1 (request)
    (0x06, 0, 0, 0xffff), // ret #65535
    (0x06, 0, 0, 0),      // ret #0
];

/// BPF: ICMPv6 directly after the IPv6 header (offset 20), type 135 (offset 54).
const NS_FILTER: [(u16, u8, u8, u32); 6] = [
    (0x30, 0, 0, 20),     // ldb [20]
    (0x15, 0, 3, 58),     // jeq #58 (ICMPv6)
    (0x30, 0, 0, 54),     // ldb [54]
    (0x15, 0, 1, 135),    // jeq #135 (Neighbor Solicitation)
    (0x06, 0, 0, 0xffff), // ret #65535
    (0x06, 0, 0, 0),      // ret #0
];

fn open_packet(
    index: u32,
    protocol: u16,
    filter: &[(u16, u8, u8, u32)],
) -> io::Result<PacketSocket> {
    let sock = sys::packet_socket()?;
    let prog: Vec<SockFilter> = filter
        .iter()
        .map(|&(code, jt, jf, k)| SockFilter::new(code, jt, jf, k))
        .collect();
    sock.attach_filter(&prog)?;
    sys::bind_packet(&sock, index, protocol)?;
    Ok(Arc::new(sys::register(sock)?))
}

impl Iface {
    fn new(name: &str, info: &iface::IfInfo, stats: StatsMap) -> Iface {
        Iface {
            index: info.index,
            port: Arc::new(Port {
                name: name.to_owned(),
                mac: info.mac,
                link_local: RwLock::new(info.link_local),
                v4: RwLock::default(),
                v6: RwLock::default(),
                stats,
            }),
            arp: None,
            ndp: None,
            mc: None,
            groups: BTreeMap::new(),
            announced: BTreeMap::new(),
        }
    }

    fn arp_socket(&mut self) -> io::Result<PacketSocket> {
        if let Some(r) = &self.arp {
            return Ok(r.sock.clone());
        }
        let sock = open_packet(self.index, arp::ETH_P_ARP, &ARP_FILTER)
            .map_err(|e| io::Error::new(e.kind(), format!("opening the ARP socket: {e}")))?;
        let task = Task::spawn(arp_loop(sock.clone(), self.port.clone()));
        self.arp = Some(Responder {
            sock: sock.clone(),
            task,
        });
        Ok(sock)
    }

    fn ndp_socket(&mut self) -> io::Result<PacketSocket> {
        if let Some(r) = &self.ndp {
            return Ok(r.sock.clone());
        }
        let sock = open_packet(self.index, ndp::ETH_P_IPV6, &NS_FILTER)
            .map_err(|e| io::Error::new(e.kind(), format!("opening the NDP socket: {e}")))?;
        let task = Task::spawn(ndp_loop(sock.clone(), self.port.clone()));
        self.ndp = Some(Responder {
            sock: sock.clone(),
            task,
        });
        Ok(sock)
    }

    fn join(&mut self, ip: Ipv6Addr) -> io::Result<()> {
        let group = ndp::solicited_node(ip);
        if let Some(n) = self.groups.get_mut(&group) {
            *n += 1;
            return Ok(());
        }
        let mc = match self.mc.take() {
            Some(s) => s,
            None => Socket::new(Domain::IPV6, Type::DGRAM, None)?,
        };
        let res = mc.join_multicast_v6(&group, self.index);
        self.mc = Some(mc);
        res.map_err(|e| io::Error::new(e.kind(), format!("joining {group}: {e}")))?;
        self.groups.insert(group, 1);
        Ok(())
    }

    fn leave(&mut self, ip: Ipv6Addr) {
        let group = ndp::solicited_node(ip);
        let Some(n) = self.groups.get_mut(&group) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.groups.remove(&group);
            if let Some(mc) = &self.mc {
                if let Err(e) = mc.leave_multicast_v6(&group, self.index) {
                    tracing::debug!(%group, interface = %self.port.name, "layer 2: leaving: {e}");
                }
            }
        }
    }

    fn add(&mut self, ip: IpAddr, opts: &L2Options) -> io::Result<()> {
        let (every, until) = (opts.garp_interval, opts.garp_for);
        let port = self.port.clone();
        let task = match ip {
            IpAddr::V4(v4) => {
                let sock = self.arp_socket()?;
                port.v4
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(v4);
                Task::spawn(gratuitous(sock, port, ip, every, until))
            }
            IpAddr::V6(v6) => {
                let sock = self.ndp_socket()?;
                self.join(v6)?;
                port.v6
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(v6);
                Task::spawn(gratuitous(sock, port, ip, every, until))
            }
        };
        tracing::info!(%ip, interface = %self.port.name, mac = %self.port.mac, "layer 2: answering");
        self.announced.insert(ip, task);
        Ok(())
    }

    fn remove(&mut self, ip: IpAddr) {
        self.announced.remove(&ip);
        match ip {
            IpAddr::V4(v4) => {
                self.port
                    .v4
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&v4);
            }
            IpAddr::V6(v6) => {
                self.port
                    .v6
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&v6);
                self.leave(v6);
            }
        }
        tracing::info!(%ip, interface = %self.port.name, "layer 2: no longer answering");
    }

    /// Closes the sockets of a family with nothing left to answer.
    fn close_unused(&mut self) {
        if read(&self.port.v4).is_empty() {
            self.arp = None;
        }
        if read(&self.port.v6).is_empty() {
            self.ndp = None;
            self.mc = None;
            self.groups.clear();
        }
    }

    /// Aborts every task; the handles to await their end.
    fn stop(self) -> Vec<JoinHandle<()>> {
        let Iface {
            arp,
            ndp,
            announced,
            ..
        } = self;
        arp.into_iter()
            .chain(ndp)
            .map(|r| r.task)
            .chain(announced.into_values())
            .filter_map(Task::stop)
            .collect()
    }
}

async fn recv(sock: &AsyncFd<Socket>, buf: &mut [u8]) -> io::Result<(usize, u8)> {
    loop {
        let mut guard = sock.readable().await?;
        if let Ok(r) = guard.try_io(|s| sys::recv_packet(s.get_ref(), buf)) {
            return r;
        }
    }
}

async fn send(sock: &AsyncFd<Socket>, frame: &[u8]) -> io::Result<()> {
    sock.async_io(Interest::WRITABLE, |s| s.send(frame))
        .await
        .map(|_| ())
}

/// Receive errors (ENETDOWN while the link is down, ...) are reported once per kind and retried.
async fn recv_or_wait(
    sock: &AsyncFd<Socket>,
    buf: &mut [u8],
    port: &Port,
    what: &str,
) -> Option<usize> {
    match recv(sock, buf).await {
        Ok((_, sys::PACKET_OUTGOING)) => None,
        Ok((n, _)) => Some(n),
        Err(e) => {
            tracing::debug!(interface = %port.name, "layer 2: {what} receive: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

async fn arp_loop(sock: PacketSocket, port: Arc<Port>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Some(n) = recv_or_wait(&sock, &mut buf, &port, "ARP").await else {
            continue;
        };
        let Ok(req) = arp::ArpFrame::parse(&buf[..n]) else {
            continue;
        };
        let Some(reply) = req.reply_for(port.mac, |ip| port.owns_v4(ip)) else {
            continue;
        };
        let ip = IpAddr::V4(req.tpa);
        port.count(ip, |s| s.requests_received += 1);
        match send(&sock, &reply.encode()).await {
            Ok(()) => {
                port.count(ip, |s| s.responses_sent += 1);
                tracing::trace!(%ip, to = %req.sha, interface = %port.name, "layer 2: ARP reply");
            }
            Err(e) => {
                tracing::warn!(%ip, interface = %port.name, "layer 2: sending ARP reply: {e}")
            }
        }
    }
}

async fn ndp_loop(sock: PacketSocket, port: Arc<Port>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Some(n) = recv_or_wait(&sock, &mut buf, &port, "NDP").await else {
            continue;
        };
        let ns = match ndp::Solicitation::parse(&buf[..n]) {
            Ok(ns) => ns,
            Err(why) => {
                tracing::trace!(interface = %port.name, "layer 2: dropped NS: {why}");
                continue;
            }
        };
        let link_local = read(&port.link_local);
        let Some(na) = ns.reply_for(port.mac, link_local, |ip| port.owns_v6(ip)) else {
            continue;
        };
        let ip = IpAddr::V6(ns.target);
        port.count(ip, |s| s.requests_received += 1);
        match send(&sock, &na.encode()).await {
            Ok(()) => {
                port.count(ip, |s| s.responses_sent += 1);
                tracing::trace!(%ip, to = %na.dst, interface = %port.name, "layer 2: NA");
            }
            Err(e) => tracing::warn!(%ip, interface = %port.name, "layer 2: sending NA: {e}"),
        }
    }
}

/// Gratuitous rounds for `ip` on one interface: at once, then every `every` until `until` has passed.
async fn gratuitous(
    sock: PacketSocket,
    port: Arc<Port>,
    ip: IpAddr,
    every: Duration,
    until: Duration,
) {
    let start = Instant::now();
    loop {
        let frames: Vec<Vec<u8>> = match ip {
            IpAddr::V4(v4) => [arp::OP_REQUEST, arp::OP_REPLY]
                .into_iter()
                .map(|op| arp::ArpFrame::gratuitous(port.mac, v4, op).encode())
                .collect(),
            IpAddr::V6(v6) => {
                vec![ndp::Advertisement::unsolicited(port.mac, read(&port.link_local), v6).encode()]
            }
        };
        for f in frames {
            match send(&sock, &f).await {
                Ok(()) => port.count(ip, |s| s.gratuitous_sent += 1),
                Err(e) => {
                    tracing::debug!(%ip, interface = %port.name, "layer 2: gratuitous send: {e}")
                }
            }
        }
        tokio::time::sleep(every).await;
        if start.elapsed() >= until {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            Mac::parse("02:00:5e:0a:0B:ff\n"),
            Some(Mac([2, 0, 0x5e, 0x0a, 0x0b, 0xff]))
        );
        assert_eq!(
            Mac([2, 0, 0x5e, 0x0a, 0x0b, 0xff]).to_string(),
            "02:00:5e:0a:0b:ff"
        );
        for bad in [
            "",
            "02:00:5e:0a:0b",
            "02:00:5e:0a:0b:ff:00",
            "x2:00:5e:0a:0b:ff",
            "002:0:5e:0a:0b:ff",
        ] {
            assert_eq!(Mac::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn default_options_match_metallb() {
        let o = L2Options::default();
        assert_eq!(o.exclude.len(), 14);
        let excluded = |n: &str| o.exclude.iter().any(|r| r.is_match(n));
        for n in [
            "docker0",
            "veth1234",
            "lo",
            "cali0",
            "kube-ipvs0",
            "cni0",
            "lxc99",
            "flannel.1",
        ] {
            assert!(excluded(n), "{n}");
        }
        for n in ["eth0", "ens3", "bond0", "br0", "lo0", "eno1"] {
            assert!(!excluded(n), "{n}");
        }
        assert_eq!(o.garp_interval, Duration::from_millis(1100));
        assert_eq!(o.garp_for, Duration::from_secs(5));
        assert_eq!(o.interface_rescan, Duration::from_secs(10));
        assert!(L2Options::exclude_patterns(&["("]).is_err());
    }

    #[test]
    fn unusable_addresses() {
        for bad in [
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "127.0.0.1",
            "::",
            "ff02::1",
            "::1",
        ] {
            assert!(unusable(bad.parse().unwrap()).is_some(), "{bad}");
        }
        for good in ["198.51.100.10", "2001:db8::10"] {
            assert!(unusable(good.parse().unwrap()).is_none(), "{good}");
        }
    }

    #[test]
    fn bpf_programs_are_well_formed() {
        // Every jump lands inside the program and the last instruction returns.
        for prog in [&ARP_FILTER[..], &NS_FILTER[..]] {
            for (i, &(code, jt, jf, _)) in prog.iter().enumerate() {
                if code == 0x15 {
                    assert!(i + 1 + usize::from(jt) < prog.len());
                    assert!(i + 1 + usize::from(jf) < prog.len());
                }
            }
            assert_eq!(prog.last().unwrap().0, 0x06);
        }
    }

    #[tokio::test]
    async fn new_outside_capabilities_or_inside_runtime() {
        // Root (CI, interop runs) can open packet sockets; without CAP_NET_RAW `new` fails cleanly.
        match L2Announcer::new(L2Options::default()) {
            Ok(mut a) => {
                assert!(a.apply(&L2Desired::new()).await.is_empty());
                assert!(a.stats().per_ip.is_empty());
                a.shutdown().await;
            }
            Err(e) => assert!(e.to_string().contains("CAP_NET_RAW"), "{e}"),
        }
    }

    /// The announcer can live in a spawned task: it and its futures are `Send`.
    #[allow(dead_code)]
    fn futures_are_send(mut a: L2Announcer, d: L2Desired) {
        fn send<T: Send>(_: T) {}
        fn sync<T: Sync>(_: &T) {}
        sync(&a);
        send(a.apply(&d));
        send(a.shutdown());
    }

    #[test]
    fn new_needs_a_runtime() {
        let e = L2Announcer::new(L2Options::default()).unwrap_err();
        assert!(e.to_string().contains("tokio runtime"), "{e}");
    }
}
