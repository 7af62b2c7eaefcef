//! Writes the speaker's reports: its `SpeakerState` (server-side apply, field manager `ferrolb-speaker`,
//! when the content changed or the heartbeat is due) and events on Services.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_allocator::ServiceKey;
use ferrolb_crds::{SpeakerState, SpeakerStateStatus};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource};
use serde_json::json;

use super::report::ServiceEvent;

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "ferrolb-speaker";

/// How often a running speaker renews its heartbeat when nothing else changes. The controller marks a
/// speaker whose heartbeat is three times as old not ready.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);

pub struct Writer {
    client: Client,
    namespace: String,
    node: String,
    recorder: Arc<Recorder>,
    /// The last status written (without its times and conditions), so that an unchanged state is
    /// rewritten only for the heartbeat.
    written: Option<SpeakerStateStatus>,
    /// When the content last changed, as written in `updated`.
    updated: Option<String>,
    /// When the last write was made.
    last_write: Option<Instant>,
    /// The `Ready` condition last written.
    ready: Option<ferrolb_crds::SpeakerCondition>,
    created: bool,
}

impl Writer {
    pub fn new(client: Client, namespace: &str, node: &str) -> Writer {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(node.to_owned()),
        };
        Writer {
            recorder: Arc::new(Recorder::new(client.clone(), reporter)),
            client,
            namespace: namespace.to_owned(),
            node: node.to_owned(),
            written: None,
            updated: None,
            last_write: None,
            ready: None,
            created: false,
        }
    }

    /// What the previous run of this node's speaker reported, if anything (read once at start, so that a
    /// restart announcing the same set records no event).
    pub async fn previous(&mut self) -> Option<SpeakerStateStatus> {
        let api: Api<SpeakerState> = Api::namespaced(self.client.clone(), &self.namespace);
        match api.get_opt(&self.node).await {
            Ok(found) => {
                let status = found?.status?;
                self.ready = status.ready().cloned();
                Some(status)
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read this node's SpeakerState");
                None
            }
        }
    }

    /// Writes `status` (whose times and conditions are filled in here) when it differs from the last one
    /// written or the heartbeat is due. Returns whether a write was made.
    pub async fn status(&mut self, status: SpeakerStateStatus) -> kube::Result<bool> {
        let changed = self.written.as_ref() != Some(&status);
        let heartbeat_due = self
            .last_write
            .is_none_or(|t| t.elapsed() >= HEARTBEAT_EVERY);
        if !changed && !heartbeat_due {
            return Ok(false);
        }
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let ready = ferrolb_crds::speakerstate::ready_condition(
            self.ready.as_ref(),
            true,
            "Running",
            "the speaker runs and renews its heartbeat",
            &now,
        );
        let mut stamped = status.clone();
        if changed || self.updated.is_none() {
            stamped.updated = Some(now.clone());
        } else {
            stamped.updated = self.updated.clone();
        }
        stamped.heartbeat = Some(now);
        stamped.conditions = vec![ready.clone()];
        self.write(&stamped).await?;
        self.updated = stamped.updated;
        self.ready = Some(ready);
        self.written = Some(status);
        Ok(true)
    }

    /// Records that this speaker stopped: `Ready` turns `False` with reason `Stopped`.
    pub async fn stopped(&mut self) -> kube::Result<()> {
        let Some(status) = self.written.clone() else {
            return Ok(());
        };
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let ready = ferrolb_crds::speakerstate::ready_condition(
            self.ready.as_ref(),
            false,
            "Stopped",
            "the speaker shut down",
            &now,
        );
        let mut stamped = status;
        stamped.updated = self.updated.clone();
        stamped.heartbeat = Some(now);
        stamped.conditions = vec![ready];
        self.write(&stamped).await
    }

    async fn write(&mut self, stamped: &SpeakerStateStatus) -> kube::Result<()> {
        let api: Api<SpeakerState> = Api::namespaced(self.client.clone(), &self.namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        if !self.created {
            // The object carries nothing but its name; status lives in the status subresource.
            let body = json!({
                "apiVersion": "ferrolb.io/v1beta1",
                "kind": "SpeakerState",
                "metadata": {"name": self.node, "labels": {"ferrolb.io/node": self.node}},
                "spec": {},
            });
            api.patch(&self.node, &params, &Patch::Apply(body)).await?;
            self.created = true;
        }
        let body = json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "SpeakerState",
            "metadata": {"name": self.node},
            "status": stamped,
        });
        api.patch_status(&self.node, &params, &Patch::Apply(body))
            .await?;
        self.last_write = Some(Instant::now());
        Ok(())
    }

    /// Records `event` on its Service (looked up in `service` for the object's uid).
    pub async fn event(&self, event: &ServiceEvent, service: Option<&Service>) {
        let reference = match service {
            Some(svc) => svc.object_ref(&()),
            None => ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Service".into()),
                namespace: Some(event.service.namespace.clone()),
                name: Some(event.service.name.clone()),
                ..ObjectReference::default()
            },
        };
        let ev = Event {
            type_: EventType::Normal,
            reason: event.reason.into(),
            note: Some(event.note.clone()),
            action: if event.reason == "Announced" {
                "Announce".into()
            } else {
                "Withdraw".into()
            },
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&ev, &reference).await {
            tracing::warn!(service = %event.service, %error, "cannot record event");
        }
    }
}

/// The Service an event is about, from the store.
pub fn lookup(
    store: &kube::runtime::reflector::Store<Service>,
    key: &ServiceKey,
) -> Option<Arc<Service>> {
    store.get(&kube::runtime::reflector::ObjectRef::new(&key.name).within(&key.namespace))
}
