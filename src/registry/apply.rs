//! Carries a [`Plan`] out against the API: a thin layer with no decisions of its own
//! beyond turning API answers into per-namespace outcomes.

use crate::crd::FIELD_MANAGER;
use crate::crd::ecr_registry::NamespaceFailure;
use crate::registry::desired_secret::{Desired, DesiredSecret, REGISTRY_LABEL};
use crate::registry::plan::{
    ADDED_PULL_SECRETS_ANNOTATION, Plan, SecretRemoval, ServiceAccountChange, format_added,
};
use crate::registry::status::SyncOutcome;
use crate::runtime::heap;
use futures::{FutureExt, StreamExt, stream};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

/// Writes in flight at once: enough for 1,000 namespaces in a few seconds without
/// flooding the API server.
pub const CONCURRENCY: usize = 32;

/// One request of a pass, by its index in the plan.
#[derive(Clone, Copy)]
enum Work {
    Write(usize),
    Remove(usize),
    Patch(usize),
}

enum Done {
    Written(String),
    Removed(String),
    Quiet,
    Failed(NamespaceFailure),
}

pub async fn apply(client: &Client, registry: &str, plan: &Plan, desired: &Desired) -> SyncOutcome {
    // Each request's future is made only when it starts: made up front, the
    // futures of 10,000 writes were the largest allocation of a pass.
    // By index: a stream item that borrows trips the compiler's check that the
    // future is Send.
    let writes = plan.apply.len();
    let requests = writes + plan.remove.len() + plan.service_accounts.len();
    let work = (0..writes)
        .map(Work::Write)
        .chain((0..plan.remove.len()).map(Work::Remove))
        .chain((0..plan.service_accounts.len()).map(Work::Patch));
    let results: Vec<Done> = stream::iter(work)
        // Made and boxed here, lazily: only the requests in flight exist at once.
        .map(|work| match work {
            Work::Write(i) => {
                let ns = &plan.apply[i];
                match desired.secret_for(ns) {
                    Some(d) => write_secret(client, registry, d, ns).boxed(),
                    None => futures::future::ready(Done::Quiet).boxed(),
                }
            }
            Work::Remove(i) => remove_secret(client, registry, &plan.remove[i]).boxed(),
            Work::Patch(i) => patch_service_account(client, &plan.service_accounts[i]).boxed(),
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    if requests >= heap::TRIM_AFTER_REQUESTS {
        heap::release_free_memory();
    }
    let mut outcome = SyncOutcome::default();
    for r in results {
        match r {
            Done::Written(ns) => outcome.written.push(ns),
            Done::Removed(ns) => outcome.removed.push(ns),
            Done::Quiet => {}
            Done::Failed(f) => outcome.failures.push(f),
        }
    }
    outcome.written.sort();
    outcome.removed.sort();
    outcome
}

/// The field manager of one registry's secrets: with one manager per registry the
/// API server itself reports a conflict between two registries, or two shards.
pub fn field_manager(registry: &str) -> String {
    format!("{FIELD_MANAGER}/{registry}")
}

/// Server-side apply without force: a secret of that name that another manager
/// wrote comes back as a conflict, and no read is needed. A conflicting secret that
/// carries this registry's owner reference is ours, edited by hand (or written by
/// release 0.1's single manager): it is taken back.
async fn write_secret(client: &Client, registry: &str, desired: &DesiredSecret, ns: &str) -> Done {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let manager = field_manager(registry);
    let object = desired.for_namespace(ns);
    let result = match api
        .patch(
            &desired.name,
            &PatchParams::apply(&manager),
            &Patch::Apply(&object),
        )
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 409 => {
            take_back(&api, &manager, desired, object).await
        }
        other => other.map(|_| true),
    };
    match result {
        Ok(true) => {
            tracing::info!(namespace = ns, secret = desired.name, "secret written");
            Done::Written(ns.to_string())
        }
        Ok(false) => conflict(registry, ns, &desired.name),
        Err(e) => classify(registry, ns, &desired.name, e),
    }
}

/// Force-applies `object` if the secret there carries this registry's owner
/// reference: asked of the API server with a dry-run JSON-patch `test` (the
/// operator reads no Secrets), and applied under the resourceVersion that answer
/// gave, so a secret replaced in between is never overwritten.
async fn take_back(
    api: &Api<Secret>,
    manager: &str,
    desired: &DesiredSecret,
    mut object: Secret,
) -> Result<bool, kube::Error> {
    let test: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": desired.owner_uid()},
    ]))
    .expect("a JSON patch");
    let probe = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    let ours = api
        .patch(&desired.name, &probe, &Patch::Json::<()>(test))
        .await;
    let current = match ours {
        Ok(current) => current,
        // The test failed, or the admission fence refused: not ours.
        Err(kube::Error::Api(s)) if matches!(s.code, 400 | 409 | 422) || fenced(&s.message) => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    object.metadata.resource_version = current.metadata.resource_version;
    api.patch(
        &desired.name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&object),
    )
    .await?;
    tracing::info!(
        secret = desired.name,
        "secret taken back from another field manager"
    );
    Ok(true)
}

/// Deletes only a secret that carries this registry's label.
async fn remove_secret(client: &Client, registry: &str, removal: &SecretRemoval) -> Done {
    let api: Api<Secret> = Api::namespaced(client.clone(), &removal.namespace);
    let lp = ListParams::default()
        .labels(&format!("{REGISTRY_LABEL}={registry}"))
        .fields(&format!("metadata.name={}", removal.name));
    match api.delete_collection(&DeleteParams::default(), &lp).await {
        Ok(_) => {
            tracing::info!(
                registry,
                namespace = removal.namespace,
                secret = removal.name,
                "secret removed"
            );
            Done::Removed(removal.namespace.clone())
        }
        Err(e) => match classify(registry, &removal.namespace, &removal.name, e) {
            Done::Quiet => Done::Removed(removal.namespace.clone()),
            other => other,
        },
    }
}

/// Replaces imagePullSecrets under the resourceVersion it was computed from, so a
/// concurrent edit is never lost (the stale patch fails and the next pass redoes it).
async fn patch_service_account(client: &Client, change: &ServiceAccountChange) -> Done {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &change.namespace);
    let added = format_added(&change.added_by_operator);
    let patch = json!({
        "metadata": {
            "resourceVersion": change.resource_version,
            "annotations": { ADDED_PULL_SECRETS_ANNOTATION: added },
        },
        "imagePullSecrets": change.image_pull_secrets.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
    });
    match api
        .patch(&change.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => {
            tracing::info!(
                namespace = change.namespace,
                service_account = change.name,
                "imagePullSecrets updated"
            );
            Done::Quiet
        }
        Err(e) => match classify("", &change.namespace, &change.name, e) {
            Done::Failed(mut f) => {
                f.reason = "ServiceAccountUpdateFailed".into();
                Done::Failed(f)
            }
            other => other,
        },
    }
}

fn classify(registry: &str, ns: &str, name: &str, e: kube::Error) -> Done {
    let status = match &e {
        kube::Error::Api(s) => Some(s),
        _ => None,
    };
    let code = status.map(|s| s.code).unwrap_or_default();
    let message = status
        .map(|s| s.message.clone())
        .unwrap_or_else(|| e.to_string());
    // Gone or going namespaces are not failures: their secrets go with them.
    if code == 404 || (code == 403 && message.contains("being terminated")) {
        return Done::Quiet;
    }
    let (reason, message) = match code {
        409 => return conflict(registry, ns, name),
        // Invalid, not someone else's: say what the API server refused.
        422 => (
            "Invalid",
            format!("the API server refused {name}: {message}"),
        ),
        403 if fenced(&message) => return conflict(registry, ns, name),
        403 => (
            "Forbidden",
            format!("the operator may not write here: {message}; check its RBAC"),
        ),
        _ => ("ApiError", message),
    };
    failed(ns, name, reason, message)
}

/// The operator's admission policy (deploy/) refused the write: the object is not
/// the operator's, which is a conflict, not a permission problem.
fn fenced(message: &str) -> bool {
    message.contains("ValidatingAdmissionPolicy") && message.contains("denied request")
}

/// A secret of that name that is not this registry's: never overwritten.
fn conflict(registry: &str, ns: &str, name: &str) -> Done {
    failed(
        ns,
        name,
        "SecretConflict",
        format!(
            "a secret named {name} exists here and is not managed by EcrRegistry {registry}; delete or rename it, or set spec.secret.name"
        ),
    )
}

fn failed(ns: &str, name: &str, reason: &str, message: String) -> Done {
    tracing::warn!(namespace = ns, name, reason, "namespace not synced");
    Done::Failed(NamespaceFailure {
        namespace: ns.to_string(),
        reason: reason.to_string(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_of_the_admission_fence_is_a_conflict_not_a_permission_problem() {
        // As kube-apiserver words a ValidatingAdmissionPolicy denial.
        let fence = "secrets \"pull\" is forbidden: ValidatingAdmissionPolicy 'ecr-operator-fence' with binding 'ecr-operator-fence' denied request: not a secret of the operator";
        assert!(fenced(fence));
        assert!(!fenced(
            "secrets \"pull\" is forbidden: User \"x\" cannot patch resource \"secrets\""
        ));
        let Done::Failed(f) = classify("reg", "ns", "pull", forbidden(fence)) else {
            panic!("not a failure")
        };
        assert_eq!(f.reason, "SecretConflict");
        let Done::Failed(f) = classify("reg", "ns", "pull", forbidden("cannot patch")) else {
            panic!("not a failure")
        };
        assert_eq!(f.reason, "Forbidden");
        // Invalid is not a conflict: no secret of another owner is there.
        let invalid = "Secret \"pull\" is invalid: metadata.labels: Invalid value: \"a b\"";
        let Done::Failed(f) = classify("reg", "ns", "pull", api_error(422, invalid)) else {
            panic!("not a failure")
        };
        assert_eq!(f.reason, "Invalid");
        assert!(f.message.contains("metadata.labels"), "{}", f.message);
    }

    fn forbidden(message: &str) -> kube::Error {
        api_error(403, message)
    }

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(
            serde_json::from_value(
                json!({"code": code, "message": message, "reason": "x", "status": "Failure"}),
            )
            .unwrap(),
        ))
    }
}
