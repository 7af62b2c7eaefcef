//! Makes the [`Write`]s: server-side apply for what ferrolb sets, a merge patch to remove, events through
//! kube's recorder. Nothing is written unless this replica leads.
//!
//! Setting uses server-side apply with the field manager `ferrolb-controller`, so ferrolb owns exactly the
//! annotation and `status.loadBalancer.ingress`. Removing uses a JSON merge patch instead: an apply that
//! omits a field removes it only when no other manager co-owns it (a Service migrated from MetalLB, or one
//! edited by hand, would keep a stale IP forever).

use std::sync::Arc;

use ferrolb_crds::IPAddressPool;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::core::{Severity, Write};
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
        for write in group {
            if !self.leads() {
                return None;
            }
            let (target, result) = self.apply_one(&write).await;
            self.metrics.wrote(target, result.is_ok());
            if let Err(error) = result {
                tracing::warn!(?write, %error, "write failed");
                match write {
                    Write::PoolStatus { name, .. } => return Some(Retry::PoolStatus(name)),
                    Write::Event { .. } => continue,
                    // The rest of the group describes a state that was not written: the retry redoes it.
                    other => return other.service().map(Retry::Service),
                }
            }
        }
        None
    }

    async fn apply_one(&self, write: &Write) -> (&'static str, kube::Result<()>) {
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        let merge = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match write {
            Write::PoolAnnotation { service, pool } => {
                let api = self.services(service);
                let result = match pool {
                    Some(pool) => {
                        let body = service_apply(service, "metadata", annotation(pool));
                        api.patch(&service.name, &apply, &Patch::Apply(body)).await
                    }
                    None => {
                        let body =
                            json!({"metadata": {"annotations": {IP_ALLOCATED_FROM_POOL: null}}});
                        api.patch(&service.name, &merge, &Patch::Merge(body)).await
                    }
                };
                ("annotation", result.map(drop))
            }
            Write::Ingress { service, ips } => {
                let api = self.services(service);
                let result = if ips.is_empty() {
                    let body = json!({"status": {"loadBalancer": {"ingress": null}}});
                    api.patch_status(&service.name, &merge, &Patch::Merge(body))
                        .await
                } else {
                    let ingress: Vec<Value> =
                        ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
                    let status = json!({"loadBalancer": {"ingress": ingress}});
                    let body = service_apply(service, "status", status);
                    api.patch_status(&service.name, &apply, &Patch::Apply(body))
                        .await
                };
                ("status", result.map(drop))
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
                let api: Api<IPAddressPool> = match namespace {
                    Some(ns) => Api::namespaced(self.client.clone(), ns),
                    None => Api::default_namespaced(self.client.clone()),
                };
                let body = json!({
                    "apiVersion": "ferrolb.io/v1beta1",
                    "kind": "IPAddressPool",
                    "metadata": {"name": name},
                    "status": status,
                });
                let result = api.patch_status(name, &apply, &Patch::Apply(body)).await;
                ("pool_status", result.map(drop))
            }
        }
    }

    fn services(&self, key: &ServiceKey) -> Api<Service> {
        Api::namespaced(self.client.clone(), &key.namespace)
    }
}

/// An apply configuration for a Service holding only `field: value`.
fn service_apply(key: &ServiceKey, field: &str, value: Value) -> Value {
    let mut body = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": key.name, "namespace": key.namespace},
    });
    if field == "metadata" {
        body["metadata"]["annotations"] = value;
    } else {
        body[field] = value;
    }
    body
}

fn annotation(pool: &str) -> Value {
    json!({ IP_ALLOCATED_FROM_POOL: pool })
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
