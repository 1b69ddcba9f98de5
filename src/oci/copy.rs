//! The copy itself, on `oci_client`: read the source's manifests, put every blob
//! into the destination (HEAD first, a cross-repository mount within one registry,
//! else a stream from one registry into the other), then push the manifests,
//! children first, each with its bytes unchanged so every digest stays the same.

use super::credentials::AuthFiles;
use super::error::{Context, MirrorError};
use super::manifest::{self, Descriptor, Parsed};
use super::progress::{BlobOutcome, ManifestOutcome, Progress, Summary};
use super::reference::ImageRef;
use futures::{StreamExt, TryStreamExt, stream};
use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

/// How to talk to the registries.
#[derive(Clone, Debug)]
pub struct Options {
    /// `http://` instead of `https://`, for both registries.
    pub plain_http: bool,
    /// Accept any TLS certificate.
    pub insecure: bool,
    /// Blobs (and manifests) transferred at the same time.
    pub jobs: usize,
    /// More tags for the destination, besides the one of its reference.
    pub tags: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            plain_http: false,
            insecure: false,
            jobs: 4,
            tags: Vec::new(),
        }
    }
}

/// Installs aws-lc-rs as the process's rustls provider (the one TLS stack of the
/// binary) unless one is installed already.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another part of the process installed one first: fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// One end of the copy.
struct Side {
    image: ImageRef,
    /// The repository, for blob requests and the token cache.
    base: Reference,
    auth: RegistryAuth,
    /// How errors name the credentials: a file, or anonymous access.
    credentials: String,
}

impl Side {
    fn new(image: &ImageRef, files: &AuthFiles) -> Result<Self, MirrorError> {
        let (auth, credentials) = match files.lookup(&image.registry, &image.repository)? {
            Some(c) => (
                RegistryAuth::Basic(c.username.clone(), c.password.expose().to_string()),
                format!(
                    "the credentials of user {:?} from {}",
                    c.username,
                    c.file.display()
                ),
            ),
            None => (
                RegistryAuth::Anonymous,
                format!(
                    "anonymous access (no authfile entry for {}; authfiles: {})",
                    image.registry,
                    match files
                        .paths()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                    {
                        v if v.is_empty() => "none".to_string(),
                        v => v.join(", "),
                    }
                ),
            ),
        };
        Ok(Self {
            base: image.by_tag("latest"),
            image: image.clone(),
            auth,
            credentials,
        })
    }

    fn ctx(&self, action: &'static str, reference: impl Into<String>) -> Context {
        Context {
            registry: self.image.api_host().to_string(),
            reference: reference.into(),
            action,
            credentials: self.credentials.clone(),
        }
    }

    fn blob_name(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.image.registry, self.image.repository)
    }
}

/// A manifest read from the source.
struct Node {
    digest: String,
    media_type: String,
    bytes: Vec<u8>,
    parsed: Parsed,
}

/// Copies `source` to `destination`. Credentials come from `auth`; `progress`
/// hears about every blob and manifest.
pub async fn mirror(
    source: &ImageRef,
    destination: &ImageRef,
    auth: &AuthFiles,
    options: &Options,
    progress: Arc<dyn Progress>,
) -> Result<Summary, MirrorError> {
    install_crypto_provider();
    let jobs = options.jobs.max(1);
    let client = oci_client::Client::try_from(ClientConfig {
        protocol: if options.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: options.insecure,
        // One POST and one streamed PUT per blob (as oras does), instead of a PATCH
        // per chunk of the source's response.
        use_monolithic_push: true,
        platform_resolver: None,
        max_concurrent_upload: jobs,
        max_concurrent_download: jobs,
        connect_timeout: Some(Duration::from_secs(30)),
        user_agent: concat!("ecr-operator/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    })
    .map_err(|e| MirrorError::Client(e.to_string()))?;

    let src = Side::new(source, auth)?;
    let dst = Side::new(destination, auth)?;
    let same_registry = src.base.resolve_registry() == dst.base.resolve_registry();
    // oci_client keeps one set of credentials per registry: within one registry,
    // the destination's (they must be able to push, and to read for a mount).
    client
        .store_auth_if_needed(dst.base.resolve_registry(), &dst.auth)
        .await;
    client
        .store_auth_if_needed(src.base.resolve_registry(), &src.auth)
        .await;

    // 1. The source's manifests: the root, and for an index every child, level by level.
    let (bytes, digest) = client
        .pull_manifest_raw(&source.oci(), &src.auth, manifest::ACCEPTED)
        .await
        .map_err(|e| src.ctx("pulling manifest", source.to_string()).classify(e))?;
    if let Some(wanted) = &destination.digest
        && *wanted != digest
    {
        return Err(MirrorError::DigestMismatch {
            reference: destination.to_string(),
            expected: wanted.clone(),
            actual: digest,
        });
    }
    let root = node(source, bytes.to_vec(), digest, None)?;
    let root_digest = root.digest.clone();
    let mut levels: Vec<Vec<Node>> = vec![vec![root]];
    let mut seen = BTreeSet::from([root_digest.clone()]);
    loop {
        let wanted: Vec<Descriptor> = levels
            .last()
            .into_iter()
            .flatten()
            .filter_map(|n| match &n.parsed {
                Parsed::Index { children, .. } => Some(children.iter()),
                Parsed::Image { .. } => None,
            })
            .flatten()
            .filter(|c| seen.insert(c.digest.clone()))
            .cloned()
            .collect();
        if wanted.is_empty() {
            break;
        }
        let level: Vec<Node> = stream::iter(wanted)
            .map(|c| {
                let (client, src) = (&client, &src);
                async move {
                    let (bytes, digest) = client
                        .pull_manifest_raw(
                            &source.by_digest(&c.digest),
                            &src.auth,
                            manifest::ACCEPTED,
                        )
                        .await
                        .map_err(|e| {
                            src.ctx("pulling manifest", src.blob_name(&c.digest))
                                .classify(e)
                        })?;
                    node(source, bytes.to_vec(), digest, Some(&c.media_type))
                }
            })
            .buffered(jobs)
            .try_collect()
            .await?;
        levels.push(level);
    }

    // Distinct blobs, the largest first so that the big transfers overlap.
    let mut blobs: Vec<Descriptor> = Vec::new();
    let mut blob_digests = BTreeSet::new();
    for n in levels.iter().flatten() {
        if let Parsed::Image { blobs: b, .. } = &n.parsed {
            blobs.extend(
                b.iter()
                    .filter(|d| blob_digests.insert(d.digest.clone()))
                    .cloned(),
            );
        }
    }
    blobs.sort_by_key(|b| std::cmp::Reverse(b.size));
    let manifest_count = levels.iter().map(Vec::len).sum();
    progress.planned(
        manifest_count,
        blobs.len(),
        blobs.iter().map(|b| b.size).sum(),
    );
    let root = &levels[0][0];
    let mut summary = Summary {
        source: source.to_string(),
        destination: match &destination.tag {
            Some(_) => destination.to_string(),
            None => format!(
                "{}/{}@{}",
                destination.registry, destination.repository, root.digest
            ),
        },
        digest: root.digest.clone(),
        media_type: root.media_type.clone(),
        platforms: levels
            .iter()
            .flatten()
            .filter(|n| matches!(n.parsed, Parsed::Image { .. }))
            .count(),
        ..Default::default()
    };

    // 2. Already there under every reference? Where it is under one, everything it
    // refers to is there too (registries refuse manifests with missing parts).
    let mut targets = vec![destination.push_target(destination.tag.as_deref(), &root.digest)];
    for tag in &options.tags {
        if targets.iter().all(|t| t.tag() != Some(tag.as_str())) {
            targets.push(destination.by_tag(tag));
        }
    }
    let mut missing = Vec::new();
    for target in targets {
        let name = target.tag().unwrap_or_default().to_string();
        match client.fetch_manifest_digest(&target, &dst.auth).await {
            Ok(d) if d == root.digest => {
                progress.manifest_finished(
                    &root.digest,
                    &root.media_type,
                    &name,
                    ManifestOutcome::Skipped,
                );
                summary.manifests_skipped += 1;
            }
            Ok(_) => missing.push(target),
            Err(e) => match dst
                .ctx("looking up", pretty(destination, &name))
                .classify(e)
            {
                MirrorError::NotFound { .. } => missing.push(target),
                other => return Err(other),
            },
        }
    }
    let content_present = summary.manifests_skipped > 0;
    if content_present {
        summary.up_to_date = missing.is_empty();
        summary.blobs_skipped = blobs.len();
        summary.manifests_skipped += manifest_count - 1;
    } else {
        // 3. Blobs.
        let mount = same_registry && source.repository != destination.repository;
        let outcomes: Vec<(BlobOutcome, u64)> = stream::iter(blobs)
            .map(|d| copy_blob(&client, &src, &dst, d, mount, progress.clone()))
            .buffer_unordered(jobs)
            .try_collect()
            .await?;
        for (outcome, bytes) in outcomes {
            match outcome {
                BlobOutcome::Copied => summary.blobs_copied += 1,
                BlobOutcome::Skipped => summary.blobs_skipped += 1,
                BlobOutcome::Mounted => summary.blobs_mounted += 1,
            }
            summary.bytes_uploaded += bytes;
        }

        // 4. Manifests: the deepest level first, children by digest.
        for level in levels.iter().skip(1).rev() {
            stream::iter(level)
                .map(|n| {
                    push_manifest(
                        &client,
                        &dst,
                        destination.push_target(None, &n.digest),
                        n,
                        &*progress,
                    )
                })
                .buffer_unordered(jobs)
                .try_collect::<Vec<()>>()
                .await?;
            summary.manifests_pushed += level.len();
        }
    }
    // The root last, under every reference that lacks it.
    for target in missing {
        push_manifest(&client, &dst, target, root, &*progress).await?;
        summary.manifests_pushed += 1;
    }
    Ok(summary)
}

/// `registry/repository:tag`, or `@digest` when the "tag" is one.
fn pretty(image: &ImageRef, tag_or_digest: &str) -> String {
    let sep = if tag_or_digest.contains(':') {
        '@'
    } else {
        ':'
    };
    format!(
        "{}/{}{sep}{tag_or_digest}",
        image.registry, image.repository
    )
}

fn node(
    image: &ImageRef,
    bytes: Vec<u8>,
    digest: String,
    declared: Option<&str>,
) -> Result<Node, MirrorError> {
    let parsed = manifest::parse(&bytes, declared).map_err(|reason| MirrorError::Unsupported {
        reference: format!("{}/{}@{digest}", image.registry, image.repository),
        reason,
    })?;
    Ok(Node {
        media_type: parsed.media_type().to_string(),
        digest,
        bytes,
        parsed,
    })
}

async fn copy_blob(
    client: &oci_client::Client,
    src: &Side,
    dst: &Side,
    blob: Descriptor,
    mount: bool,
    progress: Arc<dyn Progress>,
) -> Result<(BlobOutcome, u64), MirrorError> {
    let digest = blob.digest.as_str();
    let finished = |outcome, bytes| {
        progress.blob_finished(digest, blob.size, outcome);
        Ok((outcome, bytes))
    };
    let exists = client.blob_exists(&dst.base, digest).await.map_err(|e| {
        dst.ctx("checking for blob", dst.blob_name(digest))
            .classify(e)
    })?;
    if exists {
        return finished(BlobOutcome::Skipped, 0);
    }
    if mount {
        match client.mount_blob(&dst.base, &src.base, digest).await {
            Ok(()) => return finished(BlobOutcome::Mounted, 0),
            // A registry that cannot mount opens an upload instead (202): upload then.
            Err(e) => {
                tracing::debug!(digest, error = %e, "cross-repository mount refused; uploading")
            }
        }
    }

    progress.blob_transfer_started(digest, blob.size);
    let pulled = client
        .pull_blob_stream(&src.base, digest)
        .await
        .map_err(|e| src.ctx("pulling blob", src.blob_name(digest)).classify(e))?;
    if let Some(len) = pulled.content_length
        && len != blob.size
    {
        return Err(MirrorError::Registry {
            registry: src.image.api_host().to_string(),
            reference: src.blob_name(digest),
            action: "pulling blob",
            detail: format!("it sends {len} bytes for a blob of {} bytes", blob.size),
        });
    }
    // An error of the source's side ends the upload; keep it to name it as such.
    let source_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
    let sent = Arc::new(AtomicU64::new(0));
    let body = {
        let (source_error, sent, progress) = (source_error.clone(), sent.clone(), progress.clone());
        let digest = digest.to_string();
        pulled
            .map_ok(move |chunk| {
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                progress.blob_bytes(&digest, chunk.len() as u64);
                chunk
            })
            .map_err(move |e| {
                let passed_on = std::io::Error::new(e.kind(), e.to_string());
                *source_error.lock().expect("not poisoned") = Some(e);
                OciDistributionError::IoError(passed_on)
            })
    };
    let pushed = client
        .push_blob_stream(&dst.base, body, digest, Some(blob.size))
        .await;
    if let Some(e) = source_error.lock().expect("not poisoned").take() {
        return Err(src
            .ctx("pulling blob", src.blob_name(digest))
            .classify(OciDistributionError::IoError(e)));
    }
    pushed.map_err(|e| dst.ctx("uploading blob", dst.blob_name(digest)).classify(e))?;
    finished(BlobOutcome::Copied, sent.load(Ordering::Relaxed))
}

async fn push_manifest(
    client: &oci_client::Client,
    dst: &Side,
    target: Reference,
    node: &Node,
    progress: &dyn Progress,
) -> Result<(), MirrorError> {
    let name = target.tag().unwrap_or_default().to_string();
    let content_type = node
        .media_type
        .parse()
        .map_err(|_| MirrorError::Unsupported {
            reference: node.digest.clone(),
            reason: format!(
                "media type {:?} is not a valid header value",
                node.media_type
            ),
        })?;
    client
        .push_manifest_raw(&target, node.bytes.clone(), content_type)
        .await
        .map_err(|e| {
            dst.ctx("pushing manifest", pretty(&dst.image, &name))
                .classify(e)
        })?;
    progress.manifest_finished(
        &node.digest,
        &node.media_type,
        &name,
        ManifestOutcome::Pushed,
    );
    Ok(())
}
