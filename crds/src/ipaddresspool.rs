//! `IPAddressPool` (`ferrolb.io/v1beta1`): the addresses ferrolb may hand to LoadBalancer Services.
//! Same schema as MetalLB's `metallb.io/v1beta1` `IPAddressPool`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state of an IPAddressPool.
// kube's `printcolumn(name = …, type_ = …)` repeats keys, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    plural = "ipaddresspools",
    singular = "ipaddresspool",
    namespaced,
    cel,
    status = "IPAddressPoolStatus",
    derive = "PartialEq",
    shortname = "ipp",
    category = "ferrolb",
    doc = "IPAddressPool represents a pool of IP addresses that can be allocated to LoadBalancer services.",
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses"),
    printcolumn(
        name = "Auto Assign",
        type_ = "boolean",
        json_path = ".spec.autoAssign"
    ),
    printcolumn(
        name = "Avoid Buggy IPs",
        type_ = "boolean",
        json_path = ".spec.avoidBuggyIPs"
    ),
    printcolumn(
        name = "Assigned IPv4",
        type_ = "integer",
        json_path = ".status.assignedIPv4"
    ),
    printcolumn(
        name = "Available IPv4",
        type_ = "integer",
        json_path = ".status.availableIPv4"
    ),
    printcolumn(
        name = "Assigned IPv6",
        type_ = "integer",
        json_path = ".status.assignedIPv6"
    ),
    printcolumn(
        name = "Available IPv6",
        type_ = "integer",
        json_path = ".status.availableIPv6"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(cel)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// A list of IP address ranges over which ferrolb has authority. You can list multiple ranges in a
    /// single pool, they will all share the same settings. Each range can be either a CIDR prefix
    /// (`198.51.100.0/24`, `2001:db8::/120`) or an explicit `start-end` range of IPs
    /// (`203.0.113.10-203.0.113.20`). IPv4 and IPv6 ranges may be mixed in one pool.
    #[x_kube(validation = Rule::new("size(self) > 0").message("at least one address range is required"))]
    // Bounded for the API server's CEL cost estimate: an IPv6 range `a - b` is at most 81 characters.
    #[schemars(length(max = 1024), inner(length(max = 128)))]
    pub addresses: Vec<String>,

    /// AutoAssign flag used to prevent ferrolb from automatic allocation for a pool. When false the pool
    /// is used only by Services that ask for it (pool annotation or an explicit IP).
    #[serde(default = "default_true")]
    pub auto_assign: bool,

    /// AvoidBuggyIPs prevents addresses ending with .0 and .255 to be used by a pool.
    #[serde(rename = "avoidBuggyIPs", default)]
    pub avoid_buggy_ips: bool,

    /// Restricts the pool to specific namespaces and/or Services. The controller uses the matching
    /// pool with the lowest priority value; pools without a priority are used only if the pools with
    /// priority cannot be used. A pool with serviceAllocation is never used for other Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

/// ServiceAllocation defines ip pool allocation to namespace and/or service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Priority given to the pool when allocating an IP to a Service: lower values are preferred;
    /// 0 (unset) is the lowest priority.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,

    /// Namespaces on which the pool can be used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,

    /// Label selectors selecting the namespaces for which the pool can be used, an alternative to the
    /// namespace list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,

    /// Label selectors selecting the Services for which the pool can be used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// Observed state of an IPAddressPool, written by the controller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct IPAddressPoolStatus {
    /// Number of assigned IPv4 addresses.
    #[serde(rename = "assignedIPv4", default)]
    pub assigned_ipv4: i64,
    /// Number of assigned IPv6 addresses.
    #[serde(rename = "assignedIPv6", default)]
    pub assigned_ipv6: i64,
    /// Number of available IPv4 addresses.
    #[serde(rename = "availableIPv4", default)]
    pub available_ipv4: i64,
    /// Number of available IPv6 addresses (an IPv6 range with 63 or more host bits counts as the
    /// largest int64).
    #[serde(rename = "availableIPv6", default)]
    pub available_ipv6: i64,
    /// Assigned IPs that a later edit of the pool (or of the Service) left outside the pool's rules. ferrolb
    /// keeps them rather than renumbering the Service; each entry says why it no longer fits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<PoolConflictStatus>,
}

/// An assigned IP kept although the pool no longer admits it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolConflictStatus {
    /// The Service holding the IP, as `namespace/name`.
    pub service: String,
    /// The IP.
    pub ip: String,
    /// Why the pool no longer admits it, in plain words.
    pub reason: String,
}

fn default_true() -> bool {
    true
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}
