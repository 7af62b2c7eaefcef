//! Speaker liveness: a speaker renews the heartbeat in its `SpeakerState` while it runs; a dead one cannot
//! say so, so the leading controller marks any speaker whose heartbeat is too old not ready (as the
//! node lifecycle controller does for kubelets).

use std::sync::Arc;
use std::time::Duration;

use ferrolb_crds::speakerstate::ready_condition;
use ferrolb_crds::SpeakerState;
use k8s_openapi::jiff::Timestamp;

use super::core::Write;

/// A heartbeat older than this marks the speaker not ready: three missed renewals (speakers renew every
/// 15 s).
pub const STALE_AFTER: Duration = Duration::from_secs(45);

/// How often the leader looks for stale heartbeats. With [`STALE_AFTER`], a killed speaker shows as not
/// ready at most 50 s after its last heartbeat.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// The writes that mark every speaker whose heartbeat is older than `stale_after` not ready (those already
/// marked are left alone).
pub fn stale_speakers(
    states: &[Arc<SpeakerState>],
    now: Timestamp,
    stale_after: Duration,
) -> Vec<Write> {
    let mut writes = Vec::new();
    for state in states {
        let Some(status) = &state.status else {
            continue;
        };
        let Some(name) = state.metadata.name.clone() else {
            continue;
        };
        let ready = status.ready();
        if ready.is_some_and(|c| c.status == "False") {
            continue;
        }
        let Some(beat) = status
            .heartbeat
            .as_deref()
            .or(status.updated.as_deref())
            .and_then(|t| t.parse::<Timestamp>().ok())
        else {
            continue;
        };
        let age = now.duration_since(beat);
        let Ok(age) = Duration::try_from(age) else {
            continue;
        };
        if age < stale_after {
            continue;
        }
        writes.push(Write::SpeakerNotReady {
            namespace: state.metadata.namespace.clone(),
            name,
            condition: ready_condition(
                ready,
                false,
                "HeartbeatStale",
                &format!(
                    "no heartbeat since {beat} ({} s): the speaker is not running or cannot reach the API server",
                    age.as_secs()
                ),
                &now.to_string(),
            ),
        });
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_crds::{SpeakerStateSpec, SpeakerStateStatus};

    fn state(name: &str, heartbeat: &str, ready: Option<&str>) -> Arc<SpeakerState> {
        let mut s = SpeakerState::new(name, SpeakerStateSpec {});
        s.metadata.namespace = Some("ferrolb-system".into());
        s.status = Some(SpeakerStateStatus {
            heartbeat: Some(heartbeat.into()),
            conditions: ready
                .map(|r| vec![ready_condition(None, r == "True", "Running", "", heartbeat)])
                .unwrap_or_default(),
            ..SpeakerStateStatus::default()
        });
        Arc::new(s)
    }

    #[test]
    fn only_old_heartbeats_not_yet_marked_are_marked() {
        let now: Timestamp = "2026-12-04T12:01:00Z".parse().unwrap();
        let states = vec![
            state("fresh", "2026-12-04T12:00:30Z", Some("True")),
            state("stale", "2026-12-04T12:00:00Z", Some("True")),
            state("marked", "2026-12-04T11:00:00Z", Some("False")),
            state("old-without-condition", "2026-12-04T11:59:00Z", None),
        ];
        let writes = stale_speakers(&states, now, STALE_AFTER);
        let names: Vec<&str> = writes
            .iter()
            .map(|w| match w {
                Write::SpeakerNotReady {
                    name, condition, ..
                } => {
                    assert_eq!(condition.status, "False");
                    assert_eq!(condition.reason, "HeartbeatStale");
                    assert!(
                        condition.message.starts_with("no heartbeat since"),
                        "{}",
                        condition.message
                    );
                    name.as_str()
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(names, ["stale", "old-without-condition"]);
    }
}
