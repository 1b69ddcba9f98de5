//! AWS credentials for an EcrRegistry (or a CLI invocation) and the ECR token they
//! fetch. One code path serves the CRD's `spec.auth` and the `token` command.

use crate::aws::auth_token::{AuthToken, Password, decode_authorization_token, effective_expiry};
use crate::aws::base_config::CREDENTIALS_TIMEOUT;
use crate::aws::failure::{credentials_error, ecr_error};
use crate::aws::registry_hosts::account_of_proxy_endpoint;
use crate::crd::ecr_registry::{AssumeRole, Endpoint};
use crate::error::{Error, Result};
use aws_config::SdkConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_types::region::Region;
use k8s_openapi::api::core::v1::Secret;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

pub const DEFAULT_SESSION_NAME: &str = "ecr-operator";
/// The only region of the ECR Public API.
pub const PUBLIC_REGION: &str = "us-east-1";

/// Static keys, from the credentials Secret or the environment of a CLI call.
#[derive(Clone)]
pub struct StaticKeys {
    pub access_key_id: String,
    pub secret_access_key: Password,
    pub session_token: Option<Password>,
}

impl std::fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKeys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl StaticKeys {
    /// Reads the keys of a credentials Secret's data; names the missing key.
    pub fn from_secret_data(
        namespace: &str,
        name: &str,
        data: &std::collections::BTreeMap<String, k8s_openapi::ByteString>,
    ) -> Result<Self> {
        let get = |key: &'static str| {
            data.get(key)
                .map(|v| String::from_utf8_lossy(&v.0).trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let require = |key: &'static str| {
            get(key).ok_or_else(|| Error::CredentialsSecretIncomplete {
                namespace: namespace.into(),
                name: name.into(),
                key,
            })
        };
        Ok(Self {
            access_key_id: require("AWS_ACCESS_KEY_ID")?,
            secret_access_key: Password::new(require("AWS_SECRET_ACCESS_KEY")?),
            session_token: get("AWS_SESSION_TOKEN").map(Password::new),
        })
    }
}

/// Who fetches the token, and where.
#[derive(Clone, Debug)]
pub struct Identity {
    pub region: String,
    /// The token is ECR Public's (public.ecr.aws, from us-east-1), not the private
    /// registries' of `region`.
    pub public: bool,
    /// STS and ECR are called at their FIPS endpoints.
    pub fips: bool,
    /// None: the operator's own identity (default provider chain).
    pub static_keys: Option<StaticKeys>,
    pub assume_role: Option<AssumeRole>,
}

impl Identity {
    /// What ECR's request quota counts against: the account whose credentials
    /// call (the assumed role's; else the static keys or the operator's own) and
    /// the region.
    pub fn rate_key(&self) -> String {
        let caller = match (&self.assume_role, &self.static_keys) {
            (Some(r), _) => r.role_arn.split(':').nth(4).unwrap_or_default(),
            (None, Some(k)) => k.access_key_id.as_str(),
            (None, None) => "own",
        };
        let region = if self.public { "public" } else { &self.region };
        format!("{caller}|{region}")
    }

    /// Registries with equal keys share one token. Secrets enter only as a hash.
    pub fn cache_key(&self) -> String {
        let mut h = DefaultHasher::new();
        if let Some(k) = &self.static_keys {
            k.secret_access_key.expose().hash(&mut h);
            k.session_token.as_ref().map(Password::expose).hash(&mut h);
        }
        format!(
            "{}|{}|{}|{}|{:?}|{:x}",
            self.region,
            if self.public { "public" } else { "private" },
            if self.fips { "fips" } else { "standard" },
            self.static_keys
                .as_ref()
                .map_or("default-chain", |k| k.access_key_id.as_str()),
            self.assume_role,
            h.finish()
        )
    }

    /// The identity of an EcrRegistry: static keys are read from the credentials
    /// Secret in the operator's own namespace, and only there.
    pub async fn for_registry(
        client: &kube::Client,
        operator_namespace: &str,
        registry: &crate::crd::ecr_registry::EcrRegistry,
    ) -> Result<Self> {
        let secret = match registry
            .spec
            .auth
            .as_ref()
            .and_then(|a| a.secret_ref.as_ref())
        {
            Some(r) => {
                kube::Api::<Secret>::namespaced(client.clone(), operator_namespace)
                    .get_opt(&r.name)
                    .await?
            }
            None => None,
        };
        Self::for_registry_from(registry, operator_namespace, secret.as_ref())
    }

    /// The same, with the credentials Secret already at hand (e.g. from a cache);
    /// `credentials` is the Secret that `spec.auth.secretRef` names, if it exists.
    /// Its region is the registry's first (see [`Identity::in_region`]); FIPS when
    /// spec.endpoints lists Fips.
    pub fn for_registry_from(
        registry: &crate::crd::ecr_registry::EcrRegistry,
        operator_namespace: &str,
        credentials: Option<&Secret>,
    ) -> Result<Self> {
        let auth = registry.spec.auth.clone().unwrap_or_default();
        let static_keys = match &auth.secret_ref {
            None => None,
            Some(r) => {
                let secret = credentials.ok_or_else(|| Error::CredentialsSecretMissing {
                    namespace: operator_namespace.to_string(),
                    name: r.name.clone(),
                })?;
                let data = secret.data.clone().unwrap_or_default();
                Some(StaticKeys::from_secret_data(
                    operator_namespace,
                    &r.name,
                    &data,
                )?)
            }
        };
        Ok(Self {
            region: registry
                .spec
                .regions()
                .first()
                .map_or(PUBLIC_REGION, |r| r)
                .to_string(),
            public: false,
            fips: registry.spec.endpoints.contains(&Endpoint::Fips),
            static_keys,
            assume_role: auth.assume_role,
        })
    }

    /// The same credentials for the private registries of `region`.
    pub fn in_region(&self, region: &str) -> Self {
        Self {
            region: region.to_string(),
            public: false,
            ..self.clone()
        }
    }

    /// The same credentials for ECR Public, whose API is in us-east-1 only and
    /// has no FIPS endpoint.
    pub fn for_public(&self) -> Self {
        Self {
            region: PUBLIC_REGION.to_string(),
            public: true,
            fips: false,
            ..self.clone()
        }
    }

    /// Resolves the credentials (assuming the roles of the chain in order) into an
    /// SDK config for the identity's region, for any AWS client.
    pub async fn sdk_config(&self, base: &SdkConfig) -> Result<SdkConfig> {
        let region = Region::new(self.region.clone());
        let mut provider = match &self.static_keys {
            Some(k) => SharedCredentialsProvider::new(Credentials::new(
                k.access_key_id.clone(),
                k.secret_access_key.expose().to_string(),
                k.session_token.as_ref().map(|t| t.expose().to_string()),
                None,
                "ecr-operator-static",
            )),
            None => base
                .credentials_provider()
                .ok_or_else(|| Error::NoCredentials {
                    detail: "no credentials provider configured".into(),
                })?,
        };
        let mut credentials = resolve(&provider, None).await?;
        if let Some(role) = &self.assume_role {
            let config = |p: &SharedCredentialsProvider| {
                let mut b = base
                    .to_builder()
                    .region(region.clone())
                    .credentials_provider(p.clone());
                if self.fips {
                    b = b.use_fips(true);
                }
                b.build()
            };
            let steps = role
                .via
                .iter()
                .map(|v| (&v.role_arn, &v.external_id, &v.session_name, None))
                .chain(std::iter::once((
                    &role.role_arn,
                    &role.external_id,
                    &role.session_name,
                    role.duration_seconds,
                )));
            for (arn, external_id, session, duration) in steps {
                let mut b = AssumeRoleProvider::builder(arn.clone())
                    .session_name(
                        session
                            .clone()
                            .unwrap_or_else(|| DEFAULT_SESSION_NAME.into()),
                    )
                    .configure(&config(&provider));
                if let Some(id) = external_id {
                    b = b.external_id(id.clone());
                }
                if let Some(secs) = duration {
                    b = b.session_length(Duration::from_secs(secs.max(0) as u64));
                }
                let assumed = b.build_from_provider(provider.clone()).await;
                credentials = resolve(
                    &SharedCredentialsProvider::new(assumed),
                    Some((arn.as_str(), external_id.is_some())),
                )
                .await?;
                provider = SharedCredentialsProvider::new(credentials.clone());
            }
        }
        let mut b = base
            .to_builder()
            .region(region)
            .credentials_provider(SharedCredentialsProvider::new(credentials));
        if self.fips {
            b = b.use_fips(true);
        }
        Ok(b.build())
    }

    /// Resolves the credentials and fetches one authorization token (ECR
    /// Public's when `public`).
    pub async fn fetch_token(&self, base: &SdkConfig) -> Result<AuthToken> {
        self.fetch_token_with(&self.sdk_config(base).await?).await
    }

    /// Fetches one authorization token with credentials already resolved by
    /// [`Identity::sdk_config`] (ECR Public's when `public`).
    pub async fn fetch_token_with(&self, config: &SdkConfig) -> Result<AuthToken> {
        if self.public {
            return self.fetch_public_token(config).await;
        }
        const OP: &str = "GetAuthorizationToken";
        let ecr = aws_sdk_ecr::Client::new(config);
        let out = ecr
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| ecr_error(OP, &e))?;
        let data = out.authorization_data().first().ok_or(Error::Aws {
            operation: OP,
            detail: "the response holds no authorization data".into(),
        })?;
        auth_token(
            data.authorization_token(),
            data.expires_at(),
            data.proxy_endpoint().and_then(account_of_proxy_endpoint),
        )
    }

    /// ecr-public:GetAuthorizationToken. Its authorization data is one object, not
    /// a list, and names no proxy endpoint: the host is always public.ecr.aws.
    async fn fetch_public_token(&self, config: &SdkConfig) -> Result<AuthToken> {
        let ecr = aws_sdk_ecrpublic::Client::from_conf(public_config(config).build());
        let out = ecr.get_authorization_token().send().await.map_err(|e| {
            match ecr_error("GetAuthorizationToken", &e) {
                Error::EcrAccessDenied { detail, .. } => Error::EcrPublicAccessDenied { detail },
                other => other,
            }
        })?;
        let data = out.authorization_data().ok_or(Error::Aws {
            operation: "GetAuthorizationToken",
            detail: "the ECR Public response holds no authorization data".into(),
        })?;
        auth_token(data.authorization_token(), data.expires_at(), None)
    }
}

/// ECR Public's client config: never FIPS, whatever AWS_USE_FIPS_ENDPOINT says,
/// as ECR Public has no FIPS endpoint (the SDK would name a host that does not
/// exist). STS, for the roles, keeps the setting.
fn public_config(sdk: &SdkConfig) -> aws_sdk_ecrpublic::config::Builder {
    aws_sdk_ecrpublic::config::Builder::from(sdk).use_fips(false)
}

/// The token of a GetAuthorizationToken answer (ECR's or ECR Public's).
fn auth_token(
    token: Option<&str>,
    expires_at: Option<&aws_smithy_types::DateTime>,
    account: Option<String>,
) -> Result<AuthToken> {
    let (username, password) =
        decode_authorization_token(token.unwrap_or_default()).map_err(|e| Error::Aws {
            operation: "GetAuthorizationToken",
            detail: e.to_string(),
        })?;
    let fetched_at = jiff::Timestamp::now();
    let reported = expires_at.and_then(|t| jiff::Timestamp::from_second(t.secs()).ok());
    let (expires_at, expiry_adjusted) = effective_expiry(reported, fetched_at);
    Ok(AuthToken {
        username,
        password,
        account,
        fetched_at,
        expires_at,
        expiry_adjusted,
    })
}

/// Resolves credentials; `role` names the role being assumed, for the error.
async fn resolve(
    provider: &SharedCredentialsProvider,
    role: Option<(&str, bool)>,
) -> Result<Credentials> {
    // Bounded: the default chain's providers have no overall deadline of their own.
    match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
        Ok(resolved) => resolved.map_err(|e| credentials_error(&e, role)),
        Err(_) => Err(Error::Timeout {
            operation: if role.is_some() {
                "AssumeRole"
            } else {
                "credentials"
            },
            detail: format!("no credentials after {CREDENTIALS_TIMEOUT:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::box_error::BoxError;
    use aws_smithy_runtime_api::client::interceptors::Intercept;
    use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_types::config_bag::ConfigBag;
    use std::sync::{Arc, Mutex};

    /// Records the host of each request and stops it before it is sent.
    #[derive(Debug, Clone, Default)]
    struct Hosts(Arc<Mutex<Vec<String>>>);

    impl Intercept for Hosts {
        fn name(&self) -> &'static str {
            "Hosts"
        }
        fn read_before_transmit(
            &self,
            context: &BeforeTransmitInterceptorContextRef<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let uri = context.request().uri().to_string();
            self.0.lock().unwrap().push(uri);
            Err("stopped by the test".into())
        }
    }

    fn identity(fips: bool) -> Identity {
        Identity {
            region: "us-east-1".into(),
            public: false,
            fips,
            static_keys: Some(StaticKeys {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: Password::new("secret"),
                session_token: None,
            }),
            assume_role: None,
        }
    }

    /// The host each client built from the identity's config sends to.
    async fn hosts(identity: &Identity) -> Vec<String> {
        // No AWS_ENDPOINT_URL or AWS_USE_FIPS_ENDPOINT from the environment.
        let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .empty_test_environment()
            .load()
            .await;
        hosts_from(identity, &base).await
    }

    async fn hosts_from(identity: &Identity, base: &SdkConfig) -> Vec<String> {
        let sdk = identity.sdk_config(base).await.unwrap();
        let seen = Hosts::default();
        let ecr = aws_sdk_ecr::config::Builder::from(&sdk)
            .interceptor(seen.clone())
            .build();
        let _ = aws_sdk_ecr::Client::from_conf(ecr)
            .get_authorization_token()
            .send()
            .await;
        let sts = aws_sdk_sts::config::Builder::from(&sdk)
            .interceptor(seen.clone())
            .build();
        let _ = aws_sdk_sts::Client::from_conf(sts)
            .get_caller_identity()
            .send()
            .await;
        let public = public_config(&identity.for_public().sdk_config(base).await.unwrap())
            .interceptor(seen.clone())
            .build();
        let _ = aws_sdk_ecrpublic::Client::from_conf(public)
            .get_authorization_token()
            .send()
            .await;
        seen.0.lock().unwrap().clone()
    }

    /// A registry whose endpoints list Fips calls ECR and STS at their FIPS
    /// endpoints, whatever the process-wide AWS_USE_FIPS_ENDPOINT says; ECR Public
    /// (no FIPS endpoint) stays at its own.
    #[tokio::test]
    async fn fips_registries_call_fips_endpoints() {
        assert_eq!(
            hosts(&identity(true)).await,
            [
                "https://api.ecr-fips.us-east-1.amazonaws.com/",
                "https://sts-fips.us-east-1.amazonaws.com/",
                "https://api.ecr-public.us-east-1.amazonaws.com/",
            ]
        );
        assert_eq!(
            hosts(&identity(false)).await,
            [
                "https://api.ecr.us-east-1.amazonaws.com/",
                "https://sts.us-east-1.amazonaws.com/",
                "https://api.ecr-public.us-east-1.amazonaws.com/",
            ]
        );
    }

    /// With FIPS for the whole process (AWS_USE_FIPS_ENDPOINT), ECR Public is
    /// still called at its one endpoint.
    #[tokio::test]
    async fn process_wide_fips_leaves_ecr_public_alone() {
        let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .empty_test_environment()
            .use_fips(true)
            .load()
            .await;
        assert_eq!(
            hosts_from(&identity(false), &base).await,
            [
                "https://api.ecr-fips.us-east-1.amazonaws.com/",
                "https://sts-fips.us-east-1.amazonaws.com/",
                "https://api.ecr-public.us-east-1.amazonaws.com/",
            ]
        );
    }

    #[test]
    fn fips_follows_the_registry_s_endpoints() {
        let mut r = crate::test_support::ecr_registry("reg");
        assert!(!Identity::for_registry_from(&r, "ns", None).unwrap().fips);
        r.spec.endpoints = vec![Endpoint::Standard, Endpoint::Fips];
        let i = Identity::for_registry_from(&r, "ns", None).unwrap();
        assert!(i.fips && !i.for_public().fips && i.in_region("us-west-2").fips);
        assert_ne!(i.cache_key(), identity(false).cache_key());
    }
}
