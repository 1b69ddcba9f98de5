//! The `ecr-operator` binary: the controller, and commands for CI and people.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ecr_operator::controller;
use ecr_operator::telemetry::{self, LogFormat};

/// Keeps Kubernetes image-pull secrets for Amazon ECR fresh.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (in-cluster config, or KUBECONFIG outside a cluster).
    ///
    /// Example: ecr-operator run --namespace ecr-operator
    Run(RunArgs),
    /// Print the CustomResourceDefinition YAML.
    ///
    /// Example: ecr-operator crd | kubectl apply -f -
    Crd,
}

#[derive(clap::Args)]
struct RunArgs {
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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match run(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Crd => {
            print!("{}", ecr_operator::ecr_registry::crd_yaml());
            Ok(())
        }
        Command::Run(args) => {
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
    }
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
