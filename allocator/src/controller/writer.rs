//! Makes the [`Write`]s: server-side apply for what ferrolb sets, a merge patch to remove, events through
//! kube's recorder. Nothing is written unless this replica leads.
//!
//! A Service's annotation and `status.loadBalancer.ingress` go out in one request to its status
//! subresource: for Services the API server resets only `spec` on a status write, so metadata set there is
//! kept, and one allocation costs one write instead of two. Setting uses server-side apply with the field
//! manager `ferrolb-controller`, so ferrolb owns exactly the annotation and the ingress. Removing uses a
//! JSON merge patch instead: an apply that omits a field removes it only when no other manager co-owns it
//! (a Service migrated from MetalLB, or one edited by hand, would keep a stale IP forever).

use std::sync::Arc;

use std::net::IpAddr;

use ferrolb_crds::{IPAddressPool, SpeakerState};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::core::{RecordedWarning, Severity, Write};
use super::metrics::Metrics;
use crate::annotations::IP_ALLOCATED_FROM_POOL;
use crate::ServiceKey;

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "ferrolb-controller";

/// Writes about different Services in flight at once.
const CONCURRENCY: usize = 8;

/// What to do again after a failed write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Retry {
    /// Reconcile this Service again: its object does not show its assignment yet.
    Service(ServiceKey),
    /// Write this pool's status again.
    PoolStatus(String),
}

/// Sends [`Write`]s to the API server while `leader` says this replica leads.
#[derive(Clone)]
pub struct Writer {
    client: Client,
    recorder: Arc<Recorder>,
    leader: watch::Receiver<bool>,
    metrics: Metrics,
}

impl Writer {
    /// `instance` names this replica in the events it records (its pod name).
    pub fn new(
        client: Client,
        instance: Option<String>,
        leader: watch::Receiver<bool>,
        metrics: Metrics,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance,
        };
        Writer {
            recorder: Arc::new(Recorder::new(client.clone(), reporter)),
            client,
            leader,
            metrics,
        }
    }

    /// Whether this replica leads (and so writes).
    pub fn leads(&self) -> bool {
        *self.leader.borrow()
    }

    /// Makes every write, those about one Service in order (and no further once one fails), different
    /// Services concurrently. Returns what failed and needs another try; a failed event is only logged. A
    /// non-leader writes nothing and retries nothing.
    pub async fn apply(&self, writes: Vec<Write>) -> Vec<Retry> {
        let groups = group_by_service(writes);
        futures::stream::iter(groups)
            .map(|group| self.apply_in_order(group))
            .buffer_unordered(CONCURRENCY)
            .filter_map(futures::future::ready)
            .collect()
            .await
    }

    async fn apply_in_order(&self, group: Vec<Write>) -> Option<Retry> {
        for write in merge_service_writes(group) {
            if !self.leads() {
                return None;
            }
            let (target, result) = self.apply_one(&write).await;
            self.metrics.wrote(target, result.is_ok());
            if let Err(error) = result {
                tracing::warn!(?write, %error, "write failed");
                match write {
                    Op::Other(Write::PoolStatus { name, .. }) => {
                        return Some(Retry::PoolStatus(name))
                    }
                    // An event is only logged; a speaker still stale is marked on the next check.
                    Op::Other(Write::Event { .. } | Write::SpeakerNotReady { .. }) => continue,
                    // The rest of the group describes a state that was not written: the retry redoes it.
                    Op::Service { service, .. } => return Some(Retry::Service(service)),
                    Op::Other(other) => return other.service().map(Retry::Service),
                }
            }
        }
        None
    }

    async fn apply_one(&self, write: &Op) -> (&'static str, kube::Result<()>) {
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        let merge = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let write = match write {
            Op::Service { service, pool, ips } => {
                let api = self.services(service);
                let result = match service_patch(service, pool.as_ref(), ips.as_deref()) {
                    ServicePatch::Apply(body) => {
                        api.patch_status(&service.name, &apply, &Patch::Apply(body))
                            .await
                    }
                    ServicePatch::Merge(body) => {
                        api.patch_status(&service.name, &merge, &Patch::Merge(body))
                            .await
                    }
                };
                return ("service", result.map(drop));
            }
            Op::Other(write) => write,
        };
        match write {
            Write::PoolAnnotation { .. } | Write::Ingress { .. } => {
                unreachable!("merged into Op::Service by merge_service_writes")
            }
            Write::Event {
                regarding,
                severity,
                reason,
                note,
            } => {
                let event = Event {
                    type_: match severity {
                        Severity::Normal => EventType::Normal,
                        Severity::Warning => EventType::Warning,
                    },
                    reason: (*reason).into(),
                    note: Some(truncate(note, 1000)),
                    action: action_of(reason).into(),
                    secondary: None,
                };
                ("event", self.recorder.publish(&event, regarding).await)
            }
            Write::PoolStatus {
                namespace,
                name,
                status,
            } => {
                let api: Api<IPAddressPool> = self.namespaced(namespace.as_deref());
                let body = json!({
                    "apiVersion": "ferrolb.io/v1beta1",
                    "kind": "IPAddressPool",
                    "metadata": {"name": name},
                    "status": status,
                });
                let result = api.patch_status(name, &apply, &Patch::Apply(body)).await;
                ("pool_status", result.map(drop))
            }
            Write::SpeakerNotReady {
                namespace,
                name,
                condition,
            } => {
                let api: Api<SpeakerState> = self.namespaced(namespace.as_deref());
                // A merge patch: the speaker owns this status by server-side apply and takes it back
                // when it runs again.
                let body = json!({"status": {"conditions": [condition]}});
                let result = api.patch_status(name, &merge, &Patch::Merge(body)).await;
                ("speaker_state", result.map(drop))
            }
        }
    }

    fn namespaced<K>(&self, namespace: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::default_namespaced(self.client.clone()),
        }
    }

    /// The warning events this controller recorded on Services and that the API server still keeps (an
    /// hour by default), so that a new leader does not record them again. One list request; on failure
    /// (no permission) the warnings are recorded again, as before.
    pub async fn recorded_warnings(&self) -> Vec<RecordedWarning> {
        let api: Api<k8s_openapi::api::core::v1::Event> = Api::all(self.client.clone());
        let params = kube::api::ListParams::default().fields(&format!(
            "type=Warning,reportingComponent={FIELD_MANAGER},involvedObject.kind=Service"
        ));
        match api.list(&params).await {
            Ok(list) => list
                .items
                .into_iter()
                .filter_map(|e| {
                    let o = e.involved_object;
                    Some(RecordedWarning {
                        service: ServiceKey::new(o.namespace?, o.name?),
                        uid: o.uid?,
                        reason: e.reason?,
                        note: e.message.unwrap_or_default(),
                    })
                })
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "cannot list earlier warning events; warnings that still hold are recorded again");
                Vec::new()
            }
        }
    }

    fn services(&self, key: &ServiceKey) -> Api<Service> {
        Api::namespaced(self.client.clone(), &key.namespace)
    }
}

/// A write as sent: a Service's annotation and ingress together, or anything else as it is.
#[derive(Debug)]
enum Op {
    /// `pool`/`ips`: `None` leaves that part alone; `Some(None)`/`Some([])` removes it.
    Service {
        service: ServiceKey,
        pool: Option<Option<String>>,
        ips: Option<Vec<IpAddr>>,
    },
    Other(Write),
}

/// Folds each Service's annotation and ingress writes (adjacent in a group) into one request.
fn merge_service_writes(group: Vec<Write>) -> Vec<Op> {
    let mut ops: Vec<Op> = Vec::new();
    for write in group {
        let (service, pool, ips) = match write {
            Write::PoolAnnotation { service, pool } => (service, Some(pool), None),
            Write::Ingress { service, ips } => (service, None, Some(ips)),
            other => {
                ops.push(Op::Other(other));
                continue;
            }
        };
        if let Some(Op::Service {
            service: last,
            pool: last_pool,
            ips: last_ips,
        }) = ops.last_mut()
        {
            if *last == service
                && (pool.is_none() || last_pool.is_none())
                && (ips.is_none() || last_ips.is_none())
            {
                if pool.is_some() {
                    *last_pool = pool;
                }
                if ips.is_some() {
                    *last_ips = ips;
                }
                continue;
            }
        }
        ops.push(Op::Service { service, pool, ips });
    }
    ops
}

enum ServicePatch {
    Apply(Value),
    Merge(Value),
}

/// The one request for a Service: server-side apply when it only sets, a merge patch when it removes
/// anything (setting the rest in the same patch).
fn service_patch(
    key: &ServiceKey,
    pool: Option<&Option<String>>,
    ips: Option<&[IpAddr]>,
) -> ServicePatch {
    let removes = matches!(pool, Some(None)) || ips.is_some_and(|ips| ips.is_empty());
    let ingress = |ips: &[IpAddr]| -> Value {
        if ips.is_empty() {
            Value::Null
        } else {
            Value::Array(ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect())
        }
    };
    if removes {
        let mut body = json!({});
        if let Some(pool) = pool {
            body["metadata"] = json!({"annotations": {IP_ALLOCATED_FROM_POOL: pool}});
        }
        if let Some(ips) = ips {
            body["status"] = json!({"loadBalancer": {"ingress": ingress(ips)}});
        }
        return ServicePatch::Merge(body);
    }
    let mut body = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": key.name, "namespace": key.namespace},
    });
    if let Some(Some(pool)) = pool {
        body["metadata"]["annotations"] = json!({ IP_ALLOCATED_FROM_POOL: pool });
    }
    if let Some(ips) = ips {
        body["status"] = json!({"loadBalancer": {"ingress": ingress(ips)}});
    }
    ServicePatch::Apply(body)
}

fn action_of(reason: &str) -> &'static str {
    match reason {
        "IPAllocated" => "Allocate",
        "ClearAssignment" => "Release",
        _ => "Reconcile",
    }
}

/// Events carry at most 1 kB of note.
fn truncate(note: &str, max: usize) -> String {
    if note.len() <= max {
        return note.to_owned();
    }
    let mut end = max - 3;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &note[..end])
}

/// Writes grouped by the Service they concern, groups in order of first appearance; writes about no
/// Service (pool status) each form their own group.
fn group_by_service(writes: Vec<Write>) -> Vec<Vec<Write>> {
    let mut groups: Vec<Vec<Write>> = Vec::new();
    let mut index: std::collections::HashMap<ServiceKey, usize> = Default::default();
    for write in writes {
        match write.service() {
            Some(key) => match index.get(&key) {
                Some(&i) => groups[i].push(write),
                None => {
                    index.insert(key, groups.len());
                    groups.push(vec![write]);
                }
            },
            None => groups.push(vec![write]),
        }
    }
    groups
}
