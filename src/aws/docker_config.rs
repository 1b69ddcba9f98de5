//! The `.dockerconfigjson` payload: one `auths` entry per registry host.

use crate::aws::auth_token::AuthToken;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A Docker config file (`~/.docker/config.json` or a `.dockerconfigjson` secret).
/// Only `auths` is modelled; every other setting is kept as it was.
#[derive(Serialize, Deserialize, Default, Clone, PartialEq)]
pub struct DockerConfig {
    #[serde(default)]
    pub auths: BTreeMap<String, DockerAuth>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// Credentials for one registry host.
#[derive(Serialize, Deserialize, Default, Clone, PartialEq)]
pub struct DockerAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

// Never print credentials, not even in debug logs.
impl std::fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerConfig")
            .field("hosts", &self.auths.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl DockerConfig {
    /// The config for `token` on every host in `hosts`.
    pub fn for_token(token: &AuthToken, hosts: &[String]) -> Self {
        let mut config = Self::default();
        config.merge_token(token, hosts);
        config
    }

    /// Sets the entries of `hosts` to `token`, keeping every other host and setting.
    pub fn merge_token(&mut self, token: &AuthToken, hosts: &[String]) {
        let password = token.password.expose();
        let auth = STANDARD.encode(format!("{}:{password}", token.username));
        for host in hosts {
            self.auths.insert(
                host.clone(),
                DockerAuth {
                    username: Some(token.username.clone()),
                    password: Some(password.to_string()),
                    auth: Some(auth.clone()),
                    other: Default::default(),
                },
            );
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a map of strings always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;

    fn token() -> AuthToken {
        test_support::token(jiff::Timestamp::UNIX_EPOCH, jiff::SignedDuration::ZERO)
    }

    #[test]
    fn one_entry_per_host_with_username_password_and_auth() {
        let hosts = vec!["a.example".to_string(), "b.example".to_string()];
        let json: serde_json::Value =
            serde_json::from_str(&DockerConfig::for_token(&token(), &hosts).to_json()).unwrap();
        for host in &hosts {
            assert_eq!(json["auths"][host]["username"], "AWS");
            assert_eq!(json["auths"][host]["password"], "pw");
            assert_eq!(json["auths"][host]["auth"], STANDARD.encode("AWS:pw"));
        }
    }

    #[test]
    fn merging_keeps_other_entries_and_settings() {
        let mut config: DockerConfig = serde_json::from_str(
            r#"{"auths":{"other.io":{"auth":"eA=="},"a.example":{"auth":"old"}},"credsStore":"desktop"}"#,
        )
        .unwrap();
        config.merge_token(&token(), &["a.example".to_string()]);
        let json: serde_json::Value = serde_json::from_str(&config.to_json()).unwrap();
        assert_eq!(json["auths"]["other.io"]["auth"], "eA==");
        assert_eq!(json["auths"]["a.example"]["password"], "pw");
        assert_eq!(json["credsStore"], "desktop");
        assert!(!format!("{config:?}").contains("pw"));
    }
}
