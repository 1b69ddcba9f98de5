//! The base AWS configuration: the standard environment (credentials chain,
//! region, `AWS_ENDPOINT_URL`) and an HTTPS client that honours `HTTPS_PROXY`
//! and `NO_PROXY`, on the one TLS stack (rustls with aws-lc-rs). Every call is
//! bounded: a silent endpoint costs at most [`OPERATION_TIMEOUT`], never a hang.

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

/// One attempt of an AWS call.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// One AWS call with its retries.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Resolving credentials, including every role of a chain.
pub const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(45);
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, Connector};

pub async fn load() -> SdkConfig {
    let http_client = Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = Connector::builder().proxy_config(ProxyConfig::from_env());
        connector.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            connector.set_sleep_impl(c.sleep_impl());
        }
        connector
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .build()
    });
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .load()
        .await
}
