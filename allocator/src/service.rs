//! What the allocator needs to know about a Service: a plain view the controller fills from the Kubernetes
//! object, so that this crate stays free of Kubernetes client types.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::selector::Labels;

/// `namespace/name`: identifies a Service. Ordered by namespace, then name (the canonical allocation order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl FromStr for ServiceKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok(Self::new(ns, name)),
            _ => Err(format!("{s:?} is not namespace/name")),
        }
    }
}

// As a string, so that maps keyed by Service serialise to JSON objects.
impl Serialize for ServiceKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ServiceKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An IP family, spelled as in `spec.ipFamilies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IpFamily {
    IPv4,
    IPv6,
}

impl IpFamily {
    pub fn of(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => IpFamily::IPv4,
            IpAddr::V6(_) => IpFamily::IPv6,
        }
    }

    pub fn other(self) -> Self {
        match self {
            IpFamily::IPv4 => IpFamily::IPv6,
            IpFamily::IPv6 => IpFamily::IPv4,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::IPv4 => "IPv4",
            IpFamily::IPv6 => "IPv6",
        })
    }
}

/// `spec.ipFamilyPolicy`. Unset means `SingleStack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum IpFamilyPolicy {
    #[default]
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

/// A port's protocol, spelled as in `spec.ports[].protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// One `(protocol, port)` of `spec.ports`: the unit two Services sharing an IP must not both use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServicePort {
    pub protocol: Protocol,
    pub port: u16,
}

impl ServicePort {
    pub fn tcp(port: u16) -> Self {
        Self {
            protocol: Protocol::Tcp,
            port,
        }
    }
    pub fn udp(port: u16) -> Self {
        Self {
            protocol: Protocol::Udp,
            port,
        }
    }
}

impl fmt::Display for ServicePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

/// `spec.externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ExternalTrafficPolicy {
    #[default]
    Cluster,
    Local,
}

/// The parts of a Service that allocation depends on. The controller builds one from the Kubernetes object;
/// `plan` builds them from manifests.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceView {
    pub namespace: String,
    pub name: String,
    /// `metadata.labels` (matched by `serviceAllocation.serviceSelectors`).
    pub labels: Labels,
    /// The labels of the Service's Namespace (matched by `serviceAllocation.namespaceSelectors`).
    pub namespace_labels: Labels,
    /// `metadata.annotations`; the allocator reads its own keys and their MetalLB aliases.
    pub annotations: BTreeMap<String, String>,
    /// `spec.type == LoadBalancer`.
    pub is_load_balancer: bool,
    /// `spec.loadBalancerClass`.
    pub load_balancer_class: Option<String>,
    /// `spec.loadBalancerIP`, unparsed (a bad value is reported, not dropped).
    #[serde(rename = "loadBalancerIP")]
    pub load_balancer_ip: Option<String>,
    /// The family of each entry of `spec.clusterIPs`, in order. Empty (headless, or not yet assigned) means
    /// no allocation: the Service's family is unknown.
    pub cluster_ip_families: Vec<IpFamily>,
    /// `spec.ipFamilies`; its first entry is the primary family.
    pub ip_families: Vec<IpFamily>,
    /// `spec.ipFamilyPolicy` (unset = SingleStack).
    pub ip_family_policy: Option<IpFamilyPolicy>,
    /// `spec.ports[]` as `(protocol, port)`.
    pub ports: Vec<ServicePort>,
    pub external_traffic_policy: ExternalTrafficPolicy,
    /// `spec.selector` (part of the sharing check when externalTrafficPolicy is Local).
    pub selector: Labels,
    /// The IPs in `status.loadBalancer.ingress[].ip`: the assignment to keep across restarts.
    #[serde(rename = "ingressIPs")]
    pub ingress_ips: Vec<IpAddr>,
    /// `metadata.creationTimestamp`, in milliseconds since the epoch. The whole-state allocation
    /// ([`crate::allocate_all`]) serves older Services first, as a cluster's history would have, so that
    /// adding a Service to a set of manifests never renumbers an older one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
}

impl ServiceView {
    /// A single-stack IPv4 `LoadBalancer` Service with no ports: the usual starting point in tests and tools.
    pub fn load_balancer(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            is_load_balancer: true,
            cluster_ip_families: vec![IpFamily::IPv4],
            ip_families: vec![IpFamily::IPv4],
            ..Self::default()
        }
    }

    pub fn key(&self) -> ServiceKey {
        ServiceKey::new(&self.namespace, &self.name)
    }

    /// Whether the allocator handles this Service: it must be a LoadBalancer, and its class must be the
    /// configured one (`None`: only Services without a class, as MetalLB without `--lb-class`).
    pub fn scope(&self, class: Option<&str>) -> Result<(), Ignored> {
        if !self.is_load_balancer {
            return Err(Ignored::NotLoadBalancer);
        }
        if self.load_balancer_class.as_deref() != class {
            return Err(Ignored::OtherClass {
                class: self.load_balancer_class.clone(),
                handled: class.map(str::to_owned),
            });
        }
        Ok(())
    }

    /// The effective `ipFamilyPolicy`.
    pub fn family_policy(&self) -> IpFamilyPolicy {
        self.ip_family_policy.unwrap_or_default()
    }
}

/// Why a Service is outside the allocator's scope. Any IPs it held are released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Ignored {
    #[error("not of type LoadBalancer")]
    NotLoadBalancer,
    #[error("{}", other_class(.class, .handled))]
    OtherClass {
        class: Option<String>,
        handled: Option<String>,
    },
}

fn other_class(class: &Option<String>, handled: &Option<String>) -> String {
    match (class, handled) {
        (Some(c), None) => {
            format!("loadBalancerClass {c:?} is set; ferrolb handles only Services without a class")
        }
        (Some(c), Some(h)) => format!("loadBalancerClass {c:?} is not ferrolb's class {h:?}"),
        (None, Some(h)) => format!("no loadBalancerClass; ferrolb handles only class {h:?}"),
        (None, None) => "class mismatch".into(),
    }
}
