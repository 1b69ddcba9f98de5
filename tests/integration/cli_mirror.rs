//! `ecr-operator mirror` (the real binary) between the bed's two registries:
//! BED_REGISTRY (user AWS, the ECR stand-in, holds BED_IMAGE) and BED_REGISTRY2
//! (user `mirror`), both plain HTTP with htpasswd auth.
//!
//! Images with several platforms are built here, Docker and OCI media types,
//! and pushed with plain HTTP requests, so their manifest bytes are known exactly.

use crate::support::bed::{Bed, TestNames};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashMap;
use std::path::Path;
use std::process::Output;

#[derive(Clone)]
pub(crate) struct Reg {
    pub(crate) host: String,
    pub(crate) user: String,
    pub(crate) password: String,
}

pub(crate) fn reg1() -> Reg {
    let bed = Bed::get();
    Reg {
        host: bed.var("BED_REGISTRY").into(),
        user: "AWS".into(),
        password: bed.var("BED_ECR_PASSWORD").into(),
    }
}

pub(crate) fn reg2() -> Reg {
    let bed = Bed::get();
    assert!(
        bed.env.contains_key("BED_REGISTRY2"),
        "the bed has no second registry (BED_REGISTRY2): it was started by an older \
         tests/bed/registry/start; restart it (tests/bed/down, then tests/bed/up)"
    );
    Reg {
        host: bed.var("BED_REGISTRY2").into(),
        user: bed.var("BED_REGISTRY2_USER").into(),
        password: bed.var("BED_REGISTRY2_PASSWORD").into(),
    }
}

impl Reg {
    pub(crate) fn creds(&self) -> String {
        format!("{}:{}", self.user, self.password)
    }
    /// The entry the operator writes into a `.dockerconfigjson`.
    fn auth_entry(&self) -> Value {
        json!({
            "username": self.user,
            "password": self.password,
            "auth": STANDARD.encode(self.creds()),
        })
    }
}

/// A Docker config file with one entry per registry.
pub(crate) fn authfile(regs: &[&Reg]) -> tempfile::NamedTempFile {
    let auths: serde_json::Map<String, Value> = regs
        .iter()
        .map(|r| (r.host.clone(), r.auth_entry()))
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), json!({ "auths": auths }).to_string()).unwrap();
    file
}

/// Every form a bed credential could leak in.
fn secrets() -> Vec<String> {
    let mut out = Bed::get().secret_values();
    let r2 = reg2();
    out.push(r2.password.clone());
    out.push(STANDARD.encode(r2.creds()));
    out
}

pub(crate) struct Run {
    pub(crate) output: Output,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn ok(&self) -> bool {
        self.output.status.success()
    }
    pub(crate) fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    /// The `key=value` pairs of the summary line.
    pub(crate) fn summary(&self) -> HashMap<String, String> {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("mirrored "))
            .unwrap_or_else(|| {
                panic!(
                    "no summary line; stdout:\n{}\nstderr:\n{}",
                    self.stdout, self.stderr
                )
            });
        line.split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
    pub(crate) fn describe(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code(),
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `ecr-operator mirror ARGS` (with `--plain-http` unless `tls`), and checks
/// that no credential shows in its output.
pub(crate) fn mirror_cmd(
    args: &[&str],
    authfiles: &[&Path],
    plain_http: bool,
    env: &[(&str, &str)],
) -> Run {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ecr-operator"));
    cmd.arg("mirror").args(args);
    for f in authfiles {
        cmd.arg("--authfile").arg(f);
    }
    if plain_http {
        cmd.arg("--plain-http");
    }
    cmd.env_remove("DOCKER_CONFIG").env("HOME", "/nonexistent");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().expect("run ecr-operator mirror");
    let run = Run {
        stdout: String::from_utf8_lossy(&output.stdout).into(),
        stderr: String::from_utf8_lossy(&output.stderr).into(),
        output,
    };
    for s in secrets() {
        assert!(
            !run.stdout.contains(&s) && !run.stderr.contains(&s),
            "a credential leaked into the output of mirror {args:?}"
        );
    }
    run
}

pub(crate) fn mirror(src: &str, dst: &str, authfiles: &[&Path]) -> Run {
    mirror_cmd(&[src, dst], authfiles, true, &[])
}

pub(crate) fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `skopeo inspect` of an image: its Digest field.
pub(crate) fn skopeo_digest(image: &str, reg: &Reg) -> String {
    let json: Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &reg.creds(),
        &format!("docker://{image}"),
    ]))
    .unwrap();
    json["Digest"].as_str().expect("Digest").to_string()
}

/// The manifest bytes as the registry serves them.
pub(crate) fn skopeo_raw(image: &str, reg: &Reg) -> Vec<u8> {
    skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &reg.creds(),
        &format!("docker://{image}"),
    ])
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    let hex: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

pub(crate) fn num(summary: &HashMap<String, String>, key: &str) -> u64 {
    summary
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {summary:?}"))
        .parse()
        .unwrap()
}

// --- Pushing hand-made images over the registry API ----------------------------------

pub(crate) struct Pusher {
    http: reqwest::Client,
    reg: Reg,
}

impl Pusher {
    pub(crate) fn new(reg: &Reg) -> Self {
        Self {
            http: crate::support::http_client(),
            reg: reg.clone(),
        }
    }

    pub(crate) async fn blob(&self, repo: &str, bytes: &[u8]) -> Value {
        let digest = sha256(bytes);
        let res = self
            .http
            .post(format!("http://{}/v2/{repo}/blobs/uploads/", self.reg.host))
            .basic_auth(&self.reg.user, Some(&self.reg.password))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "start upload");
        let location = res.headers()["location"].to_str().unwrap().to_string();
        let location = if location.starts_with('/') {
            format!("http://{}{location}", self.reg.host)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let res = self
            .http
            .put(format!("{location}{sep}digest={digest}"))
            .basic_auth(&self.reg.user, Some(&self.reg.password))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "finish upload");
        json!({"digest": digest, "size": bytes.len()})
    }

    pub(crate) async fn manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) {
        let res = self
            .http
            .put(format!(
                "http://{}/v2/{repo}/manifests/{reference}",
                self.reg.host
            ))
            .basic_auth(&self.reg.user, Some(&self.reg.password))
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        let status = res.status();
        assert_eq!(status, 201, "push manifest: {}", res.text().await.unwrap());
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Flavour {
    Oci,
    Docker,
}

/// Pushes a two-platform image (linux/amd64, linux/arm64; one layer shared, one
/// of each platform's own) as `repo:tag`. Manifests are pretty-printed, so a copy
/// that re-serialized them would change every digest. Returns (index bytes,
/// child manifest digests).
pub(crate) async fn push_multi_platform(
    reg: &Reg,
    repo: &str,
    tag: &str,
    flavour: Flavour,
) -> (Vec<u8>, Vec<String>) {
    let (index_type, manifest_type, config_type, layer_type) = match flavour {
        Flavour::Oci => (
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        Flavour::Docker => (
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ),
    };
    let p = Pusher::new(reg);
    let shared: Vec<u8> = (0..300_000).map(|_| rand::random::<u8>()).collect();
    let shared_desc = p.blob(repo, &shared).await;
    let mut entries = Vec::new();
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let own: Vec<u8> = (0..100_000).map(|_| rand::random::<u8>()).collect();
        let own_desc = p.blob(repo, &own).await;
        let config = serde_json::to_vec_pretty(&json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [shared_desc["digest"], own_desc["digest"]]},
        }))
        .unwrap();
        let config_desc = p.blob(repo, &config).await;
        let layer =
            |d: &Value| json!({"mediaType": layer_type, "digest": d["digest"], "size": d["size"]});
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": config_desc["digest"], "size": config_desc["size"]},
            "layers": [layer(&shared_desc), layer(&own_desc)],
        }))
        .unwrap();
        let digest = sha256(&manifest);
        p.manifest(repo, &digest, manifest_type, &manifest).await;
        entries.push(json!({
            "mediaType": manifest_type, "digest": digest, "size": manifest.len(),
            "platform": {"architecture": arch, "os": "linux"},
        }));
        children.push(digest);
    }
    let index = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2, "mediaType": index_type, "manifests": entries,
    }))
    .unwrap();
    p.manifest(repo, tag, index_type, &index).await;
    (index, children)
}

// --- Tests --------------------------------------------------------------------------

#[tokio::test]
async fn single_image_to_the_second_registry_keeps_its_digest() {
    let bed = Bed::get();
    let (r1, r2) = (reg1(), reg2());
    let names = TestNames::new("mirror");
    let src = bed.var("BED_IMAGE").to_string();
    let dst = format!("{}/{}/hello:v1", r2.host, names.id);
    // The Job's order: destination credentials first, then the source's.
    let (dst_auth, src_auth) = (authfile(&[&r2]), authfile(&[&r1]));
    let digest_file = tempfile::NamedTempFile::new().unwrap();
    let run = mirror_cmd(
        &[
            &src,
            &dst,
            "--digest-file",
            digest_file.path().to_str().unwrap(),
        ],
        &[dst_auth.path(), src_auth.path()],
        true,
        &[],
    );
    assert!(run.ok(), "{}", run.describe());
    let s = run.summary();
    let want = skopeo_digest(&src, &r1);
    assert_eq!(s["digest"], want);
    assert_eq!(
        skopeo_digest(&dst, &r2),
        want,
        "skopeo sees the same digest"
    );
    assert_eq!(std::fs::read_to_string(digest_file.path()).unwrap(), want);
    assert_eq!(num(&s, "platforms"), 1);
    assert!(num(&s, "blobs_copied") >= 2, "{s:?}");
    assert!(
        num(&s, "bytes_uploaded") > 1_000_000,
        "busybox is in there: {s:?}"
    );
    assert_eq!(num(&s, "blobs_skipped"), 0);
    // Off a terminal: one structured line per blob and per manifest.
    assert_eq!(
        run.stderr.matches("copied").count(),
        num(&s, "blobs_copied") as usize,
        "{}",
        run.describe()
    );
    assert_eq!(
        run.stderr.matches("pushed").count(),
        1,
        "{}",
        run.describe()
    );

    // Once more: everything is there, nothing is sent, and nothing is read
    // either: HEAD requests found the digest under the tag (no blob counted).
    let again = mirror(&src, &dst, &[dst_auth.path(), src_auth.path()]);
    assert!(again.ok(), "{}", again.describe());
    let s2 = again.summary();
    assert_eq!(num(&s2, "bytes_uploaded"), 0, "{s2:?}");
    assert_eq!(num(&s2, "blobs_copied"), 0);
    assert_eq!(s2["up_to_date"], "true");
    assert_eq!(s2["digest"], want);
    assert_eq!(num(&s2, "manifests_skipped"), 1, "{s2:?}");
    assert_eq!(num(&s2, "manifests_pushed"), 0, "{s2:?}");
    assert_eq!(num(&s2, "blobs_skipped"), 0, "no manifest was read: {s2:?}");

    // Under another tag of the same repository: the manifest is pushed, every
    // blob is found by HEAD and skipped.
    let dst_v2 = format!("{}/{}/hello:v2", r2.host, names.id);
    let tagged = mirror(&src, &dst_v2, &[dst_auth.path(), src_auth.path()]);
    assert!(tagged.ok(), "{}", tagged.describe());
    let s3 = tagged.summary();
    assert_eq!(num(&s3, "bytes_uploaded"), 0, "{s3:?}");
    assert_eq!(num(&s3, "blobs_skipped"), num(&s, "blobs_copied"));
    assert_eq!(num(&s3, "manifests_pushed"), 1);
    assert_eq!(skopeo_digest(&dst_v2, &r2), want);
}

#[tokio::test]
async fn destination_without_tag_takes_the_source_tag_and_json_logs_work() {
    let bed = Bed::get();
    let (r1, r2) = (reg1(), reg2());
    let names = TestNames::new("mirror");
    let src = bed.var("BED_IMAGE");
    let auth = authfile(&[&r1, &r2]);
    let dst_repo = format!("{}/{}/hello", r2.host, names.id);
    let run = mirror_cmd(
        &[src, &dst_repo, "--log-format", "json"],
        &[auth.path()],
        true,
        &[],
    );
    assert!(run.ok(), "{}", run.describe());
    let lines: Vec<Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "blob" && l["outcome"] == "copied"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "manifest" && l["reference"] == "v1"),
        "{lines:?}"
    );
    let done = lines
        .iter()
        .find(|l| l["message"] == "mirrored")
        .expect("summary event");
    assert_eq!(done["up_to_date"], false);
    assert_eq!(
        skopeo_digest(&format!("{dst_repo}:v1"), &r2),
        skopeo_digest(src, &r1)
    );
}

async fn multi_platform(flavour: Flavour) {
    let (r1, r2) = (reg1(), reg2());
    let names = TestNames::new("mirror");
    let repo = format!("{}/multi", names.id);
    let (index, children) = push_multi_platform(&r1, &repo, "v1", flavour).await;
    let src = format!("{}/{repo}:v1", r1.host);
    let dst = format!("{}/{repo}:v1", r2.host);
    let auth = authfile(&[&r1, &r2]);
    let run = mirror(&src, &dst, &[auth.path()]);
    assert!(run.ok(), "{}", run.describe());
    let s = run.summary();
    assert_eq!(s["digest"], sha256(&index));
    assert_eq!(num(&s, "platforms"), 2);
    // shared layer + 2 own layers + 2 configs, the shared one sent once
    assert_eq!(num(&s, "blobs_copied"), 5, "{s:?}");
    assert_eq!(num(&s, "manifests_pushed"), 3);
    assert_eq!(skopeo_raw(&dst, &r2), index, "the index, byte for byte");
    assert_eq!(skopeo_digest(&dst, &r2), skopeo_digest(&src, &r1));
    for child in &children {
        let raw = skopeo_raw(&format!("{}/{repo}@{child}", r2.host), &r2);
        assert_eq!(&sha256(&raw), child);
    }
    // Every platform pulls from the destination.
    for arch in ["amd64", "arm64"] {
        let out = tempfile::tempdir().unwrap();
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &r2.creds(),
            "--override-arch",
            arch,
            &format!("docker://{dst}"),
            &format!("dir:{}", out.path().display()),
        ]);
    }
    let again = mirror(&src, &dst, &[auth.path()]);
    assert!(again.ok(), "{}", again.describe());
    assert_eq!(num(&again.summary(), "bytes_uploaded"), 0);
}

#[tokio::test]
async fn oci_index_with_all_platforms() {
    multi_platform(Flavour::Oci).await;
}

#[tokio::test]
async fn docker_manifest_list_with_all_platforms() {
    multi_platform(Flavour::Docker).await;
}

#[tokio::test]
async fn copy_within_one_registry_mounts_the_blobs() {
    let bed = Bed::get();
    let r1 = reg1();
    let names = TestNames::new("mirror");
    let src = bed.var("BED_IMAGE");
    let dst = format!("{}/{}/hello:v1", r1.host, names.id);
    let auth = authfile(&[&r1]);
    let run = mirror(src, &dst, &[auth.path()]);
    assert!(run.ok(), "{}", run.describe());
    let s = run.summary();
    assert!(num(&s, "blobs_mounted") >= 2, "{s:?}");
    assert_eq!(num(&s, "blobs_copied"), 0, "{s:?}");
    assert_eq!(num(&s, "bytes_uploaded"), 0, "{s:?}");
    assert_eq!(skopeo_digest(&dst, &r1), skopeo_digest(src, &r1));
    // The registry saw the mount requests for this repository.
    let log = Path::new(bed.var("BED_STATE")).join("logs/registry.log");
    if let Ok(text) = std::fs::read_to_string(&log) {
        let mounts = text
            .lines()
            .filter(|l| {
                l.contains(&format!("/v2/{}/hello/blobs/uploads/?", names.id))
                    && l.contains("mount=")
            })
            .count();
        assert!(
            mounts >= 2,
            "no mount requests for {} in {}",
            names.id,
            log.display()
        );
    }
}

#[tokio::test]
async fn a_missing_image_is_not_found() {
    let (r1, r2) = (reg1(), reg2());
    let names = TestNames::new("mirror");
    let auth = authfile(&[&r1, &r2]);
    let dst = format!("{}/{}/x:v1", r2.host, names.id);
    for src in [
        format!("{}/bed/hello:no-such-tag", r1.host),
        format!("{}/no/such-repo:v1", r1.host),
    ] {
        let run = mirror(&src, &dst, &[auth.path()]);
        assert_eq!(run.code(), Some(1), "{}", run.describe());
        assert!(
            run.stderr.contains("error: not found:"),
            "{}",
            run.describe()
        );
        assert!(
            run.stderr.contains(&src),
            "names the image: {}",
            run.describe()
        );
    }
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_unauthorized() {
    let bed = Bed::get();
    let (r1, r2) = (reg1(), reg2());
    let names = TestNames::new("mirror");
    let src = bed.var("BED_IMAGE");
    let dst = format!("{}/{}/x:v1", r2.host, names.id);
    let wrong_src = Reg {
        password: "not-the-password".into(),
        ..r1.clone()
    };
    let wrong_dst = Reg {
        password: "not-the-password".into(),
        ..r2.clone()
    };
    let cases = [
        (
            "wrong source password",
            authfile(&[&wrong_src, &r2]),
            r1.host.clone(),
        ),
        (
            "wrong destination password",
            authfile(&[&r1, &wrong_dst]),
            r2.host.clone(),
        ),
        ("no source entry", authfile(&[&r2]), r1.host.clone()),
    ];
    for (what, auth, host) in &cases {
        let run = mirror(src, &dst, &[auth.path()]);
        assert_eq!(run.code(), Some(1), "{what}: {}", run.describe());
        assert!(
            run.stderr
                .contains(&format!("error: unauthorized: {host} rejected")),
            "{what}: {}",
            run.describe()
        );
    }
    let anonymous = mirror(src, &dst, &[cases[2].1.path()]);
    assert!(
        anonymous.stderr.contains("anonymous access"),
        "{}",
        anonymous.describe()
    );
    assert!(!anonymous.stderr.contains("not-the-password"));
}

#[tokio::test]
async fn transport_failures_name_their_cause() {
    let bed = Bed::get();
    let (r1, r2) = (reg1(), reg2());
    let auth = authfile(&[&r1, &r2]);
    let dst = format!("{}/unused/x:v1", r2.host);

    // Nothing listens on port 1: retryable (exit 3), after the retries.
    let run = mirror_cmd(
        &["127.0.0.1:1/a/b:v1", &dst, "--retries", "1"],
        &[auth.path()],
        true,
        &[],
    );
    assert_eq!(run.code(), Some(3), "{}", run.describe());
    assert_eq!(
        run.stderr.matches("retrying").count(),
        1,
        "{}",
        run.describe()
    );
    assert!(
        run.stderr
            .contains("error: registry unreachable: 127.0.0.1:1"),
        "{}",
        run.describe()
    );

    // HTTPS (the default) to a plain-HTTP registry.
    let run = mirror_cmd(&[bed.var("BED_IMAGE"), &dst], &[auth.path()], false, &[]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains("error: TLS failure with"),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("--plain-http"),
        "the hint: {}",
        run.describe()
    );

    // A certificate from an unknown CA (the bed's API server speaks HTTPS).
    let api = bed
        .var("BED_APISERVER")
        .trim_start_matches("https://")
        .to_string();
    let src = format!("{api}/a/b:v1");
    let run = mirror_cmd(&[&src, &dst], &[auth.path()], false, &[]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains("error: TLS failure with"),
        "{}",
        run.describe()
    );
    // --insecure gets past TLS; the API server is no registry.
    let run = mirror_cmd(&[&src, &dst, "--insecure"], &[auth.path()], false, &[]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(!run.stderr.contains("TLS failure"), "{}", run.describe());
}

#[tokio::test]
async fn usage_errors_are_named() {
    let r2 = reg2();
    let run = mirror("Not/Valid:ref", &format!("{}/a:b", r2.host), &[]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains("error: invalid image reference"),
        "{}",
        run.describe()
    );
    let run = mirror("a/b:c", "d/e:f", &[Path::new("/nonexistent/auth.json")]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr
            .contains("error: authfile /nonexistent/auth.json"),
        "{}",
        run.describe()
    );
}

#[tokio::test]
async fn extra_tags_are_applied_and_a_new_tag_sends_no_blob() {
    let bed = Bed::get();
    let (r1, r2) = (reg1(), reg2());
    let names = TestNames::new("mirror");
    let src = bed.var("BED_IMAGE");
    let dst = format!("{}/{}/hello:v1", r2.host, names.id);
    let auth = authfile(&[&r1, &r2]);
    let tagged = |extra: &[&str]| {
        let mut args = vec![src, dst.as_str()];
        for t in extra {
            args.extend(["--tag", t]);
        }
        mirror_cmd(&args, &[auth.path()], true, &[])
    };
    let run = tagged(&["v2", "latest"]);
    assert!(run.ok(), "{}", run.describe());
    let s = run.summary();
    assert_eq!(num(&s, "manifests_pushed"), 3, "{s:?}");
    let want = skopeo_digest(src, &r1);
    for tag in ["v1", "v2", "latest"] {
        let image = format!("{}/{}/hello:{tag}", r2.host, names.id);
        assert_eq!(skopeo_digest(&image, &r2), want, "{tag}");
    }
    let again = tagged(&["v2", "latest"]);
    assert!(again.ok(), "{}", again.describe());
    let s2 = again.summary();
    assert_eq!(s2["up_to_date"], "true", "{s2:?}");
    assert_eq!(num(&s2, "manifests_pushed"), 0);
    assert_eq!(num(&s2, "bytes_uploaded"), 0);
    // One more tag: the content is there (under v1), only the tag is pushed.
    let more = tagged(&["v3"]);
    assert!(more.ok(), "{}", more.describe());
    let s3 = more.summary();
    assert_eq!(s3["up_to_date"], "false", "{s3:?}");
    assert_eq!(num(&s3, "manifests_pushed"), 1, "{s3:?}");
    assert_eq!(num(&s3, "blobs_copied"), 0);
    assert_eq!(num(&s3, "bytes_uploaded"), 0);
    assert_eq!(
        skopeo_digest(&format!("{}/{}/hello:v3", r2.host, names.id), &r2),
        want
    );
    let bad = tagged(&["no:colons"]);
    assert_eq!(bad.code(), Some(1), "{}", bad.describe());
    assert!(
        bad.stderr
            .contains("error: invalid image reference \"no:colons\""),
        "{}",
        bad.describe()
    );
}

/// A registry that accepts connections and never answers (a stalled transfer):
/// the copy ends with an error, at `--read-timeout` for a silent connection and at
/// `--timeout` for the whole copy, never hangs.
#[tokio::test]
async fn a_stalled_registry_ends_the_copy_at_its_timeouts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = vec![];
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let r2 = reg2();
    let auth = authfile(&[&r2]);
    let src = format!("127.0.0.1:{port}/a/b:v1");
    let dst = format!("{}/unused/x:v1", r2.host);
    for (flags, needle) in [
        (["--read-timeout", "2s"], "timed out"),
        (["--timeout", "3s"], "did not finish within 3s (--timeout)"),
    ] {
        let started = std::time::Instant::now();
        let mut args = vec![src.as_str(), dst.as_str(), "--retries", "0"];
        args.extend(flags);
        let run = mirror_cmd(&args, &[auth.path()], true, &[]);
        let took = started.elapsed();
        // A stall may pass: exit 3, as after the retries.
        assert_eq!(run.code(), Some(3), "{flags:?}: {}", run.describe());
        assert!(run.stderr.contains(needle), "{flags:?}: {}", run.describe());
        assert!(
            took < std::time::Duration::from_secs(20),
            "{flags:?} took {took:?}"
        );
    }
}
