//! The `mirror` features of issue 16, the real binary on the bed: OCI 1.1
//! referrers through the referrers tag schema (distribution 2.8 has no referrers
//! API, as oras and cosign v3 find it) and cosign's `.sig` tags; `--all-tags` with
//! `--tag-regex`; `--platform`; `--output json` and the JSON error line;
//! `--ca-file` and per-side TLS against a private TLS registry; a re-run with
//! nothing to do that sends the source HEAD requests only, observed in the
//! registry's own access log.
//!
//! Images are pushed with plain HTTP requests (`cli_mirror`'s builders), so the
//! bytes of every manifest are known exactly.

use crate::cli_mirror::{
    Flavour, Pusher, Reg, authfile, mirror_cmd, num, push_multi_platform, reg1, reg2, sha256,
    skopeo,
};
use crate::support::bed::{Bed, TestNames};
use serde_json::{Value, json};
use std::io::{Read as _, Seek as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
const SIG_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SBOM_TYPE: &str = "application/spdx+json";
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

// --- Reading a registry -------------------------------------------------------------

/// The manifest under `reference` as the registry serves it; None on 404.
async fn get_manifest(reg: &Reg, repo: &str, reference: &str) -> Option<Vec<u8>> {
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
    match res.status().as_u16() {
        200 => Some(res.bytes().await.unwrap().to_vec()),
        404 => None,
        s => panic!(
            "GET {repo}/manifests/{reference}: HTTP {s}: {}",
            res.text().await.unwrap()
        ),
    }
}

/// The tags of `repo`, sorted; none when the repository does not exist.
async fn tags(reg: &Reg, repo: &str) -> Vec<String> {
    let res = crate::support::http_client()
        .get(format!("http://{}/v2/{repo}/tags/list", reg.host))
        .basic_auth(&reg.user, Some(&reg.password))
        .send()
        .await
        .unwrap();
    if res.status() == 404 {
        return Vec::new();
    }
    assert_eq!(res.status(), 200, "list the tags of {repo}");
    let body: Value = res.json().await.unwrap();
    let mut tags: Vec<String> = body["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}

/// The tag of `digest`'s referrers index (OCI distribution spec 1.1, "referrers
/// tag schema"), also the stem of cosign's tags.
fn referrers_tag(digest: &str) -> String {
    digest.replace(':', "-")
}

fn summary_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("mirrored "))
        .collect()
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

// --- Signed images, as oras and cosign push them without referrers API -------------

/// An image with one OCI 1.1 referrer (an artifact manifest whose `subject` is
/// the image, listed by the index under the tag `sha256-<hex>`) and a cosign
/// signature under `sha256-<hex>.sig`.
struct Signed {
    /// The image's digest (an OCI index of two platforms).
    image: String,
    /// The image's descriptor, the referrers' `subject`.
    subject: Value,
    /// The artifact manifest, pretty-printed: a re-serialized copy differs.
    artifact: Vec<u8>,
    artifact_digest: String,
    /// The entry of the referrers index for the artifact.
    entry: Value,
    /// The digest of the manifest under the `.sig` tag.
    sig: String,
}

/// An artifact manifest for `subject` of `artifact_type` with one layer,
/// `payload`, pushed by digest. Returns (bytes, digest, referrers index entry).
async fn push_referrer(
    p: &Pusher,
    repo: &str,
    subject: &Value,
    artifact_type: &str,
    layer_type: &str,
    payload: &[u8],
) -> (Vec<u8>, String, Value) {
    let empty = p.blob(repo, b"{}").await;
    assert_eq!(empty["digest"], EMPTY_DIGEST);
    let layer = p.blob(repo, payload).await;
    let created = "2026-01-01T00:00:00Z";
    let manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_TYPE, "digest": EMPTY_DIGEST, "size": 2, "data": "e30="},
        "layers": [{"mediaType": layer_type, "digest": layer["digest"], "size": layer["size"]}],
        "subject": subject,
        "annotations": {"org.opencontainers.image.created": created},
    }))
    .unwrap();
    let digest = sha256(&manifest);
    p.manifest(repo, &digest, OCI_MANIFEST, &manifest).await;
    let entry = json!({
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": manifest.len(),
        "artifactType": artifact_type,
        "annotations": {"org.opencontainers.image.created": created},
    });
    (manifest, digest, entry)
}

/// Writes the referrers index of `subject_digest` (tag `sha256-<hex>`) listing `entries`.
async fn put_referrers_index(p: &Pusher, repo: &str, subject_digest: &str, entries: &[Value]) {
    let index = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries,
    }))
    .unwrap();
    p.manifest(repo, &referrers_tag(subject_digest), OCI_INDEX, &index)
        .await;
}

/// Pushes a two-platform image as `repo:tag`, signs it the OCI 1.1 way (an
/// artifact with `subject`, the referrers tag) and the cosign way (the `.sig` tag).
async fn push_signed(reg: &Reg, repo: &str, tag: &str) -> Signed {
    let (index, _) = push_multi_platform(reg, repo, tag, Flavour::Oci).await;
    let image = sha256(&index);
    let subject = json!({"mediaType": OCI_INDEX, "digest": image, "size": index.len()});
    let p = Pusher::new(reg);
    let (artifact, artifact_digest, entry) = push_referrer(
        &p,
        repo,
        &subject,
        SIG_TYPE,
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        format!("{{\"signature of\":\"{image}\"}}").as_bytes(),
    )
    .await;
    put_referrers_index(&p, repo, &image, std::slice::from_ref(&entry)).await;

    // cosign's own tag: a manifest of a simple-signing payload.
    let payload = serde_json::to_vec(&json!({
        "critical": {"identity": {"docker-reference": repo}, "image": {"docker-manifest-digest": image},
                     "type": "cosign container image signature"},
        "optional": null,
    }))
    .unwrap();
    let layer = p.blob(repo, &payload).await;
    let config = serde_json::to_vec(&json!({
        "architecture": "", "os": "", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
    }))
    .unwrap();
    let config_desc = p.blob(repo, &config).await;
    let sig = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_desc["digest"], "size": config_desc["size"]},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "digest": layer["digest"], "size": layer["size"],
                    "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQDtest"}}],
    }))
    .unwrap();
    p.manifest(
        repo,
        &format!("{}.sig", referrers_tag(&image)),
        OCI_MANIFEST,
        &sig,
    )
    .await;
    Signed {
        image,
        subject,
        artifact,
        artifact_digest,
        entry,
        sig: sha256(&sig),
    }
}

/// `repo` of `reg` holds what refers to `signed.image`: the artifact by digest,
/// byte for byte; the referrers tag, an index listing it with its artifactType;
/// the `.sig` tag with the source's digest.
async fn assert_referrers_copied(reg: &Reg, repo: &str, signed: &Signed) {
    assert_eq!(
        get_manifest(reg, repo, &signed.artifact_digest)
            .await
            .as_deref(),
        Some(&signed.artifact[..]),
        "the artifact manifest in {repo}, by digest, byte for byte"
    );
    let tag = referrers_tag(&signed.image);
    let index = get_manifest(reg, repo, &tag)
        .await
        .unwrap_or_else(|| panic!("no referrers tag {tag} in {repo}"));
    let index: Value = serde_json::from_slice(&index).unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX, "{index}");
    assert_eq!(index["schemaVersion"], 2, "{index}");
    let listed = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["digest"] == signed.artifact_digest)
        .unwrap_or_else(|| panic!("{tag} of {repo} does not list the artifact: {index}"));
    assert_eq!(listed["artifactType"], SIG_TYPE, "{index}");
    assert_eq!(listed["mediaType"], OCI_MANIFEST, "{index}");
    assert_eq!(listed["size"], signed.artifact.len(), "{index}");
    let sig = get_manifest(reg, repo, &format!("{tag}.sig"))
        .await
        .unwrap_or_else(|| panic!("no {tag}.sig in {repo}"));
    assert_eq!(sha256(&sig), signed.sig, "the .sig tag's digest");
}

// --- The registries' access logs ------------------------------------------------------

/// The access log of one of the bed's registries from now on: Debian's
/// `docker-registry` writes one combined-log line per request,
/// `... "GET /v2/repo/manifests/v1 HTTP/1.1" 200 ...`.
struct AccessLog {
    path: PathBuf,
    offset: u64,
}

impl AccessLog {
    /// `registry.log` (BED_REGISTRY) or `registry2.log` (BED_REGISTRY2).
    fn from_now(file: &str) -> Self {
        let path = Path::new(Bed::get().var("BED_STATE"))
            .join("logs")
            .join(file);
        let offset = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        Self { path, offset }
    }

    /// (method, path) of each request for `/v2/<repo>/` logged since `from_now`.
    fn requests(&self, repo: &str) -> Vec<(String, String)> {
        // The line is written once the response is sent: give it a moment.
        std::thread::sleep(Duration::from_millis(500));
        let mut file = std::fs::File::open(&self.path).unwrap();
        file.seek(std::io::SeekFrom::Start(self.offset)).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        let prefix = format!("/v2/{repo}/");
        text.lines()
            .filter(|l| !l.starts_with("time="))
            .filter_map(|l| {
                let request = l.split('"').nth(1)?;
                let mut words = request.split_whitespace();
                Some((words.next()?.to_string(), words.next()?.to_string()))
            })
            .filter(|(_, path)| path.starts_with(&prefix))
            .collect()
    }
}

fn manifest_requests<'a>(
    requests: &'a [(String, String)],
    method: &str,
) -> Vec<&'a (String, String)> {
    requests
        .iter()
        .filter(|(m, p)| m == method && p.contains("/manifests/"))
        .collect()
}

// --- 1. Referrers ---------------------------------------------------------------------

#[tokio::test]
async fn referrers_and_cosign_tags_come_along() {
    let (r1, r2) = (reg1(), reg2());
    let names = TestNames::new("mirror-ref");
    let (a, b, c, d) = (
        format!("{}/a", names.id),
        format!("{}/b", names.id),
        format!("{}/c", names.id),
        format!("{}/d", names.id),
    );
    let signed = push_signed(&r2, &a, "v1").await;
    let src = format!("{}/{a}:v1", r2.host);
    let auth = authfile(&[&r2]);

    // Within the second registry: the blobs are mounted from A.
    let run = mirror_cmd(
        &[&src, &format!("{}/{b}:v1", r2.host)],
        &[auth.path()],
        true,
        &[],
    );
    assert!(run.ok(), "{}", run.describe());
    let s = run.summary();
    assert_eq!(s["digest"], signed.image);
    assert_eq!(num(&s, "referrers"), 2, "the artifact and the .sig: {s:?}");
    assert!(num(&s, "blobs_mounted") >= 5, "{s:?}");
    assert_eq!(num(&s, "bytes_uploaded"), 0, "{s:?}");
    assert_referrers_copied(&r2, &b, &signed).await;
    assert_eq!(
        tags(&r2, &b).await,
        tags(&r2, &a).await,
        "v1, the referrers tag, the .sig tag"
    );

    // Once more: nothing to do, and nothing pushed (the registry's log says so,
    // not only the summary).
    let log = AccessLog::from_now("registry2.log");
    let again = mirror_cmd(
        &[&src, &format!("{}/{b}:v1", r2.host)],
        &[auth.path()],
        true,
        &[],
    );
    assert!(again.ok(), "{}", again.describe());
    let s2 = again.summary();
    assert_eq!(s2["up_to_date"], "true", "{s2:?}");
    assert_eq!(num(&s2, "manifests_pushed"), 0, "{s2:?}");
    assert_eq!(num(&s2, "bytes_uploaded"), 0, "{s2:?}");
    assert_eq!(num(&s2, "referrers"), 2, "{s2:?}");
    let writes: Vec<_> = log
        .requests(&b)
        .into_iter()
        .filter(|(m, _)| m == "PUT" || m == "POST" || m == "PATCH")
        .collect();
    assert!(writes.is_empty(), "the re-run wrote to B: {writes:?}");

    // --no-referrers: the image alone.
    let run = mirror_cmd(
        &[&src, &format!("{}/{c}:v1", r2.host), "--no-referrers"],
        &[auth.path()],
        true,
        &[],
    );
    assert!(run.ok(), "{}", run.describe());
    assert_eq!(num(&run.summary(), "referrers"), 0);
    assert_eq!(tags(&r2, &c).await, ["v1"], "no sha256-… tag in C");
    assert_eq!(get_manifest(&r2, &c, &signed.artifact_digest).await, None);
    assert_eq!(
        get_manifest(&r2, &c, "v1").await.map(|m| sha256(&m)),
        Some(signed.image.clone())
    );

    // Across registries (BED_REGISTRY2 -> BED_REGISTRY), an authfile per side:
    // every blob travels.
    let (src_auth, dst_auth) = (authfile(&[&r2]), authfile(&[&r1]));
    let cross = |args: &[&str]| {
        let mut all = vec![
            "--src-authfile",
            src_auth.path().to_str().unwrap(),
            "--dest-authfile",
            dst_auth.path().to_str().unwrap(),
        ];
        all.extend(args);
        mirror_cmd(&all, &[], true, &[])
    };
    let dst = format!("{}/{d}:v1", r1.host);
    let run = cross(&[&src, &dst]);
    assert!(run.ok(), "{}", run.describe());
    let s = run.summary();
    assert_eq!(s["digest"], signed.image);
    assert_eq!(num(&s, "referrers"), 2, "{s:?}");
    assert_eq!(num(&s, "blobs_mounted"), 0, "{s:?}");
    assert!(num(&s, "blobs_copied") >= 5, "{s:?}");
    assert_referrers_copied(&r1, &d, &signed).await;
    let again = cross(&[&src, &dst]);
    assert!(again.ok(), "{}", again.describe());
    let s2 = again.summary();
    assert_eq!(
        (
            s2["up_to_date"].as_str(),
            num(&s2, "manifests_pushed"),
            num(&s2, "referrers")
        ),
        ("true", 0, 2),
        "{s2:?}"
    );
}

/// A referrer added to the source later (an SBOM, as `oras attach` adds it: the
/// artifact by digest, the referrers index rewritten) is copied by the next run,
/// which is not up to date and counts what it pushed; the destination's index
/// then lists both.
#[tokio::test]
async fn a_new_referrer_is_copied_by_the_next_run() {
    let r2 = reg2();
    let names = TestNames::new("mirror-ref");
    let (a, b) = (format!("{}/a", names.id), format!("{}/b", names.id));
    let signed = push_signed(&r2, &a, "v1").await;
    let auth = authfile(&[&r2]);
    let (src, dst) = (format!("{}/{a}:v1", r2.host), format!("{}/{b}:v1", r2.host));
    let run = mirror_cmd(&[&src, &dst], &[auth.path()], true, &[]);
    assert!(run.ok(), "{}", run.describe());

    let p = Pusher::new(&r2);
    let (sbom, sbom_digest, sbom_entry) = push_referrer(
        &p,
        &a,
        &signed.subject,
        SBOM_TYPE,
        SBOM_TYPE,
        br#"{"spdxVersion":"SPDX-2.3","name":"test"}"#,
    )
    .await;
    put_referrers_index(&p, &a, &signed.image, &[signed.entry.clone(), sbom_entry]).await;

    let log = AccessLog::from_now("registry2.log");
    let run = mirror_cmd(&[&src, &dst], &[auth.path()], true, &[]);
    assert!(run.ok(), "{}", run.describe());
    let s = run.summary();
    assert_eq!(num(&s, "referrers"), 3, "{s:?}");
    assert_eq!(
        get_manifest(&r2, &b, &sbom_digest).await.as_deref(),
        Some(&sbom[..]),
        "the SBOM, byte for byte"
    );
    assert_referrers_copied(&r2, &b, &signed).await;
    let index: Value = serde_json::from_slice(
        &get_manifest(&r2, &b, &referrers_tag(&signed.image))
            .await
            .unwrap(),
    )
    .unwrap();
    let listed: Vec<(&str, &str)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["digest"].as_str().unwrap(),
                e["artifactType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (signed.artifact_digest.as_str(), SIG_TYPE),
            (sbom_digest.as_str(), SBOM_TYPE)
        ],
        "{index}"
    );
    // What the registry was sent is what the summary says.
    let puts = manifest_requests(&log.requests(&b), "PUT").len();
    assert_eq!(puts, 2, "the SBOM and the referrers index");
    assert_eq!(num(&s, "manifests_pushed"), puts as u64, "{s:?}");
    assert_eq!(s["up_to_date"], "false", "something was pushed: {s:?}");
}

// --- 2. --all-tags ------------------------------------------------------------------

#[tokio::test]
async fn all_tags_with_a_tag_regex_copies_the_matching_tags() {
    let r2 = reg2();
    let names = TestNames::new("mirror-tags");
    let (s, d, all) = (
        format!("{}/src", names.id),
        format!("{}/dst", names.id),
        format!("{}/all", names.id),
    );
    let signed = push_signed(&r2, &s, "v1").await;
    let (v2, _) = push_multi_platform(&r2, &s, "v2", Flavour::Docker).await;
    push_multi_platform(&r2, &s, "rc1", Flavour::Oci).await;
    let referrers = referrers_tag(&signed.image);
    let sig = format!("{referrers}.sig");
    assert_eq!(
        tags(&r2, &s).await,
        ["rc1", referrers.as_str(), sig.as_str(), "v1", "v2"]
    );
    let auth = authfile(&[&r2]);
    let repo = |name: &str| format!("{}/{name}", r2.host);

    let run = mirror_cmd(
        &["--all-tags", "--tag-regex", "^v", &repo(&s), &repo(&d)],
        &[auth.path()],
        true,
        &[],
    );
    assert!(run.ok(), "{}", run.describe());
    let lines = summary_lines(&run.stdout);
    assert_eq!(lines.len(), 2, "{}", run.describe());
    assert!(
        lines[0].starts_with(&format!("mirrored {}:v1 -> {}:v1 ", repo(&s), repo(&d))),
        "{}",
        lines[0]
    );
    assert_eq!(field(lines[0], "digest"), signed.image);
    assert_eq!(field(lines[0], "referrers"), "2");
    assert!(
        lines[1].starts_with(&format!("mirrored {}:v2 -> {}:v2 ", repo(&s), repo(&d))),
        "{}",
        lines[1]
    );
    assert_eq!(field(lines[1], "digest"), sha256(&v2));
    assert_eq!(
        tags(&r2, &d).await,
        [referrers.as_str(), sig.as_str(), "v1", "v2"],
        "rc1 is not copied; the referrer tags come with v1"
    );
    assert_referrers_copied(&r2, &d, &signed).await;

    // Without --tag-regex: every tag, one line each, but the referrer tags are
    // no copies of their own.
    let run = mirror_cmd(
        &["--all-tags", &repo(&s), &repo(&all)],
        &[auth.path()],
        true,
        &[],
    );
    assert!(run.ok(), "{}", run.describe());
    let lines = summary_lines(&run.stdout);
    let copied: Vec<&str> = lines
        .iter()
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(copied, ["rc1", "v1", "v2"], "{}", run.describe());
    assert_eq!(tags(&r2, &all).await, tags(&r2, &s).await);

    // A tag or digest in SOURCE or DESTINATION is a usage error; so is
    // --tag-regex alone, and a regex that does not compile.
    let usage: [Vec<String>; 5] = [
        vec!["--all-tags".into(), format!("{}:v1", repo(&s)), repo(&d)],
        vec!["--all-tags".into(), repo(&s), format!("{}:v1", repo(&d))],
        vec![
            "--all-tags".into(),
            format!("{}@{}", repo(&s), signed.image),
            repo(&d),
        ],
        vec!["--tag-regex".into(), "^v".into(), repo(&s), repo(&d)],
        vec![
            "--all-tags".into(),
            "--tag-regex".into(),
            "(".into(),
            repo(&s),
            repo(&d),
        ],
    ];
    for args in &usage {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = mirror_cmd(&args, &[auth.path()], true, &[]);
        assert_eq!(run.code(), Some(2), "{args:?}: {}", run.describe());
        assert!(
            run.stderr.contains("--all-tags") || run.stderr.contains("regular expression"),
            "{args:?}: {}",
            run.describe()
        );
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.describe());
    }
    // A regex no tag matches: nothing to copy is an error, not a silent success.
    let run = mirror_cmd(
        &["--all-tags", "--tag-regex", "^zzz$", &repo(&s), &repo(&d)],
        &[auth.path()],
        true,
        &[],
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(run.stderr.contains("^zzz$"), "{}", run.describe());
}

// --- 3. --platform --------------------------------------------------------------------

#[tokio::test]
async fn platform_copies_a_new_index_with_only_that_platform() {
    let (r1, r2) = (reg1(), reg2());
    let names = TestNames::new("mirror-platform");
    let auth = authfile(&[&r1, &r2]);
    for (flavour, media_type, name) in [
        (Flavour::Oci, OCI_INDEX, "oci"),
        (Flavour::Docker, DOCKER_LIST, "docker"),
    ] {
        let repo = format!("{}/{name}", names.id);
        let (index, children) = push_multi_platform(&r1, &repo, "v1", flavour).await;
        let (src, dst) = (
            format!("{}/{repo}:v1", r1.host),
            format!("{}/{repo}:v1", r2.host),
        );
        let run = mirror_cmd(
            &[&src, &dst, "--platform", "linux/arm64"],
            &[auth.path()],
            true,
            &[],
        );
        assert!(run.ok(), "{name}: {}", run.describe());
        let s = run.summary();
        let copied = get_manifest(&r2, &repo, "v1").await.expect("the copy");
        assert_eq!(
            s["digest"],
            sha256(&copied),
            "{name}: the summary names the new digest"
        );
        assert_ne!(s["digest"], sha256(&index), "{name}: a new index");
        assert_eq!(num(&s, "platforms"), 1, "{name}: {s:?}");
        let copied: Value = serde_json::from_slice(&copied).unwrap();
        assert_eq!(copied["mediaType"], media_type, "{name}: {copied}");
        let entries = copied["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{name}: {copied}");
        assert_eq!(entries[0]["digest"], children[1], "{name}: {copied}");
        assert_eq!(entries[0]["platform"]["architecture"], "arm64");
        assert!(
            get_manifest(&r2, &repo, &children[1]).await.is_some(),
            "{name}: the arm64 manifest"
        );
        assert_eq!(
            get_manifest(&r2, &repo, &children[0]).await,
            None,
            "{name}: the amd64 manifest is not copied"
        );
        // A re-run finds the new index there.
        let again = mirror_cmd(
            &[&src, &dst, "--platform", "linux/arm64"],
            &[auth.path()],
            true,
            &[],
        );
        assert!(again.ok(), "{name}: {}", again.describe());
        let s2 = again.summary();
        assert_eq!(s2["digest"], s["digest"], "{name}: the same new index");
        assert_eq!(s2["up_to_date"], "true", "{name}: {s2:?}");
        assert_eq!(num(&s2, "manifests_pushed"), 0, "{name}: {s2:?}");

        let bad = mirror_cmd(
            &[
                &src,
                &format!("{}/{repo}-win:v1", r2.host),
                "--platform",
                "windows/amd64",
            ],
            &[auth.path()],
            true,
            &[],
        );
        assert_eq!(bad.code(), Some(1), "{name}: {}", bad.describe());
        for p in ["windows/amd64", "linux/amd64", "linux/arm64"] {
            assert!(
                bad.stderr.contains(p),
                "{name}: names {p}: {}",
                bad.describe()
            );
        }
        assert!(tags(&r2, &format!("{repo}-win")).await.is_empty());
    }
}

// --- 4. JSON on stdout and stderr ------------------------------------------------------

#[tokio::test]
async fn json_output_and_the_json_error_line() {
    let bed = Bed::get();
    let (r1, r2) = (reg1(), reg2());
    let names = TestNames::new("mirror-json");
    let auth = authfile(&[&r1, &r2]);
    let src = bed.var("BED_IMAGE");
    let dst_repo = format!("{}/{}/hello", r2.host, names.id);
    let dst = format!("{dst_repo}:v1");
    let want = crate::cli_mirror::skopeo_digest(src, &r1);

    let objects = |stdout: &str| -> Vec<Value> {
        stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect()
    };
    let run = mirror_cmd(
        &[src, &dst, "--output", "json", "--tag", "v2"],
        &[auth.path()],
        true,
        &[],
    );
    assert!(run.ok(), "{}", run.describe());
    let out = objects(&run.stdout);
    assert_eq!(out.len(), 1, "{}", run.describe());
    let o = out[0].as_object().expect("an object");
    for key in [
        "source",
        "destination",
        "digest",
        "mediaType",
        "platforms",
        "manifestsPushed",
        "manifestsSkipped",
        "blobsCopied",
        "bytesUploaded",
        "blobsSkipped",
        "blobsMounted",
        "upToDate",
        "retries",
        "bytesResent",
        "referrers",
    ] {
        assert!(o.contains_key(key), "no {key}: {o:?}");
    }
    assert!(o.keys().all(|k| !k.contains('_')), "camelCase keys: {o:?}");
    assert_eq!(o["digest"], want.as_str());
    assert_eq!(o["source"], src);
    assert_eq!(o["destination"], dst.as_str());
    assert_eq!(o["upToDate"], false);
    assert_eq!(o["retries"], 0);
    assert_eq!(o["manifestsPushed"], 2, "v1 and v2: {o:?}");
    assert!(o["blobsCopied"].as_u64().unwrap() >= 2, "{o:?}");
    assert!(o["bytesUploaded"].as_u64().unwrap() > 1_000_000, "{o:?}");

    let again = mirror_cmd(&[src, &dst, "-o", "json"], &[auth.path()], true, &[]);
    assert!(again.ok(), "{}", again.describe());
    let out = objects(&again.stdout);
    assert_eq!(out.len(), 1, "{}", again.describe());
    assert_eq!(out[0]["upToDate"], true);
    assert_eq!(out[0]["digest"], want.as_str());

    // One object per copy with --all-tags.
    let copy_repo = format!("{}/{}/copy", r2.host, names.id);
    let run = mirror_cmd(
        &["--all-tags", "-o", "json", &dst_repo, &copy_repo],
        &[auth.path()],
        true,
        &[],
    );
    assert!(run.ok(), "{}", run.describe());
    let out = objects(&run.stdout);
    let destinations: Vec<&str> = out
        .iter()
        .map(|o| o["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        destinations,
        [format!("{copy_repo}:v1"), format!("{copy_repo}:v2")],
        "{}",
        run.describe()
    );
    assert!(out.iter().all(|o| o["digest"] == want.as_str()));

    // A failure under LOG_FORMAT=json: nothing on stdout, every stderr line a JSON
    // object, the last the only ERROR.
    let missing = format!("{}/{}/no-such-repo:v1", r1.host, names.id);
    let run = mirror_cmd(
        &[&missing, &format!("{dst_repo}:v9"), "-o", "json"],
        &[auth.path()],
        true,
        &[("LOG_FORMAT", "json")],
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert_eq!(run.stdout, "", "{}", run.describe());
    let lines = objects(&run.stderr);
    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{}", run.describe());
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{}", run.describe());
    assert_eq!(last["exitCode"], 1);
    assert_eq!(last["retryable"], false);
    let error = last["error"].as_str().unwrap();
    assert!(error.starts_with("not found: "), "{error}");
    assert!(error.contains(&missing), "{error}");
}

// --- 5. --ca-file and per-side TLS ------------------------------------------------------

/// A private `docker-registry serve` with TLS (a certificate for 127.0.0.1 from
/// a CA of its own), no auth; killed when dropped.
struct TlsRegistry {
    dir: tempfile::TempDir,
    child: std::process::Child,
    host: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TlsRegistry {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=ecr-operator test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(d, &ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        openssl(d, &csr);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n\
             basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {data}\n\
             http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {cert}\n    key: {key}\n",
            data = d.join("data").display(),
            cert = d.join("server.pem").display(),
            key = d.join("server.key").display(),
        );
        std::fs::write(d.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(d.join("registry.log")).unwrap();
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run docker-registry");
        let registry = Self {
            dir,
            child,
            host: format!("127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&registry.host).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the TLS registry did not listen on {}: {}",
                registry.host,
                registry.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        registry
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("registry.log")).unwrap_or_default()
    }

    /// The digest under `repo:tag`, read by skopeo (certificate not checked).
    fn digest(&self, repo: &str) -> String {
        let out = skopeo(&[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/{repo}", self.host),
        ]);
        let v: Value = serde_json::from_slice(&out).unwrap();
        v["Digest"].as_str().unwrap().to_string()
    }
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn ca_file_and_tls_settings_per_side() {
    let bed = Bed::get();
    let r1 = reg1();
    let tls = TlsRegistry::start();
    let auth = authfile(&[&r1]);
    let src = bed.var("BED_IMAGE");
    let want = crate::cli_mirror::skopeo_digest(src, &r1);
    let ca = tls.path("ca.pem");
    let ca = ca.to_str().unwrap();
    let dst = |repo: &str| format!("{}/{repo}:v1", tls.host);
    let run = |args: &[&str]| mirror_cmd(args, &[auth.path()], false, &[]);

    // The source plain HTTP, the destination TLS verified with the CA.
    let ok = run(&[src, &dst("x"), "--src-plain-http", "--ca-file", ca]);
    assert!(ok.ok(), "{}\nregistry log:\n{}", ok.describe(), tls.log());
    assert_eq!(ok.summary()["digest"], want);
    assert_eq!(tls.digest("x:v1"), want);
    let again = run(&[src, &dst("x"), "--src-plain-http", "--ca-file", ca]);
    assert!(again.ok(), "{}", again.describe());
    assert_eq!(again.summary()["up_to_date"], "true");

    // Without the CA: the certificate is not trusted.
    let untrusted = run(&[src, &dst("y"), "--src-plain-http"]);
    assert_eq!(untrusted.code(), Some(1), "{}", untrusted.describe());
    assert!(
        untrusted
            .stderr
            .contains(&format!("error: TLS failure with {}", tls.host)),
        "{}",
        untrusted.describe()
    );
    // The source's settings are not the destination's.
    let src_only = run(&[src, &dst("y"), "--src-plain-http", "--src-insecure"]);
    assert_eq!(src_only.code(), Some(1), "{}", src_only.describe());
    assert!(
        src_only.stderr.contains("TLS failure"),
        "{}",
        src_only.describe()
    );
    // Plain HTTP on both sides cannot talk to the TLS registry.
    let plain = run(&[src, &dst("y"), "--plain-http", "--ca-file", ca]);
    assert_ne!(plain.code(), Some(0), "{}", plain.describe());

    // --dest-insecure instead of the CA.
    let insecure = run(&[src, &dst("z"), "--src-plain-http", "--dest-insecure"]);
    assert!(insecure.ok(), "{}", insecure.describe());
    assert_eq!(tls.digest("z:v1"), want);

    // A --ca-file without a certificate in it (the server's key) is named.
    let key = tls.path("server.key");
    let key = key.to_str().unwrap();
    let bad = run(&[src, &dst("w"), "--src-plain-http", "--ca-file", key]);
    assert_eq!(bad.code(), Some(1), "{}", bad.describe());
    assert!(
        bad.stderr.contains(&format!("--ca-file {key}"))
            && bad.stderr.contains("no PEM certificate"),
        "{}",
        bad.describe()
    );
    assert!(!bad.stderr.contains("PRIVATE KEY"), "{}", bad.describe());
    let missing = run(&[
        src,
        &dst("w"),
        "--src-plain-http",
        "--ca-file",
        "/nonexistent/ca.pem",
    ]);
    assert_eq!(missing.code(), Some(1), "{}", missing.describe());
    assert!(
        missing.stderr.contains("--ca-file /nonexistent/ca.pem"),
        "{}",
        missing.describe()
    );
}

// --- 6. A re-run with nothing to do: HEAD requests only ---------------------------------

/// Copies a two-platform image from BED_REGISTRY2 into BED_REGISTRY, then runs
/// the same copy again (`extra` flags added) and returns the requests the source
/// registry logged for the image's repository during the second run, and the
/// image's manifest digests (index, children).
async fn rerun_requests(extra: &[&str]) -> (Vec<(String, String)>, Vec<String>) {
    let (r1, r2) = (reg1(), reg2());
    let names = TestNames::new("mirror-head");
    let repo = format!("{}/multi", names.id);
    let (index, children) = push_multi_platform(&r2, &repo, "v1", Flavour::Oci).await;
    let auth = authfile(&[&r1, &r2]);
    let (src, dst) = (
        format!("{}/{repo}:v1", r2.host),
        format!("{}/{repo}:v1", r1.host),
    );
    let log = AccessLog::from_now("registry2.log");
    let first = mirror_cmd(&[&src, &dst], &[auth.path()], true, &[]);
    assert!(first.ok(), "{}", first.describe());
    // The observer sees what it should: the first run reads the index and both
    // children with GET.
    let seen = log.requests(&repo);
    assert!(
        manifest_requests(&seen, "GET").len() >= 3,
        "the access log shows no manifest GETs of the first run: {seen:?}"
    );

    let log = AccessLog::from_now("registry2.log");
    let mut args = vec![src.as_str(), dst.as_str()];
    args.extend(extra);
    let again = mirror_cmd(&args, &[auth.path()], true, &[]);
    assert!(again.ok(), "{}", again.describe());
    let s = again.summary();
    assert_eq!(s["up_to_date"], "true", "{s:?}");
    assert_eq!(num(&s, "manifests_pushed"), 0, "{s:?}");
    let requests = log.requests(&repo);
    assert!(
        manifest_requests(&requests, "HEAD")
            .iter()
            .any(|(_, p)| p.ends_with("/manifests/v1")),
        "the re-run looked the tag up with HEAD: {requests:?}"
    );
    let mut digests = vec![sha256(&index)];
    digests.extend(children);
    (requests, digests)
}

/// The image itself: the tag and every manifest of it are looked up with HEAD,
/// none is read (Docker Hub counts manifest GETs against its pull limit).
#[tokio::test]
async fn a_rerun_with_nothing_to_do_reads_no_manifest_of_the_image() {
    let (requests, digests) = rerun_requests(&[]).await;
    let reads: Vec<_> = manifest_requests(&requests, "GET")
        .into_iter()
        .filter(|(_, p)| {
            p.ends_with("/manifests/v1") || digests.iter().any(|d| p.ends_with(d.as_str()))
        })
        .collect();
    assert!(
        reads.is_empty(),
        "manifests of the image read again: {reads:?}"
    );
}

/// A re-run with nothing to do reads no manifest from the source: with
/// --no-referrers not one GET; with referrers (the default) on a registry without
/// the referrers API (distribution 2.8), exactly one: oci-client's fallback to the
/// `sha256-<hex>` referrers tag (a 404 here). Cosign's tags are found in the tag
/// list, not by manifest requests.
#[tokio::test]
async fn a_rerun_with_nothing_to_do_sends_the_source_no_manifest_get() {
    let (requests, _) = rerun_requests(&["--no-referrers"]).await;
    let gets = manifest_requests(&requests, "GET");
    assert!(gets.is_empty(), "--no-referrers: manifest GETs: {gets:?}");
    let (requests, _) = rerun_requests(&[]).await;
    let gets = manifest_requests(&requests, "GET");
    assert_eq!(
        gets.len(),
        1,
        "a re-run with nothing to do: manifest GETs {gets:?}"
    );
    let (_, path) = gets[0];
    assert!(
        path.contains("/manifests/sha256-") && !path.contains('.'),
        "only the referrers tag: {gets:?}"
    );
}
