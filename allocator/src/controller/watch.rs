//! The watches: one reflector per kind, and one stream of [`Change`]s that says what to look at again.
//! Events only name what changed; the controller always reads the current object from the store.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use ferrolb_crds::manifest::Objects;
use ferrolb_crds::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement, SpeakerState,
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
    /// A kind cannot be listed (CRD missing, no permission): work goes on without it.
    Unavailable(&'static str, String),
    /// Pool statuses are due again (a write failed, or a flush was held back to once a second).
    PoolStatus,
    /// A speaker's SpeakerState changed (its heartbeat is checked on a timer).
    Speakers,
}

/// The watched kinds, as named in [`Change::Synced`].
pub const SOURCES: [&str; 9] = [
    "Service",
    "Namespace",
    "IPAddressPool",
    "BGPPeer",
    "BGPAdvertisement",
    "L2Advertisement",
    "Community",
    "BFDProfile",
    "SpeakerState",
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
    speakers: Store<SpeakerState>,
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
    let (speakers, s9) = watch(
        Api::namespaced(c.clone(), namespace),
        "SpeakerState",
        |_| Change::Speakers,
    );
    let stores = Stores {
        services,
        namespaces,
        pools,
        peers,
        bgp_advertisements,
        l2_advertisements,
        communities,
        bfd_profiles,
        speakers,
    };
    let changes = futures::stream::select_all([s1, s2, s3, s4, s5, s6, s7, s8, s9]).boxed();
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
        move |reason| Change::Unavailable(source, reason),
        source,
    )
}

/// A reflector for one kind: its store, and a stream saying for each event what changed (`change`), that
/// the kind is fully listed (`synced`), or that it cannot be read at all (`unavailable`, with the reason:
/// its CRD is not installed or the ServiceAccount may not list it). Managed fields are dropped before
/// storing: they are most of an object's size and never read. Shared with the speaker's watches.
///
/// Retries follow [`RetryPolicy`]: a relist after "410 Gone" starts at once, an unreachable API server is
/// tried again within a second, and an unavailable kind likewise for about ten seconds (a restarting API
/// server answers 403 until its RBAC caches are filled), then every ten seconds, logged once a minute.
pub fn reflect<K, C>(
    api: Api<K>,
    config: watcher::Config,
    change: impl Fn(&K) -> C + Send + 'static,
    synced: C,
    unavailable: impl Fn(String) -> C + Send + 'static,
    source: &'static str,
) -> (Store<K>, BoxStream<'static, C>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
    C: Clone + Send + 'static,
{
    let (store, writer) = reflector::store();
    let retry = Arc::new(std::sync::Mutex::new(RetryPolicy::new(source)));
    let stream = watcher(api, config)
        .modify(|o| o.managed_fields_mut().clear())
        .reflect(writer)
        .then(move |event| {
            let retry = retry.clone();
            let out = match &event {
                // `Init` only announces a new list, before the request is answered: not a success.
                Ok(watcher::Event::Init) => None,
                Ok(_) => {
                    retry.lock().expect("retry state").succeeded();
                    None
                }
                Err(error) => Some(retry.lock().expect("retry state").failed(error)),
            };
            async move {
                match out {
                    Some(Failure {
                        delay,
                        newly_unavailable,
                    }) => {
                        tokio::time::sleep(delay).await;
                        (event, newly_unavailable)
                    }
                    None => (event, None),
                }
            }
        })
        .filter_map(move |(event, newly_unavailable)| {
            futures::future::ready(match event {
                Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::Delete(o)) => Some(change(&o)),
                Ok(watcher::Event::InitDone) => Some(synced.clone()),
                Ok(watcher::Event::Init) | Ok(watcher::Event::InitApply(_)) => None,
                Err(_) => newly_unavailable.map(&unavailable),
            })
        })
        .boxed();
    (store, stream)
}

/// How a failed list or watch is classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// "410 Gone": the watch fell behind and must relist. Normal, not an error.
    Gone,
    /// The kind cannot be read: not installed (404) or not permitted (401, 403).
    Unavailable(String),
    /// Anything else: the API server is unreachable, overloaded or restarting.
    Transient,
}

/// Classifies a watcher error.
pub fn classify(error: &watcher::Error) -> FailureKind {
    let status = match error {
        watcher::Error::WatchError(status) => Some(status.code),
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => match e {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        },
        watcher::Error::NoResourceVersion => None,
    };
    match status {
        Some(410) => FailureKind::Gone,
        Some(404) => FailureKind::Unavailable(format!(
            "not found (404): is its CustomResourceDefinition installed? {error}"
        )),
        Some(code @ (401 | 403)) => FailureKind::Unavailable(format!(
            "not permitted ({code}): check the ServiceAccount's RBAC. {error}"
        )),
        _ => FailureKind::Transient,
    }
}

/// The delay before the next attempt, and the reason to report if the kind just became unavailable.
pub struct Failure {
    pub delay: Duration,
    pub newly_unavailable: Option<String>,
}

/// The retry rules of one watch. Back-off is for errors only: a relist after "410 Gone" starts at once,
/// and any event that arrives resets the back-off.
#[derive(Debug)]
pub struct RetryPolicy {
    kind: &'static str,
    failures_in_a_row: u32,
    /// Of those, the "unavailable" answers in a row (an outage's connection errors do not count, so that
    /// the 403s of an API server that has just come back are retried quickly).
    unavailable_in_a_row: u32,
    unavailable: Option<String>,
    last_logged: Option<Instant>,
}

/// First retry after a transient failure; it doubles up to [`TRANSIENT_MAX`]. Kept short so that a Service
/// created right after an API server restart is seen within a second or two.
pub const TRANSIENT_FIRST: Duration = Duration::from_millis(250);
/// Longest wait between attempts while the API server is unreachable.
pub const TRANSIENT_MAX: Duration = Duration::from_secs(1);
/// How often an unavailable kind (missing CRD, missing permission) is tried again once it has stayed
/// unavailable for [`UNAVAILABLE_FAST_TRIES`] tries.
pub const UNAVAILABLE_RETRY: Duration = Duration::from_secs(10);
/// Tries of an unavailable kind on the transient schedule (about 10 s) before the slow one: an API server
/// that has just started answers 403 until its RBAC caches are filled, which is not a missing permission.
pub const UNAVAILABLE_FAST_TRIES: u32 = 12;
/// How often a persisting failure is logged again.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

impl RetryPolicy {
    pub fn new(kind: &'static str) -> Self {
        RetryPolicy {
            kind,
            failures_in_a_row: 0,
            unavailable_in_a_row: 0,
            unavailable: None,
            last_logged: None,
        }
    }

    /// An event arrived: the watch works again.
    pub fn succeeded(&mut self) {
        if self.failures_in_a_row > 0 || self.unavailable.is_some() {
            tracing::info!(kind = self.kind, "watch recovered");
        }
        self.failures_in_a_row = 0;
        self.unavailable_in_a_row = 0;
        self.unavailable = None;
        self.last_logged = None;
    }

    /// A list or watch failed: how long to wait, and whether the kind just turned unavailable.
    pub fn failed(&mut self, error: &watcher::Error) -> Failure {
        let now = Instant::now();
        let log_due = self
            .last_logged
            .is_none_or(|t| now.duration_since(t) >= LOG_EVERY);
        match classify(error) {
            FailureKind::Gone => {
                tracing::debug!(kind = self.kind, "watch expired (410 Gone); relisting now");
                Failure {
                    delay: Duration::ZERO,
                    newly_unavailable: None,
                }
            }
            FailureKind::Unavailable(reason) => {
                if log_due {
                    tracing::warn!(kind = self.kind, %reason,
                        "cannot list this kind; everything else keeps working without it");
                    self.last_logged = Some(now);
                }
                let newly = (self.unavailable.as_ref() != Some(&reason)).then(|| reason.clone());
                self.unavailable = Some(reason);
                let delay = if self.unavailable_in_a_row < UNAVAILABLE_FAST_TRIES {
                    backoff(self.unavailable_in_a_row)
                } else {
                    UNAVAILABLE_RETRY
                };
                self.unavailable_in_a_row = self.unavailable_in_a_row.saturating_add(1);
                self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
                Failure {
                    delay,
                    newly_unavailable: newly,
                }
            }
            FailureKind::Transient => {
                if log_due {
                    tracing::warn!(kind = self.kind, %error, "watch failed; retrying");
                    self.last_logged = Some(now);
                }
                let delay = backoff(self.failures_in_a_row);
                self.unavailable_in_a_row = 0;
                self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
                Failure {
                    delay,
                    newly_unavailable: None,
                }
            }
        }
    }
}

/// 250 ms after the first failure, doubling with each one in a row, at most [`TRANSIENT_MAX`].
fn backoff(failures_in_a_row: u32) -> Duration {
    TRANSIENT_FIRST
        .saturating_mul(1 << failures_in_a_row.min(8))
        .min(TRANSIENT_MAX)
}

/// Readiness as `/readyz` reports it: ready or not, and the kinds that cannot be read, with why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    /// Kinds that cannot be listed, with the reason. The process works without them (degraded).
    pub unavailable: BTreeMap<&'static str, String>,
}

impl Readiness {
    /// Ready, with nothing unavailable.
    pub fn ready() -> Self {
        Readiness {
            ready: true,
            unavailable: BTreeMap::new(),
        }
    }

    /// The text `/readyz` answers with.
    pub fn report(&self) -> String {
        let mut out = String::from(if self.ready { "ready\n" } else { "not ready\n" });
        for (kind, reason) in &self.unavailable {
            out.push_str(&format!("degraded: {kind} unavailable: {reason}\n"));
        }
        out
    }
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

impl Stores {
    /// Every speaker's SpeakerState.
    pub fn speaker_states(&self) -> Vec<Arc<SpeakerState>> {
        self.speakers.state()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api_error(code: u16) -> watcher::Error {
        watcher::Error::InitialListFailed(kube::Error::Api(Box::new(Status {
            code,
            ..Status::default()
        })))
    }

    #[test]
    fn a_relist_after_gone_starts_at_once() {
        let mut p = RetryPolicy::new("Service");
        let gone = watcher::Error::WatchError(Box::new(Status {
            code: 410,
            ..Status::default()
        }));
        assert_eq!(classify(&gone), FailureKind::Gone);
        assert_eq!(p.failed(&gone).delay, Duration::ZERO);
    }

    #[test]
    fn an_unreachable_api_server_is_tried_again_within_a_second() {
        let mut p = RetryPolicy::new("Service");
        let delays: Vec<Duration> = (0..6).map(|_| p.failed(&api_error(503)).delay).collect();
        assert_eq!(delays[0], TRANSIENT_FIRST);
        assert!(delays.iter().all(|d| *d <= TRANSIENT_MAX), "{delays:?}");
        p.succeeded();
        assert_eq!(
            p.failed(&api_error(503)).delay,
            TRANSIENT_FIRST,
            "reset by success"
        );
    }

    #[test]
    fn an_unavailable_kind_is_reported_once_and_retried_fast_then_slowly() {
        let mut p = RetryPolicy::new("Community");
        let first = p.failed(&api_error(404));
        assert!(first.newly_unavailable.unwrap().contains("not found (404)"));
        assert_eq!(first.delay, TRANSIENT_FIRST);
        let mut last = first.delay;
        for _ in 1..UNAVAILABLE_FAST_TRIES {
            let f = p.failed(&api_error(404));
            assert!(f.newly_unavailable.is_none(), "reported once");
            last = f.delay;
        }
        assert!(last <= TRANSIENT_MAX);
        assert_eq!(p.failed(&api_error(404)).delay, UNAVAILABLE_RETRY);
        let forbidden = p.failed(&api_error(403));
        assert!(forbidden
            .newly_unavailable
            .unwrap()
            .contains("not permitted (403)"));
    }

    /// After an outage (many connection errors), the 403s of an API server whose RBAC caches are still
    /// filling are retried at once, not on the slow schedule.
    #[test]
    fn forbidden_right_after_an_outage_is_retried_quickly() {
        let mut p = RetryPolicy::new("Service");
        for _ in 0..30 {
            p.failed(&api_error(503));
        }
        assert_eq!(p.failed(&api_error(403)).delay, TRANSIENT_FIRST);
    }
}
