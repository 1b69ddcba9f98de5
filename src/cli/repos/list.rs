//! `ecr-operator repos` / `repos list`: the repositories of a registry
//! (DescribeRepositories, every page).

use super::super::aws_args::{self, AwsArgs};
use super::super::exit::EXIT_CODES;
use aws_sdk_ecr::types::Repository;
use ecr_operator::aws::failure::AwsFailure;

pub const LONG_ABOUT: &str = "\
List the ECR repositories of a registry: name, URI, creation time, tag mutability \
and scan-on-push. Reads every page of DescribeRepositories. `ecr-operator repos` \
alone does the same.

Credentials and roles work as for `ecr-operator token`: the standard AWS environment, \
then --via-role-arn and --role-arn. The identity needs ecr:DescribeRepositories.";

const AFTER_HELP: &str = "\
Examples:
  ecr-operator repos list --region eu-west-1
  ecr-operator repos list --region eu-west-1 --registry-id 210987654321 \\
    --role-arn arn:aws:iam::210987654321:role/ecr-read --output json | jq -r '.[].uri'
";

#[derive(clap::Args)]
#[command(after_help = format!("{AFTER_HELP}\n{EXIT_CODES}"))]
pub struct ListArgs {
    /// 12-digit account ID of the registry to list. Default: the account of the credentials.
    #[arg(long, value_name = "ACCOUNT", value_parser = aws_args::parse_account_id)]
    registry_id: Option<String>,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    output: Output,

    /// Repositories per DescribeRepositories call, 1 to 1000 (AWS's default: 100).
    /// Every page is read whatever the size.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=1000))]
    page_size: Option<i32>,

    // The identity: the default credential chain, then the optional role chain.
    #[command(flatten)]
    aws: AwsArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    /// Aligned columns: NAME, URI, CREATED, TAG MUTABILITY, SCAN ON PUSH.
    Table,
    /// [{name, uri, registryId, arn, createdAt, imageTagMutability, scanOnPush}]
    Json,
}

/// One repository as printed.
#[derive(serde::Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Repo {
    name: String,
    uri: String,
    registry_id: String,
    arn: String,
    created_at: Option<String>,
    image_tag_mutability: Option<String>,
    scan_on_push: bool,
}

impl From<&Repository> for Repo {
    fn from(r: &Repository) -> Self {
        Self {
            name: r.repository_name().unwrap_or_default().to_string(),
            uri: r.repository_uri().unwrap_or_default().to_string(),
            registry_id: r.registry_id().unwrap_or_default().to_string(),
            arn: r.repository_arn().unwrap_or_default().to_string(),
            created_at: r
                .created_at()
                .and_then(|t| jiff::Timestamp::from_second(t.secs()).ok())
                .map(|t| t.to_string()),
            image_tag_mutability: r.image_tag_mutability().map(|m| m.as_str().to_string()),
            scan_on_push: r
                .image_scanning_configuration()
                .is_some_and(|c| c.scan_on_push()),
        }
    }
}

pub async fn run(args: ListArgs, subcommand: &str) -> anyhow::Result<()> {
    let (ecr, region) = super::ecr_client(&args.aws, subcommand).await?;
    let mut pages = ecr
        .describe_repositories()
        .set_registry_id(args.registry_id.clone())
        .into_paginator();
    if let Some(n) = args.page_size {
        pages = pages.page_size(n);
    }
    let mut stream = pages.items().send();
    let mut repos = Vec::new();
    while let Some(item) = stream.next().await {
        let repo =
            item.map_err(|e| super::aws_error("DescribeRepositories", AwsFailure::of(&e)))?;
        repos.push(Repo::from(&repo));
    }
    repos.sort_by(|a, b| a.name.cmp(&b.name));
    tracing::debug!(count = repos.len(), "listed repositories");

    let out = match args.output {
        Output::Json => {
            let mut s = serde_json::to_string_pretty(&repos).expect("JSON of strings");
            s.push('\n');
            s
        }
        Output::Table if repos.is_empty() => {
            eprintln!(
                "no repositories in {} in {region}",
                super::registry_label(args.registry_id.as_deref())
            );
            String::new()
        }
        Output::Table => table(&repos),
    };
    super::print(&out)
}

/// Left-aligned columns separated by three spaces, like kubectl's.
fn table(repos: &[Repo]) -> String {
    let header = ["NAME", "URI", "CREATED", "TAG MUTABILITY", "SCAN ON PUSH"];
    let rows: Vec<[String; 5]> = repos
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.uri.clone(),
                r.created_at.clone().unwrap_or_else(|| "-".into()),
                r.image_tag_mutability.clone().unwrap_or_else(|| "-".into()),
                r.scan_on_push.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}   "));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&header);
    for row in &rows {
        out.push_str(&line(&row.each_ref().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_line_up() {
        let repo = |name: &str, scan| Repo {
            name: name.into(),
            uri: format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}"),
            registry_id: "123456789012".into(),
            arn: String::new(),
            created_at: Some("2026-01-01T00:00:00Z".into()),
            image_tag_mutability: Some("IMMUTABLE".into()),
            scan_on_push: scan,
        };
        let out = table(&[repo("a", true), repo("longer-name", false)]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        let col = |l: &str| l.find("123456789012").or_else(|| l.find("URI")).unwrap();
        assert_eq!(col(lines[0]), col(lines[1]));
        assert_eq!(col(lines[1]), col(lines[2]));
        assert!(lines[1].ends_with("true"));
        assert!(lines[0].starts_with("NAME"));
    }
}
