//! Image references as `mirror` takes them: `[registry/]repository[:tag][@digest]`.
//!
//! Parsing and normalisation (Docker Hub's `docker.io` and `library/`) are those of
//! the `docker` CLI, through [`oci_client::Reference`]. What this module adds is
//! whether a tag was written at all: a destination without one takes the source's.

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
        let parsed = Reference::try_from(text).map_err(|e| invalid(e.to_string()))?;
        // The parser takes a first component with capitals for a host it then
        // does not treat as one.
        if parsed.repository().chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase".into()));
        }
        let tag = if has_explicit_tag(text) {
            parsed.tag().map(str::to_string)
        } else {
            None
        };
        Ok(Self {
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            tag,
            digest: parsed.digest().map(str::to_string),
        })
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
    pub fn destination(text: &str, source: &ImageRef) -> Result<Self, MirrorError> {
        let mut r = Self::parse(text)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = source.tag.clone();
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

/// True when the reference names a tag: a `:` in its last path component, before
/// any `@digest` (a `:` in the host part is a port).
fn has_explicit_tag(text: &str) -> bool {
    let name = text.split_once('@').map_or(text, |(n, _)| n);
    let last = name.rsplit('/').next().unwrap_or(name);
    name.contains('/') && last.contains(':') || !name.contains('/') && name.contains(':')
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
        let dst = ImageRef::destination("123.dkr.ecr.us-east-1.amazonaws.com/app", &src).unwrap();
        assert_eq!(dst.tag.as_deref(), Some("1.2"));
        let dst = ImageRef::destination("ecr.example/app:stable", &src).unwrap();
        assert_eq!(dst.tag.as_deref(), Some("stable"));
        let pinned = ImageRef::source(&format!("quay.io/org/app@{D}")).unwrap();
        let dst = ImageRef::destination("ecr.example/app", &pinned).unwrap();
        assert_eq!((dst.tag, dst.digest), (None, None));
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
            "a:b:c",
        ] {
            let e = ImageRef::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid image reference"), "{bad}: {e}");
        }
    }
}
