//! The speaker's watches: Services, EndpointSlices and Nodes cluster-wide; the ferrolb objects and the
//! Secrets of its own namespace only (least privilege: BGP passwords). Events only say "something changed";
//! the speaker recomputes from the stores.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::hash::Hash;

use ferrolb_allocator::controller::watch as shared;
use ferrolb_crds::manifest::Objects;
use ferrolb_crds::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::decide::adapt::{ingress_ips, node_info, service_info, service_key, slices_by_service};
use crate::decide::{NodeInfo, ServiceInfo};

/// What a watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Objects of this kind changed.
    Changed(&'static str),
    /// The watch of this kind has listed everything (again).
    Synced(&'static str),
    /// This kind cannot be listed (CRD missing, no permission): the speaker works without it.
    Unavailable(&'static str, String),
}

/// The watched kinds.
pub const SOURCES: [&str; 11] = [
    "Service",
    "EndpointSlice",
    "Node",
    "Secret",
    "IPAddressPool",
    "BGPPeer",
    "BGPAdvertisement",
    "L2Advertisement",
    "Community",
    "BFDProfile",
    "SpeakerPod",
];

/// Whether a change of this kind can change the validated configuration.
pub fn is_config(kind: &str) -> bool {
    !matches!(kind, "Service" | "EndpointSlice" | "Node" | "SpeakerPod")
}

/// The reflectors' stores.
#[derive(Clone)]
pub struct Stores {
    pub services: Store<Service>,
    pub slices: Store<EndpointSlice>,
    pub nodes: Store<Node>,
    pub secrets: Store<Secret>,
    pub pools: Store<IPAddressPool>,
    pub peers: Store<BGPPeer>,
    pub bgp_advertisements: Store<BGPAdvertisement>,
    pub l2_advertisements: Store<L2Advertisement>,
    pub communities: Store<Community>,
    pub bfd_profiles: Store<BFDProfile>,
    pub speaker_pods: Store<k8s_openapi::api::core::v1::Pod>,
}

/// Starts the watches (driven by polling the returned stream). `speaker_pods` selects the speaker pods
/// of the namespace (their IPs seed the membership).
pub fn start(
    client: Client,
    namespace: &str,
    speaker_pods: &str,
) -> (Stores, BoxStream<'static, Change>) {
    let (services, s1) = reflect(
        Api::all(client.clone()),
        "Service",
        watcher::Config::default(),
    );
    let (slices, s2) = reflect(
        Api::all(client.clone()),
        "EndpointSlice",
        watcher::Config::default(),
    );
    let (nodes, s3) = reflect(Api::all(client.clone()), "Node", watcher::Config::default());
    let own = watcher::Config::default;
    let (secrets, s4) = reflect(Api::namespaced(client.clone(), namespace), "Secret", own());
    let (pools, s5) = reflect(
        Api::namespaced(client.clone(), namespace),
        "IPAddressPool",
        own(),
    );
    let (peers, s6) = reflect(Api::namespaced(client.clone(), namespace), "BGPPeer", own());
    let (bgp_advertisements, s7) = reflect(
        Api::namespaced(client.clone(), namespace),
        "BGPAdvertisement",
        own(),
    );
    let (l2_advertisements, s8) = reflect(
        Api::namespaced(client.clone(), namespace),
        "L2Advertisement",
        own(),
    );
    let (communities, s9) = reflect(
        Api::namespaced(client.clone(), namespace),
        "Community",
        own(),
    );
    let (bfd_profiles, s10) = reflect(
        Api::namespaced(client.clone(), namespace),
        "BFDProfile",
        own(),
    );
    let (speaker_pods, s11) = reflect(
        Api::namespaced(client, namespace),
        "SpeakerPod",
        watcher::Config::default().labels(speaker_pods),
    );
    let stores = Stores {
        services,
        slices,
        nodes,
        secrets,
        pools,
        peers,
        bgp_advertisements,
        l2_advertisements,
        communities,
        bfd_profiles,
        speaker_pods,
    };
    let changes =
        futures::stream::select_all([s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11]).boxed();
    (stores, changes)
}

fn reflect<K>(
    api: Api<K>,
    source: &'static str,
    config: watcher::Config,
) -> (Store<K>, BoxStream<'static, Change>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    shared::reflect(
        api,
        config,
        move |_: &K| Change::Changed(source),
        Change::Synced(source),
        move |reason| Change::Unavailable(source, reason),
        source,
    )
}

impl Stores {
    /// The configuration objects, as `ferrolb_crds::validate` takes them.
    pub fn config_objects(&self) -> Objects {
        let mut objects = shared::config_objects(
            &self.pools,
            &self.peers,
            &self.bgp_advertisements,
            &self.l2_advertisements,
            &self.communities,
            &self.bfd_profiles,
        );
        objects.secrets = shared::all(&self.secrets).collect();
        objects
    }

    /// Every LoadBalancer Service that has IPs in its status, with its endpoints.
    pub fn services(&self) -> Vec<ServiceInfo> {
        // Borrowed from the store's snapshot: no EndpointSlice is copied.
        let slices = self.slices.state();
        let by_service = slices_by_service(slices.iter().map(|s| &**s));
        let none = Vec::new();
        let mut out: Vec<ServiceInfo> = self
            .services
            .state()
            .iter()
            .filter_map(|svc| {
                let ips = ingress_ips(svc);
                if ips.is_empty() {
                    return None;
                }
                let key = service_key(svc);
                Some(service_info(
                    svc,
                    ips,
                    by_service.get(&key).unwrap_or(&none),
                ))
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Every Node.
    pub fn nodes(&self) -> BTreeMap<String, NodeInfo> {
        self.nodes
            .state()
            .iter()
            .filter_map(|n| Some((n.metadata.name.clone()?, node_info(n))))
            .collect()
    }

    /// The IPs of the running speaker pods (membership seeds).
    pub fn speaker_pod_ips(&self) -> BTreeSet<std::net::IpAddr> {
        self.speaker_pods
            .state()
            .iter()
            .filter_map(|p| p.status.as_ref()?.pod_ip.as_deref()?.parse().ok())
            .collect()
    }
}
