//! Registry credentials from Docker config files: `--authfile` (repeatable, the
//! first file with an entry for a registry wins), else `$DOCKER_CONFIG/config.json`
//! or `~/.docker/config.json`. Anonymous where no entry matches.
//!
//! Keys are matched the way the `docker` CLI and podman write them: a bare host
//! (`registry.example:5000`), a URL (`https://index.docker.io/v1/`), or, podman's
//! form, a host with a repository path (`quay.io/org`), which only applies to that
//! namespace and wins over the bare host. Docker Hub's aliases are one host.
//! Credential helpers (`credsStore`, `credHelpers`) and identity tokens are not
//! supported: such an entry is skipped with a warning.

use super::error::MirrorError;
use crate::aws::auth_token::Password;
use crate::aws::docker_config::{DockerAuth, DockerConfig};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::path::{Path, PathBuf};

/// Hosts that all mean Docker Hub.
const DOCKER_HUB_ALIASES: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// A username and password for one registry. The password never leaves through
/// `Debug` or `Display`.
#[derive(Clone, Debug, PartialEq)]
pub struct Credentials {
    pub username: String,
    pub password: Password,
    /// The file the entry came from.
    pub file: PathBuf,
}

/// The credential files, in the order they are searched.
#[derive(Debug, Default)]
pub struct AuthFiles {
    files: Vec<(PathBuf, DockerConfig)>,
}

impl AuthFiles {
    /// Reads `paths`; a file that is missing or not a Docker config is an error.
    /// With no paths, the default file if there is one (else no credentials).
    pub fn load(paths: &[PathBuf]) -> Result<Self, MirrorError> {
        let paths = if paths.is_empty() {
            default_path().filter(|p| p.is_file()).into_iter().collect()
        } else {
            paths.to_vec()
        };
        let mut files = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| MirrorError::Authfile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let config: DockerConfig =
                serde_json::from_str(&text).map_err(|e| MirrorError::Authfile {
                    path: path.clone(),
                    // The error's position, never the file's contents.
                    reason: format!(
                        "not a Docker config file (JSON with \"auths\"): line {} column {}",
                        e.line(),
                        e.column()
                    ),
                })?;
            files.push((path, config));
        }
        Ok(Self { files })
    }

    /// For tests and callers that already hold the configs.
    pub fn from_configs(files: Vec<(PathBuf, DockerConfig)>) -> Self {
        Self { files }
    }

    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(p, _)| p.as_path())
    }

    /// The credentials for `repository` on `registry` (as written in the image
    /// reference), or None for anonymous access.
    pub fn lookup(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<Credentials>, MirrorError> {
        let host = normalize_host(registry);
        for (path, config) in &self.files {
            let Some((key, entry)) = best_entry(config, &host, repository) else {
                continue;
            };
            match decode(entry) {
                Decoded::Credentials(username, password) => {
                    return Ok(Some(Credentials {
                        username,
                        password,
                        file: path.clone(),
                    }));
                }
                Decoded::Unsupported(what) => tracing::warn!(
                    file = %path.display(),
                    key,
                    "the entry has {what}, which mirror does not support; looking further"
                ),
                Decoded::Invalid(reason) => {
                    return Err(MirrorError::Authfile {
                        path: path.clone(),
                        reason: format!("entry {key:?}: {reason}"),
                    });
                }
            }
        }
        Ok(None)
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// The host part of a config key or reference registry: no scheme, no path,
/// lower case, Docker Hub's aliases folded into `docker.io`.
pub fn normalize_host(key: &str) -> String {
    split_key(key).0
}

/// (host, repository path scope) of a key. A URL's path (`/v1/`) is not a scope.
fn split_key(key: &str) -> (String, Option<String>) {
    let (rest, is_url) = match key.split_once("://") {
        Some((_, rest)) => (rest, true),
        None => (key, false),
    };
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h, p.trim_matches('/')),
        None => (rest, ""),
    };
    let mut host = host.to_ascii_lowercase();
    if DOCKER_HUB_ALIASES.contains(&host.as_str()) {
        host = "docker.io".into();
    }
    let scope = (!is_url && !path.is_empty()).then(|| path.to_string());
    (host, scope)
}

/// The entry of `config` for `host`: the longest repository scope that contains
/// `repository`, else a bare-host (or URL) key.
fn best_entry<'a>(
    config: &'a DockerConfig,
    host: &str,
    repository: &str,
) -> Option<(&'a str, &'a DockerAuth)> {
    let mut best: Option<(usize, &str, &DockerAuth)> = None;
    for (key, entry) in &config.auths {
        let (key_host, scope) = split_key(key);
        if key_host != host {
            continue;
        }
        let rank = match scope {
            None => 0,
            Some(s) if repository == s || repository.starts_with(&format!("{s}/")) => s.len() + 1,
            // Docker Hub's official images: `docker.io/alpine` means `library/alpine`.
            Some(s)
                if host == "docker.io"
                    && repository.strip_prefix("library/") == Some(s.as_str()) =>
            {
                s.len() + 1
            }
            Some(_) => continue,
        };
        if best.is_none_or(|(r, _, _)| rank > r) {
            best = Some((rank, key, entry));
        }
    }
    best.map(|(_, k, e)| (k, e))
}

enum Decoded {
    Credentials(String, Password),
    Unsupported(&'static str),
    Invalid(&'static str),
}

fn decode(entry: &DockerAuth) -> Decoded {
    if let (Some(u), Some(p)) = (&entry.username, &entry.password)
        && !u.is_empty()
        && !p.is_empty()
    {
        return Decoded::Credentials(u.clone(), Password::new(p.clone()));
    }
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let Ok(raw) = STANDARD.decode(auth.trim()) else {
            return Decoded::Invalid("\"auth\" is not valid base64");
        };
        let Ok(text) = String::from_utf8(raw) else {
            return Decoded::Invalid("\"auth\" is not UTF-8");
        };
        return match text.split_once(':') {
            Some((u, p)) if !u.is_empty() => {
                Decoded::Credentials(u.to_string(), Password::new(p.to_string()))
            }
            _ => Decoded::Invalid("\"auth\" is not base64 of username:password"),
        };
    }
    if entry.other.contains_key("identitytoken") {
        Decoded::Unsupported("only an identity token")
    } else {
        Decoded::Unsupported("no username and password (a credential helper's entry?)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(configs: &[(&str, serde_json::Value)]) -> AuthFiles {
        AuthFiles::from_configs(
            configs
                .iter()
                .map(|(p, v)| (PathBuf::from(p), serde_json::from_value(v.clone()).unwrap()))
                .collect(),
        )
    }

    fn auth(user: &str, pw: &str) -> serde_json::Value {
        serde_json::json!({"auth": STANDARD.encode(format!("{user}:{pw}"))})
    }

    fn user_of(f: &AuthFiles, registry: &str, repo: &str) -> Option<String> {
        f.lookup(registry, repo).unwrap().map(|c| c.username)
    }

    #[test]
    fn host_keys_match_with_or_without_scheme_and_path() {
        let f = files(&[(
            "a.json",
            serde_json::json!({"auths": {
                "https://Registry.Example:5000/v2/": auth("url", "p"),
                "123.dkr.ecr.us-east-1.amazonaws.com": auth("AWS", "tok"),
            }}),
        )]);
        assert_eq!(
            user_of(&f, "registry.example:5000", "x"),
            Some("url".into())
        );
        let c = f
            .lookup("123.dkr.ecr.us-east-1.amazonaws.com", "app")
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.expose()), ("AWS", "tok"));
        assert_eq!(c.file, PathBuf::from("a.json"));
        assert_eq!(user_of(&f, "registry.example", "x"), None);
        assert_eq!(user_of(&f, "other.example", "x"), None);
    }

    #[test]
    fn docker_hub_aliases_are_one_host() {
        for key in [
            "https://index.docker.io/v1/",
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
        ] {
            let f = files(&[("a", serde_json::json!({"auths": {key: auth("hub", "p")}}))]);
            assert_eq!(
                user_of(&f, "docker.io", "library/alpine"),
                Some("hub".into()),
                "{key}"
            );
            assert_eq!(
                user_of(&f, "index.docker.io", "library/alpine"),
                Some("hub".into())
            );
        }
    }

    #[test]
    fn the_first_file_with_an_entry_wins() {
        let f = files(&[
            (
                "dst",
                serde_json::json!({"auths": {"ecr.example": auth("dst", "1")}}),
            ),
            (
                "src",
                serde_json::json!({"auths": {"ecr.example": auth("src", "2"), "quay.io": auth("q", "3")}}),
            ),
        ]);
        assert_eq!(user_of(&f, "ecr.example", "a"), Some("dst".into()));
        assert_eq!(user_of(&f, "quay.io", "a"), Some("q".into()));
        assert_eq!(user_of(&f, "ghcr.io", "a"), None);
    }

    #[test]
    fn repository_scoped_keys_win_over_the_host() {
        let f = files(&[(
            "a",
            serde_json::json!({"auths": {
                "quay.io": auth("host", "p"),
                "quay.io/org": auth("org", "p"),
                "quay.io/org/app": auth("app", "p"),
                "docker.io/alpine": auth("official", "p"),
            }}),
        )]);
        assert_eq!(user_of(&f, "quay.io", "org/app"), Some("app".into()));
        assert_eq!(user_of(&f, "quay.io", "org/app2"), Some("org".into()));
        assert_eq!(user_of(&f, "quay.io", "organic/x"), Some("host".into()));
        assert_eq!(
            user_of(&f, "docker.io", "library/alpine"),
            Some("official".into())
        );
        assert_eq!(user_of(&f, "docker.io", "library/busybox"), None);
    }

    #[test]
    fn username_and_password_fields_or_auth() {
        let f = files(&[(
            "a",
            serde_json::json!({"auths": {
                "a.example": {"username": "u", "password": "pw:with:colons"},
                "b.example": auth("bu", "p:q"),
                "c.example": {"identitytoken": "tok"},
                "d.example": {},
            }}),
        )]);
        let a = f.lookup("a.example", "r").unwrap().unwrap();
        assert_eq!(a.password.expose(), "pw:with:colons");
        let b = f.lookup("b.example", "r").unwrap().unwrap();
        assert_eq!((b.username.as_str(), b.password.expose()), ("bu", "p:q"));
        assert!(f.lookup("c.example", "r").unwrap().is_none());
        assert!(f.lookup("d.example", "r").unwrap().is_none());
        assert!(!format!("{a:?}").contains("pw:with"));
    }

    #[test]
    fn a_broken_auth_field_is_an_error_naming_the_file_not_the_secret() {
        let f = files(&[(
            "/x/auth.json",
            serde_json::json!({"auths": {"a.example": {"auth": "!!!secret"}}}),
        )]);
        let e = f.lookup("a.example", "r").unwrap_err().to_string();
        assert!(e.contains("/x/auth.json") && e.contains("base64"), "{e}");
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn load_reports_missing_and_malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        let e = AuthFiles::load(std::slice::from_ref(&missing))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.json"), "{e}");
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\"auths\": [\"hunter2\"]}").unwrap();
        let e = AuthFiles::load(&[bad]).unwrap_err().to_string();
        assert!(e.contains("bad.json") && !e.contains("hunter2"), "{e}");
        let good = dir.path().join("good.json");
        std::fs::write(&good, r#"{"auths":{"h":{"auth":"dTpw"}},"credsStore":"x"}"#).unwrap();
        let f = AuthFiles::load(&[good]).unwrap();
        assert_eq!(user_of(&f, "h", "r"), Some("u".into()));
    }
}
