//! What a Service asks of the allocator, distilled from its spec and annotations (metallb-semantics.md §2).

use std::net::IpAddr;
use std::sync::Arc;

use crate::annotations::Annotations;
use crate::error::{AllocationError, SharingMismatch};
use crate::selector::{render_labels, LabelSet};
use crate::service::{ExternalTrafficPolicy, IpFamily, IpFamilyPolicy, ServicePort, ServiceView};

/// Which families the Service needs, derived from `spec.clusterIPs` (the source of truth, as in MetalLB),
/// `ipFamilies[0]` (the primary) and `ipFamilyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Single(IpFamily),
    /// Two cluster IPs. `require`: RequireDualStack (both or nothing); otherwise PreferDualStack.
    Dual {
        primary: IpFamily,
        require: bool,
    },
}

/// The sharing identity of an IP: `allow-shared-ip` key and backend key (the rendered selector when
/// externalTrafficPolicy is Local, else empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ShareKey {
    pub sharing: String,
    pub backend: String,
}

impl ShareKey {
    /// MetalLB's `sharingOK`: both keys non-empty and equal, and the same backend key. `held`: None when
    /// the holders do not share.
    pub fn compatible_with(&self, held: Option<&ShareKey>) -> Result<(), SharingMismatch> {
        let Some(held) = held.filter(|h| !h.sharing.is_empty()) else {
            return Err(SharingMismatch::HolderDoesNotShare);
        };
        if self.sharing.is_empty() {
            Err(SharingMismatch::ServiceDoesNotShare)
        } else if self.sharing != held.sharing {
            Err(SharingMismatch::DifferentKeys {
                held: held.sharing.clone(),
                wanted: self.sharing.clone(),
            })
        } else if self.backend != held.backend {
            Err(SharingMismatch::DifferentBackends {
                held: held.backend.clone(),
                wanted: self.backend.clone(),
            })
        } else {
            Ok(())
        }
    }
}

/// Everything allocation depends on for one Service. Two equal requests always get the same treatment, so
/// comparing the stored request with a new one tells whether the Service changed in a way that matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub need: Need,
    /// Explicitly requested IPs (annotation or `spec.loadBalancerIP`), in the order given.
    pub requested: Vec<IpAddr>,
    /// The address-pool annotation.
    pub pool: Option<String>,
    pub share: ShareKey,
    /// Sorted and de-duplicated.
    pub ports: Vec<ServicePort>,
    pub labels: LabelSet,
    /// Shared by every Service of the namespace (see `Allocator::namespace_labels`).
    pub namespace_labels: Arc<LabelSet>,
    /// A malformed IP request. The rest of the request is still usable (requested IPs are then empty), so an
    /// existing assignment can be kept while the user fixes the annotation.
    pub invalid: Option<Box<AllocationError>>,
}

impl Request {
    /// Fails only when the Service has no cluster IP (its family is unknown, so nothing can be allocated).
    /// `namespace_labels` are `svc.namespace_labels`, as the allocator shares them.
    pub fn parse(
        svc: &ServiceView,
        annotations: &Annotations,
        namespace_labels: Arc<LabelSet>,
    ) -> Result<Self, AllocationError> {
        let need = need(svc)?;
        let (requested, invalid) = match requested_ips(svc, annotations) {
            Ok(ips) => (ips, None),
            Err(e) => (Vec::new(), Some(Box::new(e))),
        };
        let backend = match svc.external_traffic_policy {
            ExternalTrafficPolicy::Local => render_labels(&svc.selector),
            ExternalTrafficPolicy::Cluster => String::new(),
        };
        let mut ports = svc.ports.clone();
        ports.sort_unstable();
        ports.dedup();
        Ok(Self {
            need,
            requested,
            pool: annotations.address_pool.clone(),
            share: ShareKey {
                sharing: annotations.allow_shared_ip.clone().unwrap_or_default(),
                backend,
            },
            ports,
            labels: LabelSet::new(&svc.labels),
            namespace_labels,
            invalid,
        })
    }

    /// Whether `ips` have the families this Service needs (MetalLB's `serviceFamilyChanged`, inverted):
    /// exactly the cluster IPs' families, except that PreferDualStack may hold a single address.
    pub fn families_fit(&self, ips: &[IpAddr]) -> bool {
        match (self.need, ips) {
            (Need::Single(f), [a]) => IpFamily::of(a) == f,
            (Need::Dual { .. }, [a, b]) => IpFamily::of(a) != IpFamily::of(b),
            (Need::Dual { require: false, .. }, [_]) => true,
            _ => false,
        }
    }

    /// The Service's families, primary first (for messages).
    pub fn families(&self) -> Vec<IpFamily> {
        match self.need {
            Need::Single(f) => vec![f],
            Need::Dual { primary, .. } => vec![primary, primary.other()],
        }
    }

    /// The first of our ports that `other` also uses.
    pub fn port_overlap(&self, other: &[ServicePort]) -> Option<ServicePort> {
        self.ports
            .iter()
            .copied()
            .find(|p| other.binary_search(p).is_ok())
    }
}

fn need(svc: &ServiceView) -> Result<Need, AllocationError> {
    let cluster = &svc.cluster_ip_families;
    let first = *cluster.first().ok_or(AllocationError::NoClusterIp)?;
    let primary = svc.ip_families.first().copied().unwrap_or(first);
    Ok(if cluster.iter().any(|f| *f != first) {
        match svc.family_policy() {
            IpFamilyPolicy::RequireDualStack => Need::Dual {
                primary,
                require: true,
            },
            IpFamilyPolicy::PreferDualStack => Need::Dual {
                primary,
                require: false,
            },
            // Two cluster IPs under SingleStack cannot happen in Kubernetes; take the primary.
            IpFamilyPolicy::SingleStack => Need::Single(primary),
        }
    } else {
        Need::Single(first)
    })
}

/// `loadBalancerIPs` annotation (≤ 2 addresses of different families) or `spec.loadBalancerIP`, never both.
fn requested_ips(
    svc: &ServiceView,
    annotations: &Annotations,
) -> Result<Vec<IpAddr>, AllocationError> {
    let spec = svc
        .load_balancer_ip
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    match (&annotations.load_balancer_ips, spec) {
        (None, None) => Ok(Vec::new()),
        (Some((key, _)), Some(_)) => Err(AllocationError::ConflictingRequests {
            annotation: key.clone(),
        }),
        (None, Some(value)) => {
            value
                .parse()
                .map(|ip| vec![ip])
                .map_err(|_| AllocationError::InvalidLoadBalancerIp {
                    value: value.to_owned(),
                })
        }
        (Some((key, value)), None) => {
            let invalid = |problem: String| AllocationError::InvalidAnnotation {
                key: key.clone(),
                value: value.clone(),
                problem,
            };
            let ips = value
                .split(',')
                .map(|part| {
                    part.trim()
                        .parse::<IpAddr>()
                        .map_err(|_| invalid(format!("{:?} is not an IP address", part.trim())))
                })
                .collect::<Result<Vec<_>, _>>()?;
            match ips.as_slice() {
                [_] => Ok(ips),
                [a, b] if IpFamily::of(a) != IpFamily::of(b) => Ok(ips),
                [_, _] => Err(invalid(
                    "the two addresses must be of different families".into(),
                )),
                _ => Err(invalid(format!(
                    "at most two addresses (one per family), got {}",
                    ips.len()
                ))),
            }
        }
    }
}
