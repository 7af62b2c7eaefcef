//! `BFDProfile` (`ferrolb.io/v1beta1`): BFD session settings referenced by `BGPPeer.bfdProfile`.
//! Same schema as MetalLB's `metallb.io/v1beta1` `BFDProfile`, with its defaults made explicit.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Default receive and transmit interval, milliseconds.
pub const DEFAULT_INTERVAL_MS: u32 = 300;
/// Default detection multiplier.
pub const DEFAULT_DETECT_MULTIPLIER: u32 = 3;
/// Default echo interval, milliseconds.
pub const DEFAULT_ECHO_INTERVAL_MS: u32 = 50;
/// Default minimum TTL for multi-hop sessions.
pub const DEFAULT_MINIMUM_TTL: u32 = 254;

/// Desired state of a BFDProfile.
// kube's `printcolumn(name = …, type_ = …)` repeats keys, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BFDProfile",
    plural = "bfdprofiles",
    singular = "bfdprofile",
    namespaced,
    cel,
    derive = "PartialEq",
    shortname = "bfdp",
    category = "ferrolb",
    doc = "BFDProfile represents the settings of the BFD session that can be optionally associated with a BGP session.",
    printcolumn(
        name = "Passive Mode",
        type_ = "boolean",
        json_path = ".spec.passiveMode"
    ),
    printcolumn(
        name = "Transmit Interval",
        type_ = "integer",
        json_path = ".spec.transmitInterval"
    ),
    printcolumn(
        name = "Receive Interval",
        type_ = "integer",
        json_path = ".spec.receiveInterval"
    ),
    printcolumn(
        name = "Multiplier",
        type_ = "integer",
        json_path = ".spec.detectMultiplier"
    ),
    printcolumn(
        name = "Echo Mode",
        type_ = "boolean",
        json_path = ".spec.echoMode",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(cel)]
#[serde(rename_all = "camelCase")]
pub struct BFDProfileSpec {
    /// The minimum interval at which this system can receive control packets, in milliseconds
    /// (10 to 60000, default 300).
    #[serde(default = "default_interval")]
    #[x_kube(validation = Rule::new("self >= 10 && self <= 60000").message("receiveInterval must be between 10 and 60000 milliseconds"))]
    pub receive_interval: u32,

    /// The minimum transmission interval (less jitter) this system wants to use to send control
    /// packets, in milliseconds (10 to 60000, default 300).
    #[serde(default = "default_interval")]
    #[x_kube(validation = Rule::new("self >= 10 && self <= 60000").message("transmitInterval must be between 10 and 60000 milliseconds"))]
    pub transmit_interval: u32,

    /// Detection multiplier: the remote transmission interval times this value is the time after which
    /// the session is declared down (2 to 255, default 3).
    #[serde(default = "default_detect_multiplier")]
    #[x_kube(validation = Rule::new("self >= 2 && self <= 255").message("detectMultiplier must be between 2 and 255"))]
    pub detect_multiplier: u32,

    /// The minimal echo receive transmission interval this system can handle, in milliseconds
    /// (10 to 60000, default 50).
    #[serde(default = "default_echo_interval")]
    #[x_kube(validation = Rule::new("self >= 10 && self <= 60000").message("echoInterval must be between 10 and 60000 milliseconds"))]
    pub echo_interval: u32,

    /// Enables the echo transmission mode. Disabled by default, not supported on multi-hop sessions nor on
    /// peers advertising IPv6 pools.
    #[serde(default)]
    pub echo_mode: bool,

    /// A passive session does not start the connection; it waits for control packets from the peer.
    #[serde(default)]
    pub passive_mode: bool,

    /// For multi-hop sessions only: the minimum expected TTL of incoming control packets
    /// (1 to 254, default 254).
    #[serde(rename = "minimumTtl", default = "default_minimum_ttl")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 254").message("minimumTtl must be between 1 and 254"))]
    pub minimum_ttl: u32,
}

impl Default for BFDProfileSpec {
    fn default() -> Self {
        BFDProfileSpec {
            receive_interval: DEFAULT_INTERVAL_MS,
            transmit_interval: DEFAULT_INTERVAL_MS,
            detect_multiplier: DEFAULT_DETECT_MULTIPLIER,
            echo_interval: DEFAULT_ECHO_INTERVAL_MS,
            echo_mode: false,
            passive_mode: false,
            minimum_ttl: DEFAULT_MINIMUM_TTL,
        }
    }
}

fn default_interval() -> u32 {
    DEFAULT_INTERVAL_MS
}

fn default_detect_multiplier() -> u32 {
    DEFAULT_DETECT_MULTIPLIER
}

fn default_echo_interval() -> u32 {
    DEFAULT_ECHO_INTERVAL_MS
}

fn default_minimum_ttl() -> u32 {
    DEFAULT_MINIMUM_TTL
}
