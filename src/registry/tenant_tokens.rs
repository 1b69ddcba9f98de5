//! Tokens of per-namespace roles (spec.auth.namespaceRole): one
//! GetAuthorizationToken per role and region, whatever the number of namespaces
//! that share the role, yet every namespace proves its own right to the role by
//! assuming it with its own external ID.
//!
//! A namespace's assumption is checked again whenever its role's token is
//! refreshed, so a trust policy that stops naming it takes effect at the next
//! refresh at the latest. A namespace refused is tried again after
//! [`RETRY_REFUSED`], or at once when its annotation names another role.

use crate::aws::auth_token::{AuthToken, refresh_at};
use crate::aws::identity::Identity;
use crate::aws::rate_limit::TokenRate;
use crate::aws::web_identity;
use crate::error::Error;
use crate::registry::regions::{self, RegionToken};
use crate::registry::tenants;
use crate::registry::token::{TokenStep, jitter};
use crate::runtime::metrics::Metrics;
use aws_config::SdkConfig;
use aws_types::region::Region;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// How long a namespace refused its role waits before it is tried again.
pub const RETRY_REFUSED: SignedDuration = SignedDuration::from_mins(2);
/// Namespaces assuming their roles at once (STS calls in flight per role).
const ASSUME_CONCURRENCY: usize = 8;

/// Why a namespace may not use its role (no token or secret text in it).
#[derive(Clone, Debug)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
    /// The cause may pass by itself (AWS unreachable, throttled): the secret
    /// already there is kept meanwhile.
    pub transient: bool,
    at: Timestamp,
}

/// One role's tokens and which namespaces proved their right to them.
#[derive(Default)]
struct RoleState {
    /// By region name (regions::PUBLIC for ECR Public).
    tokens: HashMap<String, AuthToken>,
    /// Namespaces that assumed the role since its tokens were last refreshed.
    admitted: HashSet<String>,
    refused: HashMap<String, Refusal>,
}

/// How a namespace proves its right to its role.
pub enum Assume<'a> {
    /// sts:AssumeRole from the registry's credentials with the external ID
    /// "<cluster-id>/<namespace>" (spec.auth.namespaceRole).
    ExternalId {
        registry: &'a Identity,
        cluster_id: &'a str,
    },
    /// sts:AssumeRoleWithWebIdentity with a fresh token of the namespace's
    /// ServiceAccount (spec.auth.webIdentity).
    WebIdentity {
        client: &'a kube::Client,
        registry: &'a Identity,
        service_account: &'a str,
    },
}

impl Assume<'_> {
    fn registry(&self) -> &Identity {
        match self {
            Self::ExternalId { registry, .. } | Self::WebIdentity { registry, .. } => registry,
        }
    }

    /// The STS operation, for metrics.
    fn operation(&self) -> &'static str {
        match self {
            Self::ExternalId { .. } => "AssumeRole",
            Self::WebIdentity { .. } => "AssumeRoleWithWebIdentity",
        }
    }

    /// The role as reached for any of its namespaces: what one token serves.
    fn key(&self, role_arn: &str) -> String {
        match self {
            Self::ExternalId {
                registry,
                cluster_id,
            } => tenants::identity(registry, role_arn, cluster_id, "-").cache_key(),
            Self::WebIdentity {
                registry,
                service_account,
                ..
            } => format!(
                "web|{service_account}|{}",
                tenants::identity(registry, role_arn, "", "-").cache_key()
            ),
        }
    }

    /// Assumes the role for `namespace`: its credentials, in the registry's first
    /// region.
    async fn role(
        &self,
        base: &SdkConfig,
        role_arn: &str,
        namespace: &str,
    ) -> Result<SdkConfig, Error> {
        match self {
            Self::ExternalId {
                registry,
                cluster_id,
            } => {
                tenants::identity(registry, role_arn, cluster_id, namespace)
                    .sdk_config(base)
                    .await
            }
            Self::WebIdentity {
                client,
                registry,
                service_account,
            } => {
                let token = service_account_token(client, namespace, service_account).await?;
                let session = tenants::session_name(namespace);
                web_identity::assume(base, registry, role_arn, &session, &token).await
            }
        }
    }
}

/// A token of the ServiceAccount for the audience sts.amazonaws.com, valid for
/// the API's minimum of ten minutes: used once, at once.
async fn service_account_token(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<String, Error> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![STS_AUDIENCE.to_string()],
            expiration_seconds: Some(600),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    match api
        .create_token_request(name, &PostParams::default(), &request)
        .await
    {
        Ok(t) => t
            .status
            .map(|s| s.token)
            .ok_or_else(|| Error::ServiceAccountTokenRefused {
                namespace: namespace.into(),
                name: name.into(),
                detail: "the API server answered without a token".into(),
            }),
        // Refused (RBAC, the admission fence) or gone: an answer, not a blip.
        Err(kube::Error::Api(s)) if matches!(s.code, 403 | 404 | 422) => {
            Err(Error::ServiceAccountTokenRefused {
                namespace: namespace.into(),
                name: name.into(),
                detail: s.message,
            })
        }
        Err(e) => Err(Error::Kube(e)),
    }
}

/// The audience of the ServiceAccount tokens the operator requests.
pub const STS_AUDIENCE: &str = "sts.amazonaws.com";

/// What a pass gets for one role.
pub struct RoleStep {
    /// Each region's token step, as for the registry's own identity.
    pub tokens: Vec<RegionToken>,
    pub admitted: Vec<String>,
    pub refused: Vec<(String, Refusal)>,
}

pub struct TenantTokens {
    base: SdkConfig,
    metrics: Arc<Metrics>,
    rate: Arc<TokenRate>,
    roles: Mutex<HashMap<String, Arc<tokio::sync::Mutex<RoleState>>>>,
}

impl TenantTokens {
    pub fn new(base: SdkConfig, metrics: Arc<Metrics>, rate: Arc<TokenRate>) -> Self {
        Self {
            base,
            metrics,
            rate,
            roles: Mutex::default(),
        }
    }

    /// Drops what a deleted registry's roles held.
    pub fn forget(&self, registry: &str) {
        let prefix = format!("{registry}|");
        self.roles
            .lock()
            .expect("tenant tokens lock")
            .retain(|key, _| !key.starts_with(&prefix));
    }

    /// The tokens of `role_arn` in `region_names` for `namespaces`, each of which
    /// assumes the role as `how` says.
    pub async fn step(
        &self,
        registry: &str,
        how: &Assume<'_>,
        role_arn: &str,
        region_names: &[String],
        namespaces: &[&str],
        refresh_before: SignedDuration,
    ) -> RoleStep {
        // Per registry, so that its namespaces alone are remembered.
        let key = format!("{registry}|{}", how.key(role_arn));
        let registry_identity = how.registry();
        let slot = self
            .roles
            .lock()
            .expect("tenant tokens lock")
            .entry(key)
            .or_default()
            .clone();
        let mut state = slot.lock().await;
        // Namespaces gone or moved to another role are forgotten.
        let current: HashSet<&str> = namespaces.iter().copied().collect();
        state.admitted.retain(|ns| current.contains(ns.as_str()));
        state.refused.retain(|ns, _| current.contains(ns.as_str()));
        let now = Timestamp::now();
        let due: Vec<&String> = region_names
            .iter()
            .filter(|r| {
                state
                    .tokens
                    .get(*r)
                    .is_none_or(|t| now >= refresh_at(t.fetched_at, t.expires_at, refresh_before))
            })
            .collect();
        if !due.is_empty() {
            state.admitted.clear();
        }
        let to_assume: Vec<&str> = namespaces
            .iter()
            .copied()
            .filter(|ns| !state.admitted.contains(*ns))
            .filter(|ns| {
                state
                    .refused
                    .get(*ns)
                    .is_none_or(|r| now >= r.at + RETRY_REFUSED)
            })
            .collect();
        // join_all bounded by a semaphore: a buffered stream of borrowing items
        // trips the compiler's check that the controller's future is Send.
        let permits = tokio::sync::Semaphore::new(ASSUME_CONCURRENCY);
        let assumed: Vec<(&str, Result<SdkConfig, Error>)> =
            futures::future::join_all(to_assume.into_iter().map(|ns| {
                let permits = &permits;
                async move {
                    let _permit = permits.acquire().await.expect("never closed");
                    (ns, how.role(&self.base, role_arn, ns).await)
                }
            }))
            .await;
        let mut credentials = None;
        for (ns, result) in assumed {
            self.metrics.aws_call(
                how.operation(),
                result.as_ref().err().map_or("success", Error::reason),
            );
            match result {
                Ok(config) => {
                    state.refused.remove(ns);
                    state.admitted.insert(ns.to_string());
                    credentials.get_or_insert((ns, config));
                }
                Err(e) => {
                    tracing::info!(registry, namespace = ns, role = role_arn, reason = e.reason(), error = %e, "namespace may not use its role");
                    state.admitted.remove(ns);
                    let refusal = Refusal {
                        reason: e.reason(),
                        message: format!("role {role_arn}: {e}"),
                        transient: e.is_transient(),
                        at: now,
                    };
                    state.refused.insert(ns.to_string(), refusal);
                }
            }
        }
        let mut errors: HashMap<&String, Error> = HashMap::new();
        for region in due {
            let Some((ns, config)) = &credentials else {
                break;
            };
            // For the region, ECR Public and the rate limit's account (the role's).
            let identity = regions::identity(
                &tenants::identity(registry_identity, role_arn, "", ns),
                region,
            );
            let config = config
                .to_builder()
                .region(Region::new(identity.region.clone()))
                .build();
            self.rate.wait(&identity.rate_key()).await;
            match identity.fetch_token_with(&config).await {
                Ok(token) => {
                    self.metrics.aws_call("GetAuthorizationToken", "success");
                    tracing::info!(registry, role = role_arn, region = %region, expires_at = %token.expires_at, "role token fetched");
                    state.tokens.insert(region.clone(), token);
                }
                Err(e) => {
                    self.metrics.aws_call("GetAuthorizationToken", e.reason());
                    errors.insert(region, e);
                }
            }
        }
        let tokens = region_names
            .iter()
            .map(|region| {
                let token = state.tokens.get(region).cloned();
                let fresh = token
                    .as_ref()
                    .filter(|t| now < refresh_at(t.fetched_at, t.expires_at, refresh_before));
                let step = match (errors.remove(region), fresh) {
                    (Some(e), _) => TokenStep {
                        refresh_result: Some(e.reason()),
                        error: Some(e),
                        token,
                        next_refresh: None,
                    },
                    (None, Some(t)) => {
                        let at = refresh_at(t.fetched_at, t.expires_at, refresh_before);
                        TokenStep {
                            next_refresh: Some(at + jitter(role_arn, t.fetched_at, at)),
                            token: Some(t.clone()),
                            ..Default::default()
                        }
                    }
                    // Due, and no namespace could assume the role to refresh it:
                    // nothing to serve (no namespace is admitted either).
                    (None, None) => TokenStep::default(),
                };
                RegionToken {
                    name: region.clone(),
                    step,
                }
            })
            .collect();
        RoleStep {
            tokens,
            admitted: namespaces
                .iter()
                .filter(|ns| state.admitted.contains(**ns))
                .map(|ns| ns.to_string())
                .collect(),
            refused: namespaces
                .iter()
                .filter_map(|ns| state.refused.get(*ns).map(|r| (ns.to_string(), r.clone())))
                .collect(),
        }
    }
}
