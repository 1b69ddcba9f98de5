//! `docker-archive:FILE[:REF]`: the tar `docker save` and `skopeo copy …
//! docker-archive:FILE` write. Its `manifest.json` (`[{"Config", "RepoTags",
//! "Layers"}]`) is read in every flavour: legacy (`<id>/layer.tar`, `<id>.json`,
//! symlinks between layer directories) and Docker ≥ 25 (`blobs/sha256/<hex>`;
//! the OCI layout beside it is not used).
//!
//! The members are indexed once (name → region of the file); the config and each
//! layer are hashed by reading their region once, and the root is a Docker schema
//! 2 manifest made from those digests, serialised the same way every time.

use super::{BlobLocation, Hasher, LocalImage, digest_of, error, read_region};
use crate::oci::error::MirrorError;
use crate::oci::manifest::DOCKER_MANIFEST;
use crate::oci::reference::ImageRef;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub const CONFIG_TYPE: &str = "application/vnd.docker.container.image.v1+json";
pub const LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The largest manifest.json and config read into memory.
const MAX_JSON: u64 = 64 << 20;
/// Symlinks and hard links followed from one member name at most.
const MAX_LINKS: usize = 32;

/// One image of manifest.json.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

impl ArchiveImage {
    fn repo_tags(&self) -> &[String] {
        self.repo_tags.as_deref().unwrap_or_default()
    }
}

/// What a member name stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Member {
    /// A regular file: its bytes in the archive.
    Data { offset: u64, size: u64 },
    /// A symlink or hard link to another member (its normalised name).
    Link(String),
}

/// The members of the archive by normalised name.
#[derive(Debug, Default)]
struct Members(HashMap<String, Member>);

/// `./a//b/../c` → `a/c`; `None` when it climbs out of the archive.
fn normalize(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

impl Members {
    /// Reads the tar headers of `path`, seeking past the data.
    fn index(path: &Path) -> std::io::Result<Self> {
        let mut archive = tar::Archive::new(std::fs::File::open(path)?);
        let mut members = Members::default();
        for entry in archive.entries_with_seek()? {
            let entry = entry?;
            let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some(name) = normalize(&raw_name) else {
                continue;
            };
            let link = || {
                entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
            };
            let member = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => Member::Data {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
                // Relative to the symlink's directory (or the archive's root).
                tar::EntryType::Symlink => {
                    let Some(target) = link() else { continue };
                    let joined = match (target.starts_with('/'), name.rsplit_once('/')) {
                        (false, Some((dir, _))) => format!("{dir}/{target}"),
                        _ => target,
                    };
                    match normalize(&joined) {
                        Some(t) => Member::Link(t),
                        None => continue,
                    }
                }
                // Hard links name the other member from the archive's root.
                tar::EntryType::Link => match link().as_deref().and_then(normalize) {
                    Some(t) => Member::Link(t),
                    None => continue,
                },
                _ => continue,
            };
            members.0.insert(name, member);
        }
        Ok(members)
    }

    /// The region of the file `name` (followed through links), `None` when the
    /// archive has no such file.
    fn region(&self, name: &str) -> Option<(u64, u64)> {
        let mut name = normalize(name)?;
        for _ in 0..=MAX_LINKS {
            match self.0.get(&name)? {
                Member::Data { offset, size } => return Some((*offset, *size)),
                Member::Link(target) => name = target.clone(),
            }
        }
        None
    }
}

/// `FILE[:REF]` split: the whole text when that file exists, else the longest
/// part before a `:` that is an existing file; when none is, the part before the
/// first `:` (as skopeo reads it), so that the error names it.
pub fn split_ref(text: &str) -> (&str, Option<&str>) {
    if !text.contains(':') || Path::new(text).is_file() {
        return (text, None);
    }
    let at = |i: usize| (&text[..i], Some(&text[i + 1..]));
    text.rmatch_indices(':')
        .map(|(i, _)| i)
        .find(|&i| i > 0 && Path::new(&text[..i]).is_file())
        .map_or_else(|| at(text.find(':').expect("has a colon")), at)
}

/// Whether `repo_tag` (of manifest.json) is the image `wanted` names: the same
/// text, or the same image once normalised (`app` is `docker.io/library/app:latest`).
fn same_image(repo_tag: &str, wanted: &str) -> bool {
    if repo_tag == wanted {
        return true;
    }
    match (ImageRef::source(repo_tag), ImageRef::source(wanted)) {
        (Ok(a), Ok(b)) => (a.registry, a.repository, a.tag) == (b.registry, b.repository, b.tag),
        _ => false,
    }
}

/// The tag of a RepoTags entry (`app:1.2` → `1.2`).
fn tag_of(repo_tag: &str) -> Option<String> {
    ImageRef::parse(repo_tag).ok().and_then(|r| r.tag)
}

/// Descriptors in the order Go's `manifest.Schema2` writes them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Schema2Descriptor {
    media_type: &'static str,
    size: u64,
    digest: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Schema2 {
    schema_version: u32,
    media_type: &'static str,
    config: Schema2Descriptor,
    layers: Vec<Schema2Descriptor>,
}

/// The part of the config checked against the layers.
#[derive(Deserialize)]
struct Config {
    rootfs: Option<RootFs>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// A `docker-archive:` image: where its blobs are in the tar, and the manifest
/// made for it.
#[derive(Debug)]
pub struct Archive {
    name: String,
    path: PathBuf,
    tag: Option<String>,
    manifest: Vec<u8>,
    manifest_digest: String,
    /// Digest → region of the archive.
    blobs: BTreeMap<String, (u64, u64)>,
}

impl Archive {
    /// Opens `rest` (`FILE[:REF]`) of `spec` (`docker-archive:FILE[:REF]`).
    pub fn open(spec: &str, rest: &str) -> Result<Self, MirrorError> {
        let fail = |reason: String| error(spec, reason);
        let (file, wanted) = split_ref(rest);
        if file.is_empty() {
            return Err(fail("no file: write docker-archive:FILE[:REF]".into()));
        }
        let path = PathBuf::from(file);
        let shown = path.display();
        let len = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => return Err(fail(format!("{shown} is not a file"))),
            Err(e) => return Err(fail(format!("cannot open {shown}: {e}"))),
        };
        let members = Members::index(&path)
            .map_err(|e| fail(format!("cannot read {shown} as a tar archive: {e}")))?;
        // The region of member `name`, checked to be within the file.
        let region = |name: &str, what: &str| -> Result<(u64, u64), MirrorError> {
            let (offset, size) = members.region(name).ok_or_else(|| {
                fail(format!(
                    "{shown} has no {what} {name:?} (manifest.json names it)"
                ))
            })?;
            if offset.saturating_add(size) > len {
                return Err(fail(format!(
                    "{shown} is cut short: {what} {name:?} needs {size} bytes from offset \
                     {offset}, the file has {len}"
                )));
            }
            Ok((offset, size))
        };
        let read_small = |name: &str, what: &str| -> Result<Vec<u8>, MirrorError> {
            let (offset, size) = region(name, what)?;
            if size > MAX_JSON {
                return Err(fail(format!("{what} {name:?} has {size} bytes: too large")));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            read_region(&path, offset, size, |b| bytes.extend_from_slice(b))
                .map_err(|e| fail(format!("cannot read {what} {name:?} of {shown}: {e}")))?;
            Ok(bytes)
        };

        if members.region("manifest.json").is_none() {
            return Err(fail(format!(
                "{shown} is not a docker-archive: it has no manifest.json (`docker save` \
                 and `skopeo copy … docker-archive:FILE` write one)"
            )));
        }
        let images: Vec<ArchiveImage> =
            serde_json::from_slice(&read_small("manifest.json", "file")?)
                .map_err(|e| fail(format!("manifest.json of {shown}: {e}")))?;
        let (image, tag) = select(&images, wanted).map_err(fail)?;

        let config = read_small(&image.config, "config")?;
        let config_digest = digest_of("sha256", &config);
        let diff_ids = serde_json::from_slice::<Config>(&config)
            .map_err(|e| {
                fail(format!(
                    "config {:?}: not an image config: {e}",
                    image.config
                ))
            })?
            .rootfs
            .map(|r| r.diff_ids);
        if let Some(ids) = &diff_ids
            && ids.len() != image.layers.len()
        {
            return Err(fail(format!(
                "manifest.json lists {} layers, the config's rootfs.diff_ids {}",
                image.layers.len(),
                ids.len()
            )));
        }

        let mut blobs = BTreeMap::from([(config_digest.clone(), region(&image.config, "config")?)]);
        let mut layers = Vec::new();
        for (i, name) in image.layers.iter().enumerate() {
            let (offset, size) = region(name, "layer")?;
            let mut hasher = Hasher::new("sha256");
            let mut head = Vec::with_capacity(4);
            read_region(&path, offset, size, |b| {
                if head.len() < 4 {
                    head.extend(b.iter().take(4 - head.len()));
                }
                hasher.update(b);
            })
            .map_err(|e| fail(format!("cannot read layer {name:?} of {shown}: {e}")))?;
            let digest = hasher.digest();
            let media_type = match head[..] {
                [0x1f, 0x8b, ..] => LAYER_GZIP,
                [0x28, 0xb5, 0x2f, 0xfd] => {
                    return Err(fail(format!(
                        "layer {name:?} is zstd-compressed: a Docker schema 2 manifest \
                         cannot describe it"
                    )));
                }
                _ => LAYER_TAR,
            };
            // An uncompressed layer is its own diff_id: a registry would take a
            // mismatch, a pull would fail on it.
            if let Some(ids) = &diff_ids
                && media_type == LAYER_TAR
                && ids[i] != digest
            {
                return Err(fail(format!(
                    "layer {name:?} has digest {digest}, but the config's rootfs.diff_ids[{i}] \
                     is {}",
                    ids[i]
                )));
            }
            blobs.insert(digest.clone(), (offset, size));
            layers.push(Schema2Descriptor {
                media_type,
                size,
                digest,
            });
        }
        let manifest = serde_json::to_vec(&Schema2 {
            schema_version: 2,
            media_type: DOCKER_MANIFEST,
            config: Schema2Descriptor {
                media_type: CONFIG_TYPE,
                size: config.len() as u64,
                digest: config_digest,
            },
            layers,
        })
        .expect("strings and numbers serialise");
        Ok(Archive {
            name: spec.to_string(),
            path,
            tag,
            manifest_digest: digest_of("sha256", &manifest),
            manifest,
            blobs,
        })
    }
}

/// The image `wanted` names (one of its RepoTags), else the only one; and the tag
/// a destination takes from it.
fn select<'a>(
    images: &'a [ArchiveImage],
    wanted: Option<&str>,
) -> Result<(&'a ArchiveImage, Option<String>), String> {
    let available = || {
        let names: Vec<String> = images
            .iter()
            .enumerate()
            .map(|(i, image)| match image.repo_tags() {
                [] => format!("(untagged image {})", i + 1),
                tags => tags.join(", "),
            })
            .collect();
        format!("images in manifest.json: {}", names.join("; "))
    };
    match wanted {
        Some(wanted) => {
            let found: Vec<(&ArchiveImage, &String)> = images
                .iter()
                .filter_map(|image| {
                    image
                        .repo_tags()
                        .iter()
                        .find(|t| same_image(t, wanted))
                        .map(|t| (image, t))
                })
                .collect();
            match found[..] {
                [(image, repo_tag)] => Ok((image, tag_of(repo_tag))),
                [] => Err(format!(
                    "no image tagged {wanted:?} in manifest.json; {}",
                    available()
                )),
                _ => Err(format!(
                    "{} images of manifest.json are tagged {wanted:?}",
                    found.len()
                )),
            }
        }
        None => match images {
            [image] => Ok((
                image,
                match image.repo_tags() {
                    [one] => tag_of(one),
                    _ => None,
                },
            )),
            [] => Err("manifest.json lists no image".into()),
            _ => Err(format!(
                "{} images, so name one as docker-archive:FILE:REF; {}",
                images.len(),
                available()
            )),
        },
    }
}

impl LocalImage for Archive {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn tag(&self) -> Option<String> {
        self.tag.clone()
    }

    fn root(&self) -> Result<(Vec<u8>, String), MirrorError> {
        Ok((self.manifest.clone(), DOCKER_MANIFEST.to_string()))
    }

    fn manifest(&self, digest: &str) -> Result<Vec<u8>, MirrorError> {
        if digest == self.manifest_digest {
            return Ok(self.manifest.clone());
        }
        Err(error(
            &self.name,
            format!("the archive has no manifest {digest} (its one manifest is the root)"),
        ))
    }

    fn blob(&self, digest: &str) -> Result<BlobLocation, MirrorError> {
        let (offset, size) = self.blobs.get(digest).ok_or_else(|| {
            error(
                &self.name,
                format!("blob {digest} is not in {}", self.path.display()),
            )
        })?;
        Ok(BlobLocation {
            path: self.path.clone(),
            offset: *offset,
            size: *size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn sha256(bytes: &[u8]) -> String {
        digest_of("sha256", bytes)
    }

    /// A tar being written.
    struct Tar {
        builder: tar::Builder<std::fs::File>,
    }

    impl Tar {
        fn new(path: &Path) -> Self {
            Tar {
                builder: tar::Builder::new(std::fs::File::create(path).unwrap()),
            }
        }

        fn file(&mut self, name: &str, bytes: &[u8]) -> &mut Self {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            self.builder.append_data(&mut h, name, bytes).unwrap();
            self
        }

        fn link(&mut self, kind: tar::EntryType, name: &str, target: &str) -> &mut Self {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_mode(0o777);
            h.set_entry_type(kind);
            self.builder.append_link(&mut h, name, target).unwrap();
            self
        }

        fn json(&mut self, name: &str, value: &Value) -> &mut Self {
            self.file(name, value.to_string().as_bytes())
        }

        fn finish(&mut self) {
            self.builder.finish().unwrap();
        }
    }

    /// A layer's bytes: a (fake) uncompressed tar.
    fn layer(content: &str) -> Vec<u8> {
        let mut b = content.as_bytes().to_vec();
        b.resize(1024, 0);
        b
    }

    fn config(layers: &[&[u8]]) -> Vec<u8> {
        let ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
        json!({"architecture": "amd64", "os": "linux",
               "rootfs": {"type": "layers", "diff_ids": ids}})
        .to_string()
        .into_bytes()
    }

    fn open(spec: &str) -> Result<Archive, MirrorError> {
        Archive::open(spec, spec.strip_prefix("docker-archive:").unwrap())
    }

    fn err(spec: &str) -> String {
        open(spec).unwrap_err().to_string()
    }

    fn spec(path: &Path, reference: Option<&str>) -> String {
        match reference {
            Some(r) => format!("docker-archive:{}:{r}", path.display()),
            None => format!("docker-archive:{}", path.display()),
        }
    }

    /// The bytes of a blob as its location says.
    fn blob_bytes(a: &Archive, digest: &str) -> Vec<u8> {
        let at = a.blob(digest).unwrap();
        let mut out = Vec::new();
        read_region(&at.path, at.offset, at.size, |b| out.extend_from_slice(b)).unwrap();
        out
    }

    #[test]
    fn a_legacy_archive_becomes_a_docker_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        let (l1, l2) = (layer("one"), layer("two"));
        let config = config(&[&l1, &l2]);
        let config_name = format!("{}.json", &sha256(&config)[7..]);
        Tar::new(&path)
            .file("aaa/layer.tar", &l1)
            .file("bbb/layer.tar", &l2)
            .file(&config_name, &config)
            .json(
                "manifest.json",
                &json!([{"Config": config_name, "RepoTags": ["app:1.2"],
                         "Layers": ["aaa/layer.tar", "bbb/layer.tar"]}]),
            )
            .json("repositories", &json!({"app": {"1.2": "bbb"}}))
            .finish();
        let a = open(&spec(&path, None)).unwrap();
        assert_eq!(a.tag().as_deref(), Some("1.2"));
        let (bytes, media_type) = a.root().unwrap();
        assert_eq!(media_type, DOCKER_MANIFEST);
        let want = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{CONFIG_TYPE}","size":{},"digest":"{}"}},"layers":[{{"mediaType":"{LAYER_TAR}","size":1024,"digest":"{}"}},{{"mediaType":"{LAYER_TAR}","size":1024,"digest":"{}"}}]}}"#,
            config.len(),
            sha256(&config),
            sha256(&l1),
            sha256(&l2)
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), want);
        // What the engine reads: the manifest parses, every blob is where it says.
        let parsed = crate::oci::manifest::parse(&bytes, None).unwrap();
        assert_eq!(parsed.media_type(), DOCKER_MANIFEST);
        assert_eq!(blob_bytes(&a, &sha256(&config)), config);
        assert_eq!(blob_bytes(&a, &sha256(&l1)), l1);
        assert_eq!(blob_bytes(&a, &sha256(&l2)), l2);
        assert_eq!(a.manifest(&sha256(&bytes)).unwrap(), bytes);
        assert!(a.manifest(&sha256(b"x")).is_err());
        let e = a.blob(&sha256(b"x")).unwrap_err().to_string();
        assert!(e.contains("is not in"), "{e}");
        // The same bytes every time.
        assert_eq!(open(&spec(&path, None)).unwrap().root().unwrap().0, bytes);
    }

    /// Two images, the second's first layer a symlink to the first's (as
    /// `docker save` writes a layer shared under another layer ID) and its second
    /// a hard link.
    fn two_images(path: &Path) -> (Vec<u8>, Vec<u8>) {
        let (l1, l2) = (layer("base"), layer("top"));
        let (c1, c2) = (config(&[&l1]), config(&[&l1, &l2]));
        Tar::new(path)
            .file("base/layer.tar", &l1)
            .file("c1.json", &c1)
            .link(tar::EntryType::Symlink, "dup/layer.tar", "../base/layer.tar")
            .file("top/layer.tar", &l2)
            .link(tar::EntryType::Link, "top2/layer.tar", "top/layer.tar")
            .file("c2.json", &c2)
            .json(
                "manifest.json",
                &json!([
                    {"Config": "c1.json", "RepoTags": ["app:1.2", "app:latest"], "Layers": ["base/layer.tar"]},
                    {"Config": "c2.json", "RepoTags": ["registry.example/other:2"],
                     "Layers": ["dup/layer.tar", "top2/layer.tar"]},
                ]),
            )
            .finish();
        (c1, c2)
    }

    #[test]
    fn a_ref_picks_one_of_two_images() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two.tar");
        let (c1, c2) = two_images(&path);
        let config_of = |a: &Archive| {
            let m: Value = serde_json::from_slice(&a.root().unwrap().0).unwrap();
            m["config"]["digest"].as_str().unwrap().to_string()
        };
        for (reference, config, tag) in [
            ("app:1.2", &c1, "1.2"),
            ("docker.io/library/app:1.2", &c1, "1.2"),
            ("app", &c1, "latest"),
            ("registry.example/other:2", &c2, "2"),
        ] {
            let a = open(&spec(&path, Some(reference))).unwrap();
            assert_eq!(config_of(&a), sha256(config), "{reference}");
            assert_eq!(a.tag().as_deref(), Some(tag), "{reference}");
        }
        let a = open(&spec(&path, Some("registry.example/other:2"))).unwrap();
        let m: Value = serde_json::from_slice(&a.root().unwrap().0).unwrap();
        let top = m["layers"][1]["digest"].as_str().unwrap();
        assert_eq!(blob_bytes(&a, top), layer("top"));
        let e = err(&spec(&path, None));
        assert!(e.contains("2 images"), "{e}");
        assert!(
            e.contains("images in manifest.json: app:1.2, app:latest; registry.example/other:2"),
            "{e}"
        );
        let e = err(&spec(&path, Some("app:9")));
        assert!(e.contains(r#"no image tagged "app:9""#), "{e}");
    }

    #[test]
    fn gzip_layers_are_detected_and_zstd_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gz.tar");
        let gz = [0x1f, 0x8b, 8, 0, 1, 2, 3];
        // A diff_id is of the uncompressed layer: not the blob's digest.
        let cfg = json!({"rootfs": {"type": "layers", "diff_ids": [sha256(b"inside")]}});
        Tar::new(&path)
            .file("blobs/sha256/layer", &gz)
            .json("blobs/sha256/config", &cfg)
            .json(
                "manifest.json",
                &json!([{"Config": "blobs/sha256/config", "RepoTags": null,
                         "Layers": ["blobs/sha256/layer"]}]),
            )
            .finish();
        let a = open(&spec(&path, None)).unwrap();
        assert_eq!(a.tag(), None);
        let m: Value = serde_json::from_slice(&a.root().unwrap().0).unwrap();
        assert_eq!(m["layers"][0]["mediaType"], LAYER_GZIP);
        assert_eq!(m["layers"][0]["digest"], sha256(&gz));

        let zst = dir.path().join("zst.tar");
        Tar::new(&zst)
            .file("l", &[0x28, 0xb5, 0x2f, 0xfd, 0])
            .json("c.json", &json!({}))
            .json(
                "manifest.json",
                &json!([{"Config": "c.json", "Layers": ["l"]}]),
            )
            .finish();
        let e = err(&spec(&zst, None));
        assert!(e.contains("zstd"), "{e}");
    }

    #[test]
    fn a_docker_25_archive_is_read_through_manifest_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d25.tar");
        let l1 = layer("one");
        let c = config(&[&l1]);
        let (lh, ch) = (&sha256(&l1)[7..], &sha256(&c)[7..]);
        Tar::new(&path)
            .json("oci-layout", &json!({"imageLayoutVersion": "1.0.0"}))
            .json("index.json", &json!({"schemaVersion": 2, "manifests": []}))
            .file(&format!("blobs/sha256/{lh}"), &l1)
            .file(&format!("blobs/sha256/{ch}"), &c)
            .json(
                "manifest.json",
                &json!([{"Config": format!("blobs/sha256/{ch}"), "RepoTags": ["app:v1"],
                         "Layers": [format!("blobs/sha256/{lh}")]}]),
            )
            .finish();
        let a = open(&spec(&path, Some("app:v1"))).unwrap();
        assert_eq!(blob_bytes(&a, &sha256(&l1)), l1);
        assert_eq!(blob_bytes(&a, &sha256(&c)), c);
    }

    #[test]
    fn a_file_with_a_colon_and_a_ref() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("build:7.tar");
        two_images(&path);
        assert_eq!(
            split_ref(&format!("{}:app:1.2", path.display())),
            (path.to_str().unwrap(), Some("app:1.2"))
        );
        assert_eq!(
            split_ref(path.to_str().unwrap()),
            (path.to_str().unwrap(), None)
        );
        let a = open(&spec(&path, Some("app:1.2"))).unwrap();
        assert_eq!(a.tag().as_deref(), Some("1.2"));
        assert_eq!(a.blob(&sha256(&layer("base"))).unwrap().path, path);
        // Nothing exists: the part before the first colon is the file.
        assert_eq!(
            split_ref("missing.tar:app:1.2"),
            ("missing.tar", Some("app:1.2"))
        );
    }

    #[test]
    fn broken_archives_name_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.tar");
        let e = err(&spec(&missing, None));
        assert!(
            e.contains(&format!("cannot open {}: No such file", missing.display())),
            "{e}"
        );
        let e = err(&spec(&missing, Some("app:1.2")));
        assert!(
            e.contains(&format!("cannot open {}:", missing.display())),
            "{e}"
        );

        let not_tar = dir.path().join("not.tar");
        std::fs::write(&not_tar, vec![b'x'; 2048]).unwrap();
        let e = err(&spec(&not_tar, None));
        assert!(e.contains("as a tar archive"), "{e}");

        let no_manifest = dir.path().join("no-manifest.tar");
        Tar::new(&no_manifest).file("x", b"x").finish();
        let e = err(&spec(&no_manifest, None));
        assert!(e.contains("has no manifest.json"), "{e}");

        let no_layer = dir.path().join("no-layer.tar");
        Tar::new(&no_layer)
            .json("c.json", &json!({}))
            .json(
                "manifest.json",
                &json!([{"Config": "c.json", "Layers": ["gone/layer.tar"]}]),
            )
            .finish();
        let e = err(&spec(&no_layer, None));
        assert!(e.contains(r#"has no layer "gone/layer.tar""#), "{e}");

        let wrong_id = dir.path().join("wrong-id.tar");
        Tar::new(&wrong_id)
            .file("l.tar", &layer("a"))
            .file("c.json", &config(&[&layer("b")]))
            .json(
                "manifest.json",
                &json!([{"Config": "c.json", "Layers": ["l.tar"]}]),
            )
            .finish();
        let e = err(&spec(&wrong_id, None));
        assert!(e.contains("rootfs.diff_ids[0]"), "{e}");

        // Cut short inside a layer, as a truncated download leaves it.
        let full = dir.path().join("full.tar");
        let big = vec![7u8; 64 * 1024];
        Tar::new(&full)
            .json("c.json", &json!({}))
            .json(
                "manifest.json",
                &json!([{"Config": "c.json", "Layers": ["l.tar"]}]),
            )
            .file("l.tar", &big)
            .finish();
        let bytes = std::fs::read(&full).unwrap();
        let cut = dir.path().join("cut.tar");
        std::fs::write(&cut, &bytes[..bytes.len() - 40 * 1024]).unwrap();
        let e = err(&spec(&cut, None));
        assert!(e.contains("cut short"), "{e}");
    }

    #[test]
    fn member_names_are_normalised() {
        assert_eq!(normalize("./a//b/../c/").as_deref(), Some("a/c"));
        assert_eq!(
            normalize("/manifest.json").as_deref(),
            Some("manifest.json")
        );
        assert_eq!(normalize("../x"), None);
    }
}
