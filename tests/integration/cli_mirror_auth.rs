//! Where `ecr-operator mirror` (the real binary) gets registry credentials: a
//! Docker credential helper on PATH (`credHelpers`, `credsStore`), per-side
//! authfiles (`--src-authfile`, `--dest-authfile`), and its own ECR login
//! (GetAuthorizationToken at moto A through the fault proxy) for a destination
//! named like ECR, `123456789012.dkr.ecr.us-east-1.amazonaws.com`, which reaches
//! BED_REGISTRY through `tests/bed/node/connect-proxy` as the HTTP_PROXY; and its
//! ECR Public login (the fault proxy's ECR Public stand-in) for `public.ecr.aws`,
//! mapped to BED_REGISTRY the same way.

use crate::support::bed::{Bed, TestNames, repo_root};
use crate::support::faults::Faults;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

/// moto's account and the bed's region: the registry host ECR login serves.
const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
/// ECR Public's registry host.
const PUBLIC_HOST: &str = "public.ecr.aws";

struct Reg {
    host: String,
    user: String,
    password: String,
}

/// BED_REGISTRY: user `AWS`, moto's token; holds BED_IMAGE (`bed/hello:v1`).
fn reg1() -> Reg {
    let bed = Bed::get();
    Reg {
        host: bed.var("BED_REGISTRY").into(),
        user: "AWS".into(),
        password: bed.var("BED_ECR_PASSWORD").into(),
    }
}

/// BED_REGISTRY2: user `mirror`, a random password; empty.
fn reg2() -> Reg {
    let bed = Bed::get();
    Reg {
        host: bed.var("BED_REGISTRY2").into(),
        user: bed.var("BED_REGISTRY2_USER").into(),
        password: bed.var("BED_REGISTRY2_PASSWORD").into(),
    }
}

fn entry(user: &str, password: &str) -> Value {
    json!({"auth": STANDARD.encode(format!("{user}:{password}"))})
}

/// Every credential of the bed in the forms it could leak in.
fn secrets() -> Vec<String> {
    let mut out = Bed::get().secret_values();
    let r2 = reg2();
    out.push(r2.password.clone());
    out.push(STANDARD.encode(format!("{}:{}", r2.user, r2.password)));
    out
}

/// A temporary directory with the test's files: authfiles, helpers, logs.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
    fn write_json(&self, name: &str, value: &Value) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, value.to_string()).unwrap();
        p
    }
    /// An executable `docker-credential-NAME` in `bin/`, a shell script that logs
    /// its argument and stdin and then runs `body`.
    fn helper(&self, name: &str, body: &str) -> PathBuf {
        let bin = self.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let log = self.path(&format!("{name}.log"));
        let script = bin.join(format!("docker-credential-{name}"));
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s ' \"$1\" >> '{log}'\ncat >> '{log}'\necho >> '{log}'\n{body}\n",
                log = log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
        log
    }
    /// PATH with this directory's `bin/` first.
    fn path_var(&self) -> String {
        format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }
}

/// The binary under test; ECR_OPERATOR_BIN runs another build (e.g. an older one).
fn bin() -> PathBuf {
    std::env::var_os("ECR_OPERATOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_ecr-operator").into())
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `ecr-operator mirror ARGS --plain-http` with a clean environment: PATH, an
/// empty HOME and DOCKER_CONFIG (so no default authfile), debug logs, `env`.
/// Checks that no credential of the bed shows in its output.
async fn mirror(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> Run {
    let home = dir.path("home");
    std::fs::create_dir_all(home.join("docker")).unwrap();
    let mut cmd = tokio::process::Command::new(bin());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("RUST_LOG", "debug")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .arg("mirror")
        .args(args)
        .arg("--plain-http")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("mirror finished within 120 s")
        .expect("run ecr-operator mirror");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for s in secrets() {
        assert!(
            !run.stdout.contains(&s) && !run.stderr.contains(&s),
            "a credential leaked into the output of mirror {args:?}"
        );
    }
    run
}

fn assert_copied(run: &Run) {
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(
        run.stdout.lines().any(|l| l.starts_with("mirrored ")),
        "{}",
        run.describe()
    );
}

#[tokio::test]
async fn a_credential_helper_gives_the_destination_its_credentials() {
    let names = TestNames::new("mauth-helper");
    let (r1, r2) = (reg1(), reg2());
    let dir = Dir::new();
    let log = dir.helper(
        "bedtest",
        &format!(
            "printf '{{\"ServerURL\":\"%s\",\"Username\":\"{}\",\"Secret\":\"{}\"}}' '{}'",
            r2.user, r2.password, r2.host
        ),
    );
    // The destination only through credHelpers: no auths entry for it.
    let authfile = dir.write_json(
        "config.json",
        &json!({
            "auths": {&r1.host: entry(&r1.user, &r1.password)},
            "credHelpers": {&r2.host: "bedtest"},
        }),
    );
    let src = format!("{}/bed/hello:v1", r1.host);
    let dst = format!("{}/{}/hello:v1", r2.host, names.id);
    let path = dir.path_var();
    let run = mirror(
        &dir,
        &[&src, &dst, "--authfile", authfile.to_str().unwrap()],
        &[("PATH", &path)],
    )
    .await;
    assert_copied(&run);
    // Asked once (per side that uses it), with the host as the config key has it.
    let asked = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        asked.lines().collect::<Vec<_>>(),
        [format!("get {}", r2.host)]
    );

    // "credentials not found" from the store: anonymous for that file, and the
    // next file is searched.
    let dir = Dir::new();
    let log = dir.helper(
        "bedmiss",
        "echo 'credentials not found in native keychain'; exit 1",
    );
    let store = dir.write_json("store.json", &json!({"credsStore": "bedmiss"}));
    let plain = dir.write_json(
        "plain.json",
        &json!({"auths": {
            &r1.host: entry(&r1.user, &r1.password),
            &r2.host: entry(&r2.user, &r2.password),
        }}),
    );
    let dst = format!("{}/{}/miss:v1", r2.host, names.id);
    let path = dir.path_var();
    let run = mirror(
        &dir,
        &[
            &src,
            &dst,
            "--authfile",
            store.to_str().unwrap(),
            "--authfile",
            plain.to_str().unwrap(),
        ],
        &[("PATH", &path)],
    )
    .await;
    assert_copied(&run);
    let asked = std::fs::read_to_string(&log).unwrap();
    assert!(asked.contains(&format!("get {}", r2.host)), "{asked}");

    // A helper that is not on PATH: an error naming it and the file.
    let dir = Dir::new();
    let missing = dir.write_json(
        "missing.json",
        &json!({"credHelpers": {&r2.host: "bed-no-such-helper"}}),
    );
    let run = mirror(
        &dir,
        &[&src, &dst, "--dest-authfile", missing.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(
        run.stderr.contains("docker-credential-bed-no-such-helper")
            && run.stderr.contains(missing.to_str().unwrap())
            && run.stderr.contains("PATH"),
        "{}",
        run.describe()
    );
}

#[tokio::test]
async fn each_side_reads_its_own_authfiles_first() {
    let names = TestNames::new("mauth-sides");
    let (r1, r2) = (reg1(), reg2());
    let dir = Dir::new();
    // Each file is right for its own side and wrong for the other.
    let src_file = dir.write_json(
        "src.json",
        &json!({"auths": {
            &r1.host: entry(&r1.user, &r1.password),
            &r2.host: entry(&r2.user, "not-the-password"),
        }}),
    );
    let dst_file = dir.write_json(
        "dst.json",
        &json!({"auths": {
            &r2.host: entry(&r2.user, &r2.password),
            &r1.host: entry(&r1.user, "not-the-password"),
        }}),
    );
    let (s, d) = (src_file.to_str().unwrap(), dst_file.to_str().unwrap());
    let src = format!("{}/bed/hello:v1", r1.host);
    let dst = format!("{}/{}/hello:v1", r2.host, names.id);

    let run = mirror(
        &dir,
        &[&src, &dst, "--src-authfile", s, "--dest-authfile", d],
        &[],
    )
    .await;
    assert_copied(&run);

    // Side files come before the shared ones: the shared file is wrong for both.
    let dst2 = format!("{}/{}/shared:v1", r2.host, names.id);
    let shared = dir.write_json(
        "shared.json",
        &json!({"auths": {
            &r1.host: entry(&r1.user, "not-the-password"),
            &r2.host: entry(&r2.user, "not-the-password"),
        }}),
    );
    let run = mirror(
        &dir,
        &[
            &src,
            &dst2,
            "--authfile",
            shared.to_str().unwrap(),
            "--src-authfile",
            s,
            "--dest-authfile",
            d,
        ],
        &[],
    )
    .await;
    assert_copied(&run);

    // Swapped: each side gets the other's file, whose entry for it is wrong.
    let run = mirror(
        &dir,
        &[&src, &dst2, "--src-authfile", d, "--dest-authfile", s],
        &[],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.describe());
    let err = run.stderr.lines().last().unwrap_or_default();
    assert!(
        err.starts_with("error: unauthorized: "),
        "{}",
        run.describe()
    );
    let source_side = err.contains(&format!("{} rejected", r1.host));
    let named = if source_side { d } else { s };
    assert!(
        err.contains(&format!(
            "the credentials of user \"{}\" from {named}",
            if source_side { &r1.user } else { &r2.user }
        )),
        "{}",
        run.describe()
    );

    // A side file is not the other side's: the destination has no credentials.
    let run = mirror(&dir, &[&src, &dst2, "--src-authfile", s], &[]).await;
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(
        run.stderr.contains(&format!(
            "unauthorized: {} rejected anonymous access",
            r2.host
        )),
        "{}",
        run.describe()
    );
}

/// `connect-proxy` forwarding plain HTTP for ECR_HOST and PUBLIC_HOST to
/// BED_REGISTRY, killed on drop.
struct Proxy {
    child: std::process::Child,
    url: String,
    log: PathBuf,
}

impl Proxy {
    fn start(dir: &Dir) -> Self {
        let port_file = dir.path("proxy.port");
        let log = dir.path("proxy.log");
        let child = std::process::Command::new("python3")
            .arg(repo_root().join("tests/bed/node/connect-proxy"))
            .args(["--listen", "127.0.0.1:0", "--port-file"])
            .arg(&port_file)
            .arg("--map")
            .arg(format!("{ECR_HOST}={}", reg1().host))
            .arg("--map")
            .arg(format!("{PUBLIC_HOST}={}", reg1().host))
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start connect-proxy");
        let started = std::time::Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p.trim().to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "connect-proxy did not listen within 10 s: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The AWS environment of the bed with this test's access key ID, and the proxy.
fn aws_env<'a>(bed: &'a Bed, key: &'a str, proxy: &'a Proxy) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AWS_ENDPOINT_URL", bed.var("AWS_ENDPOINT_URL")),
        ("AWS_REGION", bed.var("AWS_REGION")),
        ("AWS_ACCESS_KEY_ID", key),
        ("AWS_SECRET_ACCESS_KEY", bed.var("AWS_SECRET_ACCESS_KEY")),
        ("HTTP_PROXY", &proxy.url),
        ("NO_PROXY", "127.0.0.1,localhost"),
    ]
}

#[tokio::test]
async fn ecr_login_without_any_authfile() {
    let bed = Bed::get();
    let names = TestNames::new("mauth-ecr");
    let key = names.access_key_id();
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let dir = Dir::new();
    let proxy = Proxy::start(&dir);
    let env = aws_env(bed, &key, &proxy);

    // Both sides are the ECR host (one account, one region): one token.
    let src = format!("{ECR_HOST}/bed/hello:v1");
    let dst = format!("{ECR_HOST}/{}/hello:v1", names.id);
    let run = mirror(&dir, &[&src, &dst], &env).await;
    assert_copied(&run);
    assert_eq!(
        faults.calls(&key, "GetAuthorizationToken").await,
        1,
        "one token fetch for both sides"
    );
    let log = std::fs::read_to_string(&proxy.log).unwrap();
    assert!(
        log.contains(&format!(
            "PUT http://{ECR_HOST}:80/v2/{}/hello/manifests/v1",
            names.id
        )),
        "the copy went through the proxy:\n{log}"
    );
    assert_landed(&names.id, &run.stdout).await;

    // --no-ecr-login: anonymous, 401, and no token call.
    let dst = format!("{ECR_HOST}/{}/nologin:v1", names.id);
    let run = mirror(&dir, &[&src, &dst, "--no-ecr-login"], &env).await;
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(
        run.stderr.contains(&format!(
            "unauthorized: {ECR_HOST} rejected anonymous access"
        )),
        "{}",
        run.describe()
    );
    assert_eq!(faults.calls(&key, "GetAuthorizationToken").await, 1);
}

#[tokio::test]
async fn a_failed_ecr_login_says_what_was_tried() {
    let bed = Bed::get();
    let names = TestNames::new("mauth-ecrfail");
    let key = names.access_key_id();
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let dir = Dir::new();
    let proxy = Proxy::start(&dir);
    let mut env = aws_env(bed, &key, &proxy);
    env.push(("AWS_MAX_ATTEMPTS", "1"));
    let src = format!("{}/bed/hello:v1", reg1().host);
    let authfile = dir.write_json(
        "src.json",
        &json!({"auths": {&reg1().host: entry(&reg1().user, &reg1().password)}}),
    );
    let dst = format!("{ECR_HOST}/{}/hello:v1", names.id);
    let a = authfile.to_str().unwrap();

    // A 5xx: retryable, exit 3.
    let rule = faults
        .add(
            &key,
            "GetAuthorizationToken",
            json!({"action": "server_error", "status": 503}),
        )
        .await;
    let run = mirror(&dir, &[&src, &dst, "--src-authfile", a], &env).await;
    faults.remove(&rule).await;
    assert_eq!(run.code, 3, "{}", run.describe());
    let err = run.stderr.lines().last().unwrap_or_default();
    for what in [
        ECR_HOST,
        "us-east-1",
        "GetAuthorizationToken",
        "--no-ecr-login",
    ] {
        assert!(err.contains(what), "{what} not in: {}", run.describe());
    }

    // Denied: permanent, exit 1.
    let rule = faults
        .add(
            &key,
            "GetAuthorizationToken",
            json!({"action": "access_denied"}),
        )
        .await;
    let run = mirror(&dir, &[&src, &dst, "--src-authfile", a], &env).await;
    faults.remove(&rule).await;
    assert_eq!(run.code, 1, "{}", run.describe());
    let err = run.stderr.lines().last().unwrap_or_default();
    for what in [ECR_HOST, "us-east-1", "access denied"] {
        assert!(err.contains(what), "{what} not in: {}", run.describe());
    }
}

/// Adds a fault-proxy rule for this key's ECR Public calls; returns its id.
async fn public_rule(key: &str, action: Value) -> String {
    let mut rule = action;
    rule["match"] = json!({"accessKeyId": key, "service": "ecr-public"});
    let resp: Value = crate::support::http_client()
        .post(format!(
            "{}/rules",
            Bed::get().var("BED_FAULTS").trim_end_matches('/')
        ))
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

/// This key's GetAuthorizationToken calls: (ECR Public's, private ECR's).
async fn token_calls(faults: &Faults, key: &str) -> (usize, usize) {
    let records = faults.records(key, "GetAuthorizationToken").await;
    let public = records
        .iter()
        .filter(|r| r["service"] == "ecr-public")
        .count();
    (public, records.len() - public)
}

#[tokio::test]
async fn ecr_public_login_without_any_authfile() {
    let bed = Bed::get();
    let names = TestNames::new("mauth-public");
    let key = names.access_key_id();
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let dir = Dir::new();
    let proxy = Proxy::start(&dir);
    let env = aws_env(bed, &key, &proxy);
    // ECR Public's token carries the password BED_REGISTRY accepts.
    let rule = public_rule(
        &key,
        json!({"action": "token", "password": bed.var("BED_ECR_PASSWORD")}),
    )
    .await;

    // Pulled from and pushed to public.ecr.aws with one ECR Public token.
    let src = format!("{PUBLIC_HOST}/bed/hello:v1");
    let dst = format!("{PUBLIC_HOST}/{}/hello:v1", names.id);
    let run = mirror(&dir, &[&src, &dst], &env).await;
    assert_copied(&run);
    assert_eq!(
        token_calls(&faults, &key).await,
        (1, 0),
        "one ECR Public token for both sides, no private one"
    );
    let call = &faults.records(&key, "GetAuthorizationToken").await[0];
    assert_eq!(call["region"], "us-east-1", "{call:#}");
    assert_eq!(call["signingService"], "ecr-public", "{call:#}");
    let log = std::fs::read_to_string(&proxy.log).unwrap();
    for want in [
        "GET http://public.ecr.aws:80/v2/bed/hello/manifests/v1".to_string(),
        format!(
            "PUT http://public.ecr.aws:80/v2/{}/hello/manifests/v1",
            names.id
        ),
    ] {
        assert!(log.contains(&want), "{want} not through the proxy:\n{log}");
    }
    assert_landed(&names.id, &run.stdout).await;

    // From public.ecr.aws into the second registry, no authfile for the source.
    let r2 = reg2();
    let dest_file = dir.write_json(
        "dst.json",
        &json!({"auths": {&r2.host: entry(&r2.user, &r2.password)}}),
    );
    let dst2 = format!("{}/{}/from-public:v1", r2.host, names.id);
    let run = mirror(
        &dir,
        &[&src, &dst2, "--dest-authfile", dest_file.to_str().unwrap()],
        &env,
    )
    .await;
    assert_copied(&run);
    assert_eq!(token_calls(&faults, &key).await, (2, 0));

    // --no-ecr-login: anonymous (which this registry refuses), no token call.
    let run = mirror(
        &dir,
        &[
            &src,
            &dst2,
            "--dest-authfile",
            dest_file.to_str().unwrap(),
            "--no-ecr-login",
        ],
        &env,
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.describe());
    assert!(
        run.stderr.contains(&format!(
            "unauthorized: {PUBLIC_HOST} rejected anonymous access"
        )),
        "{}",
        run.describe()
    );
    assert_eq!(token_calls(&faults, &key).await, (2, 0));
    faults.remove(&rule).await;
}

#[tokio::test]
async fn a_failed_ecr_public_login_pulls_anonymously_but_fails_a_push() {
    let bed = Bed::get();
    let names = TestNames::new("mauth-pubfail");
    let key = names.access_key_id();
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let dir = Dir::new();
    let proxy = Proxy::start(&dir);
    let mut env = aws_env(bed, &key, &proxy);
    env.push(("AWS_MAX_ATTEMPTS", "1"));
    let (r1, r2) = (reg1(), reg2());
    let src_file = dir.write_json(
        "src.json",
        &json!({"auths": {&r1.host: entry(&r1.user, &r1.password)}}),
    );
    let dest_file = dir.write_json(
        "dst.json",
        &json!({"auths": {&r2.host: entry(&r2.user, &r2.password)}}),
    );
    let public_src = format!("{PUBLIC_HOST}/bed/hello:v1");

    // Denied, for the source: a warning, then the pull goes on anonymously (real
    // public.ecr.aws serves public images so; the bed's registry refuses it).
    let rule = public_rule(&key, json!({"action": "access_denied"})).await;
    let dst = format!("{}/{}/anon:v1", r2.host, names.id);
    let run = mirror(
        &dir,
        &[
            &public_src,
            &dst,
            "--dest-authfile",
            dest_file.to_str().unwrap(),
        ],
        &env,
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.describe());
    let warning = run
        .stderr
        .lines()
        .find(|l| l.contains("ECR Public login failed: pulling anonymously"))
        .unwrap_or_else(|| panic!("no warning: {}", run.describe()));
    for want in [
        "WARN",
        "ecr-public:GetAuthorizationToken",
        "sts:GetServiceBearerToken",
    ] {
        assert!(warning.contains(want), "{want} not in {warning}");
    }
    let err = run.stderr.lines().last().unwrap_or_default();
    assert!(
        err.contains(&format!(
            "unauthorized: {PUBLIC_HOST} rejected anonymous access"
        )),
        "the pull went on anonymously: {}",
        run.describe()
    );
    assert_eq!(token_calls(&faults, &key).await, (1, 0));

    // Denied, for the destination: no anonymous push; exit 1 naming what was tried.
    // With public.ecr.aws on both sides, still one call.
    let public_dst = format!("{PUBLIC_HOST}/{}/push:v1", names.id);
    let run = mirror(&dir, &[&public_src, &public_dst], &env).await;
    assert_eq!(run.code, 1, "{}", run.describe());
    let err = run.stderr.lines().last().unwrap_or_default();
    for want in [
        "error: ECR Public login for public.ecr.aws failed",
        "us-east-1",
        "--no-ecr-login",
        "access denied on ecr-public:GetAuthorizationToken",
        "sts:GetServiceBearerToken",
    ] {
        assert!(err.contains(want), "{want} not in: {}", run.describe());
    }
    assert_eq!(token_calls(&faults, &key).await, (2, 0));
    faults.remove(&rule).await;

    // A 5xx for the destination: retryable, exit 3.
    let rule = public_rule(&key, json!({"action": "server_error", "status": 503})).await;
    let run = mirror(
        &dir,
        &[
            &format!("{}/bed/hello:v1", r1.host),
            &public_dst,
            "--src-authfile",
            src_file.to_str().unwrap(),
        ],
        &env,
    )
    .await;
    faults.remove(&rule).await;
    assert_eq!(run.code, 3, "{}", run.describe());
    let err = run.stderr.lines().last().unwrap_or_default();
    for want in [
        PUBLIC_HOST,
        "ecr-public:GetAuthorizationToken",
        "--no-ecr-login",
    ] {
        assert!(err.contains(want), "{want} not in: {}", run.describe());
    }
    assert_eq!(token_calls(&faults, &key).await, (3, 0));
}

/// The ECR host parser and the helper protocol have unit tests (src/); this checks
/// that `mirror --help` shows the flags and no longer says helpers are unsupported.
#[tokio::test]
async fn help_names_the_credential_flags() {
    let out = tokio::process::Command::new(bin())
        .args(["mirror", "--help"])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--src-authfile",
        "--dest-authfile",
        "--authfile",
        "--no-ecr-login",
        "--role-arn",
        "--external-id",
        "--via-role-arn",
        "--session-name",
        "public.ecr.aws",
    ] {
        assert!(help.contains(flag), "{flag} not in mirror --help:\n{help}");
    }
    assert!(
        !help.contains("Credential helpers are not supported"),
        "{help}"
    );
}

/// The digest in the summary on `stdout` is what the bed registry holds as
/// `<id>/hello:v1`.
async fn assert_landed(id: &str, stdout: &str) {
    let digest = stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("digest="))
        .expect("digest in the summary")
        .to_string();
    let r1 = reg1();
    let res = crate::support::http_client()
        .head(format!("http://{}/v2/{id}/hello/manifests/v1", r1.host))
        .basic_auth(&r1.user, Some(&r1.password))
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["docker-content-digest"], digest.as_str());
}
