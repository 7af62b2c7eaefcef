//! Layer-2 ownership: one node per Service answers for its IPs, chosen by every speaker alike from the
//! same inputs (no lease, no messages): MetalLB's order, so that mixed or upgraded fleets agree.

use std::collections::BTreeSet;

use ferrolb_crds::config::L2Ad;
use ferrolb_crds::selector::any_matches;
use sha2::{Digest, Sha256};

use super::{node_blocked, Inputs, Presence, ServiceInfo};
use crate::announce::l2::Interfaces;
use ferrolb_allocator::Labels;

/// The node that announces `svc` on layer 2, or why none does.
///
/// Candidates: nodes selected by one of `ads`, alive, not excluded; with `Local`, those with an active
/// endpoint (or, when no node has one, a draining one). Order: the summed weight of the preferred-node
/// selectors that match, descending, then `sha256(node + "#" + first IP)`, ascending.
pub(super) fn owner(
    inputs: &Inputs<'_>,
    svc: &ServiceInfo,
    ads: &[&L2Ad],
) -> Result<String, String> {
    let first_ip = svc.ips.first().ok_or("the Service has no IP")?;
    let any_serving = svc.endpoints.iter().any(|e| e.can_serve());
    if !any_serving {
        return Err("the Service has no serving endpoint".into());
    }
    let mut candidates: Vec<(u32, [u8; 32], &str)> = Vec::new();
    for (name, node) in inputs.nodes {
        if node_blocked(name, Some(node)).is_some() {
            continue;
        }
        if inputs.live.is_some_and(|live| !live.contains(name)) {
            continue;
        }
        if !ads
            .iter()
            .any(|ad| any_matches(&ad.node_selectors, &node.labels))
        {
            continue;
        }
        if svc.local {
            let p = Presence::of(&svc.endpoints, name);
            let usable = p.active_here || (p.draining_here && !p.active_anywhere);
            if !usable {
                continue;
            }
        }
        let weight: u32 = ads
            .iter()
            .flat_map(|ad| &ad.preferred_node_selectors)
            .filter(|p| p.selector.matches(&node.labels))
            .map(|p| u32::from(p.weight))
            .sum();
        let hash: [u8; 32] = Sha256::digest(format!("{name}#{first_ip}")).into();
        candidates.push((weight, hash, name));
    }
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    candidates
        .first()
        .map(|c| c.2.to_owned())
        .ok_or_else(|| {
            if svc.local {
                "no live node selected by an L2Advertisement has a serving endpoint (externalTrafficPolicy Local)".into()
            } else {
                "no live node is selected by an L2Advertisement".into()
            }
        })
}

/// The interfaces to answer on: every eligible one if an applicable advertisement on this node names
/// none, else the union of those named.
pub(super) fn interfaces(ads: &[&L2Ad], node_labels: &Labels) -> Interfaces {
    let mine: Vec<&&L2Ad> = ads
        .iter()
        .filter(|ad| any_matches(&ad.node_selectors, node_labels))
        .collect();
    if mine.is_empty() || mine.iter().any(|ad| ad.interfaces.is_empty()) {
        return Interfaces::All;
    }
    Interfaces::Only(
        mine.iter()
            .flat_map(|ad| ad.interfaces.iter().cloned())
            .collect::<BTreeSet<String>>(),
    )
}
