//! The AWS identity flags shared by the commands that call AWS (`token`, `repos`).
//! They build the same [`Identity`] as an EcrRegistry's `spec.auth`: the default
//! credential chain (environment, AWS_PROFILE, web identity, EKS Pod Identity,
//! instance profile), then the role chain of `--via-role-arn` and `--role-arn`.

use aws_config::SdkConfig;
use aws_types::region::Region;
use ecr_operator::Error;
use ecr_operator::aws::identity::Identity;
use ecr_operator::crd::ecr_registry::{
    AssumeRole, Endpoint, REGION_PATTERN, ROLE_ARN_PATTERN, ViaRole,
};
use regex::Regex;
use std::sync::LazyLock;

/// The region and the identity of the commands that call AWS.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "AWS identity")]
pub struct AwsArgs {
    /// AWS region of the registries, e.g. eu-west-1, cn-north-1, us-gov-west-1,
    /// eusc-de-east-1 (any partition). Default: $AWS_REGION, then $AWS_DEFAULT_REGION.
    #[arg(long, value_name = "REGION", value_parser = parse_region)]
    pub region: Option<String>,

    #[command(flatten)]
    pub role: RoleArgs,
}

/// The role chain on top of the default credential chain (also `mirror`'s, for
/// its ECR login, without --region: the region is the registry host's).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RoleArgs {
    /// Assume this IAM role before calling ECR, e.g.
    /// arn:aws:iam::123456789012:role/ecr-pull. The caller's credentials come from the
    /// default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web
    /// identity, EKS Pod Identity, instance profile).
    #[arg(long, value_name = "ARN", value_parser = parse_role_arn)]
    pub role_arn: Option<String>,

    /// External ID that the trust policy of --role-arn requires (sts:ExternalId).
    #[arg(long, value_name = "ID", requires = "role_arn", value_parser = parse_external_id)]
    pub external_id: Option<String>,

    /// Role chaining: assume this intermediate role first, then --role-arn with the
    /// intermediate role's credentials.
    #[arg(long, value_name = "ARN", requires = "role_arn", value_parser = parse_role_arn)]
    pub via_role_arn: Option<String>,

    /// External ID that the trust policy of --via-role-arn requires.
    #[arg(long, value_name = "ID", requires = "via_role_arn", value_parser = parse_external_id)]
    pub via_external_id: Option<String>,

    /// Role session name of the assumed roles, visible in CloudTrail.
    /// Default: ecr-operator.
    #[arg(long, value_name = "NAME", requires = "role_arn", value_parser = parse_session_name)]
    pub session_name: Option<String>,

    /// Lifetime of the --role-arn session in seconds, 900 to 43200. Default: 3600.
    #[arg(
        long,
        value_name = "SECONDS",
        requires = "role_arn",
        value_parser = clap::value_parser!(i32).range(900..=43200)
    )]
    pub duration_seconds: Option<i32>,
}

impl AwsArgs {
    /// The region from --region, AWS_REGION or AWS_DEFAULT_REGION. A missing or
    /// malformed one is a usage error: the process exits with code 2.
    pub fn region_or_exit(&self, subcommand: &str) -> String {
        if let Some(r) = &self.region {
            return r.clone();
        }
        for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
            if let Some(value) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
                let value = value.trim().to_string();
                match parse_region(&value) {
                    Ok(r) => return r,
                    Err(e) => usage_exit(subcommand, &format!("{var}: {e}")),
                }
            }
        }
        usage_exit(
            subcommand,
            "no region: pass --region or set AWS_REGION (e.g. --region eu-west-1)",
        )
    }

    /// The identity: the default credential chain, then the role chain, if any.
    pub fn identity(&self, region: &str) -> Identity {
        Identity {
            region: region.to_string(),
            public: false,
            // FIPS for the CLI comes from AWS_USE_FIPS_ENDPOINT, in the base config.
            fips: false,
            static_keys: None,
            assume_role: self.role.role_arn.as_ref().map(|arn| AssumeRole {
                role_arn: arn.clone(),
                external_id: self.role.external_id.clone(),
                session_name: self.role.session_name.clone(),
                duration_seconds: self.role.duration_seconds,
                via: self.role.via_role_arn.as_ref().map(|via| ViaRole {
                    role_arn: via.clone(),
                    external_id: self.role.via_external_id.clone(),
                    session_name: self.role.session_name.clone(),
                }),
            }),
        }
    }

    /// The flags that reproduce this identity on another command line.
    pub fn identity_flags(&self, region: &str) -> Vec<String> {
        let mut out = vec!["--region".to_string(), region.to_string()];
        let mut push = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                out.push(flag.to_string());
                out.push(v);
            }
        };
        push("--role-arn", self.role.role_arn.clone());
        push("--external-id", self.role.external_id.clone());
        push("--via-role-arn", self.role.via_role_arn.clone());
        push("--via-external-id", self.role.via_external_id.clone());
        push("--session-name", self.role.session_name.clone());
        push(
            "--duration-seconds",
            self.role.duration_seconds.map(|d| d.to_string()),
        );
        out
    }

    /// The message for a failed token or credential fetch, in terms of this
    /// command's flags and environment. Never contains a credential.
    pub fn explain(&self, e: Error) -> anyhow::Error {
        match e {
            Error::Throttled { operation } => super::exit::retryable(anyhow::anyhow!(
                "AWS throttled {operation} (rate exceeded) and the retries ran out; try again in a moment, or raise AWS_MAX_ATTEMPTS (default 3)"
            )),
            Error::NoCredentials { detail } => anyhow::anyhow!(
                "no AWS credentials: {detail}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or run where web identity (IRSA), EKS Pod Identity or an instance profile provides them"
            ),
            Error::AssumeRoleDenied {
                role_arn, detail, ..
            } => {
                let via = self.role.via_role_arn.as_deref() == Some(role_arn.as_str());
                let (flag, id_flag, has_id) = if via {
                    (
                        "--via-role-arn",
                        "--via-external-id",
                        self.role.via_external_id.is_some(),
                    )
                } else {
                    (
                        "--role-arn",
                        "--external-id",
                        self.role.external_id.is_some(),
                    )
                };
                let hint = if has_id {
                    format!(" and that its sts:ExternalId condition equals {id_flag}")
                } else {
                    format!(" (pass {id_flag} if it requires sts:ExternalId)")
                };
                anyhow::anyhow!(
                    "cannot assume role {role_arn} ({flag}): {detail}; check that the role's trust policy allows the calling identity{hint}"
                )
            }
            // The library's message speaks of an EcrRegistry; here the identity is
            // this command's.
            Error::EcrPublicAccessDenied { detail } => anyhow::anyhow!(
                "access denied on ecr-public:GetAuthorizationToken: {detail}; the calling identity ({}) needs ecr-public:GetAuthorizationToken and sts:GetServiceBearerToken in its IAM policy",
                self.describe_identity()
            ),
            other => anyhow::Error::new(other),
        }
    }

    /// Who calls AWS, in terms of the flags (external IDs not shown).
    fn describe_identity(&self) -> String {
        match &self.role.role_arn {
            None => "the default AWS credential chain".into(),
            Some(role) => match &self.role.via_role_arn {
                None => format!("--role-arn {role}"),
                Some(via) => format!("--role-arn {role} via --via-role-arn {via}"),
            },
        }
    }
}

/// The SDK configuration of the environment (credential chain, AWS_ENDPOINT_URL,
/// AWS_MAX_ATTEMPTS) for `region`.
/// The standard AWS environment, with HTTPS_PROXY/NO_PROXY honoured, in `region`.
pub async fn base_config(region: &str) -> SdkConfig {
    ecr_operator::aws::base_config::load()
        .await
        .to_builder()
        .region(Region::new(region.to_string()))
        .build()
}

/// The standard AWS environment for ECR Public: region us-east-1 (the only one
/// with its API), and no FIPS whatever AWS_USE_FIPS_ENDPOINT says (ECR Public has
/// no FIPS endpoint: the SDK would name a host that does not exist).
pub async fn public_base_config() -> SdkConfig {
    base_config(ecr_operator::aws::identity::PUBLIC_REGION)
        .await
        .to_builder()
        .use_fips(false)
        .build()
}

/// Prints a usage error the way clap does and exits with code 2.
pub fn usage_exit(subcommand: &str, message: &str) -> ! {
    clap::Error::raw(
        clap::error::ErrorKind::MissingRequiredArgument,
        format!("{message}\n\nFor more information, try 'ecr-operator {subcommand} --help'.\n"),
    )
    .exit()
}

/// The CRD's region pattern, `REGION_PATTERN`: a region of any partition
/// (us-east-1, cn-north-1, us-gov-west-1, us-isof-south-1, eusc-de-east-1, …).
pub fn parse_region(s: &str) -> Result<String, String> {
    static RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(REGION_PATTERN).expect("valid REGION_PATTERN"));
    if RE.is_match(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not an AWS region like eu-west-1, cn-north-1, us-gov-west-1 or eusc-de-east-1"
        ))
    }
}

/// The CRD's `ROLE_ARN_PATTERN`: a role ARN of any partition (arn:aws:…,
/// arn:aws-cn:…, arn:aws-us-gov:…, arn:aws-iso[-b|-e|-f]:…, arn:aws-eusc:…).
pub fn parse_role_arn(s: &str) -> Result<String, String> {
    static RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(ROLE_ARN_PATTERN).expect("valid ROLE_ARN_PATTERN"));
    if RE.is_match(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not an IAM role ARN like arn:aws:iam::123456789012:role/ecr-pull"
        ))
    }
}

/// 2 to 1224 characters of `[\w+=,.@:/-]`, as the CRD's externalId.
pub fn parse_external_id(s: &str) -> Result<String, String> {
    let ok = (2..=1224).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b));
    ok.then(|| s.to_string())
        .ok_or_else(|| "must be 2 to 1224 characters of letters, digits and _+=,.@:/-".to_string())
}

/// 2 to 64 characters of `[\w+=,.@-]`, as the CRD's sessionName.
pub fn parse_session_name(s: &str) -> Result<String, String> {
    let ok = (2..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    ok.then(|| s.to_string())
        .ok_or_else(|| "must be 2 to 64 characters of letters, digits and _+=,.@-".to_string())
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A 12-digit AWS account ID.
pub fn parse_account_id(s: &str) -> Result<String, String> {
    is_account_id(s)
        .then(|| s.to_string())
        .ok_or_else(|| format!("{s:?} is not a 12-digit AWS account ID"))
}

/// Standard, Fips or DualStack (any case).
pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    match s.to_ascii_lowercase().as_str() {
        "standard" => Ok(Endpoint::Standard),
        "fips" => Ok(Endpoint::Fips),
        "dualstack" | "dual-stack" => Ok(Endpoint::DualStack),
        _ => Err(format!(
            "{s:?} is not an endpoint variant: use Standard, Fips or DualStack"
        )),
    }
}

/// Quotes `s` for a POSIX shell when it holds anything but safe characters.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-%".contains(&b));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_follow_the_crd_pattern() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "cn-north-1",
            "us-gov-west-1",
            "us-iso-east-1",
            "us-isob-east-1",
            "eu-isoe-west-1",
            "us-isof-south-1",
            "us-isof-east-1",
            "eusc-de-east-1",
        ] {
            assert!(parse_region(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "useast1",
            "US-EAST-1",
            "us-east",
            "us-east-1a",
            "usa-east-1",
            "eusc-east-1",
            "us-isoz-east-1",
            " us-east-1",
        ] {
            let e = parse_region(bad).unwrap_err();
            assert!(e.contains("eusc-de-east-1"), "{e}");
        }
    }

    #[test]
    fn role_arns_follow_the_crd_pattern() {
        for ok in [
            "arn:aws:iam::123456789012:role/ecr-pull",
            "arn:aws-cn:iam::123456789012:role/path/to/role",
            "arn:aws-us-gov:iam::123456789012:role/a+b=c,d.e@f_g-h",
            "arn:aws-iso:iam::123456789012:role/x",
            "arn:aws-iso-b:iam::123456789012:role/x",
            "arn:aws-iso-e:iam::123456789012:role/x",
            "arn:aws-iso-f:iam::123456789012:role/x",
            "arn:aws-eusc:iam::123456789012:role/ecr-pull",
        ] {
            assert!(parse_role_arn(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ecr-pull",
            "arn:aws:iam::12345:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:sts::123456789012:role/x",
            "arn:azure:iam::123456789012:role/x",
            "arn:aws-iso-z:iam::123456789012:role/x",
            "arn:aws:iam::123456789012:role/x y",
        ] {
            let e = parse_role_arn(bad).unwrap_err();
            assert!(e.contains("arn:aws:iam::123456789012:role/"), "{e}");
        }
    }

    #[test]
    fn identity_carries_the_role_chain() {
        let args = AwsArgs {
            region: None,
            role: RoleArgs {
                role_arn: Some("arn:aws:iam::111111111111:role/target".into()),
                external_id: Some("ext-1".into()),
                via_role_arn: Some("arn:aws:iam::222222222222:role/hub".into()),
                via_external_id: Some("ext-2".into()),
                session_name: Some("ci".into()),
                duration_seconds: Some(900),
            },
        };
        let id = args.identity("eu-west-1");
        let role = id.assume_role.unwrap();
        assert_eq!(role.role_arn, "arn:aws:iam::111111111111:role/target");
        assert_eq!(role.external_id.as_deref(), Some("ext-1"));
        assert_eq!(role.duration_seconds, Some(900));
        let via = role.via.unwrap();
        assert_eq!(via.role_arn, "arn:aws:iam::222222222222:role/hub");
        assert_eq!(via.external_id.as_deref(), Some("ext-2"));
        assert_eq!(via.session_name.as_deref(), Some("ci"));
        assert_eq!(
            args.identity_flags("eu-west-1").join(" "),
            "--region eu-west-1 --role-arn arn:aws:iam::111111111111:role/target \
             --external-id ext-1 --via-role-arn arn:aws:iam::222222222222:role/hub \
             --via-external-id ext-2 --session-name ci --duration-seconds 900"
        );
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("eu-west-1"), "eu-west-1");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn endpoints_in_any_case() {
        assert_eq!(parse_endpoint("fips"), Ok(Endpoint::Fips));
        assert_eq!(parse_endpoint("DualStack"), Ok(Endpoint::DualStack));
        assert!(parse_endpoint("Ipv6").unwrap_err().contains("Standard"));
    }
}
