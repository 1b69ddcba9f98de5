//! Registry credentials, searched the way the `docker` CLI searches them, in the
//! files `mirror` is given (each side its own list: `--src-authfile`/
//! `--dest-authfile`, then the shared `--authfile`s; with none of them,
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`). The first file that
//! gives credentials for a registry wins; anonymous where none does.
//!
//! In one file, Docker's order: `credHelpers[host]`, else `credsStore`, else
//! `auths`. A credential helper is `docker-credential-<name>` on PATH, run as
//! `docker-credential-<name> get` with the server URL on stdin (the host as the
//! config key has it; Docker Hub's is `https://index.docker.io/v1/`); it answers
//! `{"ServerURL","Username","Secret"}`, or "credentials not found in native
//! keychain" (exit 1): then, unlike Docker, the file's `auths` entry for the host
//! still counts (what `token --write-docker-config` writes), else the next file.
//! Any other failure, and a helper missing from PATH, is an error. Each helper
//! runs at most once per server URL.
//!
//! `auths` keys are matched the way the `docker` CLI and podman write them: a bare
//! host (`registry.example:5000`), a URL (`https://index.docker.io/v1/`), or,
//! podman's form, a host with a repository path (`quay.io/org`), which only
//! applies to that namespace and wins over the bare host. Docker Hub's aliases are
//! one host. Identity tokens (an `identitytoken` entry, a helper's `<token>` user)
//! are not supported by the OCI client: they are skipped with a warning.
//!
//! Besides files, credentials can be held in memory ([`AuthFiles::with_login`],
//! e.g. `mirror`'s ECR login); they are searched first.

use super::error::MirrorError;
use crate::aws::auth_token::Password;
use crate::aws::docker_config::{DockerAuth, DockerConfig};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Hosts that all mean Docker Hub.
const DOCKER_HUB_ALIASES: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// The server URL Docker gives credential helpers for Docker Hub.
pub const DOCKER_HUB_SERVER_URL: &str = "https://index.docker.io/v1/";

/// A helper's answer when it has nothing for the server URL (docker-credential-helpers).
const HELPER_NOT_FOUND: &str = "credentials not found in native keychain";

/// A helper that has not answered after this long is an error, not a hang.
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// A username and password for one registry. The password never leaves through
/// `Debug` or `Display`.
#[derive(Clone, Debug, PartialEq)]
pub struct Credentials {
    pub username: String,
    pub password: Password,
    /// Where they came from, as messages name it: the authfile's path, or a
    /// description such as `credential helper docker-credential-pass (credsStore of
    /// /root/.docker/config.json)` or `ECR login (GetAuthorizationToken as …)`.
    pub file: PathBuf,
}

/// The credential files, in the order they are searched, and credentials held in
/// memory, searched before them.
#[derive(Debug, Default)]
pub struct AuthFiles {
    files: Vec<(PathBuf, DockerConfig)>,
    /// (normalised host, credentials), searched first.
    logins: Vec<(String, Credentials)>,
    /// Where credential helpers are looked up; None: the process's PATH.
    helper_path: Option<OsString>,
    /// Answers of helpers already run, by (helper, server URL).
    helper_answers: Mutex<HashMap<(String, String), HelperAnswer>>,
}

/// What a credential helper said about one server URL.
#[derive(Clone, Debug)]
enum HelperAnswer {
    Credentials(String, Password),
    NotFound,
    IdentityToken,
}

/// Which setting of a file named the helper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HelperKind {
    /// `credHelpers[host]`.
    PerHost,
    /// `credsStore`.
    Store,
}

impl HelperKind {
    fn key(self) -> &'static str {
        match self {
            HelperKind::PerHost => "credHelpers",
            HelperKind::Store => "credsStore",
        }
    }
}

impl AuthFiles {
    /// Reads `paths`; a file that is missing or not a Docker config is an error.
    /// With no paths, the default file if there is one (else no credentials).
    pub fn load(paths: &[PathBuf]) -> Result<Self, MirrorError> {
        if paths.is_empty() {
            let default: Vec<PathBuf> =
                default_path().filter(|p| p.is_file()).into_iter().collect();
            Self::read(&default)
        } else {
            Self::read(paths)
        }
    }

    /// Reads exactly `paths` (none: no files); a file that is missing or not a
    /// Docker config is an error.
    pub fn read(paths: &[PathBuf]) -> Result<Self, MirrorError> {
        let mut files = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|e| MirrorError::Authfile {
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
            files.push((path.clone(), config));
        }
        Ok(Self::from_configs(files))
    }

    /// For tests and callers that already hold the configs.
    pub fn from_configs(files: Vec<(PathBuf, DockerConfig)>) -> Self {
        Self {
            files,
            ..Self::default()
        }
    }

    /// Adds credentials for `host` (as references write it) that are searched
    /// before every file.
    pub fn with_login(mut self, host: &str, credentials: Credentials) -> Self {
        self.logins.push((normalize_host(host), credentials));
        self
    }

    /// Looks credential helpers up in `path` (a PATH value) instead of the
    /// process's PATH.
    pub fn with_helper_path(mut self, path: impl Into<OsString>) -> Self {
        self.helper_path = Some(path.into());
        self
    }

    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(p, _)| p.as_path())
    }

    /// The credentials for `repository` on `registry` (as written in the image
    /// reference), or None for anonymous access. May run credential helpers.
    pub fn lookup(
        &self,
        registry: &str,
        repository: &str,
    ) -> Result<Option<Credentials>, MirrorError> {
        let host = normalize_host(registry);
        if let Some((_, c)) = self.logins.iter().find(|(h, _)| *h == host) {
            return Ok(Some(c.clone()));
        }
        for (path, config) in &self.files {
            if let Some((name, key, kind)) = helper_of(config, &host) {
                let name = check_helper_name(&name, kind, path)?;
                let server_url = if host == "docker.io" {
                    DOCKER_HUB_SERVER_URL.to_string()
                } else {
                    key
                };
                let origin = format!(
                    "credential helper docker-credential-{name} ({} of {})",
                    kind.key(),
                    path.display()
                );
                match self.ask_helper(name, &server_url, kind, path)? {
                    HelperAnswer::Credentials(username, password) => {
                        return Ok(Some(Credentials {
                            username,
                            password,
                            file: PathBuf::from(origin),
                        }));
                    }
                    HelperAnswer::NotFound => tracing::debug!(
                        host,
                        "{origin} has no credentials for {server_url}; looking further"
                    ),
                    HelperAnswer::IdentityToken => tracing::warn!(
                        host,
                        "{origin} gave an identity token for {server_url}, which mirror does not support; looking further"
                    ),
                }
                // Unlike docker, the file's own `auths` entry still counts when the
                // helper has nothing: `token --write-docker-config` writes there.
            }
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

    /// The helper's answer for `server_url`, from the cache or by running it.
    fn ask_helper(
        &self,
        name: &str,
        server_url: &str,
        kind: HelperKind,
        file: &Path,
    ) -> Result<HelperAnswer, MirrorError> {
        let cache_key = (name.to_string(), server_url.to_string());
        if let Some(a) = self.answers().get(&cache_key) {
            return Ok(a.clone());
        }
        let path = self
            .helper_path
            .clone()
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_default();
        let answer = run_helper(name, server_url, &path).map_err(|e| MirrorError::Authfile {
            path: file.to_path_buf(),
            reason: match e {
                HelperError::NotOnPath => format!(
                    "credential helper docker-credential-{name} ({}) is not on PATH (needed for {server_url})",
                    kind.key()
                ),
                HelperError::Failed(why) => format!(
                    "credential helper docker-credential-{name} ({}) failed for {server_url}: {why}",
                    kind.key()
                ),
            },
        })?;
        self.answers().insert(cache_key, answer.clone());
        Ok(answer)
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), HelperAnswer>> {
        self.helper_answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The helper a file names for `host` (Docker's order: `credHelpers[host]`, then
/// `credsStore`), with the server URL to give it (the key as written) and which
/// setting named it.
fn helper_of(config: &DockerConfig, host: &str) -> Option<(String, String, HelperKind)> {
    if let Some(helpers) = config.other.get("credHelpers").and_then(|v| v.as_object()) {
        let found = helpers
            .iter()
            .filter(|(key, _)| split_key(key) == (host.to_string(), None))
            .find_map(|(key, name)| Some((name.as_str()?.to_string(), key.clone())));
        if let Some((name, key)) = found {
            return Some((name, key, HelperKind::PerHost));
        }
    }
    let store = config.other.get("credsStore").and_then(|v| v.as_str())?;
    (!store.is_empty()).then(|| (store.to_string(), host.to_string(), HelperKind::Store))
}

/// A helper's name becomes a file name on PATH: no `/`, not empty.
fn check_helper_name<'a>(
    name: &'a str,
    kind: HelperKind,
    file: &Path,
) -> Result<&'a str, MirrorError> {
    if name.is_empty() || name.contains('/') || name.contains('\0') {
        return Err(MirrorError::Authfile {
            path: file.to_path_buf(),
            reason: format!(
                "{} names {name:?}, which is not a credential helper name (docker-credential-NAME on PATH)",
                kind.key()
            ),
        });
    }
    Ok(name)
}

enum HelperError {
    NotOnPath,
    /// What went wrong, never the helper's credentials.
    Failed(String),
}

/// `docker-credential-<name>`'s executable file in the directories of `path`.
fn find_helper(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(format!("docker-credential-{name}")))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs `docker-credential-<name> get` with `server_url` on stdin, as Docker does.
fn run_helper(
    name: &str,
    server_url: &str,
    path: &std::ffi::OsStr,
) -> Result<HelperAnswer, HelperError> {
    let exe = find_helper(name, path).ok_or(HelperError::NotOnPath)?;
    let spawn = || {
        Command::new(&exe)
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    };
    // ETXTBSY: a file written a moment ago may still be open in a forked process.
    let mut child = (0..20)
        .map(|_| spawn())
        .find(|r| match r {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20));
                false
            }
            _ => true,
        })
        .unwrap_or_else(spawn)
        .map_err(|e| HelperError::Failed(format!("cannot run {}: {e}", exe.display())))?;
    let mut stdin = child.stdin.take().expect("piped");
    // A helper that exits without reading its input is not an error of ours.
    let _ = stdin.write_all(server_url.as_bytes());
    drop(stdin);
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= HELPER_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HelperError::Failed(format!(
                    "no answer within {}s",
                    HELPER_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(HelperError::Failed(e.to_string())),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let out = String::from_utf8_lossy(&stdout);
    if !status.success() {
        if out.trim() == HELPER_NOT_FOUND {
            return Ok(HelperAnswer::NotFound);
        }
        let said = [out.trim(), String::from_utf8_lossy(&stderr).trim()]
            .into_iter()
            .find(|s| !s.is_empty())
            .map(helper_message)
            .unwrap_or_default();
        return Err(HelperError::Failed(format!("{status}{said}")));
    }
    parse_helper_output(&stdout)
}

/// The helper's own words on a failure, short, and none that could be its
/// answer (JSON).
fn helper_message(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    if line.starts_with('{') {
        return String::new();
    }
    let short: String = line.chars().take(200).collect();
    format!(": {short}")
}

/// `{"ServerURL","Username","Secret"}` of a successful `get`.
fn parse_helper_output(stdout: &[u8]) -> Result<HelperAnswer, HelperError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let a: Answer = serde_json::from_slice(stdout).map_err(|_| {
        // Never the output: it may hold the secret.
        HelperError::Failed(
            "its answer is not the JSON of a credential ({\"ServerURL\",\"Username\",\"Secret\"})"
                .into(),
        )
    })?;
    Ok(if a.username == "<token>" {
        HelperAnswer::IdentityToken
    } else if a.username.is_empty() || a.secret.is_empty() {
        HelperAnswer::NotFound
    } else {
        HelperAnswer::Credentials(a.username, Password::new(a.secret))
    })
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
        Decoded::Unsupported("no username and password")
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
        std::fs::write(&good, r#"{"auths":{"h":{"auth":"dTpw"}},"HttpHeaders":{}}"#).unwrap();
        let f = AuthFiles::load(std::slice::from_ref(&good)).unwrap();
        assert_eq!(user_of(&f, "h", "r"), Some("u".into()));
        // `read` takes exactly the files given: none is none, not the default.
        assert_eq!(AuthFiles::read(&[]).unwrap().paths().count(), 0);
    }

    #[test]
    fn in_memory_logins_come_first() {
        let f = files(&[(
            "a",
            serde_json::json!({"auths": {"ecr.example": auth("file", "p")}}),
        )])
        .with_login(
            "ECR.example",
            Credentials {
                username: "AWS".into(),
                password: Password::new("tok"),
                file: PathBuf::from("ECR login (GetAuthorizationToken as x)"),
            },
        );
        let c = f.lookup("ecr.example", "app").unwrap().unwrap();
        assert_eq!(c.username, "AWS");
        assert_eq!(
            c.file,
            PathBuf::from("ECR login (GetAuthorizationToken as x)")
        );
        assert_eq!(f.paths().collect::<Vec<_>>(), [Path::new("a")]);
    }

    /// A directory for fake `docker-credential-*` scripts, used as PATH.
    struct Helpers(tempfile::TempDir);

    impl Helpers {
        fn new() -> Self {
            Self(tempfile::tempdir().unwrap())
        }
        /// `docker-credential-NAME`: logs `ARG STDIN` as a line to NAME.log, then
        /// runs `body`.
        fn add(&self, name: &str, body: &str) {
            use std::os::unix::fs::PermissionsExt as _;
            let script = self.0.path().join(format!("docker-credential-{name}"));
            let log = self.0.path().join(format!("{name}.log"));
            std::fs::write(
                &script,
                format!(
                    "#!/bin/sh\nprintf '%s ' \"$1\" >> '{}'\ncat >> '{}'\necho >> '{}'\n{body}\n",
                    log.display(),
                    log.display(),
                    log.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        fn log(&self, name: &str) -> Vec<String> {
            std::fs::read_to_string(self.0.path().join(format!("{name}.log")))
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect()
        }
        fn files(&self, configs: &[(&str, serde_json::Value)]) -> AuthFiles {
            files(configs).with_helper_path(self.0.path())
        }
    }

    fn answers(user: &str, secret: &str) -> String {
        format!("echo '{{\"ServerURL\":\"x\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}'")
    }

    #[test]
    fn a_helper_gets_the_server_url_on_stdin_and_answers_json() {
        let h = Helpers::new();
        h.add("one", &answers("u1", "s3cret"));
        let f = h.files(&[(
            "/c/config.json",
            serde_json::json!({"credHelpers": {
                "Registry.Example:5000": "one",
                "docker.io": "one",
            }}),
        )]);
        let c = f.lookup("registry.example:5000", "app").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.expose()), ("u1", "s3cret"));
        assert_eq!(
            c.file,
            PathBuf::from(
                "credential helper docker-credential-one (credHelpers of /c/config.json)"
            )
        );
        // Docker Hub's server URL, whatever alias the key and the reference use.
        f.lookup("index.docker.io", "library/alpine")
            .unwrap()
            .unwrap();
        // Each server URL is asked once.
        f.lookup("registry.example:5000", "other").unwrap().unwrap();
        assert_eq!(
            h.log("one"),
            [
                "get Registry.Example:5000",
                "get https://index.docker.io/v1/"
            ]
        );
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn dockers_order_cred_helpers_then_creds_store_then_auths() {
        let h = Helpers::new();
        h.add("per-host", &answers("per-host", "p"));
        h.add("store", &answers("store", "p"));
        let f = h.files(&[
            (
                "a",
                serde_json::json!({
                    "credHelpers": {"a.example": "per-host"},
                    "credsStore": "store",
                    "auths": {"a.example": auth("auths", "p"), "b.example": auth("auths", "p")},
                }),
            ),
            (
                "b",
                serde_json::json!({"auths": {"c.example": auth("auths-b", "p")}}),
            ),
        ]);
        assert_eq!(user_of(&f, "a.example", "r"), Some("per-host".into()));
        // credsStore is asked instead of auths, for every host.
        assert_eq!(user_of(&f, "b.example", "r"), Some("store".into()));
        assert_eq!(user_of(&f, "c.example", "r"), Some("store".into()));
        assert_eq!(h.log("store"), ["get b.example", "get c.example"]);
        // Without helpers, auths.
        let f = h.files(&[(
            "a",
            serde_json::json!({"credsStore": "", "auths": {"b.example": auth("auths", "p")}}),
        )]);
        assert_eq!(user_of(&f, "b.example", "r"), Some("auths".into()));
    }

    #[test]
    fn not_found_and_identity_tokens_search_the_next_file() {
        let h = Helpers::new();
        h.add(
            "empty",
            "echo 'credentials not found in native keychain'; exit 1",
        );
        h.add("token", &answers("<token>", "refresh-token"));
        let f = h.files(&[
            ("a", serde_json::json!({"credsStore": "empty"})),
            ("b", serde_json::json!({"credHelpers": {"t.example": "token"}})),
            (
                "c",
                serde_json::json!({"auths": {"x.example": auth("c", "p"), "t.example": auth("c", "p")}}),
            ),
        ]);
        assert_eq!(user_of(&f, "x.example", "r"), Some("c".into()));
        assert_eq!(user_of(&f, "t.example", "r"), Some("c".into()));
        assert_eq!(user_of(&f, "nothing.example", "r"), None);
        assert_eq!(h.log("token"), ["get t.example"]);
        // Nothing in the store: the same file's auths entry.
        let f = h.files(&[(
            "a",
            serde_json::json!({"credsStore": "empty", "auths": {"x.example": auth("a", "p")}}),
        )]);
        assert_eq!(user_of(&f, "x.example", "r"), Some("a".into()));
    }

    #[test]
    fn helper_failures_name_the_helper_and_the_host_never_the_secret() {
        let h = Helpers::new();
        h.add("broken", "echo 'pass store is locked' >&2; exit 2");
        h.add("leaky", "echo '{\"Secret\":\"hunter2\"}'; exit 1");
        h.add("garbled", "echo 'Username hunter2'");
        for name in ["broken", "leaky", "garbled"] {
            let f = h.files(&[(
                "/c/config.json",
                serde_json::json!({"credHelpers": {"h.example": name}}),
            )]);
            let e = f.lookup("h.example", "r").unwrap_err().to_string();
            assert!(
                e.contains(&format!("docker-credential-{name}"))
                    && e.contains("h.example")
                    && e.contains("/c/config.json"),
                "{e}"
            );
            assert!(!e.contains("hunter2"), "{e}");
        }
        let f = h.files(&[(
            "c",
            serde_json::json!({"credHelpers": {"h.example": "broken"}}),
        )]);
        let e = f.lookup("h.example", "r").unwrap_err().to_string();
        assert!(e.contains("exit status: 2: pass store is locked"), "{e}");
    }

    #[test]
    fn a_helper_missing_from_path_is_an_error_naming_it_and_the_file() {
        let h = Helpers::new();
        let f = h.files(&[(
            "/c/config.json",
            serde_json::json!({"credsStore": "desktop"}),
        )]);
        let e = f.lookup("h.example", "r").unwrap_err().to_string();
        assert!(
            e.contains("docker-credential-desktop")
                && e.contains("not on PATH")
                && e.contains("/c/config.json"),
            "{e}"
        );
        // A non-executable file of that name is not a helper either.
        std::fs::write(h.0.path().join("docker-credential-desktop"), "x").unwrap();
        assert!(f.lookup("h.example", "r").is_err());
        let f = h.files(&[("c", serde_json::json!({"credsStore": "../../bin/sh"}))]);
        let e = f.lookup("h.example", "r").unwrap_err().to_string();
        assert!(e.contains("not a credential helper name"), "{e}");
    }
}
