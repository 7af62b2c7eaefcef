//! Kubernetes mode: what the speaker reports (SpeakerState, events) and how it writes it, against kube's
//! mock client; and the whole loop from the initial lists to the first SpeakerState.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrolb_allocator::ServiceKey;
use ferrolb_bgp::fsm::FsmConfig;
use ferrolb_bgp::session::{PeerStatus, SessionConfig};
use ferrolb_kube_mock::{apply_query, list};
use ferrolb_speaker::cluster::{
    self, announcement_events, events_after_restart, speaker_status, Options, Writer,
};
use ferrolb_speaker::decide::{Announced, Desired, NotAnnounced, Via};
use serde_json::json;
use tokio::sync::oneshot;

const NS: &str = "ferrolb-system";

fn bgp(service: &str, ip: &str, peers: &[&str]) -> Announced {
    Announced {
        service: ServiceKey::new("shop", service),
        ip: ip.parse().unwrap(),
        via: Via::Bgp {
            prefix: format!("{ip}/32").parse().unwrap(),
            peers: peers.iter().map(|p| p.to_string()).collect(),
        },
    }
}

fn desired(announced: Vec<Announced>, not: Vec<NotAnnounced>) -> Desired {
    Desired {
        announced,
        not_announced: not,
        ..Desired::default()
    }
}

#[test]
fn the_status_lists_sessions_announcements_and_configuration_problems() {
    let d = desired(
        vec![bgp("web", "203.0.113.10", &["tor-a", "tor-b"])],
        vec![],
    );
    let cfg = SessionConfig::new(
        "198.51.100.1".parse().unwrap(),
        FsmConfig::new(64512, 64500, "198.51.100.2".parse().unwrap()),
    );
    let sessions = BTreeMap::from([("tor-a".to_owned(), PeerStatus::new(&cfg))]);
    let s = speaker_status("node1", &[], &d, &sessions);
    assert_eq!(s.node, "node1");
    assert_eq!(s.config, "Valid");
    assert_eq!(s.sessions_up, 0);
    assert_eq!(s.peers[0].name, "tor-a");
    assert_eq!(s.peers[0].address, "198.51.100.1:179");
    assert_eq!(s.peers[0].state, "Idle");
    assert_eq!(s.announced_count, 1);
    assert_eq!(s.announced[0].service, "shop/web");
    assert_eq!(s.announced[0].protocol, "bgp");
    assert_eq!(s.announced[0].peers, ["tor-a", "tor-b"]);
    assert_eq!(s.announced[0].prefix.as_deref(), Some("203.0.113.10/32"));

    let bad = speaker_status(
        "node1",
        &["IPAddressPool x: spec.addresses[0]: bad".into()],
        &d,
        &sessions,
    );
    assert_eq!(bad.config, "Invalid");
    assert_eq!(bad.config_errors.len(), 1);
}

#[test]
fn events_say_what_started_and_what_stopped_and_why() {
    let before = desired(
        vec![
            bgp("web", "203.0.113.10", &["tor"]),
            bgp("db", "203.0.113.11", &["tor"]),
        ],
        vec![],
    );
    let after = desired(
        vec![
            bgp("web", "203.0.113.10", &["tor"]),
            bgp("api", "203.0.113.12", &["tor"]),
        ],
        vec![NotAnnounced {
            service: ServiceKey::new("shop", "db"),
            ip: "203.0.113.11".parse().unwrap(),
            reason: "externalTrafficPolicy Local: no serving endpoint on this node".into(),
        }],
    );
    let events = announcement_events("node1", &before, &after);
    let lines: Vec<String> = events
        .iter()
        .map(|e| format!("{} {}: {}", e.service, e.reason, e.note))
        .collect();
    assert_eq!(
        lines,
        [
            "shop/api Announced: node node1 announces 203.0.113.12 over BGP to tor",
            "shop/db Withdrawn: node node1 stopped announcing 203.0.113.11 (bgp): externalTrafficPolicy Local: no serving endpoint on this node",
        ]
    );
    assert!(
        announcement_events("node1", &after, &after).is_empty(),
        "no change, no event"
    );
}

/// A restarted speaker compares its first decision with what its previous run reported: announcing the
/// same set records no event; only what really changed is told.
#[test]
fn a_restart_that_announces_the_same_set_records_no_event() {
    let d = desired(
        vec![
            bgp("web", "203.0.113.10", &["tor"]),
            bgp("db", "203.0.113.11", &["tor"]),
        ],
        vec![],
    );
    let previous = speaker_status("node1", &[], &d, &BTreeMap::new());
    assert!(events_after_restart("node1", &previous, &d).is_empty());
    let after = desired(
        vec![
            bgp("web", "203.0.113.10", &["tor"]),
            bgp("api", "203.0.113.12", &["tor"]),
        ],
        vec![],
    );
    let lines: Vec<String> = events_after_restart("node1", &previous, &after)
        .iter()
        .map(|e| format!("{} {}", e.service, e.reason))
        .collect();
    assert_eq!(lines, ["shop/api Announced", "shop/db Withdrawn"]);
}

#[tokio::test]
async fn the_speaker_state_is_applied_once_and_not_again_while_unchanged() {
    let (client, server) = ferrolb_kube_mock::start(BTreeMap::new());
    let mut writer = Writer::new(client, NS, "node1");
    let d = desired(vec![bgp("web", "203.0.113.10", &["tor"])], vec![]);
    let status = speaker_status("node1", &[], &d, &BTreeMap::new());
    assert!(writer.status(status.clone()).await.unwrap());
    assert!(
        !writer.status(status.clone()).await.unwrap(),
        "unchanged: no write"
    );
    let events = announcement_events("node1", &Desired::default(), &d);
    writer.event(&events[0], None).await;
    drop(writer);
    let sent = server.await.unwrap();
    let lines: Vec<String> = sent.iter().map(|s| s.line()).collect();
    assert_eq!(
        lines,
        [
            "PATCH /apis/ferrolb.io/v1beta1/namespaces/ferrolb-system/speakerstates/node1",
            "PATCH /apis/ferrolb.io/v1beta1/namespaces/ferrolb-system/speakerstates/node1/status",
            "POST /apis/events.k8s.io/v1/namespaces/shop/events",
        ]
    );
    assert_eq!(sent[0].query, apply_query("ferrolb-speaker"));
    assert_eq!(
        sent[0].body,
        json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "SpeakerState",
               "metadata": {"name": "node1", "labels": {"ferrolb.io/node": "node1"}}, "spec": {}})
    );
    assert_eq!(sent[1].query, apply_query("ferrolb-speaker"));
    let st = &sent[1].body["status"];
    assert_eq!(st["node"], "node1");
    assert_eq!(st["config"], "Valid");
    assert_eq!(st["announcedCount"], 1);
    assert_eq!(st["announced"][0]["ip"], "203.0.113.10");
    assert!(st["updated"].is_string());
    assert_eq!(sent[2].body["reason"], "Announced");
    assert_eq!(sent[2].body["regarding"]["name"], "web");
    assert_eq!(
        sent[2].body["note"],
        "node node1 announces 203.0.113.10 over BGP to tor"
    );
}

/// The loop: every watch lists, then the speaker decides and writes its SpeakerState. (No BGPPeer and
/// no L2Advertisement: this test must not send anything on the machine's own network.)
#[tokio::test]
async fn the_speaker_loop_lists_everything_then_reports() {
    let own = |version: &str, plural: &str| {
        format!("/apis/ferrolb.io/{version}/namespaces/{NS}/{plural}")
    };
    let mut lists = BTreeMap::new();
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}},
    });
    lists.insert(
        "/api/v1/services".to_owned(),
        list("v1", "ServiceList", vec![svc]),
    );
    lists.insert(
        "/apis/discovery.k8s.io/v1/endpointslices".to_owned(),
        list("discovery.k8s.io/v1", "EndpointSliceList", vec![json!({
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.0.5"], "nodeName": "node1", "conditions": {"ready": true}}],
        })]),
    );
    lists.insert(
        "/api/v1/nodes".to_owned(),
        list(
            "v1",
            "NodeList",
            vec![json!({"metadata": {"name": "node1"}})],
        ),
    );
    lists.insert(
        format!("/api/v1/namespaces/{NS}/secrets"),
        list("v1", "SecretList", vec![]),
    );
    lists.insert(
        format!("/api/v1/namespaces/{NS}/pods"),
        list("v1", "PodList", vec![]),
    );
    lists.insert(
        own("v1beta1", "ipaddresspools"),
        list("ferrolb.io/v1beta1", "IPAddressPoolList", vec![json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "public", "namespace": NS}, "spec": {"addresses": ["203.0.113.0/24"]},
        })]),
    );
    lists.insert(
        own("v1beta2", "bgppeers"),
        list("ferrolb.io/v1beta2", "BGPPeerList", vec![]),
    );
    for (plural, kind) in [
        ("bgpadvertisements", "BGPAdvertisementList"),
        ("l2advertisements", "L2AdvertisementList"),
        ("communities", "CommunityList"),
        ("bfdprofiles", "BFDProfileList"),
    ] {
        lists.insert(
            own("v1beta1", plural),
            list("ferrolb.io/v1beta1", kind, vec![]),
        );
    }
    // What the previous run on this node reported: read once at start.
    lists.insert(
        own("v1beta1", "speakerstates/node1"),
        json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "SpeakerState",
               "metadata": {"name": "node1", "namespace": NS}, "spec": {},
               "status": {"node": "node1", "config": "Valid", "sessionsUp": 0, "announcedCount": 0}}),
    );
    let (client, server, mut feed) = ferrolb_kube_mock::start_with_feed(lists);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let options = Options {
        node_name: "node1".into(),
        namespace: NS.into(),
        speaker_pods: "app.kubernetes.io/component=speaker".into(),
        metrics_addr: None,
        memberlist: None,
    };
    let run = tokio::spawn(cluster::run(client, options, async move {
        let _ = stop_rx.await;
    }));
    // Wait for the first SpeakerState status write (it follows the first decision).
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(s) = feed.recv().await {
            if s.path.ends_with("/speakerstates/node1/status") {
                return;
            }
        }
    })
    .await
    .expect("a SpeakerState is written");
    stop_tx.send(()).unwrap();
    run.await.unwrap().unwrap();
    let sent = server.await.unwrap();
    let status = sent
        .iter()
        .find(|s| s.path.ends_with("/speakerstates/node1/status"))
        .unwrap_or_else(|| panic!("no SpeakerState written: {sent:#?}"));
    let st = &status.body["status"];
    assert_eq!(st["config"], "Valid");
    assert_eq!(st["announcedCount"], 0);
    assert!(st["heartbeat"].is_string(), "{st:#}");
    assert_eq!(st["conditions"][0]["type"], "Ready");
    assert_eq!(st["conditions"][0]["status"], "True");
    // On shutdown the speaker says it stopped.
    let last = sent
        .iter()
        .rfind(|s| s.path.ends_with("/speakerstates/node1/status"))
        .unwrap();
    assert_eq!(last.body["status"]["conditions"][0]["status"], "False");
    assert_eq!(last.body["status"]["conditions"][0]["reason"], "Stopped");
    assert!(
        sent.iter().all(|s| !s.path.contains("/events")),
        "nothing announced, so no event: {sent:#?}"
    );
}
