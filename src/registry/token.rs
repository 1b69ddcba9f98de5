//! Tokens shared by every EcrRegistry with the same identity and region: one
//! GetAuthorizationToken per (identity, region) per refresh, never per namespace;
//! and when each registry refreshes (ahead of expiry, with a little jitter).

use crate::aws::auth_token::{AuthToken, parse_refresh_before, refresh_at};
use crate::aws::identity::Identity;
use crate::aws::rate_limit::TokenRate;
use crate::error::{Error, Result};
use crate::runtime::metrics::Metrics;
use aws_config::SdkConfig;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

type Slot = Arc<tokio::sync::Mutex<Option<AuthToken>>>;

pub struct TokenCache {
    base: SdkConfig,
    metrics: Arc<Metrics>,
    rate: Arc<TokenRate>,
    slots: Mutex<HashMap<String, Slot>>,
    /// Identities already warned about an implausible token expiry.
    warned_expiry: Mutex<HashSet<String>>,
}

/// What the token step of one reconcile found.
#[derive(Default)]
pub struct TokenStep {
    /// The token to serve: the fresh one, or after a failed refresh the last one.
    pub token: Option<AuthToken>,
    /// Why no fresh token could be had, or why the spec is unusable.
    pub error: Option<Error>,
    /// When this registry refreshes next (only after a successful fetch).
    pub next_refresh: Option<Timestamp>,
    /// `success` when this pass fetched a token, the failure reason when it failed.
    pub refresh_result: Option<&'static str>,
}

/// A token and whether this call fetched it.
pub struct CachedToken {
    pub token: AuthToken,
    pub fetched_now: bool,
}

impl TokenCache {
    pub fn new(base: SdkConfig, metrics: Arc<Metrics>, rate: Arc<TokenRate>) -> Self {
        Self {
            base,
            metrics,
            rate,
            slots: Mutex::default(),
            warned_expiry: Mutex::default(),
        }
    }

    /// The token step for the EcrRegistry `registry` with `refresh_before` (the
    /// spec's text) and its `identity`.
    pub async fn step(
        &self,
        registry: &str,
        refresh_before: &str,
        identity: Result<Identity>,
    ) -> TokenStep {
        let rb = match parse_refresh_before(refresh_before) {
            Ok(rb) => rb,
            Err(e) => return failed(Error::InvalidSpec(e)),
        };
        let identity = match identity {
            Ok(i) => i,
            Err(e) => return failed(e),
        };
        match self.get(&identity, rb).await {
            Ok(t) => {
                if t.fetched_now {
                    tracing::info!(region = identity.region, public = identity.public, expires_at = %t.token.expires_at, "token fetched");
                }
                if t.token.expiry_adjusted
                    && self
                        .warned_expiry
                        .lock()
                        .expect("token cache lock")
                        .insert(identity.cache_key())
                {
                    tracing::warn!(
                        "AWS reported an expiry in the past or more than 12h away (clock skew?); treating the token as valid for 12h from now"
                    );
                }
                let at = refresh_at(t.token.fetched_at, t.token.expires_at, rb);
                TokenStep {
                    next_refresh: Some(at + jitter(registry, t.token.fetched_at, at)),
                    refresh_result: t.fetched_now.then_some("success"),
                    token: Some(t.token),
                    error: None,
                }
            }
            Err(e) => TokenStep {
                token: self.last(&identity).await,
                refresh_result: Some(e.reason()),
                error: Some(e),
                next_refresh: None,
            },
        }
    }

    /// The cached token for `identity`, fetched first when it is due for a refresh
    /// by `refresh_before`. Concurrent callers for one identity wait for a single fetch.
    pub async fn get(
        &self,
        identity: &Identity,
        refresh_before: SignedDuration,
    ) -> Result<CachedToken> {
        let slot = self
            .slots
            .lock()
            .expect("token cache lock")
            .entry(identity.cache_key())
            .or_default()
            .clone();
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref()
            && Timestamp::now() < refresh_at(token.fetched_at, token.expires_at, refresh_before)
        {
            return Ok(CachedToken {
                token: token.clone(),
                fetched_now: false,
            });
        }
        let fetched = async {
            let config = identity.sdk_config(&self.base).await?;
            self.rate.wait(&identity.rate_key()).await;
            identity.fetch_token_with(&config).await
        };
        let token = match fetched.await {
            Ok(t) => t,
            Err(e) => {
                if let Some(op) = e.aws_operation() {
                    self.metrics.aws_call(op, e.reason());
                }
                return Err(e);
            }
        };
        let roles = identity
            .assume_role
            .as_ref()
            .map_or(0, |r| 1 + usize::from(r.via.is_some()));
        for _ in 0..roles {
            self.metrics.aws_call("AssumeRole", "success");
        }
        self.metrics.aws_call("GetAuthorizationToken", "success");
        *cached = Some(token.clone());
        Ok(CachedToken {
            token,
            fetched_now: true,
        })
    }

    /// Puts `token` in the cache for `identity` where it holds none; returns
    /// whether it did.
    pub async fn seed(&self, identity: &Identity, token: AuthToken) -> bool {
        let slot = self
            .slots
            .lock()
            .expect("token cache lock")
            .entry(identity.cache_key())
            .or_default()
            .clone();
        let mut cached = slot.lock().await;
        if cached.is_some() {
            return false;
        }
        *cached = Some(token);
        true
    }

    /// The last token fetched for `identity`, however old.
    pub async fn last(&self, identity: &Identity) -> Option<AuthToken> {
        let slot = self
            .slots
            .lock()
            .expect("token cache lock")
            .get(&identity.cache_key())
            .cloned()?;
        slot.lock().await.clone()
    }
}

fn failed(error: Error) -> TokenStep {
    TokenStep {
        error: Some(error),
        ..TokenStep::default()
    }
}

/// Spreads the refreshes of registries that share a token over up to a minute (at
/// most a tenth of the wait). Derived from the registry and the token, not random,
/// so an unchanged state always yields the same status; SHA-256, so the same on
/// every build (the time ends up in `status.nextRefreshTime`).
pub fn jitter(registry: &str, fetched_at: Timestamp, refresh_at: Timestamp) -> SignedDuration {
    let window = (refresh_at.duration_since(fetched_at) / 10)
        .min(SignedDuration::from_secs(60))
        .as_millis()
        .max(1);
    let digest = Sha256::new()
        .chain_update(registry.as_bytes())
        .chain_update(fetched_at.as_millisecond().to_be_bytes())
        .finalize();
    let n = u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 has 32 bytes"));
    SignedDuration::from_millis((n % window as u64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_stable_and_within_its_window() {
        let fetched = Timestamp::from_second(1_700_000_000).unwrap();
        let at = fetched + SignedDuration::from_hours(6);
        // Pinned: a change of hash would move every registry's refresh time.
        assert_eq!(jitter("prod", fetched, at), jitter("prod", fetched, at));
        assert_eq!(jitter("prod", fetched, at).as_millis(), PINNED_PROD_MS);
        for name in ["a", "b", "c", "prod", "staging"] {
            let j = jitter(name, fetched, at);
            assert!(j >= SignedDuration::ZERO && j < SignedDuration::from_secs(60));
        }
        // A short wait gets at most a tenth of it.
        let soon = fetched + SignedDuration::from_secs(10);
        assert!(jitter("prod", fetched, soon) < SignedDuration::from_secs(1));
    }

    const PINNED_PROD_MS: i128 = 22726;
}
