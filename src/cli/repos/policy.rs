//! `ecr-operator repos policy get|set NAME`: the repository policy of a repository.

use super::super::aws_args::{self, AwsArgs};
use super::super::exit::EXIT_CODES;
use super::create::Change;
use super::{PolicyDoc, TextOrJson, aws_error};
use ecr_operator::aws::failure::AwsFailure;
use serde_json::{Value, json};
use std::path::PathBuf;

pub const LONG_ABOUT: &str = "\
Read or set the repository policy of an ECR repository: who may pull and push. \
`get` prints it as JSON and fails (exit 1) when the repository has none; `set` \
sets it from a file unless it is the same JSON already (idempotent).

IAM actions: ecr:GetRepositoryPolicy; for `set` also ecr:SetRepositoryPolicy.";

const AFTER_HELP: &str = "\
Examples:
  ecr-operator repos policy get team/app --region eu-west-1 > policy.json
  ecr-operator repos policy set team/app --file policy.json
";

#[derive(clap::Args)]
#[command(after_help = format!("{AFTER_HELP}\n{EXIT_CODES}"))]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(clap::Subcommand)]
enum PolicyCommand {
    /// Print the repository policy (pretty JSON); exit 1 when there is none.
    #[command(after_help = format!("{AFTER_HELP}\n{EXIT_CODES}"))]
    Get(GetArgs),
    /// Set the repository policy from a JSON file, unless it is the same already.
    #[command(after_help = format!("{AFTER_HELP}\n{EXIT_CODES}"))]
    Set(SetArgs),
}

#[derive(clap::Args)]
struct GetArgs {
    /// Repository name, e.g. team/app.
    #[arg(value_name = "NAME", value_parser = super::parse_repository_name)]
    name: String,

    /// 12-digit account ID of the registry. Default: the account of the credentials.
    #[arg(long, value_name = "ACCOUNT", value_parser = aws_args::parse_account_id)]
    registry_id: Option<String>,

    /// Output format: the policy document, or {name, registryId, policy}.
    #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
    output: TextOrJson,

    #[command(flatten)]
    aws: AwsArgs,
}

#[derive(clap::Args)]
struct SetArgs {
    /// Repository name, e.g. team/app.
    #[arg(value_name = "NAME", value_parser = super::parse_repository_name)]
    name: String,

    /// The repository policy, a JSON file. Checked before any AWS call.
    #[arg(long, value_name = "PATH")]
    file: PathBuf,

    /// 12-digit account ID of the registry. Default: the account of the credentials.
    #[arg(long, value_name = "ACCOUNT", value_parser = aws_args::parse_account_id)]
    registry_id: Option<String>,

    /// Output format: `repository policy set|replaced` or `unchanged`, or one object
    /// {name, changed, changes: [{setting, from, to, message}]}.
    #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
    output: TextOrJson,

    #[command(flatten)]
    aws: AwsArgs,
}

pub async fn run(args: PolicyArgs) -> anyhow::Result<()> {
    match args.command {
        PolicyCommand::Get(args) => run_get(args).await,
        PolicyCommand::Set(args) => run_set(args).await,
    }
}

async fn run_get(args: GetArgs) -> anyhow::Result<()> {
    let (ecr, _) = super::ecr_client(&args.aws, "repos policy get").await?;
    let registry_id = args.registry_id.as_deref();
    let Some((registry, text)) = get_text(&ecr, &args.name, registry_id).await? else {
        anyhow::bail!(
            "repository {} in {} has no repository policy; set one with `ecr-operator repos policy set {} --file policy.json`",
            args.name,
            super::registry_label(registry_id),
            args.name
        );
    };
    let value = serde_json::from_str::<Value>(&text).ok();
    let out = match (args.output, value) {
        (TextOrJson::Text, Some(v)) => {
            format!("{}\n", serde_json::to_string_pretty(&v).expect("JSON"))
        }
        // Not JSON (AWS checks it, so this should not happen): as AWS has it.
        (TextOrJson::Text, None) => format!("{}\n", text.trim_end()),
        (TextOrJson::Json, v) => {
            let v = json!({
                "name": args.name,
                "registryId": registry,
                "policy": v.unwrap_or(Value::String(text)),
            });
            format!("{}\n", serde_json::to_string_pretty(&v).expect("JSON"))
        }
    };
    super::print(&out)
}

async fn run_set(args: SetArgs) -> anyhow::Result<()> {
    // The file first: a bad one fails before any AWS call.
    let doc = super::load_policy("--file", &args.file)?;
    let (ecr, _) = super::ecr_client(&args.aws, "repos policy set").await?;
    let registry_id = args.registry_id.as_deref();
    let from = get(&ecr, &args.name, registry_id).await?.map(|(_, v)| v);
    let changes = if from.as_ref() == Some(&doc.value) {
        vec![]
    } else {
        set(&ecr, &args.name, registry_id, &doc).await?;
        vec![Change::RepositoryPolicy { from, to: doc }]
    };
    let out = match args.output {
        TextOrJson::Text => match changes.first() {
            Some(change) => format!("{}\n", change.message()),
            None => "unchanged\n".to_string(),
        },
        TextOrJson::Json => {
            let v = json!({
                "name": args.name,
                "changed": !changes.is_empty(),
                "changes": changes.iter().map(Change::to_json).collect::<Vec<_>>(),
            });
            format!("{}\n", serde_json::to_string_pretty(&v).expect("JSON"))
        }
    };
    super::print(&out)
}

/// The repository policy as AWS has it: (registry ID, text), None when there is none.
async fn get_text(
    ecr: &aws_sdk_ecr::Client,
    name: &str,
    registry_id: Option<&str>,
) -> anyhow::Result<Option<(String, String)>> {
    let result = ecr
        .get_repository_policy()
        .repository_name(name)
        .set_registry_id(registry_id.map(str::to_string))
        .send()
        .await;
    match result {
        Ok(out) => Ok(out.policy_text().map(|text| {
            (
                out.registry_id().unwrap_or_default().to_string(),
                text.to_string(),
            )
        })),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_repository_policy_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_repository_not_found_exception()) =>
        {
            Err(super::not_found(name, registry_id))
        }
        Err(e) => Err(aws_error("GetRepositoryPolicy", AwsFailure::of(&e))),
    }
}

/// The repository policy parsed for comparison: (registry ID, document).
pub(super) async fn get(
    ecr: &aws_sdk_ecr::Client,
    name: &str,
    registry_id: Option<&str>,
) -> anyhow::Result<Option<(String, Value)>> {
    Ok(get_text(ecr, name, registry_id)
        .await?
        .map(|(registry, text)| (registry, super::policy_value(&text))))
}

/// Sets the repository policy to the file's text as written.
pub(super) async fn set(
    ecr: &aws_sdk_ecr::Client,
    name: &str,
    registry_id: Option<&str>,
    doc: &PolicyDoc,
) -> anyhow::Result<()> {
    let result = ecr
        .set_repository_policy()
        .repository_name(name)
        .set_registry_id(registry_id.map(str::to_string))
        .policy_text(&doc.text)
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_repository_not_found_exception()) =>
        {
            Err(super::not_found(name, registry_id))
        }
        Err(e) => Err(aws_error("SetRepositoryPolicy", AwsFailure::of(&e))),
    }
}
