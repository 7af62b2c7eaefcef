//! The speaker's Prometheus metrics. MetalLB's names with the `ferrolb_` prefix where an equivalent exists
//! (`speaker_announced`, `bgp_session_up`, `bgp_updates_total`, `bgp_announced_prefixes_total`,
//! `bgp_pending_prefixes_total`, `k8s_client_config_loaded_bool`, `k8s_client_config_stale_bool`), plus
//! the latency from an object change to its announcement.
//!
//! Session figures are read from the sessions' live status at scrape time (a collector), so they can
//! never lag behind or drift from what `SpeakerState` and the logs say.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ferrolb_bgp::session::PeerStatus;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::decide::{Desired, Via};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnnouncedLabels {
    service: String,
    protocol: String,
    node: String,
    ip: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: String,
}

/// The sessions' live status, shared with the collector.
pub type SessionStatus = Arc<Mutex<BTreeMap<String, watch::Receiver<PeerStatus>>>>;

/// Handles to every speaker metric; cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    announced: Family<AnnouncedLabels, Gauge>,
    latency: Family<ProtocolLabel, Histogram>,
    config_loaded: Gauge,
    config_stale: Gauge,
    sessions: SessionStatus,
    unavailable: Family<ferrolb_allocator::controller::KindLabel, Gauge>,
}

fn latency_buckets() -> Histogram {
    // 1 ms to ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    /// Creates the metrics and registers them under `ferrolb_` in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            announced: Family::default(),
            latency: Family::new_with_constructor(latency_buckets),
            config_loaded: Gauge::default(),
            config_stale: Gauge::default(),
            sessions: SessionStatus::default(),
            unavailable: ferrolb_allocator::controller::register_unavailable(registry),
        };
        let r = registry.sub_registry_with_prefix("ferrolb");
        r.register(
            "speaker_announced",
            "1 for each Service IP this node announces, by protocol (the desired state)",
            m.announced.clone(),
        );
        r.register(
            "speaker_announce_latency_seconds",
            "From an object change (watch event, or the manifest's modification time) to the new announcement handed to the sessions (bgp) or the responders, which send their gratuitous ARP/NA at once (layer2)",
            m.latency.clone(),
        );
        r.register(
            "k8s_client_config_loaded_bool",
            "1 once a valid configuration has been loaded",
            m.config_loaded.clone(),
        );
        r.register(
            "k8s_client_config_stale_bool",
            "1 while the latest configuration is invalid and an older one is announced",
            m.config_stale.clone(),
        );
        r.register_collector(Box::new(SessionCollector {
            sessions: m.sessions.clone(),
        }));
        m
    }

    /// Sets `speaker_announced` to exactly what `desired` announces.
    pub fn announced(&self, node: &str, desired: &Desired) {
        self.announced.clear();
        for a in &desired.announced {
            let protocol = match a.via {
                Via::Bgp { .. } => "bgp",
                Via::L2 { .. } => "layer2",
            };
            self.announced
                .get_or_create(&AnnouncedLabels {
                    service: a.service.to_string(),
                    protocol: protocol.into(),
                    node: node.into(),
                    ip: a.ip.to_string(),
                })
                .set(1);
        }
    }

    pub fn latency(&self, protocol: &str, seconds: f64) {
        self.latency
            .get_or_create(&ProtocolLabel {
                protocol: protocol.into(),
            })
            .observe(seconds);
    }

    /// After a new plan is applied: the latency per protocol whose part changed, the announced IPs, and
    /// the sessions to report.
    pub fn applied(
        &self,
        node: &str,
        before: Option<&crate::pipeline::Announcements>,
        after: &crate::pipeline::Announcements,
        since_change: Option<f64>,
        sessions: BTreeMap<String, watch::Receiver<PeerStatus>>,
    ) {
        if let Some(seconds) = since_change {
            if before.map(|b| &b.bgp) != Some(&after.bgp) {
                self.latency("bgp", seconds);
            }
            if before.map(|b| &b.desired.l2) != Some(&after.desired.l2) {
                self.latency("layer2", seconds);
            }
        }
        *self.sessions.lock().expect("session status lock") = sessions;
        self.announced(node, &after.desired);
    }

    /// Metrics registered in a fresh registry, and the `/metrics` `/healthz` `/readyz` server on `addr`
    /// if given (bound now, so that a port in use fails at start).
    pub async fn serve(
        addr: Option<std::net::SocketAddr>,
        ready: watch::Receiver<ferrolb_allocator::controller::Readiness>,
    ) -> Result<
        (
            Metrics,
            Option<tokio::task::JoinHandle<std::io::Result<()>>>,
        ),
        String,
    > {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let Some(addr) = addr else {
            return Ok((metrics, None));
        };
        let (addr, server) = crate::serve::bind(addr, Arc::new(registry), ready)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
        Ok((metrics, Some(tokio::spawn(server))))
    }

    /// Whether a watched kind cannot be listed.
    pub fn unavailable(&self, kind: &str, unavailable: bool) {
        self.unavailable
            .get_or_create(&ferrolb_allocator::controller::KindLabel {
                kind: kind.to_owned(),
            })
            .set(unavailable as i64);
    }

    pub fn config(&self, loaded: bool, stale: bool) {
        self.config_loaded.set(loaded.into());
        self.config_stale.set(stale.into());
    }
}

/// Reads the sessions' status at scrape time.
#[derive(Debug)]
struct SessionCollector {
    sessions: SessionStatus,
}

impl Collector for SessionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot: Vec<(String, PeerStatus)> = self
            .sessions
            .lock()
            .expect("session status lock")
            .iter()
            .map(|(name, rx)| (name.clone(), rx.borrow().clone()))
            .collect();
        let peer = |name: &str, st: &PeerStatus| {
            vec![
                ("peer".to_owned(), name.to_owned()),
                (
                    "address".to_owned(),
                    format!("{}:{}", st.peer, st.peer_port),
                ),
            ]
        };
        type Value = fn(&PeerStatus) -> u64;
        let gauges: [(&str, &str, Value); 3] = [
            (
                "bgp_session_up",
                "1 while the session is Established",
                |s| u64::from(s.state == "Established"),
            ),
            (
                "bgp_announced_prefixes_total",
                "Prefixes advertised to the peer",
                |s| (s.prefixes_advertised_ipv4 + s.prefixes_advertised_ipv6) as u64,
            ),
            (
                "bgp_pending_prefixes_total",
                "Prefixes wanted but not sent (family not negotiated, no next hop, session down)",
                |s| s.unsent.iter().map(|u| u.1 as u64).sum(),
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (n, st) in &snapshot {
                let labels = peer(n, st);
                ConstGauge::new(value(st) as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        let counters: [(&str, &str, Value); 4] = [
            ("bgp_updates", "UPDATE messages sent", |s| {
                s.messages_sent.update
            }),
            ("bgp_opens_sent", "OPEN messages sent", |s| {
                s.messages_sent.open
            }),
            (
                "bgp_notifications_sent",
                "NOTIFICATION messages sent",
                |s| s.messages_sent.notification,
            ),
            (
                "bgp_session_flaps",
                "Times the session left Established",
                |s| s.flaps,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (n, st) in &snapshot {
                let labels = peer(n, st);
                ConstCounter::new(value(st)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
