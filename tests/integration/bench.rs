//! The EcrRegistry benchmark of docs/benchmarks.md, on the bed:
//! 1,000 selected namespaces and 10,000 unrelated Secrets. Ignored by default;
//! run it with `make bench` (a release build).

use crate::support::bed::{Bed, TestNames, create_namespace};
use crate::support::faults::Faults;
use crate::support::fixtures::{create_registry, setup, wait_ready};
use crate::support::operator::Operator;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NAMESPACES: usize = 1_000;
const UNRELATED_SECRETS: usize = 10_000;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test]
#[ignore = "benchmark: run with `make bench`"]
async fn benchmark_1000_namespaces() {
    let bed = Bed::get();
    let names = TestNames::new("bench");
    let client = setup(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let akid = names.access_key_id();
    let label = ("ecr-bench", names.id.as_str());

    // 10,000 unrelated Secrets the operator must neither cache nor touch.
    let noise = names.ns("noise");
    create_namespace(&client, &noise, &[]).await;
    let api: Api<Secret> = Api::namespaced(client.clone(), &noise);
    stream::iter(0..UNRELATED_SECRETS)
        .for_each_concurrent(32, |i| {
            let api = api.clone();
            async move {
                let s: Secret = serde_json::from_value(json!({"metadata": {"name": format!("noise-{i}")}, "stringData": {"k": "v".repeat(512)}})).unwrap();
                api.create(&PostParams::default(), &s).await.unwrap();
            }
        })
        .await;
    let ns_names: Vec<String> = (0..NAMESPACES)
        .map(|i| names.ns(&format!("n{i:04}")))
        .collect();
    stream::iter(ns_names.iter())
        .for_each_concurrent(32, |ns| {
            let client = client.clone();
            async move { create_namespace(&client, ns, &[label]).await }
        })
        .await;

    // Record when each managed secret appears or changes.
    let seen: Arc<Mutex<HashMap<String, (Instant, String)>>> = Arc::default();
    let writes = Arc::new(Mutex::new(0usize));
    let watch = {
        let (seen, writes) = (seen.clone(), writes.clone());
        let api: Api<Secret> = Api::all(client.clone());
        let cfg =
            watcher::Config::default().labels(&format!("ecr-operator.io/registry={}", names.id));
        tokio::spawn(async move {
            watcher(api, cfg)
                .applied_objects()
                .try_for_each(|s| {
                    let expires = s
                        .annotations()
                        .get("ecr-operator.io/expires-at")
                        .cloned()
                        .unwrap_or_default();
                    seen.lock()
                        .unwrap()
                        .insert(s.namespace().unwrap(), (Instant::now(), expires));
                    *writes.lock().unwrap() += 1;
                    async { Ok(()) }
                })
                .await
        })
    };

    // Tokens that live 60 s: the refresh comes 30 s after each fetch.
    faults
        .add(
            &akid,
            "GetAuthorizationToken",
            json!({"action": "expires_in", "seconds": 60}),
        )
        .await;
    create_registry(&client, &names, json!({"region": "us-east-1", "namespaces": {"selector": {"matchLabels": {label.0: label.1}}}, "refreshBefore": "30s"})).await;
    let started = Instant::now();
    let operator = Operator::start_with(bed, &names, bed.kubeconfig(), &[("RUST_LOG", "info")]);
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), 120).await;
    assert_eq!(
        r.status
            .as_ref()
            .unwrap()
            .namespaces
            .as_ref()
            .unwrap()
            .synced as usize,
        NAMESPACES
    );
    let initial_sync = started.elapsed();
    let first_expiry = r.status.unwrap().expires_at.unwrap().0.to_string();

    // New namespaces: time from create to secret present, one at a time.
    let mut latencies = vec![];
    for i in 0..100 {
        let ns = names.ns(&format!("late{i:03}"));
        let t = Instant::now();
        create_namespace(&client, &ns, &[label]).await;
        loop {
            if seen.lock().unwrap().contains_key(&ns) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "no secret in {ns}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(t.elapsed());
    }
    latencies.sort();

    // Steady state: no writes until the refresh is due.
    let writes_before = *writes.lock().unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let quiet_writes = *writes.lock().unwrap() - writes_before;

    // Full refresh: from the first secret carrying the new expiry to the last.
    let total = NAMESPACES + 100;
    let deadline = Instant::now() + Duration::from_secs(90);
    let refresh_wall = loop {
        let times: Vec<Instant> = seen
            .lock()
            .unwrap()
            .values()
            .filter(|(_, e)| *e != first_expiry)
            .map(|(t, _)| *t)
            .collect();
        if times.len() == total {
            break *times.iter().max().unwrap() - *times.iter().min().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "refresh incomplete: {}/{total}",
            times.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let calls = faults.calls(&akid, "GetAuthorizationToken").await;
    let rss = rss_kib(operator.pid());
    let unrelated = Api::<Secret>::namespaced(client.clone(), &noise)
        .list_metadata(&ListParams::default().limit(1))
        .await
        .unwrap();
    assert!(!unrelated.items.is_empty());
    watch.abort();

    println!(
        "\nBENCHMARK ({NAMESPACES} selected namespaces, {UNRELATED_SECRETS} unrelated Secrets)"
    );
    println!(
        "initial sync of {NAMESPACES} namespaces:      {:.2?}",
        initial_sync
    );
    println!(
        "new namespace -> secret present: p50 {:.0?}  p99 {:.0?}  max {:.0?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
    println!(
        "full refresh of {total} secrets (wall):   {:.2?}",
        refresh_wall
    );
    println!("GetAuthorizationToken calls (2 fetches):  {calls}");
    println!("secret writes in 10 s of steady state:    {quiet_writes}");
    println!(
        "operator resident memory (VmRSS):         {:.1} MiB",
        rss as f64 / 1024.0
    );
}
