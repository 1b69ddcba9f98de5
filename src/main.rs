//! The `ecr-operator` binary: the controller, and commands for CI and people.

mod cli;

use clap::{Parser, Subcommand};
use ecr_operator::crd::{self, ecr_mirror::EcrMirror, ecr_registry::EcrRegistry};
use ecr_operator::runtime::logging::{self, LogFormat};

/// Keeps Kubernetes image-pull secrets for Amazon ECR fresh.
#[derive(Parser)]
#[command(
    version,
    about,
    long_about = None,
    after_help = "Examples:
  ecr-operator run
  ecr-operator token --region eu-west-1 --format docker-login
  ecr-operator repos --region eu-west-1
  ecr-operator crd | kubectl apply -f -

Exit codes: 0 success, 1 permanent failure, 2 usage error, 3 retryable failure
(throttled, 5xx, timeout, connection lost): see each command's --help"
)]
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
    /// Print a fresh ECR token (JSON, dockerconfigjson, password, docker login
    /// pipelines) or merge it into a Docker config file.
    #[command(long_about = cli::token::LONG_ABOUT)]
    Token(cli::token::TokenArgs),
    /// List the repositories of an ECR registry (table or JSON), create one
    /// idempotently, read or set its repository policy.
    #[command(long_about = cli::repos::LONG_ABOUT)]
    Repos(cli::repos::ReposArgs),
    /// Copy an image (one platform, or an index with all of them) to another registry.
    #[command(long_about = cli::mirror::LONG_ABOUT)]
    Mirror(cli::mirror::MirrorArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let log_format = cli.log_format;
    let result = match cli.command {
        Command::Run(args) => cli::run::run(args).await,
        Command::Token(args) => cli::token::run(args).await,
        Command::Repos(args) => cli::repos::run(args).await,
        Command::Mirror(args) => cli::mirror::run(args, log_format).await,
        Command::Crd => {
            print!(
                "{}---\n{}",
                crd::crd_yaml::<EcrRegistry>(),
                crd::crd_yaml::<EcrMirror>()
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => std::process::ExitCode::from(cli::exit::report(&e, log_format)),
    }
}
