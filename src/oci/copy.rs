//! The copy itself, on `oci_client`: read the source's manifests, put every blob
//! into the destination (HEAD first, a cross-repository mount within one registry,
//! else a stream from one registry into the other), then push the manifests,
//! children first, each with its bytes unchanged so every digest stays the same.

use super::credentials::AuthFiles;
use super::error::{Context, MirrorError};
use super::manifest::{self, Descriptor, Parsed};
use super::progress::{BlobOutcome, ManifestOutcome, Progress, Summary};
use super::reference::ImageRef;
use futures::{Stream, StreamExt, TryStreamExt, stream};
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
    /// A connection that sends nothing for this long fails (a stalled transfer).
    pub read_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            plain_http: false,
            insecure: false,
            jobs: 4,
            tags: Vec::new(),
            read_timeout: Duration::from_secs(60),
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

    /// Fails when this (source) registry announces a length other than the blob's
    /// size: the upload would fail anyway, blaming the destination.
    fn expect_length(
        &self,
        digest: &str,
        announced: Option<u64>,
        size: u64,
    ) -> Result<(), MirrorError> {
        match announced {
            Some(len) if len != size => Err(MirrorError::Registry {
                registry: self.image.api_host().to_string(),
                reference: self.blob_name(digest),
                action: "pulling blob",
                detail: format!("it sends {len} bytes for a blob of {size} bytes"),
            }),
            _ => Ok(()),
        }
    }
}

/// A manifest read from the source.
struct Node {
    digest: String,
    media_type: String,
    bytes: Vec<u8>,
    parsed: Parsed,
}

/// One copy under way: the client, both ends, and who hears about it.
struct Copier {
    client: oci_client::Client,
    src: Side,
    dst: Side,
    /// Blobs (and manifests) transferred at the same time, at least 1.
    jobs: usize,
    progress: Arc<dyn Progress>,
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
    let copier = Copier::new(source, destination, auth, options, progress).await?;

    // 1. The source's manifests: the root, and for an index every child, level by level.
    let levels = copier.read_manifests().await?;
    let blobs = distinct_blobs(&levels);
    let manifest_count = levels.iter().map(Vec::len).sum();
    copier.progress.planned(
        manifest_count,
        blobs.len(),
        blobs.iter().map(|b| b.size).sum(),
    );
    let root = &levels[0][0];
    let mut summary = plan_summary(source, destination, &levels);

    // 2. Already there under every reference? Where it is under one, everything it
    // refers to is there too (registries refuse manifests with missing parts).
    let targets = push_targets(destination, &root.digest, &options.tags);
    let missing = copier.missing_targets(targets, root, &mut summary).await?;
    let content_present = summary.manifests_skipped > 0;
    if content_present {
        summary.up_to_date = missing.is_empty();
        summary.blobs_skipped = blobs.len();
        summary.manifests_skipped += manifest_count - 1;
    } else {
        // 3. Blobs. 4. The manifests under the root.
        copier.copy_blobs(blobs, &mut summary).await?;
        copier.push_children(&levels, &mut summary).await?;
    }
    // The root last, under every reference that lacks it.
    copier.push_root(root, missing, &mut summary).await?;
    Ok(summary)
}

impl Copier {
    async fn new(
        source: &ImageRef,
        destination: &ImageRef,
        auth: &AuthFiles,
        options: &Options,
        progress: Arc<dyn Progress>,
    ) -> Result<Self, MirrorError> {
        let jobs = options.jobs.max(1);
        let client = oci_client::Client::try_from(client_config(options, jobs))
            .map_err(|e| MirrorError::Client(e.to_string()))?;
        let src = Side::new(source, auth)?;
        let dst = Side::new(destination, auth)?;
        // oci_client keeps one set of credentials per registry: within one registry,
        // the destination's (they must be able to push, and to read for a mount).
        client
            .store_auth_if_needed(dst.base.resolve_registry(), &dst.auth)
            .await;
        client
            .store_auth_if_needed(src.base.resolve_registry(), &src.auth)
            .await;
        Ok(Self {
            client,
            src,
            dst,
            jobs,
            progress,
        })
    }

    /// Blobs can be mounted only from another repository of the same registry.
    fn can_mount(&self) -> bool {
        self.src.base.resolve_registry() == self.dst.base.resolve_registry()
            && self.src.image.repository != self.dst.image.repository
    }

    /// The root manifest, then the children of its indexes level by level; a
    /// manifest listed twice is read once.
    async fn read_manifests(&self) -> Result<Vec<Vec<Node>>, MirrorError> {
        let mut levels = vec![vec![self.read_root().await?]];
        let mut seen = BTreeSet::from([levels[0][0].digest.clone()]);
        let mut wanted = unseen_children(&levels[0], &mut seen);
        while !wanted.is_empty() {
            let level = self.read_children(wanted).await?;
            wanted = unseen_children(&level, &mut seen);
            levels.push(level);
        }
        Ok(levels)
    }

    /// The manifest the source names, checked against the digest the destination
    /// names (if it names one) before it is parsed.
    async fn read_root(&self) -> Result<Node, MirrorError> {
        let source = &self.src.image;
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(&source.oci(), &self.src.auth, manifest::ACCEPTED)
            .await
            .map_err(|e| {
                self.src
                    .ctx("pulling manifest", source.to_string())
                    .classify(e)
            })?;
        expect_digest(&self.dst.image, &digest)?;
        node(source, bytes.to_vec(), digest, None)
    }

    /// One level of children, `jobs` at a time, kept in the order listed.
    async fn read_children(&self, wanted: Vec<Descriptor>) -> Result<Vec<Node>, MirrorError> {
        stream::iter(wanted)
            .map(|c| self.read_child(c))
            .buffered(self.jobs)
            .try_collect()
            .await
    }

    async fn read_child(&self, child: Descriptor) -> Result<Node, MirrorError> {
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(
                &self.src.image.by_digest(&child.digest),
                &self.src.auth,
                manifest::ACCEPTED,
            )
            .await
            .map_err(|e| {
                self.src
                    .ctx("pulling manifest", self.src.blob_name(&child.digest))
                    .classify(e)
            })?;
        node(
            &self.src.image,
            bytes.to_vec(),
            digest,
            Some(&child.media_type),
        )
    }

    /// The targets that lack the root manifest, looked up one after the other;
    /// those that hold it are reported and counted as skipped.
    async fn missing_targets(
        &self,
        targets: Vec<Reference>,
        root: &Node,
        summary: &mut Summary,
    ) -> Result<Vec<Reference>, MirrorError> {
        let mut missing = Vec::new();
        for target in targets {
            let name = target.tag().unwrap_or_default().to_string();
            if self.holds(&target, &name, &root.digest).await? {
                self.progress.manifest_finished(
                    &root.digest,
                    &root.media_type,
                    &name,
                    ManifestOutcome::Skipped,
                );
                summary.manifests_skipped += 1;
            } else {
                missing.push(target);
            }
        }
        Ok(missing)
    }

    /// Whether the destination has `digest` under `target` (`name` in errors).
    async fn holds(
        &self,
        target: &Reference,
        name: &str,
        digest: &str,
    ) -> Result<bool, MirrorError> {
        match self
            .client
            .fetch_manifest_digest(target, &self.dst.auth)
            .await
        {
            Ok(d) => Ok(d == digest),
            Err(e) => match self
                .dst
                .ctx("looking up", pretty(&self.dst.image, name))
                .classify(e)
            {
                // Nothing under that reference yet: push it there.
                MirrorError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Every blob, `jobs` at a time, counted in `summary`.
    async fn copy_blobs(
        &self,
        blobs: Vec<Descriptor>,
        summary: &mut Summary,
    ) -> Result<(), MirrorError> {
        let mount = self.can_mount();
        let outcomes: Vec<(BlobOutcome, u64)> = stream::iter(blobs)
            .map(|d| self.copy_blob(d, mount))
            .buffer_unordered(self.jobs)
            .try_collect()
            .await?;
        for (outcome, bytes) in outcomes {
            count_blob(summary, outcome, bytes);
        }
        Ok(())
    }

    /// Puts one blob into the destination: nothing when it is there already, a
    /// mount where one is possible, else a stream from the source. Returns the
    /// bytes uploaded.
    async fn copy_blob(
        &self,
        blob: Descriptor,
        mount: bool,
    ) -> Result<(BlobOutcome, u64), MirrorError> {
        let digest = blob.digest.as_str();
        let (outcome, bytes) = if self.has_blob(digest).await? {
            (BlobOutcome::Skipped, 0)
        } else if mount && self.mount_blob(digest).await {
            (BlobOutcome::Mounted, 0)
        } else {
            (BlobOutcome::Copied, self.stream_blob(&blob).await?)
        };
        self.progress.blob_finished(digest, blob.size, outcome);
        Ok((outcome, bytes))
    }

    async fn has_blob(&self, digest: &str) -> Result<bool, MirrorError> {
        self.client
            .blob_exists(&self.dst.base, digest)
            .await
            .map_err(|e| {
                self.dst
                    .ctx("checking for blob", self.dst.blob_name(digest))
                    .classify(e)
            })
    }

    /// Mounts the blob from the source repository; false when the registry will not.
    async fn mount_blob(&self, digest: &str) -> bool {
        match self
            .client
            .mount_blob(&self.dst.base, &self.src.base, digest)
            .await
        {
            Ok(()) => true,
            // A registry that cannot mount opens an upload instead (202): upload then.
            Err(e) => {
                tracing::debug!(digest, error = %e, "cross-repository mount refused; uploading");
                false
            }
        }
    }

    /// Streams the blob from the source into the destination, never holding it
    /// whole; returns the bytes sent.
    async fn stream_blob(&self, blob: &Descriptor) -> Result<u64, MirrorError> {
        let digest = blob.digest.as_str();
        self.progress.blob_transfer_started(digest, blob.size);
        let pulled = self
            .client
            .pull_blob_stream(&self.src.base, digest)
            .await
            .map_err(|e| {
                self.src
                    .ctx("pulling blob", self.src.blob_name(digest))
                    .classify(e)
            })?;
        self.src
            .expect_length(digest, pulled.content_length, blob.size)?;
        let (body, relayed) = relay(pulled, digest.to_string(), self.progress.clone());
        let pushed = self
            .client
            .push_blob_stream(&self.dst.base, body, digest, Some(blob.size))
            .await;
        // An error of the source's side ends the upload: name it as the source's.
        if let Some(e) = relayed.take_error() {
            return Err(self
                .src
                .ctx("pulling blob", self.src.blob_name(digest))
                .classify(OciDistributionError::IoError(e)));
        }
        pushed.map_err(|e| {
            self.dst
                .ctx("uploading blob", self.dst.blob_name(digest))
                .classify(e)
        })?;
        Ok(relayed.sent())
    }

    /// The manifests under the root, the deepest level first so that every
    /// manifest's children are in place before it; each by its digest.
    async fn push_children(
        &self,
        levels: &[Vec<Node>],
        summary: &mut Summary,
    ) -> Result<(), MirrorError> {
        for level in levels.iter().skip(1).rev() {
            stream::iter(level)
                .map(|n| self.push_manifest(self.dst.image.push_target(None, &n.digest), n))
                .buffer_unordered(self.jobs)
                .try_collect::<Vec<()>>()
                .await?;
            summary.manifests_pushed += level.len();
        }
        Ok(())
    }

    /// The root manifest, under each target that lacks it, one after the other.
    async fn push_root(
        &self,
        root: &Node,
        missing: Vec<Reference>,
        summary: &mut Summary,
    ) -> Result<(), MirrorError> {
        for target in missing {
            self.push_manifest(target, root).await?;
            summary.manifests_pushed += 1;
        }
        Ok(())
    }

    async fn push_manifest(&self, target: Reference, node: &Node) -> Result<(), MirrorError> {
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
        self.client
            .push_manifest_raw(&target, node.bytes.clone(), content_type)
            .await
            .map_err(|e| {
                self.dst
                    .ctx("pushing manifest", pretty(&self.dst.image, &name))
                    .classify(e)
            })?;
        self.progress.manifest_finished(
            &node.digest,
            &node.media_type,
            &name,
            ManifestOutcome::Pushed,
        );
        Ok(())
    }
}

fn client_config(options: &Options, jobs: usize) -> ClientConfig {
    ClientConfig {
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
        read_timeout: Some(options.read_timeout),
        user_agent: concat!("ecr-operator/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    }
}

/// Fails when `destination` names a digest other than `actual`, the source's.
fn expect_digest(destination: &ImageRef, actual: &str) -> Result<(), MirrorError> {
    match &destination.digest {
        Some(wanted) if wanted != actual => Err(MirrorError::DigestMismatch {
            reference: destination.to_string(),
            expected: wanted.clone(),
            actual: actual.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The children of the indexes of `level` that are not in `seen`, each once;
/// `seen` takes them in.
fn unseen_children(level: &[Node], seen: &mut BTreeSet<String>) -> Vec<Descriptor> {
    level
        .iter()
        .filter_map(|n| match &n.parsed {
            Parsed::Index { children, .. } => Some(children.iter()),
            Parsed::Image { .. } => None,
        })
        .flatten()
        .filter(|c| seen.insert(c.digest.clone()))
        .cloned()
        .collect()
}

/// The distinct blobs of all image manifests, the largest first so that the big
/// transfers overlap.
fn distinct_blobs(levels: &[Vec<Node>]) -> Vec<Descriptor> {
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
    blobs
}

/// The summary before anything is sent: what is copied, and where to (by the
/// root's digest when the destination has no tag).
fn plan_summary(source: &ImageRef, destination: &ImageRef, levels: &[Vec<Node>]) -> Summary {
    let root = &levels[0][0];
    Summary {
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
    }
}

/// Where the root manifest goes: the destination's reference (its digest when it
/// has no tag), then each further tag once.
fn push_targets(destination: &ImageRef, root_digest: &str, tags: &[String]) -> Vec<Reference> {
    let mut targets = vec![destination.push_target(destination.tag.as_deref(), root_digest)];
    for tag in tags {
        if targets.iter().all(|t| t.tag() != Some(tag.as_str())) {
            targets.push(destination.by_tag(tag));
        }
    }
    targets
}

fn count_blob(summary: &mut Summary, outcome: BlobOutcome, bytes: u64) {
    match outcome {
        BlobOutcome::Copied => summary.blobs_copied += 1,
        BlobOutcome::Skipped => summary.blobs_skipped += 1,
        BlobOutcome::Mounted => summary.blobs_mounted += 1,
    }
    summary.bytes_uploaded += bytes;
}

/// What a source's stream did while it fed an upload.
#[derive(Default)]
struct Relayed {
    sent: AtomicU64,
    /// The source's error that ended the stream; the upload only sees a copy.
    error: Mutex<Option<std::io::Error>>,
}

impl Relayed {
    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn take_error(&self) -> Option<std::io::Error> {
        self.error.lock().expect("not poisoned").take()
    }
}

/// `pulled` as an upload body that reports every chunk to `progress`, counts the
/// bytes, and keeps the source's error so that it can be named as the source's.
fn relay<S, C>(
    pulled: S,
    digest: String,
    progress: Arc<dyn Progress>,
) -> (
    impl Stream<Item = Result<C, OciDistributionError>> + Send + 'static,
    Arc<Relayed>,
)
where
    S: Stream<Item = Result<C, std::io::Error>> + Send + 'static,
    C: AsRef<[u8]>,
{
    let relayed = Arc::new(Relayed::default());
    let (counter, keeper) = (relayed.clone(), relayed.clone());
    let body = pulled
        .map_ok(move |chunk| {
            let len = chunk.as_ref().len() as u64;
            counter.sent.fetch_add(len, Ordering::Relaxed);
            progress.blob_bytes(&digest, len);
            chunk
        })
        .map_err(move |e| {
            let passed_on = std::io::Error::new(e.kind(), e.to_string());
            *keeper.error.lock().expect("not poisoned") = Some(e);
            OciDistributionError::IoError(passed_on)
        });
    (body, relayed)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::manifest::{OCI_INDEX, OCI_MANIFEST};

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
    const D: &str = "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

    fn image(text: &str) -> ImageRef {
        ImageRef::parse(text).unwrap()
    }

    fn desc(digest: &str, size: u64) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: digest.into(),
            size,
            urls: Vec::new(),
        }
    }

    fn image_node(digest: &str, blobs: Vec<Descriptor>) -> Node {
        Node {
            digest: digest.into(),
            media_type: OCI_MANIFEST.into(),
            bytes: Vec::new(),
            parsed: Parsed::Image {
                media_type: OCI_MANIFEST.into(),
                blobs,
            },
        }
    }

    fn index_node(digest: &str, children: Vec<Descriptor>) -> Node {
        Node {
            digest: digest.into(),
            media_type: OCI_INDEX.into(),
            bytes: Vec::new(),
            parsed: Parsed::Index {
                media_type: OCI_INDEX.into(),
                children,
            },
        }
    }

    #[test]
    fn client_config_follows_the_options() {
        let options = Options {
            plain_http: true,
            insecure: true,
            ..Default::default()
        };
        let c = client_config(&options, 3);
        assert_eq!(c.read_timeout, Some(Duration::from_secs(60)));
        assert_eq!(c.protocol, ClientProtocol::Http);
        assert!(c.accept_invalid_certificates);
        assert!(c.use_monolithic_push);
        assert_eq!((c.max_concurrent_upload, c.max_concurrent_download), (3, 3));
        let c = client_config(&Options::default(), 1);
        assert_eq!(c.protocol, ClientProtocol::Https);
        assert!(!c.accept_invalid_certificates);
    }

    #[test]
    fn a_destination_digest_must_be_the_sources() {
        assert!(expect_digest(&image("r.example/a:v1"), A).is_ok());
        assert!(expect_digest(&image(&format!("r.example/a@{A}")), A).is_ok());
        match expect_digest(&image(&format!("r.example/a@{A}")), B) {
            Err(MirrorError::DigestMismatch {
                expected, actual, ..
            }) => assert_eq!((expected.as_str(), actual.as_str()), (A, B)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn children_are_wanted_once() {
        let level = [
            index_node(A, vec![desc(B, 1), desc(C, 1), desc(B, 1)]),
            image_node(D, vec![desc(A, 1)]),
        ];
        let mut seen = BTreeSet::from([A.to_string(), C.to_string()]);
        let wanted = unseen_children(&level, &mut seen);
        assert_eq!(wanted, [desc(B, 1)]);
        assert!(seen.contains(B));
        assert!(unseen_children(&level, &mut seen).is_empty());
    }

    #[test]
    fn blobs_are_distinct_and_the_largest_first() {
        let levels = vec![
            vec![index_node(A, vec![desc(B, 1), desc(C, 1)])],
            vec![
                image_node(B, vec![desc(A, 5), desc(D, 10)]),
                image_node(C, vec![desc(A, 5), desc(B, 5)]),
            ],
        ];
        let digests: Vec<_> = distinct_blobs(&levels)
            .into_iter()
            .map(|b| b.digest)
            .collect();
        // Equal sizes keep the order they were found in.
        assert_eq!(digests, [D, A, B]);
    }

    #[test]
    fn the_summary_names_an_untagged_destination_by_digest() {
        let levels = vec![
            vec![index_node(A, vec![desc(B, 1), desc(C, 1)])],
            vec![image_node(B, vec![]), image_node(C, vec![])],
        ];
        let source = image("src.example/a:v1");
        let s = plan_summary(&source, &image("dst.example/b:v2"), &levels);
        assert_eq!(
            (s.source.as_str(), s.destination.as_str()),
            ("src.example/a:v1", "dst.example/b:v2")
        );
        assert_eq!((s.digest.as_str(), s.media_type.as_str()), (A, OCI_INDEX));
        assert_eq!(s.platforms, 2);
        let s = plan_summary(&source, &image(&format!("dst.example/b@{A}")), &levels);
        assert_eq!(s.destination, format!("dst.example/b@{A}"));
    }

    #[test]
    fn push_targets_are_the_reference_then_each_new_tag() {
        let tags = ["v1", "v2", "v2"].map(String::from);
        let tagged: Vec<_> = push_targets(&image("r.example/a:v1"), A, &tags)
            .iter()
            .map(|t| t.tag().unwrap().to_string())
            .collect();
        assert_eq!(tagged, ["v1", "v2"]);
        let untagged: Vec<_> = push_targets(&image(&format!("r.example/a@{A}")), A, &tags)
            .iter()
            .map(|t| t.tag().unwrap().to_string())
            .collect();
        assert_eq!(untagged, [A, "v1", "v2"]);
    }

    #[test]
    fn blob_outcomes_are_counted() {
        let mut s = Summary::default();
        count_blob(&mut s, BlobOutcome::Copied, 7);
        count_blob(&mut s, BlobOutcome::Copied, 3);
        count_blob(&mut s, BlobOutcome::Skipped, 0);
        count_blob(&mut s, BlobOutcome::Mounted, 0);
        assert_eq!(
            (
                s.blobs_copied,
                s.blobs_skipped,
                s.blobs_mounted,
                s.bytes_uploaded
            ),
            (2, 1, 1, 10)
        );
    }

    #[test]
    fn a_wrong_announced_length_is_the_sources_error() {
        let side = Side::new(&image("src.example/a:v1"), &AuthFiles::default()).unwrap();
        assert!(side.expect_length(A, None, 5).is_ok());
        assert!(side.expect_length(A, Some(5), 5).is_ok());
        let e = side.expect_length(A, Some(4), 5).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "registry error from src.example (pulling blob src.example/a@{A}): \
                 it sends 4 bytes for a blob of 5 bytes"
            )
        );
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, u64)>>);
    impl Progress for Recorder {
        fn blob_bytes(&self, digest: &str, bytes: u64) {
            self.0.lock().unwrap().push((digest.to_string(), bytes));
        }
    }

    #[test]
    fn the_relay_counts_reports_and_keeps_the_sources_error() {
        let recorder = Arc::new(Recorder::default());
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
            Ok(vec![0; 3]),
            Ok(vec![0; 4]),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            )),
        ];
        let (body, relayed) = relay(stream::iter(chunks), A.to_string(), recorder.clone());
        let out: Vec<_> = futures::executor::block_on(body.collect());
        assert!(
            matches!(&out[..], [Ok(_), Ok(_), Err(OciDistributionError::IoError(e))]
            if e.kind() == std::io::ErrorKind::ConnectionReset)
        );
        assert_eq!(relayed.sent(), 7);
        assert_eq!(
            *recorder.0.lock().unwrap(),
            [(A.to_string(), 3), (A.to_string(), 4)]
        );
        let kept = relayed.take_error().unwrap();
        assert_eq!(kept.to_string(), "reset");
        assert!(relayed.take_error().is_none());
    }
}
