//! Leader election with a `coordination.k8s.io` Lease, so only one replica writes.
//!
//! A failed renewal is retried until the lease would have expired: a brief API
//! hiccup does not make the leader step down, and it steps down cleanly (lease
//! released) before another replica can take over.

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use std::future::Future;
use std::time::{Duration, Instant};

/// Where the Lease lives and who we are.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// Seconds a lease lasts without renewal: the longest a failover takes.
    pub duration_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "leader election: cannot use Lease {namespace}/{name}; check that the namespace exists and the operator may get, create and update Leases there"
    )]
    Setup {
        namespace: String,
        name: String,
        #[source]
        source: LeaseManagerError,
    },
    #[error("leader election failed")]
    Election(#[source] LeaseManagerError),
    #[error("lost the leader lease to another replica")]
    Lost,
    #[error("leader election: the lease could not be renewed for {0:?}; stepping down")]
    RenewalFailed(Duration),
}

/// Waits to lead, then runs `work` until it ends or leadership is lost, and
/// releases the lease. `on_leading` hears every change of leadership. Returns
/// None when `stop` completes before this replica leads.
pub async fn lead<T>(
    client: Client,
    lease: &LeaseSettings,
    stop: impl Future<Output = ()>,
    on_leading: impl Fn(bool),
    work: impl Future<Output = T>,
) -> Result<Option<T>, LeaderError> {
    let manager = LeaseManagerBuilder::new(client, &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(lease.duration_secs)
        .with_grace((lease.duration_secs / 3).max(2))
        .build()
        .await
        .map_err(|source| LeaderError::Setup {
            namespace: lease.namespace.clone(),
            name: lease.name.clone(),
            source,
        })?;
    tracing::info!(
        lease = lease.name,
        identity = lease.identity,
        "waiting to become leader"
    );
    tokio::select! {
        _ = stop => {
            tracing::info!("stopped before becoming leader");
            return Ok(None);
        }
        acquired = acquire(&manager) => acquired?,
    }

    tracing::info!(
        identity = lease.identity,
        "became leader; starting controllers"
    );
    on_leading(true);
    let deadline = Duration::from_secs(lease.duration_secs * 2 / 3);
    let result = tokio::select! {
        done = work => Ok(Some(done)),
        lost = keep(&manager, deadline) => Err(lost),
    };
    on_leading(false);
    // Hand over at once instead of making the next leader wait out the lease.
    match tokio::time::timeout(Duration::from_secs(3), manager.release()).await {
        Ok(Ok(())) => tracing::info!("lease released"),
        Ok(Err(e)) => tracing::warn!(error = %e, "lease not released"),
        Err(_) => tracing::warn!("lease not released in time"),
    }
    result
}

async fn acquire(manager: &LeaseManager) -> Result<(), LeaderError> {
    loop {
        if manager.changed().await.map_err(LeaderError::Election)? {
            return Ok(());
        }
    }
}

/// Renews the lease while leading (`changed()` renews and returns on a change);
/// returns why leadership ended.
async fn keep(manager: &LeaseManager, deadline: Duration) -> LeaderError {
    let mut failing_since: Option<Instant> = None;
    loop {
        let call = Instant::now();
        match manager.changed().await {
            Ok(false) => return LeaderError::Lost,
            Ok(true) => failing_since = None,
            Err(e) => {
                // A call that ran past the deadline renewed in between: a new streak.
                let since = match failing_since {
                    Some(s) if call.elapsed() < deadline => s,
                    _ => call,
                };
                failing_since = Some(since);
                if since.elapsed() >= deadline {
                    return LeaderError::RenewalFailed(since.elapsed());
                }
                tracing::warn!(error = %e, "lease renewal failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
