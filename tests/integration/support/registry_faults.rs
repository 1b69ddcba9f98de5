//! A fault proxy of one test's own in front of the bed's second registry
//! (BED_REGISTRY2): `tests/bed/aws/faultproxy.py` run with Debian's python3 on a
//! free port, killed when the value is dropped. Its rules match registry requests
//! by `method` and `path` (a regex), so a private proxy keeps a test's rules and
//! call records its own; `remove` is the AWS proxy's client (`faults.rs`).

use crate::support::bed::{Bed, repo_root};
use crate::support::faults::Faults;
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One request the proxy saw (its call record).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: String,
    /// The status sent to the client: 0 = none (dropped or stalled).
    pub status: u16,
    /// The id of the rule that applied, if one did.
    pub fault: Option<String>,
    pub action: Option<String>,
    /// Body bytes read from the client (for `dropAfterBytes`: forwarded).
    pub request_bytes: u64,
    pub response_bytes: u64,
}

impl Call {
    /// `METHOD path?… -> status (bytes in/out)`, as assertion messages name a request.
    pub fn line(&self) -> String {
        let q = if self.query.is_empty() { "" } else { "?…" };
        format!(
            "{} {}{q} -> {} ({} B in, {} B out{})",
            self.method,
            self.path,
            self.status,
            self.request_bytes,
            self.response_bytes,
            self.action
                .as_deref()
                .map_or(String::new(), |a| format!(", {a}"))
        )
    }
}

pub struct RegistryFaults {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`: the registry host to put in image references and authfiles.
    pub host: String,
    /// `http://127.0.0.1:PORT/__faults__`, the control API.
    pub control: String,
    faults: Faults,
    http: reqwest::Client,
}

impl RegistryFaults {
    /// A proxy in front of BED_REGISTRY2.
    pub async fn start() -> Self {
        let upstream = Bed::get().var("BED_REGISTRY2").to_string();
        Self::in_front_of(&upstream).await
    }

    /// A proxy in front of the plain-HTTP registry at `upstream` (`host:port`).
    pub async fn in_front_of(upstream: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("registry-faults-")
            .tempdir()
            .unwrap();
        let port_file = dir.path().join("port");
        let log = std::fs::File::create(dir.path().join("faultproxy.log")).unwrap();
        let mut child = Command::new("/usr/bin/python3")
            .arg(repo_root().join("tests/bed/aws/faultproxy.py"))
            .args(["--upstream", &format!("http://{upstream}")])
            .arg("--port-file")
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start /usr/bin/python3 tests/bed/aws/faultproxy.py");
        let started = Instant::now();
        let port: u16 = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                break text.trim().parse().expect("a port in the port file");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "faultproxy.py exited ({status}): {}",
                    std::fs::read_to_string(dir.path().join("faultproxy.log")).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "faultproxy.py wrote no port file within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let host = format!("127.0.0.1:{port}");
        let control = format!("http://{host}/__faults__");
        Self {
            child,
            dir,
            faults: Faults::new(&control),
            http: crate::support::http_client(),
            host,
            control,
        }
    }

    /// Adds a rule (the proxy's JSON, see faultproxy.py); returns its id.
    pub async fn add(&self, rule: Value) -> String {
        let resp = self
            .http
            .post(format!("{}/rules", self.control))
            .json(&rule)
            .send()
            .await
            .expect("fault proxy reachable");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or_default();
        assert!(status.is_success(), "rule {rule} refused: {body}");
        body["id"].as_str().expect("rule id").to_string()
    }

    pub async fn remove(&self, id: &str) {
        self.faults.remove(id).await;
    }

    /// The rule as the proxy lists it (`hits`, `matched`, `remaining`, ...).
    pub async fn rule(&self, id: &str) -> Value {
        let all: Value = self
            .http
            .get(format!("{}/rules", self.control))
            .send()
            .await
            .expect("fault proxy reachable")
            .json()
            .await
            .unwrap();
        all["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no rule {id}"))
    }

    /// Every request the proxy saw, in order.
    pub async fn calls(&self) -> Vec<Call> {
        self.calls_since(0).await
    }

    /// The requests after the one numbered `seq`.
    pub async fn calls_since(&self, seq: u64) -> Vec<Call> {
        let resp: Value = self
            .http
            .get(format!("{}/calls", self.control))
            .query(&[("since", seq.to_string())])
            .send()
            .await
            .expect("fault proxy reachable")
            .json()
            .await
            .unwrap();
        serde_json::from_value(resp["calls"].clone()).expect("call records")
    }

    /// The proxy's own log (one line per request), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("faultproxy.log")
    }
}

impl Drop for RegistryFaults {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
