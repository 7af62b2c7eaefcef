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
