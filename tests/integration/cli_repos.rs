//! `ecr-operator repos create` and `repos policy get|set`, run as the real binary
//! against the bed's moto A (each test with its own access key ID, so fault-proxy
//! rules and call records are its own, and repositories named after its
//! `TestNames`). What moto has is read back with aws-sdk-ecr.
//!
//! moto 5.2.5 supports every call these commands make (CreateRepository with
//! tag mutability, scanning and encryption configuration, DescribeRepositories,
//! Get/SetRepositoryPolicy, Get/PutLifecyclePolicy, PutImageTagMutability,
//! PutImageScanningConfiguration). It does not check that a KMS key exists (any
//! `kmsKey` is stored as given), and it ignores SetRepositoryPolicy's `force`.

use crate::cli::ecr_client;
use crate::support::bed::{Bed, TestNames};
use crate::support::faults::Faults;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

/// The calls that change a repository.
const WRITES: [&str; 5] = [
    "CreateRepository",
    "PutImageTagMutability",
    "PutImageScanningConfiguration",
    "SetRepositoryPolicy",
    "PutLifecyclePolicy",
];

const POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "pull",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
      "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    }
  ]
}
"#;

/// POLICY with other key order and spacing: the same JSON.
const POLICY_REFORMATTED: &str = r#"{"Statement":[{"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],
"Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Effect":"Allow","Sid":"pull"}],"Version":"2012-10-17"}"#;

const OTHER_POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [{"Sid": "push", "Effect": "Allow",
 "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": ["ecr:PutImage"]}]}"#;

const LIFECYCLE: &str = r#"{"rules": [{"rulePriority": 1, "description": "expire untagged",
  "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
  "countNumber": 14}, "action": {"type": "expire"}}]}"#;

/// The binary with a clean environment: the bed's AWS endpoint and region and
/// this test's access key ID.
fn cli(names: &TestNames) -> tokio::process::Command {
    let bed = Bed::get();
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_ecr-operator"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("AWS_ENDPOINT_URL", bed.var("AWS_ENDPOINT_URL"))
        .env("AWS_REGION", bed.var("AWS_REGION"))
        .env("AWS_ACCESS_KEY_ID", names.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", bed.var("AWS_SECRET_ACCESS_KEY"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .kill_on_drop(true);
    c
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self, what: &str) -> Self {
        assert_eq!(self.code, 0, "{what} failed: {}", self.stderr);
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

async fn run(names: &TestNames, args: &[&str]) -> Run {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        cli(names).args(args).output(),
    )
    .await
    .expect("the command finished within 60 s")
    .expect("run ecr-operator");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The repository as moto has it.
async fn describe(ecr: &aws_sdk_ecr::Client, name: &str) -> aws_sdk_ecr::types::Repository {
    ecr.describe_repositories()
        .repository_names(name)
        .send()
        .await
        .expect("DescribeRepositories")
        .repositories()[0]
        .clone()
}

async fn policy_in_moto(ecr: &aws_sdk_ecr::Client, name: &str) -> Option<Value> {
    ecr.get_repository_policy()
        .repository_name(name)
        .send()
        .await
        .ok()
        .and_then(|o| o.policy_text().map(|t| serde_json::from_str(t).unwrap()))
}

async fn delete(ecr: &aws_sdk_ecr::Client, names: &[&str]) {
    for name in names {
        let _ = ecr
            .delete_repository()
            .repository_name(*name)
            .force(true)
            .send()
            .await;
    }
}

/// A file of `text` in `dir`.
fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// How many calls of each of `operations` the proxy saw with this test's key.
async fn counts(names: &TestNames, operations: &[&str]) -> Vec<(String, u64)> {
    let faults = Faults::new(Bed::get().var("BED_FAULTS"));
    let mut out = Vec::new();
    for op in operations {
        out.push((
            op.to_string(),
            faults.calls(&names.access_key_id(), op).await,
        ));
    }
    out
}

/// Every call the proxy saw with this test's key, whatever the operation.
async fn all_calls(names: &TestNames) -> u64 {
    let resp: Value = crate::support::http_client()
        .get(format!("{}/calls", Bed::get().var("BED_FAULTS")))
        .query(&[("accessKeyId", names.access_key_id())])
        .send()
        .await
        .expect("fault proxy reachable")
        .json()
        .await
        .unwrap();
    resp["count"].as_u64().expect("count")
}

#[tokio::test]
async fn create_twice_creates_once_and_then_says_unchanged() {
    let names = TestNames::new("rc-idem");
    let ecr = ecr_client(&names).await;
    let name = format!("{}/app", names.id);

    let first = run(&names, &["repos", "create", &name]).await.ok("create");
    assert_eq!(
        first.stdout,
        format!("created repository {name} (uri {ECR_HOST}/{name})\n")
    );
    let second = run(&names, &["repos", "create", &name])
        .await
        .ok("create again");
    assert_eq!(second.stdout, "unchanged\n");
    // The same flags as the defaults AWS chose: still nothing to do.
    let third = run(
        &names,
        &[
            "repos",
            "create",
            &name,
            "--tag-immutability",
            "MUTABLE",
            "--scan-on-push",
            "false",
            "--encryption",
            "AES256",
            "-o",
            "json",
        ],
    )
    .await
    .ok("create with the defaults");
    assert_eq!(
        third.json(),
        json!({"name": name, "uri": format!("{ECR_HOST}/{name}"), "created": false, "changes": []})
    );

    let expected: Vec<(String, u64)> = WRITES
        .iter()
        .map(|op| (op.to_string(), u64::from(*op == "CreateRepository")))
        .collect();
    assert_eq!(counts(&names, &WRITES).await, expected);
    let repo = describe(&ecr, &name).await;
    assert_eq!(repo.image_tag_mutability().unwrap().as_str(), "MUTABLE");
    delete(&ecr, &[&name]).await;
}

#[tokio::test]
async fn create_applies_settings_and_policies_then_only_what_changed() {
    let names = TestNames::new("rc-set");
    let ecr = ecr_client(&names).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = file(dir.path(), "policy.json", POLICY);
    let reformatted = file(dir.path(), "same.json", POLICY_REFORMATTED);
    let lifecycle = file(dir.path(), "lifecycle.json", LIFECYCLE);
    let name = format!("{}/api", names.id);
    let (policy, reformatted, lifecycle) = (
        policy.to_str().unwrap(),
        reformatted.to_str().unwrap(),
        lifecycle.to_str().unwrap(),
    );

    let out = run(
        &names,
        &[
            "repos",
            "create",
            &name,
            "--tag-immutability",
            "IMMUTABLE",
            "--scan-on-push",
            "true",
            "--policy-file",
            policy,
            "--lifecycle-policy-file",
            lifecycle,
            "--output",
            "json",
        ],
    )
    .await
    .ok("create with settings");
    let v = out.json();
    assert_eq!(v["name"], name.as_str());
    assert_eq!(v["uri"], format!("{ECR_HOST}/{name}"));
    assert_eq!(v["created"], true);
    let settings: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["setting"].as_str().unwrap())
        .collect();
    assert_eq!(settings, ["repositoryPolicy", "lifecyclePolicy"], "{v}");
    assert_eq!(v["changes"][0]["message"], "repository policy set");
    assert_eq!(v["changes"][0]["from"], Value::Null);

    // In moto: the settings, the policy and the lifecycle policy.
    let repo = describe(&ecr, &name).await;
    assert_eq!(repo.image_tag_mutability().unwrap().as_str(), "IMMUTABLE");
    assert!(repo.image_scanning_configuration().unwrap().scan_on_push());
    assert_eq!(
        repo.encryption_configuration()
            .unwrap()
            .encryption_type()
            .as_str(),
        "AES256"
    );
    let want: Value = serde_json::from_str(POLICY).unwrap();
    assert_eq!(policy_in_moto(&ecr, &name).await, Some(want.clone()));
    let lc = ecr
        .get_lifecycle_policy()
        .repository_name(&name)
        .send()
        .await
        .expect("GetLifecyclePolicy");
    let lc: Value = serde_json::from_str(lc.lifecycle_policy_text().unwrap()).unwrap();
    assert_eq!(lc, serde_json::from_str::<Value>(LIFECYCLE).unwrap());
    // `repos --output json` shows them too.
    let listed = run(&names, &["repos", "--output", "json"])
        .await
        .ok("repos");
    let row = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(row["imageTagMutability"], "IMMUTABLE");
    assert_eq!(row["scanOnPush"], true);

    // The same again, the policy written differently: nothing to do.
    let out = run(
        &names,
        &[
            "repos",
            "create",
            &name,
            "--tag-immutability",
            "IMMUTABLE",
            "--scan-on-push",
            "true",
            "--policy-file",
            reformatted,
            "--lifecycle-policy-file",
            lifecycle,
        ],
    )
    .await
    .ok("create again");
    assert_eq!(out.stdout, "unchanged\n");

    // One change asked for: applied and reported; scan-on-push, not asked, stays.
    let out = run(
        &names,
        &["repos", "create", &name, "--tag-immutability", "MUTABLE"],
    )
    .await
    .ok("create MUTABLE");
    assert_eq!(out.stdout, "tag mutability IMMUTABLE -> MUTABLE\n");
    let repo = describe(&ecr, &name).await;
    assert_eq!(repo.image_tag_mutability().unwrap().as_str(), "MUTABLE");
    assert!(repo.image_scanning_configuration().unwrap().scan_on_push());
    assert_eq!(policy_in_moto(&ecr, &name).await, Some(want));

    // Two changes, as JSON.
    let other = file(dir.path(), "other.json", OTHER_POLICY);
    let out = run(
        &names,
        &[
            "repos",
            "create",
            &name,
            "--scan-on-push",
            "false",
            "--policy-file",
            other.to_str().unwrap(),
            "-o",
            "json",
        ],
    )
    .await
    .ok("create with changes");
    let v = out.json();
    assert_eq!(v["created"], false);
    assert_eq!(
        v["changes"][0],
        json!({"setting": "scanOnPush", "from": true, "to": false, "message": "scan on push true -> false"})
    );
    assert_eq!(v["changes"][1]["message"], "repository policy replaced");
    assert_eq!(v["changes"][1]["from"]["Statement"][0]["Sid"], "pull");
    assert_eq!(v["changes"][1]["to"]["Statement"][0]["Sid"], "push");
    assert_eq!(
        policy_in_moto(&ecr, &name).await,
        Some(serde_json::from_str(OTHER_POLICY).unwrap())
    );

    let expected = [
        ("CreateRepository", 1),
        ("PutImageTagMutability", 1),
        ("PutImageScanningConfiguration", 1),
        ("SetRepositoryPolicy", 2),
        ("PutLifecyclePolicy", 1),
    ]
    .map(|(op, n)| (op.to_string(), n));
    assert_eq!(counts(&names, &WRITES).await, expected);
    delete(&ecr, &[&name]).await;
}

#[tokio::test]
async fn a_different_encryption_on_an_existing_repository_is_refused() {
    let names = TestNames::new("rc-enc");
    let ecr = ecr_client(&names).await;
    let plain = format!("{}/plain", names.id);
    let kms = format!("{}/kms", names.id);
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    run(&names, &["repos", "create", &plain]).await.ok("create");
    let out = run(
        &names,
        &[
            "repos",
            "create",
            &plain,
            "--encryption",
            "KMS",
            "--tag-immutability",
            "IMMUTABLE",
        ],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    for want in [
        "--encryption",
        "--kms-key",
        "only be set when a repository is created",
        &plain,
        "AES256",
    ] {
        assert!(out.stderr.contains(want), "lacks {want}: {}", out.stderr);
    }
    // Refused as a whole: the tag mutability asked for with it was not changed.
    let repo = describe(&ecr, &plain).await;
    assert_eq!(repo.image_tag_mutability().unwrap().as_str(), "MUTABLE");

    // A KMS repository: the key as given (moto does not check that it exists).
    run(
        &names,
        &[
            "repos",
            "create",
            &kms,
            "--encryption",
            "KMS",
            "--kms-key",
            key,
        ],
    )
    .await
    .ok("create KMS");
    let repo = describe(&ecr, &kms).await;
    let enc = repo.encryption_configuration().unwrap();
    assert_eq!(enc.encryption_type().as_str(), "KMS");
    assert_eq!(enc.kms_key(), Some(key));
    // The same key, by ARN or key ID: unchanged.
    for k in [key, "1234abcd-12ab-34cd-56ef-1234567890ab"] {
        let out = run(
            &names,
            &[
                "repos",
                "create",
                &kms,
                "--encryption",
                "KMS",
                "--kms-key",
                k,
            ],
        )
        .await
        .ok("create KMS again");
        assert_eq!(out.stdout, "unchanged\n");
    }
    // Another key, or AES256: refused.
    let out = run(
        &names,
        &[
            "repos",
            "create",
            &kms,
            "--encryption",
            "KMS",
            "--kms-key",
            "ffffffff-12ab-34cd-56ef-1234567890ab",
        ],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("--kms-key"), "{}", out.stderr);
    assert!(out.stderr.contains(key), "{}", out.stderr);
    let out = run(&names, &["repos", "create", &kms, "--encryption", "AES256"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("--encryption"), "{}", out.stderr);

    assert_eq!(
        counts(&names, &WRITES).await,
        WRITES
            .iter()
            .map(|op| (
                op.to_string(),
                if *op == "CreateRepository" { 2 } else { 0 }
            ))
            .collect::<Vec<_>>()
    );
    delete(&ecr, &[&plain, &kms]).await;
}

#[tokio::test]
async fn bad_input_is_refused_before_any_aws_call() {
    let names = TestNames::new("rc-bad");
    let ecr = ecr_client(&names).await;
    let dir = tempfile::tempdir().unwrap();
    let name = format!("{}/app", names.id);
    // Broken on line 3: a missing comma. The value must not be echoed.
    let bad = file(
        dir.path(),
        "bad-policy.json",
        "{\n  \"Version\": \"2012-10-17\"\n  \"Statement\": \"do-not-echo\"\n}\n",
    );
    let array = file(dir.path(), "array.json", "[]");
    let missing = dir.path().join("missing.json");
    let (bad, array, missing) = (
        bad.to_str().unwrap(),
        array.to_str().unwrap(),
        missing.to_str().unwrap(),
    );

    let cases: &[(&[&str], &[&str])] = &[
        (
            &["repos", "create", &name, "--policy-file", bad],
            &["--policy-file", bad, "line 3, column 3"],
        ),
        (
            &["repos", "create", &name, "--lifecycle-policy-file", bad],
            &["--lifecycle-policy-file", bad, "line 3, column 3"],
        ),
        (
            &["repos", "create", &name, "--policy-file", missing],
            &["--policy-file", missing, "cannot read"],
        ),
        (
            &["repos", "create", &name, "--policy-file", array],
            &["--policy-file", array, "JSON object"],
        ),
        (
            &["repos", "policy", "set", &name, "--file", bad],
            &["--file", bad, "line 3, column 3"],
        ),
    ];
    for (args, wants) in cases {
        let out = run(&names, args).await;
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        for want in *wants {
            assert!(
                out.stderr.contains(want),
                "{args:?} lacks {want}: {}",
                out.stderr
            );
        }
        assert!(!out.stderr.contains("do-not-echo"), "{}", out.stderr);
    }

    // Usage errors: exit 2, the argument named.
    let usage: &[(&[&str], &str)] = &[
        (&["repos", "create", "App"], "NAME"),
        (&["repos", "create", "a"], "NAME"),
        (&["repos", "create", "team//app"], "NAME"),
        (&["repos", "create", "app-"], "NAME"),
        (&["repos", "create", "app:latest"], "NAME"),
        (&["repos", "policy", "get", "Team/App"], "NAME"),
        (&["repos", "policy", "set", "app"], "--file"),
        (
            &["repos", "create", &name, "--tag-immutability", "SOMETIMES"],
            "--tag-immutability",
        ),
        (
            &["repos", "create", &name, "--scan-on-push", "yes"],
            "--scan-on-push",
        ),
        (
            &["repos", "create", &name, "--encryption", "DES"],
            "--encryption",
        ),
        (
            &["repos", "create", &name, "--kms-key", "alias/x"],
            "--encryption",
        ),
        (
            &[
                "repos",
                "create",
                &name,
                "--encryption",
                "AES256",
                "--kms-key",
                "alias/x",
            ],
            "--kms-key",
        ),
        (&["repos", "create", &name, "--output", "yaml"], "--output"),
        (
            &["repos", "create", &name, "--registry-id", "12"],
            "--registry-id",
        ),
        // Listing flags belong to the listing.
        (&["repos", "--output", "json", "create", &name], "create"),
    ];
    for (args, want) in usage {
        let out = run(&names, args).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(want),
            "{args:?} lacks {want}: {}",
            out.stderr
        );
    }

    assert_eq!(all_calls(&names).await, 0, "an AWS call was made");
    let missing = ecr
        .describe_repositories()
        .repository_names(&name)
        .send()
        .await
        .unwrap_err();
    assert!(
        missing
            .as_service_error()
            .is_some_and(|e| e.is_repository_not_found_exception()),
        "{missing:?}"
    );
}

#[tokio::test]
async fn policy_get_and_set() {
    let names = TestNames::new("rc-pol");
    let ecr = ecr_client(&names).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = file(dir.path(), "policy.json", POLICY);
    let reformatted = file(dir.path(), "same.json", POLICY_REFORMATTED);
    let other = file(dir.path(), "other.json", OTHER_POLICY);
    let (policy, reformatted, other) = (
        policy.to_str().unwrap(),
        reformatted.to_str().unwrap(),
        other.to_str().unwrap(),
    );
    let name = format!("{}/app", names.id);
    run(&names, &["repos", "create", &name]).await.ok("create");

    let out = run(&names, &["repos", "policy", "get", &name]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "repository {name} in the registry of the credentials' account has no repository policy"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("repos policy set"), "{}", out.stderr);

    let out = run(&names, &["repos", "policy", "set", &name, "--file", policy])
        .await
        .ok("policy set");
    assert_eq!(out.stdout, "repository policy set\n");
    let want: Value = serde_json::from_str(POLICY).unwrap();
    assert_eq!(policy_in_moto(&ecr, &name).await, Some(want.clone()));

    let out = run(
        &names,
        &["repos", "policy", "set", &name, "--file", reformatted],
    )
    .await
    .ok("policy set again");
    assert_eq!(out.stdout, "unchanged\n");
    let out = run(
        &names,
        &[
            "repos", "policy", "set", &name, "--file", policy, "--output", "json",
        ],
    )
    .await
    .ok("policy set again, JSON");
    assert_eq!(
        out.json(),
        json!({"name": name, "changed": false, "changes": []})
    );

    let out = run(&names, &["repos", "policy", "get", &name])
        .await
        .ok("policy get");
    assert_eq!(serde_json::from_str::<Value>(&out.stdout).unwrap(), want);
    assert!(out.stdout.lines().count() > 5, "pretty: {}", out.stdout);
    let out = run(&names, &["repos", "policy", "get", &name, "-o", "json"])
        .await
        .ok("policy get JSON");
    assert_eq!(
        out.json(),
        json!({"name": name, "registryId": "123456789012", "policy": want})
    );

    let out = run(
        &names,
        &[
            "repos", "policy", "set", &name, "--file", other, "-o", "json",
        ],
    )
    .await
    .ok("policy set other");
    let v = out.json();
    assert_eq!(v["changed"], true);
    assert_eq!(v["changes"][0]["message"], "repository policy replaced");
    assert_eq!(
        policy_in_moto(&ecr, &name).await,
        Some(serde_json::from_str(OTHER_POLICY).unwrap())
    );
    assert_eq!(
        counts(&names, &["SetRepositoryPolicy"]).await[0].1,
        2,
        "only the two real changes were written"
    );

    // A repository that does not exist: exit 1, named.
    let ghost = format!("{}/ghost", names.id);
    for args in [
        &["repos", "policy", "get", &ghost][..],
        &["repos", "policy", "set", &ghost, "--file", policy][..],
    ] {
        let out = run(&names, args).await;
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(
            out.stderr
                .contains(&format!("repository {ghost} does not exist")),
            "{}",
            out.stderr
        );
    }
    delete(&ecr, &[&name]).await;
}

#[tokio::test]
async fn aws_failures_name_the_action_and_exit_by_kind() {
    let bed = Bed::get();
    let names = TestNames::new("rc-fail");
    let ecr = ecr_client(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let key = names.access_key_id();
    let dir = tempfile::tempdir().unwrap();
    let policy = file(dir.path(), "policy.json", POLICY);
    let policy = policy.to_str().unwrap();
    let name = format!("{}/app", names.id);

    // Throttled past the retries: retryable, exit 3, nothing created.
    let rule = faults
        .add(&key, "CreateRepository", json!({"action": "throttle"}))
        .await;
    let out = run(&names, &["repos", "create", &name]).await;
    faults.remove(&rule).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("throttled CreateRepository"),
        "{}",
        out.stderr
    );
    // A 5xx: exit 3 as well.
    let rule = faults
        .add(
            &key,
            "DescribeRepositories",
            json!({"action": "server_error", "status": 503}),
        )
        .await;
    let out = run(&names, &["repos", "create", &name]).await;
    faults.remove(&rule).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("DescribeRepositories"),
        "{}",
        out.stderr
    );

    // Denied after the repository was created: exit 1, the IAM action named, and
    // the message says what was done; the same command then finishes the job.
    let rule = faults
        .add(
            &key,
            "SetRepositoryPolicy",
            json!({"action": "access_denied"}),
        )
        .await;
    let out = run(&names, &["repos", "create", &name, "--policy-file", policy]).await;
    faults.remove(&rule).await;
    assert_eq!(out.code, 1, "{out:?}");
    for want in [
        "ecr:SetRepositoryPolicy",
        &format!("created repository {name}"),
        "run the same command again",
    ] {
        assert!(out.stderr.contains(want), "lacks {want}: {}", out.stderr);
    }
    let out = run(&names, &["repos", "create", &name, "--policy-file", policy])
        .await
        .ok("create again");
    assert_eq!(out.stdout, "repository policy set\n");

    // Denied reads name their action too.
    let rule = faults
        .add(
            &key,
            "GetRepositoryPolicy",
            json!({"action": "access_denied"}),
        )
        .await;
    let out = run(&names, &["repos", "policy", "get", &name]).await;
    faults.remove(&rule).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("allow ecr:GetRepositoryPolicy"),
        "{}",
        out.stderr
    );
    // Throttled listing: exit 3 like the rest.
    let rule = faults
        .add(&key, "DescribeRepositories", json!({"action": "throttle"}))
        .await;
    let out = run(&names, &["repos", "list"]).await;
    faults.remove(&rule).await;
    assert_eq!(out.code, 3, "{out:?}");
    delete(&ecr, &[&name]).await;
}

#[tokio::test]
async fn help_of_create_and_policy() {
    let names = TestNames::new("rc-help");
    for args in [
        &["repos", "create", "--help"][..],
        &["repos", "policy", "--help"][..],
        &["repos", "policy", "set", "--help"][..],
        &["repos", "--help"][..],
    ] {
        let out = run(&names, args).await.ok("--help");
        for want in ["Examples:", "Exit codes:", "3  retryable"] {
            assert!(out.stdout.contains(want), "{args:?} lacks {want}");
        }
    }
    let out = run(&names, &["repos", "create", "--help"])
        .await
        .ok("--help");
    for want in [
        "--tag-immutability",
        "--scan-on-push",
        "--encryption",
        "--kms-key",
        "--policy-file",
        "--lifecycle-policy-file",
        "--registry-id",
        "--role-arn",
        "ecr:CreateRepository",
        "ecr:SetRepositoryPolicy",
        "ecr:PutLifecyclePolicy",
    ] {
        assert!(
            out.stdout.contains(want),
            "repos create --help lacks {want}"
        );
    }
}
