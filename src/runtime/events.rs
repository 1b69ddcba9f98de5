//! Kubernetes Events: one way to publish them for both controllers. A failure to
//! record an Event is logged, never fatal.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// The Event API's limit on a note is 1 KiB.
const MAX_NOTE_CHARS: usize = 1000;

/// Publishes Events as this controller instance.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl Events {
    pub fn new(client: Client, instance: &str) -> Self {
        let reporter = Reporter {
            controller: "ecr-operator".into(),
            instance: Some(instance.to_string()),
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// A Normal or Warning Event about `object`.
    pub async fn publish(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(note.chars().take(MAX_NOTE_CHARS).collect()),
            action: action.to_string(),
            secondary: None,
        };
        match self.recorder.publish(&event, object).await {
            Ok(()) => tracing::debug!(
                object = object.name.as_deref().unwrap_or_default(),
                reason,
                "event recorded"
            ),
            Err(e) => tracing::warn!(
                object = object.name.as_deref().unwrap_or_default(),
                error = %e,
                "event not recorded"
            ),
        }
    }
}
