//! The tokio side: one task per peer drives a [`crate::fsm::Fsm`] over real TCP connections, feeds the
//! [`crate::rib_out::AdjRibOut`] with the caller's desired routes, and publishes a [`PeerStatus`].
//!
//! - [`SessionHandle::spawn`] starts a peer; [`SessionHandle::set_routes`] states the routes it should
//!   have; [`SessionHandle::shutdown`] sends Cease; [`SessionHandle::stop_for_restart`] leaves without
//!   one so that a graceful-restart helper keeps our routes.
//! - [`Listener`] accepts connections for passive peers and hands each to its session.

mod driver;
mod listener;
mod socket;
mod status;

pub use listener::Listener;
pub use status::{MessageCounters, NotificationRecord, PeerStatus};

use crate::fsm::{FsmConfig, Stop};
use crate::rib_out::Routes;
use crate::wire::notification::cease;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

/// How long a deliberate close may take to deliver its NOTIFICATION before the socket is dropped.
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Everything about one peer.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionConfig {
    pub peer_address: IpAddr,
    pub peer_port: u16,
    /// Local address to connect from (and so the default next hop).
    pub source_address: Option<IpAddr>,
    /// TCP-MD5 key (RFC 2385).
    pub password: Option<String>,
    /// eBGP multihop: the TTL of our packets. Default 1 for external peers (directly connected), the
    /// system default for internal ones.
    pub ebgp_multihop: Option<u8>,
    /// GTSM (RFC 5082): send with TTL 255 and accept only TTL ≥ 256 − `gtsm_hops`.
    pub gtsm_hops: Option<u8>,
    /// TCP_USER_TIMEOUT; default the hold time, so unacknowledged data ends the connection as fast as
    /// the hold timer would.
    pub tcp_user_timeout: Option<Duration>,
    /// Next hops for routes of the family the session does not run over (and overrides of the defaults).
    pub ipv4_next_hop: Option<Ipv4Addr>,
    pub ipv6_next_hop: Option<Ipv6Addr>,
    pub ipv6_link_local_next_hop: Option<Ipv6Addr>,
    pub fsm: FsmConfig,
}

impl SessionConfig {
    pub fn new(peer_address: IpAddr, fsm: FsmConfig) -> Self {
        SessionConfig {
            peer_address,
            peer_port: 179,
            source_address: None,
            password: None,
            ebgp_multihop: None,
            gtsm_hops: None,
            tcp_user_timeout: None,
            ipv4_next_hop: None,
            ipv6_next_hop: None,
            ipv6_link_local_next_hop: None,
            fsm,
        }
    }
}

enum Command {
    Stop(Stop, oneshot::Sender<()>),
}

/// A running peer session.
pub struct SessionHandle {
    peer: IpAddr,
    commands: mpsc::Sender<Command>,
    inbound: mpsc::Sender<TcpStream>,
    routes: watch::Sender<Arc<Routes>>,
    status: watch::Receiver<PeerStatus>,
    task: JoinHandle<()>,
}

impl SessionHandle {
    /// Starts the session (RFC 4271 ManualStart) on the current tokio runtime.
    pub fn spawn(config: SessionConfig) -> SessionHandle {
        Self::spawn_with_routes(config, Arc::new(Routes::new()))
    }

    /// Starts the session with its initial routes, so that the first table the peer gets is complete.
    pub fn spawn_with_routes(config: SessionConfig, routes: Arc<Routes>) -> SessionHandle {
        let peer = config.peer_address;
        let (commands, command_rx) = mpsc::channel(8);
        let (inbound, inbound_rx) = mpsc::channel(4);
        let (routes_tx, routes_rx) = watch::channel(routes);
        let (status_tx, status) = watch::channel(PeerStatus::new(&config));
        let span = tracing::info_span!("bgp_peer", peer = %peer, asn = config.fsm.peer_asn);
        let driver = driver::Driver::new(config, command_rx, inbound_rx, routes_rx, status_tx);
        let task = tokio::spawn(driver.run().instrument(span));
        SessionHandle {
            peer,
            commands,
            inbound,
            routes: routes_tx,
            status,
            task,
        }
    }

    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// States the routes the peer should have; the session sends the difference.
    pub fn set_routes(&self, routes: Arc<Routes>) {
        self.routes.send_replace(routes);
    }

    pub fn status(&self) -> watch::Receiver<PeerStatus> {
        self.status.clone()
    }

    /// Hands over a connection the peer opened to us (used by [`Listener`]).
    pub fn inbound_sender(&self) -> mpsc::Sender<TcpStream> {
        self.inbound.clone()
    }

    /// Ends the session with Cease/Administrative Shutdown (and the text as shutdown communication,
    /// RFC 8203), waiting until the NOTIFICATION is written or [`CLOSE_LINGER`] passes.
    pub async fn shutdown(self, text: Option<&str>) {
        let stop = Stop::Cease {
            subcode: cease::ADMINISTRATIVE_SHUTDOWN,
            text: text.map(str::to_owned),
        };
        self.stop(stop).await
    }

    /// Ends the session with another Cease subcode, e.g. Peer De-configured or Other Configuration Change.
    pub async fn cease(self, subcode: u8, text: Option<&str>) {
        self.stop(Stop::Cease {
            subcode,
            text: text.map(str::to_owned),
        })
        .await
    }

    /// Leaves without a NOTIFICATION: with graceful restart negotiated, the peer keeps our routes as stale
    /// until we come back and send End-of-RIB (RFC 4724).
    pub async fn stop_for_restart(self) {
        self.stop(Stop::ForRestart).await
    }

    async fn stop(self, stop: Stop) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Stop(stop, done)).await.is_ok() {
            let _ = wait.await;
        }
        let _ = self.task.await;
    }
}
