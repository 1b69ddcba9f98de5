//! Tokens shared by every EcrRegistry with the same identity and region: one
//! GetAuthorizationToken per (identity, region) per refresh, never per namespace.

use crate::aws::auth_token::{AuthToken, refresh_at};
use crate::aws::identity::Identity;
use crate::error::Result;
use crate::runtime::metrics::Metrics;
use aws_config::SdkConfig;
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Slot = Arc<tokio::sync::Mutex<Option<AuthToken>>>;

pub struct TokenCache {
    base: SdkConfig,
    metrics: Arc<Metrics>,
    slots: Mutex<HashMap<String, Slot>>,
}

/// A token and whether this call fetched it.
pub struct CachedToken {
    pub token: AuthToken,
    pub fetched_now: bool,
}

impl TokenCache {
    pub fn new(base: SdkConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            base,
            metrics,
            slots: Mutex::default(),
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
        let token = match identity.fetch_token(&self.base).await {
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
