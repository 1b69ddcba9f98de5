//! `ecr-operator mirror SOURCE DESTINATION`: copy one image between registries
//! (the copy is `ecr_operator::oci`; this is flags, progress and the summary).

use super::exit;
use super::mirror_login::LoginArgs;
use ecr_operator::oci::{
    self, BlobOutcome, ImageRef, ManifestOutcome, MirrorError, Options, Progress, Source, Summary,
    Transport,
};
use ecr_operator::runtime::logging::LogFormat;
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const LONG_ABOUT: &str = "\
Copy one image from a registry to another: a single-platform manifest, or an index \
(manifest list) with all of its platforms (--platform: only those, as a new index). \
Docker and OCI media types; manifests are pushed byte for byte, so the digest in the \
destination is the source's. What refers to the image comes along: OCI referrers \
(signatures, attestations, SBOMs) and cosign's sha256-<hex>.sig/.att/.sbom tags \
(--no-referrers to skip). --all-tags copies every tag of a repository.

An unchanged image is not read again: the source's digest and every destination tag \
are looked up with HEAD requests first, and when they match no manifest of it is \
fetched (Docker Hub counts manifest GETs, not HEADs, against its pull limit); its \
referrers cost one referrers listing and one page of the tag list.

A request that fails in a way that may pass (HTTP 408, 429, 5xx, a refused, reset or \
stalled connection) is retried with exponential backoff and jitter (--retries); a blob \
upload is retried whole, from a new upload session. A Retry-After header is not seen: \
the HTTP client (oci-client) does not expose the headers of failed responses.

Blobs the destination already has are not sent again; within one registry they are \
mounted from the source repository; otherwise they stream through without being \
held in memory.

References are [registry/]repository[:tag][@digest], Docker Hub and :latest when \
left out. SOURCE may also be an image on disk (no Docker daemon needed): \
oci:DIR[:TAG], an OCI image layout, copied byte for byte (TAG picks the manifest of \
index.json whose org.opencontainers.image.ref.name is TAG, else index.json must list \
one; DIR may contain ':', only a valid tag after the last ':' is TAG), or \
docker-archive:FILE[:REF], what `docker save` writes (REF, one of its RepoTags, picks \
an image when it holds several), pushed as a Docker schema 2 manifest made from it. \
A DESTINATION without tag or digest takes the SOURCE's tag (a layout's TAG or \
ref.name, an archive's only RepoTag; with none, the copy is pushed by digest only); \
--tag adds more tags.

Credentials come from Docker config files (the .dockerconfigjson format the operator \
writes): each --authfile in order, the first file with an entry for a registry wins; \
without --authfile, $DOCKER_CONFIG/config.json or ~/.docker/config.json. Anonymous \
where no entry matches. --src-authfile and --dest-authfile files are searched first \
for their side (the default file only applies when no authfile flag is given); in each \
file, as Docker reads it, credHelpers, then credsStore (docker-credential-NAME on \
PATH), then auths; an ECR registry host that no file has credentials for gets a \
token by GetAuthorizationToken with the AWS identity below (--no-ecr-login turns \
that off), so no `token` step is needed. Passwords are never \
logged or printed.

On a terminal, progress bars; otherwise one log line per blob and manifest. The last \
line on stdout is the summary: `mirrored SRC -> DST digest=... platforms=N \
blobs_copied=N bytes_uploaded=N blobs_skipped=N blobs_mounted=N manifests_pushed=N \
manifests_skipped=N up_to_date=BOOL referrers=N retries=N bytes_resent=N` (one per \
tag with --all-tags); --output json prints one JSON object per copy instead.";

const AFTER_HELP: &str = "\
Examples:
  # Docker Hub to ECR, all platforms, credentials from ~/.docker/config.json
  ecr-operator mirror docker.io/library/alpine:3.20 \\
    123456789012.dkr.ecr.eu-west-1.amazonaws.com/alpine

  # As the EcrMirror Job runs it: the ECR secret first, the other registry's next,
  # the digest for the pod's termination message
  ecr-operator mirror quay.io/org/app:1.2 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.2 \\
    --tag stable \\
    --authfile /var/run/ecr-operator/ecr/.dockerconfigjson \\
    --authfile /var/run/ecr-operator/other/.dockerconfigjson \\
    --digest-file /dev/termination-log

Exit codes:
  0  copied (or already up to date)
  1  failed for good; the message starts with the cause: unauthorized, access denied,
     not found, TLS failure, invalid image reference, authfile, ...
  2  usage error
  3  failed in a way that may pass: registry busy (408, 429, 5xx) or unreachable after
     --retries, or --timeout reached. Under LOG_FORMAT=json the last line on stderr is
     one JSON object {\"level\":\"ERROR\",\"error\":...,\"exitCode\":N,\"retryable\":BOOL}";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct MirrorArgs {
    /// The image to copy: [registry/]repository[:tag|@digest].
    #[arg(value_name = "SOURCE")]
    source: String,
    /// Where to copy it: [registry/]repository[:tag|@digest]; without a tag, SOURCE's.
    #[arg(value_name = "DESTINATION")]
    destination: String,
    /// Also tag the copy in the destination with TAG (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Talk plain HTTP (no TLS) to both registries.
    #[arg(long)]
    plain_http: bool,
    /// Talk plain HTTP to the source registry only.
    #[arg(long)]
    src_plain_http: bool,
    /// Talk plain HTTP to the destination registry only.
    #[arg(long)]
    dest_plain_http: bool,
    /// Skip TLS certificate verification (both registries).
    #[arg(long)]
    insecure: bool,
    /// Skip TLS certificate verification of the source registry only.
    #[arg(long)]
    src_insecure: bool,
    /// Skip TLS certificate verification of the destination registry only.
    #[arg(long)]
    dest_insecure: bool,
    /// Also trust the CA certificates of this PEM file (repeatable), e.g. a
    /// registry's private CA.
    #[arg(long = "ca-file", value_name = "PATH")]
    ca_files: Vec<PathBuf>,
    /// Retries of each request that fails in a way that may pass: HTTP 408, 429,
    /// 5xx, a refused, reset or stalled connection. Waits 1 s, then doubles with
    /// jitter up to 30 s; 0 turns retries off. Beyond them, exit code 3.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(0..=20))]
    retries: u16,
    /// Copy every tag of SOURCE's repository (SOURCE and DESTINATION without tag
    /// or digest), each to the same tag; with --tag-regex, those it matches.
    #[arg(long, conflicts_with_all = ["tags", "digest_file"])]
    all_tags: bool,
    /// With --all-tags: only tags this regular expression matches (anywhere in
    /// the tag; anchor it with ^…$), e.g. '^v[0-9]+\.[0-9]+\.[0-9]+$'.
    #[arg(long, value_name = "REGEX", requires = "all_tags", value_parser = parse_regex)]
    tag_regex: Option<regex::Regex>,
    /// Copy only this platform of an index, os/arch[/variant] (repeatable). The
    /// destination then gets a new index with just those platforms, so its digest
    /// differs from the source's (the summary's digest is the new one).
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]")]
    platforms: Vec<oci::Platform>,
    /// Do not copy what refers to the image. By default its OCI referrers
    /// (signatures, attestations, SBOMs: the referrers API, else the
    /// `sha256-<hex>` tag) and cosign's `sha256-<hex>.sig/.att/.sbom` tags are
    /// copied along.
    #[arg(long)]
    no_referrers: bool,
    /// Output of the result on stdout: `text` (one key=value line) or `json`
    /// (one object).
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Write the copied manifest's digest (no newline) to this file, e.g.
    /// /dev/termination-log.
    #[arg(long, value_name = "PATH")]
    digest_file: Option<PathBuf>,
    /// Blobs transferred at the same time.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=32))]
    jobs: u16,
    /// Give up on a registry connection that sends nothing for this long (a
    /// stalled transfer), e.g. 60s or 5m.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_timeout)]
    read_timeout: Duration,
    /// Give up on the whole copy after this long, e.g. 30m. Default: no limit.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    #[command(flatten)]
    login: LoginArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

fn parse_regex(s: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(s).map_err(|e| format!("not a regular expression: {e}"))
}

/// "60s", "5m", "1h30m": from a second to a week.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 60s, 5m or 1h"))?;
    if d < jiff::SignedDuration::from_secs(1) || d > jiff::SignedDuration::from_hours(168) {
        return Err(format!("{s} is outside 1s..168h"));
    }
    Duration::try_from(d).map_err(|e| e.to_string())
}

pub async fn run(args: MirrorArgs, log_format: LogFormat) -> anyhow::Result<()> {
    let source = Source::parse(&args.source)?;
    let destination = ImageRef::destination(&args.destination, source.tag().as_deref())?;
    for tag in &args.tags {
        oci::reference::check_tag(tag)?;
    }
    let (src_auth, dst_auth) = args.login.auth_files(&source, &destination).await?;
    let options = Options {
        source: Transport {
            plain_http: args.plain_http || args.src_plain_http,
            insecure: args.insecure || args.src_insecure,
        },
        destination: Transport {
            plain_http: args.plain_http || args.dest_plain_http,
            insecure: args.insecure || args.dest_insecure,
        },
        ca_certificates: read_ca_files(&args.ca_files)?,
        jobs: args.jobs.into(),
        tags: args.tags.clone(),
        read_timeout: args.read_timeout,
        retries: args.retries.into(),
        referrers: !args.no_referrers,
        platforms: args.platforms.clone(),
        ..Options::default()
    };
    let terminal = std::io::stderr().is_terminal() && matches!(log_format, LogFormat::Text);
    let bars = terminal.then(|| Arc::new(Bars::new()));
    let progress: Arc<dyn Progress> = match &bars {
        Some(b) => b.clone(),
        None => Arc::new(LogLines),
    };
    let work = async {
        let copies = match args.all_tags {
            false => vec![(source, destination)],
            true => every_tag(&args, &source, &destination, &src_auth, &options).await?,
        };
        for (source, destination) in copies {
            let summary = oci::mirror(
                &source,
                &destination,
                &src_auth,
                &dst_auth,
                &options,
                progress.clone(),
            )
            .await?;
            report(&summary, &args, log_format)?;
        }
        anyhow::Ok(())
    };
    let result = match args.timeout {
        Some(limit) => match tokio::time::timeout(limit, work).await {
            Ok(r) => r,
            Err(_) => Err(exit::retryable(anyhow::anyhow!(
                "the copy did not finish within {} (--timeout): a registry is slow or stalled",
                jiff::SignedDuration::try_from(limit)
                    .map_or_else(|_| format!("{limit:?}"), |d| format!("{d:#}"))
            ))),
        },
        None => work.await,
    };
    if let Some(b) = &bars {
        b.done();
    }
    result
}

/// --all-tags: one copy per tag of the source's repository (that --tag-regex
/// matches), each to the same tag in the destination's.
async fn every_tag(
    args: &MirrorArgs,
    source: &Source,
    destination: &ImageRef,
    src_auth: &oci::AuthFiles,
    options: &Options,
) -> anyhow::Result<Vec<(Source, ImageRef)>> {
    let Source::Registry(repository) = source else {
        anyhow::bail!("--all-tags needs a registry SOURCE, not {source}");
    };
    let written = |text: &str| ImageRef::parse(text).map(|r| r.tag.is_some() || r.digest.is_some());
    if written(&args.source)? || written(&args.destination)? {
        super::aws_args::usage_exit(
            "mirror",
            "--all-tags copies every tag: write SOURCE and DESTINATION without tag or digest",
        );
    }
    let tags: Vec<String> = oci::source_tags(repository, src_auth, options)
        .await?
        .into_iter()
        .filter(|t| args.tag_regex.as_ref().is_none_or(|r| r.is_match(t)))
        .collect();
    if tags.is_empty() {
        anyhow::bail!(
            "no tag of {}/{} to copy{}",
            repository.registry,
            repository.repository,
            match &args.tag_regex {
                Some(r) => format!(" matches --tag-regex {:?}", r.as_str()),
                None => String::new(),
            }
        );
    }
    tracing::info!(count = tags.len(), "tags to copy");
    Ok(tags
        .into_iter()
        .map(|t| {
            let mut src = repository.clone();
            src.tag = Some(t.clone());
            src.digest = None;
            let mut dst = destination.clone();
            dst.tag = Some(t);
            dst.digest = None;
            (Source::Registry(src), dst)
        })
        .collect())
}

/// The result of one copy: the log line, the digest file, stdout.
fn report(summary: &Summary, args: &MirrorArgs, log_format: LogFormat) -> anyhow::Result<()> {
    if matches!(log_format, LogFormat::Json) {
        log_summary(summary);
    }
    if let Some(path) = &args.digest_file {
        std::fs::write(path, &summary.digest).map_err(|e| {
            anyhow::anyhow!(
                "the image was copied ({}), but the digest file {} cannot be written: {e}",
                summary.digest,
                path.display()
            )
        })?;
    }
    match args.output {
        Output::Text => println!("{summary}"),
        Output::Json => println!(
            "{}",
            serde_json::to_string(summary).expect("JSON of strings and numbers")
        ),
    }
    Ok(())
}

/// The PEM files of --ca-file, checked to hold at least one certificate.
fn read_ca_files(paths: &[PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    paths
        .iter()
        .map(|p| {
            let pem =
                std::fs::read(p).map_err(|e| anyhow::anyhow!("--ca-file {}: {e}", p.display()))?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                anyhow::bail!(
                    "--ca-file {}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)",
                    p.display()
                );
            }
            Ok(pem)
        })
        .collect()
}

fn log_summary(s: &Summary) {
    tracing::info!(
        source = s.source,
        destination = s.destination,
        digest = s.digest,
        media_type = s.media_type,
        platforms = s.platforms,
        blobs_copied = s.blobs_copied,
        bytes_uploaded = s.bytes_uploaded,
        blobs_skipped = s.blobs_skipped,
        blobs_mounted = s.blobs_mounted,
        manifests_pushed = s.manifests_pushed,
        manifests_skipped = s.manifests_skipped,
        up_to_date = s.up_to_date,
        referrers = s.referrers,
        retries = s.retries,
        bytes_resent = s.bytes_resent,
        "mirrored"
    );
}

/// Off a terminal: one structured log line per blob and manifest.
struct LogLines;

impl Progress for LogLines {
    fn planned(&self, manifests: usize, blobs: usize, bytes: u64) {
        tracing::info!(manifests, blobs, bytes, "source read");
    }
    fn retrying(&self, error: &MirrorError, after: Duration) {
        tracing::warn!(%error, after_ms = after.as_millis() as u64, "retrying");
    }
    fn blob_finished(&self, digest: &str, size: u64, outcome: BlobOutcome) {
        tracing::info!(digest, size, outcome = outcome.as_str(), "blob");
    }
    fn manifest_finished(
        &self,
        digest: &str,
        media_type: &str,
        target: &str,
        outcome: ManifestOutcome,
    ) {
        // `reference`: JSON logs flatten fields next to tracing's own `target`.
        tracing::info!(
            digest,
            media_type,
            reference = target,
            outcome = outcome.as_str(),
            "manifest"
        );
    }
}

/// On a terminal: a bar for all blob bytes, one per blob in transfer, and a line
/// per finished blob and manifest above them.
struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    blobs: Mutex<HashMap<String, ProgressBar>>,
}

fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

impl Bars {
    fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        total.set_prefix("total");
        total.set_message("reading the source");
        Self {
            multi,
            total,
            blobs: Mutex::default(),
        }
    }

    fn done(&self) {
        self.total.finish_and_clear();
        for (_, b) in self.blobs.lock().expect("not poisoned").drain() {
            b.finish_and_clear();
        }
    }
}

impl Progress for Bars {
    fn retrying(&self, error: &MirrorError, after: Duration) {
        let _ = self
            .multi
            .println(format!("   retry in {:.1}s: {error}", after.as_secs_f64()));
    }
    fn planned(&self, manifests: usize, blobs: usize, bytes: u64) {
        self.total.set_length(bytes);
        self.total
            .set_message(format!("{blobs} blobs, {manifests} manifests"));
    }
    fn blob_transfer_started(&self, digest: &str, size: u64) {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(short(digest).to_string());
        self.blobs
            .lock()
            .expect("not poisoned")
            .insert(digest.to_string(), bar);
    }
    fn blob_bytes(&self, digest: &str, bytes: u64) {
        if let Some(b) = self.blobs.lock().expect("not poisoned").get(digest) {
            b.inc(bytes);
        }
        self.total.inc(bytes);
    }
    fn blob_finished(&self, digest: &str, size: u64, outcome: BlobOutcome) {
        match self.blobs.lock().expect("not poisoned").remove(digest) {
            Some(b) => b.finish_and_clear(),
            None => self.total.inc(size),
        }
        let _ = self.multi.println(format!(
            "{:>8} blob {} {}",
            outcome.as_str(),
            short(digest),
            HumanBytes(size)
        ));
    }
    fn manifest_finished(
        &self,
        digest: &str,
        media_type: &str,
        target: &str,
        outcome: ManifestOutcome,
    ) {
        let target = if target.starts_with("sha256:") {
            String::new()
        } else {
            format!(" as {target}")
        };
        let _ = self.multi.println(format!(
            "{:>8} manifest {}{target} ({media_type})",
            outcome.as_str(),
            short(digest),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_digests() {
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
    }
}
