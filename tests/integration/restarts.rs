//! The operator across a kube-apiserver restart (SIGKILL, started again on the
//! same etcd) and an expired watch (etcd compacted, so the resourceVersions the
//! watches hold are gone and they get 410 Gone): it re-lists, rewrites none of
//! the secrets and ServiceAccounts it already wrote, and a namespace created
//! right after the restart gets its secret.
//!
//! Killing the shared bed's apiserver would break the tests running beside this
//! one, so it runs on a control plane of its own (`tests/bed/up --only-k8s`);
//! AWS is still the shared bed's.

use crate::support::bed::{Bed, TestNames, create_namespace, eventually};
use crate::support::fixtures::{get_secret, pull_secrets, selected_by, wait_ready};
use crate::support::operator::Operator;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ListParams, VersionMatch};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Selected namespaces that exist before the restarts.
const NAMESPACES: usize = 20;
/// How long after each restart the existing secrets must stay untouched.
const QUIET: Duration = Duration::from_secs(10);

/// A control plane of this test's own: etcd, kube-apiserver and
/// kube-controller-manager (namespaces get their default ServiceAccount).
struct ControlPlane {
    state: PathBuf,
    // Holds the state directory and the lock file beside it; removed last.
    _dir: tempfile::TempDir,
}

impl ControlPlane {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("bed");
        // --watch-pid: torn down when the test process exits, even after a panic.
        let out = Command::new(crate::support::bed::repo_root().join("tests/bed/up"))
            .args(["--only-k8s", "--watch-pid", &std::process::id().to_string()])
            .env("BED_STATE", &state)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run tests/bed/up");
        assert!(
            out.status.success(),
            "tests/bed/up --only-k8s failed; see its messages above"
        );
        Self { state, _dir: dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.state.join("kubeconfig")
    }

    /// tests/bed/k8s/restart-apiserver: (seconds from the kill to /readyz, the
    /// revision etcd was compacted to).
    fn restart_apiserver(&self, compact: bool) -> (f64, Option<i64>) {
        let mut cmd =
            Command::new(crate::support::bed::repo_root().join("tests/bed/k8s/restart-apiserver"));
        if compact {
            cmd.arg("--compact-etcd");
        }
        let out = cmd
            .arg(&self.state)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run tests/bed/k8s/restart-apiserver");
        assert!(out.status.success(), "restart-apiserver failed (above)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let value = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        (
            value("restart_s").and_then(|s| s.parse().ok()).unwrap(),
            value("compacted").and_then(|s| s.parse().ok()),
        )
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(crate::support::bed::repo_root().join("tests/bed/down"))
            .env("BED_STATE", &self.state)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// resourceVersions of each namespace's secret and default ServiceAccount.
type Versions = BTreeMap<String, (String, String)>;

async fn versions(client: &Client, namespaces: &[String], secret: &str) -> Versions {
    let mut out = BTreeMap::new();
    for ns in namespaces {
        let s = get_secret(client, ns, secret)
            .await
            .unwrap_or_else(|| panic!("secret {ns}/{secret} is gone"));
        let sa = Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .get("default")
            .await
            .expect("get ServiceAccount");
        out.insert(
            ns.clone(),
            (
                s.resource_version().unwrap(),
                sa.resource_version().unwrap(),
            ),
        );
    }
    out
}

/// The namespaces whose secret or ServiceAccount changed between two snapshots.
fn rewritten(before: &Versions, after: &Versions) -> Vec<String> {
    before
        .iter()
        .filter(|(ns, v)| after.get(*ns) != Some(v))
        .map(|(ns, _)| ns.clone())
        .collect()
}

/// A fresh client: the old one's pooled connections died with the apiserver.
async fn client_of(bed: &Bed, cp: &ControlPlane) -> Client {
    bed.client_for(&cp.kubeconfig()).await
}

/// Waits for a selected namespace's secret and its ServiceAccount entry.
async fn wait_synced(client: &Client, ns: &str, secret: &str, secs: u64) {
    eventually(secs, &format!("secret and SA entry in {ns}"), || async {
        let synced = get_secret(client, ns, secret).await.is_some()
            && pull_secrets(client, ns, "default")
                .await
                .iter()
                .any(|s| s == secret);
        synced.then_some(())
    })
    .await;
}

/// What one disruption did.
struct Outcome {
    first_secret_s: f64,
    rewrites: usize,
    /// Log lines of watches that got 410 Gone.
    gone: Vec<String>,
    /// Secret applies the operator sent to the existing namespaces (the scheduled
    /// drift re-assertions included): a re-list must not set off one per namespace.
    applies: usize,
    /// The longest backoff kube-runtime took after the restart, in seconds: a
    /// watch error puts the controller's whole trigger stream to sleep.
    longest_backoff_s: f64,
}

#[tokio::test]
async fn apiserver_restart_and_expired_watches_relist_without_rewrites() {
    let started = Instant::now();
    let bed = Bed::get();
    let names = TestNames::new("rst");
    let cp = ControlPlane::start();
    let mut client = client_of(bed, &cp).await;
    crate::support::fixtures::install_crds_now(&client).await;
    create_namespace(&client, &names.ns("op"), &[]).await;
    let operator = Operator::start_with(bed, &names, &cp.kubeconfig(), &[]);

    let secret = format!("{}-pull", names.id);
    let existing: Vec<String> = (0..NAMESPACES)
        .map(|i| names.ns(&format!("n{i:02}")))
        .collect();
    for ns in &existing {
        create_namespace(&client, ns, &[("ecr-test", &names.id)]).await;
    }
    crate::support::fixtures::create_registry(
        &client,
        &names,
        json!({
            "region": "us-east-1",
            "namespaces": selected_by(&names),
            "serviceAccounts": ["default"],
            "secret": {"name": secret},
        }),
    )
    .await;
    for ns in &existing {
        wait_synced(&client, ns, &secret, 60).await;
    }
    wait_ready(&client, &names.id, "True", Some("Synced"), 30).await;
    // Steady state first: a write still in flight must not count as a rewrite.
    let before = versions(&client, &existing, &secret).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rewritten(&before, &versions(&client, &existing, &secret).await),
        Vec::<String>::new(),
        "secrets or ServiceAccounts rewritten in steady state, before any restart"
    );

    let mut outcomes = Vec::new();
    for (phase, compact) in [("restart", false), ("watch_expiry", true)] {
        let log_from = operator.logs().len();
        let (restart_s, compacted) = cp.restart_apiserver(compact);
        let after_restart = Instant::now();
        client = client_of(bed, &cp).await;

        let new_ns = names.ns(&format!("after-{}", phase.replace('_', "-")));
        create_namespace(&client, &new_ns, &[("ecr-test", &names.id)]).await;
        let mut first_secret = None;
        while after_restart.elapsed() < Duration::from_secs(60) {
            if get_secret(&client, &new_ns, &secret).await.is_some() {
                first_secret = Some(after_restart.elapsed().as_secs_f64());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let Some(first_secret_s) = first_secret else {
            panic!(
                "{phase}: no secret in {new_ns} 60 s after the apiserver was ready again \
                 (operator log: {})",
                operator_log_tail(&operator, log_from)
            );
        };
        // One watch's 410 used to pause every watch of the controller (kube's
        // shared trigger backoff, growing with each error): 5 to 19 s here.
        assert!(
            first_secret_s < 10.0,
            "{phase}: the new namespace got its secret {first_secret_s:.1}s after the apiserver was ready again"
        );
        wait_synced(&client, &new_ns, &secret, 30).await;

        if let Some(rev) = compacted {
            // The compaction is real: etcd keeps no revision before `rev`, so no
            // resourceVersion the watches held before the restart can be resumed.
            let exact = Api::<Namespace>::all(client.clone())
                .list_metadata(&ListParams {
                    resource_version: Some((rev - 1).to_string()),
                    version_match: Some(VersionMatch::Exact),
                    ..ListParams::default()
                })
                .await;
            assert!(
                matches!(&exact, Err(kube::Error::Api(s)) if s.code == 410),
                "a list at resourceVersion {} after compacting to {rev}: {exact:?}",
                rev - 1
            );
        }

        if let Some(rest) = QUIET.checked_sub(after_restart.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        let now = versions(&client, &existing, &secret).await;
        let changed = rewritten(&before, &now);
        let (healthz, _) = operator.admin_get("/healthz").await;
        assert_eq!(
            healthz, 200,
            "{phase}: the operator is not alive and healthy"
        );
        wait_ready(&client, &names.id, "True", Some("Synced"), 20).await;

        let log = operator.logs();
        let log = &log[log_from.min(log.len())..];
        // kube's watcher logs a 410 at debug and then re-lists (it has no log
        // line of its own for the list).
        let gone: Vec<String> = log
            .lines()
            .filter(|l| l.contains("kube_runtime::watcher") && l.contains("code: 410"))
            .map(plain)
            .collect();
        let applies = log
            .lines()
            .filter(|l| l.contains("secret written"))
            .filter(|l| existing.iter().any(|ns| l.contains(ns.as_str())))
            .count();
        let longest_backoff_s = log
            .lines()
            .filter(|l| l.contains("backing off"))
            .filter_map(|l| backoff_secs(&plain(l)))
            .fold(0.0, f64::max);
        eprintln!(
            "{phase}: apiserver ready {restart_s:.2}s after SIGKILL{}; first secret {first_secret_s:.2}s \
             after ready; {} rewritten of {NAMESPACES}; {} watch 410 line(s); {applies} apply(s) sent \
             to existing namespaces; longest backoff {longest_backoff_s:.2}s",
            compacted.map_or(String::new(), |r| format!(" (etcd compacted to {r})")),
            changed.len(),
            gone.len(),
        );
        for l in gone.iter().take(3) {
            eprintln!("  {}", l.chars().take(400).collect::<String>());
        }
        assert_eq!(
            changed,
            Vec::<String>::new(),
            "{phase}: the operator rewrote secrets or ServiceAccounts it had already written \
             (resourceVersions before {before:?}, after {now:?}); log: {}",
            operator_log_tail(&operator, log_from)
        );
        outcomes.push((
            phase,
            Outcome {
                first_secret_s,
                rewrites: changed.len(),
                gone,
                applies,
                longest_backoff_s,
            },
        ));
    }

    let (_, restart) = &outcomes[0];
    let (_, expiry) = &outcomes[1];
    // A 410 always sends kube's watcher back to a list; the new namespace's
    // secret (asserted above) shows the list completed.
    let relisted = |o: &Outcome| if o.gone.is_empty() { "no" } else { "yes" };
    println!(
        "FIGURE restart first_secret_after_restart_s={:.2} rewrites={} relisted={} applies={} \
         longest_backoff_s={:.2}",
        restart.first_secret_s,
        restart.rewrites,
        relisted(restart),
        restart.applies,
        restart.longest_backoff_s
    );
    println!(
        "FIGURE watch_expiry first_secret_s={:.2} rewrites={} relisted={} applies={} \
         longest_backoff_s={:.2}",
        expiry.first_secret_s,
        expiry.rewrites,
        relisted(expiry),
        expiry.applies,
        expiry.longest_backoff_s
    );
    assert_eq!(
        relisted(expiry),
        "yes",
        "no watch of the operator got 410 Gone after the compaction: nothing was re-listed"
    );
    eprintln!("restarts: {:.1}s in all", started.elapsed().as_secs_f64());
    drop(operator);
    drop(cp);
}

/// `duration=1.25s` or `duration=803.7ms` of kube-runtime's "backing off" line.
fn backoff_secs(line: &str) -> Option<f64> {
    let d = line.split("duration=").nth(1)?.split_whitespace().next()?;
    if let Some(ms) = d.strip_suffix("ms") {
        ms.parse::<f64>().ok().map(|v| v / 1000.0)
    } else {
        d.strip_suffix('s')?.parse().ok()
    }
}

/// A log line without its terminal colours.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC '[' parameters, ended by a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The last lines of the operator's log since `from`, for a failure message.
fn operator_log_tail(operator: &Operator, from: usize) -> String {
    let log = operator.logs();
    let log = &log[from.min(log.len())..];
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..]
        .iter()
        .map(|l| plain(l))
        .collect::<Vec<_>>()
        .join("\n")
}
