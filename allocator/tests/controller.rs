//! The controller against kube's mock client (tower-test): the exact requests it sends to the API server,
//! none when nothing changed, the events, and silence when it does not hold the Lease.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_allocator::controller::{
    self, Cluster, Core, Metrics, Options, RecordedWarning, Severity, Write, Writer,
};
use ferrolb_allocator::{Labels, ServiceKey};
use ferrolb_crds::manifest::Objects;
use ferrolb_crds::IPAddressPool;
use http::{Request, Response};
use k8s_openapi::api::core::v1::Service;
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};
use tower_test::mock;

const NS: &str = "ferrolb-system";

// ----- fixtures -------------------------------------------------------------------------------------

fn pool(name: &str, addresses: &[&str], status: Option<Value>) -> IPAddressPool {
    let mut v = json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"addresses": addresses},
    });
    if let Some(status) = status {
        v["status"] = status;
    }
    serde_json::from_value(v).unwrap()
}

/// A LoadBalancer Service with a cluster IP, as the API server stores it.
fn service(ns: &str, name: &str, extra: Value) -> Service {
    let mut v = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}")},
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ipFamilies": ["IPv4"],
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The watched objects, in memory.
#[derive(Default, Clone)]
struct FakeCluster {
    services: BTreeMap<ServiceKey, Arc<Service>>,
    namespaces: BTreeMap<String, Labels>,
    objects: Objects,
}

impl FakeCluster {
    fn with_pool(pool: IPAddressPool) -> Self {
        let mut c = FakeCluster::default();
        c.objects.push(pool, None);
        c
    }

    fn put(&mut self, svc: Service) {
        let key = ServiceKey::new(
            svc.metadata.namespace.clone().unwrap(),
            svc.metadata.name.clone().unwrap(),
        );
        self.services.insert(key, Arc::new(svc));
    }
}

impl Cluster for FakeCluster {
    fn service(&self, key: &ServiceKey) -> Option<Arc<Service>> {
        self.services.get(key).cloned()
    }
    fn services(&self) -> Vec<Arc<Service>> {
        self.services.values().cloned().collect()
    }
    fn namespace_labels(&self, namespace: &str) -> Labels {
        self.namespaces.get(namespace).cloned().unwrap_or_default()
    }
    fn config_objects(&self) -> Objects {
        self.objects.clone()
    }
}

// ----- the mock API server (ferrolb-kube-mock) ------------------------------------------------------

use ferrolb_kube_mock::Sent;

fn leader(leads: bool) -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(leads)
}

/// Applies `writes` through a [`Writer`] on a mock client and returns every request sent.
async fn write_through_mock(writes: Vec<Write>, leads: bool) -> Vec<Sent> {
    let (client, server) = ferrolb_kube_mock::start(BTreeMap::new());
    let (_tx, rx) = leader(leads);
    let writer = Writer::new(
        client,
        Some("ferrolb-controller-0".into()),
        rx,
        Metrics::unregistered(),
    );
    let retries = writer.apply(writes).await;
    assert!(retries.is_empty(), "{retries:?}");
    drop(writer);
    server.await.unwrap()
}

fn apply_query() -> BTreeMap<String, String> {
    ferrolb_kube_mock::apply_query("ferrolb-controller")
}

// ----- tests ----------------------------------------------------------------------------------------

#[tokio::test]
async fn a_new_service_gets_exactly_the_annotation_the_status_an_event_and_the_pool_status() {
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/24"], None));
    cluster.put(service("shop", "web", json!({})));
    let (_core, outcome) = Core::start(None, &cluster).unwrap();
    let sent = write_through_mock(outcome.writes, true).await;

    let about_web: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.path.starts_with("/api/v1/namespaces/shop/services/web"))
        .collect();
    assert_eq!(about_web.len(), 1, "one request per Service: {sent:#?}");
    // The annotation and the ingress IP in one server-side apply to the status subresource (the API
    // server keeps a Service's metadata written there).
    let status = about_web[0];
    assert_eq!(status.method, "PATCH");
    assert_eq!(status.path, "/api/v1/namespaces/shop/services/web/status");
    assert_eq!(status.query, apply_query());
    assert_eq!(
        status.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(
        status.body,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop",
                         "annotations": {"ferrolb.io/ip-allocated-from-pool": "default"}},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.0"}]}},
        })
    );

    let events: Vec<&Sent> = sent.iter().filter(|s| s.path.contains("/events")).collect();
    assert_eq!(events.len(), 1, "{sent:#?}");
    assert_eq!(events[0].method, "POST");
    assert_eq!(
        events[0].path,
        "/apis/events.k8s.io/v1/namespaces/shop/events"
    );
    assert_eq!(events[0].body["reason"], "IPAllocated");
    assert_eq!(events[0].body["type"], "Normal");
    assert_eq!(
        events[0].body["note"],
        "assigned IP 203.0.113.0 from pool default"
    );
    assert_eq!(events[0].body["regarding"]["name"], "web");
    assert_eq!(events[0].body["regarding"]["uid"], "uid-web");
    assert_eq!(events[0].body["reportingController"], "ferrolb-controller");

    let pools: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.path.contains("ipaddresspools"))
        .collect();
    assert_eq!(pools.len(), 1, "{sent:#?}");
    assert_eq!(
        pools[0].path,
        "/apis/ferrolb.io/v1beta1/namespaces/ferrolb-system/ipaddresspools/default/status"
    );
    assert_eq!(pools[0].query, apply_query());
    assert_eq!(
        pools[0].body,
        json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "default"},
            "status": {"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 255, "availableIPv6": 0},
        })
    );
    assert_eq!(sent.len(), 3, "nothing else: {sent:#?}");
}

#[tokio::test]
async fn nothing_is_sent_when_the_objects_already_show_the_assignment() {
    let counts =
        json!({"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 255, "availableIPv6": 0});
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/24"], Some(counts)));
    let written = json!({
        "metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": "default"}},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7", "ipMode": "VIP"}]}},
    });
    cluster.put(service("shop", "web", written.clone()));

    // A restart: the IP in status is kept, and nothing at all is written.
    let (mut core, outcome) = Core::start(None, &cluster).unwrap();
    assert_eq!(outcome.writes, vec![]);
    assert!(write_through_mock(outcome.writes, true).await.is_empty());

    // An unrelated edit of the Service (a label) changes nothing either.
    cluster.put(service(
        "shop",
        "web",
        json!({"metadata": {"labels": {"team": "a"}, "annotations": {"ferrolb.io/ip-allocated-from-pool": "default"}},
               "status": written["status"].clone()}),
    ));
    let outcome = core.service_changed(&cluster, &ServiceKey::new("shop", "web"));
    assert_eq!(outcome.writes, vec![]);
    assert_eq!(core.flush_pool_statuses().writes, vec![]);
}

#[tokio::test]
async fn the_echo_of_a_write_is_not_written_again() {
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/24"], None));
    cluster.put(service("shop", "web", json!({})));
    let (mut core, first) = Core::start(None, &cluster).unwrap();
    assert!(!first.writes.is_empty());

    // Before the watch shows the write, another event for the Service: same writes, no new allocation.
    let again = core.service_changed(&cluster, &ServiceKey::new("shop", "web"));
    let services_writes = |o: &Vec<Write>| {
        o.iter()
            .filter(|w| matches!(w, Write::PoolAnnotation { .. } | Write::Ingress { .. }))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        services_writes(&again.writes),
        services_writes(&first.writes)
    );

    // The watch shows the write: nothing more.
    cluster.put(service(
        "shop",
        "web",
        json!({"metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": "default"}},
               "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.0"}]}}}),
    ));
    let echo = core.service_changed(&cluster, &ServiceKey::new("shop", "web"));
    assert_eq!(echo.writes, vec![]);
}

#[tokio::test]
async fn a_failure_is_recorded_as_a_warning_event_once_and_nothing_else_is_written() {
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/24"], None));
    cluster.put(service(
        "shop",
        "web",
        json!({"spec": {"loadBalancerIP": "198.51.100.7"}}),
    ));
    let (mut core, outcome) = Core::start(None, &cluster).unwrap();
    assert_eq!(outcome.failures, vec!["RequestedIPNotInPool"]);
    let sent = write_through_mock(outcome.writes, true).await;
    let events: Vec<&Sent> = sent.iter().filter(|s| s.path.contains("/events")).collect();
    assert_eq!(events.len(), 1, "{sent:#?}");
    assert_eq!(
        events[0].path,
        "/apis/events.k8s.io/v1/namespaces/shop/events"
    );
    assert_eq!(events[0].body["type"], "Warning");
    assert_eq!(events[0].body["reason"], "AllocationFailed");
    assert_eq!(
        events[0].body["note"],
        "requested IP 198.51.100.7 is in no pool"
    );
    assert!(
        !sent.iter().any(|s| s.path.contains("/services/")),
        "no status or annotation for a Service without IP: {sent:#?}"
    );

    // The same failure again (any resync) is not reported again…
    let again = core.service_changed(&cluster, &ServiceKey::new("shop", "web"));
    assert_eq!(again.writes, vec![]);
    assert!(again.failures.is_empty());

    // …but fixing the request allocates, and the event says so.
    cluster.put(service(
        "shop",
        "web",
        json!({"spec": {"loadBalancerIP": "203.0.113.9"}}),
    ));
    let fixed = core.service_changed(&cluster, &ServiceKey::new("shop", "web"));
    let sent = write_through_mock(fixed.writes, true).await;
    let reasons: Vec<&Value> = sent
        .iter()
        .filter(|s| s.path.contains("/events"))
        .map(|s| &s.body["reason"])
        .collect();
    assert_eq!(reasons, [&json!("IPAllocated")]);
    let status = sent.iter().find(|s| s.path.ends_with("/status")).unwrap();
    assert_eq!(
        status.body["status"],
        json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}})
    );
}

#[tokio::test]
async fn a_service_that_stops_being_a_load_balancer_is_cleared_with_merge_patches() {
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/24"], None));
    cluster.put(service("shop", "web", json!({})));
    let (mut core, _) = Core::start(None, &cluster).unwrap();
    cluster.put(service(
        "shop",
        "web",
        json!({"spec": {"type": "ClusterIP"},
               "metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": "default"}},
               "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.0"}]}}}),
    ));
    let outcome = core.service_changed(&cluster, &ServiceKey::new("shop", "web"));
    let sent = write_through_mock(outcome.writes, true).await;
    let merge = "application/merge-patch+json";
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_eq!(sent[0].path, "/api/v1/namespaces/shop/services/web/status");
    assert_eq!(sent[0].content_type.as_deref(), Some(merge));
    assert_eq!(
        sent[0].body,
        json!({"metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": null}},
               "status": {"loadBalancer": {"ingress": null}}})
    );
    assert_eq!(sent[1].body["reason"], "ClearAssignment");
    assert_eq!(
        sent[1].body["note"],
        "released 203.0.113.0: not of type LoadBalancer"
    );
}

#[tokio::test]
async fn a_service_of_another_class_is_left_alone() {
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/24"], None));
    cluster.put(service(
        "shop",
        "web",
        json!({"spec": {"loadBalancerClass": "other.example/lb"},
               "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}}),
    ));
    let (_core, outcome) = Core::start(None, &cluster).unwrap();
    assert!(outcome
        .writes
        .iter()
        .all(|w| matches!(w, Write::PoolStatus { .. })));
}

#[tokio::test]
async fn a_replica_that_does_not_lead_writes_nothing() {
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/24"], None));
    cluster.put(service("shop", "web", json!({})));
    let (_core, outcome) = Core::start(None, &cluster).unwrap();
    assert!(!outcome.writes.is_empty());
    assert!(write_through_mock(outcome.writes, false).await.is_empty());
}

/// The same with the real election: another replica holds a fresh Lease, so this one reads the Lease and
/// then sends nothing else.
#[tokio::test]
async fn a_replica_that_finds_the_lease_held_writes_nothing() {
    let (mock_service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(mock_service, "default");
    let lease_path =
        "/apis/coordination.k8s.io/v1/namespaces/ferrolb-system/leases/ferrolb-controller";
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let (lease_read_tx, mut lease_read) = tokio::sync::mpsc::unbounded_channel::<()>();
    let server = tokio::spawn(async move {
        let mut others = Vec::new();
        let mut done = std::pin::pin!(done_rx);
        loop {
            let next = tokio::select! {
                next = handle.next_request() => next,
                _ = &mut done => break,
            };
            let Some((request, respond)) = next else {
                break;
            };
            let path = request.uri().path().to_owned();
            if request.method() == http::Method::GET && path == lease_path {
                let now = k8s_openapi::jiff::Timestamp::now();
                let lease = json!({
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": "ferrolb-controller", "namespace": NS},
                    "spec": {"holderIdentity": "ferrolb-controller-1", "leaseDurationSeconds": 3600,
                             "renewTime": now.to_string(), "acquireTime": now.to_string()},
                });
                respond.send_response(
                    Response::builder()
                        .body(Body::from(serde_json::to_vec(&lease).unwrap()))
                        .unwrap(),
                );
                let _ = lease_read_tx.send(());
            } else {
                others.push(format!("{} {path}", request.method()));
                respond.send_response(Response::builder().status(500).body(Body::empty()).unwrap());
            }
        }
        others
    });

    let params = controller::LeaderElection::default();
    let election = controller::elect(client.clone(), NS, "ferrolb-controller-0", &params);
    let mut leading = election.leading.clone();
    // After its first look at the Lease (held by another replica) this one does not lead.
    lease_read.recv().await.unwrap();
    tokio::task::yield_now().await;
    assert!(
        !*leading.borrow_and_update(),
        "the Lease is held by another replica"
    );

    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/24"], None));
    cluster.put(service("shop", "web", json!({})));
    let (_core, outcome) = Core::start(None, &cluster).unwrap();
    let writer = Writer::new(client, None, leading.clone(), Metrics::unregistered());
    assert!(writer.apply(outcome.writes).await.is_empty());
    election.stop(std::time::Duration::from_secs(1)).await;
    assert!(!*leading.borrow(), "it never led");
    drop(writer);
    done_tx.send(()).unwrap();
    let others = server.await.unwrap();
    assert_eq!(
        others,
        Vec::<String>::new(),
        "requests other than reading the Lease"
    );
}

/// The whole loop, watches included: the mock lists one pool and one Service, holds the watches open,
/// and sees the allocation written; then the loop stops on shutdown.
#[tokio::test]
async fn the_controller_loop_lists_then_writes_the_allocation() {
    let list = ferrolb_kube_mock::list;
    let empty = |api_version: &str, kind: &str| list(api_version, kind, vec![]);
    let own = |version: &str, plural: &str| {
        format!("/apis/ferrolb.io/{version}/namespaces/{NS}/{plural}")
    };
    let mut lists = BTreeMap::new();
    lists.insert(
        "/api/v1/services".to_owned(),
        list(
            "v1",
            "ServiceList",
            vec![serde_json::to_value(service("shop", "web", json!({}))).unwrap()],
        ),
    );
    lists.insert(
        "/api/v1/namespaces".to_owned(),
        list(
            "v1",
            "NamespaceList",
            vec![json!({"metadata": {"name": "shop"}})],
        ),
    );
    lists.insert(
        own("v1beta1", "ipaddresspools"),
        list(
            "ferrolb.io/v1beta1",
            "IPAddressPoolList",
            vec![serde_json::to_value(pool("default", &["203.0.113.0/24"], None)).unwrap()],
        ),
    );
    lists.insert(
        own("v1beta2", "bgppeers"),
        empty("ferrolb.io/v1beta2", "BGPPeerList"),
    );
    for (plural, kind) in [
        ("bgpadvertisements", "BGPAdvertisementList"),
        ("l2advertisements", "L2AdvertisementList"),
        ("communities", "CommunityList"),
        ("bfdprofiles", "BFDProfileList"),
        ("speakerstates", "SpeakerStateList"),
    ] {
        lists.insert(own("v1beta1", plural), empty("ferrolb.io/v1beta1", kind));
    }
    // On taking the lead: the warnings already recorded.
    lists.insert("/api/v1/events".to_owned(), empty("v1", "EventList"));

    let (client, server) = ferrolb_kube_mock::start(lists);
    let (ready_tx, mut ready_rx) = watch::channel(controller::Readiness::default());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let options = Options {
        namespace: NS.into(),
        class: None,
        identity: "ferrolb-controller-0".into(),
        election: None,
    };
    let run = tokio::spawn(controller::run(
        client,
        options,
        Metrics::unregistered(),
        ready_tx,
        async move {
            let _ = stop_rx.await;
        },
    ));
    // Ready means: every watch listed, and the start-up allocation written.
    tokio::time::timeout(Duration::from_secs(60), ready_rx.wait_for(|r| r.ready))
        .await
        .expect("the controller became ready")
        .unwrap();
    stop_tx.send(()).unwrap();
    run.await.unwrap();
    let sent = server.await.unwrap();

    let writes: Vec<String> = sent
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert!(
        writes.contains(&"PATCH /api/v1/namespaces/shop/services/web/status".to_owned()),
        "{writes:#?}"
    );
    let status = sent
        .iter()
        .find(|s| s.path == "/api/v1/namespaces/shop/services/web/status")
        .unwrap();
    assert_eq!(
        status.body["status"],
        json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.0"}]}})
    );
    assert!(
        !writes.contains(&"PATCH /api/v1/namespaces/shop/services/web".to_owned()),
        "the annotation goes with the status: {writes:#?}"
    );
    assert_eq!(
        status.body["metadata"]["annotations"],
        json!({"ferrolb.io/ip-allocated-from-pool": "default"})
    );
    assert!(writes.contains(&"POST /apis/events.k8s.io/v1/namespaces/shop/events".to_owned()));
}

/// A new leader (or a restarted controller) does not record again a warning that an earlier one recorded
/// on the same Service, but does record one that is new or about a re-created Service.
#[test]
fn a_takeover_does_not_record_a_warning_already_recorded() {
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/24"], None));
    cluster.put(service(
        "shop",
        "web",
        json!({"spec": {"loadBalancerIP": "198.51.100.7"}}),
    ));
    let (_, first) = Core::start(None, &cluster).unwrap();
    let warnings: Vec<(String, String)> = first
        .writes
        .iter()
        .filter_map(|w| match w {
            Write::Event {
                severity: Severity::Warning,
                reason,
                note,
                ..
            } => Some((reason.to_string(), note.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{:#?}", first.writes);
    let recorded = |uid: &str| {
        vec![RecordedWarning {
            service: ServiceKey::new("shop", "web"),
            uid: uid.into(),
            reason: warnings[0].0.clone(),
            note: warnings[0].1.clone(),
        }]
    };
    let events = |writes: &[Write]| {
        writes
            .iter()
            .filter(|w| matches!(w, Write::Event { .. }))
            .count()
    };
    let (_, again) = Core::start_with_recorded(None, &cluster, &recorded("uid-web")).unwrap();
    assert_eq!(
        events(&again.writes),
        0,
        "nothing new to say: {:#?}",
        again.writes
    );
    assert!(again.failures.is_empty());
    // The event was about an earlier Service of the same name: this one is told.
    let (_, other) = Core::start_with_recorded(None, &cluster, &recorded("uid-old")).unwrap();
    assert_eq!(events(&other.writes), 1, "{:#?}", other.writes);
}

/// Controllers of different classes share the pools: an IP that a Service of another class holds is taken
/// for this controller too, and nothing is written about that Service. Only the controller of Services
/// without a class writes pool status, counting every class.
#[test]
fn an_ip_held_by_another_class_is_never_handed_out_twice() {
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/30"], None));
    cluster.put(service(
        "shop",
        "internal",
        json!({"spec": {"loadBalancerClass": "internal"},
               "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.0"}]}}}),
    ));
    cluster.put(service("shop", "web", json!({})));
    let (mut core, outcome) = Core::start(None, &cluster).unwrap();
    assert_eq!(
        core.allocator()
            .assignment(&ServiceKey::new("shop", "web"))
            .unwrap()
            .ips,
        vec!["203.0.113.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(
        outcome
            .writes
            .iter()
            .all(|w| w.service() != Some(ServiceKey::new("shop", "internal"))),
        "nothing about the other class's Service: {:#?}",
        outcome.writes
    );
    let status = outcome
        .writes
        .iter()
        .find_map(|w| match w {
            Write::PoolStatus { status, .. } => Some(status.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(status.assigned_ipv4, 2, "both classes counted");

    // The other class releases its IP: it becomes free here too.
    cluster.put(service(
        "shop",
        "internal",
        json!({"spec": {"loadBalancerClass": "internal"}}),
    ));
    let changed = core.service_changed(&cluster, &ServiceKey::new("shop", "internal"));
    assert!(changed.writes.is_empty(), "{:#?}", changed.writes);
    assert_eq!(core.allocator().len(), 1);

    // The class controller sees the default Service's IP as taken, and writes no pool status.
    let (class_core, class_outcome) = Core::start(Some("internal".into()), &cluster).unwrap();
    assert!(
        class_outcome
            .writes
            .iter()
            .all(|w| !matches!(w, Write::PoolStatus { .. })),
        "{:#?}",
        class_outcome.writes
    );
    let _ = class_core;
}

/// The API load of 1,000 new Services, start to finish: one request per Service (annotation and IP
/// together), one event per Service, one pool status; after the watch echoes the writes back, nothing.
/// A takeover by another replica (a new `Core` over the same objects) writes nothing and records no event.
#[tokio::test]
async fn a_thousand_services_cost_one_write_and_one_event_each() {
    let mut cluster = FakeCluster::with_pool(pool("default", &["100.64.0.0/16"], None));
    for i in 0..1000 {
        cluster.put(service("shop", &format!("svc-{i}"), json!({})));
    }
    let (mut core, outcome) = Core::start(None, &cluster).unwrap();
    let sent = write_through_mock(outcome.writes.clone(), true).await;
    let count = |f: &dyn Fn(&Sent) -> bool| sent.iter().filter(|s| f(s)).count();
    let service_writes = count(&|s| s.path.contains("/services/"));
    let events = count(&|s| s.path.contains("/events"));
    let pool_writes = count(&|s| s.path.contains("/ipaddresspools/"));
    eprintln!(
        "1,000 Services: {} requests: {service_writes} Service writes, {events} events, {pool_writes} pool status",
        sent.len()
    );
    assert_eq!(service_writes, 1000);
    assert_eq!(events, 1000);
    assert_eq!(pool_writes, 1);
    assert_eq!(sent.len(), 2001);

    // The watch echoes every write: the objects now show their IPs and pool.
    for w in &outcome.writes {
        if let Write::Ingress { service: key, ips } = w {
            let ip = ips[0].to_string();
            cluster.put(service(
                &key.namespace,
                &key.name,
                json!({"metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": "default"}},
                       "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}),
            ));
        }
    }
    let echoed: Vec<Write> = (0..1000)
        .flat_map(|i| {
            core.service_changed(&cluster, &ServiceKey::new("shop", format!("svc-{i}")))
                .writes
        })
        .collect();
    assert_eq!(echoed, vec![], "an echo writes nothing");
    let (_, takeover) = Core::start(None, &cluster).unwrap();
    let takeover_writes: Vec<&Write> = takeover
        .writes
        .iter()
        .filter(|w| !matches!(w, Write::PoolStatus { .. }))
        .collect();
    assert!(takeover_writes.is_empty(), "{takeover_writes:#?}");
}

/// Two controllers of different classes that allocate the same IP at the same moment (each before seeing
/// the other's write) settle it the same way: the Service created later is renumbered, the older keeps it.
#[test]
fn an_ip_allocated_twice_at_once_by_two_classes_goes_to_the_older_service() {
    let created = |t: &str| json!({"metadata": {"creationTimestamp": t}});
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/30"], None));
    cluster.put(service("shop", "web", created("2026-12-04T10:00:02Z")));
    let (mut core, _) = Core::start(None, &cluster).unwrap();
    let web = ServiceKey::new("shop", "web");
    let first: std::net::IpAddr = "203.0.113.0".parse().unwrap();
    assert_eq!(core.allocator().assignment(&web).unwrap().ips, vec![first]);

    // An older Service of class `internal` shows the same IP: ours gives way.
    let mut internal = created("2026-12-04T10:00:01Z");
    internal["spec"] = json!({"loadBalancerClass": "internal"});
    internal["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.0"}]}});
    cluster.put(service("shop", "internal", internal.clone()));
    let outcome = core.service_changed(&cluster, &ServiceKey::new("shop", "internal"));
    let renumbered = core.allocator().assignment(&web).unwrap().ips;
    assert_ne!(renumbered, vec![first]);
    assert!(
        outcome
            .writes
            .iter()
            .any(|w| matches!(w, Write::Ingress { service, ips } if *service == web && *ips == renumbered)),
        "{:#?}",
        outcome.writes
    );
    assert!(outcome.writes.iter().any(|w| matches!(
        w,
        Write::Event {
            reason: "IPContested",
            ..
        }
    )));

    // A younger one gives way instead: ours keeps its IP, nothing is written.
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/30"], None));
    cluster.put(service("shop", "web", created("2026-12-04T10:00:01Z")));
    let (mut core, _) = Core::start(None, &cluster).unwrap();
    internal["metadata"]["creationTimestamp"] = json!("2026-12-04T10:00:02Z");
    cluster.put(service("shop", "internal", internal));
    let outcome = core.service_changed(&cluster, &ServiceKey::new("shop", "internal"));
    assert_eq!(outcome.writes, vec![]);
    assert_eq!(core.allocator().assignment(&web).unwrap().ips, vec![first]);
}

fn ingress(ip: &str) -> Value {
    json!({"metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": "default"}},
           "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})
}

fn reasons(writes: &[Write]) -> Vec<(String, &'static str)> {
    writes
        .iter()
        .filter_map(|w| match w {
            Write::Event {
                regarding, reason, ..
            } => Some((regarding.name.clone().unwrap(), *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_pool_edit_keeps_the_ip_and_reports_the_conflict_on_the_service_and_the_pool() {
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/24"], None));
    cluster.put(service("shop", "web", ingress("203.0.113.200")));
    let (mut core, _) = Core::start(None, &cluster).unwrap();

    cluster.objects = Objects::default();
    cluster
        .objects
        .push(pool("default", &["203.0.113.0/25"], None), None);
    let outcome = core.config_changed(&cluster);
    assert_eq!(outcome.config_errors, None);
    assert!(
        !outcome
            .writes
            .iter()
            .any(|w| matches!(w, Write::Ingress { .. } | Write::PoolAnnotation { .. })),
        "the IP stays: {:#?}",
        outcome.writes
    );
    assert_eq!(
        reasons(&outcome.writes),
        [("web".to_owned(), "PoolConflict")]
    );
    let status = outcome
        .writes
        .iter()
        .find_map(|w| match w {
            Write::PoolStatus { status, .. } => Some(status.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(status.conflicts.len(), 1);
    assert_eq!(status.conflicts[0].service, "shop/web");
    assert_eq!(status.conflicts[0].ip, "203.0.113.200");
    assert_eq!(
        status.conflicts[0].reason,
        "the IP is no longer in pool default"
    );
}

#[test]
fn an_invalid_configuration_is_reported_and_the_last_valid_one_stays() {
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/24"], None));
    let (mut core, _) = Core::start(None, &cluster).unwrap();
    cluster.objects = Objects::default();
    cluster
        .objects
        .push(pool("default", &["203.0.113.0/33"], None), None);
    let outcome = core.config_changed(&cluster);
    let errors = outcome.config_errors.expect("reported");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("IPAddressPool") && e.contains("spec.addresses")),
        "{errors:?}"
    );
    assert_eq!(outcome.writes, vec![]);
    // The old pool still allocates.
    cluster.put(service("shop", "web", json!({})));
    let outcome = core.service_changed(&cluster, &ServiceKey::new("shop", "web"));
    assert!(outcome.writes.contains(&Write::Ingress {
        service: ServiceKey::new("shop", "web"),
        ips: vec!["203.0.113.0".parse().unwrap()],
    }));
}

#[test]
fn deleting_a_service_frees_its_ip_for_one_that_was_waiting() {
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.5/32"], None));
    cluster.put(service("a", "first", ingress("203.0.113.5")));
    cluster.put(service("b", "second", json!({})));
    let (mut core, outcome) = Core::start(None, &cluster).unwrap();
    assert_eq!(
        reasons(&outcome.writes),
        [("second".to_owned(), "AllocationFailed")]
    );

    cluster.services.remove(&ServiceKey::new("a", "first"));
    let outcome = core.service_changed(&cluster, &ServiceKey::new("a", "first"));
    assert!(outcome.writes.contains(&Write::Ingress {
        service: ServiceKey::new("b", "second"),
        ips: vec!["203.0.113.5".parse().unwrap()],
    }));
    assert_eq!(
        reasons(&outcome.writes),
        [("second".to_owned(), "IPAllocated")]
    );
}

#[test]
fn on_takeover_the_first_holder_keeps_a_contested_ip_and_the_other_is_renumbered() {
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/24"], None));
    cluster.put(service("a", "one", ingress("203.0.113.9")));
    cluster.put(service("b", "two", ingress("203.0.113.9")));
    let (core, outcome) = Core::start(None, &cluster).unwrap();
    assert_eq!(
        core.allocator().holders("203.0.113.9".parse().unwrap()),
        [ServiceKey::new("a", "one")]
    );
    assert!(outcome.writes.contains(&Write::Ingress {
        service: ServiceKey::new("b", "two"),
        ips: vec!["203.0.113.0".parse().unwrap()],
    }));
    assert!(!outcome
        .writes
        .iter()
        .any(|w| w.service() == Some(ServiceKey::new("a", "one"))));
    assert_eq!(
        reasons(&outcome.writes),
        [
            ("two".to_owned(), "ClearAssignment"),
            ("two".to_owned(), "IPAllocated")
        ]
    );
}

#[test]
fn a_namespace_label_change_reconciles_its_services_against_namespace_selectors() {
    let mut selective = pool("team-a", &["198.51.100.0/24"], None);
    selective.spec.service_allocation = Some(
        serde_json::from_value(
            json!({"priority": 1, "namespaceSelectors": [{"matchLabels": {"team": "a"}}]}),
        )
        .unwrap(),
    );
    let mut cluster = FakeCluster::with_pool(selective);
    cluster.put(service("shop", "web", json!({})));
    let (mut core, outcome) = Core::start(None, &cluster).unwrap();
    assert_eq!(
        reasons(&outcome.writes),
        [("web".to_owned(), "AllocationFailed")]
    );

    // Unrelated namespace: nothing. Same labels again: nothing.
    assert_eq!(core.namespace_changed(&cluster, "other").writes, vec![]);
    cluster
        .namespaces
        .insert("shop".into(), [("team".to_owned(), "a".to_owned())].into());
    let outcome = core.namespace_changed(&cluster, "shop");
    assert!(
        outcome.writes.contains(&Write::Ingress {
            service: ServiceKey::new("shop", "web"),
            ips: vec!["198.51.100.0".parse().unwrap()],
        }),
        "{outcome:#?}"
    );
    assert_eq!(core.namespace_changed(&cluster, "shop").writes, vec![]);
}

#[test]
fn metrics_show_pool_usage_under_metallb_compatible_names() {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let mut cluster = FakeCluster::with_pool(pool("default", &["203.0.113.0/30"], None));
    cluster.put(service("shop", "web", json!({})));
    let (core, _) = Core::start(None, &cluster).unwrap();
    metrics.observe_allocator(core.allocator());
    metrics.allocation_failed("NoAddress");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        "ferrolb_allocator_addresses_total{pool=\"default\"} 4.0",
        "ferrolb_allocator_addresses_in_use_total{pool=\"default\"} 1.0",
        "ferrolb_allocator_allocation_failures_total{reason=\"NoAddress\"} 1",
        "ferrolb_allocator_services 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}
