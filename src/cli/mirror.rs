//! `ecr-operator mirror SOURCE DESTINATION`: copy one image between registries
//! (the copy is `ecr_operator::oci`; this is flags, progress and the summary).

use ecr_operator::oci::{
    self, AuthFiles, BlobOutcome, ImageRef, ManifestOutcome, Options, Progress, Summary,
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
(manifest list) with all of its platforms. Docker and OCI media types; manifests are \
pushed byte for byte, so the digest in the destination is the source's.

Blobs the destination already has are not sent again; within one registry they are \
mounted from the source repository; otherwise they stream through without being \
held in memory.

References are [registry/]repository[:tag][@digest], Docker Hub and :latest when \
left out. A DESTINATION without tag or digest takes the SOURCE's tag; --tag adds \
more tags.

Credentials come from Docker config files (the .dockerconfigjson format the operator \
writes): each --authfile in order, the first file with an entry for a registry wins; \
without --authfile, $DOCKER_CONFIG/config.json or ~/.docker/config.json. Anonymous \
where no entry matches. Credential helpers are not supported. Passwords are never \
logged or printed.

On a terminal, progress bars; otherwise one log line per blob and manifest. The last \
line on stdout is the summary: `mirrored SRC -> DST digest=... platforms=N \
blobs_copied=N bytes_uploaded=N blobs_skipped=N blobs_mounted=N manifests_pushed=N \
manifests_skipped=N up_to_date=BOOL`.";

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
  1  failed; the message starts with the cause: unauthorized, access denied, not found,
     registry unreachable, TLS failure, invalid image reference, authfile, ...
  2  usage error";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct MirrorArgs {
    /// The image to copy: [registry/]repository[:tag|@digest].
    #[arg(value_name = "SOURCE")]
    source: String,
    /// Where to copy it: [registry/]repository[:tag|@digest]; without a tag, SOURCE's.
    #[arg(value_name = "DESTINATION")]
    destination: String,
    /// Docker config file with registry credentials ("auths"). Repeatable: the first
    /// file with an entry for a registry wins. A missing file is an error.
    /// Default: $DOCKER_CONFIG/config.json or ~/.docker/config.json, if present.
    #[arg(long = "authfile", value_name = "PATH")]
    authfiles: Vec<PathBuf>,
    /// Also tag the copy in the destination with TAG (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Talk plain HTTP (no TLS) to both registries.
    #[arg(long)]
    plain_http: bool,
    /// Skip TLS certificate verification (both registries).
    #[arg(long)]
    insecure: bool,
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
    let source = ImageRef::source(&args.source)?;
    let destination = ImageRef::destination(&args.destination, &source)?;
    for tag in &args.tags {
        oci::reference::check_tag(tag)?;
    }
    let auth = AuthFiles::load(&args.authfiles)?;
    let options = Options {
        plain_http: args.plain_http,
        insecure: args.insecure,
        jobs: args.jobs.into(),
        tags: args.tags,
        read_timeout: args.read_timeout,
    };
    let terminal = std::io::stderr().is_terminal() && matches!(log_format, LogFormat::Text);
    let bars = terminal.then(|| Arc::new(Bars::new()));
    let progress: Arc<dyn Progress> = match &bars {
        Some(b) => b.clone(),
        None => Arc::new(LogLines),
    };
    let copy = oci::mirror(&source, &destination, &auth, &options, progress);
    let result = match args.timeout {
        Some(limit) => match tokio::time::timeout(limit, copy).await {
            Ok(r) => r,
            Err(_) => {
                if let Some(b) = &bars {
                    b.done();
                }
                anyhow::bail!(
                    "the copy did not finish within {} (--timeout): a registry is slow or stalled",
                    jiff::SignedDuration::try_from(limit)
                        .map_or_else(|_| format!("{limit:?}"), |d| format!("{d:#}"))
                );
            }
        },
        None => copy.await,
    };
    if let Some(b) = &bars {
        b.done();
    }
    let summary = result?;
    if matches!(log_format, LogFormat::Json) {
        log_summary(&summary);
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
    println!("{summary}");
    Ok(())
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
        "mirrored"
    );
}

/// Off a terminal: one structured log line per blob and manifest.
struct LogLines;

impl Progress for LogLines {
    fn planned(&self, manifests: usize, blobs: usize, bytes: u64) {
        tracing::info!(manifests, blobs, bytes, "source read");
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
