//! The part of the pipeline both modes share: a validated configuration, the Services with their IPs, the
//! Nodes and the live speakers → this node's desired announcements and the BGP sessions that carry them.
//! Where the IPs come from is the only difference: Service status (Kubernetes mode) or the whole-state
//! allocation (standalone mode).

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_crds::config::Config;

use crate::announce::bgp::{session_config, BgpDesired, NodeIdentity, PeerSession};
use crate::announce::ItemError;
use crate::decide::{decide, Desired, Inputs, NodeInfo, ServiceInfo};

/// What this node should announce, and over which sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcements {
    pub desired: Desired,
    pub bgp: BgpDesired,
    /// Peers selected for this node that cannot run, and why.
    pub peer_errors: Vec<ItemError>,
}

/// Decides this node's announcements and the sessions for them.
pub fn announcements(
    config: &Config,
    services: &[ServiceInfo],
    nodes: &BTreeMap<String, NodeInfo>,
    live: Option<&BTreeSet<String>>,
    node: &NodeIdentity,
) -> Announcements {
    let desired = decide(&Inputs {
        node: &node.name,
        config,
        services,
        nodes,
        live,
    });
    let mut bgp = BgpDesired::new();
    let mut peer_errors = Vec::new();
    // `decide` lists exactly the peers that select this node.
    for peer in config
        .peers
        .iter()
        .filter(|p| desired.bgp.contains_key(&p.name))
    {
        match session_config(peer, node) {
            Ok(config) => {
                let routes = desired.bgp.get(&peer.name).cloned().unwrap_or_default();
                bgp.insert(peer.name.clone(), PeerSession { config, routes });
            }
            Err(problem) => peer_errors.push(ItemError {
                item: format!("peer {}", peer.name),
                problem,
            }),
        }
    }
    Announcements {
        desired,
        bgp,
        peer_errors,
    }
}
