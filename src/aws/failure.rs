//! One mapping from AWS SDK failures to the library's [`Error`]: by error code and
//! HTTP status, for ECR calls and for the credential chain (STS) alike.

use crate::error::Error;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;

/// What kind of failure an AWS call had.
#[derive(Debug, PartialEq)]
pub enum AwsFailure {
    Throttled,
    Timeout(String),
    /// A 5xx: it fixes itself.
    Unavailable(String),
    Network(String),
    Denied(String),
    Other(String),
}

impl AwsFailure {
    /// Classifies by error code and HTTP status (IAM denials from some endpoints come
    /// back as a bare 403 without a code).
    pub fn of<E: ProvideErrorMetadata + std::error::Error + 'static>(
        err: &SdkError<E, HttpResponse>,
    ) -> Self {
        match err {
            SdkError::TimeoutError(_) => Self::Timeout(DisplayErrorContext(err).to_string()),
            SdkError::DispatchFailure(d) if d.is_timeout() => {
                Self::Timeout(DisplayErrorContext(err).to_string())
            }
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
                Self::Network(DisplayErrorContext(err).to_string())
            }
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or_default();
                let status = se.raw().status().as_u16();
                let detail = match se.err().message() {
                    Some(m) => format!("{code}: {m}"),
                    None => format!("{code} (HTTP {status})"),
                };
                let detail = detail.trim_start_matches(": ").trim().to_string();
                if code.contains("Throttl") || code == "TooManyRequestsException" || status == 429 {
                    Self::Throttled
                } else if status >= 500 {
                    Self::Unavailable(detail)
                } else if code.starts_with("AccessDenied")
                    || code == "UnrecognizedClientException"
                    || code == "InvalidClientTokenId"
                    || status == 403
                {
                    Self::Denied(detail)
                } else {
                    Self::Other(detail)
                }
            }
            _ => Self::Other(DisplayErrorContext(err).to_string()),
        }
    }
}

/// The error for a failed ECR call.
pub fn ecr_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &'static str,
    err: &SdkError<E, HttpResponse>,
) -> Error {
    match AwsFailure::of(err) {
        AwsFailure::Throttled => Error::Throttled { operation },
        AwsFailure::Timeout(detail) => Error::Timeout { operation, detail },
        AwsFailure::Network(detail) => Error::Network { operation, detail },
        AwsFailure::Denied(detail) => Error::EcrAccessDenied { operation, detail },
        AwsFailure::Unavailable(detail) | AwsFailure::Other(detail) => {
            Error::Aws { operation, detail }
        }
    }
}

/// The error for credentials that could not be resolved; `role` names the role
/// being assumed (and whether an external ID was given), None for the first link
/// of the chain (static keys or the operator's own identity). Only "no credentials
/// configured" and a denial are lasting; throttling, timeouts, 5xx and unknown
/// provider failures of the operator's own identity (web identity, Pod Identity,
/// instance metadata) are retried with backoff.
pub fn credentials_error(e: &CredentialsError, role: Option<(&str, bool)>) -> Error {
    let operation = if role.is_some() {
        "AssumeRole"
    } else {
        "credentials"
    };
    let failure = match e {
        CredentialsError::CredentialsNotLoaded(_) => {
            return Error::NoCredentials {
                detail: DisplayErrorContext(e).to_string(),
            };
        }
        CredentialsError::ProviderTimedOut(_) => AwsFailure::Timeout(e.to_string()),
        _ => sts_failure(e).unwrap_or_else(|| {
            let detail = DisplayErrorContext(e).to_string();
            match role {
                Some(_) => AwsFailure::Other(detail),
                None => AwsFailure::Unavailable(detail),
            }
        }),
    };
    match (role, failure) {
        (_, AwsFailure::Throttled) => Error::Throttled { operation },
        (_, AwsFailure::Timeout(detail)) => Error::Timeout { operation, detail },
        (_, AwsFailure::Network(detail)) => Error::Network { operation, detail },
        (_, AwsFailure::Unavailable(detail)) => Error::Aws { operation, detail },
        (Some((arn, has_external_id)), AwsFailure::Denied(detail) | AwsFailure::Other(detail)) => {
            Error::AssumeRoleDenied {
                role_arn: arn.to_string(),
                detail,
                hint: if has_external_id {
                    " and that its sts:ExternalId condition equals the externalId given"
                } else {
                    " (add externalId if the trust policy requires sts:ExternalId)"
                },
            }
        }
        (None, AwsFailure::Denied(detail) | AwsFailure::Other(detail)) => {
            Error::NoCredentials { detail }
        }
    }
}

/// The STS call behind a provider's failure, if it was one.
fn sts_failure(e: &CredentialsError) -> Option<AwsFailure> {
    let source = std::error::Error::source(e)?;
    if let Some(sdk) = source.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>() {
        return Some(AwsFailure::of(sdk));
    }
    source
        .downcast_ref::<SdkError<AssumeRoleWithWebIdentityError, HttpResponse>>()
        .map(AwsFailure::of)
}
