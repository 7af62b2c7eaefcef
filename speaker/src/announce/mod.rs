//! Announcers: what makes the routers and the segment see this node's Service IPs. Both backends take the
//! whole desired state and converge on it (`apply` diffs against what is announced now), so calling `apply`
//! twice with the same state changes nothing, and one failing item never stops the others.

pub mod bgp;
pub mod l2;

use std::fmt;

/// One item an announcer could not bring to its desired state (a peer, an IP, an interface), and why.
/// The item stays desired: the next `apply` tries again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// What it is about, e.g. `peer tor-a`, `ip 203.0.113.10`, `interface eth1`.
    pub item: String,
    pub problem: String,
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.item, self.problem)
    }
}

/// A declarative announcement backend.
#[allow(async_fn_in_trait)]
pub trait Announcer {
    /// The backend's view of what this node should announce.
    type Desired;

    /// Converges on `desired`: starts announcing what is new, withdraws what is gone, changes what
    /// changed, and leaves the rest untouched. Returns every item it could not handle.
    async fn apply(&mut self, desired: &Self::Desired) -> Vec<ItemError>;

    /// Stops announcing everything (process exit).
    async fn shutdown(self);
}

/// Both backends of a node, applied together from one decision.
pub struct Announcers {
    pub bgp: bgp::BgpAnnouncer,
    /// `None` where raw sockets are not allowed (no CAP_NET_RAW): layer-2 items are then reported.
    pub l2: Option<l2::L2Announcer>,
}

impl Announcers {
    /// The BGP backend, and the layer-2 one if this process may open raw sockets.
    pub fn new() -> Announcers {
        let l2 = match l2::L2Announcer::new(l2::L2Options::default()) {
            Ok(l2) => Some(l2),
            Err(e) => {
                tracing::warn!(error = %e, "layer 2 unavailable (needs CAP_NET_RAW); BGP only");
                None
            }
        };
        Announcers {
            bgp: bgp::BgpAnnouncer::new(),
            l2,
        }
    }

    /// Applies both parts of `plan`; returns every item that failed, the peers that cannot run included.
    pub async fn apply(&mut self, plan: &crate::pipeline::Announcements) -> Vec<ItemError> {
        let mut errors = plan.peer_errors.clone();
        errors.extend(self.bgp.apply(&plan.bgp).await);
        match &mut self.l2 {
            Some(l2) => errors.extend(l2.apply(&plan.desired.l2).await),
            None => errors.extend(plan.desired.l2.keys().map(|ip| ItemError {
                item: format!("ip {ip}"),
                problem: "layer 2 is unavailable on this node (needs CAP_NET_RAW)".into(),
            })),
        }
        errors
    }

    /// Process exit: leaves the memberlist first, so that the other speakers take over this node's
    /// layer-2 IPs at once, then shuts both backends down.
    pub async fn shutdown_leaving(self, membership: Option<crate::membership::Membership>) {
        if let Some(m) = membership {
            tracing::info!("leaving the memberlist");
            m.leave().await;
        }
        tracing::info!("shutting down: withdrawing everything");
        self.shutdown().await;
    }

    /// Withdraws everything (see [`bgp::BgpAnnouncer`]'s shutdown for graceful restart) and stops
    /// answering on layer 2, both at once.
    pub async fn shutdown(self) {
        match self.l2 {
            Some(l2) => {
                futures::join!(self.bgp.shutdown(), l2.shutdown());
            }
            None => self.bgp.shutdown().await,
        }
    }
}

impl Default for Announcers {
    fn default() -> Self {
        Announcers::new()
    }
}
