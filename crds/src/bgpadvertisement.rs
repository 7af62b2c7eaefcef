//! `BGPAdvertisement` (`ferrolb.io/v1beta1`): how pool addresses are announced over BGP.
//! Same schema as MetalLB's `metallb.io/v1beta1` `BGPAdvertisement`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Default IPv4 aggregation length: every address announced as a /32.
pub const DEFAULT_AGGREGATION_LENGTH: i32 = 32;
/// Default IPv6 aggregation length: every address announced as a /128.
pub const DEFAULT_AGGREGATION_LENGTH_V6: i32 = 128;

/// Desired state of a BGPAdvertisement.
// kube's `printcolumn(name = …, type_ = …)` repeats keys, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    plural = "bgpadvertisements",
    singular = "bgpadvertisement",
    namespaced,
    cel,
    derive = "PartialEq",
    shortname = "bgpadv",
    category = "ferrolb",
    doc = "BGPAdvertisement advertises the IPs of the selected IPAddressPools via BGP, with the given BGP attributes.",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(
        name = "IPAddressPool Selectors",
        type_ = "string",
        json_path = ".spec.ipAddressPoolSelectors"
    ),
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
    printcolumn(
        name = "Aggregation",
        type_ = "integer",
        json_path = ".spec.aggregationLength",
        priority = 1
    ),
    printcolumn(
        name = "Aggregation V6",
        type_ = "integer",
        json_path = ".spec.aggregationLengthV6",
        priority = 1
    ),
    printcolumn(
        name = "Communities",
        type_ = "string",
        json_path = ".spec.communities",
        priority = 1
    ),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = 10
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.serviceSelectors) || size(self.serviceSelectors) == 0 || ((!has(self.aggregationLength) || self.aggregationLength == 32) && (!has(self.aggregationLengthV6) || self.aggregationLengthV6 == 128))")
        .message("serviceSelectors can only be used with the default aggregation lengths (32 and 128)")
        .field_path(".serviceSelectors"),
)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// Roll the /32s of a pool up into larger IPv4 prefixes of this length (1 to 32, default 32). An
    /// aggregate may not be wider than a CIDR of the pool it applies to.
    #[serde(default = "default_aggregation_length")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 32").message("aggregationLength must be between 1 and 32"))]
    pub aggregation_length: i32,

    /// Roll the /128s of a pool up into larger IPv6 prefixes of this length (1 to 128, default 128).
    #[serde(
        rename = "aggregationLengthV6",
        default = "default_aggregation_length_v6"
    )]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 128").message("aggregationLengthV6 must be between 1 and 128"))]
    pub aggregation_length_v6: i32,

    /// The BGP LOCAL_PREF attribute (sent to iBGP peers only); paths with a higher local preference
    /// are preferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 4294967295u32))]
    pub local_pref: Option<u32>,

    /// BGP communities attached to the announcement. Each item is a standard community (`65535:65282`), a
    /// large community (`large:64512:1:2`) or the name of an alias defined in a Community object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,

    /// The IPAddressPools to advertise, by name. With no names and no selectors, every pool is advertised.
    #[serde(
        rename = "ipAddressPools",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_address_pools: Vec<String>,

    /// Selectors for the IPAddressPools to advertise. With no names and no selectors, every pool is
    /// advertised.
    #[serde(
        rename = "ipAddressPoolSelectors",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ip_address_pool_selectors: Vec<LabelSelector>,

    /// Limits the nodes announcing the IPs (acting as next hops). Empty: all nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,

    /// The BGPPeers (by name) the IPs are advertised to. Empty: all peers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,

    /// Only Services matching one of these selectors are advertised by this advertisement. Empty: all
    /// Services. Requires the default aggregation lengths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

fn default_aggregation_length() -> i32 {
    DEFAULT_AGGREGATION_LENGTH
}

fn default_aggregation_length_v6() -> i32 {
    DEFAULT_AGGREGATION_LENGTH_V6
}
