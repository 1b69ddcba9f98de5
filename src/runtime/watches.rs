//! Watches shared by the controllers: cached, with backoff, without managed fields;
//! or, for the kinds a cluster has thousands of, a cache of projections.

use crate::error::{Error, Result};
use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::sync::watch;

/// A watch's stream for a controller, without its errors. Each watch backs off
/// on its own (`default_backoff`); an error passed on would make kube's
/// controller back off all its triggers together, so one watch's 410 after an
/// API server restart held up every other watch (a new namespace waited
/// 5–19 s for its secret; `tests/integration/restarts.rs`).
pub fn triggers<K: Send + 'static>(
    stream: impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    what: &'static str,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    stream.filter(move |r| {
        if let Err(e) = r {
            tracing::warn!(watch = what, error = %e, "watch failed; it retries with backoff");
        }
        std::future::ready(r.is_ok())
    })
}

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

/// What a controller reads of each object of a kind, by a key of its own: a
/// projection, not the object. kube's store keeps whole (if trimmed) objects, with
/// their key's strings copied: about 1.4 KiB a namespace, most of the operator's
/// memory at 10,000 namespaces.
pub struct Projection<V> {
    entries: Arc<RwLock<HashMap<String, V>>>,
}

impl<V> Clone for Projection<V> {
    fn clone(&self) -> Self {
        Self {
            entries: self.entries.clone(),
        }
    }
}

impl<V> Projection<V> {
    /// The entries; the guard is not to be held across an await.
    pub fn read(&self) -> RwLockReadGuard<'_, HashMap<String, V>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a [`Projection`] keeps of an object: its key, and its projection or
/// nothing (the object is of no interest).
pub type Project<K, V> = Box<dyn Fn(&K) -> (String, Option<V>) + Send + Sync>;

/// A watch of `api` that keeps the projection of every object of interest; the
/// stream yields the projection of every such object that changed, was listed or
/// was deleted. The flag turns true once the first list is in.
///
/// Each change sent on `relist` starts the watch afresh: for a caller whose idea
/// of "of interest" widened. The projection is replaced once the new list is in.
pub fn projected<K, V, R>(
    api: Api<K>,
    config: watcher::Config,
    project: Project<K, V>,
    relist: Option<watch::Receiver<R>>,
) -> (
    Projection<V>,
    impl Stream<Item = V> + Send + 'static,
    Arc<AtomicBool>,
)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    V: Clone + Send + Sync + 'static,
    R: Send + Sync + 'static,
{
    let cache = Projection {
        entries: Arc::default(),
    };
    let listed = Arc::new(AtomicBool::new(false));
    let mut projector = Projector {
        project,
        entries: cache.entries.clone(),
        relisting: None,
        listed: listed.clone(),
    };
    // One watch after another, each until the next change on `relist`.
    let watches = futures::stream::unfold((), move |()| {
        let (api, config) = (api.clone(), config.clone());
        let mut next = relist.clone();
        async move {
            let until = async move {
                match next.as_mut() {
                    Some(rx) => {
                        rx.mark_unchanged();
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let watch = watcher(api, config)
                .default_backoff()
                .take_until(Box::pin(until));
            Some((watch, ()))
        }
    })
    .flatten();
    let stream = watches.filter_map(move |event| {
        let touched = match event {
            Ok(event) => projector.on(event),
            Err(e) => {
                tracing::debug!(error = %e, "watch failed; retried with backoff");
                None
            }
        };
        std::future::ready(touched)
    });
    (cache, stream, listed)
}

/// Applies watch events to a [`Projection`].
struct Projector<K, V> {
    project: Project<K, V>,
    entries: Arc<RwLock<HashMap<String, V>>>,
    /// A re-list fills a new map, which replaces the old one once complete, so
    /// that objects deleted meanwhile go away.
    relisting: Option<HashMap<String, V>>,
    listed: Arc<AtomicBool>,
}

impl<K, V: Clone> Projector<K, V> {
    /// Returns the projection of the object the event is about, if it is of interest.
    fn on(&mut self, event: watcher::Event<K>) -> Option<V> {
        match event {
            watcher::Event::Init => {
                self.relisting = Some(HashMap::new());
                None
            }
            watcher::Event::InitApply(o) => {
                let (key, value) = (self.project)(&o);
                let value = value?;
                let relisting = self.relisting.get_or_insert_default();
                relisting.insert(key, value.clone());
                Some(value)
            }
            watcher::Event::InitDone => {
                *self.write() = self.relisting.take().unwrap_or_default();
                self.listed.store(true, Ordering::SeqCst);
                None
            }
            watcher::Event::Apply(o) => match (self.project)(&o) {
                (key, Some(value)) => {
                    self.write().insert(key, value.clone());
                    Some(value)
                }
                // No longer of interest.
                (key, None) => {
                    self.write().remove(&key);
                    None
                }
            },
            watcher::Event::Delete(o) => {
                let (key, value) = (self.project)(&o);
                let old = self.write().remove(&key);
                value.or(old)
            }
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, V>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(name: &str, value: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.into());
        cm.data = Some([("v".to_string(), value.to_string())].into());
        cm
    }

    /// Keeps the value, except "-" (of no interest).
    fn project(cm: &ConfigMap) -> (String, Option<String>) {
        let value = cm.data.as_ref().and_then(|d| d.get("v")).cloned();
        (cm.name_any(), value.filter(|v| v != "-"))
    }

    #[test]
    fn a_projection_follows_lists_changes_deletions_and_relists() {
        use watcher::Event::*;
        let cache = Projection::<String> {
            entries: Arc::default(),
        };
        let mut p = Projector {
            project: Box::new(project),
            entries: cache.entries.clone(),
            relisting: None,
            listed: Arc::default(),
        };
        let contents = |c: &Projection<String>| {
            let mut v: Vec<(String, String)> = c
                .read()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(p.on(Init), None);
        assert_eq!(p.on(InitApply(cm("a", "1"))), Some("1".into()));
        assert!(cache.read().is_empty(), "a list shows only when complete");
        assert!(!p.listed.load(Ordering::SeqCst));
        p.on(InitDone);
        assert!(p.listed.load(Ordering::SeqCst));
        assert_eq!(p.on(Apply(cm("b", "2"))), Some("2".into()));
        assert_eq!(p.on(Apply(cm("a", "3"))), Some("3".into()));
        assert_eq!(
            contents(&cache),
            [("a".into(), "3".into()), ("b".into(), "2".into())]
        );
        // Deleted while the watch was down: gone after the re-list.
        p.on(Init);
        p.on(InitApply(cm("b", "2")));
        p.on(InitDone);
        assert_eq!(contents(&cache), [("b".into(), "2".into())]);
        // Of no interest any more: dropped.
        assert_eq!(p.on(Apply(cm("b", "-"))), None);
        assert!(cache.read().is_empty());
        assert_eq!(p.on(InitApply(cm("c", "-"))), None);
        p.on(Apply(cm("d", "4")));
        assert_eq!(p.on(Delete(cm("d", "4"))), Some("4".into()));
        assert!(cache.read().is_empty());
    }
}
