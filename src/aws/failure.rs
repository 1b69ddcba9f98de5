//! One mapping from AWS SDK failures to the library's [`Error`]: by error code and
//! HTTP status, for ECR calls and for the credential chain (STS) alike.

use crate::error::Error;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;

/// What kind of failure an AWS call had.
#[derive(Debug, PartialEq)]
pub enum AwsFailure {
    Throttled,
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
            SdkError::DispatchFailure(_)
            | SdkError::TimeoutError(_)
            | SdkError::ResponseError(_) => Self::Network(DisplayErrorContext(err).to_string()),
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
        AwsFailure::Network(detail) => Error::Network { operation, detail },
        AwsFailure::Denied(detail) => Error::EcrAccessDenied { operation, detail },
        AwsFailure::Other(detail) => Error::Aws { operation, detail },
    }
}

/// The error for credentials that could not be resolved; `role` names the role
/// being assumed (and whether an external ID was given), None for the first link
/// of the chain (static keys or the operator's own identity).
pub fn credentials_error(e: &CredentialsError, role: Option<(&str, bool)>) -> Error {
    let failure = match e {
        CredentialsError::ProviderError(_) | CredentialsError::Unhandled(_) => {
            match std::error::Error::source(e)
                .and_then(|s| s.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>())
            {
                Some(sdk) => AwsFailure::of(sdk),
                None => AwsFailure::Other(DisplayErrorContext(e).to_string()),
            }
        }
        CredentialsError::ProviderTimedOut(_) => AwsFailure::Network(e.to_string()),
        _ => AwsFailure::Other(DisplayErrorContext(e).to_string()),
    };
    match (role, failure) {
        (_, AwsFailure::Throttled) => Error::Throttled {
            operation: "AssumeRole",
        },
        (_, AwsFailure::Network(detail)) => Error::Network {
            operation: "AssumeRole",
            detail,
        },
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
