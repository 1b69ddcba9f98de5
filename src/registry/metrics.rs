//! The EcrRegistry controller's own metrics, per registry. A registry's series go
//! when the registry goes, so no alert fires for a registry that no longer exists.

use crate::crd::ecr_registry::EcrRegistryStatus;
use crate::runtime::metrics::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryLabels {
    pub registry: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefreshLabels {
    pub registry: String,
    /// `success`, or the failure reason (Throttled, AssumeRoleDenied, ...).
    pub result: String,
}

pub struct RegistryMetrics {
    refreshes: Family<RefreshLabels, Counter>,
    /// The `result` labels used per registry, to remove them with the registry.
    refresh_results: Mutex<HashMap<String, HashSet<String>>>,
    token_expiry: Family<RegistryLabels, Gauge<f64, AtomicU64>>,
    namespaces_selected: Family<RegistryLabels, Gauge>,
    namespaces_synced: Family<RegistryLabels, Gauge>,
}

impl RegistryMetrics {
    /// Registers the metrics with the process's registry of metrics.
    pub fn new(metrics: &Metrics) -> Self {
        let m = Self {
            refreshes: Family::default(),
            refresh_results: Mutex::default(),
            token_expiry: Family::default(),
            namespaces_selected: Family::default(),
            namespaces_synced: Family::default(),
        };
        metrics.register(
            "token_refreshes",
            "Token refreshes by EcrRegistry and result",
            m.refreshes.clone(),
        );
        metrics.register(
            "token_expiry_timestamp_seconds",
            "Expiry of the token in each EcrRegistry's secrets, as a Unix timestamp",
            m.token_expiry.clone(),
        );
        metrics.register(
            "namespaces_selected",
            "Namespaces each EcrRegistry selects",
            m.namespaces_selected.clone(),
        );
        metrics.register(
            "namespaces_synced",
            "Selected namespaces holding each EcrRegistry's current secret",
            m.namespaces_synced.clone(),
        );
        m
    }

    pub fn count_refresh(&self, registry: &str, result: &str) {
        self.refresh_results
            .lock()
            .expect("metrics lock")
            .entry(registry.into())
            .or_default()
            .insert(result.into());
        self.refreshes
            .get_or_create(&RefreshLabels {
                registry: registry.into(),
                result: result.into(),
            })
            .inc();
    }

    /// The gauges of one registry, from the status just computed.
    pub fn record(&self, registry: &str, status: &EcrRegistryStatus) {
        let labels = labels(registry);
        if let Some(t) = &status.expires_at {
            self.token_expiry
                .get_or_create(&labels)
                .set(t.0.as_second() as f64);
        }
        if let Some(n) = &status.namespaces {
            self.namespaces_selected
                .get_or_create(&labels)
                .set(n.selected.into());
            self.namespaces_synced
                .get_or_create(&labels)
                .set(n.synced.into());
        }
    }

    /// Removes every series of a registry that was deleted.
    pub fn forget(&self, registry: &str) {
        let labels = labels(registry);
        self.token_expiry.remove(&labels);
        self.namespaces_selected.remove(&labels);
        self.namespaces_synced.remove(&labels);
        let results = self
            .refresh_results
            .lock()
            .expect("metrics lock")
            .remove(registry)
            .unwrap_or_default();
        for result in results {
            self.refreshes.remove(&RefreshLabels {
                registry: registry.into(),
                result,
            });
        }
    }
}

fn labels(registry: &str) -> RegistryLabels {
    RegistryLabels {
        registry: registry.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ecr_registry::NamespaceCounts;

    #[test]
    fn a_deleted_registry_leaves_no_series() {
        let metrics = Metrics::default();
        let m = RegistryMetrics::new(&metrics);
        let status = EcrRegistryStatus {
            namespaces: Some(NamespaceCounts {
                selected: 2,
                synced: 1,
                summary: "1/2".into(),
            }),
            ..Default::default()
        };
        m.count_refresh("a", "success");
        m.record("a", &status);
        m.record("b", &status);
        let text = metrics.encode();
        assert!(
            text.contains(
                "ecr_operator_token_refreshes_total{registry=\"a\",result=\"success\"} 1"
            )
        );
        assert!(text.contains("ecr_operator_namespaces_synced{registry=\"a\"} 1"));
        m.forget("a");
        let text = metrics.encode();
        assert!(!text.contains("registry=\"a\""), "{text}");
        assert!(text.contains("ecr_operator_namespaces_selected{registry=\"b\"} 2"));
    }
}
