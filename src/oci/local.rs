//! Images on disk as a `mirror` source: `oci:DIR[:TAG]` (an OCI image layout) and
//! `docker-archive:FILE[:REF]` (what `docker save` writes), so CI can push what it
//! just built without a Docker daemon.
//!
//! - `oci:DIR[:TAG]` ([`layout`]): DIR holds `oci-layout` and `index.json`
//!   (image-spec v1.1, `image-layout.md`). The last `:` starts TAG only when what
//!   follows is a valid tag (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`), so a DIR may
//!   contain `:`; write a DIR whose name ends in `:word` with a trailing `/`
//!   (`oci:out:v1/`). TAG selects the manifest of index.json whose annotation
//!   `org.opencontainers.image.ref.name` is TAG; without TAG, index.json must list
//!   exactly one manifest. It is copied byte for byte, an image or an index.
//! - `docker-archive:FILE[:REF]` ([`archive`]): a tar with `manifest.json` (legacy
//!   `docker save`, skopeo, and Docker ≥ 25, whose OCI layout inside is not used).
//!   FILE is the whole text when that file exists, else the longest part before a
//!   `:` that names an existing file; the rest is REF, one of the image's
//!   `RepoTags` (`app:1.2`). Without REF the archive must hold one image. The
//!   root is a Docker schema 2 manifest made from it: its digest is new, the
//!   config's and the layers' are the archive's.
//!
//! Blobs are found by digest; a digest is checked to be `sha256:` + 64 or
//! `sha512:` + 128 lower-case hex digits before it becomes part of a path.

mod archive;
mod layout;

use super::error::MirrorError;
use sha2::Digest as _;
use std::fmt::Debug;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a blob's bytes are: a whole file, or a region of one (an archive member).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    pub path: PathBuf,
    pub offset: u64,
    pub size: u64,
}

/// An image on disk, read by digest like a registry.
pub trait LocalImage: Send + Sync + Debug {
    /// How messages and the summary name it, e.g. `oci:build/layout:v1`.
    fn name(&self) -> String;
    /// The tag it carries, if any: a destination without a tag takes it.
    fn tag(&self) -> Option<String>;
    /// The root manifest's bytes and media type.
    fn root(&self) -> Result<(Vec<u8>, String), MirrorError>;
    /// A manifest (below the root) by digest.
    fn manifest(&self, digest: &str) -> Result<Vec<u8>, MirrorError>;
    /// Where a blob's bytes are.
    fn blob(&self, digest: &str) -> Result<BlobLocation, MirrorError>;
}

/// Schemes of `skopeo` that `mirror` does not read, and what to use instead.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "oci-archive:",
        "extract the tar into a directory and use oci:DIR[:TAG]",
    ),
    (
        "docker-daemon:",
        "write the image to a file with `docker save -o FILE IMAGE` and use docker-archive:FILE",
    ),
    (
        "containers-storage:",
        "write the image out with `podman save --format oci-dir -o DIR IMAGE` and use oci:DIR",
    ),
];

/// `oci:…` or `docker-archive:…` opened; `None` for anything else (a registry
/// reference).
pub fn open(spec: &str) -> Result<Option<Arc<dyn LocalImage>>, MirrorError> {
    if let Some(rest) = spec.strip_prefix("oci:") {
        return Ok(Some(Arc::new(layout::Layout::open(spec, rest)?)));
    }
    if let Some(rest) = spec.strip_prefix("docker-archive:") {
        return Ok(Some(Arc::new(archive::Archive::open(spec, rest)?)));
    }
    if let Some((scheme, instead)) = UNSUPPORTED.iter().find(|(s, _)| spec.starts_with(s)) {
        return Err(error(
            spec,
            format!(
                "{} sources are not supported: {instead}",
                scheme.trim_end_matches(':')
            ),
        ));
    }
    Ok(None)
}

/// The error of the local image `name`.
fn error(name: &str, reason: impl Into<String>) -> MirrorError {
    MirrorError::Local {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// A digest's algorithm and hex, when it is `sha256:` + 64 or `sha512:` + 128
/// lower-case hex digits: the only digests that become part of a path.
fn split_digest(digest: &str) -> Result<(&str, &str), String> {
    let bad = || {
        format!(
            "invalid digest {digest:?} (expected sha256: and 64, or sha512: and 128, \
             lower-case hex digits)"
        )
    };
    let (algorithm, hex) = digest.split_once(':').ok_or_else(bad)?;
    let len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(bad()),
    };
    if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad());
    }
    Ok((algorithm, hex))
}

/// Hashes of the algorithms [`split_digest`] accepts.
enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(algorithm: &str) -> Self {
        match algorithm {
            "sha512" => Hasher::Sha512(sha2::Sha512::new()),
            _ => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// `algorithm:hex`.
    fn digest(self) -> String {
        let (algorithm, hash): (&str, Vec<u8>) = match self {
            Hasher::Sha256(h) => ("sha256", h.finalize().to_vec()),
            Hasher::Sha512(h) => ("sha512", h.finalize().to_vec()),
        };
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        format!("{algorithm}:{hex}")
    }
}

/// The digest of `bytes` with `algorithm` (`sha256` or `sha512`).
fn digest_of(algorithm: &str, bytes: &[u8]) -> String {
    let mut h = Hasher::new(algorithm);
    h.update(bytes);
    h.digest()
}

/// Reads `size` bytes of `path` from `offset` in 256 KiB chunks, feeding each to
/// `each`; fails when the file ends early.
fn read_region(
    path: &Path,
    offset: u64,
    size: u64,
    mut each: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    use std::io::{Seek as _, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut region = file.take(size);
    let mut buf = vec![0; 256 * 1024];
    let mut read = 0u64;
    loop {
        let n = region.read(&mut buf)?;
        if n == 0 {
            break;
        }
        read += n as u64;
        each(&buf[..n]);
    }
    if read != size {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{size} bytes expected at offset {offset}, the file ends after {read}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked_before_they_become_paths() {
        let hex64 = "a".repeat(64);
        assert_eq!(
            split_digest(&format!("sha256:{hex64}")),
            Ok(("sha256", hex64.as_str()))
        );
        let hex128 = "0".repeat(128);
        assert!(split_digest(&format!("sha512:{hex128}")).is_ok());
        for bad in [
            String::new(),
            "sha256".into(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha512:{hex64}"),
            format!("md5:{hex64}"),
            format!("sha256:../../{}", "a".repeat(58)),
            format!("sha256:{}/", "a".repeat(63)),
        ] {
            assert!(split_digest(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hashes_of_both_algorithms() {
        assert_eq!(
            digest_of("sha256", b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(digest_of("sha512", b"").starts_with("sha512:cf83e1357eefb8bdf1542850d66d8007"));
    }

    #[test]
    fn regions_are_read_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let mut got = Vec::new();
        read_region(&path, 2, 5, |b| got.extend_from_slice(b)).unwrap();
        assert_eq!(got, b"23456");
        let e = read_region(&path, 8, 5, |_| {}).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn other_schemes_are_registry_references_or_refused() {
        assert!(open("registry.example/app:v1").unwrap().is_none());
        assert!(open("localhost:5000/oci:v1").unwrap().is_none());
        let e = open("docker-daemon:app:v1").unwrap_err().to_string();
        assert!(e.contains("docker save"), "{e}");
        let e = open("oci-archive:x.tar").unwrap_err().to_string();
        assert!(e.contains("oci:DIR"), "{e}");
    }
}
