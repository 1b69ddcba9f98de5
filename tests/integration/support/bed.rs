//! The shared test-bed fixture: one bed per test run, reused by every test.
//!
//! When the environment already holds a bed (`eval "$(tests/bed/up)"`), it is used
//! as is and left running. Otherwise a private bed is started under a state
//! directory of this process, with a watchdog that tears it down when the test
//! process exits — however it exits, so no process leaks even after a panic.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Bed {
    pub env: HashMap<String, String>,
}

static BED: OnceLock<Bed> = OnceLock::new();

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Bed {
    pub fn get() -> &'static Bed {
        BED.get_or_init(|| {
            let from_env = [
                "KUBECONFIG",
                "BED_FAULTS",
                "AWS_ENDPOINT_URL",
                "BED_REGISTRY",
                "BED_STATE",
            ]
            .iter()
            .all(|k| std::env::var(k).is_ok());
            if from_env {
                let env = std::env::vars().collect();
                return Bed { env };
            }
            let state =
                std::env::temp_dir().join(format!("ecr-operator-bed-test-{}", std::process::id()));
            let out = Command::new(repo_root().join("tests/bed/up"))
                .arg("--watch-pid")
                .arg(std::process::id().to_string())
                .env("BED_STATE", &state)
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("run tests/bed/up");
            assert!(
                out.status.success(),
                "tests/bed/up failed; see its messages above"
            );
            Bed {
                env: parse_exports(&String::from_utf8_lossy(&out.stdout)),
            }
        })
    }

    pub fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("the bed exports no {key}"))
    }

    /// Every credential value of the bed in the forms it travels in: the ECR password,
    /// the token (base64 of `AWS:<password>`, also the `auth` field), the secret key.
    pub fn secret_values(&self) -> Vec<String> {
        use base64::Engine;
        let password = self.var("BED_ECR_PASSWORD");
        vec![
            password.to_string(),
            base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}")),
            self.var("AWS_SECRET_ACCESS_KEY").to_string(),
        ]
    }

    pub fn kubeconfig(&self) -> &Path {
        Path::new(self.var("KUBECONFIG"))
    }

    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(Path::new(self.var("BED_BIN")).join("kubectl"));
        c.env("KUBECONFIG", self.kubeconfig());
        c
    }

    /// A client for the bed's admin, or for the kubeconfig at `path`.
    pub async fn client_for(&self, path: &Path) -> Client {
        let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kubeconfig");
        Client::try_from(config).expect("client")
    }

    pub async fn client(&self) -> Client {
        self.client_for(self.kubeconfig()).await
    }

    /// A kubeconfig for a client-certificate user or a ServiceAccount (`ns/name`).
    pub fn mint_kubeconfig(&self, args: &[&str]) -> PathBuf {
        let out = Command::new(repo_root().join("tests/bed/kubeconfig"))
            .args(args)
            .envs(&self.env)
            .output()
            .expect("run tests/bed/kubeconfig");
        assert!(
            out.status.success(),
            "tests/bed/kubeconfig {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    }
}

fn parse_exports(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_matches(|c| c == '\'' || c == '"').to_string(),
            )
        })
        .collect()
}

/// Unique names for one test, so tests run in parallel on one bed.
pub struct TestNames {
    pub id: String,
}

impl TestNames {
    pub fn new(prefix: &str) -> Self {
        let n: u32 = rand::random::<u32>() % 1_000_000;
        Self {
            id: format!("{prefix}-{n:06}"),
        }
    }

    pub fn ns(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.id)
    }

    /// A 20-character access key ID of this test's own, so fault-proxy rules and
    /// call counts are scoped to it.
    pub fn access_key_id(&self) -> String {
        let digits: String = self
            .id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_uppercase();
        format!("AKIA{digits:0>16}").chars().take(20).collect()
    }
}

pub async fn create_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": name,
            "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>(),
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

pub async fn delete_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
}

/// Polls `check` every 100 ms until it returns Some, or panics after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
