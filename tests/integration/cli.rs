//! The CLI for CI and people: `token`, `repos`, their help and errors, run as the
//! real binary against the bed's moto (each test with its own access key ID, so
//! fault-proxy rules and call records are its own); the examples; and the demo.

use crate::support::bed::{Bed, TestNames, repo_root};
use crate::support::faults::Faults;
use crate::support::fixtures::{install_crd, skopeo_pull};
use base64::Engine as _;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;

/// moto's account, and its registry host in the bed's region.
const ACCOUNT: &str = "123456789012";
const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
/// ECR Public's registry host (its API: the fault proxy's stand-in).
const PUBLIC_HOST: &str = "public.ecr.aws";

/// The binary with a clean environment: the bed's AWS endpoint and region, this
/// test's access key ID, a HOME of its own, and the most verbose logs (so the
/// leak checks see everything a user could turn on).
fn cli(names: &TestNames, home: &Path) -> tokio::process::Command {
    let bed = Bed::get();
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_ecr-operator"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_ENDPOINT_URL", bed.var("AWS_ENDPOINT_URL"))
        .env("AWS_REGION", bed.var("AWS_REGION"))
        .env("AWS_ACCESS_KEY_ID", names.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", bed.var("AWS_SECRET_ACCESS_KEY"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "trace")
        .kill_on_drop(true);
    c
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(mut cmd: tokio::process::Command, args: &[&str]) -> Run {
    let out: Output =
        tokio::time::timeout(std::time::Duration::from_secs(60), cmd.args(args).output())
            .await
            .expect("the command finished within 60 s")
            .expect("run ecr-operator");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Run {
    fn ok(self, what: &str) -> Self {
        assert_eq!(self.code, 0, "{what} failed: {}", self.stderr);
        self
    }
}

/// The secret values of the bed as they travel: the ECR password, the token
/// (base64 of AWS:<password>, the `auth` of a Docker config), the secret key.
fn assert_no_secrets(text: &str, what: &str) {
    for s in Bed::get().secret_values() {
        assert!(!text.contains(&s), "a secret value is in {what}:\n{text}");
    }
}

fn temp_home() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[tokio::test]
async fn token_prints_json_dockerconfigjson_and_password() {
    let bed = Bed::get();
    let names = TestNames::new("cli-fmt");
    let home = temp_home();
    let password = bed.var("BED_ECR_PASSWORD");

    let json_out = run(cli(&names, home.path()), &["token"]).await.ok("token");
    let v: Value = serde_json::from_str(&json_out.stdout).expect("JSON on stdout");
    let entries = v.as_array().expect("an array");
    assert_eq!(entries.len(), 1, "{v}");
    assert_eq!(entries[0]["host"], ECR_HOST);
    assert_eq!(entries[0]["username"], "AWS");
    assert_eq!(entries[0]["password"], password);
    let expires: jiff::Timestamp = entries[0]["expiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .expect("RFC 3339 expiresAt");
    assert!(
        expires > jiff::Timestamp::now(),
        "moto's past expiry is replaced"
    );
    assert_no_secrets(&json_out.stderr, "the logs of --format json");

    let dcj = run(
        cli(&names, home.path()),
        &["token", "--format", "dockerconfigjson"],
    )
    .await
    .ok("token --format dockerconfigjson");
    let v: Value = serde_json::from_str(&dcj.stdout).expect("JSON");
    let entry = &v["auths"][ECR_HOST];
    assert_eq!(entry["password"], password);
    assert_eq!(
        entry["auth"],
        base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"))
    );
    assert_eq!(v["auths"].as_object().unwrap().len(), 1);
    assert_no_secrets(&dcj.stderr, "the logs of --format dockerconfigjson");

    let pw = run(cli(&names, home.path()), &["token", "--format", "password"])
        .await
        .ok("token --format password");
    assert_eq!(pw.stdout, format!("{password}\n"));
    assert_no_secrets(&pw.stderr, "the logs of --format password");

    // Several accounts and endpoint variants: one entry per host, one AWS call each run.
    let several = run(
        cli(&names, home.path()),
        &[
            "token",
            "--registry-id",
            "123456789012,210987654321",
            "--endpoint",
            "Standard",
            "--endpoint",
            "Fips",
        ],
    )
    .await
    .ok("token with several accounts and endpoints");
    let v: Value = serde_json::from_str(&several.stdout).unwrap();
    let hosts: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["host"].as_str().unwrap())
        .collect();
    assert_eq!(
        hosts,
        [
            "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "210987654321.dkr.ecr-fips.us-east-1.amazonaws.com",
            "210987654321.dkr.ecr.us-east-1.amazonaws.com",
        ]
    );
    let faults = Faults::new(bed.var("BED_FAULTS"));
    assert_eq!(
        faults
            .calls(&names.access_key_id(), "GetAuthorizationToken")
            .await,
        4
    );
}

#[tokio::test]
async fn token_docker_login_prints_pipelines_without_the_password() {
    let bed = Bed::get();
    let names = TestNames::new("cli-login");
    let home = temp_home();
    let out = run(
        cli(&names, home.path()),
        &[
            "token",
            "--format",
            "docker-login",
            "--registry-id",
            "123456789012",
            "--registry-id",
            "210987654321",
            "--session-name",
            "ci-run",
            "--role-arn",
            &format!("arn:aws:iam::{ACCOUNT}:role/{}", names.id),
        ],
    )
    .await
    .ok("token --format docker-login");
    assert_no_secrets(&out.stdout, "the docker-login output");
    assert_no_secrets(&out.stderr, "the logs of --format docker-login");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    for (line, account) in lines.iter().zip(["123456789012", "210987654321"]) {
        let (left, right) = line.split_once(" | ").expect("a pipeline");
        assert_eq!(
            right,
            format!(
                "docker login --username AWS --password-stdin {account}.dkr.ecr.us-east-1.amazonaws.com"
            )
        );
        assert!(left.contains("--region us-east-1"), "{left}");
        assert!(left.contains("--session-name ci-run"), "{left}");
        assert!(left.ends_with("--format password"), "{left}");
    }
    // The left side of the pipeline, run as printed, prints the password.
    let (left, _) = lines[0].split_once(" | ").unwrap();
    let args: Vec<&str> = left.split_whitespace().collect();
    assert_eq!(args[0], "ecr-operator");
    let pw = run(cli(&names, home.path()), &args[1..])
        .await
        .ok("the printed command");
    assert_eq!(pw.stdout.trim(), bed.var("BED_ECR_PASSWORD"));
}

#[tokio::test]
async fn token_writes_docker_config_keeping_other_entries_and_the_result_pulls() {
    let bed = Bed::get();
    let names = TestNames::new("cli-write");
    let home = temp_home();
    let docker_dir = home.path().join(".docker");
    std::fs::create_dir(&docker_dir).unwrap();
    let config_path = docker_dir.join("config.json");
    let before = json!({
        "auths": {
            "ghcr.io": {"auth": "Z2hjcjp0b2tlbg=="},
            ECR_HOST: {"auth": "c3RhbGU6c3RhbGU="},
        },
        "credsStore": "desktop",
        "credHelpers": {"gcr.io": "gcloud"},
        "HttpHeaders": {"User-Agent": "ci"},
    });
    std::fs::write(&config_path, before.to_string()).unwrap();
    std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o644)).unwrap();

    // Default path: $HOME/.docker/config.json.
    let out = run(
        cli(&names, home.path()),
        &["token", "--write-docker-config"],
    )
    .await
    .ok("token --write-docker-config");
    assert!(
        out.stdout.contains(&config_path.display().to_string()) && out.stdout.contains(ECR_HOST),
        "names the path and host: {}",
        out.stdout
    );
    assert_no_secrets(&out.stdout, "the output of --write-docker-config");
    assert_no_secrets(&out.stderr, "the logs of --write-docker-config");
    assert!(
        out.stderr.contains("credsStore"),
        "warns that docker uses the credsStore: {}",
        out.stderr
    );
    let mode = std::fs::metadata(&config_path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    let after: Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    assert_eq!(after["auths"]["ghcr.io"], before["auths"]["ghcr.io"]);
    assert_eq!(after["credsStore"], "desktop");
    assert_eq!(after["credHelpers"], before["credHelpers"]);
    assert_eq!(after["HttpHeaders"], before["HttpHeaders"]);
    assert_eq!(
        after["auths"][ECR_HOST]["password"],
        bed.var("BED_ECR_PASSWORD")
    );
    let leftovers: Vec<_> = std::fs::read_dir(&docker_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["config.json"], "no temporary file is left");

    // $DOCKER_CONFIG wins over HOME; a missing directory is created.
    let docker_config = home.path().join("elsewhere");
    let out = run(
        {
            let mut c = cli(&names, home.path());
            c.env("DOCKER_CONFIG", &docker_config);
            c
        },
        &["token", "--write-docker-config"],
    )
    .await
    .ok("token --write-docker-config with DOCKER_CONFIG");
    assert!(!out.stderr.contains("credsStore"), "{}", out.stderr);
    let written: Value =
        serde_json::from_slice(&std::fs::read(docker_config.join("config.json")).unwrap()).unwrap();

    // The written entry's credentials pull from the bed's registry (which stands in
    // for the ECR host).
    let authfile = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        authfile.path(),
        json!({"auths": {bed.var("BED_REGISTRY"): written["auths"][ECR_HOST]}}).to_string(),
    )
    .unwrap();
    let (ok, stderr) = skopeo_pull(bed.var("BED_IMAGE"), authfile.path());
    assert!(ok, "pulling with the written config failed: {stderr}");

    // A broken file is refused and left as it was.
    std::fs::write(&config_path, "{\"auths\": ").unwrap();
    let out = run(
        cli(&names, home.path()),
        &["token", "--write-docker-config"],
    )
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("not a valid Docker config"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&config_path).unwrap(),
        "{\"auths\": "
    );
}

/// An ECR client of moto as this test's access key.
pub(crate) async fn ecr_client(names: &TestNames) -> aws_sdk_ecr::Client {
    let bed = Bed::get();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new("us-east-1"))
        .endpoint_url(bed.var("AWS_ENDPOINT_URL"))
        .credentials_provider(aws_credential_types::Credentials::new(
            names.access_key_id(),
            bed.var("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "test",
        ))
        .load()
        .await;
    aws_sdk_ecr::Client::new(&config)
}

#[tokio::test]
async fn repos_lists_repositories_as_table_and_json() {
    let bed = Bed::get();
    let names = TestNames::new("cli-repos");
    let home = temp_home();
    let ecr = ecr_client(&names).await;
    let repos = [
        (format!("{}/api", names.id), true, "IMMUTABLE"),
        (format!("{}/web", names.id), false, "MUTABLE"),
        (format!("{}/worker", names.id), true, "MUTABLE"),
    ];
    for (name, scan, mutability) in &repos {
        ecr.create_repository()
            .repository_name(name)
            .image_tag_mutability((*mutability).into())
            .image_scanning_configuration(
                aws_sdk_ecr::types::ImageScanningConfiguration::builder()
                    .scan_on_push(*scan)
                    .build(),
            )
            .send()
            .await
            .expect("create repository in moto");
    }

    let out = run(
        cli(&names, home.path()),
        &["repos", "--output", "json", "--page-size", "2"],
    )
    .await
    .ok("repos --output json");
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let mine: Vec<&Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"].as_str().unwrap().starts_with(&names.id))
        .collect();
    assert_eq!(mine.len(), 3, "{v}");
    for ((name, scan, mutability), r) in repos.iter().zip(&mine) {
        assert_eq!(r["name"], *name);
        assert_eq!(r["uri"], format!("{ECR_HOST}/{name}"));
        assert_eq!(r["registryId"], ACCOUNT);
        assert_eq!(r["scanOnPush"], *scan);
        assert_eq!(r["imageTagMutability"], *mutability);
        let created: jiff::Timestamp = r["createdAt"].as_str().unwrap().parse().unwrap();
        assert!(created <= jiff::Timestamp::now());
    }

    let out = run(cli(&names, home.path()), &["repos"]).await.ok("repos");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let header = lines[0];
    assert!(header.starts_with("NAME"), "{header}");
    let uri_col = header.find("URI").unwrap();
    let scan_col = header.find("SCAN ON PUSH").unwrap();
    for (name, scan, mutability) in &repos {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name} in\n{}", out.stdout));
        assert_eq!(&line[uri_col..uri_col + ECR_HOST.len()], ECR_HOST, "{line}");
        assert!(line.contains(mutability), "{line}");
        assert_eq!(line[scan_col..].trim(), scan.to_string(), "{line}");
    }
    let faults = Faults::new(bed.var("BED_FAULTS"));
    assert_eq!(
        faults
            .calls(&names.access_key_id(), "DescribeRepositories")
            .await,
        2
    );

    for (name, ..) in &repos {
        let _ = ecr.delete_repository().repository_name(name).send().await;
    }
}

/// A stand-in for ECR that serves DescribeRepositories in `pages` (moto 5.2.5
/// ignores maxResults and nextToken, so it cannot show paging). Returns its URL
/// and the request bodies it received.
async fn paging_ecr(
    pages: Vec<Vec<String>>,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let requests = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let pages = pages.clone();
            let requests = requests.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        if sock.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                            return;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < head_end + len {
                        if sock.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                            return;
                        }
                    }
                    let body: Value =
                        serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or_default();
                    buf.drain(..head_end + len);
                    requests.lock().unwrap().push(body.clone());
                    let page: usize = body["nextToken"]
                        .as_str()
                        .map_or(0, |t| t.trim_start_matches("page-").parse().unwrap());
                    let mut resp = json!({"repositories": pages[page].iter().map(|n| json!({
                        "repositoryName": n,
                        "repositoryUri": format!("{ECR_HOST}/{n}"),
                        "repositoryArn": format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{n}"),
                        "registryId": ACCOUNT,
                        "createdAt": 1767225600.0,
                        "imageTagMutability": "MUTABLE",
                        "imageScanningConfiguration": {"scanOnPush": false},
                    })).collect::<Vec<_>>()});
                    if page + 1 < pages.len() {
                        resp["nextToken"] = json!(format!("page-{}", page + 1));
                    }
                    let text = resp.to_string();
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: paging\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    if sock.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn repos_reads_every_page() {
    let names = TestNames::new("cli-pages");
    let home = temp_home();
    let pages: Vec<Vec<String>> = vec![
        vec!["p1-a".into(), "p1-b".into()],
        vec!["p2-a".into(), "p2-b".into()],
        vec!["p3-a".into()],
    ];
    let (url, seen) = paging_ecr(pages).await;
    let mut cmd = cli(&names, home.path());
    cmd.env("AWS_ENDPOINT_URL", &url);
    let out = run(cmd, &["repos", "--page-size", "2", "-o", "json"])
        .await
        .ok("repos against the paging stand-in");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let got: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["p1-a", "p1-b", "p2-a", "p2-b", "p3-a"]);
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(
        requests.iter().all(|r| r["maxResults"] == 2),
        "{requests:?}"
    );
    assert_eq!(requests[0].get("nextToken"), None);
    assert_eq!(requests[1]["nextToken"], "page-1");
    assert_eq!(requests[2]["nextToken"], "page-2");
}

#[tokio::test]
async fn throttling_exits_3_and_says_throttled() {
    let bed = Bed::get();
    let names = TestNames::new("cli-throttle");
    let home = temp_home();
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let key = names.access_key_id();
    let rules = [
        faults
            .add(&key, "GetAuthorizationToken", json!({"action": "throttle"}))
            .await,
        faults
            .add(&key, "DescribeRepositories", json!({"action": "throttle"}))
            .await,
    ];
    for args in [&["token"][..], &["repos"][..]] {
        let out = run(cli(&names, home.path()), args).await;
        // Retryable: the same command may succeed later.
        assert_eq!(out.code, 3, "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        let last = out.stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: "), "{args:?}: {last}");
        assert!(last.contains("throttled"), "{args:?}: {last}");
        assert_no_secrets(&out.stderr, "the error");
    }
    // The SDK's standard retries, then the failure.
    assert!(faults.calls(&key, "GetAuthorizationToken").await >= 2);
    for r in rules {
        faults.remove(&r).await;
    }
}

#[tokio::test]
async fn bad_flags_fail_with_a_message_naming_the_flag() {
    let names = TestNames::new("cli-flags");
    let home = temp_home();
    let cases: &[(&[&str], i32, &str)] = &[
        // `--format` is an alias of `--output`, the name every command shares.
        (&["token", "--format", "yaml"], 2, "--output"),
        (&["token", "--output", "yaml"], 2, "--output"),
        (&["token", "--role-arn", "ecr-pull"], 2, "--role-arn"),
        (
            &["token", "--role-arn", "arn:aws:iam::123:role/x"],
            2,
            "--role-arn",
        ),
        (&["token", "--external-id", "abc"], 2, "--role-arn"),
        (
            &[
                "token",
                "--role-arn",
                "arn:aws:iam::123456789012:role/x",
                "--via-external-id",
                "ab",
            ],
            2,
            "--via-role-arn",
        ),
        (&["token", "--registry-id", "12345"], 2, "--registry-id"),
        (&["token", "--endpoint", "Ipv6"], 2, "--endpoint"),
        // No FIPS registry host in China, no dual-stack one in the ISO partitions.
        (
            &["token", "--region", "cn-north-1", "--endpoint", "Fips"],
            2,
            "--endpoint",
        ),
        (
            &[
                "token",
                "--region",
                "us-iso-east-1",
                "--endpoint",
                "DualStack",
            ],
            2,
            "--endpoint",
        ),
        (&["token", "--region", "Europe"], 2, "--region"),
        (
            &[
                "token",
                "--role-arn",
                "arn:aws:iam::123456789012:role/x",
                "--duration-seconds",
                "60",
            ],
            2,
            "--duration-seconds",
        ),
        (
            &["token", "--format", "password", "--write-docker-config"],
            2,
            "--write-docker-config",
        ),
        (&["repos", "--output", "yaml"], 2, "--output"),
        (&["repos", "--page-size", "0"], 2, "--page-size"),
        // The external ID is "<cluster-id>/<namespace>": no "/" in the first part.
        (&["run", "--cluster-id", "prod/eu"], 2, "--cluster-id"),
        (&["run", "--token-rate", "0"], 2, "--token-rate"),
        (&["run", "--token-rate", "201"], 2, "--token-rate"),
        (&["tokens"], 2, "tokens"),
    ];
    for (args, code, flag) in cases {
        let out = run(cli(&names, home.path()), args).await;
        assert_eq!(out.code, *code, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(flag), "{args:?}: {}", out.stderr);
    }

    // No region anywhere: a usage error that says how to give one.
    for sub in ["token", "repos"] {
        let mut cmd = cli(&names, home.path());
        cmd.env_remove("AWS_REGION");
        let out = run(cmd, &[sub]).await;
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr
                .contains("no region: pass --region or set AWS_REGION"),
            "{}",
            out.stderr
        );
    }
    // AWS_DEFAULT_REGION is the fallback.
    let mut cmd = cli(&names, home.path());
    cmd.env_remove("AWS_REGION")
        .env("AWS_DEFAULT_REGION", "us-east-1");
    run(cmd, &["token", "--format", "password"])
        .await
        .ok("token with AWS_DEFAULT_REGION");

    // AWS unreachable may pass (exit 3); no credentials does not (exit 1).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut cmd = cli(&names, home.path());
    cmd.env("AWS_ENDPOINT_URL", &url)
        .env("AWS_MAX_ATTEMPTS", "1");
    let out = run(cmd, &["token"]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("cannot reach AWS"), "{}", out.stderr);

    let mut cmd = cli(&names, home.path());
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let out = run(cmd, &["token"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("no AWS credentials"), "{}", out.stderr);
    assert!(out.stderr.contains("AWS_ACCESS_KEY_ID"), "{}", out.stderr);
}

/// AssumeRole calls the fault proxy saw for `role_arn`: (accessKeyId, status).
async fn assume_role_calls(role_arn: &str) -> Vec<(String, u64)> {
    let resp: Value = crate::support::http_client()
        .get(format!(
            "{}/calls",
            Bed::get().var("BED_FAULTS").trim_end_matches('/')
        ))
        .query(&[("roleArn", role_arn), ("operation", "AssumeRole")])
        .send()
        .await
        .expect("fault proxy reachable")
        .json()
        .await
        .unwrap();
    resp["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["accessKeyId"].as_str().unwrap_or_default().to_string(),
                c["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn token_assumes_the_role_and_the_role_chain() {
    let bed = Bed::get();
    let names = TestNames::new("cli-role");
    let home = temp_home();
    let key = names.access_key_id();
    let target = format!("arn:aws:iam::210987654321:role/{}-target", names.id);
    let hub = format!("arn:aws:iam::111111111111:role/{}-hub", names.id);

    // One role: assumed with this test's key; the token is the role account's.
    let out = run(
        cli(&names, home.path()),
        &[
            "token",
            "--role-arn",
            &target,
            "--external-id",
            "ext-target",
        ],
    )
    .await
    .ok("token --role-arn");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["host"], "210987654321.dkr.ecr.us-east-1.amazonaws.com");
    assert_eq!(v[0]["password"], "210987654321-auth-token");
    assert_eq!(assume_role_calls(&target).await, [(key.clone(), 200)]);

    // A chain: the hub with this test's key, then the target with the hub's keys.
    let out = run(
        cli(&names, home.path()),
        &[
            "token",
            "--via-role-arn",
            &hub,
            "--via-external-id",
            "ext-hub",
            "--role-arn",
            &target,
            "--session-name",
            "ci-run",
            "--format",
            "password",
        ],
    )
    .await
    .ok("token --via-role-arn --role-arn");
    assert_eq!(out.stdout, "210987654321-auth-token\n");
    assert_no_secrets(&out.stderr, "the logs of a role chain");
    assert_eq!(assume_role_calls(&hub).await, [(key.clone(), 200)]);
    let target_calls = assume_role_calls(&target).await;
    assert_eq!(target_calls.len(), 2, "{target_calls:?}");
    assert!(
        target_calls[1].0.starts_with("ASIA") && target_calls[1].0 != key,
        "the second AssumeRole is signed with the hub's temporary keys: {target_calls:?}"
    );

    // A denied AssumeRole names the flag of the failing role.
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let rule = faults
        .add(&key, "AssumeRole", json!({"action": "access_denied"}))
        .await;
    let out = run(
        cli(&names, home.path()),
        &["token", "--via-role-arn", &hub, "--role-arn", &target],
    )
    .await;
    faults.remove(&rule).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("cannot assume role {hub} (--via-role-arn)"))
            && out.stderr.contains("--via-external-id"),
        "{}",
        out.stderr
    );
}

/// The fault proxy's control API at `path` (e.g. `calls`, `health`).
fn faults_url(path: &str) -> String {
    format!(
        "{}/{path}",
        Bed::get().var("BED_FAULTS").trim_end_matches('/')
    )
}

/// Adds a fault-proxy rule for this key's ECR Public calls; returns its id.
async fn public_rule(key: &str, action: Value) -> String {
    let mut rule = action;
    rule["match"] = json!({"accessKeyId": key, "service": "ecr-public"});
    let resp: Value = crate::support::http_client()
        .post(faults_url("rules"))
        .json(&rule)
        .send()
        .await
        .expect("fault proxy reachable")
        .error_for_status()
        .expect("rule accepted")
        .json()
        .await
        .unwrap();
    resp["id"].as_str().expect("rule id").to_string()
}

/// The fault proxy's records of calls matching `query` (e.g. accessKeyId, service).
async fn call_records(query: &[(&str, &str)]) -> Vec<Value> {
    let resp: Value = crate::support::http_client()
        .get(faults_url("calls"))
        .query(query)
        .send()
        .await
        .expect("fault proxy reachable")
        .json()
        .await
        .unwrap();
    resp["calls"].as_array().cloned().unwrap_or_default()
}

/// The password of the ECR Public stand-in's tokens, and the `auth` it makes.
async fn public_password() -> (String, String) {
    let health: Value = crate::support::http_client()
        .get(faults_url("health"))
        .send()
        .await
        .expect("fault proxy reachable")
        .json()
        .await
        .unwrap();
    let pw = health["ecrPublicPassword"]
        .as_str()
        .expect("the proxy stands in for ECR Public")
        .to_string();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{pw}"));
    (pw, auth)
}

#[tokio::test]
async fn token_public_is_ecr_publics_token_in_every_format() {
    let names = TestNames::new("cli-public");
    let home = temp_home();
    let key = names.access_key_id();
    let (password, auth) = public_password().await;
    let no_password = |text: &str, what: &str| {
        assert!(
            !text.contains(&password) && !text.contains(&auth),
            "the ECR Public password is in {what}:\n{text}"
        );
        assert_no_secrets(text, what);
    };

    // AWS_REGION of another region is ignored: ECR Public's API is in us-east-1.
    let mut cmd = cli(&names, home.path());
    cmd.env("AWS_REGION", "eu-west-1");
    let out = run(cmd, &["token", "--public"]).await.ok("token --public");
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON on stdout");
    let entries = v.as_array().expect("an array");
    assert_eq!(entries.len(), 1, "{v}");
    assert_eq!(entries[0]["host"], PUBLIC_HOST);
    assert_eq!(entries[0]["username"], "AWS");
    assert_eq!(entries[0]["password"], password.as_str());
    let expires: jiff::Timestamp = entries[0]["expiresAt"].as_str().unwrap().parse().unwrap();
    let left = expires.duration_since(jiff::Timestamp::now());
    assert!(
        left > jiff::SignedDuration::from_hours(11) && left <= jiff::SignedDuration::from_hours(12),
        "the stand-in's 12 h expiry: {expires}"
    );
    no_password(&out.stderr, "the logs of token --public");

    // Exactly one call, of ECR Public's shape; none to private ECR.
    let calls = call_records(&[("accessKeyId", &key)]).await;
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let c = &calls[0];
    for (field, want) in [
        ("service", "ecr-public"),
        ("operation", "GetAuthorizationToken"),
        ("region", "us-east-1"),
        ("target", "SpencerFrontendService.GetAuthorizationToken"),
        ("contentType", "application/x-amz-json-1.1"),
        ("signingService", "ecr-public"),
        ("method", "POST"),
    ] {
        assert_eq!(c[field], want, "{field} of {c:#}");
    }
    assert_eq!(c["status"], 200, "{c:#}");

    // --region of the aws partition is ignored too.
    let dcj = run(
        cli(&names, home.path()),
        &[
            "token",
            "--public",
            "--region",
            "eu-central-1",
            "--format",
            "dockerconfigjson",
        ],
    )
    .await
    .ok("token --public --format dockerconfigjson");
    let v: Value = serde_json::from_str(&dcj.stdout).expect("JSON");
    assert_eq!(v["auths"].as_object().unwrap().len(), 1, "{v}");
    assert_eq!(v["auths"][PUBLIC_HOST]["auth"], auth.as_str());
    no_password(&dcj.stderr, "the logs of --format dockerconfigjson");

    // AWS_USE_FIPS_ENDPOINT does not apply: ECR Public has no FIPS endpoint (with
    // FIPS on, the SDK refuses a custom endpoint here, and in AWS it would call a
    // host that does not exist).
    let mut cmd = cli(&names, home.path());
    cmd.env("AWS_USE_FIPS_ENDPOINT", "true");
    let pw = run(cmd, &["token", "--public", "--format", "password"])
        .await
        .ok("token --public --format password with AWS_USE_FIPS_ENDPOINT");
    assert_eq!(pw.stdout, format!("{password}\n"));

    // The pipeline says --public, not a region, and runs as printed.
    let login = run(
        cli(&names, home.path()),
        &["token", "--public", "--format", "docker-login"],
    )
    .await
    .ok("token --public --format docker-login");
    no_password(&login.stdout, "the docker-login output");
    assert_eq!(
        login.stdout,
        "ecr-operator token --public --format password | docker login --username AWS --password-stdin public.ecr.aws\n"
    );
    let (left, _) = login.stdout.trim().split_once(" | ").unwrap();
    let args: Vec<&str> = left.split_whitespace().skip(1).collect();
    let again = run(cli(&names, home.path()), &args)
        .await
        .ok("the printed command");
    assert_eq!(again.stdout.trim(), password);

    // --write-docker-config keeps every other entry.
    let config_path = home.path().join(".docker").join("config.json");
    std::fs::create_dir_all(config_path.parent().unwrap()).unwrap();
    let before = json!({
        "auths": {
            "ghcr.io": {"auth": "Z2hjcjp0b2tlbg=="},
            ECR_HOST: {"auth": "c3RhbGU6c3RhbGU="},
        },
        "HttpHeaders": {"User-Agent": "ci"},
    });
    std::fs::write(&config_path, before.to_string()).unwrap();
    let out = run(
        cli(&names, home.path()),
        &["token", "--public", "--write-docker-config"],
    )
    .await
    .ok("token --public --write-docker-config");
    assert!(
        out.stdout.contains("ECR Public credentials")
            && out.stdout.contains(&config_path.display().to_string())
            && out.stdout.contains(&format!("  {PUBLIC_HOST}\n")),
        "{}",
        out.stdout
    );
    no_password(&out.stdout, "the output of --write-docker-config");
    no_password(&out.stderr, "the logs of --write-docker-config");
    let after: Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    assert_eq!(after["auths"]["ghcr.io"], before["auths"]["ghcr.io"]);
    assert_eq!(after["auths"][ECR_HOST], before["auths"][ECR_HOST]);
    assert_eq!(after["HttpHeaders"], before["HttpHeaders"]);
    assert_eq!(after["auths"][PUBLIC_HOST]["password"], password.as_str());
    assert_eq!(after["auths"].as_object().unwrap().len(), 3, "{after}");

    // Six runs, six ECR Public calls, no private ECR one.
    let calls = call_records(&[("accessKeyId", &key)]).await;
    assert_eq!(calls.len(), 6, "{calls:#?}");
    assert!(
        calls
            .iter()
            .all(|c| c["service"] == "ecr-public" && c["region"] == "us-east-1")
    );

    // Through a role chain: the ECR Public call is signed with the target role's keys.
    let target = format!("arn:aws:iam::210987654321:role/{}-target", names.id);
    let hub = format!("arn:aws:iam::111111111111:role/{}-hub", names.id);
    let out = run(
        cli(&names, home.path()),
        &[
            "token",
            "--public",
            "--via-role-arn",
            &hub,
            "--via-external-id",
            "ext-hub",
            "--role-arn",
            &target,
            "--external-id",
            "ext-target",
            "--format",
            "password",
        ],
    )
    .await
    .ok("token --public through a role chain");
    assert_eq!(out.stdout, format!("{password}\n"));
    no_password(&out.stderr, "the logs of a role chain");
    assert_eq!(assume_role_calls(&hub).await, [(key.clone(), 200)]);
    let by_role = call_records(&[("roleArn", &target), ("service", "ecr-public")]).await;
    assert_eq!(by_role.len(), 1, "{by_role:#?}");
    let signer = by_role[0]["accessKeyId"].as_str().unwrap_or_default();
    assert!(signer.starts_with("ASIA") && signer != key, "{signer}");
}

#[tokio::test]
async fn token_public_failures_exit_as_documented() {
    let names = TestNames::new("cli-pubfail");
    let home = temp_home();
    let key = names.access_key_id();
    let (password, auth) = public_password().await;

    // Flags that make no sense for ECR Public: usage errors, before any AWS call.
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["token", "--public", "--registry-id", "123456789012"],
            &["--registry-id", "--public"],
        ),
        (
            &["token", "--public", "--endpoint", "Fips"],
            &["--endpoint", "--public"],
        ),
        (
            &[
                "token",
                "--public",
                "--endpoint",
                "DualStack",
                "--registry-id",
                "123456789012",
            ],
            &["--registry-id and --endpoint", "--public"],
        ),
        (
            &["token", "--public", "--region", "cn-north-1"],
            &["--region", "aws partition"],
        ),
        (
            &[
                "token",
                "--public",
                "--role-arn",
                "arn:aws-us-gov:iam::123456789012:role/x",
            ],
            &["--role-arn", "aws partition"],
        ),
    ];
    for (args, wants) in cases {
        let out = run(cli(&names, home.path()), args).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        for want in *wants {
            assert!(
                out.stderr.contains(want),
                "{args:?}: {want} not in {}",
                out.stderr
            );
        }
    }
    assert!(call_records(&[("accessKeyId", &key)]).await.is_empty());

    // Denied: exit 1, naming both IAM actions ECR Public needs; no token anywhere.
    let rule = public_rule(&key, json!({"action": "access_denied"})).await;
    let out = run(cli(&names, home.path()), &["token", "--public"]).await;
    let faults = Faults::new(Bed::get().var("BED_FAULTS"));
    faults.remove(&rule).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let last = out.stderr.lines().last().unwrap_or_default();
    for want in [
        "error: access denied on ecr-public:GetAuthorizationToken",
        "sts:GetServiceBearerToken",
        "the default AWS credential chain",
    ] {
        assert!(last.contains(want), "{want} not in: {last}");
    }
    assert!(!last.contains("EcrRegistry"), "{last}");
    for text in [&out.stderr, &out.stdout] {
        assert!(!text.contains(&password) && !text.contains(&auth), "{text}");
        assert_no_secrets(text, "a denied token --public");
    }

    // Throttled past the retries: exit 3, as for private tokens.
    let rule = public_rule(&key, json!({"action": "throttle"})).await;
    let out = run(cli(&names, home.path()), &["token", "--public"]).await;
    faults.remove(&rule).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("throttled"),
        "{last}"
    );
    assert_no_secrets(&out.stderr, "a throttled token --public");

    // A 5xx: exit 3 too.
    let rule = public_rule(&key, json!({"action": "server_error", "status": 503})).await;
    let mut cmd = cli(&names, home.path());
    cmd.env("AWS_MAX_ATTEMPTS", "1");
    let out = run(cmd, &["token", "--public"]).await;
    faults.remove(&rule).await;
    assert_eq!(out.code, 3, "{}", out.stderr);

    // (A private token's 5xx exits 3 as well.)
    let rule = faults
        .add(
            &key,
            "GetAuthorizationToken",
            json!({"action": "server_error", "status": 503}),
        )
        .await;
    let mut cmd = cli(&names, home.path());
    cmd.env("AWS_MAX_ATTEMPTS", "1");
    let out = run(cmd, &["token"]).await;
    faults.remove(&rule).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    let private = call_records(&[("accessKeyId", &key), ("service", "ecr")]).await;
    assert_eq!(private.len(), 1, "{private:#?}");

    // Every other call went to ECR Public (the SDK retried the throttled one).
    let calls = call_records(&[("accessKeyId", &key)]).await;
    let public = calls
        .iter()
        .filter(|c| c["service"] == "ecr-public")
        .count();
    assert!(public >= 4, "{calls:#?}");
    assert_eq!(calls.len(), public + 1, "{calls:#?}");
}

#[tokio::test]
async fn help_shows_examples_and_exit_codes() {
    let names = TestNames::new("cli-help");
    let home = temp_home();
    let top = run(cli(&names, home.path()), &["--help"])
        .await
        .ok("--help");
    for sub in ["token", "repos", "run", "crd"] {
        assert!(top.stdout.contains(&format!("  {sub} ")), "{}", top.stdout);
    }
    for sub in ["token", "repos"] {
        let help = run(cli(&names, home.path()), &[sub, "--help"])
            .await
            .ok("--help");
        for want in [
            "Examples:",
            "Exit codes:",
            "2  usage error",
            "--region",
            "--role-arn",
            "--via-role-arn",
            "--via-external-id",
            "--external-id",
            "--session-name",
            "--duration-seconds",
            "AWS_REGION",
        ] {
            assert!(help.stdout.contains(want), "{sub} --help lacks {want}");
        }
    }
    let token = run(cli(&names, home.path()), &["token", "--help"])
        .await
        .ok("token --help");
    for want in [
        "docker-login",
        "dockerconfigjson",
        "--write-docker-config",
        "--endpoint",
        "--public",
        "public.ecr.aws",
    ] {
        assert!(token.stdout.contains(want), "token --help lacks {want}");
    }
}

#[tokio::test]
async fn examples_are_valid_ecr_registries() {
    let bed = Bed::get();
    let client = bed.client().await;
    install_crd(&client).await;
    // static-keys.yaml puts its Secret into the operator's default namespace.
    let _ = bed
        .kubectl()
        .args(["create", "namespace", "ecr-operator"])
        .output();
    let dir = repo_root().join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for file in &files {
        let out = bed
            .kubectl()
            .args(["apply", "--server-side", "--dry-run=server", "-f"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} is not accepted by the API server: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("ecrregistry.ecr-operator.io/"),
            "{}: {stdout}",
            file.display()
        );
    }
    // The dry run validates: a broken copy is refused.
    let broken = std::fs::read_to_string(dir.join("demo.yaml"))
        .unwrap()
        .replace("region: us-east-1", "region: Europe");
    let mut child = bed
        .kubectl()
        .args(["apply", "--server-side", "--dry-run=server", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(broken.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.region"));
}

#[tokio::test]
async fn demo_runs_to_the_pull_in_smoke_mode() {
    let bed = Bed::get();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(180),
        tokio::process::Command::new(repo_root().join("scripts/demo"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .envs(&bed.env)
            .env("ECR_OPERATOR_BIN", env!("CARGO_BIN_EXE_ecr-operator"))
            .env("DEMO_EXIT_AFTER_SETUP", "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the demo finished within 180 s")
    .expect("run scripts/demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for want in [
        "Reusing the test bed",
        "The secret appeared",
        ECR_HOST,
        "pulled: sha256:",
        "kubectl get ecrregistries",
        "objects of this run deleted",
    ] {
        assert!(
            stdout.contains(want),
            "the demo's output lacks {want:?}:\n{stdout}"
        );
    }
    assert_no_secrets(&stdout, "the demo's output");
    assert_no_secrets(&stderr, "the demo's errors");
}
