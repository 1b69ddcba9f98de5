//! Objects shared by the unit tests: one builder per kind of object.

use crate::aws::auth_token::{AuthToken, Password};
use crate::crd::ecr_mirror::EcrMirror;
use crate::crd::ecr_registry::{EcrRegistry, EcrRegistrySpec, Endpoint};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::json;

/// The EcrMirror apps/nginx (uid u-1, generation 2) pushing nginx:1.27 to the
/// EcrRegistry prod, with `extra` merged into its spec.
pub fn mirror(extra: serde_json::Value) -> EcrMirror {
    let mut spec = json!({
        "registryRef": {"name": "prod"},
        "push": {"source": "docker.io/library/nginx:1.27", "repository": "mirror/nginx", "tags": ["1.27"]},
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(json!({
        "apiVersion": "ecr-operator.io/v1alpha1",
        "kind": "EcrMirror",
        "metadata": {"name": "nginx", "namespace": "apps", "uid": "u-1", "generation": 2},
        "spec": spec,
    }))
    .unwrap()
}

/// A Job in apps with the given status (uid `uid-<name>`).
pub fn job(name: &str, status: serde_json::Value) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "apps", "uid": format!("uid-{name}")},
        "status": status,
    }))
    .unwrap()
}

/// Makes the object of `meta` controlled by the object of `uid`.
pub fn owned_by(meta: &mut ObjectMeta, uid: &str) {
    meta.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Owner".into(),
        name: "owner".into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
}

/// A token of account 123456789012 fetched at `fetched_at`, valid for `lifetime`;
/// its password is "pw".
pub fn token(fetched_at: jiff::Timestamp, lifetime: jiff::SignedDuration) -> AuthToken {
    AuthToken {
        username: "AWS".into(),
        password: Password::new("pw"),
        account: Some("123456789012".into()),
        fetched_at,
        expires_at: fetched_at + lifetime,
        expiry_adjusted: false,
    }
}

/// The EcrRegistry `name` (uid `uid-<name>`, generation 3) in us-east-1, Standard
/// endpoints, selecting every namespace.
pub fn ecr_registry(name: &str) -> EcrRegistry {
    let mut r = EcrRegistry::new(
        name,
        EcrRegistrySpec {
            region: Some("us-east-1".into()),
            endpoints: vec![Endpoint::Standard],
            ..Default::default()
        },
    );
    r.metadata.uid = Some(format!("uid-{name}"));
    r.metadata.generation = Some(3);
    r
}
