//! Logging: human text or JSON, a `RUST_LOG`-style filter, and a guard that keeps
//! credentials out of the logs whatever the filter says.

use tracing::{Level, Metadata};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, filter};

/// Libraries that log request or response bodies and signed headers (ECR tokens,
/// STS session tokens, secret payloads) at debug or trace level.
const BODY_LOGGING_TARGETS: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_sigv4",
    "aws_config",
    "aws_sdk_ecr",
    "aws_sdk_sts",
    "aws_runtime",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tower",
    "tower_http",
    "kube_client",
    "oci_client",
    "reqwest",
];

/// False for debug and trace events of libraries that may log credentials.
pub fn is_safe_to_log(meta: &Metadata<'_>) -> bool {
    *meta.level() <= Level::INFO
        || !BODY_LOGGING_TARGETS
            .iter()
            .any(|t| meta.target() == *t || meta.target().starts_with(&format!("{t}::")))
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber: `RUST_LOG` (default `info`) on stderr.
pub fn init(format: LogFormat) {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let guard = filter::filter_fn(is_safe_to_log);
    let layer = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(env).with_filter(guard))
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::callsite::Identifier;
    use tracing::field::FieldSet;
    use tracing::metadata::Kind;

    struct Callsite;
    impl tracing::callsite::Callsite for Callsite {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unimplemented!()
        }
    }
    static CALLSITE: Callsite = Callsite;

    fn meta(target: &'static str, level: Level) -> Metadata<'static> {
        Metadata::new(
            "e",
            target,
            level,
            None,
            None,
            None,
            FieldSet::new(&[], Identifier(&CALLSITE)),
            Kind::EVENT,
        )
    }

    #[test]
    fn sdk_debug_output_is_dropped_but_our_own_is_kept() {
        assert!(!is_safe_to_log(&meta(
            "aws_smithy_runtime::client::orchestrator",
            Level::DEBUG
        )));
        assert!(!is_safe_to_log(&meta(
            "aws_sigv4::http_request::sign",
            Level::TRACE
        )));
        assert!(is_safe_to_log(&meta(
            "aws_smithy_runtime::client::orchestrator",
            Level::INFO
        )));
        assert!(is_safe_to_log(&meta(
            "ecr_operator::registry::controller",
            Level::TRACE
        )));
        assert!(is_safe_to_log(&meta("hyperion", Level::DEBUG)));
    }
}
