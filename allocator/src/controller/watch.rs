//! The watches: one reflector per kind, and one stream of [`Change`]s that says what to look at again.
//! Events only name what changed; the controller always reads the current object from the store.

use std::fmt::Debug;
use std::hash::Hash;

use ferrolb_crds::manifest::Objects;
use ferrolb_crds::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::sync::Arc;

use super::core::Cluster;
use crate::adapt::service_key;
use crate::{Labels, ServiceKey};

/// Something to look at again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A Service was added, changed or deleted.
    Service(ServiceKey),
    /// A Namespace was added or changed.
    Namespace(String),
    /// A ferrolb object was added, changed or deleted.
    Config,
    /// A watch has listed every object of its kind (again, after a relist).
    Synced(&'static str),
    /// Pool statuses are due again (a write failed).
    PoolStatus,
}

/// The watched kinds, as named in [`Change::Synced`].
pub const SOURCES: [&str; 8] = [
    "Service",
    "Namespace",
    "IPAddressPool",
    "BGPPeer",
    "BGPAdvertisement",
    "L2Advertisement",
    "Community",
    "BFDProfile",
];

/// The reflectors' stores: what the controller knows of the cluster.
#[derive(Clone)]
pub struct Stores {
    services: Store<Service>,
    namespaces: Store<Namespace>,
    pools: Store<IPAddressPool>,
    peers: Store<BGPPeer>,
    bgp_advertisements: Store<BGPAdvertisement>,
    l2_advertisements: Store<L2Advertisement>,
    communities: Store<Community>,
    bfd_profiles: Store<BFDProfile>,
}

/// Starts nothing by itself: the returned stream drives every watch as it is polled.
pub fn start(client: Client, namespace: &str) -> (Stores, BoxStream<'static, Change>) {
    let (services, s1) = watch(Api::<Service>::all(client.clone()), "Service", |s| {
        Change::Service(service_key(s))
    });
    let (namespaces, s2) = watch(Api::<Namespace>::all(client.clone()), "Namespace", |n| {
        Change::Namespace(n.name_any())
    });
    let c = &client;
    let (pools, s3) = watch(
        Api::namespaced(c.clone(), namespace),
        "IPAddressPool",
        config,
    );
    let (peers, s4) = watch(Api::namespaced(c.clone(), namespace), "BGPPeer", config);
    let (bgp_advertisements, s5) = watch(
        Api::namespaced(c.clone(), namespace),
        "BGPAdvertisement",
        config,
    );
    let (l2_advertisements, s6) = watch(
        Api::namespaced(c.clone(), namespace),
        "L2Advertisement",
        config,
    );
    let (communities, s7) = watch(Api::namespaced(c.clone(), namespace), "Community", config);
    let (bfd_profiles, s8) = watch(Api::namespaced(c.clone(), namespace), "BFDProfile", config);
    let stores = Stores {
        services,
        namespaces,
        pools,
        peers,
        bgp_advertisements,
        l2_advertisements,
        communities,
        bfd_profiles,
    };
    let changes = futures::stream::select_all([s1, s2, s3, s4, s5, s6, s7, s8]).boxed();
    (stores, changes)
}

fn config<K>(_: &K) -> Change {
    Change::Config
}

fn watch<K>(
    api: Api<K>,
    source: &'static str,
    change: fn(&K) -> Change,
) -> (Store<K>, BoxStream<'static, Change>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    reflect(
        api,
        watcher::Config::default(),
        change,
        Change::Synced(source),
        source,
    )
}

/// A reflector for one kind: its store, and a stream saying for each event what changed (`change`) or that
/// the kind is fully listed (`synced`). Managed fields are dropped before storing: they are most of an
/// object's size and never read. Shared with the speaker's watches.
pub fn reflect<K, C>(
    api: Api<K>,
    config: watcher::Config,
    change: impl Fn(&K) -> C + Send + 'static,
    synced: C,
    source: &'static str,
) -> (Store<K>, BoxStream<'static, C>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
    C: Clone + Send + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(|o| o.managed_fields_mut().clear())
        .reflect(writer)
        .filter_map(move |event| {
            futures::future::ready(match event {
                Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::Delete(o)) => Some(change(&o)),
                Ok(watcher::Event::InitDone) => Some(synced.clone()),
                Ok(watcher::Event::Init) | Ok(watcher::Event::InitApply(_)) => None,
                Err(error) => {
                    tracing::warn!(kind = source, %error, "watch failed; retrying");
                    None
                }
            })
        })
        .boxed();
    (store, stream)
}

/// Every object of a store, cloned.
pub fn all<K>(store: &Store<K>) -> impl Iterator<Item = K> + '_
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store.state().into_iter().map(|o| (*o).clone())
}

/// The ferrolb configuration objects of these stores, as `ferrolb_crds::validate` takes them.
pub fn config_objects(
    pools: &Store<IPAddressPool>,
    peers: &Store<BGPPeer>,
    bgp_advertisements: &Store<BGPAdvertisement>,
    l2_advertisements: &Store<L2Advertisement>,
    communities: &Store<Community>,
    bfd_profiles: &Store<BFDProfile>,
) -> Objects {
    let mut objects = Objects::default();
    all(pools).for_each(|o| objects.push(o, None));
    all(peers).for_each(|o| objects.push(o, None));
    all(bgp_advertisements).for_each(|o| objects.push(o, None));
    all(l2_advertisements).for_each(|o| objects.push(o, None));
    all(communities).for_each(|o| objects.push(o, None));
    all(bfd_profiles).for_each(|o| objects.push(o, None));
    objects
}

impl Cluster for Stores {
    fn service(&self, key: &ServiceKey) -> Option<Arc<Service>> {
        self.services
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }

    fn services(&self) -> Vec<Arc<Service>> {
        self.services.state()
    }

    fn namespace_labels(&self, namespace: &str) -> Labels {
        self.namespaces
            .get(&ObjectRef::new(namespace))
            .map(|n| n.labels().clone())
            .unwrap_or_default()
    }

    fn config_objects(&self) -> Objects {
        config_objects(
            &self.pools,
            &self.peers,
            &self.bgp_advertisements,
            &self.l2_advertisements,
            &self.communities,
            &self.bfd_profiles,
        )
    }
}
