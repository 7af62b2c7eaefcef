//! `BGPPeer` (`ferrolb.io/v1beta2`): a BGP session from the speakers to a router.
//! Same schema as MetalLB's `metallb.io/v1beta2` `BGPPeer` (MetalLB's deprecated v1beta1 is not served).

use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::GoDuration;

/// The default TCP port of a BGP session.
pub const DEFAULT_PEER_PORT: u16 = 179;

/// Desired state of a BGPPeer.
// kube's `printcolumn(name = …, type_ = …)` repeats keys, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta2",
    kind = "BGPPeer",
    plural = "bgppeers",
    singular = "bgppeer",
    namespaced,
    cel,
    derive = "PartialEq",
    shortname = "bgpp",
    category = "ferrolb",
    doc = "BGPPeer is a BGP session to a router, opened by the speakers on the nodes its nodeSelectors select.",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(name = "ASN", type_ = "integer", json_path = ".spec.peerASN"),
    printcolumn(
        name = "Dynamic ASN",
        type_ = "string",
        json_path = ".spec.dynamicASN",
        priority = 1
    ),
    printcolumn(
        name = "My ASN",
        type_ = "integer",
        json_path = ".spec.myASN",
        priority = 1
    ),
    printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
    printcolumn(
        name = "Multi Hops",
        type_ = "boolean",
        json_path = ".spec.ebgpMultiHop"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    cel,
    validation = Rule::new("has(self.peerASN) != has(self.dynamicASN)")
        .message("exactly one of peerASN and dynamicASN must be set")
        .field_path(".peerASN"),
    validation = Rule::new("has(self.peerAddress) != has(self.interface)")
        .message("exactly one of peerAddress and interface must be set")
        .field_path(".peerAddress"),
    validation = Rule::new("!has(self.password) || self.password == '' || !has(self.passwordSecret) || !has(self.passwordSecret.name)")
        .message("set either password or passwordSecret, not both")
        .field_path(".passwordSecret"),
    validation = Rule::new("!has(self.keepaliveTime) || !has(self.holdTime) || !self.keepaliveTime.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || !self.holdTime.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || duration(self.keepaliveTime) <= duration(self.holdTime)")
        .message("keepaliveTime must not be longer than holdTime")
        .field_path(".keepaliveTime"),
    validation = Rule::new("!has(self.keepaliveTime) || !self.keepaliveTime.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || duration(self.keepaliveTime) != duration('0s') || !has(self.holdTime) || !self.holdTime.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || duration(self.holdTime) == duration('0s')")
        .message("keepaliveTime 0 (no keepalives) needs holdTime 0, or the peer drops the session when its hold timer expires")
        .field_path(".keepaliveTime"),
    validation = Rule::new("!(has(self.ebgpMultiHop) && self.ebgpMultiHop) || !((has(self.peerASN) && self.peerASN == (has(self.localASN) ? self.localASN : self.myASN)) || (has(self.dynamicASN) && self.dynamicASN == 'internal'))")
        .message("ebgpMultiHop applies to eBGP sessions only; this peer is iBGP (same AS on both ends)")
        .field_path(".ebgpMultiHop"),
    validation = Rule::new("!has(self.sourceAddress) || !has(self.peerAddress) || !isIP(self.sourceAddress) || !isIP(self.peerAddress) || ip(self.sourceAddress).family() == ip(self.peerAddress).family()")
        .message("sourceAddress and peerAddress must be of the same IP family")
        .field_path(".sourceAddress"),
    validation = Rule::new("(has(self.enableGracefulRestart) && self.enableGracefulRestart) == (has(oldSelf.enableGracefulRestart) && oldSelf.enableGracefulRestart)")
        .message("enableGracefulRestart cannot be changed after creation")
        .field_path(".enableGracefulRestart"),
)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    /// AS number to use for the local end of the session.
    #[serde(rename = "myASN")]
    #[schemars(range(max = 4294967295u32))]
    #[x_kube(validation = Rule::new("self != 0").message("myASN must not be 0"))]
    pub my_asn: u32,

    /// AS number to expect from the remote end of the session. peerASN and dynamicASN are mutually
    /// exclusive and one of them must be specified.
    #[serde(rename = "peerASN", default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 4294967295u32))]
    #[x_kube(validation = Rule::new("self != 0").message("peerASN must not be 0"))]
    pub peer_asn: Option<u32>,

    /// Accept any remote AS of this type instead of a fixed peerASN: internal (the remote AS must equal
    /// myASN) or external (the remote AS must differ from myASN).
    #[serde(
        rename = "dynamicASN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dynamic_asn: Option<DynamicASNMode>,

    /// The local AS to present to this peer instead of myASN (local-as, no-prepend, replace-as).
    #[serde(rename = "localASN", default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 4294967295u32))]
    #[x_kube(validation = Rule::new("self != 0").message("localASN must not be 0"))]
    pub local_asn: Option<u32>,

    /// Address to dial when establishing the session. peerAddress and interface are mutually exclusive
    /// and one of them must be specified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("isIP(self)").message("peerAddress must be an IPv4 or IPv6 address"))]
    pub peer_address: Option<String>,

    /// Interface for unnumbered BGP peering (the peer is found on the link, RFC 5549/8950).
    /// peerAddress and interface are mutually exclusive and one of them must be specified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Linux interface names (altnames included) are shorter than 128 characters.
    #[schemars(length(max = 127))]
    pub interface: Option<String>,

    /// Source address to use when establishing the session; must be configured on a local interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("isIP(self)").message("sourceAddress must be an IPv4 or IPv6 address"))]
    pub source_address: Option<String>,

    /// Port to dial when establishing the session.
    #[serde(default = "default_peer_port")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 16384").message("peerPort must be between 1 and 16384"))]
    pub peer_port: u16,

    /// Requested BGP hold time, per RFC 4271: 0 (no hold timer and no keepalives) or 3s to 65535s, in
    /// whole seconds. Default 90s; if only keepaliveTime is set, three times keepaliveTime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<GoDuration>")]
    #[x_kube(
        validation = Rule::new("!self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || duration(self) == duration('0s') || (duration(self) >= duration('3s') && duration(self) <= duration('65535s'))")
            .message("holdTime must be 0 or between 3s and 65535s"),
        validation = Rule::new("!self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || duration(self).getMilliseconds() % 1000 == 0")
            .message("holdTime must be a whole number of seconds")
    )]
    pub hold_time: Option<String>,

    /// Requested BGP keepalive time, per RFC 4271; at most holdTime. Default a third of holdTime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<GoDuration>")]
    #[x_kube(
        validation = Rule::new("!self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || duration(self) >= duration('0s')").message("keepaliveTime must not be negative"),
        validation = Rule::new("!self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || duration(self).getMilliseconds() % 1000 == 0")
            .message("keepaliveTime must be a whole number of seconds")
    )]
    pub keepalive_time: Option<String>,

    /// Requested BGP connect time, controls how long BGP waits between connection attempts to a
    /// neighbor: 1s to 65535s, in whole seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<GoDuration>")]
    #[x_kube(
        validation = Rule::new("!self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || (duration(self).getSeconds() >= 1 && duration(self).getSeconds() <= 65535)")
            .message("connect time should be between 1 seconds to 65535"),
        validation = Rule::new("!self.matches('^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$') || duration(self).getMilliseconds() % 1000 == 0")
            .message("connect time should contain a whole number of seconds")
    )]
    pub connect_time: Option<String>,

    /// BGP router ID to advertise to the peer (an IPv4 address).
    #[serde(rename = "routerID", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("isIP(self) && ip(self).family() == 4").message("routerID must be an IPv4 address"))]
    pub router_id: Option<String>,

    /// Only connect to this peer on nodes that match one of these selectors (empty: all nodes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,

    /// Authentication password for routers enforcing TCP MD5 authenticated sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 80))]
    pub password: Option<String>,

    /// Name of the authentication secret for the BGP peer, exclusive with password. The secret must be of
    /// type kubernetes.io/basic-auth, live in the same namespace as ferrolb, and hold the password under
    /// the key "password".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("has(self.name) ? self.name != '' : !has(self.__namespace__)").message("passwordSecret.name is required"))]
    pub password_secret: Option<SecretReference>,

    /// The name of the BFDProfile to be used for the BFD session associated to the BGP session. If not
    /// set, the BFD session won't be set up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_profile: Option<String>,

    /// Graceful restart (RFC 4724): the peer keeps forwarding along known routes while the speaker
    /// restarts. Immutable, because changing it requires a restart of the BGP session.
    #[serde(default)]
    pub enable_graceful_restart: bool,

    /// The eBGP peer is more than one hop away (TTL 255 instead of 1). Not allowed for iBGP peers.
    #[serde(rename = "ebgpMultiHop", default)]
    pub ebgp_multi_hop: bool,

    /// Peer using an interface belonging to this host VRF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,

    /// Deprecated, kept for compatibility: IPv4 routes go over IPv4 sessions and IPv6 routes over IPv6
    /// sessions unless dualStackAddressFamily is set.
    #[serde(rename = "disableMP", default)]
    pub disable_mp: bool,

    /// Carry both address families over this session, not only the family of peerAddress.
    #[serde(default)]
    pub dual_stack_address_family: bool,
}

/// How the remote AS is accepted when no fixed peerASN is given.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum DynamicASNMode {
    /// The remote AS must equal the local AS (iBGP).
    Internal,
    /// The remote AS must differ from the local AS (eBGP).
    External,
}

fn default_peer_port() -> u16 {
    DEFAULT_PEER_PORT
}
