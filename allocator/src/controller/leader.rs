//! Lease-based leader election (kube-lease-manager): any number of replicas run, one writes.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Lease parameters.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// The Lease's name (in the controller's namespace).
    pub lease_name: String,
    /// How long a Lease stays valid without renewal: the longest a dead leader blocks the others.
    pub duration: Duration,
    /// How long before expiry the leader renews.
    pub grace: Duration,
}

impl Default for LeaderElection {
    fn default() -> Self {
        LeaderElection {
            lease_name: "ferrolb-controller".into(),
            duration: Duration::from_secs(15),
            grace: Duration::from_secs(5),
        }
    }
}

/// The election task; awaiting it after dropping the receiver releases the Lease.
pub type Task = JoinHandle<Result<LeaseManager, LeaseManagerError>>;

/// Joins the election. The receiver says whether this replica leads now; it changes as the Lease moves.
pub async fn elect(
    client: Client,
    namespace: &str,
    identity: &str,
    params: &LeaderElection,
) -> Result<(watch::Receiver<bool>, Task), LeaseManagerError> {
    let manager = LeaseManagerBuilder::new(client, &params.lease_name)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(params.duration.as_secs().max(1))
        .with_grace(params.grace.as_secs().max(1))
        .build()
        .await?;
    Ok(manager.watch().await)
}
