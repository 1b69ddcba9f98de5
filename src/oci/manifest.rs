//! What `mirror` needs to know of a manifest: its media type (the `Content-Type` it
//! is pushed with, bytes unchanged) and the descriptors it references.

use serde::Deserialize;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The `Accept` list of manifest reads.
pub const ACCEPTED: &[&str] = &[
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

pub fn is_manifest_type(media_type: &str) -> bool {
    ACCEPTED.contains(&media_type)
}

/// A content descriptor: what a manifest says about a blob or a child manifest.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub urls: Vec<String>,
}

/// An index entry's platform, `os/architecture[/variant]` as `--platform` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let word = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        match parts.as_slice() {
            [os, arch] if word(os) && word(arch) => Ok(Self {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if word(os) && word(arch) && word(variant) => Ok(Self {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!(
                "{s:?} is not a platform like linux/amd64 or linux/arm64/v8"
            )),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

/// The annotation by which BuildKit ties an attestation manifest to its image.
const ATTESTATION_OF: &str = "vnd.docker.reference.digest";

/// The index `bytes` with only the entries for `wanted` platforms (a platform
/// without variant matches every variant), and the attestation manifests of
/// those entries. A new index, so a new digest. Errors list what is there.
pub fn filter_platforms(bytes: &[u8], wanted: &[Platform]) -> Result<Vec<u8>, String> {
    let mut index: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not an index: {e}"))?;
    let entries = index
        .get_mut("manifests")
        .and_then(|m| m.as_array_mut())
        .ok_or("not an index: no manifests")?;
    let platform_of = |e: &serde_json::Value| {
        let p = e.get("platform")?;
        Some(Platform {
            os: p.get("os")?.as_str()?.to_string(),
            architecture: p.get("architecture")?.as_str()?.to_string(),
            variant: p
                .get("variant")
                .and_then(|v| v.as_str())
                .map(str::to_string),
        })
    };
    let matches = |p: &Platform| {
        wanted.iter().any(|w| {
            w.os == p.os
                && w.architecture == p.architecture
                && (w.variant.is_none() || w.variant == p.variant)
        })
    };
    let kept: Vec<String> = entries
        .iter()
        .filter(|e| platform_of(e).is_some_and(|p| matches(&p)))
        .filter_map(|e| e.get("digest")?.as_str().map(str::to_string))
        .collect();
    if kept.is_empty() {
        let available: Vec<String> = entries
            .iter()
            .filter_map(platform_of)
            .filter(|p| p.os != "unknown")
            .map(|p| p.to_string())
            .collect();
        return Err(format!(
            "no manifest for {} in the index; it has {}",
            wanted
                .iter()
                .map(Platform::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            }
        ));
    }
    entries.retain(|e| {
        let digest = e.get("digest").and_then(|d| d.as_str()).unwrap_or_default();
        let attests = e
            .pointer(&format!(
                "/annotations/{}",
                ATTESTATION_OF.replace('/', "~1")
            ))
            .and_then(|d| d.as_str());
        kept.iter()
            .any(|k| k == digest || Some(k.as_str()) == attests)
    });
    Ok(serde_json::to_vec(&index).expect("JSON of JSON"))
}

impl Descriptor {
    /// Foreign (non-distributable) layers with URLs are fetched from those URLs by
    /// clients and are not copied, as `skopeo copy` does by default.
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty()
            && (self.media_type.contains(".foreign.")
                || self.media_type.contains("nondistributable"))
    }
}

/// A parsed manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A single-platform image (or artifact) manifest: config and layers.
    Image {
        media_type: String,
        blobs: Vec<Descriptor>,
    },
    /// An OCI index or a Docker manifest list.
    Index {
        media_type: String,
        children: Vec<Descriptor>,
    },
}

impl Parsed {
    pub fn media_type(&self) -> &str {
        match self {
            Parsed::Image { media_type, .. } | Parsed::Index { media_type, .. } => media_type,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

/// Parses `bytes`. The media type is the manifest's own `mediaType`, else the one
/// of the descriptor that pointed here (`declared`), else what the shape says (an
/// OCI manifest may omit it).
pub fn parse(bytes: &[u8], declared: Option<&str>) -> Result<Parsed, String> {
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
    match raw.schema_version {
        Some(2) => {}
        Some(1) => {
            return Err(
                "Docker schema 1 manifests are not supported (deprecated since 2017)".into(),
            );
        }
        Some(v) => return Err(format!("unsupported schemaVersion {v}")),
        None => return Err("not a manifest: no schemaVersion".into()),
    }
    let media_type = match (raw.media_type, declared) {
        (Some(m), _) => m,
        (None, Some(d)) => d.to_string(),
        (None, None) if raw.manifests.is_some() => OCI_INDEX.to_string(),
        (None, None) if raw.config.is_some() => OCI_MANIFEST.to_string(),
        (None, None) => return Err("not a manifest: no mediaType, config or manifests".into()),
    };
    if is_index(&media_type) {
        let children = raw.manifests.unwrap_or_default();
        if let Some(c) = children.iter().find(|c| !is_manifest_type(&c.media_type)) {
            return Err(format!(
                "index entry {} has media type {:?}, not a manifest or index",
                c.digest, c.media_type
            ));
        }
        return Ok(Parsed::Index {
            media_type,
            children,
        });
    }
    if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        return Err(format!("unsupported manifest media type {media_type:?}"));
    }
    let config = raw
        .config
        .ok_or_else(|| "image manifest without config".to_string())?;
    let blobs = std::iter::once(config)
        .chain(raw.layers.unwrap_or_default())
        .filter(|d| !d.is_foreign())
        .collect();
    Ok(Parsed::Image { media_type, blobs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_print() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//amd64".parse::<Platform>().is_err());
    }

    #[test]
    fn a_filtered_index_keeps_the_wanted_platforms_and_their_attestations() {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": A, "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": OCI_MANIFEST, "digest": B, "size": 1,
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": OCI_MANIFEST, "digest": "sha256:cc", "size": 1,
                 "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.digest": B,
                                 "vnd.docker.reference.type": "attestation-manifest"}}
            ]
        });
        let bytes = serde_json::to_vec(&index).unwrap();
        let kept = |wanted: &[&str]| -> Vec<String> {
            let wanted: Vec<Platform> = wanted.iter().map(|w| w.parse().unwrap()).collect();
            let out: serde_json::Value =
                serde_json::from_slice(&filter_platforms(&bytes, &wanted).unwrap()).unwrap();
            out["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["digest"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(kept(&["linux/amd64"]), [A]);
        assert_eq!(kept(&["linux/arm64"]), [B, "sha256:cc"]);
        assert_eq!(kept(&["linux/arm64/v7", "linux/amd64"]), [A]);
        let e = filter_platforms(&bytes, &["windows/amd64".parse().unwrap()]).unwrap_err();
        assert_eq!(
            e,
            "no manifest for windows/amd64 in the index; it has linux/amd64, linux/arm64/v8"
        );
    }

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn digests(p: &Parsed) -> Vec<&str> {
        match p {
            Parsed::Image { blobs, .. } => blobs.iter().map(|b| b.digest.as_str()).collect(),
            Parsed::Index { children, .. } => children.iter().map(|b| b.digest.as_str()).collect(),
        }
    }

    #[test]
    fn docker_manifest_config_then_layers() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
            "config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{A}","size":10}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{B}","size":20}}]}}"#
        );
        let p = parse(m.as_bytes(), None).unwrap();
        assert_eq!(p.media_type(), DOCKER_MANIFEST);
        assert_eq!(digests(&p), [A, B]);
    }

    #[test]
    fn oci_media_type_from_the_body_the_parent_or_the_shape() {
        let image = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{A}","size":1}},"layers":[]}}"#
        );
        assert_eq!(
            parse(image.as_bytes(), None).unwrap().media_type(),
            OCI_MANIFEST
        );
        assert_eq!(
            parse(image.as_bytes(), Some(DOCKER_MANIFEST))
                .unwrap()
                .media_type(),
            DOCKER_MANIFEST
        );
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{A}","size":1,
            "platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#
        );
        let p = parse(index.as_bytes(), None).unwrap();
        assert_eq!(p.media_type(), OCI_INDEX);
        assert_eq!(digests(&p), [A]);
    }

    #[test]
    fn docker_manifest_list() {
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
            {{"mediaType":"{DOCKER_MANIFEST}","digest":"{A}","size":1}},
            {{"mediaType":"{DOCKER_MANIFEST}","digest":"{B}","size":2}}]}}"#
        );
        let p = parse(list.as_bytes(), None).unwrap();
        assert!(is_index(p.media_type()));
        assert_eq!(digests(&p), [A, B]);
    }

    #[test]
    fn foreign_layers_are_not_copied() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
            "config":{{"mediaType":"c","digest":"{A}","size":1}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "digest":"{B}","size":2,"urls":["https://mcr.microsoft.com/x"]}}]}}"#
        );
        assert_eq!(digests(&parse(m.as_bytes(), None).unwrap()), [A]);
    }

    #[test]
    fn unsupported_manifests_say_why() {
        let e = parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, None).unwrap_err();
        assert!(e.contains("schema 1"), "{e}");
        let e = parse(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#, None).unwrap_err();
        assert!(e.contains("text/plain"), "{e}");
        let e = parse(b"<html>", None).unwrap_err();
        assert!(e.contains("not a manifest"), "{e}");
        let bad_child = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/octet-stream","digest":"{A}","size":1}}]}}"#
        );
        assert!(parse(bad_child.as_bytes(), None).is_err());
    }
}
