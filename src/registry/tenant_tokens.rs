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
use crate::error::Error;
use crate::registry::regions::{self, RegionToken};
use crate::registry::tenants;
use crate::registry::token::{TokenStep, jitter};
use crate::runtime::metrics::Metrics;
use aws_config::SdkConfig;
use aws_types::region::Region;
use jiff::{SignedDuration, Timestamp};
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

    /// The tokens of `role_arn` in `region_names` for `namespaces`, assumed from
    /// `registry_identity` (see [`tenants::identity`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn step(
        &self,
        registry: &str,
        registry_identity: &Identity,
        role_arn: &str,
        region_names: &[String],
        namespaces: &[&str],
        cluster_id: &str,
        refresh_before: SignedDuration,
    ) -> RoleStep {
        // The role as reached from the registry's credentials, whatever namespace;
        // per registry, so that its namespaces alone are remembered.
        let key = format!(
            "{registry}|{}",
            tenants::identity(registry_identity, role_arn, cluster_id, "-").cache_key()
        );
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
                    let identity = tenants::identity(registry_identity, role_arn, cluster_id, ns);
                    (ns, identity.sdk_config(&self.base).await)
                }
            }))
            .await;
        let mut credentials = None;
        for (ns, result) in assumed {
            self.metrics.aws_call(
                "AssumeRole",
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
            let identity = regions::identity(
                &tenants::identity(registry_identity, role_arn, cluster_id, ns),
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
