//! The decision engine (pure): from the validated configuration, the Services with their IPs, their
//! endpoints, the Nodes, the live speakers and this node's name → what this node announces, over BGP (per
//! peer: prefixes with attributes) and on layer 2 (IPs with the interfaces to answer on), and why each
//! Service IP is not announced where it is not.
//!
//! Rules: `shared/reference/metallb-semantics.md` §4 and §5. Where ferrolb deliberately differs:
//! - with `externalTrafficPolicy: Local`, a node whose only local endpoints are terminating stops
//!   announcing at once, so that new flows go to nodes with live endpoints while existing ones drain —
//!   unless no node has a non-terminating endpoint, in which case it keeps announcing (never blackhole);
//! - the L2 election skips, in the same way, candidates with only terminating endpoints.

pub mod adapt;
mod endpoints;
mod l2;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_allocator::{Labels, ServiceKey};
use ferrolb_bgp::rib_out::{RouteAttributes, Routes};
use ferrolb_bgp::wire::update::LargeCommunity;
use ferrolb_crds::config::{BgpCommunity, Config};
use ferrolb_crds::selector::any_matches;
use ipnetwork::IpNetwork;

use crate::announce::l2::{Interfaces, L2Announcement, L2Desired};
pub use endpoints::{Endpoint, Presence};

/// Kubernetes' label that keeps a node out of external load balancers.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// What the engine needs of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub key: ServiceKey,
    /// The assigned IPs (status, or the standalone allocation), in ingress order.
    pub ips: Vec<IpAddr>,
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    /// `metadata.labels` (advertisements' `serviceSelectors`).
    pub labels: Labels,
    /// Every endpoint of the Service, from its EndpointSlices.
    pub endpoints: Vec<Endpoint>,
}

/// What the engine needs of a Node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    pub labels: Labels,
    /// Condition `NetworkUnavailable=True`.
    pub network_unavailable: bool,
}

/// Everything a decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// This node.
    pub node: &'a str,
    pub config: &'a Config,
    pub services: &'a [ServiceInfo],
    /// Every Node by name.
    pub nodes: &'a BTreeMap<String, NodeInfo>,
    /// The speakers alive per the membership protocol; `None` when unknown (every node counts as alive).
    pub live: Option<&'a BTreeSet<String>>,
}

/// One Service IP this node announces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Announced {
    pub service: ServiceKey,
    pub ip: IpAddr,
    pub via: Via,
}

/// How an IP is announced.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Via {
    /// To these peers (by BGPPeer name), as this prefix (after aggregation).
    Bgp {
        prefix: IpNetwork,
        peers: BTreeSet<String>,
    },
    /// On layer 2.
    L2 {
        interfaces: Option<BTreeSet<String>>,
    },
}

/// Why this node does not announce a Service IP (for status and events).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NotAnnounced {
    pub service: ServiceKey,
    pub ip: IpAddr,
    pub reason: String,
}

/// The desired state of this node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    /// Per BGPPeer (by name, only peers that select this node): the routes to advertise.
    pub bgp: BTreeMap<String, Routes>,
    /// The IPs this node answers for on layer 2.
    pub l2: L2Desired,
    /// What is announced, per Service IP and protocol.
    pub announced: Vec<Announced>,
    /// Per Service IP with no announcement from this node: why.
    pub not_announced: Vec<NotAnnounced>,
}

/// Decides what this node announces.
pub fn decide(inputs: &Inputs<'_>) -> Desired {
    let mut desired = Desired::default();
    let config = inputs.config;
    let this = inputs.nodes.get(inputs.node);
    let node_block = node_blocked(inputs.node, this);
    let node_labels = this.map(|n| n.labels.clone()).unwrap_or_default();
    // Peers that this node runs sessions with, and the family each carries: a session carries the
    // routes of its transport's family (MetalLB ≥ 0.15: IPv4 over IPv4 sessions, IPv6 over IPv6 ones),
    // whose next hop is the session's own local address.
    let my_peers: Vec<(&str, Option<bool>)> = config
        .peers
        .iter()
        .filter(|p| any_matches(&p.node_selectors, &node_labels))
        .map(|p| (p.name.as_str(), p.address().map(|a| a.is_ipv4())))
        .collect();
    for (peer, _) in &my_peers {
        desired.bgp.insert((*peer).to_owned(), Routes::new());
    }
    // Merged attributes per (peer, prefix) before interning.
    let mut routes: BTreeMap<(String, IpNetwork), RouteAttributes> = BTreeMap::new();

    for svc in inputs.services {
        let presence = Presence::of(&svc.endpoints, inputs.node);
        for &ip in &svc.ips {
            let Some(pool) = config.pool_of(ip) else {
                desired
                    .not_announced
                    .push(not(svc, ip, "the IP is in no pool"));
                continue;
            };
            let mut why_not: Vec<String> = Vec::new();
            let mut announced_here = false;

            // ---- BGP
            let ads: Vec<_> = config
                .bgp_advertisements_for(&pool.name)
                .filter(|ad| any_matches(&ad.service_selectors, &svc.labels))
                .collect();
            if ads.is_empty() {
                why_not.push(format!("no BGPAdvertisement applies to pool {}", pool.name));
            } else if let Some(block) = &node_block {
                why_not.push(block.clone());
            } else if let Err(reason) = presence.should_announce(svc.local) {
                why_not.push(reason);
            } else {
                let mut announced_any = false;
                for ad in &ads {
                    if !any_matches(&ad.node_selectors, &node_labels) {
                        why_not.push(format!(
                            "BGPAdvertisement {} does not select this node",
                            ad.name
                        ));
                        continue;
                    }
                    let prefix = aggregate(ip, ad.aggregation_length, ad.aggregation_length_v6);
                    let mut peers = BTreeSet::new();
                    let carries = |v4: &Option<bool>| v4.is_none_or(|v4| v4 == ip.is_ipv4());
                    for (peer, _) in my_peers
                        .iter()
                        .filter(|(p, v4)| ad.targets_peer(p) && carries(v4))
                    {
                        let attrs = routes.entry(((*peer).to_owned(), prefix)).or_default();
                        merge_attributes(attrs, ad.local_pref, &ad.communities);
                        peers.insert((*peer).to_owned());
                    }
                    if peers.is_empty() {
                        why_not.push(format!(
                            "no peer of BGPAdvertisement {} runs on this node",
                            ad.name
                        ));
                        continue;
                    }
                    announced_any = true;
                    desired.announced.push(Announced {
                        service: svc.key.clone(),
                        ip,
                        via: Via::Bgp { prefix, peers },
                    });
                }
                if announced_any {
                    why_not.clear();
                    announced_here = true;
                }
            }

            // ---- layer 2
            let l2_ads: Vec<_> = config
                .l2_advertisements_for(&pool.name)
                .filter(|ad| any_matches(&ad.service_selectors, &svc.labels))
                .collect();
            if !l2_ads.is_empty() {
                match l2::owner(inputs, svc, &l2_ads) {
                    Ok(owner) if owner == inputs.node => {
                        let interfaces = l2::interfaces(&l2_ads, &node_labels);
                        let entry = desired.l2.entry(ip).or_insert_with(|| L2Announcement {
                            services: BTreeSet::new(),
                            interfaces: interfaces.clone(),
                        });
                        entry.services.insert(svc.key.clone());
                        announced_here = true;
                        desired.announced.push(Announced {
                            service: svc.key.clone(),
                            ip,
                            via: Via::L2 {
                                interfaces: match interfaces {
                                    Interfaces::All => None,
                                    Interfaces::Only(set) => Some(set),
                                },
                            },
                        });
                    }
                    Ok(owner) => why_not.push(format!("layer 2: node {owner} announces it")),
                    Err(reason) => why_not.push(format!("layer 2: {reason}")),
                }
            }

            if !announced_here {
                let reason = if why_not.is_empty() {
                    format!(
                        "no BGPAdvertisement or L2Advertisement applies to pool {}",
                        pool.name
                    )
                } else {
                    why_not.join("; ")
                };
                desired.not_announced.push(not(svc, ip, &reason));
            }
        }
    }

    // Intern equal attribute sets, so that one Arc serves every route with the same attributes.
    let mut interned: BTreeMap<RouteAttributes, Arc<RouteAttributes>> = BTreeMap::new();
    for ((peer, prefix), attrs) in routes {
        let shared = interned
            .entry(attrs.clone())
            .or_insert_with(|| Arc::new(attrs))
            .clone();
        desired.bgp.entry(peer).or_default().insert(prefix, shared);
    }
    desired.announced.sort();
    desired.not_announced.sort();
    desired
}

/// Why this node announces nothing at all, if it does not.
fn node_blocked(name: &str, node: Option<&NodeInfo>) -> Option<String> {
    let node = node?;
    if node.labels.contains_key(EXCLUDE_LABEL) {
        return Some(format!("node {name} has the label {EXCLUDE_LABEL}"));
    }
    if node.network_unavailable {
        return Some(format!("node {name} has condition NetworkUnavailable"));
    }
    None
}

fn not(svc: &ServiceInfo, ip: IpAddr, reason: &str) -> NotAnnounced {
    NotAnnounced {
        service: svc.key.clone(),
        ip,
        reason: reason.to_owned(),
    }
}

/// The announced prefix: the IP masked to the advertisement's aggregation length.
fn aggregate(ip: IpAddr, v4: u8, v6: u8) -> IpNetwork {
    let len = if ip.is_ipv4() { v4 } else { v6 };
    let net = IpNetwork::new(ip, len).expect("validated aggregation length");
    IpNetwork::new(net.network(), len).expect("same length")
}

/// Two advertisements giving one prefix to one peer: communities merge (sorted, without duplicates, as
/// MetalLB does); the highest local preference wins (validation rejects conflicting ones where it can).
fn merge_attributes(
    attrs: &mut RouteAttributes,
    local_pref: Option<u32>,
    communities: &[BgpCommunity],
) {
    if let Some(lp) = local_pref {
        attrs.local_pref = Some(attrs.local_pref.map_or(lp, |old| old.max(lp)));
    }
    for c in communities {
        match *c {
            BgpCommunity::Standard(v) => attrs.communities.push(v),
            BgpCommunity::Large(a, b, c) => attrs.large_communities.push(LargeCommunity {
                global_admin: a,
                local_data1: b,
                local_data2: c,
            }),
        }
    }
    attrs.communities.sort_unstable();
    attrs.communities.dedup();
    attrs.large_communities.sort_unstable();
    attrs.large_communities.dedup();
}
