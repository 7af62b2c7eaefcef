//! `L2Advertisement` (`ferrolb.io/v1beta1`): announce pool addresses on the local network with ARP/NDP.
//! Same schema as MetalLB's `metallb.io/v1beta1` `L2Advertisement`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state of an L2Advertisement.
// kube's `printcolumn(name = …, type_ = …)` repeats keys, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    plural = "l2advertisements",
    singular = "l2advertisement",
    namespaced,
    cel,
    derive = "PartialEq",
    shortname = "l2adv",
    category = "ferrolb",
    doc = "L2Advertisement announces the LoadBalancer IPs of the selected pools on the local network (ARP for IPv4, NDP for IPv6).",
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
    printcolumn(name = "Interfaces", type_ = "string", json_path = ".spec.interfaces"),
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
#[x_kube(cel)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
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

    /// Limits the nodes that may announce the IPs. Empty: all nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,

    /// Announce only from these interfaces. Unset: every interface of the node except the excluded
    /// ones (docker*, veth*, lo, cni*, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,

    /// Only Services matching one of these selectors are announced by this advertisement. Empty: all
    /// Services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,

    /// Soft preference for the announcing node: the weights of the selectors matching a node are added
    /// up (across selectors and advertisements) and the highest total wins the election.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub preferred_node_selectors: Vec<PreferredNodeSelector>,
}

/// A weighted node preference.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PreferredNodeSelector {
    /// Weight added to the nodes matching preference, 1 to 100.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("weight must be between 1 and 100"))]
    pub weight: i32,
    /// The nodes this preference applies to.
    pub preference: LabelSelector,
}
