//! `ecr-operator repos create NAME`: creates a repository with the settings and
//! policies given, or brings an existing one to them: what was asked for and
//! differs is changed, what was not asked for is left as it is.

use super::super::aws_args::{self, AwsArgs};
use super::super::exit::EXIT_CODES;
use super::{PolicyDoc, TextOrJson, aws_error};
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, ImageTagMutability,
    Repository,
};
use ecr_operator::aws::failure::AwsFailure;
use serde_json::{Value, json};
use std::path::PathBuf;

pub const LONG_ABOUT: &str = "\
Create an ECR repository, or bring an existing one to the settings given. Idempotent: \
run it in every CI setup step. A flag not given leaves that setting as it is; policies \
are compared as JSON (formatting and key order do not count). Prints one line per \
change, or `unchanged`.

Encryption (--encryption, --kms-key) can only be set when the repository is created: \
asking an existing repository for a different one fails (exit 1) and changes nothing. \
The policy files are checked before any AWS call.

IAM actions: ecr:DescribeRepositories, and as needed ecr:CreateRepository, \
ecr:PutImageTagMutability, ecr:PutImageScanningConfiguration, ecr:GetRepositoryPolicy \
and ecr:SetRepositoryPolicy (--policy-file), ecr:GetLifecyclePolicy and \
ecr:PutLifecyclePolicy (--lifecycle-policy-file); with --encryption KMS, \
kms:CreateGrant, kms:RetireGrant and kms:DescribeKey on the key. AWS reports a key by \
its ARN: a key ID or ARN is compared with it, an alias is not (a note says so).";

const AFTER_HELP: &str = "\
Examples:
  ecr-operator repos create team/app --region eu-west-1
  ecr-operator repos create team/app --tag-immutability IMMUTABLE --scan-on-push true \\
    --policy-file ci/ecr-policy.json --lifecycle-policy-file ci/ecr-lifecycle.json
  ecr-operator repos create team/secure --encryption KMS --kms-key alias/ecr \\
    --output json | jq -r .uri
";

#[derive(clap::Args)]
#[command(after_help = format!("{AFTER_HELP}\n{EXIT_CODES}"))]
pub struct CreateArgs {
    /// Repository name, e.g. team/app: lowercase letters and digits joined by single
    /// '.', '_' or '-', in '/'-separated parts, 2 to 256 characters.
    #[arg(value_name = "NAME", value_parser = super::parse_repository_name)]
    name: String,

    /// Tag mutability: IMMUTABLE refuses pushes that would move an existing tag.
    /// At creation AWS's default is MUTABLE.
    #[arg(long, value_enum, value_name = "MUTABILITY", ignore_case = true)]
    tag_immutability: Option<TagMutability>,

    /// Scan images for vulnerabilities when they are pushed (basic scanning).
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set, value_parser = clap::value_parser!(bool))]
    scan_on_push: Option<bool>,

    /// Encryption at rest. Only at creation: an existing repository with a different
    /// one is refused. At creation AWS's default is AES256.
    #[arg(long, value_enum, value_name = "TYPE", ignore_case = true)]
    encryption: Option<Encryption>,

    /// The KMS key of --encryption KMS: key ID, key ARN, alias/NAME or alias ARN.
    /// Default: the AWS managed key aws/ecr.
    #[arg(long, value_name = "ARN_OR_ALIAS", requires = "encryption")]
    kms_key: Option<String>,

    /// Repository policy, a JSON file (who may pull and push); set when it differs.
    #[arg(long, value_name = "PATH")]
    policy_file: Option<PathBuf>,

    /// Lifecycle policy, a JSON file (which images expire); set when it differs.
    #[arg(long, value_name = "PATH")]
    lifecycle_policy_file: Option<PathBuf>,

    /// 12-digit account ID of the registry. Default: the account of the credentials.
    #[arg(long, value_name = "ACCOUNT", value_parser = aws_args::parse_account_id)]
    registry_id: Option<String>,

    /// Output format: the changes as lines, or one JSON object
    /// {name, uri, created, changes: [{setting, from, to, message}]}.
    #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
    output: TextOrJson,

    // The identity: the default credential chain, then the optional role chain.
    #[command(flatten)]
    aws: AwsArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum TagMutability {
    #[value(name = "MUTABLE")]
    Mutable,
    #[value(name = "IMMUTABLE")]
    Immutable,
}

impl TagMutability {
    fn as_str(self) -> &'static str {
        match self {
            Self::Mutable => "MUTABLE",
            Self::Immutable => "IMMUTABLE",
        }
    }

    fn sdk(self) -> ImageTagMutability {
        match self {
            Self::Mutable => ImageTagMutability::Mutable,
            Self::Immutable => ImageTagMutability::Immutable,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Encryption {
    #[value(name = "AES256")]
    Aes256,
    #[value(name = "KMS")]
    Kms,
}

impl Encryption {
    fn as_str(self) -> &'static str {
        match self {
            Self::Aes256 => "AES256",
            Self::Kms => "KMS",
        }
    }

    fn sdk(self) -> EncryptionType {
        match self {
            Self::Aes256 => EncryptionType::Aes256,
            Self::Kms => EncryptionType::Kms,
        }
    }
}

/// What a repository has. The policies are read only when asked for.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Current {
    pub tag_mutability: String,
    pub scan_on_push: bool,
    /// AES256, KMS or KMS_DSSE.
    pub encryption: String,
    pub kms_key: Option<String>,
    pub policy: Option<Value>,
    pub lifecycle_policy: Option<Value>,
}

impl Current {
    fn of(repo: &Repository) -> Self {
        let encryption = repo.encryption_configuration();
        Self {
            tag_mutability: repo
                .image_tag_mutability()
                .map_or("MUTABLE", |m| m.as_str())
                .to_string(),
            scan_on_push: repo
                .image_scanning_configuration()
                .is_some_and(|c| c.scan_on_push()),
            encryption: encryption
                .map_or("AES256", |c| c.encryption_type().as_str())
                .to_string(),
            kms_key: encryption.and_then(|c| c.kms_key()).map(str::to_string),
            policy: None,
            lifecycle_policy: None,
        }
    }
}

/// What the command line asks for; None leaves a setting as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Wanted {
    pub tag_mutability: Option<TagMutability>,
    pub scan_on_push: Option<bool>,
    pub encryption: Option<Encryption>,
    pub kms_key: Option<String>,
    pub policy: Option<PolicyDoc>,
    pub lifecycle_policy: Option<PolicyDoc>,
}

/// One difference between a repository and what was asked for.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Change {
    TagMutability {
        from: String,
        to: TagMutability,
    },
    ScanOnPush {
        from: bool,
        to: bool,
    },
    RepositoryPolicy {
        from: Option<Value>,
        to: PolicyDoc,
    },
    LifecyclePolicy {
        from: Option<Value>,
        to: PolicyDoc,
    },
    /// Cannot be applied: ECR sets encryption when it creates a repository.
    Encryption {
        from: String,
        to: String,
    },
}

impl Change {
    /// What it changes, in words.
    fn setting(&self) -> &'static str {
        match self {
            Self::TagMutability { .. } => "tag mutability",
            Self::ScanOnPush { .. } => "scan on push",
            Self::RepositoryPolicy { .. } => "repository policy",
            Self::LifecyclePolicy { .. } => "lifecycle policy",
            Self::Encryption { .. } => "encryption",
        }
    }

    /// The line printed for this change.
    pub(super) fn message(&self) -> String {
        let policy = |kind: &str, from: &Option<Value>| match from {
            None => format!("{kind} set"),
            Some(_) => format!("{kind} replaced"),
        };
        match self {
            Self::TagMutability { from, to } => format!("tag mutability {from} -> {}", to.as_str()),
            Self::ScanOnPush { from, to } => format!("scan on push {from} -> {to}"),
            Self::RepositoryPolicy { from, .. } => policy("repository policy", from),
            Self::LifecyclePolicy { from, .. } => policy("lifecycle policy", from),
            Self::Encryption { from, to } => format!("encryption {from} -> {to}"),
        }
    }

    /// `{setting, from, to, message}`; the policies as JSON documents, null for none.
    pub(super) fn to_json(&self) -> Value {
        let (setting, from, to) = match self {
            Self::TagMutability { from, to } => {
                ("imageTagMutability", json!(from), json!(to.as_str()))
            }
            Self::ScanOnPush { from, to } => ("scanOnPush", json!(from), json!(to)),
            Self::RepositoryPolicy { from, to } => {
                ("repositoryPolicy", json!(from), to.value.clone())
            }
            Self::LifecyclePolicy { from, to } => {
                ("lifecyclePolicy", json!(from), to.value.clone())
            }
            Self::Encryption { from, to } => ("encryption", json!(from), json!(to)),
        };
        json!({"setting": setting, "from": from, "to": to, "message": self.message()})
    }
}

/// Whether a repository's KMS key is the one asked for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum KeyMatch {
    Same,
    Different,
    /// An alias against a key ARN: telling needs kms:DescribeKey, which we do not call.
    Unknown,
}

pub(super) fn kms_key_matches(current: Option<&str>, wanted: &str) -> KeyMatch {
    let Some(current) = current else {
        return KeyMatch::Unknown;
    };
    if current == wanted {
        return KeyMatch::Same;
    }
    // The key ID of a key ID or key ARN; None for aliases.
    let key_id = |k: &str| -> Option<String> {
        if k.starts_with("alias/") || k.contains(":alias/") {
            None
        } else if let Some((_, id)) = k.rsplit_once(":key/") {
            Some(id.to_string())
        } else if k.starts_with("arn:") {
            None
        } else {
            Some(k.to_string())
        }
    };
    match (key_id(current), key_id(wanted)) {
        (Some(a), Some(b)) if a == b => KeyMatch::Same,
        (Some(_), Some(_)) => KeyMatch::Different,
        _ => KeyMatch::Unknown,
    }
}

fn describe_encryption(kind: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("{kind} (key {key})"),
        None => kind.to_string(),
    }
}

/// The changes that bring `current` to `wanted`, in the order they are applied. An
/// `Encryption` change means the request cannot be met.
pub(super) fn plan(current: &Current, wanted: &Wanted) -> Vec<Change> {
    let mut changes = Vec::new();
    if let Some(encryption) = wanted.encryption {
        let key_differs = encryption == Encryption::Kms
            && wanted.kms_key.as_deref().is_some_and(|k| {
                kms_key_matches(current.kms_key.as_deref(), k) == KeyMatch::Different
            });
        if current.encryption != encryption.as_str() || key_differs {
            changes.push(Change::Encryption {
                from: describe_encryption(&current.encryption, current.kms_key.as_deref()),
                to: describe_encryption(encryption.as_str(), wanted.kms_key.as_deref()),
            });
        }
    }
    if let Some(to) = wanted.tag_mutability
        && current.tag_mutability != to.as_str()
    {
        changes.push(Change::TagMutability {
            from: current.tag_mutability.clone(),
            to,
        });
    }
    if let Some(to) = wanted.scan_on_push
        && current.scan_on_push != to
    {
        changes.push(Change::ScanOnPush {
            from: current.scan_on_push,
            to,
        });
    }
    if let Some(to) = &wanted.policy
        && current.policy.as_ref() != Some(&to.value)
    {
        changes.push(Change::RepositoryPolicy {
            from: current.policy.clone(),
            to: to.clone(),
        });
    }
    if let Some(to) = &wanted.lifecycle_policy
        && current.lifecycle_policy.as_ref() != Some(&to.value)
    {
        changes.push(Change::LifecyclePolicy {
            from: current.lifecycle_policy.clone(),
            to: to.clone(),
        });
    }
    changes
}

/// What the command did.
#[derive(Debug, PartialEq)]
struct Outcome {
    name: String,
    uri: String,
    created: bool,
    changes: Vec<Change>,
}

impl Outcome {
    fn render(&self, output: TextOrJson) -> String {
        match output {
            TextOrJson::Json => {
                let v = json!({
                    "name": self.name,
                    "uri": self.uri,
                    "created": self.created,
                    "changes": self.changes.iter().map(Change::to_json).collect::<Vec<_>>(),
                });
                format!("{}\n", serde_json::to_string_pretty(&v).expect("JSON"))
            }
            TextOrJson::Text => {
                let mut out = String::new();
                if self.created {
                    out.push_str(&format!(
                        "created repository {} (uri {})\n",
                        self.name, self.uri
                    ));
                } else if self.changes.is_empty() {
                    out.push_str("unchanged\n");
                }
                for change in &self.changes {
                    out.push_str(&change.message());
                    out.push('\n');
                }
                out
            }
        }
    }
}

pub async fn run(args: CreateArgs) -> anyhow::Result<()> {
    if args.kms_key.is_some() && args.encryption != Some(Encryption::Kms) {
        aws_args::usage_exit(
            "repos create",
            "--kms-key needs --encryption KMS (AES256 uses no key)",
        );
    }
    // The files first: a bad one fails before any AWS call.
    let wanted = Wanted {
        tag_mutability: args.tag_immutability,
        scan_on_push: args.scan_on_push,
        encryption: args.encryption,
        kms_key: args.kms_key.clone(),
        policy: args
            .policy_file
            .as_deref()
            .map(|p| super::load_policy("--policy-file", p))
            .transpose()?,
        lifecycle_policy: args
            .lifecycle_policy_file
            .as_deref()
            .map(|p| super::load_policy("--lifecycle-policy-file", p))
            .transpose()?,
    };
    let (ecr, _) = super::ecr_client(&args.aws, "repos create").await?;
    let target = Target {
        ecr: &ecr,
        name: &args.name,
        registry_id: args.registry_id.as_deref(),
    };

    let outcome = match target.describe().await? {
        Some(repo) => target.reconcile(&repo, &wanted).await?,
        None => match target.create(&wanted).await? {
            Some(outcome) => outcome,
            // Created by someone else since DescribeRepositories: bring it to `wanted`.
            None => {
                let repo = target.describe().await?.ok_or_else(|| {
                    anyhow::anyhow!(
                        "repository {} was reported as existing by CreateRepository, then as missing by DescribeRepositories; run the command again",
                        args.name
                    )
                })?;
                target.reconcile(&repo, &wanted).await?
            }
        },
    };
    tracing::debug!(name = %outcome.name, created = outcome.created, changes = outcome.changes.len(), "repos create done");
    super::print(&outcome.render(args.output))
}

/// One repository and the client to reach it.
struct Target<'a> {
    ecr: &'a aws_sdk_ecr::Client,
    name: &'a str,
    registry_id: Option<&'a str>,
}

impl Target<'_> {
    /// The repository, or None when it does not exist.
    async fn describe(&self) -> anyhow::Result<Option<Repository>> {
        let result = self
            .ecr
            .describe_repositories()
            .repository_names(self.name)
            .set_registry_id(self.registry_id.map(str::to_string))
            .send()
            .await;
        match result {
            Ok(out) => Ok(out
                .repositories()
                .iter()
                .find(|r| r.repository_name() == Some(self.name))
                .cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_repository_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws_error("DescribeRepositories", AwsFailure::of(&e))),
        }
    }

    /// Creates the repository, then sets its policies. None when it exists already.
    async fn create(&self, wanted: &Wanted) -> anyhow::Result<Option<Outcome>> {
        let mut req = self
            .ecr
            .create_repository()
            .repository_name(self.name)
            .set_registry_id(self.registry_id.map(str::to_string));
        if let Some(m) = wanted.tag_mutability {
            req = req.image_tag_mutability(m.sdk());
        }
        if let Some(scan) = wanted.scan_on_push {
            req = req.image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(scan)
                    .build(),
            );
        }
        if let Some(encryption) = wanted.encryption {
            req = req.encryption_configuration(
                EncryptionConfiguration::builder()
                    .encryption_type(encryption.sdk())
                    .set_kms_key(wanted.kms_key.clone())
                    .build()
                    .expect("the encryption type is set"),
            );
        }
        let repo = match req.send().await {
            Ok(out) => match out.repository() {
                Some(repo) => repo.clone(),
                None => self.describe().await?.ok_or_else(|| {
                    anyhow::anyhow!(
                        "CreateRepository answered without the repository {}, and DescribeRepositories does not find it; run the command again",
                        self.name
                    )
                })?,
            },
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_repository_already_exists_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(aws_error("CreateRepository", AwsFailure::of(&e))),
        };
        let uri = repo.repository_uri().unwrap_or_default().to_string();
        tracing::debug!(name = self.name, %uri, "created repository");
        // Whatever AWS reports for the encryption it just set is what was asked for.
        let changes: Vec<Change> = plan(&Current::of(&repo), wanted)
            .into_iter()
            .filter(|c| !matches!(c, Change::Encryption { .. }))
            .collect();
        for change in &changes {
            self.apply(change).await.map_err(|e| {
                e.context(format!(
                    "created repository {} (uri {uri}), but setting its {} failed; run the same command again to finish",
                    self.name,
                    change.setting()
                ))
            })?;
        }
        Ok(Some(Outcome {
            name: self.name.to_string(),
            uri,
            created: true,
            changes,
        }))
    }

    /// Reads what `wanted` asks about and changes what differs.
    async fn reconcile(&self, repo: &Repository, wanted: &Wanted) -> anyhow::Result<Outcome> {
        let mut current = Current::of(repo);
        // Refused before anything else is read or changed.
        if let Some(Change::Encryption { from, to }) = plan(&current, wanted)
            .into_iter()
            .find(|c| matches!(c, Change::Encryption { .. }))
        {
            anyhow::bail!(
                "repository {} is encrypted with {from}, not {to} as --encryption/--kms-key ask: encryption can only be set when a repository is created, so nothing was changed; drop --encryption and --kms-key to keep the repository as it is, or create a repository of another name",
                self.name
            );
        }
        if wanted.encryption == Some(Encryption::Kms)
            && let Some(key) = &wanted.kms_key
            && kms_key_matches(current.kms_key.as_deref(), key) == KeyMatch::Unknown
        {
            eprintln!(
                "note: --kms-key {key} was not compared with the repository's key {} (an alias needs kms:DescribeKey to resolve); the encryption was left as it is",
                current.kms_key.as_deref().unwrap_or("(not reported)")
            );
        }
        if wanted.policy.is_some() {
            current.policy = super::policy::get(self.ecr, self.name, self.registry_id)
                .await?
                .map(|(_, v)| v);
        }
        if wanted.lifecycle_policy.is_some() {
            current.lifecycle_policy = self.lifecycle_policy().await?;
        }
        let changes = plan(&current, wanted);
        for change in &changes {
            self.apply(change).await?;
        }
        Ok(Outcome {
            name: self.name.to_string(),
            uri: repo.repository_uri().unwrap_or_default().to_string(),
            created: false,
            changes,
        })
    }

    async fn lifecycle_policy(&self) -> anyhow::Result<Option<Value>> {
        let result = self
            .ecr
            .get_lifecycle_policy()
            .repository_name(self.name)
            .set_registry_id(self.registry_id.map(str::to_string))
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.lifecycle_policy_text().map(super::policy_value)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_lifecycle_policy_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_repository_not_found_exception()) =>
            {
                Err(super::not_found(self.name, self.registry_id))
            }
            Err(e) => Err(aws_error("GetLifecyclePolicy", AwsFailure::of(&e))),
        }
    }

    async fn apply(&self, change: &Change) -> anyhow::Result<()> {
        let registry_id = self.registry_id.map(str::to_string);
        match change {
            Change::TagMutability { to, .. } => self
                .ecr
                .put_image_tag_mutability()
                .repository_name(self.name)
                .set_registry_id(registry_id)
                .image_tag_mutability(to.sdk())
                .send()
                .await
                .map(drop)
                .map_err(|e| aws_error("PutImageTagMutability", AwsFailure::of(&e))),
            Change::ScanOnPush { to, .. } => self
                .ecr
                .put_image_scanning_configuration()
                .repository_name(self.name)
                .set_registry_id(registry_id)
                .image_scanning_configuration(
                    ImageScanningConfiguration::builder()
                        .scan_on_push(*to)
                        .build(),
                )
                .send()
                .await
                .map(drop)
                .map_err(|e| aws_error("PutImageScanningConfiguration", AwsFailure::of(&e))),
            Change::RepositoryPolicy { to, .. } => {
                super::policy::set(self.ecr, self.name, self.registry_id, to).await
            }
            Change::LifecyclePolicy { to, .. } => self
                .ecr
                .put_lifecycle_policy()
                .repository_name(self.name)
                .set_registry_id(registry_id)
                .lifecycle_policy_text(&to.text)
                .send()
                .await
                .map(drop)
                .map_err(|e| aws_error("PutLifecyclePolicy", AwsFailure::of(&e))),
            Change::Encryption { .. } => unreachable!("refused before any change"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current() -> Current {
        Current {
            tag_mutability: "MUTABLE".into(),
            scan_on_push: false,
            encryption: "AES256".into(),
            kms_key: None,
            policy: None,
            lifecycle_policy: None,
        }
    }

    fn doc(text: &str) -> PolicyDoc {
        PolicyDoc {
            text: text.into(),
            value: serde_json::from_str(text).unwrap(),
        }
    }

    #[test]
    fn nothing_asked_nothing_changed() {
        assert_eq!(plan(&current(), &Wanted::default()), vec![]);
        let mut c = current();
        c.tag_mutability = "IMMUTABLE".into();
        c.scan_on_push = true;
        c.encryption = "KMS".into();
        c.policy = Some(json!({"Version": "2012-10-17"}));
        assert_eq!(plan(&c, &Wanted::default()), vec![]);
    }

    #[test]
    fn only_what_differs_and_was_asked_for_changes() {
        let wanted = Wanted {
            tag_mutability: Some(TagMutability::Immutable),
            scan_on_push: Some(false),
            ..Wanted::default()
        };
        assert_eq!(
            plan(&current(), &wanted),
            vec![Change::TagMutability {
                from: "MUTABLE".into(),
                to: TagMutability::Immutable
            }]
        );
        let wanted = Wanted {
            scan_on_push: Some(true),
            ..Wanted::default()
        };
        let changes = plan(&current(), &wanted);
        assert_eq!(
            changes,
            vec![Change::ScanOnPush {
                from: false,
                to: true
            }]
        );
        assert_eq!(changes[0].message(), "scan on push false -> true");
        // A mutability with exclusions is not IMMUTABLE: it is set.
        let mut c = current();
        c.tag_mutability = "IMMUTABLE_WITH_EXCLUSION".into();
        let wanted = Wanted {
            tag_mutability: Some(TagMutability::Immutable),
            ..Wanted::default()
        };
        assert_eq!(
            plan(&c, &wanted)[0].message(),
            "tag mutability IMMUTABLE_WITH_EXCLUSION -> IMMUTABLE"
        );
    }

    #[test]
    fn policies_compare_as_json() {
        let mut c = current();
        c.policy = Some(json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}));
        c.lifecycle_policy = Some(json!({"rules": []}));
        let same = Wanted {
            policy: Some(doc(
                "{\n  \"Statement\": [ { \"Effect\" : \"Allow\" } ],\n  \"Version\": \"2012-10-17\"\n}",
            )),
            lifecycle_policy: Some(doc("{ \"rules\" : [ ] }")),
            ..Wanted::default()
        };
        assert_eq!(plan(&c, &same), vec![]);

        let other = Wanted {
            policy: Some(doc(
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Deny"}]}"#,
            )),
            lifecycle_policy: Some(doc(r#"{"rules": [{"rulePriority": 1}]}"#)),
            ..Wanted::default()
        };
        let changes = plan(&c, &other);
        let messages: Vec<String> = changes.iter().map(Change::message).collect();
        assert_eq!(
            messages,
            ["repository policy replaced", "lifecycle policy replaced"]
        );
        let j = changes[0].to_json();
        assert_eq!(j["setting"], "repositoryPolicy");
        assert_eq!(j["from"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(j["to"]["Statement"][0]["Effect"], "Deny");

        let changes = plan(&current(), &other);
        assert_eq!(changes[0].message(), "repository policy set");
        assert_eq!(changes[0].to_json()["from"], Value::Null);
        assert_eq!(changes[1].message(), "lifecycle policy set");
    }

    #[test]
    fn a_different_encryption_is_a_change_that_cannot_be_made() {
        let kms = |key: Option<&str>| Wanted {
            encryption: Some(Encryption::Kms),
            kms_key: key.map(str::to_string),
            ..Wanted::default()
        };
        let changes = plan(&current(), &kms(None));
        assert_eq!(
            changes,
            vec![Change::Encryption {
                from: "AES256".into(),
                to: "KMS".into()
            }]
        );
        let aes = Wanted {
            encryption: Some(Encryption::Aes256),
            ..Wanted::default()
        };
        assert_eq!(plan(&current(), &aes), vec![]);

        let arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let mut c = current();
        c.encryption = "KMS".into();
        c.kms_key = Some(arn.into());
        // The same key as ARN or key ID, any key when none is named, an alias (unknown).
        assert_eq!(plan(&c, &kms(Some(arn))), vec![]);
        assert_eq!(
            plan(&c, &kms(Some("1234abcd-12ab-34cd-56ef-1234567890ab"))),
            vec![]
        );
        assert_eq!(plan(&c, &kms(None)), vec![]);
        assert_eq!(plan(&c, &kms(Some("alias/ecr"))), vec![]);
        let changes = plan(&c, &kms(Some("ffffffff-12ab-34cd-56ef-1234567890ab")));
        assert!(
            matches!(&changes[..], [Change::Encryption { from, to }]
                if from.contains(arn) && to.contains("ffffffff")),
            "{changes:?}"
        );
        assert_eq!(plan(&c, &aes).len(), 1);
        c.encryption = "KMS_DSSE".into();
        assert_eq!(plan(&c, &kms(Some(arn))).len(), 1);
    }

    #[test]
    fn kms_keys_match_by_id() {
        let arn = "arn:aws:kms:eu-west-1:123456789012:key/k-1";
        assert_eq!(kms_key_matches(Some(arn), arn), KeyMatch::Same);
        assert_eq!(kms_key_matches(Some(arn), "k-1"), KeyMatch::Same);
        assert_eq!(kms_key_matches(Some("k-1"), arn), KeyMatch::Same);
        assert_eq!(kms_key_matches(Some(arn), "k-2"), KeyMatch::Different);
        assert_eq!(kms_key_matches(Some(arn), "alias/ecr"), KeyMatch::Unknown);
        assert_eq!(
            kms_key_matches(Some(arn), "arn:aws:kms:eu-west-1:123456789012:alias/ecr"),
            KeyMatch::Unknown
        );
        assert_eq!(kms_key_matches(Some("alias/a"), "alias/a"), KeyMatch::Same);
        assert_eq!(kms_key_matches(None, "k-1"), KeyMatch::Unknown);
    }

    #[test]
    fn outcome_lines_and_json() {
        let mut o = Outcome {
            name: "app".into(),
            uri: "123456789012.dkr.ecr.us-east-1.amazonaws.com/app".into(),
            created: false,
            changes: vec![],
        };
        assert_eq!(o.render(TextOrJson::Text), "unchanged\n");
        let v: Value = serde_json::from_str(&o.render(TextOrJson::Json)).unwrap();
        assert_eq!(
            v,
            json!({"name": "app", "uri": o.uri, "created": false, "changes": []})
        );
        o.created = true;
        o.changes = vec![Change::RepositoryPolicy {
            from: None,
            to: doc("{}"),
        }];
        assert_eq!(
            o.render(TextOrJson::Text),
            "created repository app (uri 123456789012.dkr.ecr.us-east-1.amazonaws.com/app)\nrepository policy set\n"
        );
        o.created = false;
        o.changes = vec![Change::TagMutability {
            from: "MUTABLE".into(),
            to: TagMutability::Immutable,
        }];
        assert_eq!(
            o.render(TextOrJson::Text),
            "tag mutability MUTABLE -> IMMUTABLE\n"
        );
        let v: Value = serde_json::from_str(&o.render(TextOrJson::Json)).unwrap();
        assert_eq!(
            v["changes"][0],
            json!({"setting": "imageTagMutability", "from": "MUTABLE", "to": "IMMUTABLE",
                   "message": "tag mutability MUTABLE -> IMMUTABLE"})
        );
    }
}
