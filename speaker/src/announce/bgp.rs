//! BGP announcer: one `ferrolb-bgp` session per BGPPeer that selects this node, each given the routes the
//! decision engine wants it to have. A route or attribute change is only new routes for the session (it
//! sends the UPDATEs); a change to a peer's session parameters restarts that peer alone.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ferrolb_bgp::fsm::{ConnectMode, FsmConfig, GracefulRestartConfig};
use ferrolb_bgp::rib_out::Routes;
use ferrolb_bgp::session::{PeerStatus, SessionConfig, SessionHandle};
use ferrolb_crds::config::{Peer, PeerAsn, PeerPassword};

use super::{Announcer, ItemError};

/// Seconds a peer keeps our routes while we restart (graceful restart).
const RESTART_TIME: u16 = 120;

/// One peer session this node should run, with its routes.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerSession {
    pub config: SessionConfig,
    pub routes: Routes,
}

/// Every session this node should run, by BGPPeer name.
pub type BgpDesired = BTreeMap<String, PeerSession>;

/// What the session parameters of this node are derived from.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// The node name (router-ID fallback seed).
    pub name: String,
    /// Addresses to take the router ID from, preferred first (the node's addresses).
    pub addresses: Vec<IpAddr>,
}

/// The session a validated BGPPeer asks for, or why it cannot run.
pub fn session_config(peer: &Peer, node: &NodeIdentity) -> Result<SessionConfig, String> {
    let address = peer
        .address()
        .ok_or("BGP unnumbered (spec.interface) is not supported by the embedded speaker yet")?;
    let local_asn = peer.local_as();
    let peer_asn =
        match peer.peer_asn {
            PeerAsn::Fixed(asn) => asn,
            PeerAsn::Internal => local_asn,
            PeerAsn::External => return Err(
                "dynamicASN: external is not supported by the embedded speaker yet; set peerASN"
                    .into(),
            ),
        };
    if peer.vrf.is_some() {
        return Err("spec.vrf is not supported by the embedded speaker yet".into());
    }
    let router_id: Ipv4Addr =
        ferrolb_bgp::identity::router_id(peer.router_id, &node.addresses, &node.name);
    let mut fsm = FsmConfig::new(local_asn, peer_asn, router_id);
    fsm.hold_time = u16::try_from(peer.hold_time.as_secs()).unwrap_or(u16::MAX);
    fsm.keepalive_time = u16::try_from(peer.keepalive_time.as_secs()).ok();
    if let Some(connect) = peer.connect_time {
        fsm.connect_retry = connect;
    }
    fsm.mode = ConnectMode::Active;
    fsm.graceful_restart = peer
        .enable_graceful_restart
        .then_some(GracefulRestartConfig {
            restart_time: RESTART_TIME,
            restarting: false,
            forwarding_preserved: true,
        });
    let mut config = SessionConfig::new(address, fsm);
    config.peer_port = peer.port;
    config.source_address = peer.source_address;
    config.password = match &peer.password {
        None => None,
        Some(PeerPassword::Literal(p)) => Some(p.clone()),
        Some(PeerPassword::Secret {
            password: Some(p), ..
        }) => Some(p.clone()),
        Some(PeerPassword::Secret {
            name,
            password: None,
            ..
        }) => {
            return Err(format!("the password Secret {name:?} is not available"));
        }
    };
    config.ebgp_multihop = (peer.ebgp_multi_hop && peer_asn != local_asn).then_some(255);
    Ok(config)
}

struct Running {
    config: SessionConfig,
    /// The routes the session was last given (shared with it).
    routes: Arc<Routes>,
    handle: SessionHandle,
}

/// Runs the sessions.
#[derive(Default)]
pub struct BgpAnnouncer {
    sessions: BTreeMap<String, Running>,
}

impl BgpAnnouncer {
    pub fn new() -> Self {
        BgpAnnouncer::default()
    }

    /// A live view of every session's status, by peer name (for metrics and status writers).
    pub fn status_receivers(&self) -> BTreeMap<String, tokio::sync::watch::Receiver<PeerStatus>> {
        self.sessions
            .iter()
            .map(|(name, r)| (name.clone(), r.handle.status()))
            .collect()
    }

    /// The live status of every session, by peer name.
    pub fn status(&self) -> BTreeMap<String, PeerStatus> {
        self.sessions
            .iter()
            .map(|(name, r)| (name.clone(), r.handle.status().borrow().clone()))
            .collect()
    }
}

impl Announcer for BgpAnnouncer {
    type Desired = BgpDesired;

    async fn apply(&mut self, desired: &BgpDesired) -> Vec<ItemError> {
        let mut stopping = Vec::new();
        // Peers gone, or whose session parameters changed: Cease (peer de-configured), then start anew.
        let names: Vec<String> = self.sessions.keys().cloned().collect();
        for name in names {
            let keep = desired
                .get(&name)
                .is_some_and(|d| d.config == self.sessions[&name].config);
            if !keep {
                let running = self.sessions.remove(&name).expect("listed");
                let text = if desired.contains_key(&name) {
                    "ferrolb: session parameters changed"
                } else {
                    "ferrolb: peer removed from the configuration"
                };
                stopping.push(async move { running.handle.cease(3, Some(text)).await });
            }
        }
        futures::future::join_all(stopping).await;
        for (name, want) in desired {
            match self.sessions.get_mut(name) {
                Some(running) => {
                    if *running.routes != want.routes {
                        running.routes = Arc::new(want.routes.clone());
                        running.handle.set_routes(running.routes.clone());
                    }
                }
                None => {
                    let routes = Arc::new(want.routes.clone());
                    let handle =
                        SessionHandle::spawn_with_routes(want.config.clone(), routes.clone());
                    self.sessions.insert(
                        name.clone(),
                        Running {
                            config: want.config.clone(),
                            routes,
                            handle,
                        },
                    );
                }
            }
        }
        Vec::new()
    }

    /// Peers with graceful restart keep our routes for the restart time (the session stops without a
    /// NOTIFICATION, RFC 4724); the others get Cease/Administrative Shutdown and withdraw them.
    async fn shutdown(self) {
        let stops = self.sessions.into_values().map(|r| {
            let graceful = r.config.fsm.graceful_restart.is_some();
            Box::pin(async move {
                if graceful {
                    r.handle.stop_for_restart().await
                } else {
                    r.handle
                        .cease(2, Some("ferrolb: speaker shutting down"))
                        .await
                }
            })
        });
        futures::future::join_all(stops).await;
    }
}
