//! The library's error type. Each variant maps to one `reason`, which names the
//! Ready condition's reason, the Event reason and the metric label; each message
//! says what to fix and never contains a credential.

use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "credentials Secret {namespace}/{name} (spec.auth.secretRef) not found: create it in the operator's namespace with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )]
    CredentialsSecretMissing { namespace: String, name: String },

    #[error(
        "credentials Secret {namespace}/{name} (spec.auth.secretRef) has no {key}: add it (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are required, AWS_SESSION_TOKEN optional)"
    )]
    CredentialsSecretIncomplete {
        namespace: String,
        name: String,
        key: &'static str,
    },

    #[error(
        "no AWS credentials found for the operator's own identity: {detail}; set spec.auth, or give the operator IRSA, EKS Pod Identity or environment credentials"
    )]
    NoCredentials { detail: String },

    #[error(
        "cannot assume role {role_arn}: {detail}; check that the role's trust policy allows the calling identity{hint}"
    )]
    AssumeRoleDenied {
        role_arn: String,
        detail: String,
        hint: &'static str,
    },

    #[error(
        "access denied on ecr:GetAuthorizationToken: {detail}; allow ecr:GetAuthorizationToken in the identity's IAM policy"
    )]
    EcrAccessDenied { detail: String },

    #[error("AWS throttled {operation}; retrying with backoff")]
    Throttled { operation: &'static str },

    #[error(
        "cannot reach AWS for {operation}: {detail}; check network, HTTPS_PROXY/NO_PROXY and endpoint settings"
    )]
    Network {
        operation: &'static str,
        detail: String,
    },

    #[error("AWS error on {operation}: {detail}")]
    Aws {
        operation: &'static str,
        detail: String,
    },

    #[error("{0}")]
    InvalidSpec(String),

    #[error(
        "the EcrRegistry CRD (ecrregistries.ecr-operator.io) is not installed: apply it with `ecr-operator crd | kubectl apply -f -` or `kubectl apply -f crds/`"
    )]
    CrdMissing,

    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),

    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    #[error(
        "access denied on ecr:{operation}: {detail}; allow ecr:{operation} in the IAM policy of the EcrRegistry's identity"
    )]
    EcrOperationDenied {
        operation: &'static str,
        detail: String,
    },

    #[error(
        "the EcrMirror CRD (ecrmirrors.ecr-operator.io) is not installed: apply it with `kubectl apply -f crds/`"
    )]
    MirrorCrdMissing,
}

impl Error {
    /// CamelCase reason for conditions, Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::CredentialsSecretMissing { .. } => "CredentialsSecretMissing",
            Self::CredentialsSecretIncomplete { .. } => "CredentialsSecretIncomplete",
            Self::NoCredentials { .. } => "NoCredentials",
            Self::AssumeRoleDenied { .. } => "AssumeRoleDenied",
            Self::EcrAccessDenied { .. } => "EcrAccessDenied",
            Self::Throttled { .. } => "Throttled",
            Self::Network { .. } => "NetworkError",
            Self::Aws { .. } => "AwsError",
            Self::InvalidSpec(_) => "InvalidSpec",
            Self::CrdMissing => "CrdMissing",
            Self::Kube(_) => "KubernetesApiError",
            Self::Finalizer(_) => "FinalizerError",
            Self::EcrOperationDenied { .. } => "EcrAccessDenied",
            Self::MirrorCrdMissing => "CrdMissing",
        }
    }

    /// The error for a failed ECR call.
    pub fn from_ecr(operation: &'static str, failure: AwsFailure) -> Self {
        match failure {
            AwsFailure::Throttled => Self::Throttled { operation },
            AwsFailure::Network(detail) => Self::Network { operation, detail },
            AwsFailure::Denied(detail) => Self::EcrAccessDenied { detail },
            AwsFailure::Other(detail) => Self::Aws { operation, detail },
        }
    }

    /// The AWS operation that failed, for metrics.
    pub fn aws_operation(&self) -> Option<&'static str> {
        match self {
            Self::Throttled { operation }
            | Self::Network { operation, .. }
            | Self::Aws { operation, .. } => Some(operation),
            Self::AssumeRoleDenied { .. } => Some("AssumeRole"),
            Self::EcrAccessDenied { .. } => Some("GetAuthorizationToken"),
            Self::EcrOperationDenied { operation, .. } => Some(operation),
            _ => None,
        }
    }

    /// True for failures that fix themselves (retry soon with backoff).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. } | Self::Network { .. } | Self::Aws { .. } | Self::Kube(_)
        )
    }
}

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

pub type Result<T, E = Error> = std::result::Result<T, E>;
