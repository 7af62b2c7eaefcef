//! ferrolb's API: the custom resources of group `ferrolb.io`, their CRDs, manifest loading and the
//! validation that turns a set of objects into a [`Config`] for the allocator and the speakers.
//!
//! The kinds, versions, JSON field names and defaults are MetalLB's (`metallb.io`), so migrating from
//! MetalLB is a change of `apiVersion`:
//!
//! | kind | version | module |
//! |---|---|---|
//! | `IPAddressPool` | `v1beta1` | [`ipaddresspool`] |
//! | `BGPPeer` | `v1beta2` | [`bgppeer`] |
//! | `BGPAdvertisement` | `v1beta1` | [`bgpadvertisement`] |
//! | `L2Advertisement` | `v1beta1` | [`l2advertisement`] |
//! | `Community` | `v1beta1` | [`community`] |
//! | `BFDProfile` | `v1beta1` | [`bfdprofile`] |
//!
//! Rules the API server can check on one object are CEL rules in the CRD schemas (unit-tested
//! client-side with the `validate_cel` functions kube derives); [`validate()`] checks those again and
//! everything that needs the whole set (overlapping pools, references, aggregation lengths against
//! pools, community aliases, …), reporting every problem with its object and field.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod bfdprofile;
pub mod bgpadvertisement;
pub mod bgppeer;
pub mod check;
pub mod community;
pub mod config;
pub mod crdgen;
pub mod duration;
pub mod ipaddresspool;
pub mod l2advertisement;
pub mod manifest;
pub mod selector;
pub mod speakerstate;
pub mod validate;

use std::fmt;

pub use bfdprofile::{BFDProfile, BFDProfileSpec};
pub use bgpadvertisement::{BGPAdvertisement, BGPAdvertisementSpec};
pub use bgppeer::{BGPPeer, BGPPeerSpec, DynamicASNMode};
pub use community::{Community, CommunityAlias, CommunitySpec};
pub use config::Config;
pub use duration::{DurationError, GoDuration};
pub use ipaddresspool::{
    IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, PoolConflictStatus, ServiceAllocation,
};
pub use l2advertisement::{L2Advertisement, L2AdvertisementSpec, PreferredNodeSelector};
pub use manifest::{load_paths, load_str, LoadError, Objects, Source};
pub use speakerstate::{
    AnnouncedIp, PeerSessionStatus, SpeakerCondition, SpeakerState, SpeakerStateSpec,
    SpeakerStateStatus,
};
pub use validate::{validate, ConfigError};

/// The API group of every ferrolb kind.
pub const GROUP: &str = "ferrolb.io";

/// MetalLB's API group, recognised in manifests to suggest the rename.
pub const METALLB_GROUP: &str = "metallb.io";

/// The ferrolb kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// [`IPAddressPool`]
    IPAddressPool,
    /// [`BGPPeer`]
    BGPPeer,
    /// [`BGPAdvertisement`]
    BGPAdvertisement,
    /// [`L2Advertisement`]
    L2Advertisement,
    /// [`Community`]
    Community,
    /// [`BFDProfile`]
    BFDProfile,
}

impl Kind {
    /// Every kind, in the order configurations are validated and reported.
    pub const ALL: [Kind; 6] = [
        Kind::IPAddressPool,
        Kind::BGPPeer,
        Kind::BGPAdvertisement,
        Kind::L2Advertisement,
        Kind::Community,
        Kind::BFDProfile,
    ];

    /// The kind name, as in `kind:`.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::IPAddressPool => "IPAddressPool",
            Kind::BGPPeer => "BGPPeer",
            Kind::BGPAdvertisement => "BGPAdvertisement",
            Kind::L2Advertisement => "L2Advertisement",
            Kind::Community => "Community",
            Kind::BFDProfile => "BFDProfile",
        }
    }

    /// The one version ferrolb serves for this kind.
    pub const fn version(self) -> &'static str {
        match self {
            Kind::BGPPeer => "v1beta2",
            _ => "v1beta1",
        }
    }

    /// `ferrolb.io/<version>`.
    pub fn api_version(self) -> String {
        format!("{GROUP}/{}", self.version())
    }

    /// The plural resource name (`ipaddresspools`, …).
    pub const fn plural(self) -> &'static str {
        match self {
            Kind::IPAddressPool => "ipaddresspools",
            Kind::BGPPeer => "bgppeers",
            Kind::BGPAdvertisement => "bgpadvertisements",
            Kind::L2Advertisement => "l2advertisements",
            Kind::Community => "communities",
            Kind::BFDProfile => "bfdprofiles",
        }
    }

    /// Whether objects of this kind may omit `spec` (MetalLB's `spec,omitempty` on kinds whose every
    /// field is optional: a bare `L2Advertisement` announces every pool). The CRD then defaults `spec`
    /// to `{}` and the loader does the same.
    pub const fn spec_is_optional(self) -> bool {
        matches!(
            self,
            Kind::BGPAdvertisement | Kind::L2Advertisement | Kind::Community | Kind::BFDProfile
        )
    }

    /// The kind called `name` (exact match).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Identifies one object: kind, namespace (if known) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// The kind.
    pub kind: Kind,
    /// The namespace, when the object states one.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectRef {
    /// An object reference.
    pub fn new(kind: Kind, namespace: Option<&str>, name: &str) -> Self {
        ObjectRef {
            kind,
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for ObjectRef {
    /// `Kind namespace/name`, or `Kind name` without a namespace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}
