//! From the API's objects to the allocator's inputs: a validated pool (`ferrolb_crds::config::Pool`) to a
//! [`PoolConfig`], a Kubernetes `Service` (with its namespace's labels) to a [`ServiceView`]. Conversions only:
//! every decision stays in the pure core.

use crate::{
    ExternalTrafficPolicy, IpFamily, IpFamilyPolicy, Labels, PoolConfig, Protocol,
    ServiceAllocation, ServiceKey, ServicePort, ServiceView,
};
use ferrolb_crds::config::Pool;
use k8s_openapi::api::core::v1::{Namespace, Service};
use std::net::IpAddr;

pub fn pool_config(pool: &Pool) -> PoolConfig {
    PoolConfig {
        name: pool.name.clone(),
        cidrs: pool.cidrs.clone(),
        auto_assign: pool.auto_assign,
        avoid_buggy_ips: pool.avoid_buggy_ips,
        allocation: pool.service_allocation.as_ref().map(|a| ServiceAllocation {
            priority: a.priority,
            namespaces: a.namespaces.clone(),
            namespace_selectors: a.namespace_selectors.clone(),
            service_selectors: a.service_selectors.clone(),
        }),
    }
}

fn family(s: &str) -> Option<IpFamily> {
    match s {
        "IPv4" => Some(IpFamily::IPv4),
        "IPv6" => Some(IpFamily::IPv6),
        _ => None,
    }
}

/// The allocator's view of a Service. `namespaces` supplies the labels for `namespaceSelectors`.
///
/// The API server fills `clusterIPs` on creation; a Service read from a manifest usually has none, so there the
/// families come from `ipFamilies` (default IPv4, as the API server would choose). A headless Service
/// (`clusterIP: None`) has no family and so gets no address.
pub fn service_view(svc: &Service, namespaces: &[Namespace]) -> ServiceView {
    let namespace = svc.metadata.namespace.as_deref().unwrap_or("default");
    let namespace_labels = namespaces
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(namespace))
        .and_then(|n| n.metadata.labels.clone())
        .unwrap_or_default();
    service_view_with(svc, namespace_labels)
}

/// [`service_view`] when the caller already has the labels of the Service's namespace (the controller keeps
/// them indexed).
pub fn service_view_with(svc: &Service, namespace_labels: Labels) -> ServiceView {
    let meta = &svc.metadata;
    let namespace = meta
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let no_spec = Default::default();
    let spec: &k8s_openapi::api::core::v1::ServiceSpec = svc.spec.as_ref().unwrap_or(&no_spec);
    let ip_families: Vec<IpFamily> = spec
        .ip_families
        .iter()
        .flatten()
        .filter_map(|f| family(f))
        .collect();
    let mut cluster_ips: Vec<String> = spec.cluster_ips.clone().unwrap_or_default();
    if cluster_ips.is_empty() {
        cluster_ips.extend(spec.cluster_ip.clone());
    }
    let headless = cluster_ips.iter().any(|ip| ip == "None");
    let cluster_ip_families: Vec<IpFamily> = if headless {
        Vec::new()
    } else if cluster_ips.is_empty() {
        if ip_families.is_empty() {
            vec![IpFamily::IPv4]
        } else {
            let wants_two = matches!(
                spec.ip_family_policy.as_deref(),
                Some("PreferDualStack") | Some("RequireDualStack")
            );
            let n = if wants_two { 2 } else { 1 };
            ip_families.iter().copied().take(n).collect()
        }
    } else {
        cluster_ips
            .iter()
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
            .map(|ip| IpFamily::of(&ip))
            .collect()
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
                "UDP" => Protocol::Udp,
                "SCTP" => Protocol::Sctp,
                _ => Protocol::Tcp,
            };
            u16::try_from(p.port)
                .ok()
                .map(|port| ServicePort { protocol, port })
        })
        .collect();
    let ingress_ips = ingress_ips(svc);
    ServiceView {
        namespace,
        name: meta.name.clone().unwrap_or_default(),
        labels: meta.labels.clone().unwrap_or_default(),
        namespace_labels,
        annotations: meta.annotations.clone().unwrap_or_default(),
        is_load_balancer: spec.type_.as_deref() == Some("LoadBalancer"),
        load_balancer_class: spec.load_balancer_class.clone(),
        load_balancer_ip: spec.load_balancer_ip.clone().filter(|s| !s.is_empty()),
        cluster_ip_families,
        ip_families,
        ip_family_policy: match spec.ip_family_policy.as_deref() {
            Some("PreferDualStack") => Some(IpFamilyPolicy::PreferDualStack),
            Some("RequireDualStack") => Some(IpFamilyPolicy::RequireDualStack),
            Some("SingleStack") => Some(IpFamilyPolicy::SingleStack),
            _ => None,
        },
        ports,
        external_traffic_policy: if spec.external_traffic_policy.as_deref() == Some("Local") {
            ExternalTrafficPolicy::Local
        } else {
            ExternalTrafficPolicy::Cluster
        },
        selector: spec.selector.clone().unwrap_or_default(),
        ingress_ips,
        created: meta
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_millisecond()),
    }
}

/// The IPs in `status.loadBalancer.ingress[].ip` (entries without an IP, or with an unparsable one, are
/// left out).
pub fn ingress_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

/// The key of a Service object (`default` when it names no namespace, as in a manifest).
pub fn service_key(svc: &Service) -> ServiceKey {
    ServiceKey::new(
        svc.metadata.namespace.as_deref().unwrap_or("default"),
        svc.metadata.name.as_deref().unwrap_or_default(),
    )
}
