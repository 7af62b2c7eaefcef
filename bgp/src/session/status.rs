//! What a session shows about itself: state, negotiated parameters, counters, last errors.

use super::SessionConfig;
use crate::fsm::{Negotiated, ReceivedCounts, State};
use crate::rib_out::Unsent;
use crate::wire::{Family, MessageType, Notification};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MessageCounters {
    pub open: u64,
    pub update: u64,
    pub notification: u64,
    pub keepalive: u64,
    pub route_refresh: u64,
}

impl MessageCounters {
    pub fn count(&mut self, t: MessageType) {
        *match t {
            MessageType::Open => &mut self.open,
            MessageType::Update => &mut self.update,
            MessageType::Notification => &mut self.notification,
            MessageType::Keepalive => &mut self.keepalive,
            MessageType::RouteRefresh => &mut self.route_refresh,
        } += 1;
    }

    pub fn get(&self, t: MessageType) -> u64 {
        match t {
            MessageType::Open => self.open,
            MessageType::Update => self.update,
            MessageType::Notification => self.notification,
            MessageType::Keepalive => self.keepalive,
            MessageType::RouteRefresh => self.route_refresh,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotificationRecord {
    pub code: u8,
    pub subcode: u8,
    /// e.g. "Cease/Administrative Shutdown".
    pub name: String,
    /// The shutdown communication, if any.
    pub text: Option<String>,
}

impl From<&Notification> for NotificationRecord {
    fn from(n: &Notification) -> Self {
        NotificationRecord {
            code: n.code,
            subcode: n.subcode,
            name: n.name(),
            text: n.shutdown_communication(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NegotiatedSummary {
    pub hold_time: u16,
    pub keepalive_time: u16,
    pub four_octet_as: bool,
    pub families: Vec<String>,
    pub route_refresh: bool,
    pub peer_graceful_restart: bool,
    pub remote_id: String,
    pub remote_asn: u32,
}

impl From<&Negotiated> for NegotiatedSummary {
    fn from(n: &Negotiated) -> Self {
        NegotiatedSummary {
            hold_time: n.hold_time,
            keepalive_time: n.keepalive_time,
            four_octet_as: n.four_octet_as,
            families: n.families.iter().map(Family::to_string).collect(),
            route_refresh: n.route_refresh,
            peer_graceful_restart: n.peer_graceful_restart.is_some(),
            remote_id: n.remote_id.to_string(),
            remote_asn: n.remote_asn,
        }
    }
}

/// A snapshot of one peer, published on every change.
#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    pub peer: IpAddr,
    pub peer_port: u16,
    pub peer_asn: u32,
    pub state: &'static str,
    #[serde(skip)]
    pub fsm_state: State,
    /// Seconds since the epoch when the session reached Established.
    pub established_at: Option<u64>,
    pub local_address: Option<SocketAddr>,
    pub negotiated: Option<NegotiatedSummary>,
    pub messages_sent: MessageCounters,
    pub messages_received: MessageCounters,
    pub prefixes_advertised_ipv4: usize,
    pub prefixes_advertised_ipv6: usize,
    /// Routes that could not be sent, with the reason (family not negotiated, no next hop …).
    pub unsent: Vec<(String, usize, String)>,
    pub received: ReceivedSummary,
    pub end_of_rib_sent: bool,
    pub end_of_rib_received: Vec<String>,
    /// Times the session left Established.
    pub flaps: u64,
    pub collisions: u64,
    pub connect_attempts: u64,
    pub last_error: Option<String>,
    pub last_notification_sent: Option<NotificationRecord>,
    pub last_notification_received: Option<NotificationRecord>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReceivedSummary {
    pub announced: u64,
    pub withdrawn: u64,
    pub treated_as_withdraw: u64,
    pub prefixes: u64,
}

impl From<ReceivedCounts> for ReceivedSummary {
    fn from(r: ReceivedCounts) -> Self {
        ReceivedSummary {
            announced: r.announced,
            withdrawn: r.withdrawn,
            treated_as_withdraw: r.treated_as_withdraw,
            prefixes: r.prefixes,
        }
    }
}

impl PeerStatus {
    /// The status of a session that has not started yet (Idle, nothing counted).
    pub fn new(cfg: &SessionConfig) -> Self {
        PeerStatus {
            peer: cfg.peer_address,
            peer_port: cfg.peer_port,
            peer_asn: cfg.fsm.peer_asn,
            state: State::Idle.name(),
            fsm_state: State::Idle,
            established_at: None,
            local_address: None,
            negotiated: None,
            messages_sent: MessageCounters::default(),
            messages_received: MessageCounters::default(),
            prefixes_advertised_ipv4: 0,
            prefixes_advertised_ipv6: 0,
            unsent: Vec::new(),
            received: ReceivedSummary::default(),
            end_of_rib_sent: false,
            end_of_rib_received: Vec::new(),
            flaps: 0,
            collisions: 0,
            connect_attempts: 0,
            last_error: None,
            last_notification_sent: None,
            last_notification_received: None,
        }
    }

    pub fn is_established(&self) -> bool {
        self.fsm_state == State::Established
    }

    /// How long the session has been Established.
    pub fn uptime(&self) -> Option<Duration> {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(self.established_at?);
        SystemTime::now().duration_since(at).ok()
    }

    pub(super) fn unsent_from(
        unsent: &std::collections::BTreeMap<Family, Unsent>,
    ) -> Vec<(String, usize, String)> {
        unsent
            .iter()
            .map(|(f, u)| (f.to_string(), u.count, u.reason.clone()))
            .collect()
    }
}
