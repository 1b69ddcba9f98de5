//! `oci:DIR[:TAG]`: an OCI image layout (image-spec v1.1, `image-layout.md`), as
//! skopeo, umoci, buildkit (`type=oci,tar=false`) and `podman save --format
//! oci-dir` write it. The manifest index.json names is copied byte for byte.

use super::{BlobLocation, LocalImage, digest_of, error, split_digest};
use crate::oci::error::MirrorError;
use crate::oci::manifest;
use crate::oci::reference::check_tag;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The annotation of index.json's entries that carries their tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The largest manifest read (registries refuse bigger ones: distribution's
/// limit is 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciLayoutFile {
    image_layout_version: String,
}

#[derive(Deserialize)]
struct IndexFile {
    #[serde(default)]
    manifests: Vec<Entry>,
}

/// A descriptor of index.json.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

impl Entry {
    fn ref_name(&self) -> Option<&str> {
        self.annotations.get(REF_NAME).map(String::as_str)
    }
}

/// An OCI image layout, its root manifest read and checked.
#[derive(Debug)]
pub struct Layout {
    name: String,
    dir: PathBuf,
    tag: Option<String>,
    root: Vec<u8>,
    media_type: String,
}

/// `DIR[:TAG]` split: the last `:` starts TAG only when what follows is a valid
/// tag, so `a:b/c` is a DIR and `out:v1/` too.
pub fn split_tag(text: &str) -> (&str, Option<&str>) {
    match text.rsplit_once(':') {
        Some((dir, tag)) if !dir.is_empty() && check_tag(tag).is_ok() => (dir, Some(tag)),
        _ => (text, None),
    }
}

/// The tag a ref name gives a destination: the name itself when it is a tag
/// (what skopeo and buildkit write), else the tag of a full reference
/// (`registry.example/app:v1`), else none.
fn tag_of_ref_name(name: &str) -> Option<String> {
    if check_tag(name).is_ok() {
        return Some(name.to_string());
    }
    let name = name.split_once('@').map_or(name, |(n, _)| n);
    match name.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') && check_tag(tag).is_ok() => Some(tag.to_string()),
        _ => None,
    }
}

impl Layout {
    /// Opens `rest` (`DIR[:TAG]`) of `spec` (`oci:DIR[:TAG]`).
    pub fn open(spec: &str, rest: &str) -> Result<Self, MirrorError> {
        let fail = |reason: String| error(spec, reason);
        let (dir, tag) = split_tag(rest);
        if dir.is_empty() {
            return Err(fail("no directory: write oci:DIR[:TAG]".into()));
        }
        let dir = PathBuf::from(dir);
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(fail(format!(
                    "{} is not a directory (an OCI image layout is one)",
                    dir.display()
                )));
            }
            Err(e) => return Err(fail(format!("cannot open {}: {e}", dir.display()))),
        }
        let layout_file = dir.join("oci-layout");
        let text = std::fs::read(&layout_file).map_err(|e| {
            fail(format!(
                "{} is not an OCI image layout: cannot read {}: {e}",
                dir.display(),
                layout_file.display()
            ))
        })?;
        let version = serde_json::from_slice::<OciLayoutFile>(&text)
            .map_err(|e| fail(format!("{}: {e}", layout_file.display())))?
            .image_layout_version;
        if version != "1.0.0" {
            return Err(fail(format!(
                "{}: imageLayoutVersion {version:?} is not supported (1.0.0 is)",
                layout_file.display()
            )));
        }
        let index_file = dir.join("index.json");
        let text = std::fs::read(&index_file)
            .map_err(|e| fail(format!("cannot read {}: {e}", index_file.display())))?;
        let index: IndexFile = serde_json::from_slice(&text)
            .map_err(|e| fail(format!("{}: {e}", index_file.display())))?;
        let entry = select(&index.manifests, tag)
            .map_err(|reason| fail(format!("{}: {reason}", index_file.display())))?;
        let mut layout = Layout {
            name: spec.to_string(),
            dir,
            tag: match tag {
                Some(t) => Some(t.to_string()),
                None => entry.ref_name().and_then(tag_of_ref_name),
            },
            root: Vec::new(),
            media_type: String::new(),
        };
        layout.root = layout.read_manifest(&entry.digest, Some(entry.size))?;
        layout.media_type = if entry.media_type.is_empty() {
            // Required by the spec, but the manifest may name its own.
            manifest::parse(&layout.root, None)
                .map_err(|reason| fail(format!("manifest {}: {reason}", entry.digest)))?
                .media_type()
                .to_string()
        } else if manifest::is_manifest_type(&entry.media_type) {
            entry.media_type.clone()
        } else {
            return Err(fail(format!(
                "{}: entry {} has media type {:?}, not an image manifest or index",
                index_file.display(),
                entry.digest,
                entry.media_type
            )));
        };
        Ok(layout)
    }

    fn fail(&self, reason: String) -> MirrorError {
        error(&self.name, reason)
    }

    /// `blobs/<alg>/<hex>` of a digest checked to be one.
    fn blob_path(&self, digest: &str) -> Result<PathBuf, MirrorError> {
        let (algorithm, hex) = split_digest(digest).map_err(|r| self.fail(r))?;
        Ok(self.dir.join("blobs").join(algorithm).join(hex))
    }

    /// The regular file of a blob, and its size; a missing one is named.
    fn blob_file(&self, digest: &str) -> Result<(PathBuf, u64), MirrorError> {
        let path = self.blob_path(digest)?;
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok((path, m.len())),
            Ok(_) => Err(self.fail(format!(
                "blob {digest}: {} is not a regular file",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(self.fail(format!(
                "blob {digest} is missing: {} does not exist",
                path.display()
            ))),
            Err(e) => Err(self.fail(format!("blob {digest}: {}: {e}", path.display()))),
        }
    }

    /// A manifest's bytes, checked against its digest (and size, when known).
    fn read_manifest(&self, digest: &str, size: Option<u64>) -> Result<Vec<u8>, MirrorError> {
        let (path, len) = self.blob_file(digest)?;
        if len > MAX_MANIFEST {
            return Err(self.fail(format!(
                "manifest {digest} has {len} bytes: too large for a manifest (at most {MAX_MANIFEST})"
            )));
        }
        if let Some(size) = size.filter(|s| *s != len) {
            return Err(self.fail(format!(
                "manifest {digest}: index.json says {size} bytes, {} has {len}",
                path.display()
            )));
        }
        let bytes = std::fs::read(&path)
            .map_err(|e| self.fail(format!("cannot read {}: {e}", path.display())))?;
        let (algorithm, _) = split_digest(digest).map_err(|r| self.fail(r))?;
        let actual = digest_of(algorithm, &bytes);
        if actual != digest {
            return Err(MirrorError::DigestMismatch {
                reference: format!("{}@{digest} ({})", self.name, path.display()),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }
}

/// The entry of index.json that `tag` names; without a tag, the only one.
fn select<'a>(entries: &'a [Entry], tag: Option<&str>) -> Result<&'a Entry, String> {
    let available = || {
        let names: Vec<String> = entries
            .iter()
            .map(|e| match e.ref_name() {
                Some(n) => n.to_string(),
                None => format!("(untagged {})", e.digest),
            })
            .collect();
        if names.is_empty() {
            "it lists no manifest".to_string()
        } else {
            format!("tags available: {}", names.join(", "))
        }
    };
    match tag {
        Some(tag) => {
            let found: Vec<&Entry> = entries
                .iter()
                .filter(|e| e.ref_name() == Some(tag))
                .collect();
            match found[..] {
                [one] => Ok(one),
                [] => Err(format!(
                    "no manifest tagged {tag:?} ({REF_NAME}); {}",
                    available()
                )),
                _ if found.iter().all(|e| e.digest == found[0].digest) => Ok(found[0]),
                _ => Err(format!(
                    "{} different manifests are tagged {tag:?}",
                    found.len()
                )),
            }
        }
        None => match entries {
            [one] => Ok(one),
            [] => Err("it lists no manifest".into()),
            _ => Err(format!(
                "{} manifests, so name one as oci:DIR:TAG; {}",
                entries.len(),
                available()
            )),
        },
    }
}

impl LocalImage for Layout {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn tag(&self) -> Option<String> {
        self.tag.clone()
    }

    fn root(&self) -> Result<(Vec<u8>, String), MirrorError> {
        Ok((self.root.clone(), self.media_type.clone()))
    }

    fn manifest(&self, digest: &str) -> Result<Vec<u8>, MirrorError> {
        self.read_manifest(digest, None)
    }

    fn blob(&self, digest: &str) -> Result<BlobLocation, MirrorError> {
        let (path, size) = self.blob_file(digest)?;
        Ok(BlobLocation {
            path,
            offset: 0,
            size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::manifest::{OCI_INDEX, OCI_MANIFEST};
    use serde_json::{Value, json};

    /// A layout being written in a temporary directory.
    struct Dir {
        _tmp: tempfile::TempDir,
        path: PathBuf,
        entries: Vec<Value>,
    }

    impl Dir {
        fn new(name: &str) -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join(name);
            std::fs::create_dir_all(path.join("blobs/sha256")).unwrap();
            std::fs::write(path.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
            Dir {
                _tmp: tmp,
                path,
                entries: Vec::new(),
            }
        }

        /// Writes a blob; its descriptor.
        fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
            let digest = digest_of("sha256", bytes);
            let hex = digest.strip_prefix("sha256:").unwrap();
            std::fs::write(self.path.join("blobs/sha256").join(hex), bytes).unwrap();
            json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
        }

        /// An image of one layer whose bytes are `content`; its descriptor.
        fn image(&self, content: &str) -> Value {
            let config = self.blob(
                "application/vnd.oci.image.config.v1+json",
                format!(r#"{{"architecture":"amd64","os":"linux","x":"{content}"}}"#).as_bytes(),
            );
            let layer = self.blob("application/vnd.oci.image.layer.v1.tar", content.as_bytes());
            let manifest = serde_json::to_vec_pretty(&json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": config, "layers": [layer],
            }))
            .unwrap();
            self.blob(OCI_MANIFEST, &manifest)
        }

        fn add(&mut self, mut desc: Value, tag: Option<&str>) -> String {
            if let Some(t) = tag {
                desc["annotations"] = json!({ REF_NAME: t });
            }
            self.entries.push(desc.clone());
            self.write_index();
            desc["digest"].as_str().unwrap().to_string()
        }

        fn write_index(&self) {
            let index = json!({"schemaVersion": 2, "manifests": self.entries});
            std::fs::write(self.path.join("index.json"), index.to_string()).unwrap();
        }

        fn spec(&self, tag: Option<&str>) -> String {
            match tag {
                Some(t) => format!("oci:{}:{t}", self.path.display()),
                None => format!("oci:{}", self.path.display()),
            }
        }
    }

    fn open(spec: &str) -> Result<Layout, MirrorError> {
        Layout::open(spec, spec.strip_prefix("oci:").unwrap())
    }

    fn err(spec: &str) -> String {
        open(spec).unwrap_err().to_string()
    }

    #[test]
    fn the_last_colon_starts_a_tag_only_before_a_valid_tag() {
        assert_eq!(split_tag("build/layout:v1"), ("build/layout", Some("v1")));
        assert_eq!(split_tag("build/layout"), ("build/layout", None));
        assert_eq!(
            split_tag("a:b/layout:v1.2-x"),
            ("a:b/layout", Some("v1.2-x"))
        );
        assert_eq!(split_tag("a:b/layout"), ("a:b/layout", None));
        assert_eq!(split_tag("out:v1/"), ("out:v1/", None));
        assert_eq!(split_tag("out:.hidden"), ("out:.hidden", None));
        assert_eq!(split_tag(":v1"), (":v1", None));
        assert_eq!(split_tag("dir:"), ("dir:", None));
        let long = "t".repeat(129);
        assert_eq!(split_tag(&format!("d:{long}")).1, None);
    }

    #[test]
    fn ref_names_give_tags() {
        assert_eq!(tag_of_ref_name("v1").as_deref(), Some("v1"));
        assert_eq!(
            tag_of_ref_name("registry.example:5000/app:1.2").as_deref(),
            Some("1.2")
        );
        assert_eq!(tag_of_ref_name("registry.example:5000/app"), None);
        assert_eq!(tag_of_ref_name("not a tag"), None);
    }

    #[test]
    fn a_tag_picks_its_manifest_among_several() {
        let mut d = Dir::new("layout");
        let one = d.image("one");
        let two = d.image("two");
        let d1 = d.add(one, Some("v1"));
        let d2 = d.add(two, Some("v2"));
        for (tag, digest) in [("v1", &d1), ("v2", &d2)] {
            let l = open(&d.spec(Some(tag))).unwrap();
            let (bytes, media_type) = l.root().unwrap();
            assert_eq!(&digest_of("sha256", &bytes), digest);
            assert_eq!(media_type, OCI_MANIFEST);
            assert_eq!(l.tag().as_deref(), Some(tag));
            assert_eq!(l.name(), d.spec(Some(tag)));
        }
        let e = err(&d.spec(Some("nope")));
        assert!(e.contains(r#"no manifest tagged "nope""#), "{e}");
        assert!(e.contains("tags available: v1, v2"), "{e}");
        let e = err(&d.spec(None));
        assert!(e.contains("2 manifests"), "{e}");
        assert!(e.contains("tags available: v1, v2"), "{e}");
    }

    #[test]
    fn without_a_tag_the_only_manifest_with_its_ref_name() {
        let mut d = Dir::new("layout");
        let image = d.image("one");
        let digest = d.add(image, Some("v3"));
        let l = open(&d.spec(None)).unwrap();
        assert_eq!(digest_of("sha256", &l.root().unwrap().0), digest);
        assert_eq!(l.tag().as_deref(), Some("v3"));
        // No ref name: no tag.
        d.entries[0]["annotations"] = json!({});
        d.write_index();
        assert_eq!(open(&d.spec(None)).unwrap().tag(), None);
    }

    #[test]
    fn blobs_are_files_by_digest_and_a_missing_one_is_named() {
        let mut d = Dir::new("layout");
        let image = d.image("hello");
        d.add(image, Some("v1"));
        let l = open(&d.spec(Some("v1"))).unwrap();
        let m: Value = serde_json::from_slice(&l.root().unwrap().0).unwrap();
        let layer = m["layers"][0]["digest"].as_str().unwrap();
        let at = l.blob(layer).unwrap();
        assert_eq!((at.offset, at.size), (0, 5));
        assert_eq!(std::fs::read(&at.path).unwrap(), b"hello");
        std::fs::remove_file(&at.path).unwrap();
        let e = l.blob(layer).unwrap_err().to_string();
        assert!(e.contains(&format!("blob {layer} is missing")), "{e}");
        assert!(e.contains(&at.path.display().to_string()), "{e}");
        // The root manifest missing: when the layout is opened.
        let root = d.entries[0]["digest"].as_str().unwrap().to_string();
        let hex = root.strip_prefix("sha256:").unwrap();
        std::fs::remove_file(d.path.join("blobs/sha256").join(hex)).unwrap();
        let e = err(&d.spec(Some("v1")));
        assert!(e.contains(&format!("blob {root} is missing")), "{e}");
    }

    #[test]
    fn a_bad_digest_in_index_json_reads_no_other_file() {
        let mut d = Dir::new("layout");
        std::fs::write(d.path.join("secret"), b"{}").unwrap();
        let bad = format!("sha256:../../{}", "a".repeat(58));
        d.add(
            json!({"mediaType": OCI_MANIFEST, "digest": "sha256:../../secret", "size": 2}),
            Some("v1"),
        );
        d.add(
            json!({"mediaType": OCI_MANIFEST, "digest": bad, "size": 2}),
            Some("v2"),
        );
        let e = err(&d.spec(Some("v1")));
        assert!(e.contains("invalid digest \"sha256:../../secret\""), "{e}");
        let e = err(&d.spec(Some("v2")));
        assert!(e.contains("invalid digest"), "{e}");
        // Digests of manifests and blobs are checked the same way.
        d.entries.clear();
        let image = d.image("x");
        d.add(image, Some("v1"));
        let l = open(&d.spec(Some("v1"))).unwrap();
        assert!(l.blob("sha256:../oci-layout").is_err());
        assert!(l.manifest("sha256:../../secret").is_err());
    }

    #[test]
    fn a_manifest_that_is_not_its_digest_is_refused() {
        let mut d = Dir::new("layout");
        let image = d.image("x");
        let digest = d.add(image, Some("v1"));
        let hex = digest.strip_prefix("sha256:").unwrap();
        let path = d.path.join("blobs/sha256").join(hex);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] = b' ';
        std::fs::write(&path, bytes).unwrap();
        match open(&d.spec(Some("v1"))) {
            Err(MirrorError::DigestMismatch { expected, .. }) => assert_eq!(expected, digest),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_directory_with_a_colon() {
        let mut d = Dir::new("lay:out");
        let image = d.image("x");
        d.add(image, Some("v1"));
        let l = open(&d.spec(Some("v1"))).unwrap();
        assert_eq!(l.dir, d.path);
        // `:out` alone would be a tag: a trailing slash keeps it in DIR.
        let e = err(&d.spec(None));
        assert!(e.contains("cannot open"), "{e}");
        assert!(
            e.ends_with("lay: No such file or directory (os error 2)"),
            "{e}"
        );
        let l = open(&format!("oci:{}/", d.path.display())).unwrap();
        assert_eq!(l.tag().as_deref(), Some("v1"));
    }

    #[test]
    fn an_index_as_the_root_and_its_children() {
        let mut d = Dir::new("layout");
        let a = d.image("a");
        let b = d.image("b");
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [a, b],
        }))
        .unwrap();
        let index = d.blob(OCI_INDEX, &index);
        d.add(index, Some("multi"));
        let l = open(&d.spec(Some("multi"))).unwrap();
        assert_eq!(l.root().unwrap().1, OCI_INDEX);
        let child = a["digest"].as_str().unwrap();
        assert_eq!(digest_of("sha256", &l.manifest(child).unwrap()), child);
    }

    #[test]
    fn not_a_layout() {
        let d = Dir::new("layout");
        let e = err(&d.spec(None));
        assert!(e.contains("index.json"), "{e}");
        std::fs::remove_file(d.path.join("oci-layout")).unwrap();
        let e = err(&d.spec(None));
        assert!(e.contains("is not an OCI image layout"), "{e}");
        std::fs::write(
            d.path.join("oci-layout"),
            r#"{"imageLayoutVersion":"2.0.0"}"#,
        )
        .unwrap();
        let e = err(&d.spec(None));
        assert!(e.contains("\"2.0.0\" is not supported"), "{e}");
        let e = err("oci:");
        assert!(e.contains("no directory"), "{e}");
        let e = err("oci:/nonexistent/layout:v1");
        assert!(
            e.contains("cannot open /nonexistent/layout: No such file"),
            "{e}"
        );
    }

    #[test]
    fn an_entry_that_is_no_manifest_is_refused() {
        let mut d = Dir::new("layout");
        let blob = d.blob("application/octet-stream", b"{}");
        d.add(blob, Some("v1"));
        let e = err(&d.spec(Some("v1")));
        assert!(e.contains("not an image manifest or index"), "{e}");
    }
}
