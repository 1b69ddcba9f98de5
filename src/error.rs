//! The library's error type. Each variant maps to one `reason`, which names the
//! Ready condition's reason, the Event reason and the metric label; each message
//! says what to fix and never contains a credential.

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
        "cannot get a token of ServiceAccount {namespace}/{name} for the audience sts.amazonaws.com: {detail}; the operator needs create on serviceaccounts/token (deploy/ grants it), and the admission fence admits only that audience"
    )]
    ServiceAccountTokenRefused {
        namespace: String,
        name: String,
        detail: String,
    },

    #[error(
        "access denied on ecr:{operation}: {detail}; allow ecr:{operation} in the IAM policy of the EcrRegistry's identity"
    )]
    EcrAccessDenied {
        operation: &'static str,
        detail: String,
    },

    #[error(
        "access denied on ecr-public:GetAuthorizationToken: {detail}; allow ecr-public:GetAuthorizationToken and sts:GetServiceBearerToken in the IAM policy of the EcrRegistry's identity"
    )]
    EcrPublicAccessDenied { detail: String },

    /// One region of several failed (the others are named in status.regions).
    #[error("region {region}: {cause}{}", if *others > 0 { format!(" (and {others} more regions failing: see status.regions)") } else { String::new() })]
    InRegion {
        region: String,
        others: usize,
        cause: Box<Error>,
    },

    #[error("AWS throttled {operation}; retrying with backoff")]
    Throttled { operation: &'static str },

    #[error(
        "AWS did not answer {operation} in time ({detail}); retrying with backoff: check the endpoint, HTTPS_PROXY/NO_PROXY and AWS's service health"
    )]
    Timeout {
        operation: &'static str,
        detail: String,
    },

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
            Self::ServiceAccountTokenRefused { .. } => "ServiceAccountTokenRefused",
            Self::EcrAccessDenied { .. } | Self::EcrPublicAccessDenied { .. } => "EcrAccessDenied",
            Self::Throttled { .. } => "Throttled",
            Self::Timeout { .. } => "Timeout",
            Self::Network { .. } => "NetworkError",
            Self::Aws { .. } => "AwsError",
            Self::InvalidSpec(_) => "InvalidSpec",
            Self::CrdMissing => "CrdMissing",
            Self::Kube(_) => "KubernetesApiError",
            Self::Finalizer(_) => "FinalizerError",
            Self::MirrorCrdMissing => "CrdMissing",
            Self::InRegion { cause, .. } => cause.reason(),
        }
    }

    /// The AWS operation that failed, for metrics.
    pub fn aws_operation(&self) -> Option<&'static str> {
        match self {
            Self::Throttled { operation }
            | Self::Timeout { operation, .. }
            | Self::Network { operation, .. }
            | Self::Aws { operation, .. } => Some(operation),
            Self::AssumeRoleDenied { .. } => Some("AssumeRole"),
            Self::EcrAccessDenied { operation, .. } => Some(operation),
            Self::EcrPublicAccessDenied { .. } => Some("GetAuthorizationToken"),
            Self::InRegion { cause, .. } => cause.aws_operation(),
            _ => None,
        }
    }

    /// True for failures that fix themselves (retry soon with backoff).
    pub fn is_transient(&self) -> bool {
        if let Self::InRegion { cause, .. } = self {
            return cause.is_transient();
        }
        matches!(
            self,
            Self::Throttled { .. }
                | Self::Timeout { .. }
                | Self::Network { .. }
                | Self::Aws { .. }
                | Self::Kube(_)
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
