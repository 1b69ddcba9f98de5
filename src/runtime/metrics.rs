//! Prometheus metrics, all prefixed `ecr_operator_`. This file holds the registry
//! of metrics and the ones every controller shares (reconciles, AWS and Kubernetes
//! requests, leadership); each controller registers its own beside them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// The kind the controller reconciles: `EcrRegistry` or `EcrMirror`.
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub controller: String,
    /// The error's reason (Throttled, KubernetesApiError, ...).
    pub reason: String,
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
    registry: Mutex<Registry>,
    reconcile_duration: Family<ControllerLabels, Histogram>,
    reconcile_failures: Family<FailureLabels, Counter>,
    pub aws_requests: Family<AwsLabels, Counter>,
    pub kube_requests: Family<KubeLabels, Counter>,
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Self {
            registry: Mutex::new(Registry::with_prefix("ecr_operator")),
            reconcile_duration: Family::new_with_constructor(|| {
                Histogram::new([
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            }),
            reconcile_failures: Family::default(),
            aws_requests: Family::default(),
            kube_requests: Family::default(),
            leader: Gauge::default(),
        };
        m.register(
            "reconcile_duration_seconds",
            "Time to reconcile one object, by controller",
            m.reconcile_duration.clone(),
        );
        m.register(
            "reconcile_failures",
            "Reconciles that failed, by controller and reason",
            m.reconcile_failures.clone(),
        );
        m.register(
            "aws_requests",
            "AWS API calls by operation and result",
            m.aws_requests.clone(),
        );
        m.register(
            "kubernetes_requests",
            "Kubernetes API requests by verb and HTTP status code",
            m.kube_requests.clone(),
        );
        m.register(
            "leader",
            "1 while this instance holds the leader lease",
            m.leader.clone(),
        );
        m
    }
}

impl Metrics {
    /// Adds a controller's own metric (the `ecr_operator_` prefix is added).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry
            .lock()
            .expect("metrics lock")
            .register(name, help, metric);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(
            &mut out,
            &self.registry.lock().expect("metrics lock"),
        )
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

    pub fn reconciled(&self, controller: &str, seconds: f64) {
        self.reconcile_duration
            .get_or_create(&ControllerLabels {
                controller: controller.into(),
            })
            .observe(seconds);
    }

    pub fn reconcile_failed(&self, controller: &str, reason: &str) {
        self.reconcile_failures
            .get_or_create(&FailureLabels {
                controller: controller.into(),
                reason: reason.into(),
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
        m.aws_call("GetAuthorizationToken", "success");
        m.kube_requests
            .get_or_create(&KubeLabels {
                verb: "patch".into(),
                code: "200".into(),
            })
            .inc();
        m.reconciled("EcrMirror", 0.01);
        m.reconcile_failed("EcrRegistry", "Throttled");
        let extra: Family<ControllerLabels, Counter> = Family::default();
        m.register("extra", "A controller's own", extra.clone());
        extra
            .get_or_create(&ControllerLabels {
                controller: "x".into(),
            })
            .inc();
        let text = m.encode();
        for line in [
            "ecr_operator_aws_requests_total{operation=\"GetAuthorizationToken\",result=\"success\"} 1",
            "ecr_operator_kubernetes_requests_total{verb=\"patch\",code=\"200\"} 1",
            "# TYPE ecr_operator_reconcile_duration_seconds histogram",
            "ecr_operator_reconcile_duration_seconds_count{controller=\"EcrMirror\"} 1",
            "ecr_operator_reconcile_failures_total{controller=\"EcrRegistry\",reason=\"Throttled\"} 1",
            "ecr_operator_extra_total{controller=\"x\"} 1",
            "# TYPE ecr_operator_leader gauge",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
