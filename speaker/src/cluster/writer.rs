//! Writes the speaker's reports: its `SpeakerState` (server-side apply, field manager `ferrolb-speaker`,
//! only when the content changed) and events on Services.

use std::sync::Arc;

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

pub struct Writer {
    client: Client,
    namespace: String,
    node: String,
    recorder: Arc<Recorder>,
    /// The last status written (without its time), so that an unchanged state is never rewritten.
    written: Option<SpeakerStateStatus>,
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
            created: false,
        }
    }

    /// Writes `status` unless it equals the last one written. Returns whether a write was made.
    pub async fn status(&mut self, status: SpeakerStateStatus) -> kube::Result<bool> {
        if self.written.as_ref() == Some(&status) {
            return Ok(false);
        }
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
        let mut stamped = status.clone();
        stamped.updated = Some(k8s_openapi::jiff::Timestamp::now().to_string());
        let body = json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "SpeakerState",
            "metadata": {"name": self.node},
            "status": stamped,
        });
        api.patch_status(&self.node, &params, &Patch::Apply(body))
            .await?;
        self.written = Some(status);
        Ok(true)
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
