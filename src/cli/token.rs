//! `ecr-operator token`: a fresh ECR authorization token for CI and people, fetched
//! by the same code as an EcrRegistry's `spec.auth` (`Identity::fetch_token`): the
//! private registries' of a region, or with `--public` ECR Public's
//! (`public.ecr.aws`, as an EcrRegistry's `spec.public`).

use super::aws_args::{self, AwsArgs, shell_quote};
use super::exit::EXIT_CODES;
use anyhow::Context as _;
use ecr_operator::aws::auth_token::AuthToken;
use ecr_operator::aws::docker_config::DockerConfig;
use ecr_operator::aws::registry_hosts::{Partition, registry_hosts};
use ecr_operator::crd::ecr_registry::Endpoint;
use ecr_operator::registry::regions::PUBLIC_HOST;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

pub const LONG_ABOUT: &str = "\
Fetch an ECR authorization token (GetAuthorizationToken) and print it for scripts, \
for Docker, or merge it into a Docker config file.

Credentials come from the standard AWS environment (AWS_ACCESS_KEY_ID and \
AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity/IRSA, EKS Pod Identity, instance \
profile; AWS_ENDPOINT_URL is honoured), optionally followed by \
--via-role-arn and --role-arn: the same code path as an EcrRegistry's spec.auth. \
One token serves every registry of the region that the identity may read; the \
hosts printed are those of --registry-id (default: the token's own account) times \
--endpoint.

With --public the token is ECR Public's (ecr-public:GetAuthorizationToken, which \
also needs sts:GetServiceBearerToken), for the one host public.ecr.aws: for pulls \
with the higher rate limits of an authenticated client, and for pushes to your \
public repositories.

Only --format json, dockerconfigjson and password print the secret; logs and \
errors never contain it.";

const AFTER_HELP: &str = "\
Examples:
  # JSON for scripts: [{host, username, password, expiresAt}]
  ecr-operator token --region eu-west-1

  # Log Docker in without putting the password on a command line
  ecr-operator token --region eu-west-1 --format password \\
    | docker login --username AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com

  # Print that pipeline for every host (through a role chain with external IDs)
  ecr-operator token --region eu-west-1 --registry-id 123456789012 --registry-id 210987654321 \\
    --via-role-arn arn:aws:iam::111111111111:role/hub --via-external-id hub-ext \\
    --role-arn arn:aws:iam::210987654321:role/ecr-pull --external-id pull-ext \\
    --format docker-login

  # Merge into ~/.docker/config.json (or $DOCKER_CONFIG/config.json), keeping other entries
  ecr-operator token --region eu-west-1 --write-docker-config

  # ECR Public: no region needed (its API is in us-east-1 only)
  ecr-operator token --public --format password \\
    | docker login --username AWS --password-stdin public.ecr.aws

  # The payload of a kubernetes.io/dockerconfigjson Secret
  kubectl create secret generic ecr --type kubernetes.io/dockerconfigjson \\
    --from-file=.dockerconfigjson=<(ecr-operator token --region eu-west-1 --format dockerconfigjson)
";

#[derive(clap::Args)]
#[command(after_help = format!("{AFTER_HELP}\n{EXIT_CODES}"))]
pub struct TokenArgs {
    /// The token of ECR Public (host public.ecr.aws) instead of the private
    /// registries'. Its API is in us-east-1 only, so the region does not matter:
    /// --region, AWS_REGION and AWS_DEFAULT_REGION are ignored (a --region or a
    /// role ARN outside the aws partition is refused: ECR Public exists only
    /// there), and so is AWS_USE_FIPS_ENDPOINT (ECR Public has no FIPS endpoint).
    /// The role flags apply as without it. Not with --registry-id or --endpoint.
    #[arg(long)]
    public: bool,

    /// 12-digit account ID whose registry host to output; repeat (or separate with
    /// commas) for several. Default: the account of the credentials (from the token).
    #[arg(
        long = "registry-id",
        value_name = "ACCOUNT",
        value_delimiter = ',',
        value_parser = aws_args::parse_account_id
    )]
    registry_ids: Vec<String>,

    /// Host-name variant per account: Standard (<acct>.dkr.ecr.<region>.amazonaws.com),
    /// Fips (<acct>.dkr.ecr-fips.<region>...), DualStack (<acct>.dkr-ecr.<region>.on.aws);
    /// repeat or separate with commas. Default: Standard.
    #[arg(
        long = "endpoint",
        value_name = "VARIANT",
        value_delimiter = ',',
        value_parser = aws_args::parse_endpoint
    )]
    endpoints: Vec<Endpoint>,

    /// Output format (`--format` is the same flag: `--output` is the name every
    /// command shares).
    #[arg(long = "output", short = 'o', visible_alias = "format", value_enum,
          default_value_t = Format::Json)]
    format: Format,

    /// Merge the credentials into a Docker config file instead of printing them:
    /// PATH, or $DOCKER_CONFIG/config.json, or ~/.docker/config.json. Other entries
    /// and settings are kept; the file is replaced atomically with mode 0600. Prints
    /// the path and hosts, never the password.
    #[arg(
        long,
        value_name = "PATH",
        num_args = 0..=1,
        conflicts_with = "format"
    )]
    write_docker_config: Option<Option<PathBuf>>,

    // The identity: the default credential chain, then the optional role chain.
    #[command(flatten)]
    aws: AwsArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// [{host, username, password, expiresAt}], one object per registry host (prints the password).
    Json,
    /// The .dockerconfigjson payload of a pull secret (prints the password).
    Dockerconfigjson,
    /// The bare password on one line, for `docker login --password-stdin`.
    Password,
    /// Per host, a `... --format password | docker login ...` pipeline (no password).
    DockerLogin,
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    if args.public {
        return run_public(args).await;
    }
    let region = args.aws.region_or_exit("token");
    // Before any AWS call: a variant the partition has no host for is a usage error.
    for e in &args.endpoints {
        if let Some(m) = ecr_operator::aws::registry_hosts::unsupported_endpoint(&region, *e) {
            aws_args::usage_exit("token", &format!("--endpoint: {m}"));
        }
    }
    let identity = args.aws.identity(&region);
    let base = aws_args::base_config(&region).await;
    let token = identity
        .fetch_token(&base)
        .await
        .map_err(|e| fetch_error(&args.aws, e))?;
    let accounts = if args.registry_ids.is_empty() {
        token.account.clone().into_iter().collect()
    } else {
        args.registry_ids.clone()
    };
    anyhow::ensure!(
        !accounts.is_empty(),
        "the token does not say which account it belongs to: pass --registry-id ACCOUNT"
    );
    let endpoints = if args.endpoints.is_empty() {
        vec![Endpoint::Standard]
    } else {
        args.endpoints.clone()
    };
    let hosts = registry_hosts(&accounts, &region, &endpoints);
    let flags = args.aws.identity_flags(&region);
    output(&args, token, &hosts, &flags, "ECR")
}

/// `token --public`: ECR Public's token, for public.ecr.aws.
async fn run_public(args: TokenArgs) -> anyhow::Result<()> {
    // Before any AWS call: what cannot apply to ECR Public is a usage error.
    let mut not_public: Vec<&str> = Vec::new();
    if !args.registry_ids.is_empty() {
        not_public.push("--registry-id");
    }
    if !args.endpoints.is_empty() {
        not_public.push("--endpoint");
    }
    if !not_public.is_empty() {
        aws_args::usage_exit(
            "token",
            &format!(
                "{} cannot be used with --public: ECR Public has one registry host, {PUBLIC_HOST}, for every account",
                not_public.join(" and ")
            ),
        );
    }
    if let Some(m) = public_partition_error(&args.aws) {
        aws_args::usage_exit("token", &m);
    }
    // The region given (if any) is ignored: the API is in us-east-1 only.
    let identity = args
        .aws
        .identity(ecr_operator::aws::identity::PUBLIC_REGION)
        .for_public();
    let base = aws_args::public_base_config().await;
    let token = identity
        .fetch_token(&base)
        .await
        .map_err(|e| fetch_error(&args.aws, e))?;
    // The pipelines repeat --public instead of the region.
    let mut flags = args
        .aws
        .identity_flags(ecr_operator::aws::identity::PUBLIC_REGION);
    debug_assert_eq!(flags.first().map(String::as_str), Some("--region"));
    flags.splice(0..2, ["--public".to_string()]);
    output(
        &args,
        token,
        &[PUBLIC_HOST.to_string()],
        &flags,
        "ECR Public",
    )
}

/// The message of a failed token fetch; retryable (exit 3) where AWS may answer
/// later (throttling, 5xx, timeouts, lost connections), as `mirror`'s ECR login.
fn fetch_error(aws: &AwsArgs, e: ecr_operator::Error) -> anyhow::Error {
    let transient = e.is_transient();
    let e = aws.explain(e);
    if transient {
        super::exit::retryable(e)
    } else {
        e
    }
}

/// A flag of `aws` outside the aws partition, the only one with ECR Public.
fn public_partition_error(aws: &AwsArgs) -> Option<String> {
    if let Some(region) = &aws.region {
        let p = Partition::of_region(region).id;
        if p != "aws" {
            return Some(format!(
                "--region {region} is in the {p} partition: ECR Public exists only in the aws partition (its API in us-east-1); --public needs no --region"
            ));
        }
    }
    for (flag, arn) in [
        ("--role-arn", &aws.role.role_arn),
        ("--via-role-arn", &aws.role.via_role_arn),
    ] {
        let Some(arn) = arn else { continue };
        let p = arn.split(':').nth(1).unwrap_or_default();
        if p != "aws" {
            return Some(format!(
                "{flag} {arn} is in the {p} partition: ECR Public exists only in the aws partition, whose credentials --public needs"
            ));
        }
    }
    None
}

/// Prints `token` for `hosts` as --output says, or writes the Docker config.
/// `what` names the registries in the message of --write-docker-config.
fn output(
    args: &TokenArgs,
    token: AuthToken,
    hosts: &[String],
    flags: &[String],
    what: &str,
) -> anyhow::Result<()> {
    // Whole seconds, as AWS reports them.
    let token = AuthToken {
        expires_at: jiff::Timestamp::from_second(token.expires_at.as_second())
            .unwrap_or(token.expires_at),
        ..token
    };
    tracing::debug!(?hosts, expires_at = %token.expires_at, "fetched token");

    let out = match &args.write_docker_config {
        Some(path) => {
            let path = match path {
                Some(p) => p.clone(),
                None => default_docker_config()?,
            };
            let written = write_docker_config(&path, &token, hosts)?;
            let mut s = format!(
                "wrote {what} credentials (expire {}) to {} (mode 0600) for:\n",
                token.expires_at,
                written.display()
            );
            for h in hosts {
                s.push_str(&format!("  {h}\n"));
            }
            s
        }
        None => render(args.format, &token, hosts, flags),
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")
}

/// The output of `format`; identity flags go into the `docker-login` pipelines.
fn render(format: Format, token: &AuthToken, hosts: &[String], flags: &[String]) -> String {
    match format {
        Format::Json => {
            let entries: Vec<_> = hosts
                .iter()
                .map(|h| {
                    serde_json::json!({
                        "host": h,
                        "username": token.username,
                        "password": token.password.expose(),
                        "expiresAt": token.expires_at.to_string(),
                    })
                })
                .collect();
            let mut s = serde_json::to_string_pretty(&entries).expect("JSON of strings");
            s.push('\n');
            s
        }
        Format::Dockerconfigjson => {
            let mut s = DockerConfig::for_token(token, hosts).to_json();
            s.push('\n');
            s
        }
        Format::Password => format!("{}\n", token.password.expose()),
        Format::DockerLogin => {
            let flags: Vec<String> = flags.iter().map(|f| shell_quote(f)).collect();
            hosts
                .iter()
                .map(|h| {
                    format!(
                        "ecr-operator token {} --format password | docker login --username {} --password-stdin {}\n",
                        flags.join(" "),
                        shell_quote(&token.username),
                        shell_quote(h)
                    )
                })
                .collect()
        }
    }
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
fn default_docker_config() -> anyhow::Result<PathBuf> {
    let non_empty = |v: &str| std::env::var_os(v).filter(|s| !s.is_empty());
    if let Some(dir) = non_empty("DOCKER_CONFIG") {
        return Ok(PathBuf::from(dir).join("config.json"));
    }
    let home = non_empty("HOME").context(
        "no Docker config file to write: pass --write-docker-config PATH, or set DOCKER_CONFIG or HOME",
    )?;
    Ok(PathBuf::from(home).join(".docker").join("config.json"))
}

/// Merges the token into the Docker config at `path` (following a symlink), keeping
/// every other entry and setting, and replaces the file atomically: a temporary file
/// with mode 0600 in the same directory, fsynced, then renamed over it. Returns the
/// path written.
fn write_docker_config(
    path: &Path,
    token: &AuthToken,
    hosts: &[String],
) -> anyhow::Result<PathBuf> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .with_context(|| format!("--write-docker-config {}: not a file path", path.display()))?
        .to_string_lossy()
        .into_owned();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    let mut config: DockerConfig = match std::fs::read(&path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => DockerConfig::default(),
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            // serde_json's message gives line and column, never the content.
            anyhow::anyhow!(
                "{} is not a valid Docker config file ({e}); fix or move it, or pass --write-docker-config OTHER_PATH; nothing was written",
                path.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DockerConfig::default(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if let Some(store) = config.other.get("credsStore").and_then(|v| v.as_str()) {
        eprintln!(
            "note: {} sets credsStore {store:?}: docker reads registry credentials from that store, not from auths (skopeo, podman and crane read auths); for docker use --format docker-login",
            path.display()
        );
    }
    if let Some(helpers) = config.other.get("credHelpers").and_then(|v| v.as_object()) {
        for h in hosts.iter().filter(|h| helpers.contains_key(h.as_str())) {
            eprintln!(
                "note: {} has a credHelpers entry for {h}: docker asks that helper, not auths, for this host",
                path.display()
            );
        }
    }
    config.merge_token(token, hosts);
    let mut json = serde_json::to_vec_pretty(&config).expect("JSON of strings");
    json.push(b'\n');

    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecr_operator::aws::auth_token::Password;

    fn token() -> AuthToken {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        AuthToken {
            username: "AWS".into(),
            password: Password::new("s3cret-pw"),
            account: Some("123456789012".into()),
            fetched_at: now,
            expires_at: now + jiff::SignedDuration::from_hours(12),
            expiry_adjusted: false,
        }
    }

    #[test]
    fn docker_login_lines_hold_no_password() {
        let hosts = vec!["123456789012.dkr.ecr.eu-west-1.amazonaws.com".to_string()];
        let flags: Vec<String> = ["--region", "eu-west-1", "--external-id", "a b"]
            .map(String::from)
            .into();
        let out = render(Format::DockerLogin, &token(), &hosts, &flags);
        assert_eq!(
            out,
            "ecr-operator token --region eu-west-1 --external-id 'a b' --format password | docker login --username AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com\n"
        );
        assert!(!out.contains("s3cret"));
    }

    #[test]
    fn public_refuses_flags_of_other_partitions() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            token: TokenArgs,
        }
        let check = |args: &[&str]| {
            let cli =
                Cli::try_parse_from(std::iter::once("token").chain(args.iter().copied())).unwrap();
            public_partition_error(&cli.token.aws)
        };
        assert_eq!(check(&["--public"]), None);
        assert_eq!(check(&["--public", "--region", "eu-west-1"]), None);
        assert_eq!(
            check(&["--public", "--role-arn", "arn:aws:iam::123456789012:role/x"]),
            None
        );
        let e = check(&["--public", "--region", "cn-north-1"]).unwrap();
        assert!(
            e.contains("--region cn-north-1 is in the aws-cn partition"),
            "{e}"
        );
        let e = check(&[
            "--public",
            "--role-arn",
            "arn:aws:iam::123456789012:role/x",
            "--via-role-arn",
            "arn:aws-us-gov:iam::123456789012:role/hub",
        ])
        .unwrap();
        assert!(e.contains("--via-role-arn arn:aws-us-gov:"), "{e}");
    }

    #[test]
    fn json_has_one_entry_per_host() {
        let hosts = vec!["a".to_string(), "b".to_string()];
        let v: serde_json::Value =
            serde_json::from_str(&render(Format::Json, &token(), &hosts, &[])).unwrap();
        assert_eq!(v[1]["host"], "b");
        assert_eq!(v[0]["password"], "s3cret-pw");
        assert_eq!(v[0]["expiresAt"], "2026-01-01T12:00:00Z");
        assert_eq!(
            render(Format::Password, &token(), &hosts, &[]),
            "s3cret-pw\n"
        );
    }

    #[test]
    fn writing_keeps_other_entries_and_refuses_broken_files() {
        let dir = std::env::temp_dir().join(format!("ecr-token-test-{}", rand::random::<u32>()));
        let path = dir.join("sub").join("config.json");
        let host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com".to_string();
        write_docker_config(&path, &token(), std::slice::from_ref(&host)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );

        std::fs::write(
            &path,
            r#"{"auths":{"x.io":{"auth":"eA=="}},"credsStore":"pass"}"#,
        )
        .unwrap();
        write_docker_config(&path, &token(), std::slice::from_ref(&host)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["auths"]["x.io"]["auth"], "eA==");
        assert_eq!(v["credsStore"], "pass");
        assert_eq!(v["auths"][&host]["password"], "s3cret-pw");

        std::fs::write(&path, "{not json").unwrap();
        let e = write_docker_config(&path, &token(), &[host]).unwrap_err();
        assert!(e.to_string().contains("not a valid Docker config"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
        // No temporary files are left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
