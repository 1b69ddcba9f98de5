//! The admin server: `/healthz` (process alive), `/readyz` (watches synced and, on
//! the leader, the first reconcile pass done; warnings that do not stop the
//! operator follow in the body), `/metrics` (Prometheus text).

use crate::runtime::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What `/readyz` reports. A follower is ready once it takes part in the leader
/// election; the leader once its caches are synced and every EcrRegistry seen at
/// start has been reconciled once.
#[derive(Default)]
pub struct Readiness {
    electing: AtomicBool,
    leading: AtomicBool,
    synced: AtomicBool,
    pending_first_pass: Mutex<Option<HashSet<String>>>,
    /// What `/readyz` adds below its verdict, by topic.
    warnings: Mutex<BTreeMap<&'static str, String>>,
}

impl Readiness {
    pub fn set_electing(&self, v: bool) {
        self.electing.store(v, Ordering::SeqCst);
    }

    pub fn set_leading(&self, v: bool) {
        self.leading.store(v, Ordering::SeqCst);
        if !v {
            self.synced.store(false, Ordering::SeqCst);
        }
    }

    /// The caches are synced; these EcrRegistries are due for their first pass.
    pub fn caches_synced(&self, registries: HashSet<String>) {
        *self.pending_first_pass.lock().expect("lock") = Some(registries);
        self.synced.store(true, Ordering::SeqCst);
    }

    pub fn reconciled(&self, registry: &str) {
        if let Some(p) = self.pending_first_pass.lock().expect("lock").as_mut() {
            p.remove(registry);
        }
    }

    /// Sets (or with `None` clears) the warning about `topic`.
    pub fn set_warning(&self, topic: &'static str, warning: Option<String>) {
        let mut warnings = self.warnings.lock().expect("lock");
        match warning {
            Some(w) => warnings.insert(topic, w),
            None => warnings.remove(topic),
        };
    }

    /// The verdict's line, then one `warning:` line each.
    fn body(&self, verdict: &str) -> String {
        let warnings = self.warnings.lock().expect("lock");
        std::iter::once(verdict.to_string())
            .chain(warnings.values().map(|w| format!("warning: {w}")))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn is_ready(&self) -> bool {
        if !self.leading.load(Ordering::SeqCst) {
            return self.electing.load(Ordering::SeqCst);
        }
        self.synced.load(Ordering::SeqCst)
            && self
                .pending_first_pass
                .lock()
                .expect("lock")
                .as_ref()
                .is_some_and(HashSet::is_empty)
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

pub fn router(metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState { metrics, readiness })
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    if s.readiness.is_ready() {
        (StatusCode::OK, s.readiness.body("ready"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            s.readiness.body("not ready"),
        )
    }
}

async fn metrics_text(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_is_ready_only_after_sync_and_a_first_pass() {
        let r = Readiness::default();
        assert!(!r.is_ready());
        r.set_electing(true);
        assert!(r.is_ready(), "a follower in the election is ready");
        r.set_leading(true);
        assert!(!r.is_ready());
        r.caches_synced(HashSet::from(["a".to_string(), "b".to_string()]));
        r.reconciled("a");
        assert!(!r.is_ready());
        r.reconciled("b");
        assert!(r.is_ready());
        r.set_leading(false);
        r.set_leading(true);
        assert!(!r.is_ready(), "a new term waits for a new sync");
    }

    #[test]
    fn warnings_follow_the_verdict_until_cleared() {
        let r = Readiness::default();
        assert_eq!(r.body("ready"), "ready");
        r.set_warning("fence", Some("no fence".into()));
        assert_eq!(r.body("ready"), "ready\nwarning: no fence");
        r.set_warning("fence", None);
        assert_eq!(r.body("ready"), "ready");
    }
}
