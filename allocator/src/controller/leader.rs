//! Lease-based leader election: any number of replicas run, one writes.
//!
//! The rules are client-go's (`k8s.io/client-go/tools/leaderelection`), so that operators meet the same
//! three knobs with the same meaning:
//! - a replica takes the Lease when it is free (no holder) or when its record has not changed for the
//!   record's `leaseDurationSeconds`, as seen by this replica's own clock (no clock comparison across
//!   nodes);
//! - the holder renews every retry period and steps down when it could not renew within the renew deadline;
//! - a replica that stops releases the Lease (empty holder), so that a standby, which looks every retry
//!   period, takes over within one retry period instead of waiting for the Lease to expire.
//!
//! Every write is an update carrying the `resourceVersion` that was read, so two replicas can never both
//! believe they took the same record. The decision ([`decide`]) is pure; [`elect`] does the I/O.
//!
//! kube-lease-manager was used before: its standby sleeps until the Lease's expiry even when the holder
//! releases it, which made every rollout stop allocation for a whole Lease duration.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Lease parameters. Duration and renew deadline default to client-go's (15 s, 10 s); the retry period to
/// 1 s rather than 2 s, so that a standby takes over within a second of a release. After a crash a standby
/// leads at most `lease_duration + retry_period` (16 s) after the holder's last renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElection {
    /// The Lease's name (in the controller's namespace).
    pub lease_name: String,
    /// How long a record that stops changing keeps others away: the longest a crashed leader blocks.
    pub lease_duration: Duration,
    /// How long the leader keeps leading while its renewals fail; it must be below `lease_duration`, so
    /// that the leader steps down before anyone else may take over.
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby looks at the Lease.
    pub retry_period: Duration,
}

impl Default for LeaderElection {
    fn default() -> Self {
        LeaderElection {
            lease_name: DEFAULT_LEASE_NAME.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(1),
        }
    }
}

/// The Lease of the controller that handles Services without a `loadBalancerClass`.
pub const DEFAULT_LEASE_NAME: &str = "ferrolb-controller";

/// The default Lease name for a class: each class has its own leader, so that controllers of different
/// classes in one namespace never take turns with each other.
pub fn lease_name_for(class: Option<&str>) -> String {
    match class {
        None => DEFAULT_LEASE_NAME.to_owned(),
        Some(class) => {
            // Lease names are DNS subdomains: a class such as `example.com/internal` becomes
            // `ferrolb-controller-example.com-internal`.
            let cleaned: String = class
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            let name = format!("{DEFAULT_LEASE_NAME}-{}", cleaned.trim_matches('-'));
            name.chars().take(253).collect()
        }
    }
}

impl LeaderElection {
    /// The parameters' consistency, as client-go checks it.
    pub fn check(&self) -> Result<(), String> {
        if self.retry_period.is_zero() {
            return Err("the retry period must be positive".into());
        }
        if self.renew_deadline <= self.retry_period {
            return Err(format!(
                "the renew deadline ({:?}) must be longer than the retry period ({:?})",
                self.renew_deadline, self.retry_period
            ));
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(format!(
                "the lease duration ({:?}) must be longer than the renew deadline ({:?})",
                self.lease_duration, self.renew_deadline
            ));
        }
        Ok(())
    }
}

/// What this replica last saw of the Lease, and when (by its own clock).
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub holder: Option<String>,
    pub renew_time: Option<Timestamp>,
    pub lease_duration: Duration,
    /// When the record (holder or renew time) last changed, as this replica saw it.
    pub changed_at: Instant,
}

/// What to do with the Lease now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it, held by us.
    Create,
    /// Write ourselves as holder: the Lease is ours (renewal), free, or expired.
    Take,
    /// Someone else holds a live Lease.
    Follow,
}

/// The pure rule: from the Lease as read (`None`: it does not exist) and what we saw before.
pub fn decide(identity: &str, lease: Option<&Observed>, now: Instant) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    match lease.holder.as_deref() {
        None | Some("") => Decision::Take,
        Some(holder) if holder == identity => Decision::Take,
        Some(_) if now.duration_since(lease.changed_at) >= lease.lease_duration => Decision::Take,
        Some(_) => Decision::Follow,
    }
}

/// Updates what we know of the Lease from a fresh read: `changed_at` moves only when the record changed.
fn observe(previous: Option<Observed>, spec: &LeaseSpec, now: Instant) -> Observed {
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let renew_time = spec.renew_time.as_ref().map(|t| t.0);
    let lease_duration =
        Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
    let changed_at = match previous {
        Some(p) if p.holder == holder && p.renew_time == renew_time => p.changed_at,
        _ => now,
    };
    Observed {
        holder,
        renew_time,
        lease_duration,
        changed_at,
    }
}

/// The running election: `leading` says whether this replica leads now; [`Election::stop`] steps down,
/// releases the Lease if held, and ends the task.
pub struct Election {
    pub leading: watch::Receiver<bool>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Election {
    /// Stops leading at once (the receiver turns false before anything else), releases the Lease if this
    /// replica holds it, and waits for that, at most `deadline`.
    pub async fn stop(self, deadline: Duration) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(deadline, &mut task).await.is_err() {
            tracing::warn!(
                "the Lease was not released in time; the standby takes over at its expiry"
            );
            task.abort();
        }
    }
}

/// Joins the election and returns at once; the receiver turns true while this replica leads.
pub fn elect(client: Client, namespace: &str, identity: &str, params: &LeaderElection) -> Election {
    let (leading_tx, leading) = watch::channel(false);
    let (stop, stop_rx) = oneshot::channel();
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let task = tokio::spawn(run(
        api,
        identity.to_owned(),
        params.clone(),
        leading_tx,
        stop_rx,
    ));
    Election {
        leading,
        stop,
        task,
    }
}

async fn run(
    api: Api<Lease>,
    identity: String,
    params: LeaderElection,
    leading: watch::Sender<bool>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut observed: Option<Observed> = None;
    // When we last renewed successfully, while leading.
    let mut renewed_at: Option<Instant> = None;
    let mut reported_error = false;
    loop {
        let now = Instant::now();
        match try_acquire_or_renew(&api, &identity, &params, &mut observed, now).await {
            Ok(true) => {
                renewed_at = Some(now);
                reported_error = false;
                if !*leading.borrow() {
                    tracing::info!(lease = %params.lease_name, %identity, "acquired the Lease");
                    leading.send_replace(true);
                }
            }
            Ok(false) => {
                reported_error = false;
                step_down(
                    &leading,
                    &mut renewed_at,
                    &params,
                    "the Lease is held by another replica",
                );
            }
            Err(error) => {
                if !reported_error {
                    tracing::warn!(lease = %params.lease_name, %error, "cannot read or write the Lease");
                    reported_error = true;
                }
                if renewed_at.is_some_and(|t| now.duration_since(t) >= params.renew_deadline) {
                    step_down(
                        &leading,
                        &mut renewed_at,
                        &params,
                        "could not renew within the renew deadline",
                    );
                }
            }
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(params.retry_period) => {}
        }
    }
    // Stop writing before anything else, then give the Lease back.
    let held = *leading.borrow() || renewed_at.is_some();
    leading.send_replace(false);
    if held {
        match release(&api, &identity, &params).await {
            Ok(()) => tracing::info!(lease = %params.lease_name, "released the Lease"),
            Err(error) => {
                tracing::warn!(lease = %params.lease_name, %error, "cannot release the Lease")
            }
        }
    }
}

fn step_down(
    leading: &watch::Sender<bool>,
    renewed_at: &mut Option<Instant>,
    params: &LeaderElection,
    why: &str,
) {
    *renewed_at = None;
    if *leading.borrow() {
        tracing::warn!(lease = %params.lease_name, why, "lost the Lease");
        leading.send_replace(false);
    }
}

fn micro_now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// One round: read the Lease and take it if [`decide`] says so. `Ok(true)`: we hold it now.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    identity: &str,
    params: &LeaderElection,
    observed: &mut Option<Observed>,
    now: Instant,
) -> kube::Result<bool> {
    let current = api.get_opt(&params.lease_name).await?;
    if let Some(lease) = &current {
        *observed = Some(observe(
            observed.take(),
            lease.spec.as_ref().unwrap_or(&LeaseSpec::default()),
            now,
        ));
    } else {
        *observed = None;
    }
    match decide(identity, observed.as_ref(), now) {
        Decision::Follow => Ok(false),
        Decision::Create => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(params.lease_name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(identity.to_owned()),
                    lease_duration_seconds: Some(seconds(params.lease_duration)),
                    acquire_time: Some(micro_now()),
                    renew_time: Some(micro_now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                // Another replica created it first: look again next round.
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Decision::Take => {
            let mut lease = current.expect("Take is decided only on an existing Lease");
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            let ours = spec.holder_identity.as_deref() == Some(identity);
            if !ours {
                spec.holder_identity = Some(identity.to_owned());
                spec.acquire_time = Some(micro_now());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.lease_duration_seconds = Some(seconds(params.lease_duration));
            spec.renew_time = Some(micro_now());
            // `replace` sends the resourceVersion we read: a concurrent writer makes this fail with 409.
            match api
                .replace(&params.lease_name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Gives the Lease back: no holder, so that a standby takes it on its next look.
async fn release(api: &Api<Lease>, identity: &str, params: &LeaderElection) -> kube::Result<()> {
    let Some(mut lease) = api.get_opt(&params.lease_name).await? else {
        return Ok(());
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(identity) {
        return Ok(());
    }
    spec.holder_identity = None;
    // As client-go does on release: a one-second Lease, so that even an observer that misses the empty
    // holder sees it expire at once.
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(micro_now());
    api.replace(&params.lease_name, &PostParams::default(), &lease)
        .await
        .map(drop)
}

fn seconds(d: Duration) -> i32 {
    d.as_secs().clamp(1, i32::MAX as u64) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(holder: Option<&str>, age: Duration, now: Instant) -> Observed {
        Observed {
            holder: holder.map(str::to_owned),
            renew_time: None,
            lease_duration: Duration::from_secs(15),
            changed_at: now - age,
        }
    }

    #[test]
    fn a_missing_lease_is_created() {
        assert_eq!(decide("a", None, Instant::now()), Decision::Create);
    }

    #[test]
    fn a_free_lease_is_taken() {
        let now = Instant::now();
        assert_eq!(
            decide("a", Some(&seen(None, Duration::ZERO, now)), now),
            Decision::Take
        );
        assert_eq!(
            decide("a", Some(&seen(Some(""), Duration::ZERO, now)), now),
            Decision::Take
        );
    }

    #[test]
    fn our_lease_is_renewed_and_anothers_followed_until_it_stops_changing() {
        let now = Instant::now();
        assert_eq!(
            decide(
                "a",
                Some(&seen(Some("a"), Duration::from_secs(100), now)),
                now
            ),
            Decision::Take
        );
        assert_eq!(
            decide(
                "a",
                Some(&seen(Some("b"), Duration::from_secs(14), now)),
                now
            ),
            Decision::Follow
        );
        assert_eq!(
            decide(
                "a",
                Some(&seen(Some("b"), Duration::from_secs(15), now)),
                now
            ),
            Decision::Take
        );
    }

    #[test]
    fn expiry_counts_from_the_last_change_seen_not_from_the_last_read() {
        let t0 = Instant::now();
        let spec = |renew: i64| LeaseSpec {
            holder_identity: Some("b".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renew).unwrap())),
            ..LeaseSpec::default()
        };
        let first = observe(None, &spec(100), t0);
        let same = observe(
            Some(first.clone()),
            &spec(100),
            t0 + Duration::from_secs(10),
        );
        assert_eq!(same.changed_at, t0, "an unchanged record keeps its age");
        let renewed = observe(Some(same), &spec(102), t0 + Duration::from_secs(12));
        assert_eq!(renewed.changed_at, t0 + Duration::from_secs(12));
        assert_eq!(
            decide("a", Some(&renewed), t0 + Duration::from_secs(26)),
            Decision::Follow
        );
        assert_eq!(
            decide("a", Some(&renewed), t0 + Duration::from_secs(27)),
            Decision::Take
        );
    }

    #[test]
    fn parameters_are_checked_as_client_go_does() {
        assert!(LeaderElection::default().check().is_ok());
        let mut p = LeaderElection {
            renew_deadline: Duration::from_secs(15),
            ..LeaderElection::default()
        };
        assert!(p.check().unwrap_err().contains("lease duration"));
        p.renew_deadline = Duration::from_secs(1);
        assert!(p.check().unwrap_err().contains("retry period"));
    }

    #[test]
    fn each_class_has_its_own_lease() {
        assert_eq!(lease_name_for(None), "ferrolb-controller");
        assert_eq!(
            lease_name_for(Some("internal")),
            "ferrolb-controller-internal"
        );
        assert_eq!(
            lease_name_for(Some("example.com/Internal_LB")),
            "ferrolb-controller-example.com-internal-lb"
        );
    }
}
