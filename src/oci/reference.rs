//! Image references as `mirror` takes them: `[registry/]repository[:tag][@digest]`.
//!
//! Parsing and normalisation (Docker Hub's `docker.io` and `library/`) are those of
//! the `docker` CLI. Unlike [`oci_client::Reference`], an [`ImageRef`] knows whether
//! a tag was written at all: a destination without one takes the source's.

use super::error::MirrorError;
use oci_client::Reference;
use std::fmt;

/// Docker Hub as written in references; the API lives at [`DOCKER_HUB_API_HOST`].
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API answers (what `oci_client` connects to).
pub const DOCKER_HUB_API_HOST: &str = "index.docker.io";

/// One image reference. `tag` is only set when written (or defaulted, for a source).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]` as written; `docker.io` for Docker Hub.
    pub registry: String,
    /// Repository path, `library/` prefixed for Docker Hub's official images.
    pub repository: String,
    pub tag: Option<String>,
    /// `algorithm:hex`.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses a reference, keeping `tag` empty when none is written.
    pub fn parse(text: &str) -> Result<Self, MirrorError> {
        let invalid = |reason: String| MirrorError::InvalidReference {
            reference: text.to_string(),
            reason,
        };
        let text = text.trim();
        if text.contains("://") {
            return Err(invalid(
                "write it without a scheme, as host/repository:tag (use --plain-http for http)"
                    .into(),
            ));
        }
        split(text).map_err(|r| invalid(r.into()))
    }

    /// A source: without tag and digest it means `:latest`, as for `docker pull`.
    pub fn source(text: &str) -> Result<Self, MirrorError> {
        let mut r = Self::parse(text)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some("latest".into());
        }
        Ok(r)
    }

    /// A destination: without tag and digest it takes the source's tag (none when
    /// the source is pinned by digest alone: the copy is then addressed by digest).
    pub fn destination(text: &str, source_tag: Option<&str>) -> Result<Self, MirrorError> {
        let mut r = Self::parse(text)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = source_tag.map(str::to_string);
        }
        Ok(r)
    }

    /// The host the registry API is reached at (`index.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// The reference the manifest is read from or written to: the digest when there
    /// is one (reads), else the tag.
    pub fn oci(&self) -> Reference {
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => Reference::with_tag_and_digest(
                self.registry.clone(),
                self.repository.clone(),
                t.clone(),
                d.clone(),
            ),
            (None, Some(d)) => self.by_digest(d),
            (Some(t), None) => self.by_tag(t),
            (None, None) => self.by_tag("latest"),
        }
    }

    /// This repository, addressed by `digest`.
    pub fn by_digest(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.registry.clone(),
            self.repository.clone(),
            digest.to_string(),
        )
    }

    /// This repository, addressed by `tag`.
    pub fn by_tag(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.registry.clone(),
            self.repository.clone(),
            tag.to_string(),
        )
    }

    /// Where a manifest is pushed: the tag, or the digest when there is no tag.
    ///
    /// A digest goes in the tag slot on purpose: `/v2/<repo>/manifests/<digest>` is
    /// the push-by-digest URL, and `oci_client`'s fallback for registries that send no
    /// `Location` (ECR) derives the manifest URL from the tag.
    pub fn push_target(&self, tag: Option<&str>, digest: &str) -> Reference {
        self.by_tag(tag.unwrap_or(digest))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Splits a reference into registry, repository, tag and digest by the grammar of
/// Docker's references (github.com/distribution/reference): a first component
/// with a `.` or `:`, or `localhost`, is the registry, else Docker Hub, where a
/// one-component name is in `library/`. (`oci_client::Reference` parses the same
/// grammar with a regex that takes ~60 ms to compile, a copy's whole run time
/// when there is nothing to copy.)
fn split(text: &str) -> Result<ImageRef, &'static str> {
    if text.is_empty() {
        return Err("empty");
    }
    let (rest, digest) = match text.split_once('@') {
        Some((r, d)) => (r, Some(check_digest(d)?)),
        None => (text, None),
    };
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if let Some(t) = tag
        && !tag_ok(t)
    {
        return Err(BAD_TAG);
    }
    let (registry, repository) = match name.split_once('/') {
        Some((first, remainder))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            check_host(first)?;
            let registry = match first {
                "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
                other => other,
            };
            (registry.to_string(), remainder.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    let repository = if registry == DOCKER_HUB && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    check_repository(&repository)?;
    Ok(ImageRef {
        registry,
        repository,
        tag: tag.map(str::to_string),
        digest,
    })
}

const BAD_TAG: &str = "invalid tag (letters, digits, _ . -, at most 128, not starting with . or -)";

fn tag_ok(t: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    t.len() <= 128 && t.starts_with(word) && t.chars().all(|c| word(c) || c == '.' || c == '-')
}

/// Checks a tag given on its own (`--tag`).
pub fn check_tag(tag: &str) -> Result<(), MirrorError> {
    if tag_ok(tag) {
        Ok(())
    } else {
        Err(MirrorError::InvalidReference {
            reference: tag.to_string(),
            reason: BAD_TAG.into(),
        })
    }
}

fn check_digest(d: &str) -> Result<String, &'static str> {
    let (algorithm, hex) = d.split_once(':').ok_or("invalid digest (algorithm:hex)")?;
    let len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err("unsupported digest algorithm (sha256, sha384, sha512)"),
    };
    if hex.len() != len
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("invalid digest (lower-case hex of the algorithm's length)");
    }
    Ok(d.to_string())
}

/// `host[:port]`, the host DNS labels or an IPv4 address.
fn check_host(host: &str) -> Result<(), &'static str> {
    const BAD: &str = "invalid registry host";
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("invalid registry port");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(BAD)
    }
}

/// Path components of lower-case letters and digits, joined by `.`, `_`, `__`
/// or runs of `-`.
fn check_repository(repository: &str) -> Result<(), &'static str> {
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("repository name must be lowercase");
    }
    if repository.len() > 255 {
        return Err("repository name must not be more than 255 characters");
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            // A separator: `.`, `_`, `__` or `-`+, between alphanumerics.
            let start = i;
            match b[i] {
                b'.' => i += 1,
                b'_' => {
                    i += 1;
                    if i < b.len() && b[i] == b'_' {
                        i += 1;
                    }
                }
                b'-' => {
                    while i < b.len() && b[i] == b'-' {
                        i += 1;
                    }
                }
                _ => return false,
            }
            if i == start || i >= b.len() || !alnum(b[i]) {
                return false;
            }
        }
        true
    };
    if repository.split('/').all(component_ok) {
        Ok(())
    } else {
        Err("invalid repository name (lower-case letters, digits, separators . _ __ -)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_short_names_are_normalised() {
        let r = ImageRef::source("alpine").unwrap();
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/alpine");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.api_host(), "index.docker.io");
        assert_eq!(r.oci().resolve_registry(), "index.docker.io");
        let r = ImageRef::parse("bitnami/nginx:1.27").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "bitnami/nginx")
        );
        assert_eq!(r.tag.as_deref(), Some("1.27"));
    }

    #[test]
    fn a_port_is_not_a_tag() {
        let r = ImageRef::parse("127.0.0.1:5000/bed/hello").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "bed/hello");
        assert_eq!(r.tag, None);
        let r = ImageRef::parse("127.0.0.1:5000/bed/hello:v1").unwrap();
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(r.to_string(), "127.0.0.1:5000/bed/hello:v1");
    }

    #[test]
    fn digests_with_and_without_tag() {
        let r = ImageRef::source(&format!("registry.example/a/b@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.oci().digest(), Some(D));
        let r = ImageRef::source(&format!("localhost:5000/a:v2@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert_eq!(r.oci().digest(), Some(D));
        assert_eq!(r.to_string(), format!("localhost:5000/a:v2@{D}"));
    }

    #[test]
    fn destination_takes_the_source_tag_only_when_it_has_none() {
        let src = ImageRef::source("quay.io/org/app:1.2").unwrap();
        let dst = ImageRef::destination(
            "123.dkr.ecr.us-east-1.amazonaws.com/app",
            src.tag.as_deref(),
        )
        .unwrap();
        assert_eq!(dst.tag.as_deref(), Some("1.2"));
        let dst = ImageRef::destination("ecr.example/app:stable", src.tag.as_deref()).unwrap();
        assert_eq!(dst.tag.as_deref(), Some("stable"));
        let pinned = ImageRef::source(&format!("quay.io/org/app@{D}")).unwrap();
        let dst = ImageRef::destination("ecr.example/app", pinned.tag.as_deref()).unwrap();
        assert_eq!((dst.tag, dst.digest), (None, None));
    }

    #[test]
    fn the_grammar_of_docker_references() {
        for (text, registry, repository, tag) in [
            ("localhost/a", "localhost", "a", None),
            (
                "localhost:5000/a/b-c__d.e:1.0-rc_1",
                "localhost:5000",
                "a/b-c__d.e",
                Some("1.0-rc_1"),
            ),
            (
                "index.docker.io/alpine",
                "docker.io",
                "library/alpine",
                None,
            ),
            ("a---b/c", "docker.io", "a---b/c", None),
            (
                "localhost:5000",
                "docker.io",
                "library/localhost",
                Some("5000"),
            ),
            (
                "10.0.0.1:5000/x/y/z:latest",
                "10.0.0.1:5000",
                "x/y/z",
                Some("latest"),
            ),
        ] {
            let r = ImageRef::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
                (registry, repository, tag),
                "{text}"
            );
        }
    }

    #[test]
    fn separate_tags_are_checked() {
        assert!(check_tag("v1.2-rc_3").is_ok());
        assert!(check_tag(&"a".repeat(128)).is_ok());
        for bad in ["", ".x", "-x", "a:b", "a/b", &"a".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn push_target_uses_the_digest_in_place_of_a_missing_tag() {
        let r = ImageRef::parse("ecr.example/app").unwrap();
        assert_eq!(r.push_target(None, D).tag(), Some(D));
        assert_eq!(r.push_target(Some("v1"), D).tag(), Some("v1"));
        assert_eq!(r.push_target(None, D).digest(), None);
    }

    #[test]
    fn invalid_references_are_named() {
        for bad in [
            "",
            "UPPER/case",
            "https://registry.example/a:b",
            "a@sha256:12",
            "a@md5:0123456789abcdef0123456789abcdef",
            "a:b:c",
            "a:-tag",
            "registry.example/a//b",
            "registry.example/a_-b",
            "registry.example/-a",
            "registry.example:port/a",
            "regi$try.example/a",
        ] {
            let e = ImageRef::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid image reference"), "{bad}: {e}");
        }
    }
}
