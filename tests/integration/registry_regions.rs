//! EcrRegistry with several regions (`spec.regions`) and ECR Public
//! (`spec.public`), with the real operator binary on the bed: one token per
//! region, each region's hosts holding its own token (and pulling with it); a
//! region whose refresh fails keeps its entry while its last token is valid and
//! does not hold the others back; ECR Public's entry and the request that
//! fetched it; regions of two partitions refused before any AWS call.
//!
//! Each region gets a token of its own from the fault proxy's `token` rule
//! matched on the SigV4 region; ECR Public is the proxy's stand-in (moto has
//! none), whose password is `public-auth-token`.

use crate::support::bed::{Bed, TestNames, create_namespace, eventually};
use crate::support::faults::Faults;
use crate::support::fixtures::{
    authfile_for, create_registry, create_registry_named, docker_config, get_secret, selected_by,
    setup, skopeo_pull, wait_ready, wait_secret,
};
use crate::support::operator::Operator;
use crate::support::private_registry::PrivateRegistry;
use base64::Engine as _;
use ecr_operator::crd::ecr_registry::{EcrRegistry, RegionStatus};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use std::time::Duration;

const EU_HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
const US_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const PUBLIC_HOST: &str = "public.ecr.aws";
/// The ECR Public stand-in's password (faultproxy.py, `--public-password`).
const PUBLIC_PASSWORD: &str = "public-auth-token";
const EXPIRES_AT: &str = "ecr-operator.io/expires-at";
const GET_TOKEN: &str = "GetAuthorizationToken";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A fault-proxy rule giving `region`'s GetAuthorizationToken of this access key
/// the password `password` (and, with `seconds`, that lifetime).
fn token_rule(akid: &str, region: &str, password: &str, seconds: Option<u64>) -> Value {
    let mut rule = json!({
        "match": {"accessKeyId": akid, "operation": GET_TOKEN, "region": region},
        "action": "token",
        "password": password,
    });
    if let Some(s) = seconds {
        rule["seconds"] = json!(s);
    }
    rule
}

/// The `auths` entry of `host` in the secret (panics when there is none).
fn entry(secret: &Secret, host: &str) -> Value {
    let config = docker_config(secret);
    let e = config["auths"][host].clone();
    assert!(
        e.is_object(),
        "no auths entry for {host}: {:?}",
        hosts(secret)
    );
    e
}

/// The hosts of the secret's `auths`, in order.
fn hosts(secret: &Secret) -> Vec<String> {
    docker_config(secret)["auths"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn password(secret: &Secret, host: &str) -> String {
    entry(secret, host)["password"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Asserts the entry is exactly what a private ECR entry holds: username AWS,
/// the password, and `auth` = base64("AWS:<password>").
fn assert_entry(secret: &Secret, host: &str, want_password: &str) {
    assert_eq!(
        entry(secret, host),
        json!({"username": "AWS", "password": want_password, "auth": b64(&format!("AWS:{want_password}"))}),
        "the entry of {host}"
    );
}

async fn registry(client: &Client, name: &str) -> EcrRegistry {
    Api::<EcrRegistry>::all(client.clone())
        .get(name)
        .await
        .expect("get EcrRegistry")
}

fn regions(r: &EcrRegistry) -> Vec<RegionStatus> {
    r.status
        .as_ref()
        .map(|s| s.regions.clone())
        .unwrap_or_default()
}

fn region(r: &EcrRegistry, name: &str) -> RegionStatus {
    regions(r)
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("status.regions has no {name}: {:?}", regions(r)))
}

/// (name, reason) of each entry of status.regions.
fn region_reasons(r: &EcrRegistry) -> Vec<(String, Option<String>)> {
    regions(r).into_iter().map(|s| (s.name, s.reason)).collect()
}

fn summary(r: &EcrRegistry) -> Option<String> {
    r.status.as_ref().and_then(|s| s.region_summary.clone())
}

/// Ready's (status, reason, message).
fn ready(r: &EcrRegistry) -> (String, String, String) {
    ecr_operator::registry::status::ready(r.status.as_ref())
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

fn expiry_of(s: &RegionStatus) -> jiff::Timestamp {
    s.expires_at.clone().expect("an expiresAt").0
}

fn annotated_expiry(secret: &Secret) -> jiff::Timestamp {
    secret.annotations()[EXPIRES_AT]
        .parse()
        .expect("an RFC 3339 expires-at annotation")
}

/// The regions (SigV4 scope) of the private ECR token calls of this test, sorted.
async fn token_call_regions(faults: &Faults, akid: &str) -> Vec<String> {
    let mut regions: Vec<String> = faults
        .records_where(akid, &[("operation", GET_TOKEN), ("service", "ecr")])
        .await
        .iter()
        .map(|c| c["region"].as_str().unwrap_or_default().to_string())
        .collect();
    regions.sort();
    regions
}

/// 1. Two regions with tokens of their own: one secret holds both regions' hosts,
///    each with its region's password, fetched with one call per region; each
///    entry pulls from the registry that accepts its password, and only there.
#[tokio::test]
async fn two_regions_each_get_their_own_token_in_one_secret_and_each_entry_pulls() {
    let bed = Bed::get();
    let names = TestNames::new("rgtwo");
    let client = setup(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let akid = names.access_key_id();
    // us-east-1: the password the bed's registry accepts; eu-west-1: one of
    // this test's own, accepted by a registry of its own.
    let us_password = bed.var("BED_ECR_PASSWORD").to_string();
    let eu_password = format!("eu-west-1-{}", names.id);
    for (region, password) in [("eu-west-1", &eu_password), ("us-east-1", &us_password)] {
        faults
            .add_rule(token_rule(&akid, region, password, None))
            .await;
    }
    let eu_registry = PrivateRegistry::start("AWS", &eu_password);
    let eu_image = eu_registry.push_bed_image("bed/hello:v1", "AWS", &eu_password);

    let operator = Operator::start(bed, &names);
    let ns = names.ns("a");
    create_namespace(&client, &ns, &[("ecr-test", &names.id)]).await;
    create_registry(
        &client,
        &names,
        json!({"regions": ["eu-west-1", "us-east-1"], "namespaces": selected_by(&names)}),
    )
    .await;
    let secret = wait_secret(&client, &ns, &names.id).await;
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), 30).await;

    // One secret, both regions' hosts, each with its own region's token.
    assert_eq!(hosts(&secret), [EU_HOST, US_HOST]);
    assert_entry(&secret, EU_HOST, &eu_password);
    assert_entry(&secret, US_HOST, &us_password);
    let status = r.status.clone().unwrap();
    assert_eq!(status.registries, [EU_HOST, US_HOST]);
    assert_eq!(
        region_reasons(&r),
        [("eu-west-1".into(), None), ("us-east-1".into(), None)],
        "{:?}",
        status.regions
    );
    for s in &status.regions {
        assert!(
            s.expires_at.is_some() && s.last_refresh_time.is_some(),
            "{s:?}"
        );
    }
    assert_eq!(summary(&r).as_deref(), Some("eu-west-1,us-east-1"));
    // The REGIONS printer column.
    let out = bed
        .kubectl()
        .args(["get", "ecrreg", &names.id, "--no-headers"])
        .output()
        .unwrap();
    let row = String::from_utf8_lossy(&out.stdout).to_string();
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        columns[..3],
        [names.id.as_str(), "eu-west-1,us-east-1", "True"],
        "{row}"
    );

    // One GetAuthorizationToken per region, and no more in a quiet while.
    assert_eq!(
        token_call_regions(&faults, &akid).await,
        ["eu-west-1", "us-east-1"]
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        token_call_regions(&faults, &akid).await,
        ["eu-west-1", "us-east-1"],
        "more token calls than one per region"
    );

    // Each entry pulls from the registry that accepts its password, and not
    // from the other one: the pull depends on the entry.
    let bed_registry = bed.var("BED_REGISTRY");
    let bed_image = bed.var("BED_IMAGE");
    let pulls = [
        (US_HOST, bed_registry, bed_image, true),
        (EU_HOST, eu_registry.host.as_str(), eu_image.as_str(), true),
        (EU_HOST, bed_registry, bed_image, false),
        (US_HOST, eu_registry.host.as_str(), eu_image.as_str(), false),
    ];
    for (host, registry_host, image, works) in pulls {
        let authfile = authfile_for(&secret, host, registry_host);
        let (ok, err) = skopeo_pull(image, authfile.path());
        if works {
            assert!(ok, "pull of {image} with the entry of {host} failed: {err}");
        } else {
            assert!(
                !ok && err.to_lowercase().contains("unauthorized"),
                "pull of {image} with the entry of {host} should be unauthorized: {err}"
            );
        }
    }

    let mut secrets = bed.secret_values();
    secrets.extend([eu_password.clone(), b64(&format!("AWS:{eu_password}"))]);
    operator.assert_logs_hold_none_of(&secrets);
}

/// 2. A region whose refresh fails keeps its entry (its last token) while that
///    is valid, and the other region is refreshed meanwhile; Ready=False names
///    the region and the cause, status.regions the failing one only. Once the
///    last token has expired its entry is dropped, the other still served; after
///    the failure clears both are fresh and Ready=True.
#[tokio::test]
async fn a_failing_region_keeps_its_entry_while_valid_and_the_other_refreshes() {
    let bed = Bed::get();
    let names = TestNames::new("rgfail");
    let client = setup(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let akid = names.access_key_id();
    let pw = |region: &str, n: u32| format!("{region}-{n}-{}", names.id);
    // Tokens that live 90 s; with refreshBefore 60s each is refreshed 30 s
    // after its fetch (plus at most 3 s of jitter).
    let mut eu_rule = faults
        .add_rule(token_rule(&akid, "eu-west-1", &pw("eu", 1), Some(90)))
        .await;
    let us_rule = faults
        .add_rule(token_rule(&akid, "us-east-1", &pw("us", 1), Some(90)))
        .await;
    let operator = Operator::start(bed, &names);
    let ns = names.ns("a");
    create_namespace(&client, &ns, &[("ecr-test", &names.id)]).await;
    create_registry(
        &client,
        &names,
        json!({"regions": ["eu-west-1", "us-east-1"], "namespaces": selected_by(&names), "refreshBefore": "60s"}),
    )
    .await;
    let first = wait_secret(&client, &ns, &names.id).await;
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), 30).await;
    assert_entry(&first, EU_HOST, &pw("eu", 1));
    assert_entry(&first, US_HOST, &pw("us", 1));
    let us_expiry = expiry_of(&region(&r, "us-east-1"));
    let left = us_expiry.duration_since(jiff::Timestamp::now());
    assert!(
        left > jiff::SignedDuration::from_secs(60),
        "the us-east-1 token should live 90 s, {left:#} left"
    );

    // us-east-1 is throttled from now on; eu-west-1's next token has another
    // password. (The first matching rule decides: the old rules make way.)
    faults.remove(&us_rule).await;
    let throttle = faults
        .add_rule(json!({
            "match": {"accessKeyId": akid, "operation": GET_TOKEN, "region": "us-east-1"},
            "action": "throttle",
        }))
        .await;
    faults.remove(&eu_rule).await;
    eu_rule = faults
        .add_rule(token_rule(&akid, "eu-west-1", &pw("eu", 2), Some(90)))
        .await;

    // At the refresh (~30 s after the fetch): eu-west-1 fresh, us-east-1 kept.
    let broken = eventually(60, "eu-west-1's entry to be refreshed", || async {
        let s = get_secret(&client, &ns, &names.id).await?;
        assert!(
            hosts(&s).contains(&US_HOST.to_string()),
            "the failing region's entry was dropped while its token was valid ({} s left): {:?}",
            us_expiry.duration_since(jiff::Timestamp::now()).as_secs(),
            hosts(&s)
        );
        (password(&s, EU_HOST) == pw("eu", 2)).then_some(s)
    })
    .await;
    assert_entry(&broken, EU_HOST, &pw("eu", 2));
    assert_entry(&broken, US_HOST, &pw("us", 1));
    // The secret is bounded by the token that expires first: us-east-1's last.
    assert_eq!(annotated_expiry(&broken).as_second(), us_expiry.as_second());

    // The status says so: Ready=False naming the region and the cause.
    let r = wait_ready(&client, &names.id, "False", Some("Throttled"), 15).await;
    let (_, _, message) = ready(&r);
    assert!(
        message.starts_with("region us-east-1: AWS throttled GetAuthorizationToken"),
        "{message}"
    );
    assert_eq!(
        region_reasons(&r),
        [
            ("eu-west-1".into(), None),
            ("us-east-1".into(), Some("Throttled".into()))
        ]
    );
    assert_eq!(
        summary(&r).as_deref(),
        Some("eu-west-1,us-east-1(Throttled)")
    );
    assert_eq!(
        expiry_of(&region(&r, "us-east-1")),
        us_expiry,
        "the failing region's expiry is its last token's"
    );
    assert!(expiry_of(&region(&r, "eu-west-1")) > us_expiry);
    assert_eq!(
        r.status.as_ref().unwrap().expires_at.clone().unwrap().0,
        us_expiry,
        "status.expiresAt is the earliest expiry in the secret"
    );
    let throttled = faults
        .records_where(&akid, &[("region", "us-east-1"), ("action", "throttle")])
        .await;
    assert!(!throttled.is_empty(), "the us-east-1 refresh was not tried");

    // Until us-east-1's last token expires its entry stays; then it is dropped
    // and eu-west-1 is still served. Ready stays False all along.
    let dropped = eventually(120, "the expired us-east-1 entry to be dropped", || async {
        let r = registry(&client, &names.id).await;
        let (status, reason, message) = ready(&r);
        assert!(
            status == "False" && reason == "Throttled",
            "Ready while us-east-1 fails: {status} {reason} {message}"
        );
        let s = get_secret(&client, &ns, &names.id).await?;
        let now = jiff::Timestamp::now();
        if hosts(&s).contains(&US_HOST.to_string()) {
            return None;
        }
        assert!(
            now >= us_expiry,
            "the us-east-1 entry was dropped {} s before its token expired",
            us_expiry.duration_since(now).as_secs()
        );
        Some(s)
    })
    .await;
    assert_eq!(hosts(&dropped), [EU_HOST]);
    assert_entry(&dropped, EU_HOST, &pw("eu", 2));
    assert!(annotated_expiry(&dropped) > us_expiry);
    let r = registry(&client, &names.id).await;
    assert!(
        ready(&r).2.starts_with("region us-east-1: "),
        "{:?}",
        ready(&r)
    );
    assert_eq!(region(&r, "us-east-1").reason.as_deref(), Some("Throttled"));

    // The failure clears: both fresh, Ready=True, no reason left.
    faults.remove(&throttle).await;
    let us_rule = faults
        .add_rule(token_rule(&akid, "us-east-1", &pw("us", 2), Some(90)))
        .await;
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), 60).await;
    let healed = get_secret(&client, &ns, &names.id).await.unwrap();
    assert_eq!(hosts(&healed), [EU_HOST, US_HOST]);
    assert_entry(&healed, EU_HOST, &pw("eu", 2));
    assert_entry(&healed, US_HOST, &pw("us", 2));
    assert_eq!(
        region_reasons(&r),
        [("eu-west-1".into(), None), ("us-east-1".into(), None)]
    );
    assert_eq!(summary(&r).as_deref(), Some("eu-west-1,us-east-1"));
    assert!(expiry_of(&region(&r, "us-east-1")) > us_expiry);
    for id in [eu_rule, us_rule] {
        faults.remove(&id).await;
    }
    operator.assert_logs_hold_none_of(&bed.secret_values());
}

/// 3. ECR Public: `public.ecr.aws` in the secret in the shape of a private
///    entry, fetched with exactly one ECR Public call of the real API's shape
///    (shared by every registry of the identity); a public-only registry works.
#[tokio::test]
async fn ecr_public_is_written_like_a_private_entry_from_one_ecr_public_call() {
    let bed = Bed::get();
    let names = TestNames::new("rgpub");
    let client = setup(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let akid = names.access_key_id();
    let operator = Operator::start(bed, &names);
    let ns = names.ns("a");
    create_namespace(&client, &ns, &[("ecr-test", &names.id)]).await;
    create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "public": true, "namespaces": selected_by(&names)}),
    )
    .await;
    let only = format!("{}-only", names.id);
    create_registry_named(
        &client,
        &names,
        &only,
        json!({"public": true, "namespaces": selected_by(&names)}),
    )
    .await;

    let secret = wait_secret(&client, &ns, &names.id).await;
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), 30).await;
    assert_eq!(hosts(&secret), [US_HOST, PUBLIC_HOST]);
    assert_entry(&secret, PUBLIC_HOST, PUBLIC_PASSWORD);
    assert_entry(&secret, US_HOST, bed.var("BED_ECR_PASSWORD"));
    assert_eq!(
        region_reasons(&r),
        [("us-east-1".into(), None), ("public".into(), None)]
    );
    assert_eq!(summary(&r).as_deref(), Some("us-east-1,public"));
    assert!(
        r.status
            .as_ref()
            .unwrap()
            .registries
            .contains(&PUBLIC_HOST.to_string())
    );

    // Public only: no region, no private host.
    let public_only = wait_secret(&client, &ns, &only).await;
    let r = wait_ready(&client, &only, "True", Some("Synced"), 30).await;
    assert_eq!(hosts(&public_only), [PUBLIC_HOST]);
    assert_entry(&public_only, PUBLIC_HOST, PUBLIC_PASSWORD);
    assert_eq!(region_reasons(&r), [("public".into(), None)]);
    assert_eq!(summary(&r).as_deref(), Some("public"));
    assert_eq!(r.status.as_ref().unwrap().registries, [PUBLIC_HOST]);

    // Exactly one ECR Public call for both registries, shaped as the real API
    // wants it (the stand-in checks only the shape, so the test does too).
    let public = faults
        .records_where(&akid, &[("service", "ecr-public")])
        .await;
    assert_eq!(public.len(), 1, "{public:#?}");
    let call = &public[0];
    for (field, want) in [
        ("region", "us-east-1"),
        ("operation", GET_TOKEN),
        ("target", "SpencerFrontendService.GetAuthorizationToken"),
        ("contentType", "application/x-amz-json-1.1"),
        ("signingService", "ecr-public"),
        ("method", "POST"),
        ("path", "/"),
    ] {
        assert_eq!(call[field], want, "{field} of the ECR Public call: {call}");
    }
    assert_eq!(call["status"], 200, "{call}");
    assert_eq!(token_call_regions(&faults, &akid).await, ["us-east-1"]);

    let mut secrets = bed.secret_values();
    secrets.extend([
        PUBLIC_PASSWORD.to_string(),
        b64(&format!("AWS:{PUBLIC_PASSWORD}")),
    ]);
    operator.assert_logs_hold_none_of(&secrets);
}

/// 3b. A denied ECR Public call: Ready=False EcrAccessDenied naming both IAM
///     actions it needs, while the private region's entry is still written.
#[tokio::test]
async fn a_denied_ecr_public_call_names_its_permissions_and_the_private_entry_is_written() {
    let bed = Bed::get();
    let names = TestNames::new("rgpubdeny");
    let client = setup(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let akid = names.access_key_id();
    faults
        .add_rule(json!({
            "match": {"accessKeyId": akid, "service": "ecr-public"},
            "action": "access_denied",
        }))
        .await;
    let _operator = Operator::start(bed, &names);
    let ns = names.ns("a");
    create_namespace(&client, &ns, &[("ecr-test", &names.id)]).await;
    create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "public": true, "namespaces": selected_by(&names)}),
    )
    .await;
    let r = wait_ready(&client, &names.id, "False", Some("EcrAccessDenied"), 30).await;
    let (_, _, message) = ready(&r);
    assert!(message.starts_with("region public: "), "{message}");
    for action in [
        "ecr-public:GetAuthorizationToken",
        "sts:GetServiceBearerToken",
    ] {
        assert!(message.contains(action), "{message}");
    }
    assert_eq!(
        region_reasons(&r),
        [
            ("us-east-1".into(), None),
            ("public".into(), Some("EcrAccessDenied".into()))
        ]
    );
    assert_eq!(
        summary(&r).as_deref(),
        Some("us-east-1,public(EcrAccessDenied)")
    );

    // The private region is served all the same.
    let secret = wait_secret(&client, &ns, &names.id).await;
    assert_eq!(hosts(&secret), [US_HOST]);
    assert_entry(&secret, US_HOST, bed.var("BED_ECR_PASSWORD"));
    let denied = faults
        .records_where(&akid, &[("service", "ecr-public")])
        .await;
    assert!(
        !denied.is_empty() && denied.iter().all(|c| c["action"] == "access_denied"),
        "{denied:#?}"
    );
}

/// 4. Regions of two partitions pass the CRD's rules but cannot share an
///    identity: Ready=False InvalidSpec naming spec.regions, no AWS call at all,
///    no secret.
#[tokio::test]
async fn regions_of_two_partitions_are_refused_before_any_aws_call() {
    let bed = Bed::get();
    let names = TestNames::new("rgpart");
    let client = setup(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let _operator = Operator::start(bed, &names);
    let ns = names.ns("a");
    create_namespace(&client, &ns, &[("ecr-test", &names.id)]).await;
    create_registry(
        &client,
        &names,
        json!({"regions": ["eu-west-1", "cn-north-1"], "namespaces": selected_by(&names)}),
    )
    .await;
    let r = wait_ready(&client, &names.id, "False", Some("InvalidSpec"), 30).await;
    let (_, _, message) = ready(&r);
    assert!(
        message.starts_with(
            "spec.regions: eu-west-1 (partition aws) and cn-north-1 (partition aws-cn) are in different partitions"
        ),
        "{message}"
    );
    // A while later: still no secret, and not one AWS call with this identity.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(get_secret(&client, &ns, &names.id).await.is_none());
    let calls = faults.records_where(&names.access_key_id(), &[]).await;
    assert!(
        calls.is_empty(),
        "AWS calls for an invalid spec: {calls:#?}"
    );
    let r = registry(&client, &names.id).await;
    assert_eq!(ready(&r).1, "InvalidSpec");
}

/// A lasting failure of one source (ECR Public denied) must not hold back the
/// refresh of another: the requeue after a lasting error used to ignore the next
/// refresh due and came back after five minutes, with the healthy region's token
/// expired in the secret by then.
#[tokio::test]
async fn a_lasting_failure_of_one_region_does_not_delay_the_others_refresh() {
    let bed = Bed::get();
    let names = TestNames::new("rglast");
    let client = setup(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let akid = names.access_key_id();
    faults
        .add_rule(json!({"match": {"accessKeyId": akid, "service": "ecr-public"}, "action": "access_denied"}))
        .await;
    let pw = |n: u32| format!("us-{n}-{}", names.id);
    let first = faults
        .add_rule(token_rule(&akid, "us-east-1", &pw(1), Some(40)))
        .await;
    let _operator = Operator::start(bed, &names);
    let ns = names.ns("a");
    create_namespace(&client, &ns, &[("ecr-test", &names.id)]).await;
    create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "public": true, "namespaces": selected_by(&names), "refreshBefore": "20s"}),
    )
    .await;
    wait_ready(&client, &names.id, "False", Some("EcrAccessDenied"), 30).await;
    let s = wait_secret(&client, &ns, &names.id).await;
    assert_eq!(password(&s, US_HOST), pw(1));
    faults.remove(&first).await;
    faults
        .add_rule(token_rule(&akid, "us-east-1", &pw(2), Some(40)))
        .await;
    // Due 20 s after the first fetch (plus at most 2 s of jitter).
    eventually(
        60,
        "us-east-1 refreshed while ECR Public is denied",
        || async {
            let s = get_secret(&client, &ns, &names.id).await?;
            (password(&s, US_HOST) == pw(2)).then_some(())
        },
    )
    .await;
}

/// After a restart during a region's outage the operator has no token of that
/// region cached. It takes the last one back from a secret it wrote (an empty
/// patch of its own secret: it may not get Secrets), so writing the other
/// region's fresh token neither drops the failing region's valid entry nor
/// leaves a new namespace without it.
#[tokio::test]
async fn a_restart_during_a_region_s_outage_keeps_that_region_s_entry() {
    let bed = Bed::get();
    let names = TestNames::new("rgrest");
    let client = setup(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let akid = names.access_key_id();
    let pw = |region: &str, n: u32| format!("{region}-{n}-{}", names.id);
    let eu = faults
        .add_rule(token_rule(&akid, "eu-west-1", &pw("eu", 1), None))
        .await;
    let us = faults
        .add_rule(token_rule(&akid, "us-east-1", &pw("us", 1), None))
        .await;
    let mut operator = Operator::start(bed, &names);
    let ns = names.ns("a");
    create_namespace(&client, &ns, &[("ecr-test", &names.id)]).await;
    create_registry(
        &client,
        &names,
        json!({"regions": ["eu-west-1", "us-east-1"], "namespaces": selected_by(&names)}),
    )
    .await;
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), 30).await;
    let us_before = region(&r, "us-east-1");
    let before = wait_secret(&client, &ns, &names.id).await;
    assert_entry(&before, US_HOST, &pw("us", 1));
    operator.terminate(10);

    // While it is down: us-east-1 fails from now on, eu-west-1 has a new token.
    faults.remove(&us).await;
    faults
        .add_rule(json!({
            "match": {"accessKeyId": akid, "operation": GET_TOKEN, "region": "us-east-1"},
            "action": "server_error",
        }))
        .await;
    faults.remove(&eu).await;
    faults
        .add_rule(token_rule(&akid, "eu-west-1", &pw("eu", 2), None))
        .await;
    let operator = Operator::start(bed, &names);
    let after = eventually(60, "eu-west-1's new token written", || async {
        let s = get_secret(&client, &ns, &names.id).await?;
        assert!(
            hosts(&s).contains(&US_HOST.to_string()),
            "the failing region's valid entry was dropped after the restart: {:?}",
            hosts(&s)
        );
        (password(&s, EU_HOST) == pw("eu", 2)).then_some(s)
    })
    .await;
    assert_entry(&after, US_HOST, &pw("us", 1));
    // A namespace created now gets both regions, us-east-1 from the read-back token.
    let late = names.ns("late");
    create_namespace(&client, &late, &[("ecr-test", &names.id)]).await;
    let s = wait_secret(&client, &late, &names.id).await;
    assert_entry(&s, EU_HOST, &pw("eu", 2));
    assert_entry(&s, US_HOST, &pw("us", 1));
    // The outage was real: us-east-1's calls after the restart failed.
    let failed = faults
        .records_where(&akid, &[("operation", GET_TOKEN), ("region", "us-east-1")])
        .await
        .into_iter()
        .filter(|c| c["status"].as_u64().is_some_and(|s| s >= 500))
        .count();
    assert!(failed > 0, "us-east-1 failed after the restart");
    // The token read back is the one fetched before the restart, valid and not due
    // for a refresh yet: the status says so, with that token's expiry.
    let r = registry(&client, &names.id).await;
    assert_eq!(region(&r, "us-east-1").expires_at, us_before.expires_at);
    assert!(
        operator.logs().contains("read back from a managed secret"),
        "the read-back is logged"
    );
    operator.assert_logs_hold_none_of(&[pw("us", 1), pw("eu", 2)]);
}
