//! Errors of `mirror`, each naming its cause first: `unauthorized`, `not found`,
//! `registry unreachable`, `TLS failure`, … Messages carry registry hosts, image
//! references and the registry's own words, never credentials.

use oci_client::errors::{OciDistributionError, OciErrorCode};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("authfile {}: {reason}", path.display())]
    Authfile { path: PathBuf, reason: String },

    #[error("unauthorized: {registry} rejected {credentials} ({action} {reference}){detail}")]
    Unauthorized {
        registry: String,
        reference: String,
        action: &'static str,
        /// `credentials from FILE` or `anonymous access (no authfile entry for HOST)`.
        credentials: String,
        detail: String,
    },

    #[error("access denied: {registry} refused {credentials} ({action} {reference}){detail}")]
    Denied {
        registry: String,
        reference: String,
        action: &'static str,
        credentials: String,
        detail: String,
    },

    #[error("not found: {reference} ({detail}; {action})")]
    NotFound {
        reference: String,
        action: &'static str,
        detail: String,
    },

    #[error("registry busy: {registry} answered {detail} ({action} {reference})")]
    Busy {
        registry: String,
        reference: String,
        action: &'static str,
        detail: String,
    },

    #[error("local image {name}: {reason}")]
    Local { name: String, reason: String },

    #[error("registry unreachable: {registry} ({detail})")]
    Unreachable { registry: String, detail: String },

    #[error(
        "TLS failure with {registry}: {detail} (--insecure skips certificate verification; \
         --plain-http talks plain HTTP to registries without TLS)"
    )]
    Tls { registry: String, detail: String },

    #[error("digest mismatch for {reference}: expected {expected}, got {actual}")]
    DigestMismatch {
        reference: String,
        expected: String,
        actual: String,
    },

    #[error("unsupported manifest {reference}: {reason}")]
    Unsupported { reference: String, reason: String },

    #[error("registry error from {registry} ({action} {reference}): {detail}")]
    Registry {
        registry: String,
        reference: String,
        action: &'static str,
        detail: String,
    },

    #[error("cannot create the registry client: {0}")]
    Client(String),
}

impl MirrorError {
    /// A short name of the cause, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            MirrorError::InvalidReference { .. } => "invalid-reference",
            MirrorError::Authfile { .. } => "authfile",
            MirrorError::Unauthorized { .. } => "unauthorized",
            MirrorError::Denied { .. } => "denied",
            MirrorError::NotFound { .. } => "not-found",
            MirrorError::Busy { .. } => "busy",
            MirrorError::Local { .. } => "local",
            MirrorError::Unreachable { .. } => "unreachable",
            MirrorError::Tls { .. } => "tls",
            MirrorError::DigestMismatch { .. } => "digest-mismatch",
            MirrorError::Unsupported { .. } => "unsupported",
            MirrorError::Registry { .. } => "registry",
            MirrorError::Client(_) => "client",
        }
    }
}

impl MirrorError {
    /// Whether the same request may succeed later: the registry was busy (408,
    /// 429, 5xx) or the connection failed, was lost or stalled.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            MirrorError::Busy { .. } | MirrorError::Unreachable { .. }
        )
    }
}

/// Where an error happened, to name it.
#[derive(Clone, Debug)]
pub struct Context {
    /// `host[:port]` the request went to.
    pub registry: String,
    /// The image (or blob) the request was about.
    pub reference: String,
    /// What was being done: `pulling manifest`, `uploading blob`, …
    pub action: &'static str,
    /// Which credentials were sent.
    pub credentials: String,
}

/// What an HTTP status (or a registry error code) means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusClass {
    Unauthorized,
    Denied,
    NotFound,
    /// 408, 429 or a 5xx other than 501/505: it may pass.
    Busy,
    Other,
}

pub fn class_of_status(status: u16) -> StatusClass {
    match status {
        401 => StatusClass::Unauthorized,
        403 => StatusClass::Denied,
        404 => StatusClass::NotFound,
        408 | 429 => StatusClass::Busy,
        501 | 505 => StatusClass::Other,
        500..=599 => StatusClass::Busy,
        _ => StatusClass::Other,
    }
}

pub fn class_of_code(code: &OciErrorCode) -> StatusClass {
    match code {
        OciErrorCode::Unauthorized => StatusClass::Unauthorized,
        OciErrorCode::Denied => StatusClass::Denied,
        OciErrorCode::ManifestUnknown
        | OciErrorCode::NameUnknown
        | OciErrorCode::BlobUnknown
        | OciErrorCode::NotFound => StatusClass::NotFound,
        OciErrorCode::Toomanyrequests => StatusClass::Busy,
        _ => StatusClass::Other,
    }
}

/// Human words for an OCI error code.
fn code_words(code: &OciErrorCode) -> String {
    match code {
        OciErrorCode::ManifestUnknown => "manifest unknown".into(),
        OciErrorCode::NameUnknown => "repository name unknown".into(),
        OciErrorCode::BlobUnknown => "blob unknown".into(),
        OciErrorCode::Toomanyrequests => "too many requests".into(),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(|s| s.to_ascii_lowercase().replace('_', " ")))
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

impl Context {
    fn with_class(&self, class: StatusClass, detail: String) -> MirrorError {
        let suffix = if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        };
        match class {
            StatusClass::Unauthorized => MirrorError::Unauthorized {
                registry: self.registry.clone(),
                reference: self.reference.clone(),
                action: self.action,
                credentials: self.credentials.clone(),
                detail: suffix,
            },
            StatusClass::Denied => MirrorError::Denied {
                registry: self.registry.clone(),
                reference: self.reference.clone(),
                action: self.action,
                credentials: self.credentials.clone(),
                detail: suffix,
            },
            StatusClass::NotFound => MirrorError::NotFound {
                reference: self.reference.clone(),
                action: self.action,
                detail: if detail.is_empty() {
                    "404".into()
                } else {
                    detail
                },
            },
            StatusClass::Busy => MirrorError::Busy {
                registry: self.registry.clone(),
                reference: self.reference.clone(),
                action: self.action,
                detail,
            },
            StatusClass::Other => MirrorError::Registry {
                registry: self.registry.clone(),
                reference: self.reference.clone(),
                action: self.action,
                detail,
            },
        }
    }

    /// Names an `oci_client` error.
    pub fn classify(&self, e: OciDistributionError) -> MirrorError {
        match e {
            OciDistributionError::UnauthorizedError { .. } => {
                self.with_class(StatusClass::Unauthorized, String::new())
            }
            OciDistributionError::AuthenticationFailure(reason) => self.with_class(
                StatusClass::Unauthorized,
                format!("token request failed: {}", one_line(&reason)),
            ),
            OciDistributionError::RegistryError { envelope, .. } => {
                let class = envelope
                    .errors
                    .iter()
                    .map(|e| class_of_code(&e.code))
                    .find(|c| *c != StatusClass::Other)
                    .unwrap_or(StatusClass::Other);
                let detail = envelope
                    .errors
                    .iter()
                    .map(|e| {
                        let words = code_words(&e.code);
                        if e.message.is_empty() || e.message.eq_ignore_ascii_case(&words) {
                            words
                        } else {
                            format!("{words}: {}", one_line(&e.message))
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                self.with_class(class, detail)
            }
            OciDistributionError::ServerError { code, message, .. } => {
                let detail = match one_line(&message) {
                    m if m.is_empty() => format!("HTTP {code}"),
                    m => format!("HTTP {code}: {m}"),
                };
                self.with_class(class_of_status(code), detail)
            }
            OciDistributionError::RequestError(e) => {
                if let Some(status) = e.status() {
                    return self
                        .with_class(class_of_status(status.as_u16()), format!("HTTP {status}"));
                }
                self.classify_transport(&e, e.is_connect() || e.is_timeout())
            }
            OciDistributionError::IoError(e) => self.classify_transport(&e, false),
            OciDistributionError::DigestError(e) => MirrorError::Registry {
                registry: self.registry.clone(),
                reference: self.reference.clone(),
                action: self.action,
                detail: format!("content does not match its digest: {e}"),
            },
            other => MirrorError::Registry {
                registry: self.registry.clone(),
                reference: self.reference.clone(),
                action: self.action,
                detail: one_line(&other.to_string()),
            },
        }
    }

    /// Names a transport error: TLS, an unreachable host, or another failure.
    /// `connect_failed`: the HTTP client says the connection could not be made.
    pub fn classify_transport(
        &self,
        e: &(dyn std::error::Error + 'static),
        connect_failed: bool,
    ) -> MirrorError {
        let chain = chain_text(e);
        if has_tls_error(e) {
            return MirrorError::Tls {
                registry: self.registry.clone(),
                detail: chain,
            };
        }
        let unreachable = connect_failed
            || walk(e)
                .filter_map(|e| e.downcast_ref::<std::io::Error>())
                .any(|io| {
                    use std::io::ErrorKind::*;
                    matches!(
                        io.kind(),
                        ConnectionRefused
                            | ConnectionReset
                            | ConnectionAborted
                            | NotConnected
                            | TimedOut
                            | HostUnreachable
                            | NetworkUnreachable
                            | UnexpectedEof
                            | BrokenPipe
                    )
                });
        if unreachable {
            MirrorError::Unreachable {
                registry: self.registry.clone(),
                detail: format!("{chain}; {} {}", self.action, self.reference),
            }
        } else {
            MirrorError::Registry {
                registry: self.registry.clone(),
                reference: self.reference.clone(),
                action: self.action,
                detail: chain,
            }
        }
    }
}

/// Every error of the chain, including those io::Error wraps (its `source` skips
/// the wrapped error itself).
fn walk<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let mut stack = vec![e];
    std::iter::from_fn(move || {
        let e = stack.pop()?;
        if let Some(s) = e.source() {
            stack.push(s);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            stack.push(inner);
        }
        Some(e)
    })
}

fn has_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    walk(e).any(|e| {
        e.downcast_ref::<rustls::Error>().is_some() || {
            // Certificate verifiers' errors reach us as text in some wrappers.
            let t = e.to_string().to_ascii_lowercase();
            t.contains("invalid peer certificate")
                || t.contains("certificate verify")
                || t.contains("tls handshake")
        }
    })
}

/// The distinct messages of the chain, outermost first, on one line.
fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in walk(e) {
        let t = one_line(&e.to_string());
        if t.is_empty() || parts.iter().any(|p| p.contains(&t)) {
            continue;
        }
        parts.push(t);
    }
    parts.join(": ")
}

fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}…", &s[..cut])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::errors::{OciEnvelope, OciError};

    fn ctx() -> Context {
        Context {
            registry: "reg.example".into(),
            reference: "reg.example/app:v1".into(),
            action: "pulling manifest",
            credentials: "credentials from /auth.json".into(),
        }
    }

    fn envelope(code: OciErrorCode, message: &str) -> OciDistributionError {
        OciDistributionError::RegistryError {
            envelope: OciEnvelope {
                errors: vec![OciError {
                    code,
                    message: message.into(),
                    detail: serde_json::Value::Null,
                }],
            },
            url: "http://reg.example/v2/app/manifests/v1".into(),
        }
    }

    #[test]
    fn statuses_and_codes_name_the_cause() {
        let e = ctx().classify(OciDistributionError::UnauthorizedError { url: "u".into() });
        assert!(
            e.to_string()
                .starts_with("unauthorized: reg.example rejected credentials from /auth.json"),
            "{e}"
        );
        let e = ctx().classify(envelope(OciErrorCode::ManifestUnknown, "manifest unknown"));
        assert_eq!(
            e.to_string(),
            "not found: reg.example/app:v1 (manifest unknown; pulling manifest)"
        );
        let e = ctx().classify(envelope(
            OciErrorCode::NameUnknown,
            "repository name not known to registry",
        ));
        assert_eq!(e.kind(), "not-found");
        assert!(
            e.to_string()
                .contains("repository name unknown: repository name not known"),
            "{e}"
        );
        let e = ctx().classify(envelope(
            OciErrorCode::Denied,
            "requested access to the resource is denied",
        ));
        assert_eq!(e.kind(), "denied");
        let e = ctx().classify(OciDistributionError::ServerError {
            code: 404,
            url: "u".into(),
            message: String::new(),
        });
        assert_eq!(e.kind(), "not-found");
        let e = ctx().classify(OciDistributionError::ServerError {
            code: 503,
            url: "u".into(),
            message: "<html>\n busy \n</html>".into(),
        });
        assert_eq!(
            e.to_string(),
            "registry busy: reg.example answered HTTP 503: <html> busy </html> \
             (pulling manifest reg.example/app:v1)"
        );
        assert!(e.is_retryable());
        let e = ctx().classify(envelope(OciErrorCode::Toomanyrequests, ""));
        assert!(e.to_string().contains("answered too many requests"), "{e}");
        assert!(e.is_retryable());
        for (code, retryable) in [
            (408, true),
            (429, true),
            (500, true),
            (501, false),
            (400, false),
        ] {
            let e = ctx().classify(OciDistributionError::ServerError {
                code,
                url: "u".into(),
                message: String::new(),
            });
            assert_eq!(e.is_retryable(), retryable, "{code}: {e}");
        }
        let denied = ctx().classify(envelope(OciErrorCode::Denied, "no"));
        assert!(!denied.is_retryable());
    }

    #[test]
    fn io_errors_wrapping_tls_errors_are_tls_failures() {
        let tls = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        let e = ctx().classify(OciDistributionError::IoError(tls));
        assert_eq!(e.kind(), "tls");
        assert!(
            e.to_string().contains("UnknownIssuer") || e.to_string().contains("unknown issuer"),
            "{e}"
        );
    }

    #[test]
    fn refused_connections_are_unreachable() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = ctx().classify(OciDistributionError::IoError(io));
        assert_eq!(e.kind(), "unreachable");
        assert!(e.is_retryable());
        assert!(
            e.to_string()
                .starts_with("registry unreachable: reg.example"),
            "{e}"
        );
    }

    #[test]
    fn long_messages_are_cut() {
        let s = one_line(&"é".repeat(400));
        assert!(s.len() <= 304 && s.ends_with('…'));
    }
}
