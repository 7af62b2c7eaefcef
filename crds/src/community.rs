//! `Community` (`ferrolb.io/v1beta1`): named aliases for BGP community values.
//! Same schema as MetalLB's `metallb.io/v1beta1` `Community`.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state of a Community.
// kube's `printcolumn(name = …, type_ = …)` repeats keys, which clippy mistakes for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "Community",
    plural = "communities",
    singular = "community",
    namespaced,
    cel,
    derive = "PartialEq",
    shortname = "bgpcomm",
    category = "ferrolb",
    doc = "Community is a collection of named aliases for BGP communities, usable in BGPAdvertisement.communities.",
    printcolumn(
        name = "Aliases",
        type_ = "string",
        json_path = ".spec.communities[*].name"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(cel)]
#[serde(rename_all = "camelCase")]
pub struct CommunitySpec {
    /// The aliases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // Bounded so that the API server's cost estimate of the per-alias rules stays within its budget.
    #[schemars(length(max = 1024))]
    pub communities: Vec<CommunityAlias>,
}

/// One alias.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CommunityAlias {
    /// The name of the alias for the community.
    // Required, without a default: the API server checks defaults against the field's own rules, and an
    // empty default fails them.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self != ''").message("the alias name must not be empty"))]
    pub name: String,
    /// The BGP community value corresponding to the given name: a standard community `AA:NN` (two
    /// 16-bit numbers) or a large community `large:A:B:C` (three 32-bit numbers).
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]{1,5}:[0-9]{1,5}|large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10})$')")
        .message("value must be AA:NN or large:A:B:C"))]
    pub value: String,
}
