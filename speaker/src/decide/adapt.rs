//! From API objects to the engine's inputs. Conversions only.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_allocator::ServiceKey;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::{Endpoint, NodeInfo, ServiceInfo};

/// The label EndpointSlices carry to name their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service with the given IPs (from its status, or from the standalone allocation) and the endpoints of
/// every EndpointSlice labelled with its name in its namespace.
pub fn service_info(svc: &Service, ips: Vec<IpAddr>, slices: &[&EndpointSlice]) -> ServiceInfo {
    let policy = svc
        .spec
        .as_ref()
        .and_then(|s| s.external_traffic_policy.as_deref());
    ServiceInfo {
        key: service_key(svc),
        ips,
        local: policy == Some("Local"),
        labels: svc.metadata.labels.clone().unwrap_or_default(),
        endpoints: slices
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .map(|e| {
                let c = e.conditions.as_ref();
                Endpoint {
                    node: e.node_name.clone(),
                    ready: c.and_then(|c| c.ready),
                    serving: c.and_then(|c| c.serving),
                    terminating: c.and_then(|c| c.terminating),
                }
            })
            .collect(),
    }
}

pub use ferrolb_allocator::adapt::{ingress_ips, service_key};

/// EndpointSlices grouped by the Service they belong to.
pub fn slices_by_service<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> BTreeMap<ServiceKey, Vec<&'a EndpointSlice>> {
    let mut out: BTreeMap<ServiceKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for s in slices {
        let Some(name) = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let ns = s.metadata.namespace.as_deref().unwrap_or("default");
        out.entry(ServiceKey::new(ns, name)).or_default().push(s);
    }
    out
}

/// A Node's labels and its `NetworkUnavailable` condition.
pub fn node_info(node: &Node) -> NodeInfo {
    NodeInfo {
        labels: node.metadata.labels.clone().unwrap_or_default(),
        network_unavailable: node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True"),
    }
}
