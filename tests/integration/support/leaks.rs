//! Scans for secret values where a user can see them: the operator's logs (it
//! runs at trace level), an EcrRegistry's status and Events, and the metrics.

use crate::support::bed::{Bed, eventually};
use crate::support::operator::Operator;
use base64::Engine as _;
use ecr_operator::crd::ecr_registry::EcrRegistry;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, Client};

const TIMEOUT: u64 = 30;

/// The values no log, status or Event may hold, each with a label: `secrets` (as
/// they are and as base64, the form Secret data travels in), the ECR password,
/// and the authorization token (base64 of `AWS:<password>`: the `auth` of a
/// Docker config, which pulls images as well as the password does).
pub fn forbidden(secrets: &[&str]) -> Vec<(String, String)> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let password = Bed::get().var("BED_ECR_PASSWORD");
    let mut out = Vec::new();
    for (i, s) in secrets.iter().enumerate() {
        out.push((format!("secret #{i}"), s.to_string()));
        out.push((format!("secret #{i} as base64"), b64(s)));
    }
    out.push(("the ECR password".into(), password.to_string()));
    out.push((
        "the ECR authorization token".into(),
        b64(&format!("AWS:{password}")),
    ));
    out
}

/// No secret value in the operator's logs, the EcrRegistry's status, its Events or
/// the metrics. Returns how many values were looked for.
pub async fn assert_no_leak(
    client: &Client,
    operator: &Operator,
    registry: &str,
    secrets: &[&str],
) -> usize {
    let forbidden = forbidden(secrets);
    let r: EcrRegistry = Api::all(client.clone())
        .get(registry)
        .await
        .expect("get EcrRegistry");
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let ours = eventually(TIMEOUT, "Events about the EcrRegistry", || async {
        let list = events
            .list(&ListParams::default())
            .await
            .expect("list Events");
        let ours: Vec<Event> = list
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|o| {
                    o.kind.as_deref() == Some("EcrRegistry") && o.name.as_deref() == Some(registry)
                })
            })
            .collect();
        (!ours.is_empty()).then_some(ours)
    })
    .await;
    let places = [
        ("the operator's logs", operator.logs()),
        ("the status", serde_json::to_string(&r.status).unwrap()),
        ("the Events", serde_json::to_string(&ours).unwrap()),
        ("the metrics", operator.admin_get("/metrics").await.1),
    ];
    let mut leaks = Vec::new();
    for (place, text) in &places {
        for (what, value) in &forbidden {
            if text.contains(value.as_str()) {
                leaks.push(format!("{what} leaked into {place}"));
            }
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    operator.assert_logs_hold_none_of(
        &forbidden
            .iter()
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>(),
    );
    forbidden.len()
}
