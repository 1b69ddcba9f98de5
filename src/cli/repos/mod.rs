//! `ecr-operator repos`: list the repositories of a registry (the default, also
//! `repos list`), create one idempotently (`repos create`), and read or set its
//! repository policy (`repos policy get|set`). All with the identity flags of `token`.

mod create;
mod list;
mod policy;

use super::aws_args::{self, AwsArgs};
use super::exit::EXIT_CODES;
use anyhow::Context as _;
use ecr_operator::aws::failure::AwsFailure;
use std::io::Write as _;
use std::path::Path;

pub const LONG_ABOUT: &str = "\
List the ECR repositories of a registry (the default, also `repos list`): name, URI, \
creation time, tag mutability and scan-on-push, from every page of DescribeRepositories. \
`repos create` creates a repository or brings an existing one to the settings and \
policies given (idempotent, for CI setup steps); `repos policy get|set` reads or sets \
its repository policy.

Credentials and roles work as for `ecr-operator token`: the standard AWS environment, \
then --via-role-arn and --role-arn. Listing needs ecr:DescribeRepositories; see \
`repos create --help` and `repos policy --help` for theirs.";

const AFTER_HELP: &str = "\
Examples:
  ecr-operator repos --region eu-west-1
  ecr-operator repos --region eu-west-1 --registry-id 210987654321 \\
    --role-arn arn:aws:iam::210987654321:role/ecr-read --output json | jq -r '.[].uri'
  ecr-operator repos create team/app --tag-immutability IMMUTABLE --scan-on-push true \\
    --policy-file ci/ecr-policy.json --lifecycle-policy-file ci/ecr-lifecycle.json
  ecr-operator repos policy get team/app > policy.json
";

#[derive(clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = format!("{AFTER_HELP}\n{EXIT_CODES}")
)]
pub struct ReposArgs {
    #[command(subcommand)]
    command: Option<ReposCommand>,

    // `repos` alone lists, with the flags of `repos list`.
    #[command(flatten)]
    list: list::ListArgs,
}

#[derive(clap::Subcommand)]
enum ReposCommand {
    /// List the repositories (the same as `repos` alone).
    #[command(long_about = list::LONG_ABOUT)]
    List(list::ListArgs),
    /// Create a repository, or bring an existing one to the settings given (idempotent).
    #[command(long_about = create::LONG_ABOUT)]
    Create(create::CreateArgs),
    /// Read or set the repository policy of a repository.
    #[command(long_about = policy::LONG_ABOUT)]
    Policy(policy::PolicyArgs),
}

pub async fn run(args: ReposArgs) -> anyhow::Result<()> {
    match args.command {
        None => list::run(args.list, "repos").await,
        Some(ReposCommand::List(list)) => list::run(list, "repos list").await,
        Some(ReposCommand::Create(create)) => create::run(create).await,
        Some(ReposCommand::Policy(policy)) => policy::run(policy).await,
    }
}

/// `--output` of the commands that change things.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum TextOrJson {
    /// One line per change, or `unchanged`.
    Text,
    /// One JSON object.
    Json,
}

/// An ECR client for this identity, and its region; `subcommand` names the command
/// in usage errors.
async fn ecr_client(
    aws: &AwsArgs,
    subcommand: &str,
) -> anyhow::Result<(aws_sdk_ecr::Client, String)> {
    let region = aws.region_or_exit(subcommand);
    let base = aws_args::base_config(&region).await;
    let config = aws
        .identity(&region)
        .sdk_config(&base)
        .await
        .map_err(|e| aws.explain(e))?;
    Ok((aws_sdk_ecr::Client::new(&config), region))
}

/// The message for a failed ECR call, naming the IAM action to allow. Failures that
/// may pass by themselves (throttling, timeouts, lost connections, 5xx) exit with 3.
fn aws_error(operation: &str, failure: AwsFailure) -> anyhow::Error {
    match failure {
        AwsFailure::Throttled => super::exit::retryable(anyhow::anyhow!(
            "AWS throttled {operation} (rate exceeded) and the retries ran out; try again in a moment, or raise AWS_MAX_ATTEMPTS (default 3)"
        )),
        AwsFailure::Denied(detail) => anyhow::anyhow!(
            "access denied on ecr:{operation}: {detail}; allow ecr:{operation} in the identity's IAM policy, or check --registry-id"
        ),
        AwsFailure::Network(detail) => super::exit::retryable(anyhow::anyhow!(
            "cannot reach AWS for {operation}: {detail}; check network, HTTPS_PROXY/NO_PROXY and AWS_ENDPOINT_URL"
        )),
        AwsFailure::Timeout(detail) => super::exit::retryable(anyhow::anyhow!(
            "AWS did not answer {operation} in time ({detail}); check the endpoint and HTTPS_PROXY/NO_PROXY, then try again"
        )),
        AwsFailure::Unavailable(detail) => super::exit::retryable(anyhow::anyhow!(
            "AWS error on {operation}: {detail}; try again in a moment"
        )),
        AwsFailure::Other(detail) => anyhow::anyhow!("AWS error on {operation}: {detail}"),
    }
}

/// The registry as messages name it.
fn registry_label(registry_id: Option<&str>) -> String {
    match registry_id {
        Some(id) => format!("registry {id}"),
        None => "the registry of the credentials' account".to_string(),
    }
}

fn not_found(name: &str, registry_id: Option<&str>) -> anyhow::Error {
    anyhow::anyhow!(
        "repository {name} does not exist in {}; create it with `ecr-operator repos create {name}`",
        registry_label(registry_id)
    )
}

fn print(out: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")
}

/// A policy document from a file: the text as written (sent to AWS as is) and its
/// parsed form (compared with what AWS has, so formatting and key order do not count).
#[derive(Clone, Debug, PartialEq)]
struct PolicyDoc {
    text: String,
    value: serde_json::Value,
}

/// Reads and checks the JSON policy file of `flag`. Errors name the flag, the file
/// and the position, never the file's contents.
fn load_policy(flag: &str, path: &Path) -> anyhow::Result<PolicyDoc> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{flag} {shown}: cannot read the file: {e}"))?;
    let value = parse_policy(&text).map_err(|e| anyhow::anyhow!("{flag} {shown}: {e}"))?;
    Ok(PolicyDoc { text, value })
}

/// A policy document must be a JSON object. The error names the line and column.
fn parse_policy(text: &str) -> Result<serde_json::Value, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        // serde_json's syntax messages ("expected `,` or `}`", "EOF while parsing an
        // object", ...) describe the error, not the text; the position is ours.
        let what = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let what = what.strip_suffix(&suffix).unwrap_or(&what);
        format!(
            "not valid JSON at line {}, column {}: {what}",
            e.line(),
            e.column()
        )
    })?;
    if value.is_object() {
        Ok(value)
    } else {
        let kind = match value {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::Object(_) => unreachable!(),
        };
        Err(format!(
            "a policy document must be a JSON object {{...}}, this is {kind}"
        ))
    }
}

/// A policy text from AWS, parsed for comparison (a text that does not parse stays
/// a string, which equals no document).
fn policy_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

/// A repository name as ECR accepts it: 2 to 256 characters matching
/// `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`.
pub fn parse_repository_name(s: &str) -> Result<String, String> {
    // Every `/`-separated part: runs of [a-z0-9] joined by single `.`, `_` or `-`.
    let part_ok = |p: &str| {
        let mut prev_sep = true; // a part cannot start with a separator
        for b in p.bytes() {
            match b {
                b'a'..=b'z' | b'0'..=b'9' => prev_sep = false,
                b'.' | b'_' | b'-' if !prev_sep => prev_sep = true,
                _ => return false,
            }
        }
        !prev_sep // nor end with one (and an empty part is refused)
    };
    if (2..=256).contains(&s.len()) && s.split('/').all(part_ok) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not an ECR repository name: 2 to 256 characters, lowercase letters and \
             digits joined by single '.', '_' or '-', in '/'-separated parts (e.g. team/app-1)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn repository_names_follow_ecr() {
        for ok in [
            "ab",
            "app",
            "team/app",
            "a/b/c",
            "my-app_1.2",
            "0x",
            "team-1/app_x",
            &"a".repeat(256),
        ] {
            assert!(parse_repository_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "App",
            "team//app",
            "/app",
            "app/",
            "-app",
            "app-",
            "a--b",
            "a._b",
            "a b",
            "app:latest",
            &"a".repeat(257),
        ] {
            let e = parse_repository_name(bad).unwrap_err();
            assert!(e.contains("not an ECR repository name"), "{bad}: {e}");
        }
    }

    #[test]
    fn policy_files_are_checked_without_echoing_them() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.json");
        std::fs::write(
            &bad,
            "{\n  \"Version\": \"2012-10-17\"\n  \"Statement\": \"s3cr3t\"\n}\n",
        )
        .unwrap();
        let e = load_policy("--policy-file", &bad).unwrap_err().to_string();
        assert!(e.starts_with("--policy-file "), "{e}");
        assert!(e.contains("bad.json"), "{e}");
        assert!(e.contains("line 3, column 3"), "{e}");
        assert!(!e.contains("s3cr3t") && !e.contains("Version"), "{e}");

        let missing = dir.path().join("missing.json");
        let e = load_policy("--file", &missing).unwrap_err().to_string();
        assert!(e.contains("--file") && e.contains("missing.json"), "{e}");
        assert!(e.contains("cannot read"), "{e}");

        std::fs::write(&bad, "[1, 2]").unwrap();
        let e = load_policy("--policy-file", &bad).unwrap_err().to_string();
        assert!(
            e.contains("must be a JSON object") && e.contains("an array"),
            "{e}"
        );
        std::fs::write(&bad, "").unwrap();
        let e = load_policy("--policy-file", &bad).unwrap_err().to_string();
        assert!(e.contains("line 1, column 0"), "{e}");

        let good = dir.path().join("good.json");
        std::fs::write(&good, "{\"b\": 1,\n \"a\": [true]}").unwrap();
        let doc = load_policy("--policy-file", &good).unwrap();
        assert_eq!(doc.value, policy_value("{\"a\":[true],\"b\":1}"));
        assert_eq!(doc.text, "{\"b\": 1,\n \"a\": [true]}");
        assert_eq!(policy_value("nope"), serde_json::json!("nope"));
    }

    #[derive(clap::Parser)]
    struct Top {
        #[command(subcommand)]
        cmd: Sub,
    }
    #[derive(clap::Subcommand)]
    enum Sub {
        Repos(ReposArgs),
    }

    fn parse(args: &[&str]) -> Result<ReposArgs, clap::Error> {
        let mut argv = vec!["ecr-operator", "repos"];
        argv.extend_from_slice(args);
        Top::try_parse_from(argv).map(|t| match t.cmd {
            Sub::Repos(r) => r,
        })
    }

    #[test]
    fn repos_alone_still_lists_and_subcommands_parse() {
        let r = parse(&["--region", "eu-west-1", "--output", "json"]).unwrap();
        assert!(r.command.is_none());
        assert!(matches!(
            parse(&["list", "--page-size", "5"]).unwrap().command,
            Some(ReposCommand::List(_))
        ));
        assert!(matches!(
            parse(&["create", "team/app", "--tag-immutability", "IMMUTABLE"])
                .unwrap()
                .command,
            Some(ReposCommand::Create(_))
        ));
        assert!(matches!(
            parse(&["policy", "set", "app", "--file", "p.json"])
                .unwrap()
                .command,
            Some(ReposCommand::Policy(_))
        ));
        // Listing flags before a subcommand are refused, not silently dropped.
        assert!(parse(&["--region", "eu-west-1", "create", "app"]).is_err());
        let e = parse(&["create", "Bad Name"]).err().unwrap();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("NAME"), "{e}");
        let e = parse(&["create", "app", "--kms-key", "alias/x"])
            .err()
            .unwrap();
        assert!(e.to_string().contains("--encryption"), "{e}");
    }
}
