//! Running it: the admin server, metrics, JSON logs and leader election.

use crate::support::bed::{Bed, TestNames, create_namespace, eventually};
use crate::support::fixtures::{create_registry, get_secret, setup, wait_ready};
use crate::support::operator::Operator;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;

fn spec(names: &TestNames) -> serde_json::Value {
    json!({"region": "us-east-1", "namespaces": {"selector": {"matchLabels": {"ecr-test": names.id}}}})
}

#[tokio::test]
async fn a_missing_operator_namespace_is_one_sentence_with_the_fix() {
    let bed = Bed::get();
    let names = TestNames::new("nons");
    // The CRD is there; the operator's namespace (names.ns("op")) is not.
    crate::support::fixtures::install_crd(&bed.client().await).await;
    let mut operator = Operator::start(bed, &names);
    let status = operator.wait_exit(30);
    assert!(!status.success());
    let logs = operator.logs();
    let errors: Vec<&str> = logs.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{logs}");
    let want = format!(
        "error: the operator's namespace \"{}\" does not exist: create it (`kubectl create namespace {}`) or pass --namespace / POD_NAMESPACE",
        names.ns("op"),
        names.ns("op")
    );
    assert_eq!(errors[0], want);
    assert!(!logs.contains("ErrorResponse"), "a Debug dump: {logs}");
}

#[tokio::test]
async fn admin_server_reports_health_readiness_and_metrics() {
    let bed = Bed::get();
    let names = TestNames::new("adm");
    let client = setup(&names).await;
    create_namespace(&client, &names.ns("a"), &[("ecr-test", &names.id)]).await;
    create_registry(&client, &names, spec(&names)).await;
    let operator = Operator::start_with(bed, &names, bed.kubeconfig(), &[("LOG_FORMAT", "json")]);

    eventually(20, "/healthz", || async {
        (operator.admin_get("/healthz").await.0 == 200).then_some(())
    })
    .await;
    eventually(30, "/readyz", || async {
        (operator.admin_get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    wait_ready(&client, &names.id, "True", Some("Synced"), 20).await;
    let (_, readyz) = operator.admin_get("/readyz").await;
    assert!(
        readyz.starts_with("ready\nwarning: the admission fence is not enforced"),
        "{readyz}"
    );

    let (code, text) = operator.admin_get("/metrics").await;
    assert_eq!(code, 200);
    let registry = &names.id;
    for needle in [
        format!(
            "ecr_operator_token_refreshes_total{{registry=\"{registry}\",result=\"success\"}} 1"
        ),
        format!("ecr_operator_namespaces_selected{{registry=\"{registry}\"}} 1"),
        format!("ecr_operator_namespaces_synced{{registry=\"{registry}\"}} 1"),
        format!("ecr_operator_token_expiry_timestamp_seconds{{registry=\"{registry}\"}}"),
        "ecr_operator_aws_requests_total{operation=\"GetAuthorizationToken\",result=\"success\"} 1"
            .to_string(),
        "ecr_operator_kubernetes_requests_total{verb=\"patch\",code=\"201\"}".to_string(),
        "ecr_operator_reconcile_duration_seconds_count".to_string(),
        "ecr_operator_leader 1".to_string(),
        // As the bed's admin, no admission fence holds it back.
        "ecr_operator_admission_fence_enforced 0".to_string(),
    ] {
        assert!(text.contains(&needle), "/metrics lacks {needle}:\n{text}");
    }
    for secret in bed.secret_values() {
        assert!(
            !text.contains(&secret),
            "a secret value leaked into /metrics"
        );
    }

    // JSON logs: every line is a JSON object; events carry registry/namespace fields.
    let logs = operator.logs();
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(
        logs.lines().any(|l| l.contains("\"secret written\"")
            && l.contains(&format!("\"namespace\":\"{}\"", names.ns("a")))),
        "no structured 'secret written' line"
    );
}

/// Who holds the leader Lease of the test's operator namespace.
pub(crate) async fn holder(client: &kube::Client, names: &TestNames) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), &names.ns("op"))
        .get_opt("ecr-operator")
        .await
        .unwrap()
        .and_then(|l| l.spec?.holder_identity)
}

#[tokio::test]
async fn one_leader_writes_and_the_other_takes_over() {
    let bed = Bed::get();
    let names = TestNames::new("lead");
    let client = setup(&names).await;
    create_registry(&client, &names, spec(&names)).await;
    let mut first = Operator::start_with(bed, &names, bed.kubeconfig(), &[("POD_NAME", "first")]);
    eventually(20, "first to lead", || async {
        (holder(&client, &names).await.as_deref() == Some("first")).then_some(())
    })
    .await;
    let second = Operator::start_with(bed, &names, bed.kubeconfig(), &[("POD_NAME", "second")]);
    eventually(20, "second ready as follower", || async {
        (second.admin_get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    let (_, metrics) = second.admin_get("/metrics").await;
    assert!(metrics.contains("ecr_operator_leader 0"), "{metrics}");

    let a = names.ns("a");
    create_namespace(&client, &a, &[("ecr-test", &names.id)]).await;
    eventually(15, "secret from the leader", || async {
        get_secret(&client, &a, &names.id).await
    })
    .await;
    assert!(first.logs().contains("secret written"));
    assert!(
        !second.logs().contains("secret written"),
        "the follower wrote"
    );

    // SIGTERM: the leader releases the lease and exits cleanly within a few seconds.
    let started = std::time::Instant::now();
    let status = first.terminate(10);
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(first.logs().contains("lease released"));
    // The follower takes over within the lease duration (15 s); it polls the Lease.
    eventually(20, "second to lead", || async {
        (holder(&client, &names).await.as_deref() == Some("second")).then_some(())
    })
    .await;
    let b = names.ns("b");
    create_namespace(&client, &b, &[("ecr-test", &names.id)]).await;
    eventually(15, "secret from the new leader", || async {
        get_secret(&client, &b, &names.id).await
    })
    .await;
}

#[tokio::test]
async fn a_killed_leader_is_replaced_within_the_lease_duration() {
    let bed = Bed::get();
    let names = TestNames::new("kill");
    let client = setup(&names).await;
    create_registry(&client, &names, spec(&names)).await;
    let first = Operator::start_with(bed, &names, bed.kubeconfig(), &[("POD_NAME", "first")]);
    eventually(20, "first to lead", || async {
        (holder(&client, &names).await.as_deref() == Some("first")).then_some(())
    })
    .await;
    let second = Operator::start_with(bed, &names, bed.kubeconfig(), &[("POD_NAME", "second")]);
    eventually(20, "second ready", || async {
        (second.admin_get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    let killed = std::time::Instant::now();
    drop(first); // SIGKILL: no release
    eventually(25, "second to lead", || async {
        (holder(&client, &names).await.as_deref() == Some("second")).then_some(())
    })
    .await;
    let took = killed.elapsed();
    println!("FIGURE leader_kill takeover_s={:.1}", took.as_secs_f64());
    assert!(
        took <= std::time::Duration::from_secs(20),
        "takeover took {took:?} (lease 15 s)"
    );
    let a = names.ns("a");
    create_namespace(&client, &a, &[("ecr-test", &names.id)]).await;
    eventually(15, "secret from the new leader", || async {
        get_secret(&client, &a, &names.id).await
    })
    .await;
}

/// SIGTERM at any moment ends the process within a few seconds, and a leader
/// releases its lease: before it leads, right after "became leader" (while the
/// controllers start), and a moment later. A user saw a process keep running
/// after "shutdown requested" when SIGTERM came right after "became leader".
#[tokio::test]
async fn sigterm_at_any_moment_stops_the_process_and_releases_the_lease() {
    let bed = Bed::get();
    let names = TestNames::new("term");
    let client = setup(&names).await;
    create_namespace(&client, &names.ns("a"), &[("ecr-test", &names.id)]).await;
    create_registry(&client, &names, spec(&names)).await;
    for (i, wait_for) in [
        "waiting to become leader",
        "became leader",
        "became leader",
        "caches synced",
        "became leader",
        "caches synced",
    ]
    .into_iter()
    .enumerate()
    {
        let pod = format!("term-{i}");
        let mut operator =
            Operator::start_with(bed, &names, bed.kubeconfig(), &[("POD_NAME", &pod)]);
        eventually(20, wait_for, || async {
            operator.logs().contains(wait_for).then_some(())
        })
        .await;
        let started = std::time::Instant::now();
        eprintln!("try {i}: SIGTERM after {wait_for:?}");
        let status = operator.terminate(10);
        assert!(
            status.success(),
            "try {i} ({wait_for:?}): exit status {status:?}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "try {i} ({wait_for:?}): shutdown took {:?}",
            started.elapsed()
        );
        if i > 0 {
            assert!(
                operator.logs().contains("lease released"),
                "try {i}: {}",
                operator.logs()
            );
            assert_ne!(holder(&client, &names).await.as_deref(), Some(pod.as_str()));
        }
        println!(
            "FIGURE sigterm try={i} after={wait_for:?} exit_s={:.2} lease_released={}",
            started.elapsed().as_secs_f64(),
            i == 0 || operator.logs().contains("lease released")
        );
    }
}
