//! `ecr-operator run`: the controller.

use anyhow::Context as _;
use ecr_operator::controller;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The operator's own namespace, where credential Secrets (spec.auth.secretRef) live.
    #[arg(long, env = "POD_NAMESPACE", default_value = "ecr-operator")]
    namespace: String,
    /// This instance's name, shown in Events and used as the leader-election identity.
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// Only handle EcrRegistries whose labels match this selector (e.g. shard=a).
    #[arg(long, env = "ECR_OPERATOR_REGISTRY_SELECTOR")]
    registry_selector: Option<String>,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration: run in a cluster or set KUBECONFIG")?;
    let aws = aws_config::load_from_env().await;
    let config = controller::Config {
        operator_namespace: args.namespace,
        registry_selector: args.registry_selector,
        instance: args
            .pod_name
            .unwrap_or_else(|| format!("ecr-operator-{}", std::process::id())),
    };
    tracing::info!(namespace = config.operator_namespace, "starting controller");
    controller::run(client, config, aws, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutdown requested");
}
