//! Is the admission fence (deploy/'s ValidatingAdmissionPolicy, docs/operating.md
//! "Admission fence") enforced on this operator's own requests? Asked with the one
//! request that tells, whoever installed what: a dry-run create of an unlabelled
//! Secret in the operator's namespace, which the fence refuses and the RBAC allows.
//! A dry run stores nothing. Not enforced is a warning (log, metric, `/readyz`
//! detail), not a failure: the operator works without the fence, with less safety.

use crate::runtime::admin::Readiness;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use prometheus_client::metrics::gauge::Gauge;
use std::time::Duration;

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fence {
    Enforced,
    /// The write a fence refuses was admitted.
    NotEnforced,
    /// The probe could not tell (the API server did not answer, or answered with
    /// another error): the reason.
    Unknown(String),
}

impl Fence {
    /// The `admission_fence_enforced` gauge: 1, 0, or -1 for unknown.
    pub fn gauge(&self) -> i64 {
        match self {
            Fence::Enforced => 1,
            Fence::NotEnforced => 0,
            Fence::Unknown(_) => -1,
        }
    }

    /// The `/readyz` detail, none when enforced.
    pub fn warning(&self) -> Option<String> {
        match self {
            Fence::Enforced => None,
            Fence::NotEnforced => Some(NOT_ENFORCED.to_string()),
            Fence::Unknown(why) => Some(format!(
                "could not tell whether the admission fence is enforced: {why}"
            )),
        }
    }
}

const NOT_ENFORCED: &str = "the admission fence is not enforced on this operator's ServiceAccount: \
its RBAC alone lets a stolen token read and rewrite any Secret; install deploy/'s \
ValidatingAdmissionPolicy (Helm: admissionPolicy.enabled=true; Kubernetes >= 1.30), see \
docs/operating.md#admission-fence";

/// The probe Secret's name (never stored: dry run).
pub const PROBE_NAME: &str = "ecr-operator-fence-probe";

/// What the API server's answer to the probe means.
pub fn classify<T>(answer: Result<T, kube::Error>) -> Fence {
    match answer {
        Ok(_) => Fence::NotEnforced,
        Err(kube::Error::Api(s))
            if matches!(s.code, 403 | 422) && s.message.contains("ValidatingAdmissionPolicy") =>
        {
            Fence::Enforced
        }
        Err(kube::Error::Api(s)) => Fence::Unknown(format!("{} ({})", s.reason, s.code)),
        Err(e) => Fence::Unknown(e.to_string()),
    }
}

/// Sends the probe.
pub async fn probe(client: &kube::Client, namespace: &str) -> Fence {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut secret = Secret::default();
    secret.metadata.name = Some(PROBE_NAME.into());
    let params = PostParams {
        dry_run: true,
        field_manager: Some(crate::crd::FIELD_MANAGER.into()),
    };
    classify(api.create(&params, &secret).await)
}

/// Probes now and every `every`, and reports each change: a log line, the gauge
/// and the `/readyz` detail. Runs until the process ends.
pub async fn watch(
    client: kube::Client,
    namespace: String,
    gauge: Gauge,
    readiness: std::sync::Arc<Readiness>,
    every: Duration,
) {
    let mut last = None;
    loop {
        let found = probe(&client, &namespace).await;
        if last.as_ref() != Some(&found) {
            gauge.set(found.gauge());
            readiness.set_warning("admission-fence", found.warning());
            match &found {
                Fence::Enforced => tracing::info!("admission fence enforced"),
                Fence::NotEnforced => tracing::warn!("{NOT_ENFORCED}"),
                Fence::Unknown(why) => {
                    tracing::warn!(reason = %why, "could not tell whether the admission fence is enforced")
                }
            }
            last = Some(found);
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(code: u16, message: &str) -> Result<(), kube::Error> {
        Err(kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: message.into(),
            reason: "Forbidden".into(),
            ..Default::default()
        })))
    }

    #[test]
    fn only_the_policys_refusal_means_enforced() {
        assert_eq!(classify(Ok(())), Fence::NotEnforced);
        assert_eq!(
            classify(refusal(
                403,
                "secrets \"ecr-operator-fence-probe\" is forbidden: ValidatingAdmissionPolicy 'ecr-operator' with binding 'ecr-operator' denied request: ..."
            )),
            Fence::Enforced
        );
        // An RBAC refusal says nothing about the fence.
        assert_eq!(
            classify(refusal(
                403,
                "secrets is forbidden: User \"x\" cannot create resource"
            )),
            Fence::Unknown("Forbidden (403)".into())
        );
        assert_eq!(Fence::Enforced.warning(), None);
        assert!(
            Fence::NotEnforced
                .warning()
                .unwrap()
                .contains("admissionPolicy.enabled=true")
        );
    }
}
