//! The fault suite (docs/reliability.md): what the operator does in each fault and
//! how fast it recovers, on the bed. Each test prints its figures as
//! `FIGURE <scenario> key=value ...` lines (`-- --nocapture` shows them); the
//! assertions are what must hold, the figures what was measured.

use crate::support::bed::{Bed, TestNames, create_namespace, eventually};
use crate::support::faults::Faults;
use crate::support::fixtures::{
    create_registry, get_secret, selected_by, setup, wait_ready, wait_secret,
};
use crate::support::leaks::assert_no_leak;
use crate::support::operator::Operator;
use ecr_operator::crd::ecr_registry::EcrRegistry;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const EXPIRES_AT: &str = "ecr-operator.io/expires-at";
/// Token lifetime in the outage scenario, and how long before expiry the
/// operator refreshes: a refresh is due every 10 s.
const TOKEN_SECS: u64 = 20;
const REFRESH_BEFORE: &str = "10s";
/// Longer than two refresh periods, past the served token's expiry, and past
/// the operator's 30 s timeout of one AWS operation (the hanging endpoint).
const OUTAGE: Duration = Duration::from_secs(45);

/// What one outage did.
struct Outage {
    kind: &'static str,
    reason: String,
    /// Token fetches the operator made (each may be several HTTP attempts).
    fetches: u64,
    /// HTTP calls the fault proxy saw.
    calls: u64,
    recover: Duration,
}

/// Scenario 1: an AWS outage of each kind in turn (each on its own identity, so
/// they run side by side), across two refresh periods.
#[tokio::test]
async fn an_aws_outage_of_any_kind_keeps_the_secrets_names_the_expiry_and_recovers() {
    let kinds: [(&str, Value); 4] = [
        ("5xx", json!({"action": "server_error"})),
        ("throttling", json!({"action": "throttle"})),
        ("dropped connections", json!({"action": "drop"})),
        // Far longer than the operator's 30 s operation timeout.
        (
            "hanging endpoint",
            json!({"action": "delay", "delayMs": 600_000}),
        ),
    ];
    let runs = kinds
        .into_iter()
        .enumerate()
        .map(|(i, (kind, action))| outage(i, kind, action));
    for o in futures::future::join_all(runs).await {
        println!(
            "FIGURE outage kind={:?} reason={} token_fetches={} http_calls={} recover_s={:.1}",
            o.kind,
            o.reason,
            o.fetches,
            o.calls,
            o.recover.as_secs_f64()
        );
    }
}

async fn outage(i: usize, kind: &'static str, action: Value) -> Outage {
    let bed = Bed::get();
    let names = TestNames::new(&format!("fout{i}"));
    let client = setup(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let akid = names.access_key_id();
    let short = faults
        .add(
            &akid,
            "GetAuthorizationToken",
            json!({"action": "expires_in", "seconds": TOKEN_SECS}),
        )
        .await;
    let operator = Operator::start(bed, &names);
    let ns = names.ns("a");
    create_namespace(&client, &ns, &[("ecr-test", &names.id)]).await;
    create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "namespaces": selected_by(&names), "refreshBefore": REFRESH_BEFORE}),
    )
    .await;
    let before = wait_secret(&client, &ns, &names.id).await;
    wait_ready(&client, &names.id, "True", Some("Synced"), 15).await;
    let expires = before.annotations()[EXPIRES_AT].clone();

    // The first matching rule decides: the expiry rule makes way for the fault.
    faults.remove(&short).await;
    let calls_before = faults.calls(&akid, "GetAuthorizationToken").await;
    let fetches_before = token_fetches(&operator).await;
    let rule = faults.add(&akid, "GetAuthorizationToken", action).await;
    let started = Instant::now();
    let mut named = None;
    while started.elapsed() < OUTAGE {
        let secret = get_secret(&client, &ns, &names.id)
            .await
            .unwrap_or_else(|| panic!("{kind}: the secret was deleted during the outage"));
        assert_eq!(
            secret.resource_version(),
            before.resource_version(),
            "{kind}: the secret was touched while AWS failed"
        );
        let r: EcrRegistry = Api::all(client.clone()).get(&names.id).await.unwrap();
        if let Some(c) = ecr_operator::registry::status::ready(r.status.as_ref())
            && c.status == "False"
        {
            named = Some((c.reason.clone(), c.message.clone()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let calls = faults.calls(&akid, "GetAuthorizationToken").await - calls_before;
    let fetches = token_fetches(&operator).await - fetches_before;
    let (reason, message) = named.unwrap_or_else(|| panic!("{kind}: Ready never went False"));
    assert!(
        message.contains(&expires),
        "{kind}: Ready=False does not name the served token's expiry {expires}: {message}"
    );
    // No tight loop: the backoff (2 s, doubling, with jitter) allows 5 fetches in
    // 45 s (at 0, 2, 6, 14 and 30 s); each may be up to 3 attempts of the SDK's
    // retry, and a dropped connection one more on the HTTP client's side.
    assert!(
        fetches <= 6,
        "{kind}: {fetches} token fetches in {OUTAGE:?}"
    );
    assert!(
        calls <= fetches * 6,
        "{kind}: {calls} HTTP calls for {fetches} token fetches"
    );

    faults.remove(&rule).await;
    let ended = Instant::now();
    eventually(
        120,
        &format!("{kind}: a fresh token after the outage"),
        || async {
            let s = get_secret(&client, &ns, &names.id).await?;
            (s.annotations().get(EXPIRES_AT) != Some(&expires)).then_some(())
        },
    )
    .await;
    wait_ready(&client, &names.id, "True", Some("Synced"), 30).await;
    let recover = ended.elapsed();
    // Recovery waits out at most the backoff step the outage reached (and, for a
    // hanging call, its 30 s timeout), far below the 5 minute cap.
    assert!(
        recover < Duration::from_secs(90),
        "{kind}: recovered after {recover:?}"
    );
    assert_no_leak(&client, &operator, &names.id, &[]).await;
    Outage {
        kind,
        reason,
        fetches,
        calls,
        recover,
    }
}

/// GetAuthorizationToken operations the operator made, by its metrics.
async fn token_fetches(operator: &Operator) -> u64 {
    let (_, metrics) = operator.admin_get("/metrics").await;
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("ecr_operator_aws_requests_total{operation=\"GetAuthorizationToken\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn holder(client: &Client, names: &TestNames) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), &names.ns("op"))
        .get_opt("ecr-operator")
        .await
        .unwrap()
        .and_then(|l| l.spec?.holder_identity)
}

/// Scenario 5: a leader paused (SIGSTOP) past its lease, then resumed: the other
/// replica takes over, and the old one writes nothing once it runs again.
#[tokio::test]
async fn a_leader_paused_past_its_lease_writes_nothing_when_it_resumes() {
    let bed = Bed::get();
    let names = TestNames::new("fstop");
    let client = setup(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    // Short tokens: a refresh (a write to every secret) is due every few seconds,
    // so the paused leader resumes with writes overdue.
    faults
        .add(
            &names.access_key_id(),
            "GetAuthorizationToken",
            json!({"action": "expires_in", "seconds": 14}),
        )
        .await;
    for n in 0..5 {
        create_namespace(
            &client,
            &names.ns(&n.to_string()),
            &[("ecr-test", &names.id)],
        )
        .await;
    }
    create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "namespaces": selected_by(&names), "refreshBefore": "10s"}),
    )
    .await;
    let first = Operator::start_with(bed, &names, bed.kubeconfig(), &[("POD_NAME", "first")]);
    eventually(20, "first to lead", || async {
        (holder(&client, &names).await.as_deref() == Some("first")).then_some(())
    })
    .await;
    wait_secret(&client, &names.ns("0"), &names.id).await;
    let second = Operator::start_with(bed, &names, bed.kubeconfig(), &[("POD_NAME", "second")]);
    eventually(20, "second ready as follower", || async {
        (second.admin_get("/readyz").await.0 == 200).then_some(())
    })
    .await;

    signal(first.pid(), "STOP");
    let paused = Instant::now();
    eventually(40, "second to lead", || async {
        (holder(&client, &names).await.as_deref() == Some("second")).then_some(())
    })
    .await;
    let takeover = paused.elapsed();
    // The new leader writes (the next refresh).
    let written = second.logs().matches("secret written").count();
    eventually(30, "a write by the new leader", || async {
        (second.logs().matches("secret written").count() > written).then_some(())
    })
    .await;
    let logs_before = first.logs().len();
    signal(first.pid(), "CONT");
    // Long enough for overdue refreshes and the old leader's next renewal.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let logs = first.logs();
    let (led, after) = logs.split_at(logs_before);
    assert!(
        !writes(led).is_empty(),
        "no write found in the leader's logs before the pause: the check cannot see writes"
    );
    let writes = writes(after);
    println!(
        "FIGURE leader_pause takeover_s={:.1} writes_after_resume={}",
        takeover.as_secs_f64(),
        writes.len()
    );
    assert!(
        writes.is_empty(),
        "the paused leader wrote after it resumed:\n{}",
        writes.join("\n")
    );
    assert_eq!(holder(&client, &names).await.as_deref(), Some("second"));
}

/// The writes in an operator's log: every kind of write it makes is logged
/// (secrets, ServiceAccounts, statuses at debug level, Events, Jobs).
fn writes(log: &str) -> Vec<&str> {
    const WRITES: &[&str] = &[
        "secret written",
        "secret removed",
        "secret taken back",
        "imagePullSecrets updated",
        "status written",
        "event recorded",
        " created",
        "deleted (older spec)",
    ];
    log.lines()
        .filter(|l| WRITES.iter().any(|w| l.contains(w)))
        .collect()
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}
