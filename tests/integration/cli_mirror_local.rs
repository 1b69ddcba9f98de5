//! `ecr-operator mirror` from images on disk (`oci:DIR[:TAG]`,
//! `docker-archive:FILE[:REF]`) into BED_REGISTRY2: both made by skopeo from
//! BED_IMAGE, as a CI pipeline would have them after its build, then read back
//! from the registry by skopeo and unpacked by umoci.

use crate::cli_mirror::{
    Reg, authfile, mirror, mirror_cmd, num, reg1, reg2, sha256, skopeo, skopeo_digest, skopeo_raw,
};
use crate::support::bed::{Bed, TestNames};
use serde_json::Value;
use std::path::Path;

/// `skopeo copy` of BED_IMAGE to `dest` (`oci:DIR:TAG`, `docker-archive:FILE…`).
fn save_bed_image(dest: &str) {
    let bed = Bed::get();
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--src-creds",
        &reg1().creds(),
        &format!("docker://{}", bed.var("BED_IMAGE")),
        dest,
    ]);
}

/// The config digest of a manifest, and the diff_ids of that config as the
/// registry serves them.
fn config_and_diff_ids(image: &str, reg: &Reg) -> (String, Vec<String>) {
    let manifest: Value = serde_json::from_slice(&skopeo_raw(image, reg)).unwrap();
    let config: Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &reg.creds(),
        &format!("docker://{image}"),
    ]))
    .unwrap();
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .expect("rootfs.diff_ids")
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    (
        manifest["config"]["digest"].as_str().unwrap().to_string(),
        diff_ids,
    )
}

/// Pulls `image` from `reg` with skopeo into an OCI layout and unpacks it with
/// umoci: the copy is a usable image, `/hello.txt` and busybox in it.
fn pull_and_unpack(image: &str, reg: &Reg) {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("back");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--src-creds",
        &reg.creds(),
        &format!("docker://{image}"),
        &format!("oci:{}:back", layout.display()),
    ]);
    let bundle = tmp.path().join("bundle");
    let out = std::process::Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:back", layout.display()))
        .arg(&bundle)
        .output()
        .expect("run umoci");
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rootfs = bundle.join("rootfs");
    assert!(
        rootfs.join("hello.txt").is_file(),
        "no /hello.txt in {image}"
    );
    assert!(
        rootfs.join("bin/busybox").is_file(),
        "no /bin/busybox in {image}"
    );
}

/// The manifest digest index.json of `dir` tags `tag`.
fn layout_digest(dir: &Path, tag: &str) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn an_oci_layout_is_copied_byte_for_byte() {
    let bed = Bed::get();
    let (r1, r2) = (reg1(), reg2());
    let names = TestNames::new("mirror");
    let tmp = tempfile::tempdir().unwrap();
    // A colon in DIR: only a valid tag after the last one is a TAG. (skopeo
    // takes the first colon as the end of DIR: it writes elsewhere first.)
    let written = tmp.path().join("layout");
    save_bed_image(&format!("oci:{}:v1", written.display()));
    let dir = tmp.path().join("build:7");
    std::fs::rename(&written, &dir).unwrap();
    let want = layout_digest(&dir, "v1");
    let manifest = std::fs::read(dir.join("blobs/sha256").join(&want[7..])).unwrap();
    assert_eq!(sha256(&manifest), want);

    let src = format!("oci:{}:v1", dir.display());
    let repo = format!("{}/{}/hello-oci", r2.host, names.id);
    let dst = format!("{repo}:v1");
    let auth = authfile(&[&r2]);
    let run = mirror_cmd(
        &[&src, &dst, "--dest-plain-http"],
        &[auth.path()],
        false,
        &[],
    );
    assert!(run.ok(), "{}", run.describe());
    let s = run.summary();
    assert_eq!(s["digest"], want, "{s:?}");
    assert_eq!(skopeo_digest(&dst, &r2), want, "the registry holds it");
    assert_eq!(skopeo_raw(&dst, &r2), manifest, "byte for byte");
    assert_eq!(
        want,
        skopeo_digest(bed.var("BED_IMAGE"), &r1),
        "the source image's digest"
    );
    assert_eq!(
        config_and_diff_ids(&dst, &r2),
        config_and_diff_ids(bed.var("BED_IMAGE"), &r1)
    );
    assert!(num(&s, "blobs_copied") >= 2, "{s:?}");
    assert_eq!(s["up_to_date"], "false");
    pull_and_unpack(&dst, &r2);

    // Again, to the repository without a tag: it takes the layout's, v1, and
    // everything is there.
    let again = mirror_cmd(
        &[&src, &repo, "--dest-plain-http"],
        &[auth.path()],
        false,
        &[],
    );
    assert!(again.ok(), "{}", again.describe());
    let s2 = again.summary();
    assert_eq!(s2["up_to_date"], "true", "{s2:?}");
    assert_eq!(s2["digest"], want);
    assert_eq!(num(&s2, "bytes_uploaded"), 0);
    assert!(
        again.stdout.contains(&format!(" -> {dst} ")),
        "{}",
        again.describe()
    );

    // A tag the layout does not have: the ones it has are named.
    let nope = format!("oci:{}:nope", dir.display());
    let run = mirror(&nope, &dst, &[auth.path()]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains(r#"no manifest tagged "nope""#)
            && run.stderr.contains("tags available: v1"),
        "{}",
        run.describe()
    );
    let missing = tmp.path().join("no-such-layout");
    let run = mirror(
        &format!("oci:{}:v1", missing.display()),
        &dst,
        &[auth.path()],
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr
            .contains(&format!("cannot open {}: No such file", missing.display())),
        "{}",
        run.describe()
    );
}

#[tokio::test]
async fn a_docker_archive_becomes_a_docker_manifest() {
    let bed = Bed::get();
    let (r1, r2) = (reg1(), reg2());
    let names = TestNames::new("mirror");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("image.tar");
    save_bed_image(&format!("docker-archive:{}:bed/hello:v1", file.display()));
    let (src_config, src_diff_ids) = config_and_diff_ids(bed.var("BED_IMAGE"), &r1);

    // No tag in the destination: the archive's one RepoTag gives v1.
    let repo = format!("{}/{}/hello-archive", r2.host, names.id);
    let dst = format!("{repo}:v1");
    let auth = authfile(&[&r2]);
    let src = format!("docker-archive:{}", file.display());
    let run = mirror(&src, &repo, &[auth.path()]);
    assert!(run.ok(), "{}", run.describe());
    let s = run.summary();
    assert!(
        run.stdout.contains(&format!(" -> {dst} ")),
        "{}",
        run.describe()
    );
    assert_eq!(
        skopeo_digest(&dst, &r2),
        s["digest"],
        "the registry holds it"
    );
    let raw = skopeo_raw(&dst, &r2);
    assert_eq!(sha256(&raw), s["digest"]);
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        manifest["mediaType"], "application/vnd.docker.distribution.manifest.v2+json",
        "{manifest}"
    );
    // The layers as the archive holds them (uncompressed): their digests are the
    // diff_ids.
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(
                l["mediaType"], "application/vnd.docker.image.rootfs.diff.tar",
                "{manifest}"
            );
            l["digest"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(layers, src_diff_ids);
    assert_eq!(
        config_and_diff_ids(&dst, &r2),
        (src_config, src_diff_ids),
        "the source image's config"
    );
    pull_and_unpack(&dst, &r2);

    // The same manifest again (serialised the same way), with REF: up to date.
    let with_ref = format!("docker-archive:{}:bed/hello:v1", file.display());
    let again = mirror(&with_ref, &dst, &[auth.path()]);
    assert!(again.ok(), "{}", again.describe());
    let s2 = again.summary();
    assert_eq!(s2["digest"], s["digest"]);
    assert_eq!(s2["up_to_date"], "true", "{s2:?}");
    assert_eq!(num(&s2, "bytes_uploaded"), 0);

    let wrong_ref = format!("docker-archive:{}:bed/hello:v2", file.display());
    let run = mirror(&wrong_ref, &dst, &[auth.path()]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains("docker.io/bed/hello:v1"),
        "names what the archive has: {}",
        run.describe()
    );
    let missing = tmp.path().join("no-such.tar");
    let run = mirror(
        &format!("docker-archive:{}", missing.display()),
        &dst,
        &[auth.path()],
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr
            .contains(&format!("cannot open {}: No such file", missing.display())),
        "{}",
        run.describe()
    );
}

/// An archive without RepoTags gives no tag: a destination without one gets the
/// copy by digest only.
#[tokio::test]
async fn an_untagged_archive_is_pushed_by_digest() {
    let r2 = reg2();
    let names = TestNames::new("mirror");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("untagged.tar");
    save_bed_image(&format!("docker-archive:{}", file.display()));
    let repo = format!("{}/{}/untagged", r2.host, names.id);
    let auth = authfile(&[&r2]);
    let run = mirror(
        &format!("docker-archive:{}", file.display()),
        &repo,
        &[auth.path()],
    );
    assert!(run.ok(), "{}", run.describe());
    let s = run.summary();
    let by_digest = format!("{repo}@{}", s["digest"]);
    assert!(
        run.stdout.contains(&format!(" -> {by_digest} ")),
        "{}",
        run.describe()
    );
    // (`skopeo inspect` without --raw lists the tags: there are none.)
    assert_eq!(sha256(&skopeo_raw(&by_digest, &r2)), s["digest"]);
}

/// A Docker ≥ 25 archive (containerd image store): `blobs/sha256/…` members, an
/// OCI layout beside manifest.json, gzip layers. Made here from an OCI layout of
/// BED_IMAGE, whose layer is gzip-compressed.
#[tokio::test]
async fn a_docker_25_archive_with_gzip_layers() {
    let bed = Bed::get();
    let (r1, r2) = (reg1(), reg2());
    let names = TestNames::new("mirror");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    save_bed_image(&format!("oci:{}:v1", dir.display()));
    let digest = layout_digest(&dir, "v1");
    let oci: Value = serde_json::from_slice(
        &std::fs::read(dir.join("blobs/sha256").join(&digest[7..])).unwrap(),
    )
    .unwrap();
    let member = |d: &Value| format!("blobs/sha256/{}", &d["digest"].as_str().unwrap()[7..]);
    let layers: Vec<String> = oci["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(member)
        .collect();
    let file = tmp.path().join("d25.tar");
    let mut tar = tar::Builder::new(std::fs::File::create(&file).unwrap());
    tar.append_dir_all(".", &dir).unwrap();
    let manifest_json = serde_json::to_vec(&serde_json::json!([{
        "Config": member(&oci["config"]), "RepoTags": ["app:gz"], "Layers": layers,
    }]))
    .unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest_json.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "manifest.json", &manifest_json[..])
        .unwrap();
    tar.finish().unwrap();
    drop(tar);

    let repo = format!("{}/{}/hello-gz", r2.host, names.id);
    let auth = authfile(&[&r2]);
    let run = mirror(
        &format!("docker-archive:{}:app:gz", file.display()),
        &repo,
        &[auth.path()],
    );
    assert!(run.ok(), "{}", run.describe());
    let dst = format!("{repo}:gz");
    let raw = skopeo_raw(&dst, &r2);
    assert_eq!(sha256(&raw), run.summary()["digest"]);
    let copied: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(copied["config"]["digest"], oci["config"]["digest"]);
    for (c, o) in copied["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(oci["layers"].as_array().unwrap())
    {
        assert_eq!(
            c["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        assert_eq!((&c["digest"], &c["size"]), (&o["digest"], &o["size"]));
    }
    assert_eq!(
        config_and_diff_ids(&dst, &r2),
        config_and_diff_ids(bed.var("BED_IMAGE"), &r1)
    );
    pull_and_unpack(&dst, &r2);
}
