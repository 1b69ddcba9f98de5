//! The managed secret as the operator wants it in every namespace.

use crate::aws::auth_token::AuthToken;
use crate::crd::ecr_registry::{EcrRegistry, NamespaceFailure, RegionStatus};
use crate::crd::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::error::Error;
use crate::registry::regions::{self, RegionToken};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

pub const REGISTRY_LABEL: &str = "ecr-operator.io/registry";
pub const EXPIRES_AT_ANNOTATION: &str = "ecr-operator.io/expires-at";
pub const SECRET_TYPE: &str = "kubernetes.io/dockerconfigjson";
pub const DATA_KEY: &str = ".dockerconfigjson";

/// What the tokens allow to write.
pub struct SecretStep {
    /// The registry hosts the secret opens.
    pub hosts: Vec<String>,
    /// None while there is no token to write (nothing is written then).
    pub desired: Option<DesiredSecret>,
    /// The token in the secret that expires first (when nothing is written: in
    /// the secrets written before), if any.
    pub token: Option<AuthToken>,
    /// The token steps' error, or why the secret cannot be built.
    pub error: Option<Error>,
    /// Each region's token state, for the status.
    pub regions: Vec<RegionStatus>,
}

/// A token is served after a failed refresh while more than this is left of it
/// (a quarter of its lifetime for short-lived tokens).
pub const SAFETY_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_mins(30);

/// True when `token` may still be written into new namespaces at `now`.
pub fn still_servable(token: &AuthToken, now: jiff::Timestamp) -> bool {
    let lifetime = token.expires_at.duration_since(token.fetched_at);
    token.expires_at.duration_since(now) > SAFETY_MARGIN.min(lifetime / 4)
}

/// The secret for the tokens of the registry's regions ([`regions::serve`]):
/// its hosts are those of `spec.registryIds`, else of the account the credentials
/// belong to. After a failed refresh the last token is still served (to new and
/// re-created namespaces too) while it is far enough from expiry; the failure
/// stays in `error` for the status.
pub fn for_regions(
    registry: &EcrRegistry,
    tokens: Vec<RegionToken>,
    now: jiff::Timestamp,
) -> SecretStep {
    let prev = registry
        .status
        .as_ref()
        .map(|s| s.regions.as_slice())
        .unwrap_or_default();
    let served = regions::serve(&registry.spec, tokens, prev, now);
    let desired = served
        .config
        .as_ref()
        .zip(served.earliest.as_ref())
        .map(|(c, t)| DesiredSecret::new(registry, c.to_json(), t.expires_at));
    SecretStep {
        hosts: served.hosts,
        desired,
        token: served.earliest,
        error: served.error,
        regions: served.regions,
    }
}

/// The secret content shared by every namespace of one EcrRegistry.
#[derive(Clone)]
pub struct DesiredSecret {
    pub name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    owner: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    docker_config_json: String,
    /// Changes whenever anything written changes; equal fingerprints mean a write
    /// would be a no-op.
    pub fingerprint: u64,
}

impl std::fmt::Debug for DesiredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesiredSecret")
            .field("name", &self.name)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl DesiredSecret {
    pub fn new(
        registry: &EcrRegistry,
        docker_config_json: String,
        expires_at: jiff::Timestamp,
    ) -> Self {
        let mut labels = registry.spec.secret.labels.clone();
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
        labels.insert(REGISTRY_LABEL.into(), registry.name_any());
        let mut annotations = registry.spec.secret.annotations.clone();
        annotations.insert(EXPIRES_AT_ANNOTATION.into(), expires_at.to_string());
        let owner = registry
            .controller_owner_ref(&())
            .expect("an EcrRegistry from the API server has a name and uid");
        let mut hasher = DefaultHasher::new();
        (&registry.secret_name(), &labels, &annotations, &owner.uid).hash(&mut hasher);
        docker_config_json.hash(&mut hasher);
        Self {
            name: registry.secret_name(),
            labels,
            annotations,
            owner,
            docker_config_json,
            fingerprint: hasher.finish(),
        }
    }

    /// The uid of the EcrRegistry that owns the secret.
    pub fn owner_uid(&self) -> &str {
        &self.owner.uid
    }

    /// The object to server-side apply into `namespace`.
    pub fn for_namespace(&self, namespace: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(namespace.to_string()),
                labels: Some(self.labels.clone()),
                annotations: Some(self.annotations.clone()),
                owner_references: Some(vec![self.owner.clone()]),
                ..Default::default()
            },
            type_: Some(SECRET_TYPE.into()),
            data: Some(BTreeMap::from([(
                DATA_KEY.to_string(),
                ByteString(self.docker_config_json.clone().into_bytes()),
            )])),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{ecr_registry, token};

    fn registry() -> EcrRegistry {
        ecr_registry("reg")
    }

    #[test]
    fn a_token_is_served_after_a_failed_refresh_until_its_margin() {
        let t0 = jiff::Timestamp::from_second(1_000_000).unwrap();
        let hours = |h| jiff::SignedDuration::from_hours(h);
        let mins = |m| jiff::SignedDuration::from_mins(m);
        let twelve = token(t0, hours(12));
        assert!(still_servable(&twelve, t0 + hours(11)));
        assert!(!still_servable(&twelve, t0 + hours(12) - mins(29)));
        // A one-minute token (as on the test bed): served while 15 s are left.
        let short = token(t0, jiff::SignedDuration::from_secs(60));
        assert!(still_servable(
            &short,
            t0 + jiff::SignedDuration::from_secs(20)
        ));
        assert!(!still_servable(
            &short,
            t0 + jiff::SignedDuration::from_secs(50)
        ));
    }

    fn one(token: Option<AuthToken>, error: Option<Error>) -> Vec<RegionToken> {
        vec![RegionToken {
            name: "us-east-1".into(),
            step: crate::registry::token::TokenStep {
                token,
                error,
                ..Default::default()
            },
        }]
    }

    #[test]
    fn a_throttled_refresh_still_builds_the_secret_a_bad_spec_does_not() {
        let t0 = jiff::Timestamp::from_second(1_000_000).unwrap();
        let t = token(t0, jiff::SignedDuration::from_hours(12));
        let r = registry();
        let throttled = || {
            Some(Error::Throttled {
                operation: "GetAuthorizationToken",
            })
        };
        let step = for_regions(
            &r,
            one(Some(t.clone()), throttled()),
            t0 + jiff::SignedDuration::from_hours(1),
        );
        assert!(step.desired.is_some() && step.error.is_some());
        let late = for_regions(
            &r,
            one(Some(t.clone()), throttled()),
            t0 + jiff::SignedDuration::from_hours(12),
        );
        assert!(late.desired.is_none());
        let bad = for_regions(&r, one(Some(t), Some(Error::InvalidSpec("x".into()))), t0);
        assert!(bad.desired.is_none());
        assert_eq!(step.hosts, ["123456789012.dkr.ecr.us-east-1.amazonaws.com"]);
    }
}

/// What one namespace gets under spec.auth.namespaceRole.
#[derive(Clone, Debug)]
pub enum TenantSecret {
    /// The secret of its role's token (one per role, shared by its namespaces).
    Write(Arc<DesiredSecret>),
    /// The registry's own secret (unannotated, Unannotated::RegistryIdentity).
    Shared,
    /// No secret (unannotated, Unannotated::NoSecret): not selected.
    NotServed,
    /// Its role could not be used: reported; its secret is kept while the cause
    /// may pass (AWS unreachable), removed when it is an answer (denied, bad
    /// annotation).
    Failed {
        failure: NamespaceFailure,
        withdraw: bool,
    },
}

/// The secret each namespace gets.
#[derive(Default)]
pub struct Desired {
    /// The secret of the registry's own identity, for every selected namespace (or
    /// for the unannotated ones under spec.auth.namespaceRole); None while no
    /// token is available.
    pub shared: Option<DesiredSecret>,
    /// Under spec.auth.namespaceRole: by namespace. A namespace missing here
    /// appeared after the tokens were fetched: it waits for the next pass.
    pub tenants: Option<BTreeMap<String, TenantSecret>>,
}

/// A namespace's part of [`Desired`].
pub enum ForNamespace<'a> {
    Write(&'a DesiredSecret),
    /// Nothing to write now; what exists stays.
    Wait,
    NotServed,
    Failed {
        failure: &'a NamespaceFailure,
        withdraw: bool,
    },
}

impl Desired {
    pub fn shared(shared: Option<DesiredSecret>) -> Self {
        Self {
            shared,
            tenants: None,
        }
    }

    pub fn for_namespace(&self, ns: &str) -> ForNamespace<'_> {
        let shared = || {
            self.shared
                .as_ref()
                .map_or(ForNamespace::Wait, ForNamespace::Write)
        };
        let Some(tenants) = &self.tenants else {
            return shared();
        };
        match tenants.get(ns) {
            None => ForNamespace::Wait,
            Some(TenantSecret::Write(d)) => ForNamespace::Write(d),
            Some(TenantSecret::Shared) => shared(),
            Some(TenantSecret::NotServed) => ForNamespace::NotServed,
            Some(TenantSecret::Failed { failure, withdraw }) => ForNamespace::Failed {
                failure,
                withdraw: *withdraw,
            },
        }
    }

    /// The secret to write into `ns`, if any.
    pub fn secret_for(&self, ns: &str) -> Option<&DesiredSecret> {
        match self.for_namespace(ns) {
            ForNamespace::Write(d) => Some(d),
            _ => None,
        }
    }

    /// Some namespace has a secret to write.
    pub fn serving(&self) -> bool {
        self.shared.is_some()
            || self
                .tenants
                .iter()
                .flat_map(|t| t.values())
                .any(|t| matches!(t, TenantSecret::Write(_)))
    }
}
