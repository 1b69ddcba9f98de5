//! Watches shared by the controllers: cached, with backoff, without managed fields.

use crate::error::{Error, Result};
use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A watch of `api` that keeps a cache; the stream yields every changed object.
/// `trim` drops what the controller never reads before it is cached. The flag
/// turns true once the initial list is in the cache.
pub fn cached<K>(
    api: Api<K>,
    config: watcher::Config,
    trim: fn(&mut K),
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    Arc<AtomicBool>,
)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (store, writer) = reflector::store();
    let listed = Arc::new(AtomicBool::new(false));
    let flag = listed.clone();
    let stream = reflector(
        writer,
        watcher(api, config)
            .default_backoff()
            // Our own signal: `Store::wait_until_ready` awaited in a reconcile was
            // seen never to wake up.
            .inspect(move |e| {
                if let Ok(watcher::Event::InitDone) = e {
                    flag.store(true, Ordering::SeqCst);
                }
            })
            // Managed fields are most of an object's size and never read.
            .modify(move |o| {
                o.managed_fields_mut().clear();
                trim(o);
            }),
    )
    .touched_objects();
    (store, stream, listed)
}

/// Returns `missing` when the CRD of `K` is not installed; retries with capped
/// backoff while the API server cannot be reached, so a restart is never needed.
pub async fn wait_for_crd<K>(api: &Api<K>, missing: Error) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    use backon::BackoffBuilder;
    let mut backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        match api
            .list_metadata(&kube::api::ListParams::default().limit(1))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => return Err(missing),
            Err(e) => {
                let wait = backoff.next().unwrap_or(Duration::from_secs(30));
                tracing::warn!(error = %e, retry_in = ?wait, "Kubernetes API not reachable");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// For [`cached`]: keep everything else.
pub fn keep_all<K>(_: &mut K) {}
