//! Address pools as the allocator sees them (IPAddressPool after validation), and which Services a pool admits.

use std::cmp::Reverse;
use std::fmt;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::selector::{LabelLookup, LabelSelector};

/// One validated IPAddressPool. Ranges have already been summarised into CIDRs, and CIDRs of different pools
/// do not overlap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolConfig {
    pub name: String,
    /// Walked in this order when looking for a free address.
    #[serde(with = "cidr_strings")]
    pub cidrs: Vec<IpNetwork>,
    /// `spec.autoAssign` (default true): false means only the address-pool annotation or a requested IP
    /// reaches this pool.
    #[serde(default = "yes")]
    pub auto_assign: bool,
    /// `spec.avoidBuggyIPs`: never use IPv4 addresses ending in `.0` or `.255`.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// `spec.serviceAllocation`: when present, the pool serves only the Services it matches.
    #[serde(
        default,
        rename = "serviceAllocation",
        skip_serializing_if = "Option::is_none"
    )]
    pub allocation: Option<ServiceAllocation>,
}

fn yes() -> bool {
    true
}

/// `spec.serviceAllocation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceAllocation {
    /// Lower positive values are preferred; 0 (unset) comes after every positive priority.
    pub priority: i32,
    pub namespaces: Vec<String>,
    pub namespace_selectors: Vec<LabelSelector>,
    pub service_selectors: Vec<LabelSelector>,
}

impl PoolConfig {
    /// A pool with `autoAssign: true` and no other setting (a convenience for tests and tools: panics if a
    /// CIDR does not parse).
    pub fn new(name: impl Into<String>, cidrs: &[&str]) -> Self {
        Self {
            name: name.into(),
            cidrs: cidrs.iter().map(|c| c.parse().expect("CIDR")).collect(),
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
        }
    }

    /// Whether this pool's `serviceAllocation` lets a Service in `namespace` with these labels use it.
    /// A pool without `serviceAllocation` admits everyone.
    pub fn admits(
        &self,
        namespace: &str,
        namespace_labels: &(impl LabelLookup + ?Sized),
        service_labels: &(impl LabelLookup + ?Sized),
    ) -> Result<(), Denied> {
        let Some(alloc) = &self.allocation else {
            return Ok(());
        };
        // Namespaces: listed or selected; with neither given, any namespace.
        let restricts_namespace =
            !alloc.namespaces.is_empty() || !alloc.namespace_selectors.is_empty();
        if restricts_namespace
            && !alloc.namespaces.iter().any(|n| n == namespace)
            && !alloc
                .namespace_selectors
                .iter()
                .any(|s| s.matches(namespace_labels))
        {
            return Err(Denied::Namespace {
                namespace: namespace.to_owned(),
            });
        }
        // Services: any selector matches, or none given.
        if !alloc.service_selectors.is_empty()
            && !alloc
                .service_selectors
                .iter()
                .any(|s| s.matches(service_labels))
        {
            return Err(Denied::ServiceLabels);
        }
        Ok(())
    }

    /// Sort key for pools with `serviceAllocation`: positive priorities ascending, then 0/unset, then by name.
    /// (MetalLB's comparator leaves ties, and non-positive values, in map order; ferrolb treats any value ≤ 0
    /// as unset and breaks ties by name.)
    pub(crate) fn preference(&self) -> (Reverse<bool>, i32, &str) {
        let priority = self.allocation.as_ref().map_or(0, |a| a.priority);
        let positive = priority > 0;
        (
            Reverse(positive),
            if positive { priority } else { 0 },
            &self.name,
        )
    }
}

/// Why a pool's `serviceAllocation` does not admit a Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Denied {
    /// The namespace is neither listed in `namespaces` nor matched by `namespaceSelectors`.
    Namespace { namespace: String },
    /// No `serviceSelectors` entry matches the Service's labels.
    ServiceLabels,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::Namespace { namespace } => {
                write!(
                    f,
                    "namespace {namespace} is neither listed in its namespaces nor matched by its namespaceSelectors"
                )
            }
            Denied::ServiceLabels => {
                f.write_str("none of its serviceSelectors matches the Service's labels")
            }
        }
    }
}

/// CIDRs as their usual text (`203.0.113.0/24`), so pools read like the manifests they come from.
mod cidr_strings {
    use ipnetwork::IpNetwork;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(cidrs: &[IpNetwork], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(cidrs.iter().map(|c| c.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNetwork>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|c| {
                c.parse()
                    .map_err(|e| serde::de::Error::custom(format!("{c:?}: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::Labels;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pool_serde_matches_the_crd_field_names() {
        let p: PoolConfig = serde_json::from_str(
            r#"{"name":"blue","cidrs":["203.0.113.0/24","2001:db8::/64"],"avoidBuggyIPs":true,
                "serviceAllocation":{"priority":5,"namespaces":["a"]}}"#,
        )
        .unwrap();
        assert!(p.auto_assign, "autoAssign defaults to true");
        assert!(p.avoid_buggy_ips);
        assert_eq!(p.allocation.as_ref().unwrap().priority, 5);
        let back: PoolConfig = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn admission_follows_service_allocation() {
        let mut p = PoolConfig::new("p", &["203.0.113.0/24"]);
        assert!(p.admits("any", &Labels::new(), &Labels::new()).is_ok());
        p.allocation = Some(ServiceAllocation {
            namespaces: vec!["team-a".into()],
            namespace_selectors: vec![LabelSelector::labels([("env", "prod")])],
            ..Default::default()
        });
        assert!(p.admits("team-a", &Labels::new(), &Labels::new()).is_ok());
        assert!(p
            .admits("team-b", &labels(&[("env", "prod")]), &Labels::new())
            .is_ok());
        assert_eq!(
            p.admits("team-b", &Labels::new(), &Labels::new()),
            Err(Denied::Namespace {
                namespace: "team-b".into()
            })
        );
        p.allocation.as_mut().unwrap().service_selectors =
            vec![LabelSelector::labels([("app", "web")])];
        assert_eq!(
            p.admits("team-a", &Labels::new(), &Labels::new()),
            Err(Denied::ServiceLabels)
        );
        assert!(p
            .admits("team-a", &Labels::new(), &labels(&[("app", "web")]))
            .is_ok());
    }
}
