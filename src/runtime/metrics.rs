//! Prometheus metrics, all prefixed `ecr_operator_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsLabels {
    pub operation: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KubeLabels {
    pub verb: String,
    pub code: String,
}

pub struct Metrics {
    registry: Registry,
    pub refreshes: Family<RefreshLabels, Counter>,
    pub token_expiry: Family<RegistryLabels, Gauge<f64, AtomicU64>>,
    pub namespaces_selected: Family<RegistryLabels, Gauge>,
    pub namespaces_synced: Family<RegistryLabels, Gauge>,
    pub reconcile_duration: Histogram,
    pub aws_requests: Family<AwsLabels, Counter>,
    pub kube_requests: Family<KubeLabels, Counter>,
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ecr_operator");
        let m = Self {
            refreshes: Family::default(),
            token_expiry: Family::default(),
            namespaces_selected: Family::default(),
            namespaces_synced: Family::default(),
            reconcile_duration: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            aws_requests: Family::default(),
            kube_requests: Family::default(),
            leader: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "token_refreshes",
            "Token refreshes by EcrRegistry and result",
            m.refreshes.clone(),
        );
        registry.register(
            "token_expiry_timestamp_seconds",
            "Expiry of the token in each EcrRegistry's secrets, as a Unix timestamp",
            m.token_expiry.clone(),
        );
        registry.register(
            "namespaces_selected",
            "Namespaces each EcrRegistry selects",
            m.namespaces_selected.clone(),
        );
        registry.register(
            "namespaces_synced",
            "Selected namespaces holding each EcrRegistry's current secret",
            m.namespaces_synced.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time to reconcile one EcrRegistry",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "aws_requests",
            "AWS API calls by operation and result",
            m.aws_requests.clone(),
        );
        registry.register(
            "kubernetes_requests",
            "Kubernetes API requests by verb and HTTP status code",
            m.kube_requests.clone(),
        );
        registry.register(
            "leader",
            "1 while this instance holds the leader lease",
            m.leader.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn aws_call(&self, operation: &str, result: &str) {
        self.aws_requests
            .get_or_create(&AwsLabels {
                operation: operation.into(),
                result: result.into(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions_with_one_prefix() {
        let m = Metrics::default();
        m.refreshes
            .get_or_create(&RefreshLabels {
                registry: "r".into(),
                result: "success".into(),
            })
            .inc();
        m.aws_call("GetAuthorizationToken", "success");
        m.kube_requests
            .get_or_create(&KubeLabels {
                verb: "patch".into(),
                code: "200".into(),
            })
            .inc();
        let text = m.encode();
        for line in [
            "ecr_operator_token_refreshes_total{registry=\"r\",result=\"success\"} 1",
            "ecr_operator_aws_requests_total{operation=\"GetAuthorizationToken\",result=\"success\"} 1",
            "ecr_operator_kubernetes_requests_total{verb=\"patch\",code=\"200\"} 1",
            "# TYPE ecr_operator_reconcile_duration_seconds histogram",
            "# TYPE ecr_operator_leader gauge",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
