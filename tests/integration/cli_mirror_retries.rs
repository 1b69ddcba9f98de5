//! `ecr-operator mirror` (the real binary) retrying what may pass: BED_IMAGE from
//! BED_REGISTRY to BED_REGISTRY2 through a fault proxy of each test's own
//! (`support/registry_faults.rs`) as the destination. Throttling with
//! `Retry-After` and 503s are retried and the copy keeps its digest; a blob upload
//! reset in the middle is started again from a new upload and lands whole; 503s
//! beyond `--retries` and a stall beyond `--timeout` end with exit code 3 after
//! exactly the attempts the budget allows; a 503 on the `/v2/` ping (where the
//! client learns how to authenticate) is retried like any other; a 401, 403 or
//! 404 ends with exit code 1 at once, without a retry. The proxy's call records
//! count the attempts.

use crate::cli_mirror::{Reg, Run, authfile, mirror_cmd, num, reg1, reg2, sha256};
use crate::support::bed::{Bed, TestNames};
use crate::support::registry_faults::{Call, RegistryFaults};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Every manifest media type, so a GET answers the manifest as it was pushed.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// A registry's error body (distribution's format).
fn registry_error(code: &str, message: &str) -> Value {
    json!({"errors": [{"code": code, "message": message, "detail": null}]})
}

/// BED_REGISTRY2's credentials under the proxy's host.
fn through(proxy: &RegistryFaults) -> Reg {
    Reg {
        host: proxy.host.clone(),
        ..reg2()
    }
}

/// `mirror BED_IMAGE <proxy>/<repo>:v1 ARGS`, plain HTTP on both sides (the
/// per-side flags), with an authfile for the source and the proxy; how long it took.
fn copy(proxy: &RegistryFaults, repo: &str, args: &[&str]) -> (Run, Duration) {
    let src = Bed::get().var("BED_IMAGE").to_string();
    let dst = format!("{}/{repo}:v1", proxy.host);
    let auth = authfile(&[&reg1(), &through(proxy)]);
    let mut all = vec![
        src.as_str(),
        dst.as_str(),
        "--src-plain-http",
        "--dest-plain-http",
    ];
    all.extend(args);
    let started = Instant::now();
    let run = mirror_cmd(&all, &[auth.path()], false, &[]);
    (run, started.elapsed())
}

/// GET of a manifest straight from a registry (not through a proxy): the sha256
/// of its bytes, after checking the registry's Docker-Content-Digest agrees.
pub(crate) async fn manifest_digest(reg: &Reg, repo: &str, reference: &str) -> String {
    let res = crate::support::http_client()
        .get(format!(
            "http://{}/v2/{repo}/manifests/{reference}",
            reg.host
        ))
        .basic_auth(&reg.user, Some(&reg.password))
        .header("accept", ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "GET {repo}:{reference} from {}",
        reg.host
    );
    let header = res.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    let digest = sha256(&res.bytes().await.unwrap());
    assert_eq!(header, digest, "the registry's Docker-Content-Digest");
    digest
}

/// The source image: its digest and its largest blob (digest, size).
async fn source() -> (String, String, u64) {
    let r1 = reg1();
    let image = Bed::get().var("BED_IMAGE");
    let (repo, tag) = image
        .split_once('/')
        .map(|(_, rest)| rest.rsplit_once(':').unwrap())
        .unwrap();
    let digest = manifest_digest(&r1, repo, tag).await;
    let manifest: Value = crate::support::http_client()
        .get(format!("http://{}/v2/{repo}/manifests/{tag}", r1.host))
        .basic_auth(&r1.user, Some(&r1.password))
        .header("accept", ACCEPT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let largest = manifest["layers"]
        .as_array()
        .expect("a single-platform image")
        .iter()
        .max_by_key(|l| l["size"].as_u64())
        .unwrap();
    (
        digest,
        largest["digest"].as_str().unwrap().to_string(),
        largest["size"].as_u64().unwrap(),
    )
}

fn calls_text(calls: &[Call]) -> String {
    calls.iter().map(|c| c.line() + "\n").collect()
}

/// Success, at least `retries` retries in the summary, and the destination (read
/// straight from BED_REGISTRY2) holding the source's digest.
async fn copied_intact(run: &Run, repo: &str, retries: u64, proxy: &RegistryFaults) {
    let calls = proxy.calls().await;
    assert!(
        run.ok(),
        "{}\nproxy calls:\n{}",
        run.describe(),
        calls_text(&calls)
    );
    let s = run.summary();
    assert!(num(&s, "retries") >= retries, "{s:?}");
    let (want, _, _) = source().await;
    assert_eq!(s["digest"], want, "{s:?}");
    assert_eq!(
        manifest_digest(&reg2(), repo, "v1").await,
        want,
        "the destination's manifest"
    );
}

#[tokio::test]
async fn throttled_requests_are_retried_and_the_digest_kept() {
    let names = TestNames::new("retry");
    let proxy = RegistryFaults::start().await;
    let repo = format!("{}/hello", names.id);
    let rule = proxy
        .add(json!({
            "match": {"path": format!("^/v2/{repo}/(manifests|blobs)/")},
            "action": "error", "status": 429, "headers": {"Retry-After": "1"},
            "body": registry_error("TOOMANYREQUESTS", "slow down (injected)"),
            "count": 2,
        }))
        .await;
    let (run, _) = copy(&proxy, &repo, &[]);
    // One attempt may meet both 429s: oci-client follows a HEAD without a digest
    // header (a 429's) with a GET at once. Retry-After is not honoured: oci-client
    // does not expose the headers of failed responses (documented in --help).
    copied_intact(&run, &repo, 1, &proxy).await;
    assert_eq!(proxy.rule(&rule).await["hits"], 2);
}

/// The first two blob uploads are answered 503 after their whole body was sent:
/// each is sent again, from a new upload.
#[tokio::test]
async fn server_errors_are_retried_and_the_digest_kept() {
    let names = TestNames::new("retry");
    let proxy = RegistryFaults::start().await;
    let repo = format!("{}/hello", names.id);
    let rule = proxy
        .add(json!({
            "match": {"method": ["PUT", "PATCH"], "path": format!("^/v2/{repo}/blobs/uploads/")},
            "action": "error", "status": 503,
            "body": registry_error("UNAVAILABLE", "service unavailable (injected)"),
            "count": 2,
        }))
        .await;
    let (run, _) = copy(&proxy, &repo, &[]);
    copied_intact(&run, &repo, 2, &proxy).await;
    assert_eq!(proxy.rule(&rule).await["hits"], 2);
    let calls = proxy.calls().await;
    let faulted: u64 = calls
        .iter()
        .filter(|c| c.fault.is_some())
        .map(|c| c.request_bytes)
        .sum();
    let s = run.summary();
    assert!(
        num(&s, "bytes_resent") >= faulted,
        "the bodies the 503s answered count as re-sent ({faulted} bytes): {s:?}"
    );
}

/// The largest blob's upload is reset after 256 KiB: the retry starts a new upload
/// (a new POST, another upload URL) and the blob lands whole.
#[tokio::test]
async fn a_blob_upload_reset_mid_body_starts_again_cleanly() {
    const CUT: u64 = 256 * 1024;
    let names = TestNames::new("retry");
    let proxy = RegistryFaults::start().await;
    let repo = format!("{}/hello", names.id);
    let (_, blob, size) = source().await;
    assert!(size > CUT, "the largest blob is larger than the cut");
    let hex = blob.trim_start_matches("sha256:");
    let rule = proxy
        .add(json!({
            "match": {"method": ["PUT", "PATCH"], "path": "/blobs/uploads/", "query": hex},
            "action": "drop", "dropAfterBytes": CUT, "count": 1,
        }))
        .await;
    let (run, _) = copy(&proxy, &repo, &[]);
    copied_intact(&run, &repo, 1, &proxy).await;
    let s = run.summary();
    assert!(num(&s, "bytes_resent") >= CUT, "{s:?}");
    assert_eq!(proxy.rule(&rule).await["hits"], 1);
    let calls = proxy.calls().await;
    let uploads: Vec<&Call> = calls
        .iter()
        .filter(|c| c.method == "PUT" && c.query.contains(hex))
        .collect();
    assert_eq!(uploads.len(), 2, "{}", calls_text(&calls));
    assert_eq!(
        (uploads[0].status, uploads[0].request_bytes),
        (0, CUT),
        "the first upload was cut off"
    );
    assert_eq!(
        (uploads[1].status, uploads[1].request_bytes),
        (201, size),
        "the second sent the blob whole"
    );
    assert_ne!(
        uploads[0].path, uploads[1].path,
        "the retry used a new upload session"
    );
    // The blob in the destination, straight from BED_REGISTRY2.
    let r2 = reg2();
    let res = crate::support::http_client()
        .get(format!("http://{}/v2/{repo}/blobs/{blob}", r2.host))
        .basic_auth(&r2.user, Some(&r2.password))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let bytes = res.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(sha256(&bytes), blob);
}

/// The registry's `/v2/` ping, where a client learns how to authenticate, answered
/// 503 twice: the copy gets through. (oci-client then sends the next request
/// without credentials; its 401 gets one more try, which pings again.)
#[tokio::test]
async fn server_errors_on_the_auth_ping_are_retried() {
    let names = TestNames::new("retry");
    let proxy = RegistryFaults::start().await;
    let repo = format!("{}/hello", names.id);
    let rule = proxy
        .add(json!({
            "match": {"method": "GET", "path": "^/v2/$"},
            "action": "error", "status": 503,
            "body": registry_error("UNAVAILABLE", "service unavailable (injected)"),
            "count": 2,
        }))
        .await;
    let (run, _) = copy(&proxy, &repo, &[]);
    copied_intact(&run, &repo, 1, &proxy).await;
    assert_eq!(proxy.rule(&rule).await["hits"], 2);
}

/// Every request fails with 503: the first request of the copy, the HEAD of the
/// destination's manifest, is tried 1 + 2 times, then the copy ends with exit
/// code 3, naming the registry and the status.
#[tokio::test]
async fn server_errors_beyond_the_retries_exit_3_after_exactly_the_budget() {
    let names = TestNames::new("retry");
    let proxy = RegistryFaults::start().await;
    let repo = format!("{}/hello", names.id);
    proxy
        .add(json!({
            "match": {}, "action": "error", "status": 503,
            "body": registry_error("UNAVAILABLE", "service unavailable (injected)"),
        }))
        .await;
    let (run, took) = copy(&proxy, &repo, &["--retries", "2"]);
    let calls = proxy.calls().await;
    assert_eq!(
        run.code(),
        Some(3),
        "{}\n{}",
        run.describe(),
        calls_text(&calls)
    );
    let error = run
        .stderr
        .lines()
        .rfind(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {}", run.describe()));
    assert!(
        error.contains(&proxy.host) && error.contains("503"),
        "names the registry and HTTP 503: {error}"
    );
    let manifest = format!("/v2/{repo}/manifests/v1");
    let heads = calls
        .iter()
        .filter(|c| c.method == "HEAD" && c.path == manifest)
        .count();
    assert_eq!(
        heads,
        3,
        "1 + 2 attempts of HEAD {manifest}:\n{}",
        calls_text(&calls)
    );
    assert!(
        calls.iter().all(|c| c.status == 503),
        "{}",
        calls_text(&calls)
    );
    // Nothing but that lookup (oci-client's ping of /v2/ for credentials, and its
    // GET of the manifest when a HEAD brings no digest), at most once per attempt
    // each; the copy goes no further.
    for c in &calls {
        assert!(
            c.path == "/v2/" || c.path == manifest,
            "a request past the failing lookup: {}\n{}",
            c.line(),
            calls_text(&calls)
        );
    }
    let gets = calls
        .iter()
        .filter(|c| c.method == "GET" && c.path == manifest)
        .count();
    assert!(gets <= 3, "{}", calls_text(&calls));
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

/// The blob uploads never get an answer: `--timeout 5s` ends the copy with exit
/// code 3 within 5 to 15 s.
#[tokio::test]
async fn a_stalled_upload_ends_at_the_timeout_with_exit_3() {
    let names = TestNames::new("retry");
    let proxy = RegistryFaults::start().await;
    let repo = format!("{}/hello", names.id);
    proxy
        .add(json!({
            "match": {"method": ["PUT", "PATCH"], "path": "/blobs/uploads/"},
            "action": "stall",
        }))
        .await;
    let (run, took) = copy(&proxy, &repo, &["--timeout", "5s"]);
    assert_eq!(run.code(), Some(3), "{}", run.describe());
    assert!(
        run.stderr.contains("--timeout"),
        "names the flag: {}",
        run.describe()
    );
    assert!(
        took >= Duration::from_millis(4900) && took <= Duration::from_secs(15),
        "took {took:?}"
    );
    let stalled = proxy
        .calls()
        .await
        .into_iter()
        .filter(|c| c.action.as_deref() == Some("stall"))
        .count();
    assert!(stalled >= 1, "an upload reached the stall");
}

/// Answers that will not change by themselves: exit code 1 at once, each faulted
/// request sent exactly once (a 401: twice).
#[tokio::test]
async fn unauthorized_denied_and_not_found_exit_1_without_retries() {
    let cases = [
        (
            "403 on the blob upload",
            json!({"method": "POST", "path": "/blobs/uploads/"}),
            403,
            registry_error("DENIED", "requested access to the resource is denied"),
        ),
        (
            "401 on the manifest push",
            json!({"method": "PUT", "path": "/manifests/"}),
            401,
            registry_error("UNAUTHORIZED", "authentication required"),
        ),
        (
            "404 on the manifest push",
            json!({"method": "PUT", "path": "/manifests/"}),
            404,
            registry_error("NAME_UNKNOWN", "repository name not known to registry"),
        ),
    ];
    for (what, matching, status, body) in cases {
        let names = TestNames::new("retry");
        let proxy = RegistryFaults::start().await;
        let repo = format!("{}/hello", names.id);
        let rule = proxy
            .add(json!({"match": matching, "action": "error", "status": status, "body": body}))
            .await;
        // One blob at a time, so exactly one upload meets the fault.
        let (run, took) = copy(&proxy, &repo, &["--jobs", "1"]);
        let calls = proxy.calls().await;
        assert_eq!(
            run.code(),
            Some(1),
            "{what}: {}\n{}",
            run.describe(),
            calls_text(&calls)
        );
        // A 401 is tried once more (see server_errors_on_the_auth_ping_are_retried).
        let once_more = if status == 401 { 2 } else { 1 };
        assert_eq!(
            proxy.rule(&rule).await["hits"],
            once_more,
            "{what}: the faulted request was sent {once_more} time(s):\n{}",
            calls_text(&calls)
        );
        assert!(
            took < Duration::from_secs(5),
            "{what}: took {took:?}, no backoff"
        );
    }
}
