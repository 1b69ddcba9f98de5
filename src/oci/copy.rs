//! The copy itself, on `oci_client`: read the source's manifests, put every blob
//! into the destination (HEAD first, a cross-repository mount within one registry,
//! else a stream from one registry into the other), then push the manifests,
//! children first, each with its bytes unchanged so every digest stays the same.
//!
//! Every request that fails in a way that may pass (408, 429, 5xx, a lost or
//! stalled connection) is retried with exponential backoff and jitter; a blob
//! upload is retried whole, from a new upload session.

use super::credentials::AuthFiles;
use super::error::{Context, MirrorError};
use super::local::LocalImage;
use super::manifest::{self, Descriptor, Parsed, Platform};
use super::progress::{BlobOutcome, ManifestOutcome, Progress, Summary};
use super::reference::ImageRef;
use backon::{ExponentialBuilder, Retryable as _};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use oci_client::Reference;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use sha2::Digest as _;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

/// How to reach one registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transport {
    /// `http://` instead of `https://`.
    pub plain_http: bool,
    /// Accept any TLS certificate.
    pub insecure: bool,
}

/// How to talk to the registries.
#[derive(Clone, Debug)]
pub struct Options {
    pub source: Transport,
    pub destination: Transport,
    /// PEM files' contents: CA certificates trusted besides the system's.
    pub ca_certificates: Vec<Vec<u8>>,
    /// Blobs (and manifests) transferred at the same time.
    pub jobs: usize,
    /// More tags for the destination, besides the one of its reference.
    pub tags: Vec<String>,
    /// A connection that sends nothing for this long fails (a stalled transfer).
    pub read_timeout: Duration,
    /// How often one request is retried after a failure that may pass.
    pub retries: usize,
    /// The first wait before a retry; it doubles (with jitter) up to 30 s.
    pub retry_delay: Duration,
    /// Also copy what refers to the image: OCI referrers (signatures,
    /// attestations, SBOMs) and cosign's `sha256-<hex>.sig/.att/.sbom` tags.
    pub referrers: bool,
    /// Only these platforms of an index (then a new index); empty: all.
    pub platforms: Vec<Platform>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            source: Transport::default(),
            destination: Transport::default(),
            ca_certificates: Vec::new(),
            jobs: 4,
            tags: Vec::new(),
            read_timeout: Duration::from_secs(60),
            retries: 4,
            retry_delay: Duration::from_secs(1),
            referrers: true,
            platforms: Vec::new(),
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

/// What to copy: an image in a registry, or one on disk.
#[derive(Clone, Debug)]
pub enum Source {
    Registry(ImageRef),
    Local(Arc<dyn LocalImage>),
}

impl Source {
    /// `SOURCE` as given on the command line: a local scheme, else a reference
    /// (`:latest` when it has neither tag nor digest).
    pub fn parse(text: &str) -> Result<Self, MirrorError> {
        match super::local::open(text)? {
            Some(local) => Ok(Source::Local(local)),
            None => ImageRef::source(text).map(Source::Registry),
        }
    }

    /// The tag a destination without one takes.
    pub fn tag(&self) -> Option<String> {
        match self {
            Source::Registry(r) => r.tag.clone(),
            Source::Local(l) => l.tag(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Registry(r) => r.fmt(f),
            Source::Local(l) => f.write_str(&l.name()),
        }
    }
}

/// One registry end of the copy.
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

    fn repository_name(&self) -> String {
        format!("{}/{}", self.image.registry, self.image.repository)
    }

    fn blob_name(&self, digest: &str) -> String {
        format!("{}@{digest}", self.repository_name())
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

/// Where the source's manifests and blobs come from.
// One per copy: the size of the registry variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Origin {
    Registry {
        side: Side,
        client: oci_client::Client,
    },
    Local(Arc<dyn LocalImage>),
}

/// A manifest read from the source.
struct Node {
    digest: String,
    media_type: String,
    bytes: Vec<u8>,
    parsed: Parsed,
}

/// One copy under way: the clients, both ends, and who hears about it.
struct Copier {
    src: Origin,
    /// The destination's client; its own, as TLS settings may differ per side.
    client: oci_client::Client,
    dst: Side,
    /// Blobs (and manifests) transferred at the same time, at least 1.
    jobs: usize,
    progress: Arc<dyn Progress>,
    /// Only these platforms of an index; empty: all.
    platforms: Vec<Platform>,
    backoff: ExponentialBuilder,
    /// Requests retried, and blob bytes sent by attempts that then failed.
    retried: AtomicUsize,
    resent: AtomicU64,
}

/// Copies `source` to `destination` with the credentials of `src_auth` and
/// `dst_auth`; `progress` hears about every blob and manifest.
pub async fn mirror(
    source: &Source,
    destination: &ImageRef,
    src_auth: &AuthFiles,
    dst_auth: &AuthFiles,
    options: &Options,
    progress: Arc<dyn Progress>,
) -> Result<Summary, MirrorError> {
    install_crypto_provider();
    let copier = Copier::new(source, destination, src_auth, dst_auth, options, progress).await?;
    let targets = |digest: &str| push_targets(destination, digest, &options.tags);
    let mut summary = copier.copy_image(source, None, &targets).await?;
    if options.referrers {
        let subject = summary.digest.clone();
        copier.copy_referrers(&subject, &mut summary).await?;
    }
    copier.count_retries(&mut summary);
    Ok(summary)
}

/// The tags of `repository` (its reference's tag and digest are ignored), every
/// page, sorted; without referrers tags and cosign's tags, which are copied with
/// their subject.
pub async fn source_tags(
    repository: &ImageRef,
    auth: &AuthFiles,
    options: &Options,
) -> Result<Vec<String>, MirrorError> {
    install_crypto_provider();
    const PAGE: usize = 1000;
    let side = Side::new(repository, auth)?;
    let client = new_client(options, options.source, 1)?;
    let mut tags: Vec<String> = Vec::new();
    loop {
        let last = tags.last().cloned();
        let page = client
            .list_tags(&side.base, &side.auth, Some(PAGE), last.as_deref())
            .await
            .map_err(|e| {
                side.ctx("listing tags of", side.repository_name())
                    .classify(e)
            })?;
        let full = page.tags.len() >= PAGE;
        let before = tags.len();
        tags.extend(page.tags.into_iter().filter(|t| Some(t) != last.as_ref()));
        if !full || tags.len() == before {
            break;
        }
    }
    tags.retain(|t| !is_referrer_tag(t));
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// The suffixes of the tags cosign stores signatures, attestations and SBOMs
/// under (`sha256-<hex>.sig`), for registries without the referrers API.
const COSIGN_SUFFIXES: &[&str] = &["sig", "att", "sbom"];

/// The tag of `digest`'s referrers index where a registry has no referrers API
/// (OCI distribution spec 1.1, "referrers tag schema"): `sha256-<hex>`.
fn referrers_tag(digest: &str) -> String {
    digest.replace(':', "-")
}

/// Whether `tag` is a referrers index or a cosign tag: copied with its subject,
/// not as an image of its own.
pub fn is_referrer_tag(tag: &str) -> bool {
    let Some(hex) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let (hex, suffix) = hex
        .split_once('.')
        .map_or((hex, None), |(h, s)| (h, Some(s)));
    hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && suffix.is_none_or(|s| COSIGN_SUFFIXES.contains(&s))
}

impl Copier {
    async fn new(
        source: &Source,
        destination: &ImageRef,
        src_auth: &AuthFiles,
        dst_auth: &AuthFiles,
        options: &Options,
        progress: Arc<dyn Progress>,
    ) -> Result<Self, MirrorError> {
        let jobs = options.jobs.max(1);
        let client = new_client(options, options.destination, jobs)?;
        let dst = Side::new(destination, dst_auth)?;
        client
            .store_auth_if_needed(dst.base.resolve_registry(), &dst.auth)
            .await;
        let src = match source {
            Source::Registry(image) => {
                let side = Side::new(image, src_auth)?;
                let client = new_client(options, options.source, jobs)?;
                client
                    .store_auth_if_needed(side.base.resolve_registry(), &side.auth)
                    .await;
                Origin::Registry { side, client }
            }
            Source::Local(image) => Origin::Local(image.clone()),
        };
        Ok(Self {
            src,
            client,
            dst,
            jobs,
            progress,
            platforms: options.platforms.clone(),
            backoff: ExponentialBuilder::default()
                .with_min_delay(options.retry_delay)
                .with_max_delay(Duration::from_secs(30))
                .with_factor(2.0)
                .with_jitter()
                .with_max_times(options.retries),
            retried: AtomicUsize::new(0),
            resent: AtomicU64::new(0),
        })
    }

    /// Runs `op` again while it fails in a way that may pass, within the budget.
    async fn retrying<T, F, Fut>(&self, op: F) -> Result<T, MirrorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, MirrorError>>,
    {
        let mut unauthorized = 0;
        op.retry(self.backoff)
            .sleep(tokio::time::sleep)
            .when(|e| {
                if matches!(e, MirrorError::Unauthorized { .. }) {
                    unauthorized += 1;
                    return retry_unauthorized(unauthorized);
                }
                e.is_retryable()
            })
            .notify(|e, after| {
                self.retried.fetch_add(1, Ordering::Relaxed);
                self.progress.retrying(e, after);
            })
            .await
    }

    /// Copies one image: `at` None is the source's own reference (checked against
    /// a digest the destination names, platforms filtered); Some(digest) is an
    /// image the source holds by that digest (a referrer). `targets` maps the
    /// root's digest to the references it is pushed under.
    async fn copy_image(
        &self,
        source: &Source,
        at: Option<&str>,
        targets: &dyn Fn(&str) -> Vec<Reference>,
    ) -> Result<Summary, MirrorError> {
        let filtering = at.is_none() && !self.platforms.is_empty();
        // 0. Up to date already? Decided with HEAD requests alone where the source
        // is a registry: Docker Hub counts manifest GETs against its pull limit.
        if !filtering && let Some(summary) = self.unchanged(source, at, targets).await? {
            return Ok(summary);
        }

        // 1. The source's manifests: the root, and for an index every child, level by level.
        let levels = self.read_manifests(at).await?;
        let blobs = distinct_blobs(&levels);
        let manifest_count = levels.iter().map(Vec::len).sum();
        self.progress.planned(
            manifest_count,
            blobs.len(),
            blobs.iter().map(|b| b.size).sum(),
        );
        let root = &levels[0][0];
        let mut summary = plan_summary(source, &self.dst.image, &levels);

        // 2. Already there under every reference? Where it is under one, everything it
        // refers to is there too (registries refuse manifests with missing parts).
        let missing = self
            .missing_targets(targets(&root.digest), root, &mut summary)
            .await?;
        let content_present = summary.manifests_skipped > 0;
        if content_present {
            summary.up_to_date = missing.is_empty();
            summary.blobs_skipped = blobs.len();
            summary.manifests_skipped += manifest_count - 1;
        } else {
            // 3. Blobs. 4. The manifests under the root.
            self.copy_blobs(blobs, &mut summary).await?;
            self.push_children(&levels, &mut summary).await?;
        }
        // The root last, under every reference that lacks it.
        self.push_root(root, missing, &mut summary).await?;
        Ok(summary)
    }

    /// Copies the referrers of `subject` (the copied image's digest): those the
    /// source lists (its referrers API, else its referrers tag), then cosign's
    /// tags. Where the destination does not list them afterwards (no referrers
    /// API), its referrers tag is written to list them, as the OCI spec asks of
    /// clients. Images on disk have none.
    async fn copy_referrers(
        &self,
        subject: &str,
        summary: &mut Summary,
    ) -> Result<(), MirrorError> {
        let Origin::Registry { side, client } = &self.src else {
            return Ok(());
        };
        let listed = self
            .retrying(|| async {
                client
                    .pull_referrers(&side.image.by_digest(subject), None)
                    .await
                    .map_err(|e| {
                        side.ctx("listing referrers of", side.blob_name(subject))
                            .classify(e)
                    })
            })
            .await?;
        let by_digest = |d: &str| vec![self.dst.image.push_target(None, d)];
        let source = Source::Registry(side.image.clone());
        for entry in &listed.manifests {
            let copied = self
                .copy_image(&source, Some(&entry.digest), &by_digest)
                .await?;
            summary.absorb(&copied);
            summary.up_to_date &= copied.up_to_date;
            summary.referrers += 1;
        }
        if !listed.manifests.is_empty() && self.list_referrers(subject, &listed.manifests).await? {
            // The referrers index was written: a manifest pushed like any other.
            summary.manifests_pushed += 1;
            summary.up_to_date = false;
        }
        for tag in self.cosign_tags(side, client, subject).await? {
            let Some(digest) = self.source_digest(&side.image.by_tag(&tag)).await? else {
                continue;
            };
            let copied = self
                .copy_image(&source, Some(&digest), &|_| {
                    vec![self.dst.image.by_tag(&tag)]
                })
                .await?;
            summary.absorb(&copied);
            summary.up_to_date &= copied.up_to_date;
            summary.referrers += 1;
        }
        Ok(())
    }

    /// The cosign tags of `subject` the source holds, from one page of its tag list
    /// starting after `sha256-<hex>` (where they sort): absent ones cost no
    /// manifest request (a HEAD that finds nothing becomes a GET in oci-client,
    /// and Docker Hub counts manifest GETs). Where the registry ignores `last`
    /// (or cannot list), each tag is looked up instead.
    async fn cosign_tags(
        &self,
        side: &Side,
        client: &oci_client::Client,
        subject: &str,
    ) -> Result<Vec<String>, MirrorError> {
        let after = referrers_tag(subject);
        let wanted: Vec<String> = COSIGN_SUFFIXES
            .iter()
            .map(|s| format!("{after}.{s}"))
            .collect();
        let page = self
            .retrying(|| async {
                client
                    .list_tags(&side.base, &side.auth, Some(wanted.len()), Some(&after))
                    .await
                    .map_err(|e| {
                        side.ctx("listing tags of", side.repository_name())
                            .classify(e)
                    })
            })
            .await;
        match page {
            Ok(page) if page.tags.iter().all(|t| *t > after) => Ok(wanted
                .into_iter()
                .filter(|w| page.tags.contains(w))
                .collect()),
            Ok(_) => Ok(wanted),
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "cannot list tags; looking up each cosign tag");
                Ok(wanted)
            }
        }
    }

    /// Makes the destination list `entries` as referrers of `subject`: nothing
    /// when it does already (its referrers API), else they are added to its
    /// referrers tag. True when that tag was written.
    async fn list_referrers(
        &self,
        subject: &str,
        entries: &[oci_client::manifest::ImageIndexEntry],
    ) -> Result<bool, MirrorError> {
        let name = self.dst.blob_name(subject);
        let mut index = self
            .retrying(|| async {
                self.client
                    .pull_referrers(&self.dst.image.by_digest(subject), None)
                    .await
                    .map_err(|e| {
                        self.dst
                            .ctx("listing referrers of", name.clone())
                            .classify(e)
                    })
            })
            .await?;
        let absent: Vec<_> = entries
            .iter()
            .filter(|e| index.manifests.iter().all(|l| l.digest != e.digest))
            .cloned()
            .collect();
        if absent.is_empty() {
            return Ok(false);
        }
        index.manifests.extend(absent);
        index.schema_version = 2;
        index.media_type = Some(manifest::OCI_INDEX.to_string());
        let bytes = serde_json::to_vec(&index).expect("JSON of an index");
        let tag = referrers_tag(subject);
        let digest = sha256_digest(&bytes);
        let node = node(&self.dst.repository_name(), bytes, digest, None)?;
        self.push_manifest(self.dst.image.by_tag(&tag), &node)
            .await?;
        Ok(true)
    }

    /// The digest the source holds under `reference`, None when it holds nothing.
    async fn source_digest(&self, reference: &Reference) -> Result<Option<String>, MirrorError> {
        let Origin::Registry { side, client } = &self.src else {
            return Ok(None);
        };
        self.retrying(|| async {
            match client.fetch_manifest_digest(reference, &side.auth).await {
                Ok(d) => Ok(Some(d)),
                Err(e) => match side.ctx("looking up", reference.whole()).classify(e) {
                    MirrorError::NotFound { .. } => Ok(None),
                    other => Err(other),
                },
            }
        })
        .await
    }

    fn count_retries(&self, summary: &mut Summary) {
        summary.retries = self.retried.load(Ordering::Relaxed);
        summary.bytes_resent = self.resent.load(Ordering::Relaxed);
    }

    /// The summary of a copy with nothing to do, found with HEAD requests only: the
    /// source's digest (`at`, or what its reference names), and every target
    /// holding it. None when something is missing, or the source is on disk
    /// (reading it costs nothing).
    async fn unchanged(
        &self,
        source: &Source,
        at: Option<&str>,
        targets: &dyn Fn(&str) -> Vec<Reference>,
    ) -> Result<Option<Summary>, MirrorError> {
        let Origin::Registry { side, .. } = &self.src else {
            return Ok(None);
        };
        let digest = match at {
            Some(d) => d.to_string(),
            None => {
                let named = side.image.oci();
                let Some(d) = self.source_digest(&named).await? else {
                    // Named by the GET that follows, with the registry's own words.
                    return Ok(None);
                };
                expect_digest(&self.dst.image, &d)?;
                d
            }
        };
        let targets = targets(&digest);
        for target in &targets {
            let name = target.tag().unwrap_or_default();
            if !self.holds(target, name, &digest).await? {
                return Ok(None);
            }
        }
        for target in &targets {
            let name = target.tag().unwrap_or_default();
            self.progress
                .manifest_finished(&digest, "", name, ManifestOutcome::Skipped);
        }
        Ok(Some(Summary {
            source: source.to_string(),
            destination: destination_name(&self.dst.image, &digest),
            digest,
            manifests_skipped: targets.len(),
            up_to_date: true,
            ..Default::default()
        }))
    }

    /// Blobs can be mounted only from another repository of the same registry.
    fn mount_from(&self) -> Option<&Reference> {
        match &self.src {
            Origin::Registry { side, .. }
                if side.base.resolve_registry() == self.dst.base.resolve_registry()
                    && side.image.repository != self.dst.image.repository =>
            {
                Some(&side.base)
            }
            _ => None,
        }
    }

    /// The root manifest, then the children of its indexes level by level; a
    /// manifest listed twice is read once.
    async fn read_manifests(&self, at: Option<&str>) -> Result<Vec<Vec<Node>>, MirrorError> {
        let mut levels = vec![vec![self.read_root(at).await?]];
        let mut seen = BTreeSet::from([levels[0][0].digest.clone()]);
        let mut wanted = unseen_children(&levels[0], &mut seen);
        while !wanted.is_empty() {
            let level = self.read_children(wanted).await?;
            wanted = unseen_children(&level, &mut seen);
            levels.push(level);
        }
        Ok(levels)
    }

    /// The manifest the source names (`at`: by that digest instead), with only the
    /// wanted platforms if an index, then checked against the digest the
    /// destination names (if it names one).
    async fn read_root(&self, at: Option<&str>) -> Result<Node, MirrorError> {
        let (name, bytes, digest, media_type) = match (&self.src, at) {
            (Origin::Registry { side, client }, _) => {
                let reference = match at {
                    Some(d) => side.image.by_digest(d),
                    None => side.image.oci(),
                };
                let (bytes, digest) = self
                    .retrying(|| async {
                        client
                            .pull_manifest_raw(&reference, &side.auth, manifest::ACCEPTED)
                            .await
                            .map_err(|e| {
                                side.ctx("pulling manifest", reference.whole()).classify(e)
                            })
                    })
                    .await?;
                (side.repository_name(), bytes.to_vec(), digest, None)
            }
            (Origin::Local(image), None) => {
                let (bytes, media_type) = image.root()?;
                let digest = sha256_digest(&bytes);
                (image.name(), bytes, digest, Some(media_type))
            }
            (Origin::Local(image), Some(d)) => {
                let bytes = image.manifest(d)?;
                let digest = digest_like(d, &bytes);
                (image.name(), bytes, digest, None)
            }
        };
        let mut root = node(&name, bytes, digest, media_type.as_deref())?;
        if at.is_some() {
            return Ok(root);
        }
        if !self.platforms.is_empty() && matches!(root.parsed, Parsed::Index { .. }) {
            let bytes =
                manifest::filter_platforms(&root.bytes, &self.platforms).map_err(|reason| {
                    MirrorError::Unsupported {
                        reference: format!("{name}@{}", root.digest),
                        reason,
                    }
                })?;
            let digest = sha256_digest(&bytes);
            tracing::info!(
                source_digest = root.digest,
                digest,
                "--platform: the copy is a new index with only the wanted platforms, so its digest differs from the source's"
            );
            root = node(&name, bytes, digest, Some(&root.media_type))?;
        }
        expect_digest(&self.dst.image, &root.digest)?;
        Ok(root)
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
        match &self.src {
            Origin::Registry { side, client } => {
                let name = side.blob_name(&child.digest);
                let (bytes, digest) = self
                    .retrying(|| async {
                        client
                            .pull_manifest_raw(
                                &side.image.by_digest(&child.digest),
                                &side.auth,
                                manifest::ACCEPTED,
                            )
                            .await
                            .map_err(|e| side.ctx("pulling manifest", name.clone()).classify(e))
                    })
                    .await?;
                node(
                    &side.repository_name(),
                    bytes.to_vec(),
                    digest,
                    Some(&child.media_type),
                )
            }
            Origin::Local(image) => {
                let bytes = image.manifest(&child.digest)?;
                let digest = digest_like(&child.digest, &bytes);
                if digest != child.digest {
                    return Err(MirrorError::DigestMismatch {
                        reference: format!("{}@{}", image.name(), child.digest),
                        expected: child.digest,
                        actual: digest,
                    });
                }
                node(&image.name(), bytes, digest, Some(&child.media_type))
            }
        }
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
        let found = self
            .retrying(|| async {
                match self
                    .client
                    .fetch_manifest_digest(target, &self.dst.auth)
                    .await
                {
                    Ok(d) => Ok(Some(d)),
                    Err(e) => match self
                        .dst
                        .ctx("looking up", pretty(&self.dst.image, name))
                        .classify(e)
                    {
                        // Nothing under that reference yet: push it there.
                        MirrorError::NotFound { .. } => Ok(None),
                        other => Err(other),
                    },
                }
            })
            .await?;
        Ok(found.is_some_and(|d| d == digest))
    }

    /// Every blob, `jobs` at a time, counted in `summary`.
    async fn copy_blobs(
        &self,
        blobs: Vec<Descriptor>,
        summary: &mut Summary,
    ) -> Result<(), MirrorError> {
        let outcomes: Vec<(BlobOutcome, u64)> = stream::iter(blobs)
            .map(|d| async move {
                let outcome = self.copy_blob(&d).await?;
                self.progress.blob_finished(&d.digest, d.size, outcome.0);
                Ok::<_, MirrorError>(outcome)
            })
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
    /// bytes uploaded. The lookup and the upload are retried each on its own, so
    /// a failed upload does not spend the budget of the lookup again.
    async fn copy_blob(&self, blob: &Descriptor) -> Result<(BlobOutcome, u64), MirrorError> {
        let digest = blob.digest.as_str();
        Ok(if self.retrying(|| self.has_blob(digest)).await? {
            (BlobOutcome::Skipped, 0)
        } else if self.mount_blob(digest).await {
            (BlobOutcome::Mounted, 0)
        } else {
            let sent = self.retrying(|| self.stream_blob(blob)).await?;
            (BlobOutcome::Copied, sent)
        })
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

    /// Mounts the blob from the source repository where that can work; false when
    /// it cannot or the registry will not.
    async fn mount_blob(&self, digest: &str) -> bool {
        let Some(from) = self.mount_from() else {
            return false;
        };
        match self.client.mount_blob(&self.dst.base, from, digest).await {
            Ok(()) => true,
            // A registry that cannot mount opens an upload instead (202): upload then.
            Err(e) => {
                tracing::debug!(digest, error = %e, "cross-repository mount refused; uploading");
                false
            }
        }
    }

    /// The blob's bytes from the source, and how errors name the source's side.
    async fn open_blob(
        &self,
        blob: &Descriptor,
    ) -> Result<(BoxStream<'static, std::io::Result<bytes::Bytes>>, Context), MirrorError> {
        let digest = blob.digest.as_str();
        match &self.src {
            Origin::Registry { side, client } => {
                let ctx = side.ctx("pulling blob", side.blob_name(digest));
                let pulled = client
                    .pull_blob_stream(&side.base, digest)
                    .await
                    .map_err(|e| ctx.classify(e))?;
                side.expect_length(digest, pulled.content_length, blob.size)?;
                Ok((pulled.stream, ctx))
            }
            Origin::Local(image) => {
                let at = image.blob(digest)?;
                let name = format!("{}@{digest}", image.name());
                let local_error = |e: std::io::Error| MirrorError::Local {
                    name: name.clone(),
                    reason: format!("cannot read {}: {e}", at.path.display()),
                };
                let mut file = tokio::fs::File::open(&at.path).await.map_err(local_error)?;
                use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
                file.seek(std::io::SeekFrom::Start(at.offset))
                    .await
                    .map_err(local_error)?;
                let ctx = Context {
                    registry: "local disk".into(),
                    reference: name.clone(),
                    action: "reading blob",
                    credentials: String::new(),
                };
                let stream = tokio_util::io::ReaderStream::new(file.take(at.size)).boxed();
                Ok((stream, ctx))
            }
        }
    }

    /// Streams the blob from the source into the destination, never holding it
    /// whole; returns the bytes sent.
    async fn stream_blob(&self, blob: &Descriptor) -> Result<u64, MirrorError> {
        let digest = blob.digest.as_str();
        self.progress.blob_transfer_started(digest, blob.size);
        let (pulled, src_ctx) = self.open_blob(blob).await?;
        let (body, relayed) = relay(pulled, digest.to_string(), self.progress.clone());
        let pushed = self
            .client
            .push_blob_stream(&self.dst.base, body, digest, Some(blob.size))
            .await;
        let failed = |e: MirrorError| {
            // What this attempt sent is sent again by the next.
            self.resent.fetch_add(relayed.sent(), Ordering::Relaxed);
            Err(e)
        };
        // An error of the source's side ends the upload: name it as the source's.
        if let Some(e) = relayed.take_error() {
            return failed(src_ctx.classify(OciDistributionError::IoError(e)));
        }
        if let Err(e) = pushed {
            return failed(
                self.dst
                    .ctx("uploading blob", self.dst.blob_name(digest))
                    .classify(e),
            );
        }
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
        let content_type: http::HeaderValue =
            node.media_type
                .parse()
                .map_err(|_| MirrorError::Unsupported {
                    reference: node.digest.clone(),
                    reason: format!(
                        "media type {:?} is not a valid header value",
                        node.media_type
                    ),
                })?;
        self.retrying(|| async {
            self.client
                .push_manifest_raw(&target, node.bytes.clone(), content_type.clone())
                .await
                .map_err(|e| {
                    self.dst
                        .ctx("pushing manifest", pretty(&self.dst.image, &name))
                        .classify(e)
                })
        })
        .await?;
        self.progress.manifest_finished(
            &node.digest,
            &node.media_type,
            &name,
            ManifestOutcome::Pushed,
        );
        Ok(())
    }
}

/// Whether the `nth` 401 of one request gets another try: the first does.
/// oci-client answers a failed `/v2/` ping (a 5xx) by sending the request without
/// credentials, which the registry refuses with 401; the next try pings again.
/// Wrong credentials cost one more request.
fn retry_unauthorized(nth: usize) -> bool {
    nth == 1
}

fn new_client(
    options: &Options,
    transport: Transport,
    jobs: usize,
) -> Result<oci_client::Client, MirrorError> {
    oci_client::Client::try_from(client_config(options, transport, jobs))
        .map_err(|e| MirrorError::Client(e.to_string()))
}

fn client_config(options: &Options, transport: Transport, jobs: usize) -> ClientConfig {
    ClientConfig {
        protocol: if transport.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: transport.insecure,
        extra_root_certificates: options
            .ca_certificates
            .iter()
            .map(|pem| Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.clone(),
            })
            .collect(),
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

fn sha256_digest(bytes: &[u8]) -> String {
    hex_digest("sha256", &sha2::Sha256::digest(bytes))
}

/// The digest of `bytes` with the algorithm of `like` (sha512 or sha256).
fn digest_like(like: &str, bytes: &[u8]) -> String {
    match like.split_once(':') {
        Some(("sha512", _)) => hex_digest("sha512", &sha2::Sha512::digest(bytes)),
        _ => sha256_digest(bytes),
    }
}

fn hex_digest(algorithm: &str, hash: &[u8]) -> String {
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("{algorithm}:{hex}")
}

/// The destination as the summary names it: by the root's digest when it has no tag.
fn destination_name(destination: &ImageRef, digest: &str) -> String {
    match &destination.tag {
        Some(_) => destination.to_string(),
        None => format!(
            "{}/{}@{digest}",
            destination.registry, destination.repository
        ),
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
fn plan_summary(source: &Source, destination: &ImageRef, levels: &[Vec<Node>]) -> Summary {
    let root = &levels[0][0];
    Summary {
        source: source.to_string(),
        destination: destination_name(destination, &root.digest),
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

/// A manifest parsed; `repository` (`registry/repository`, or a local image's
/// name) names it in errors.
fn node(
    repository: &str,
    bytes: Vec<u8>,
    digest: String,
    declared: Option<&str>,
) -> Result<Node, MirrorError> {
    let parsed = manifest::parse(&bytes, declared).map_err(|reason| MirrorError::Unsupported {
        reference: format!("{repository}@{digest}"),
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
            ca_certificates: vec![b"PEM".to_vec()],
            ..Default::default()
        };
        let each = Transport {
            plain_http: true,
            insecure: true,
        };
        let c = client_config(&options, each, 3);
        assert_eq!(c.read_timeout, Some(Duration::from_secs(60)));
        assert_eq!(c.protocol, ClientProtocol::Http);
        assert!(c.accept_invalid_certificates);
        assert!(c.use_monolithic_push);
        assert_eq!((c.max_concurrent_upload, c.max_concurrent_download), (3, 3));
        assert_eq!(c.extra_root_certificates.len(), 1);
        let c = client_config(&Options::default(), Transport::default(), 1);
        assert_eq!(c.protocol, ClientProtocol::Https);
        assert!(!c.accept_invalid_certificates);
        assert!(c.extra_root_certificates.is_empty());
    }

    #[test]
    fn a_401_is_tried_once_more_only() {
        assert!(retry_unauthorized(1));
        assert!(!retry_unauthorized(2));
    }

    #[test]
    fn digests_follow_the_algorithm_they_are_checked_against() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(digest_like("sha512:00", b"").starts_with("sha512:cf83e1357eefb8bd"));
        assert_eq!(digest_like(A, b""), sha256_digest(b""));
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
        let source = Source::Registry(image("src.example/a:v1"));
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
