//! sts:AssumeRoleWithWebIdentity with a ServiceAccount token the caller got from
//! the API server (spec.auth.webIdentity): the role's trust policy, not the
//! operator's identity, decides. The call is unsigned: no credentials of the
//! operator's take part.

use crate::aws::failure::AwsFailure;
use crate::aws::identity::Identity;
use crate::error::{Error, Result};
use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_types::region::Region;

const OPERATION: &str = "AssumeRoleWithWebIdentity";

/// Exchanges `token` for the credentials of `role_arn`; returns an SDK config
/// with them for `identity`'s region (FIPS when it asks for it).
pub async fn assume(
    base: &SdkConfig,
    identity: &Identity,
    role_arn: &str,
    session_name: &str,
    token: &str,
) -> Result<SdkConfig> {
    let mut config = base
        .to_builder()
        .region(Region::new(identity.region.clone()));
    if identity.fips {
        config = config.use_fips(true);
    }
    let config = config.build();
    let sts = aws_sdk_sts::Client::new(&config);
    let out = sts
        .assume_role_with_web_identity()
        .role_arn(role_arn)
        .role_session_name(session_name)
        .web_identity_token(token)
        .send()
        .await
        .map_err(|e| match AwsFailure::of(&e) {
            AwsFailure::Throttled => Error::Throttled { operation: OPERATION },
            AwsFailure::Timeout(detail) => Error::Timeout { operation: OPERATION, detail },
            AwsFailure::Network(detail) => Error::Network { operation: OPERATION, detail },
            AwsFailure::Unavailable(detail) => Error::Aws { operation: OPERATION, detail },
            AwsFailure::Denied(detail) | AwsFailure::Other(detail) => Error::AssumeRoleDenied {
                role_arn: role_arn.to_string(),
                detail,
                hint: " with web identity: the cluster's OIDC provider as Federated principal, sub system:serviceaccount:<namespace>:<name> and aud sts.amazonaws.com",
            },
        })?;
    let c = out.credentials().ok_or_else(|| Error::Aws {
        operation: OPERATION,
        detail: "the response holds no credentials".into(),
    })?;
    let credentials = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        std::time::SystemTime::try_from(*c.expiration()).ok(),
        "ecr-operator-web-identity",
    );
    Ok(config
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build())
}
