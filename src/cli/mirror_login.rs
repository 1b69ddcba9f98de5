//! Where `mirror` gets registry credentials, per side: that side's authfiles
//! (`--src-authfile`, `--dest-authfile`), then the shared ones (`--authfile`),
//! each with its credential helpers (`ecr_operator::oci::credentials`); with no
//! authfile flag at all, the default Docker config file. Where none gives
//! credentials for an ECR registry host, `mirror` logs in by itself: one
//! GetAuthorizationToken per region with the identity of `token` (the standard
//! AWS environment, then --via-role-arn/--role-arn), the same code path
//! (`Identity::fetch_token`).
//!
//! ECR Public (`public.ecr.aws`) too: one ecr-public:GetAuthorizationToken per run
//! (in us-east-1, as `token --public`), with the same identity. Its images pull
//! anonymously as well (with lower rate limits), so for the source a failed ECR
//! Public login is a warning and the pull goes on anonymously: a user without AWS
//! credentials loses nothing. For the destination there is no anonymous push: a
//! failed login fails the run, like a private registry's.

use super::aws_args::{self, AwsArgs, RoleArgs};
use super::exit;
use ecr_operator::Error;
use ecr_operator::aws::auth_token::AuthToken;
use ecr_operator::aws::identity::PUBLIC_REGION;
use ecr_operator::aws::registry_hosts::{EcrHost, parse_registry_host};
use ecr_operator::oci::{AuthFiles, Credentials, ImageRef, Source};
use ecr_operator::registry::regions::PUBLIC_HOST;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(next_help_heading = "Credentials")]
pub struct LoginArgs {
    /// Docker config file with registry credentials ("auths", "credHelpers",
    /// "credsStore"), for both sides. Repeatable: the first file that gives
    /// credentials for a registry wins. A missing file is an error. Default (when
    /// no authfile flag is given): $DOCKER_CONFIG/config.json or
    /// ~/.docker/config.json, if present.
    #[arg(long = "authfile", value_name = "PATH")]
    authfiles: Vec<PathBuf>,

    /// Docker config file for the source only, searched before the --authfile
    /// files. Repeatable.
    #[arg(long = "src-authfile", value_name = "PATH")]
    src_authfiles: Vec<PathBuf>,

    /// Docker config file for the destination only, searched before the
    /// --authfile files. Repeatable.
    #[arg(long = "dest-authfile", value_name = "PATH")]
    dest_authfiles: Vec<PathBuf>,

    /// Do not log in to ECR by itself: a registry host
    /// <account>.dkr.ecr.<region>.amazonaws.com (or another ECR host), or ECR
    /// Public's public.ecr.aws, without credentials in the authfiles is then
    /// accessed anonymously. By default mirror logs in to them (GetAuthorizationToken
    /// per region; for public.ecr.aws once, ecr-public:GetAuthorizationToken in
    /// us-east-1); a failed login to public.ecr.aws as the source only warns and
    /// pulls anonymously, to any other ECR host (or to public.ecr.aws as the
    /// destination) it fails the run.
    #[arg(long, conflicts_with = "role_arn")]
    no_ecr_login: bool,

    #[command(flatten)]
    identity: LoginIdentity,
}

/// The identity of the ECR login: `token`'s flags without --region (the region is
/// the registry host's).
#[derive(clap::Args)]
#[command(
    next_help_heading = "ECR login (when no authfile has credentials for an ECR host or public.ecr.aws)"
)]
struct LoginIdentity {
    #[command(flatten)]
    role: RoleArgs,
}

impl LoginIdentity {
    /// The same identity as `token` takes, in `region` (set by the caller).
    fn aws_args(&self) -> AwsArgs {
        AwsArgs {
            region: None,
            role: self.role.clone(),
        }
    }

    /// Who asks for the token, in terms of the flags (external IDs named, not shown).
    fn describe(&self) -> String {
        let Some(role) = &self.role.role_arn else {
            return "the default AWS credential chain".into();
        };
        let mut s = format!("--role-arn {role}");
        if self.role.external_id.is_some() {
            s.push_str(" --external-id …");
        }
        if let Some(via) = &self.role.via_role_arn {
            s.push_str(&format!(" --via-role-arn {via}"));
            if self.role.via_external_id.is_some() {
                s.push_str(" --via-external-id …");
            }
        }
        if let Some(name) = &self.role.session_name {
            s.push_str(&format!(" --session-name {name}"));
        }
        if let Some(d) = self.role.duration_seconds {
            s.push_str(&format!(" --duration-seconds {d}"));
        }
        s
    }
}

impl LoginArgs {
    /// The credentials of the source's side and of the destination's.
    pub async fn auth_files(
        &self,
        source: &Source,
        destination: &ImageRef,
    ) -> anyhow::Result<(AuthFiles, AuthFiles)> {
        let (src_paths, dst_paths) = self.paths();
        let (mut src, mut dst) = match (src_paths, dst_paths) {
            (Some(s), Some(d)) => (AuthFiles::read(&s)?, AuthFiles::read(&d)?),
            _ => (AuthFiles::load(&[])?, AuthFiles::load(&[])?),
        };
        if !self.no_ecr_login {
            let mut logins = Logins::default();
            // The source first: its failed ECR Public login is kept for the
            // destination, which must not fetch it again.
            if let Source::Registry(image) = source {
                src = self
                    .ecr_login(src, image, Side::Source, &mut logins)
                    .await?;
            }
            dst = self
                .ecr_login(dst, destination, Side::Destination, &mut logins)
                .await?;
        }
        Ok((src, dst))
    }

    /// The files of each side, in search order; None: no authfile flag was given
    /// (the default file serves both).
    fn paths(&self) -> (Option<Vec<PathBuf>>, Option<Vec<PathBuf>>) {
        if self.authfiles.is_empty()
            && self.src_authfiles.is_empty()
            && self.dest_authfiles.is_empty()
        {
            return (None, None);
        }
        let side = |own: &[PathBuf]| own.iter().chain(&self.authfiles).cloned().collect();
        (
            Some(side(&self.src_authfiles)),
            Some(side(&self.dest_authfiles)),
        )
    }

    /// `files`, with ECR login credentials for `image`'s registry when it is an
    /// ECR host (or public.ecr.aws) that `files` has no credentials for.
    async fn ecr_login(
        &self,
        files: AuthFiles,
        image: &ImageRef,
        side: Side,
        logins: &mut Logins,
    ) -> anyhow::Result<AuthFiles> {
        if is_public_host(&image.registry) {
            if files.lookup(&image.registry, &image.repository)?.is_some() {
                return Ok(files);
            }
            return self.public_login(files, image, side, logins).await;
        }
        let Some(ecr) = ecr_host(&image.registry) else {
            return Ok(files);
        };
        if files.lookup(&image.registry, &image.repository)?.is_some() {
            return Ok(files);
        }
        let tokens = &mut logins.private;
        let token = match tokens.get(&ecr.region) {
            Some(t) => t.clone(),
            None => {
                let t = self.fetch_token(&image.registry, &ecr).await?;
                tokens.insert(ecr.region.clone(), t.clone());
                t
            }
        };
        let origin = format!(
            "ECR login (GetAuthorizationToken as {} in {})",
            self.identity.describe(),
            ecr.region
        );
        Ok(files.with_login(
            &image.registry,
            Credentials {
                username: token.username,
                password: token.password,
                file: PathBuf::from(origin),
            },
        ))
    }

    /// `files` with the ECR Public token for public.ecr.aws, fetched once per run.
    /// Without it the source is pulled anonymously (with a warning); the
    /// destination fails with the login's error.
    async fn public_login(
        &self,
        files: AuthFiles,
        image: &ImageRef,
        side: Side,
        logins: &mut Logins,
    ) -> anyhow::Result<AuthFiles> {
        let host = &image.registry;
        if matches!(logins.public, PublicLogin::NotTried) {
            logins.public = self.fetch_public_token(host).await;
        }
        match &mut logins.public {
            PublicLogin::Token(token) => {
                let origin = format!(
                    "ECR Public login (ecr-public:GetAuthorizationToken as {} in {PUBLIC_REGION})",
                    self.identity.describe()
                );
                Ok(files.with_login(
                    host,
                    Credentials {
                        username: token.username.clone(),
                        password: token.password.clone(),
                        file: PathBuf::from(origin),
                    },
                ))
            }
            PublicLogin::Failed {
                error,
                no_credentials,
            } => match side {
                Side::Source => {
                    let error = error
                        .as_ref()
                        .map_or_else(String::new, |e| format!("{e:#}"));
                    if *no_credentials {
                        // Nothing to log in with: the common case of a user without AWS.
                        tracing::info!(
                            host = %host,
                            %error,
                            "no AWS credentials for an ECR Public login: pulling anonymously"
                        );
                    } else {
                        tracing::warn!(
                            host = %host,
                            %error,
                            "ECR Public login failed: pulling anonymously (public images need no credentials, at lower rate limits)"
                        );
                    }
                    Ok(files)
                }
                Side::Destination => Err(error.take().unwrap_or_else(|| {
                    anyhow::anyhow!("ECR Public login for {host} failed (see above)")
                })),
            },
            PublicLogin::NotTried => unreachable!("fetched above"),
        }
    }

    /// ECR Public's token, by `token --public`'s code path; the error says what
    /// was tried, and is retryable (exit 3) where AWS may answer later.
    async fn fetch_public_token(&self, host: &str) -> PublicLogin {
        let aws = self.identity.aws_args();
        tracing::info!(
            host,
            identity = %self.identity.describe(),
            "no authfile credentials for ECR Public: logging in with ecr-public:GetAuthorizationToken"
        );
        let base = aws_args::public_base_config().await;
        match aws
            .identity(PUBLIC_REGION)
            .for_public()
            .fetch_token(&base)
            .await
        {
            Ok(token) => PublicLogin::Token(token),
            Err(e) => {
                let transient = e.is_transient();
                let no_credentials = matches!(e, Error::NoCredentials { .. });
                let e = aws.explain(e).context(format!(
                    "ECR Public login for {host} failed (ecr-public:GetAuthorizationToken in {PUBLIC_REGION} as {}); \
                     give credentials for {host} in an authfile, or pass --no-ecr-login to skip it",
                    self.identity.describe()
                ));
                PublicLogin::Failed {
                    error: Some(if transient { exit::retryable(e) } else { e }),
                    no_credentials,
                }
            }
        }
    }

    /// One token for `ecr.region`, by `token`'s code path; the error says what
    /// was tried, and is retryable (exit 3) where AWS may answer later.
    async fn fetch_token(&self, host: &str, ecr: &EcrHost) -> anyhow::Result<AuthToken> {
        let aws = self.identity.aws_args();
        let region = &ecr.region;
        tracing::info!(
            host,
            region,
            identity = %self.identity.describe(),
            "no authfile credentials for this ECR registry: logging in with GetAuthorizationToken"
        );
        let base = aws_args::base_config(region).await;
        let token = aws.identity(region).fetch_token(&base).await.map_err(|e| {
            let transient = e.is_transient();
            let e = aws.explain(e).context(format!(
                "ECR login for {host} failed (GetAuthorizationToken in region {region} as {}); \
                 give credentials for {host} in an authfile, or pass --no-ecr-login to skip it",
                self.identity.describe()
            ));
            if transient { exit::retryable(e) } else { e }
        })?;
        if let Some(account) = token.account.as_deref().filter(|a| *a != ecr.account) {
            tracing::debug!(
                host,
                token_account = account,
                "the token is of another account than the registry's; it serves every registry the identity may use"
            );
        }
        Ok(token)
    }
}

/// Which side of the copy a registry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

/// The ECR logins of one run: a token per region, and ECR Public's.
#[derive(Default)]
struct Logins {
    private: HashMap<String, AuthToken>,
    public: PublicLogin,
}

/// ECR Public's login, tried at most once per run.
#[derive(Default)]
enum PublicLogin {
    #[default]
    NotTried,
    Token(AuthToken),
    /// `error` is taken by the destination (the last to ask); `no_credentials`:
    /// the identity had none at all.
    Failed {
        error: Option<anyhow::Error>,
        no_credentials: bool,
    },
}

/// True for ECR Public's registry (`public.ecr.aws`, with or without `:443`).
fn is_public_host(registry: &str) -> bool {
    let host = registry.strip_suffix(":443").unwrap_or(registry);
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case(PUBLIC_HOST)
}

/// The ECR host of a reference's registry (`host[:port]`), if it is one.
fn ecr_host(registry: &str) -> Option<EcrHost> {
    let host = match registry.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    parse_registry_host(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        login: LoginArgs,
    }

    fn parse(args: &[&str]) -> Result<LoginArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("mirror").chain(args.iter().copied())).map(|c| c.login)
    }

    #[test]
    fn side_files_come_before_the_shared_ones_and_the_default_only_without_flags() {
        let l = parse(&[]).unwrap();
        assert_eq!(l.paths(), (None, None));
        let l = parse(&[
            "--authfile",
            "shared",
            "--src-authfile",
            "s1",
            "--dest-authfile",
            "d1",
            "--src-authfile",
            "s2",
        ])
        .unwrap();
        let p = |v: &[&str]| Some(v.iter().map(PathBuf::from).collect::<Vec<_>>());
        assert_eq!(
            l.paths(),
            (p(&["s1", "s2", "shared"]), p(&["d1", "shared"]))
        );
        let l = parse(&["--src-authfile", "s"]).unwrap();
        assert_eq!(l.paths(), (p(&["s"]), p(&[])));
    }

    #[test]
    fn identity_flags_as_token_takes_them() {
        let l = parse(&[]).unwrap();
        assert_eq!(l.identity.describe(), "the default AWS credential chain");
        let l = parse(&[
            "--role-arn",
            "arn:aws:iam::123456789012:role/push",
            "--external-id",
            "secret-ish",
            "--via-role-arn",
            "arn:aws:iam::111111111111:role/hub",
            "--session-name",
            "ci",
        ])
        .unwrap();
        let d = l.identity.describe();
        assert_eq!(
            d,
            "--role-arn arn:aws:iam::123456789012:role/push --external-id … --via-role-arn arn:aws:iam::111111111111:role/hub --session-name ci"
        );
        let id = l.identity.aws_args().identity("eu-west-1");
        let role = id.assume_role.unwrap();
        assert_eq!(role.external_id.as_deref(), Some("secret-ish"));
        assert_eq!(
            role.via.unwrap().role_arn,
            "arn:aws:iam::111111111111:role/hub"
        );
        assert_eq!(id.region, "eu-west-1");
        // As for token: the role's flags need --role-arn; and no role without login.
        assert!(parse(&["--external-id", "x1"]).is_err());
        assert!(parse(&["--role-arn", "nope"]).is_err());
        assert!(
            parse(&[
                "--no-ecr-login",
                "--role-arn",
                "arn:aws:iam::123456789012:role/push"
            ])
            .is_err()
        );
    }

    #[test]
    fn ecr_hosts_with_or_without_a_port() {
        let h = ecr_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com:443").unwrap();
        assert_eq!(
            (h.account.as_str(), h.region.as_str()),
            ("123456789012", "eu-west-1")
        );
        assert!(ecr_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com").is_some());
        assert!(ecr_host("127.0.0.1:5000").is_none());
        assert!(ecr_host("docker.io").is_none());
    }

    #[test]
    fn the_public_host_with_or_without_a_port() {
        assert!(is_public_host("public.ecr.aws"));
        assert!(is_public_host("public.ecr.aws:443"));
        assert!(is_public_host("Public.ECR.aws"));
        assert!(!is_public_host("public.ecr.aws.example"));
        assert!(!is_public_host("public.ecr.aws:5000"));
        assert!(ecr_host("public.ecr.aws").is_none());
    }

    #[tokio::test]
    async fn no_public_login_where_an_authfile_has_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        std::fs::write(
            &file,
            r#"{"auths":{"public.ecr.aws":{"auth":"QVdTOnRvaw=="}}}"#,
        )
        .unwrap();
        let l = parse(&["--authfile", file.to_str().unwrap()]).unwrap();
        let src = Source::parse("public.ecr.aws/docker/library/alpine:3").unwrap();
        let dst = ImageRef::destination("public.ecr.aws/alias/alpine", None).unwrap();
        // No AWS call is made (there is no AWS here): both sides are served.
        let (s, d) = l.auth_files(&src, &dst).await.unwrap();
        for files in [s, d] {
            let c = files
                .lookup("public.ecr.aws", "alias/alpine")
                .unwrap()
                .unwrap();
            assert_eq!(c.file, file);
        }
    }

    #[tokio::test]
    async fn no_login_where_an_authfile_has_credentials_or_the_host_is_not_ecr() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        std::fs::write(
            &file,
            r#"{"auths":{"123456789012.dkr.ecr.eu-west-1.amazonaws.com":{"auth":"QVdTOnRvaw=="}}}"#,
        )
        .unwrap();
        let l = parse(&["--authfile", file.to_str().unwrap()]).unwrap();
        let src = Source::parse("registry.example/app:1").unwrap();
        let dst = ImageRef::destination("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app", None)
            .unwrap();
        // No AWS call is made (there is no AWS here): both sides are served.
        let (s, d) = l.auth_files(&src, &dst).await.unwrap();
        assert!(s.lookup("registry.example", "app").unwrap().is_none());
        let c = d.lookup(&dst.registry, &dst.repository).unwrap().unwrap();
        assert_eq!(
            (c.username.as_str(), c.file.as_path()),
            ("AWS", file.as_path())
        );
    }
}
