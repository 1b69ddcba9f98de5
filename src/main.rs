//! The `ecr-operator` binary: the controller, and commands for CI and people.

mod cli;

use clap::{Parser, Subcommand};
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
    Run(cli::run::RunArgs),
    /// Print the CustomResourceDefinition YAML.
    ///
    /// Example: ecr-operator crd | kubectl apply -f -
    Crd,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let result = match cli.command {
        Command::Run(args) => cli::run::run(args).await,
        Command::Crd => {
            print!("{}", ecr_operator::ecr_registry::crd_yaml());
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
