//! What a copy reports while it runs, and the summary at the end.

use super::error::MirrorError;
use std::fmt;
use std::time::Duration;

/// What happened to one blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Streamed from the source and uploaded.
    Copied,
    /// Already in the destination repository (HEAD): nothing sent.
    Skipped,
    /// Mounted from the source repository of the same registry: nothing sent.
    Mounted,
}

impl BlobOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            BlobOutcome::Copied => "copied",
            BlobOutcome::Skipped => "skipped",
            BlobOutcome::Mounted => "mounted",
        }
    }
}

/// What happened to one manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestOutcome {
    Pushed,
    /// The destination already had it under this reference.
    Skipped,
}

impl ManifestOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ManifestOutcome::Pushed => "pushed",
            ManifestOutcome::Skipped => "skipped",
        }
    }
}

/// Receives events while a copy runs (from several blobs at once). Every method
/// has an empty default.
pub trait Progress: Send + Sync {
    /// The source was read: this many manifests and distinct blobs of this total size.
    fn planned(&self, _manifests: usize, _blobs: usize, _bytes: u64) {}
    /// A request failed in a way that may pass; it runs again after `after`.
    fn retrying(&self, _error: &MirrorError, _after: Duration) {}
    /// A blob starts streaming from the source to the destination.
    fn blob_transfer_started(&self, _digest: &str, _size: u64) {}
    /// `bytes` more of the blob went through.
    fn blob_bytes(&self, _digest: &str, _bytes: u64) {}
    /// A blob is in the destination.
    fn blob_finished(&self, _digest: &str, _size: u64, _outcome: BlobOutcome) {}
    /// A manifest is in the destination under `target` (a tag or its digest).
    fn manifest_finished(
        &self,
        _digest: &str,
        _media_type: &str,
        _target: &str,
        _outcome: ManifestOutcome,
    ) {
    }
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// The result of a copy.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub source: String,
    pub destination: String,
    /// Digest of the copied (top-level) manifest, the same in both registries.
    pub digest: String,
    pub media_type: String,
    /// Single-platform manifests copied (1 for an image, N for an index).
    pub platforms: usize,
    pub manifests_pushed: usize,
    pub manifests_skipped: usize,
    pub blobs_copied: usize,
    /// Bytes of blob content uploaded (manifests not counted).
    pub bytes_uploaded: u64,
    pub blobs_skipped: usize,
    pub blobs_mounted: usize,
    /// The destination already held this digest under the reference: nothing was sent.
    pub up_to_date: bool,
    /// Requests that failed in a way that may pass and ran again.
    pub retries: usize,
    /// Blob bytes sent by upload attempts that then failed (sent again).
    pub bytes_resent: u64,
    /// Referrers (signatures, attestations, SBOMs) and cosign tags copied or
    /// already there; their blobs and manifests are counted above.
    pub referrers: usize,
}

impl Summary {
    /// Adds the counts of a copy made along with this one (a referrer).
    pub fn absorb(&mut self, other: &Summary) {
        self.manifests_pushed += other.manifests_pushed;
        self.manifests_skipped += other.manifests_skipped;
        self.blobs_copied += other.blobs_copied;
        self.bytes_uploaded += other.bytes_uploaded;
        self.blobs_skipped += other.blobs_skipped;
        self.blobs_mounted += other.blobs_mounted;
    }
}

impl fmt::Display for Summary {
    /// One line, `key=value` after the header, for people and scripts alike.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mirrored {} -> {} digest={} platforms={} blobs_copied={} bytes_uploaded={} \
             blobs_skipped={} blobs_mounted={} manifests_pushed={} manifests_skipped={} up_to_date={} \
             referrers={} retries={} bytes_resent={}",
            self.source,
            self.destination,
            self.digest,
            self.platforms,
            self.blobs_copied,
            self.bytes_uploaded,
            self.blobs_skipped,
            self.blobs_mounted,
            self.manifests_pushed,
            self.manifests_skipped,
            self.up_to_date,
            self.referrers,
            self.retries,
            self.bytes_resent
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_one_line_of_key_values() {
        let s = Summary {
            source: "a/b:v1".into(),
            destination: "c/d:v1".into(),
            digest: "sha256:ab".into(),
            platforms: 2,
            blobs_copied: 3,
            bytes_uploaded: 1024,
            blobs_skipped: 1,
            ..Default::default()
        };
        assert_eq!(
            s.to_string(),
            "mirrored a/b:v1 -> c/d:v1 digest=sha256:ab platforms=2 blobs_copied=3 \
             bytes_uploaded=1024 blobs_skipped=1 blobs_mounted=0 manifests_pushed=0 \
             manifests_skipped=0 up_to_date=false referrers=0 retries=0 bytes_resent=0"
        );
    }
}
