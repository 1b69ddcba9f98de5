//! The benchmarks of docs/benchmarks.md, on the bed. Ignored by default; run them
//! with `make bench` (a release build), one after the other.
//!
//! EcrRegistry: `BENCH_NAMESPACES` selected namespaces (default 1,000; `make bench
//! BENCH_NAMESPACES=10000`), each with its `default` ServiceAccount, 20
//! EcrRegistries with overlapping selections (2 of the 10 namespace groups each),
//! two identities, a quarter listing `serviceAccounts: [default]`, and 2 unrelated
//! Secrets per namespace (at least 10,000).
//!
//! Mirror: `ecr-operator mirror` against `skopeo copy` and `crane copy`
//! (`scripts/build-crane`), from BED_REGISTRY to BED_REGISTRY2 through a fault
//! proxy, without faults and with a seeded 20 % of the destination's requests
//! answered 503, every tool with its retries on.

use crate::cli_mirror::{Pusher, Reg, authfile, reg1, reg2, sha256};
use crate::cli_mirror_retries::manifest_digest;
use crate::support::bed::{Bed, TestNames, create_namespace, repo_root};
use crate::support::faults::Faults;
use crate::support::fixtures::{create_registry_named, setup};
use crate::support::operator::Operator;
use crate::support::registry_faults::RegistryFaults;
use ecr_operator::crd::ecr_registry::EcrRegistry;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The benchmarks run one at a time: each would disturb the other's figures.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const REGISTRIES: usize = 20;
const GROUPS: usize = 10;
/// What the operator may have in flight: EcrRegistries at once × writes per pass.
const OPERATOR_CONCURRENCY: usize = 4 * 32;

fn scale() -> usize {
    std::env::var("BENCH_NAMESPACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
}

fn steady_secs() -> u64 {
    std::env::var("BENCH_STEADY_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// A process's resident memory, MiB: in all, anonymous (heap, stacks) and
/// file-backed (the binary's own pages).
struct Rss {
    total: f64,
    anon: f64,
    file: f64,
}

impl Rss {
    fn of(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1024.0
        };
        Self {
            total: field("VmRSS:"),
            anon: field("RssAnon:"),
            file: field("RssFile:"),
        }
    }
}

impl std::fmt::Display for Rss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} MiB (anonymous {:.1}, file-backed {:.1})",
            self.total, self.anon, self.file
        )
    }
}

/// The controller-manager creates each namespace's `default` ServiceAccount at its
/// own pace (20 requests a second), and the operator adds its entry to each as it
/// appears: until then the cluster is not idle. Waits until all `expected` have it
/// (each group is selected by exactly one registry that lists `default`).
async fn every_service_account_has_its_entry(client: &Client, id: &str, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let with_entry = Api::<ServiceAccount>::all(client.clone())
            .list(&ListParams::default().fields("metadata.name=default"))
            .await
            .unwrap()
            .items
            .iter()
            .filter(|sa| sa.namespace().is_some_and(|ns| ns.starts_with(id)))
            .filter(|sa| {
                sa.image_pull_secrets
                    .iter()
                    .flatten()
                    .any(|r| r.name.starts_with("bench-"))
            })
            .count();
        if with_entry == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{with_entry} of {expected} default ServiceAccounts have their entry"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// User + system CPU seconds of a process (clock ticks of 1/100 s).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of the processes that share the machine's cores during a window:
/// the operator, this harness (the bare client), and the bed's API server and etcd.
#[derive(Clone, Copy)]
struct CpuShares {
    operator: f64,
    harness: f64,
    apiserver: f64,
    etcd: f64,
}

impl CpuShares {
    fn now(operator: u32) -> Self {
        let named = |name: &str| -> f64 {
            std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim() == name)
                })
                .map(cpu_secs)
                .sum()
        };
        Self {
            operator: cpu_secs(operator),
            harness: cpu_secs(std::process::id()),
            apiserver: named("kube-apiserver"),
            etcd: named("etcd"),
        }
    }

    fn since(self, start: Self) -> Self {
        Self {
            operator: self.operator - start.operator,
            harness: self.harness - start.harness,
            apiserver: self.apiserver - start.apiserver,
            etcd: self.etcd - start.etcd,
        }
    }
}

impl std::fmt::Display for CpuShares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "operator {:.1}, harness {:.1}, kube-apiserver {:.1}, etcd {:.1}",
            self.operator, self.harness, self.apiserver, self.etcd
        )
    }
}

/// When each managed secret (namespace, name) was last seen written, with its expiry.
type Seen = HashMap<(String, String), (Instant, String)>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The API server's request counters for the resources the operator uses, by
/// resource (leases left out: the benchmark runs one replica, no election).
async fn api_requests(client: &Client) -> BTreeMap<String, f64> {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(req).await.expect("API server /metrics");
    let mut counts = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let resource = labels
            .split("resource=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default();
        if [
            "secrets",
            "serviceaccounts",
            "configmaps",
            "ecrregistries",
            "events",
            "namespaces",
        ]
        .contains(&resource)
            && !labels.contains("verb=\"WATCH\"")
        {
            let verb = labels
                .split("verb=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_default();
            *counts.entry(format!("{verb} {resource}")).or_insert(0.0) +=
                value.parse::<f64>().unwrap_or(0.0);
        }
    }
    counts
}

/// The operator's own count of its Kubernetes requests (its /metrics), by verb
/// and status code.
async fn operator_requests(operator: &Operator) -> BTreeMap<String, f64> {
    let (_, text) = operator.admin_get("/metrics").await;
    text.lines()
        .filter_map(|l| l.strip_prefix("ecr_operator_kubernetes_requests_total{"))
        .filter_map(|l| l.rsplit_once("} "))
        .map(|(labels, v)| (labels.to_string(), v.parse::<f64>().unwrap_or(0.0)))
        .collect()
}

fn diff(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).unwrap_or(&0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// The groups registry `j` selects: j and j+1 (mod 10).
fn groups_of(j: usize) -> [String; 2] {
    [(j % GROUPS).to_string(), ((j + 1) % GROUPS).to_string()]
}

#[tokio::test]
#[ignore = "benchmark: run with `make bench`"]
async fn benchmark_registries_at_scale() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let n = scale();
    let unrelated = (2 * n).max(10_000);
    let bed = Bed::get();
    let names = TestNames::new("bench");
    let client = setup(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let op_ns = names.ns("op");
    let label = ("ecr-bench", names.id.as_str());

    // Two identities: the operator's own, and static keys from a Secret.
    let own = names.access_key_id();
    let other = format!("AKIAB{}", &own[5..]);
    let keys: Secret = serde_json::from_value(json!({
        "metadata": {"name": "aws-keys"},
        "stringData": {"AWS_ACCESS_KEY_ID": other, "AWS_SECRET_ACCESS_KEY": bed.var("AWS_SECRET_ACCESS_KEY")},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &op_ns)
        .create(&PostParams::default(), &keys)
        .await
        .unwrap();
    // Tokens of an hour: no refresh before the benchmark asks for one.
    for akid in [&own, &other] {
        faults
            .add(
                akid,
                "GetAuthorizationToken",
                json!({"action": "expires_in", "seconds": 3600}),
            )
            .await;
    }

    let setup_started = Instant::now();
    let noise = names.ns("noise");
    create_namespace(&client, &noise, &[]).await;
    let api: Api<Secret> = Api::namespaced(client.clone(), &noise);
    stream::iter(0..unrelated)
        .for_each_concurrent(32, |i| {
            let api = api.clone();
            async move {
                let s: Secret = serde_json::from_value(json!({"metadata": {"name": format!("noise-{i}")}, "stringData": {"k": "v".repeat(512)}})).unwrap();
                api.create(&PostParams::default(), &s).await.unwrap();
            }
        })
        .await;
    let ns_names: Vec<String> = (0..n).map(|i| names.ns(&format!("n{i:05}"))).collect();
    stream::iter(ns_names.iter().enumerate())
        .for_each_concurrent(32, |(i, ns)| {
            let client = client.clone();
            let group = (i % GROUPS).to_string();
            async move { create_namespace(&client, ns, &[label, ("group", &group)]).await }
        })
        .await;
    let setup_time = setup_started.elapsed();

    // Record when each managed secret appears or changes, by (namespace, name).
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let watch = {
        let seen = seen.clone();
        // This run's namespaces only: an earlier run's may still be terminating.
        let prefix = names.ns("");
        let api: Api<Secret> = Api::all(client.clone());
        let cfg = watcher::Config::default().labels("app.kubernetes.io/managed-by=ecr-operator");
        tokio::spawn(async move {
            watcher(api, cfg)
                .applied_objects()
                .try_for_each(|s| {
                    let expires = s
                        .annotations()
                        .get("ecr-operator.io/expires-at")
                        .cloned()
                        .unwrap_or_default();
                    let key = (s.namespace().unwrap(), s.name_any());
                    if key.0.starts_with(&prefix) {
                        seen.lock().unwrap().insert(key, (Instant::now(), expires));
                    }
                    async { Ok(()) }
                })
                .await
        })
    };

    let registry_names: Vec<String> = (0..REGISTRIES)
        .map(|j| format!("{}-r{j:02}", names.id))
        .collect();
    for (j, name) in registry_names.iter().enumerate() {
        let mut spec = json!({
            "region": "us-east-1",
            "refreshBefore": "30m",
            "secret": {"name": format!("bench-{j:02}")},
            "namespaces": {"selector": {
                "matchLabels": {label.0: label.1},
                "matchExpressions": [{"key": "group", "operator": "In", "values": groups_of(j)}],
            }},
        });
        if j % 2 == 1 {
            spec["auth"] = json!({"secretRef": {"name": "aws-keys"}});
        }
        if j % 4 == 0 {
            spec["serviceAccounts"] = json!(["default"]);
        }
        create_registry_named(&client, &names, name, spec).await;
    }
    let per_registry = 2 * n / GROUPS;
    let total_secrets = REGISTRIES * per_registry;

    let started = Instant::now();
    let operator = Operator::start_with(
        bed,
        &names,
        bed.kubeconfig(),
        &[
            ("RUST_LOG", "info,ecr_operator=debug"),
            ("ECR_OPERATOR_LEADER_ELECT", "false"),
            // No drift-repair pass inside the measured windows.
            ("ECR_OPERATOR_RESYNC_INTERVAL", "24h"),
        ],
    );
    let registries: Api<EcrRegistry> = Api::all(client.clone());
    let synced = |r: &EcrRegistry| {
        r.status
            .as_ref()
            .and_then(|s| s.namespaces.as_ref())
            .is_some_and(|c| {
                c.synced as usize == per_registry && c.selected as usize == per_registry
            })
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let list = registries
            .list(&ListParams::default().labels(&format!("test={}", names.id)))
            .await
            .unwrap();
        if list.items.len() == REGISTRIES && list.items.iter().all(synced) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "initial sync incomplete after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let initial_sync = started.elapsed();
    let sync_cpu = cpu_secs(operator.pid());
    let rss_synced = Rss::of(operator.pid());

    // New namespaces in group 0 (registries 0, 9, 10 and 19 select it): time from create
    // to registry 0's secret present, one at a time, on an otherwise idle cluster.
    every_service_account_has_its_entry(&client, &names.id, n).await;
    let mut latencies = vec![];
    for i in 0..100 {
        let ns = names.ns(&format!("late{i:03}"));
        let t = Instant::now();
        create_namespace(&client, &ns, &[label, ("group", "0")]).await;
        let key = (ns.clone(), "bench-00".to_string());
        loop {
            if seen.lock().unwrap().contains_key(&key) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "no secret in {ns}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(t.elapsed());
    }
    latencies.sort();
    // Each registry that selects group 0 got 100 more.
    let late_selected = (0..REGISTRIES)
        .filter(|&j| groups_of(j).contains(&"0".to_string()))
        .count();
    let total_secrets = total_secrets + 100 * late_selected;

    // Steady state starts once every `default` ServiceAccount has its entry.
    every_service_account_has_its_entry(&client, &names.id, n + 100).await;
    let settled = started.elapsed();

    // Steady state: the operator's own request counter, and the API server's
    // counters for the resources it uses (all clients).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = (
        api_requests(&client).await,
        operator_requests(&operator).await,
    );
    tokio::time::sleep(Duration::from_secs(steady_secs())).await;
    let after = (
        api_requests(&client).await,
        operator_requests(&operator).await,
    );
    let steady = diff(&after.0, &before.0);
    let steady_own = diff(&after.1, &before.1);
    // Kept for a look at what the operator did (the log goes with the process).
    let _ = std::fs::write("/tmp/ecr-operator-bench.log", operator.logs());
    // (The two /metrics GETs are not among the counted resources.)

    // The size of the EcrRegistry objects, as stored (status, managed fields).
    let largest = registries
        .list(&ListParams::default().labels(&format!("test={}", names.id)))
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap().len())
        .max()
        .unwrap();

    // Full refresh: every registry asked to refresh now (refreshBefore past the
    // hour-long tokens' remaining life); from the first secret with a new expiry
    // to the last.
    let old_expiry: HashMap<(String, String), String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(k, (_, e))| (k.clone(), e.clone()))
        .collect();
    assert_eq!(old_expiry.len(), total_secrets, "managed secrets seen");
    let calls_before = faults.calls(&own, "GetAuthorizationToken").await
        + faults.calls(&other, "GetAuthorizationToken").await;
    let set_refresh_before = |value: &'static str| {
        let registries = registries.clone();
        let registry_names = registry_names.clone();
        async move {
            for name in &registry_names {
                let patch = json!({"spec": {"refreshBefore": value}});
                registries
                    .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .unwrap();
            }
        }
    };
    let refresh_cpu_start = CpuShares::now(operator.pid());
    let refresh_requests_start = operator_requests(&operator).await;
    set_refresh_before("59m").await;
    // Back to 30m once both identities have a new token: a token due a minute
    // after its fetch would be fetched again before 40,000 secrets are written.
    let deadline = Instant::now() + Duration::from_secs(120);
    while faults.calls(&own, "GetAuthorizationToken").await
        + faults.calls(&other, "GetAuthorizationToken").await
        < calls_before + 2
    {
        assert!(Instant::now() < deadline, "no refresh asked for");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    set_refresh_before("30m").await;
    let deadline = Instant::now() + Duration::from_secs(600);
    let refresh_wall = loop {
        let times: Vec<Instant> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, (_, e))| old_expiry.get(*k) != Some(e))
            .map(|(_, (t, _))| *t)
            .collect();
        if times.len() == total_secrets {
            break *times.iter().max().unwrap() - *times.iter().min().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "refresh incomplete: {}/{total_secrets}",
            times.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let calls = faults.calls(&own, "GetAuthorizationToken").await
        + faults.calls(&other, "GetAuthorizationToken").await
        - calls_before;
    let rss_refreshed = Rss::of(operator.pid());
    let refresh_cpu = CpuShares::now(operator.pid()).since(refresh_cpu_start);
    let refresh_requests = diff(&operator_requests(&operator).await, &refresh_requests_start);
    // BENCH_HOLD_SECS keeps the operator alive after the refresh, for an outside
    // look at its heap (docs/benchmarks.md: the allocator's share).
    if let Some(hold) = std::env::var("BENCH_HOLD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        println!("holding the operator (pid {}) for {hold} s", operator.pid());
        tokio::time::sleep(Duration::from_secs(hold)).await;
    }
    drop(operator);

    // Baseline: a bare client applies the same number of secrets of the same size,
    // labels and annotations into the same namespaces, with the operator's
    // concurrency, twice (create, then update: the refresh is an update); the
    // update is timed. The watch above stays open and sees them too, so the API
    // server serves the same watch events as in the operator's refresh.
    let sample = Api::<Secret>::namespaced(client.clone(), &ns_names[0])
        .get("bench-00")
        .await
        .unwrap();
    let targets: Vec<(String, String)> = seen.lock().unwrap().keys().cloned().collect();
    let apply_all = |round: usize| {
        let targets = &targets;
        let sample = &sample;
        let client = client.clone();
        async move {
            let t = Instant::now();
            stream::iter(targets.iter())
                .for_each_concurrent(OPERATOR_CONCURRENCY, |(ns, name)| {
                    let client = client.clone();
                    async move {
                        let mut data = sample.data.clone().unwrap_or_default();
                        data.insert(
                            "round".into(),
                            k8s_openapi::ByteString(round.to_string().into_bytes()),
                        );
                        let s = json!({
                            "apiVersion": "v1", "kind": "Secret",
                            "metadata": {
                                "name": format!("baseline-{name}"), "namespace": ns,
                                "labels": sample.metadata.labels,
                                "annotations": sample.metadata.annotations,
                            },
                            "type": "kubernetes.io/dockerconfigjson",
                            "data": data,
                        });
                        Api::<Secret>::namespaced(client, ns)
                            .patch(
                                &format!("baseline-{name}"),
                                &PatchParams::apply("bench").force(),
                                &Patch::Apply(&s),
                            )
                            .await
                            .unwrap();
                    }
                })
                .await;
            t.elapsed()
        }
    };
    apply_all(0).await;
    let baseline_cpu_start = CpuShares::now(std::process::id());
    let baseline = apply_all(1).await;
    let baseline_cpu = CpuShares::now(std::process::id()).since(baseline_cpu_start);
    watch.abort();

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nBENCHMARK ({n} selected namespaces, {REGISTRIES} EcrRegistries, {unrelated} unrelated Secrets; setup took {setup_time:.0?}; load average {})",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "initial sync ({} secrets): {initial_sync:.2?}, operator CPU {sync_cpu:.2} s ({:.0} µs per secret)",
        REGISTRIES * per_registry,
        sync_cpu * 1e6 / (REGISTRIES * per_registry) as f64
    );
    println!("operator RSS after initial sync:     {rss_synced}");
    println!("every default ServiceAccount has its entry {settled:.0?} after the start");
    println!(
        "new namespace -> secret present:     p50 {} ms  p99 {} ms  max {} ms",
        percentile(&latencies, 0.5).as_millis(),
        percentile(&latencies, 0.99).as_millis(),
        latencies.last().unwrap().as_millis()
    );
    println!(
        "operator's API requests in {} s of steady state: {steady_own:?}",
        steady_secs()
    );
    println!("API server's count of those resources' GET/LIST/writes, all clients: {steady:?}");
    println!("largest EcrRegistry object:          {largest} bytes");
    println!(
        "full refresh of {total_secrets} secrets:       {refresh_wall:.2?} (bare client, same concurrency: {baseline:.2?}, ratio {:.2})",
        refresh_wall.as_secs_f64() / baseline.as_secs_f64()
    );
    println!("operator's API requests in the refresh: {refresh_requests:?}");
    println!("CPU seconds in the refresh:          {refresh_cpu}");
    println!(
        "CPU seconds in the bare client's run: bare client (this harness) {:.1}, kube-apiserver {:.1}, etcd {:.1}",
        baseline_cpu.harness, baseline_cpu.apiserver, baseline_cpu.etcd
    );
    println!("GetAuthorizationToken calls for it:  {calls} (2 identities)");
    println!("operator RSS after the refresh:      {rss_refreshed}");
}

// --- Mirror: ecr-operator mirror, skopeo copy, crane copy; with and without faults --

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, PartialEq)]
enum Tool {
    Ours,
    Skopeo,
    Crane,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Ours => "ecr-operator mirror",
            Tool::Skopeo => "skopeo copy",
            Tool::Crane => "crane copy",
        }
    }
    fn slug(self) -> &'static str {
        match self {
            Tool::Ours => "ecr-operator",
            Tool::Skopeo => "skopeo",
            Tool::Crane => "crane",
        }
    }
}

/// What each tool needs to run: binaries, credentials, the retry budget.
struct Tools {
    ours: String,
    crane: Option<String>,
    auth: tempfile::NamedTempFile,
    /// DOCKER_CONFIG for crane: `config.json` with the same entries.
    docker_config: tempfile::TempDir,
    src_creds: String,
    dst_creds: String,
    retries: u32,
    jobs: u32,
}

impl Tools {
    fn command(&self, tool: Tool, src: &str, dst: &str) -> std::process::Command {
        match tool {
            Tool::Ours => {
                let mut c = std::process::Command::new(&self.ours);
                c.args(["mirror", src, dst, "--src-plain-http", "--dest-plain-http"])
                    .arg("--authfile")
                    .arg(self.auth.path())
                    .args(["--jobs", &self.jobs.to_string()])
                    .args(["--retries", &self.retries.to_string()]);
                c
            }
            Tool::Skopeo => {
                let mut c = std::process::Command::new("skopeo");
                c.args([
                    "copy",
                    "--quiet",
                    "--src-tls-verify=false",
                    "--dest-tls-verify=false",
                ])
                .args([
                    "--src-creds",
                    &self.src_creds,
                    "--dest-creds",
                    &self.dst_creds,
                ])
                .args(["--retry-times", &self.retries.to_string()])
                .args([format!("docker://{src}"), format!("docker://{dst}")]);
                c
            }
            Tool::Crane => {
                let mut c = std::process::Command::new(self.crane.as_deref().expect("crane built"));
                c.args([
                    "copy",
                    "--insecure",
                    "--jobs",
                    &self.jobs.to_string(),
                    src,
                    dst,
                ])
                .env("DOCKER_CONFIG", self.docker_config.path());
                c
            }
        }
    }
}

/// `scripts/build-crane`: the path of the cached crane, or why there is none.
fn build_crane() -> Result<String, String> {
    let out = std::process::Command::new(repo_root().join("scripts/build-crane"))
        .output()
        .map_err(|e| format!("scripts/build-crane did not run: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// One copy's figures.
struct Copied {
    tool: Tool,
    faults: bool,
    ok: bool,
    secs: f64,
    requests: usize,
    faulted: usize,
    /// Request body bytes the proxy read from the tool.
    bytes_sent: u64,
    /// Of those, beyond the image's own bytes.
    bytes_resent: u64,
    /// ecr-operator's own summary: retries, bytes_resent.
    summary: Option<(u64, u64)>,
    error: String,
    /// Of a failed copy: the requests the proxy failed, and those the registry
    /// answered 401 (sent without credentials), in order.
    trace: Vec<String>,
}

/// Takes the manifest and blob links of `repo` out of BED_REGISTRY2, so that no
/// later copy finds the blobs there or mounts them from there (skopeo remembers
/// where it put a blob and mounts it from there).
async fn forget(reg: &Reg, repo: &str, manifest: &str, blobs: &[String]) {
    let http = crate::support::http_client();
    let urls = std::iter::once(format!(
        "http://{}/v2/{repo}/manifests/{manifest}",
        reg.host
    ))
    .chain(
        blobs
            .iter()
            .map(|b| format!("http://{}/v2/{repo}/blobs/{b}", reg.host)),
    );
    for url in urls {
        let _ = http
            .delete(url)
            .basic_auth(&reg.user, Some(&reg.password))
            .send()
            .await;
    }
}

/// `gzip -1 -n` of `data`.
fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("gzip")
        .args(["-1", "-n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run gzip");
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("gzip output");
    writer.join().unwrap().expect("feed gzip");
    assert!(out.status.success(), "gzip failed");
    out.stdout
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// `v` with `precision` decimals, or "–" for none (NaN).
fn dash(v: f64, precision: usize) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.precision$}")
    }
}

#[tokio::test]
#[ignore = "benchmark: run with `make bench`"]
async fn benchmark_mirror_with_and_without_faults() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let layers: usize = env_or("BENCH_MIRROR_LAYERS", 4);
    let layer_mb: usize = env_or("BENCH_MIRROR_LAYER_MB", 30);
    let runs: usize = env_or("BENCH_MIRROR_RUNS", 3);
    let rate: f64 = env_or("BENCH_MIRROR_FAULT_RATE", 0.2);
    let seed: u64 = env_or("BENCH_MIRROR_SEED", 16);
    let retries: u32 = env_or("BENCH_MIRROR_RETRIES", 4);
    let jobs: u32 = 4;
    let (r1, r2) = (reg1(), reg2());
    let names = TestNames::new("bench-mirror");

    // The image: layers of random data gzipped (skopeo compresses a layer declared
    // uncompressed, and checks that a gzip one is gzip, changing the manifest
    // otherwise; the data need not be a tar), an OCI manifest.
    let src_repo = format!("{}/big", names.id);
    let pusher = Pusher::new(&r1);
    let mut layer_descs = Vec::new();
    let mut blobs = Vec::new();
    let mut image_bytes = 0u64;
    let mut diff_ids = Vec::new();
    for _ in 0..layers {
        let raw: Vec<u8> = (0..layer_mb * 1024 * 1024)
            .map(|_| rand::random::<u8>())
            .collect();
        let data = gzip(&raw);
        let d = pusher.blob(&src_repo, &data).await;
        image_bytes += data.len() as u64;
        diff_ids.push(sha256(&raw));
        blobs.push(d["digest"].as_str().unwrap().to_string());
        layer_descs.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": d["digest"], "size": d["size"],
        }));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let c = pusher.blob(&src_repo, &config).await;
    image_bytes += config.len() as u64;
    blobs.push(c["digest"].as_str().unwrap().to_string());
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c["digest"], "size": c["size"]},
        "layers": layer_descs,
    }))
    .unwrap();
    pusher
        .manifest(
            &src_repo,
            "v1",
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        )
        .await;
    image_bytes += manifest.len() as u64;
    let digest = sha256(&manifest);
    let src = format!("{}/{src_repo}:v1", r1.host);

    // The destination: BED_REGISTRY2 behind a fault proxy, for every tool and run.
    let proxy = RegistryFaults::start().await;
    let through = Reg {
        host: proxy.host.clone(),
        ..r2.clone()
    };
    let auth = authfile(&[&r1, &through]);
    let docker_config = tempfile::tempdir().unwrap();
    std::fs::copy(auth.path(), docker_config.path().join("config.json")).unwrap();
    let (ours, ours_note) = match std::env::var("ECR_OPERATOR_BIN") {
        Ok(bin) => (bin, "ECR_OPERATOR_BIN"),
        Err(_) => (
            env!("CARGO_BIN_EXE_ecr-operator").to_string(),
            "the debug build (no ECR_OPERATOR_BIN: `make bench` sets it to a release build)",
        ),
    };
    let crane = build_crane();
    let tools = Tools {
        ours,
        crane: crane.as_ref().ok().cloned(),
        auth,
        docker_config,
        src_creds: r1.creds(),
        dst_creds: r2.creds(),
        retries,
        jobs,
    };
    let mut kinds = vec![Tool::Ours, Tool::Skopeo];
    if tools.crane.is_some() {
        kinds.push(Tool::Crane);
    }
    let crane_version = tools.crane.as_deref().map_or(String::new(), |path| {
        std::process::Command::new(path)
            .arg("version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    });

    let mut results: Vec<Copied> = Vec::new();
    for run in 1..=runs {
        for faults in [false, true] {
            // Each run starts with another tool, so none always goes first.
            let mut order = kinds.clone();
            order.rotate_left((run - 1) % kinds.len());
            for tool in order {
                let repo = format!(
                    "{}/{}-{run}-{}",
                    names.id,
                    tool.slug(),
                    if faults { "faults" } else { "clean" }
                );
                let dst = format!("{}/{repo}:v1", proxy.host);
                let rule = if faults {
                    // The same seed for every tool: the n-th request of each copy
                    // meets the same decision.
                    Some(
                        proxy
                            .add(json!({
                                "match": {}, "action": "error", "status": 503,
                                "body": {"errors": [{"code": "UNAVAILABLE", "message": "injected by the benchmark"}]},
                                "probability": rate, "seed": seed + run as u64,
                            }))
                            .await,
                    )
                } else {
                    None
                };
                let since = proxy.calls().await.last().map_or(0, |c| c.seq);
                let started = Instant::now();
                let out = tools
                    .command(tool, &src, &dst)
                    .output()
                    .expect("run the copy");
                let secs = started.elapsed().as_secs_f64();
                if let Some(id) = &rule {
                    proxy.remove(id).await;
                }
                let calls = proxy.calls_since(since).await;
                let stdout = String::from_utf8_lossy(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr);
                let ok = out.status.success();
                let mut error = stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or_default()
                    .to_string();
                if ok {
                    let got = manifest_digest(&r2, &repo, "v1").await;
                    assert_eq!(got, digest, "{} changed the digest", tool.name());
                    error.clear();
                } else if !faults {
                    panic!(
                        "{} failed without faults: {stderr}\nproxy log:\n{}",
                        tool.name(),
                        proxy.log()
                    );
                }
                let summary = (tool == Tool::Ours && ok).then(|| {
                    let line = stdout
                        .lines()
                        .rfind(|l| l.starts_with("mirrored "))
                        .unwrap();
                    let field = |k: &str| {
                        line.split_whitespace()
                            .find_map(|w| w.strip_prefix(&format!("{k}=")).map(String::from))
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(0)
                    };
                    (field("retries"), field("bytes_resent"))
                });
                let bytes_sent: u64 = calls.iter().map(|c| c.request_bytes).sum();
                let copied = Copied {
                    tool,
                    faults,
                    ok,
                    secs,
                    requests: calls.len(),
                    faulted: calls.iter().filter(|c| c.fault.is_some()).count(),
                    bytes_sent,
                    bytes_resent: bytes_sent.saturating_sub(image_bytes),
                    summary,
                    error,
                    trace: if ok {
                        Vec::new()
                    } else {
                        calls
                            .iter()
                            .filter(|c| c.fault.is_some() || (c.status == 401 && c.path != "/v2/"))
                            .map(|c| c.line())
                            .collect()
                    },
                };
                println!(
                    "FIGURE mirror tool={} run={run} faults={} ok={} secs={:.2} requests={} faulted={} bytes_sent={} bytes_resent={}{}{}",
                    tool.slug(),
                    if faults { rate } else { 0.0 },
                    copied.ok,
                    copied.secs,
                    copied.requests,
                    copied.faulted,
                    copied.bytes_sent,
                    copied.bytes_resent,
                    copied.summary.map_or(String::new(), |(r, b)| format!(
                        " own_retries={r} own_bytes_resent={b}"
                    )),
                    if copied.ok {
                        String::new()
                    } else {
                        format!(" error={:?}", copied.error)
                    },
                );
                results.push(copied);
                forget(&r2, &repo, &digest, &blobs).await;
            }
        }
    }

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let skopeo_version = std::process::Command::new("skopeo")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "\nBENCHMARK mirror: {layers} layers x {layer_mb} MiB of random data + config + manifest = {image_bytes} bytes, digest {digest}"
    );
    println!(
        "BED_REGISTRY -> fault proxy -> BED_REGISTRY2 (docker-registry 2.8, plain HTTP, htpasswd); {runs} runs, each tool into a fresh repository; load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "ecr-operator: {} (--jobs {jobs} --retries {retries}); {skopeo_version} (--retry-times {retries}); crane: {}",
        ours_note,
        match &crane {
            Ok(path) => format!("{crane_version} ({path}, -j {jobs}, its built-in retries)"),
            Err(why) => format!("skipped: {why}"),
        }
    );
    println!(
        "faults: {:.0} % of the destination's requests answered 503 (seeded, {seed} + run), body drained first\n",
        rate * 100.0
    );
    println!(
        "Time, MiB/s and bytes re-sent: of the copies that got through; requests and 503s: of all.\n"
    );
    println!(
        "| tool | faults | copies ok | median (s) | MiB/s (median) | requests (median) | answered 503 (median) | bytes re-sent (MiB, each copy) | ecr-operator's own retries / bytes_resent (median) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for faults in [false, true] {
        for &tool in &kinds {
            let of: Vec<&Copied> = results
                .iter()
                .filter(|c| c.tool == tool && c.faults == faults)
                .collect();
            let good: Vec<&&Copied> = of.iter().filter(|c| c.ok).collect();
            // Time, speed and bytes of the copies that got through; requests of all.
            let secs = median(good.iter().map(|c| c.secs).collect());
            let resent: Vec<String> = good
                .iter()
                .map(|c| format!("{:.1}", c.bytes_resent as f64 / MIB))
                .collect();
            let own = if tool == Tool::Ours {
                let of_own = |f: fn((u64, u64)) -> f64| {
                    median(good.iter().filter_map(|c| c.summary).map(f).collect())
                };
                format!(
                    "{} / {} MiB",
                    dash(of_own(|(r, _)| r as f64), 0),
                    dash(of_own(|(_, b)| b as f64) / MIB, 1)
                )
            } else {
                "–".into()
            };
            println!(
                "| {} | {} | {}/{} | {} | {} | {:.0} | {:.0} | {} | {own} |",
                tool.name(),
                if faults {
                    format!("{:.0} % 503", rate * 100.0)
                } else {
                    "none".into()
                },
                good.len(),
                of.len(),
                dash(secs, 2),
                dash(image_bytes as f64 / MIB / secs, 0),
                median(of.iter().map(|c| c.requests as f64).collect()),
                median(of.iter().map(|c| c.faulted as f64).collect()),
                if resent.is_empty() {
                    "–".to_string()
                } else {
                    resent.join(", ")
                },
            );
        }
    }
    // Not a check: a copy that fails under faults is a figure too (the clean
    // copies and every digest were checked above).
    for c in results.iter().filter(|c| !c.ok) {
        println!(
            "failed: {} with faults, after {:.1} s: {}\n  faulted and 401 requests: {}",
            c.tool.name(),
            c.secs,
            c.error,
            c.trace.join("; ")
        );
    }
}
