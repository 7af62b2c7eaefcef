//! `SpeakerState` (`ferrolb.io/v1beta1`): what one node's speaker announces and how its sessions are, one
//! object per node, named after it, written only by that node's speaker. ferrolb's own kind (MetalLB
//! spreads this over ServiceBGPStatus, ServiceL2Status and ConfigurationState objects, and reports the
//! configured peers rather than the sessions' real state).

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Empty: the object only reports.
// kube's `printcolumn(name = …, type_ = …)` repeats keys, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "SpeakerState",
    plural = "speakerstates",
    singular = "speakerstate",
    namespaced,
    status = "SpeakerStateStatus",
    derive = "PartialEq",
    shortname = "speaker",
    category = "ferrolb",
    doc = "SpeakerState reports, for one node, the speaker's BGP sessions, the Service IPs it announces and whether its configuration is valid.",
    printcolumn(name = "Config", type_ = "string", json_path = ".status.config"),
    printcolumn(
        name = "Sessions Up",
        type_ = "integer",
        json_path = ".status.sessionsUp"
    ),
    printcolumn(
        name = "Announced",
        type_ = "integer",
        json_path = ".status.announcedCount"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Heartbeat", type_ = "date", json_path = ".status.heartbeat"),
    printcolumn(name = "Updated", type_ = "date", json_path = ".status.updated")
)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerStateSpec {}

/// What the speaker of one node reports.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerStateStatus {
    /// The node.
    #[serde(default)]
    pub node: String,
    /// `Valid`, or `Invalid` when the latest configuration has errors (the last valid one is in force).
    #[serde(default)]
    pub config: String,
    /// The configuration problems, one line each, when `config` is `Invalid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_errors: Vec<String>,
    /// Number of Established sessions.
    #[serde(default)]
    pub sessions_up: i64,
    /// Every BGP session this node runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<PeerSessionStatus>,
    /// Number of announced Service IPs (all protocols).
    #[serde(default)]
    pub announced_count: i64,
    /// Every Service IP this node announces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announced: Vec<AnnouncedIp>,
    /// When this status's content last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// When the speaker last said it is alive (RFC 3339). A running speaker renews it every 15 s; the
    /// leading controller marks the speaker not ready when it is older than 45 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<String>,
    /// `Ready`: `True` while the speaker runs and renews its heartbeat; `False` with reason `Stopped` when
    /// it shut down, or `HeartbeatStale` when the controller found its heartbeat too old (killed, node
    /// down, cut off from the API server).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub conditions: Vec<SpeakerCondition>,
}

/// A condition of a speaker, in the shape of Kubernetes' `metav1.Condition`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerCondition {
    /// The condition's type (`Ready`).
    #[schemars(length(max = 316))]
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[schemars(length(max = 16))]
    pub status: String,
    /// Why, in one CamelCase word.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub reason: String,
    /// Why, in words.
    #[serde(default)]
    #[schemars(length(max = 32768))]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// The `Ready` condition's type.
pub const READY: &str = "Ready";

impl SpeakerStateStatus {
    /// The `Ready` condition, if any.
    pub fn ready(&self) -> Option<&SpeakerCondition> {
        self.conditions.iter().find(|c| c.type_ == READY)
    }
}

/// The `Ready` condition after `previous`: the transition time moves only when the status changes.
pub fn ready_condition(
    previous: Option<&SpeakerCondition>,
    ready: bool,
    reason: &str,
    message: &str,
    now: &str,
) -> SpeakerCondition {
    let status = if ready { "True" } else { "False" };
    let last_transition_time = match previous {
        Some(p) if p.status == status && p.last_transition_time.is_some() => {
            p.last_transition_time.clone()
        }
        _ => Some(now.to_owned()),
    };
    SpeakerCondition {
        type_: READY.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time,
    }
}

/// One BGP session.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PeerSessionStatus {
    /// The BGPPeer's name.
    pub name: String,
    /// `address:port`.
    pub address: String,
    /// The RFC 4271 state (`Idle`, `Connect`, `Active`, `OpenSent`, `OpenConfirm`, `Established`).
    pub state: String,
    /// When the session reached Established (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Prefixes advertised to the peer.
    #[serde(default)]
    pub prefixes_advertised: i64,
    /// The last error, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One announced Service IP.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnnouncedIp {
    /// `namespace/name`.
    pub service: String,
    /// The Service IP.
    pub ip: String,
    /// `bgp` or `layer2`.
    pub protocol: String,
    /// BGP: the peers it is advertised to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// BGP: the advertised prefix (after aggregation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Layer 2: the interfaces it is answered on (empty: every eligible one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
}
