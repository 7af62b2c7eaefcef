//! What the speaker tells the cluster, computed without I/O: its `SpeakerState` status and the events on
//! Services when an announcement starts or stops.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_allocator::ServiceKey;
use ferrolb_bgp::session::PeerStatus;
use ferrolb_crds::{AnnouncedIp, PeerSessionStatus, SpeakerStateStatus};

use crate::decide::{Desired, Via};

/// The node's status (without the `updated` time, so that equal states compare equal).
pub fn speaker_status(
    node: &str,
    config_errors: &[String],
    desired: &Desired,
    sessions: &BTreeMap<String, PeerStatus>,
) -> SpeakerStateStatus {
    let peers: Vec<PeerSessionStatus> = sessions
        .iter()
        .map(|(name, s)| PeerSessionStatus {
            name: name.clone(),
            // `[2001:db8::1]:179` for IPv6, as a socket address is written.
            address: std::net::SocketAddr::new(s.peer, s.peer_port).to_string(),
            state: s.state.to_owned(),
            since: s.established_at.and_then(|t| {
                k8s_openapi::jiff::Timestamp::from_second(t as i64)
                    .ok()
                    .map(|t| t.to_string())
            }),
            prefixes_advertised: (s.prefixes_advertised_ipv4 + s.prefixes_advertised_ipv6) as i64,
            last_error: s.last_error.clone(),
        })
        .collect();
    let announced: Vec<AnnouncedIp> = desired
        .announced
        .iter()
        .map(|a| match &a.via {
            Via::Bgp { prefix, peers } => AnnouncedIp {
                service: a.service.to_string(),
                ip: a.ip.to_string(),
                protocol: "bgp".into(),
                peers: peers.iter().cloned().collect(),
                prefix: Some(prefix.to_string()),
                interfaces: Vec::new(),
            },
            Via::L2 { interfaces } => AnnouncedIp {
                service: a.service.to_string(),
                ip: a.ip.to_string(),
                protocol: "layer2".into(),
                peers: Vec::new(),
                prefix: None,
                interfaces: interfaces.iter().flatten().cloned().collect(),
            },
        })
        .collect();
    SpeakerStateStatus {
        node: node.to_owned(),
        config: if config_errors.is_empty() {
            "Valid".into()
        } else {
            "Invalid".into()
        },
        config_errors: config_errors.to_vec(),
        sessions_up: peers.iter().filter(|p| p.state == "Established").count() as i64,
        peers,
        announced_count: announced.len() as i64,
        announced,
        ..SpeakerStateStatus::default()
    }
}

/// An event to record on a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEvent {
    pub service: ServiceKey,
    /// `Announced` or `Withdrawn`.
    pub reason: &'static str,
    pub note: String,
}

fn protocol(via: &Via) -> &'static str {
    match via {
        Via::Bgp { .. } => "bgp",
        Via::L2 { .. } => "layer2",
    }
}

/// One announcement as events name it: the Service, the IP and the protocol.
type AnnouncementKey = (ServiceKey, IpAddr, &'static str);

/// The announcements that started or stopped between two decisions, one event per Service IP and
/// protocol.
pub fn announcement_events(node: &str, before: &Desired, after: &Desired) -> Vec<ServiceEvent> {
    let old: BTreeSet<AnnouncementKey> = index(before).into_keys().collect();
    events_between(node, &old, after)
}

/// The first decision after a start, against what the previous run of this speaker reported in its
/// `SpeakerState`: a restart that announces the same set emits no event.
pub fn events_after_restart(
    node: &str,
    previous: &SpeakerStateStatus,
    after: &Desired,
) -> Vec<ServiceEvent> {
    let old: BTreeSet<AnnouncementKey> = previous
        .announced
        .iter()
        .filter_map(|a| {
            let (namespace, name) = a.service.split_once('/')?;
            let proto = match a.protocol.as_str() {
                "bgp" => "bgp",
                "layer2" => "layer2",
                _ => return None,
            };
            Some((ServiceKey::new(namespace, name), a.ip.parse().ok()?, proto))
        })
        .collect();
    events_between(node, &old, after)
}

fn events_between(
    node: &str,
    old: &BTreeSet<AnnouncementKey>,
    after: &Desired,
) -> Vec<ServiceEvent> {
    let new = index(after);
    let mut events = Vec::new();
    for ((service, ip, proto), how) in &new {
        if !old.contains(&(service.clone(), *ip, proto)) {
            events.push(ServiceEvent {
                service: service.clone(),
                reason: "Announced",
                note: format!("node {node} announces {ip} {how}"),
            });
        }
    }
    for (service, ip, proto) in old {
        if !new.contains_key(&(service.clone(), *ip, proto)) {
            let why = after
                .not_announced
                .iter()
                .find(|n| n.service == *service && n.ip == *ip)
                .map(|n| n.reason.clone())
                .unwrap_or_else(|| "the Service no longer has this IP".into());
            events.push(ServiceEvent {
                service: service.clone(),
                reason: "Withdrawn",
                note: format!("node {node} stopped announcing {ip} ({proto}): {why}"),
            });
        }
    }
    events
}

/// Every announcement of a decision, with how it is made (for the event's note).
fn index(d: &Desired) -> BTreeMap<AnnouncementKey, String> {
    {
        let mut m: BTreeMap<(ServiceKey, IpAddr, &'static str), BTreeSet<String>> = BTreeMap::new();
        for a in &d.announced {
            let entry = m
                .entry((a.service.clone(), a.ip, protocol(&a.via)))
                .or_default();
            match &a.via {
                Via::Bgp { peers, .. } => entry.extend(peers.iter().cloned()),
                Via::L2 { interfaces } => {
                    entry.extend(interfaces.iter().flatten().cloned());
                }
            }
        }
        m.into_iter()
            .map(|(k, targets)| {
                let how = match (k.2, targets.is_empty()) {
                    ("bgp", _) => format!("over BGP to {}", join(&targets)),
                    (_, true) => "on layer 2".to_owned(),
                    (_, false) => format!("on layer 2 on {}", join(&targets)),
                };
                (k, how)
            })
            .collect()
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_bgp::fsm::FsmConfig;
    use ferrolb_bgp::session::SessionConfig;

    fn session(peer: &str, local: &str, port: u16) -> PeerStatus {
        let mut cfg = SessionConfig::new(
            peer.parse().unwrap(),
            FsmConfig::new(64512, 64500, local.parse().unwrap()),
        );
        cfg.peer_port = port;
        PeerStatus::new(&cfg)
    }

    /// A peer's address is written as a socket address: an IPv6 one in brackets, so that its port cannot
    /// be read as a last group of the address.
    #[test]
    fn peer_addresses_are_socket_addresses() {
        let sessions = BTreeMap::from([
            (
                "v4".to_owned(),
                session("198.51.100.1", "198.51.100.2", 179),
            ),
            (
                "v6".to_owned(),
                session("2001:db8:100::1", "198.51.100.2", 179),
            ),
            (
                "v6-port".to_owned(),
                session("2001:db8:100::2", "198.51.100.2", 1179),
            ),
        ]);
        let s = speaker_status("node1", &[], &Desired::default(), &sessions);
        let addresses: Vec<(&str, &str)> = s
            .peers
            .iter()
            .map(|p| (p.name.as_str(), p.address.as_str()))
            .collect();
        assert_eq!(
            addresses,
            [
                ("v4", "198.51.100.1:179"),
                ("v6", "[2001:db8:100::1]:179"),
                ("v6-port", "[2001:db8:100::2]:1179"),
            ]
        );
        for p in &s.peers {
            assert!(
                p.address.parse::<std::net::SocketAddr>().is_ok(),
                "{}",
                p.address
            );
        }
    }
}
