//! EcrRegistry ownership and freshness with the real operator binary on the bed:
//! registries and shards that share a secret name do not fight, drift is repaired
//! within the resync interval, a re-created namespace gets its secret at once, a
//! failed refresh still serves the last token, what release 0.1 wrote is
//! adopted without a conflict, and where the secrets are is recorded outside the
//! status and survives a restart.

use crate::support::bed::{Bed, TestNames, create_namespace, delete_namespace, eventually};
use crate::support::faults::Faults;
use crate::support::fixtures::{
    authfile_for, create_registry, create_registry_named, docker_config, get_secret,
    label_namespace, recorded, selected_by, setup, skopeo_pull, wait_ready, wait_secret,
};
use crate::support::operator::Operator;
use base64::Engine as _;
use ecr_operator::crd::ecr_registry::EcrRegistry;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const ADDED: &str = "ecr-operator.io/added-image-pull-secrets";
const EXPIRES_AT: &str = "ecr-operator.io/expires-at";

fn selected_by_label(value: &str) -> Value {
    json!({"selector": {"matchLabels": {"ecr-test": value}}})
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn service_account(client: &Client, ns: &str, name: &str) -> Option<ServiceAccount> {
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .expect("get ServiceAccount")
}

fn pull_secret_names(sa: &ServiceAccount) -> Vec<String> {
    sa.image_pull_secrets
        .iter()
        .flatten()
        .map(|r| r.name.clone())
        .collect()
}

async fn registry(client: &Client, name: &str) -> EcrRegistry {
    Api::<EcrRegistry>::all(client.clone())
        .get(name)
        .await
        .expect("get EcrRegistry")
}

/// (namespace, reason) of each entry of `status.failures`.
fn failures(r: &EcrRegistry) -> Vec<(String, String)> {
    r.status
        .iter()
        .flat_map(|s| &s.failures)
        .map(|f| (f.namespace.clone(), f.reason.clone()))
        .collect()
}

fn ready_message(r: &EcrRegistry) -> String {
    ecr_operator::registry::status::ready(r.status.as_ref())
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

async fn events_of(client: &Client, registry: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(registry))
        .collect()
}

/// What must not change about a secret: resourceVersion, data, owner references.
fn fingerprint(s: &Secret) -> (Option<String>, Value, Value) {
    (
        s.resource_version(),
        serde_json::to_value(&s.data).unwrap(),
        serde_json::to_value(s.owner_references()).unwrap(),
    )
}

#[tokio::test]
async fn two_registries_sharing_a_secret_name_do_not_fight_over_service_accounts() {
    let bed = Bed::get();
    let names = TestNames::new("sasn");
    let client = setup(&names).await;
    let operator = Operator::start(bed, &names);
    let secret = format!("{}-pull", names.id);
    let pairs = [
        (format!("{}-a", names.id), names.ns("a")),
        (format!("{}-b", names.id), names.ns("b")),
    ];
    for (reg, ns) in &pairs {
        create_namespace(&client, ns, &[("ecr-test", reg)]).await;
        create_registry_named(
            &client,
            &names,
            reg,
            json!({
                "region": "us-east-1",
                "namespaces": selected_by_label(reg),
                "serviceAccounts": ["default"],
                "secret": {"name": secret},
            }),
        )
        .await;
    }
    for (reg, ns) in &pairs {
        let s = wait_secret(&client, ns, &secret).await;
        assert_eq!(s.owner_references()[0].name, *reg, "secret in {ns}");
        wait_ready(&client, reg, "True", Some("Synced"), 20).await;
    }

    // Both default ServiceAccounts list the secret once, recorded for the right registry.
    let settled = |ns: String, reg: String| {
        let client = client.clone();
        let secret = secret.clone();
        async move {
            let sa = service_account(&client, &ns, "default").await?;
            let listed = pull_secret_names(&sa)
                .iter()
                .filter(|n| **n == secret)
                .count();
            let added = sa.annotations().get(ADDED).cloned();
            (listed == 1 && added.as_deref() == Some(&format!("{reg}/{secret}")))
                .then(|| sa.resource_version().unwrap())
        }
    };
    let mut before = Vec::new();
    for (reg, ns) in &pairs {
        before.push(
            eventually(20, &format!("default SA in {ns} settled for {reg}"), || {
                settled(ns.clone(), reg.clone())
            })
            .await,
        );
    }

    tokio::time::sleep(Duration::from_secs(30)).await;
    for ((reg, ns), rv) in pairs.iter().zip(&before) {
        let sa = service_account(&client, ns, "default").await.unwrap();
        assert_eq!(
            sa.resource_version().as_ref(),
            Some(rv),
            "the default ServiceAccount in {ns} was rewritten in 30 s of steady state: {:?} {:?}",
            pull_secret_names(&sa),
            sa.annotations().get(ADDED)
        );
        assert_eq!(
            pull_secret_names(&sa)
                .iter()
                .filter(|n| **n == secret)
                .count(),
            1,
            "{ns}: {:?}",
            pull_secret_names(&sa)
        );
        assert_eq!(
            sa.annotations().get(ADDED),
            Some(&format!("{reg}/{secret}")),
            "{ns}"
        );
    }
    drop(operator);
}

#[tokio::test]
async fn shards_claiming_one_secret_report_a_conflict_without_flip_flop() {
    let bed = Bed::get();
    // One TestNames per shard: each operator handles the registries labelled with its id.
    let older = TestNames::new("sha");
    let newer = TestNames::new("shb");
    let client = setup(&older).await;
    setup(&newer).await;
    let ns = older.ns("shared");
    create_namespace(&client, &ns, &[("ecr-test", &older.id)]).await;
    let secret = format!("{}-pull", older.id);
    let spec = json!({
        "region": "us-east-1",
        "namespaces": selected_by(&older),
        "secret": {"name": secret},
    });

    let _shard_a = Operator::start(bed, &older);
    let old_reg = create_registry(&client, &older, spec.clone()).await;
    wait_secret(&client, &ns, &secret).await;
    wait_ready(&client, &older.id, "True", Some("Synced"), 20).await;
    // creationTimestamp has one-second resolution: the newer one must be younger.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new_reg = create_registry(&client, &newer, spec).await;
    assert!(old_reg.creation_timestamp() < new_reg.creation_timestamp());
    let _shard_b = Operator::start(bed, &newer);

    let r = wait_ready(&client, &newer.id, "False", Some("SecretConflict"), 30).await;
    assert_eq!(failures(&r), [(ns.clone(), "SecretConflict".to_string())]);
    let first = get_secret(&client, &ns, &secret).await.unwrap();
    let owners = first.owner_references();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(
        owners[0].uid,
        old_reg.uid().unwrap(),
        "owned by the older registry"
    );
    assert_eq!(owners[0].controller, Some(true));
    assert_eq!(first.labels()["ecr-operator.io/registry"], older.id);

    // 30 s: the secret is never rewritten (a write would change the resourceVersion).
    let want = fingerprint(&first);
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let now = get_secret(&client, &ns, &secret)
            .await
            .expect("the secret stays");
        assert_eq!(fingerprint(&now), want, "the contested secret changed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let r = registry(&client, &newer.id).await;
    assert_eq!(failures(&r), [(ns.clone(), "SecretConflict".to_string())]);
    let r = wait_ready(&client, &older.id, "True", Some("Synced"), 5).await;
    assert!(failures(&r).is_empty(), "{:?}", failures(&r));
}

#[tokio::test]
async fn drift_is_repaired_within_the_resync_interval() {
    let bed = Bed::get();
    let names = TestNames::new("drift");
    let client = setup(&names).await;
    let (managed, taken) = (names.ns("a"), names.ns("b"));
    create_namespace(&client, &managed, &[("ecr-test", &names.id)]).await;
    create_namespace(&client, &taken, &[("ecr-test", &names.id)]).await;
    let theirs: Secret = serde_json::from_value(json!({
        "metadata": {"name": names.id},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": "{\"auths\":{\"example.com\":{\"auth\":\"dXNlcjpwYXNz\"}}}"},
    }))
    .unwrap();
    let taken_api: Api<Secret> = Api::namespaced(client.clone(), &taken);
    let created = taken_api
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let _operator = Operator::start_with(
        bed,
        &names,
        bed.kubeconfig(),
        &[("ECR_OPERATOR_RESYNC_INTERVAL", "10s")],
    );
    create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "namespaces": selected_by(&names)}),
    )
    .await;
    let original = wait_secret(&client, &managed, &names.id).await;
    let r = wait_ready(&client, &names.id, "False", Some("SecretConflict"), 20).await;
    assert_eq!(
        failures(&r),
        [(taken.clone(), "SecretConflict".to_string())]
    );

    // Only the unmanaged namespace may ever be listed as failed.
    let check_status = || async {
        let r = registry(&client, &names.id).await;
        let f = failures(&r);
        assert!(
            f.iter().all(|(ns, _)| *ns == taken),
            "the managed namespace is reported as failed: {f:?}"
        );
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), &managed);

    // (a) Deleted by hand: back within 20 s.
    api.delete(&names.id, &Default::default()).await.unwrap();
    let t = Instant::now();
    let back = eventually(20, "the deleted secret to be re-created", || async {
        check_status().await;
        get_secret(&client, &managed, &names.id).await
    })
    .await;
    eprintln!("deleted secret re-created after {:?}", t.elapsed());
    assert_eq!(back.data, original.data);
    assert_eq!(back.owner_references(), original.owner_references());

    // (b) Edited by hand (data and a label, another field manager): restored within 20 s.
    let tampered = api
        .patch(
            &names.id,
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({
                "metadata": {"labels": {"app.kubernetes.io/managed-by": "someone-else"}},
                "data": {".dockerconfigjson": b64("{\"auths\":{}}")},
            })),
        )
        .await
        .expect("hand edit");
    assert_ne!(tampered.data, original.data);
    let t = Instant::now();
    eventually(20, "the edited secret to be restored", || async {
        check_status().await;
        let s = get_secret(&client, &managed, &names.id).await?;
        (s.data == original.data
            && s.labels()
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str)
                == Some("ecr-operator"))
        .then_some(())
    })
    .await;
    eprintln!("edited secret restored after {:?}", t.elapsed());
    let restored = get_secret(&client, &managed, &names.id).await.unwrap();
    assert_eq!(restored.labels(), original.labels());
    assert_eq!(restored.owner_references(), original.owner_references());
    tokio::time::sleep(Duration::from_secs(2)).await;
    check_status().await;

    // (d) Left alone for more than an interval, the restored secret is re-asserted
    // without a storage write: its resourceVersion does not move.
    let settled = get_secret(&client, &managed, &names.id).await.unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let later = get_secret(&client, &managed, &names.id).await.unwrap();
    assert_eq!(
        later.resource_version(),
        settled.resource_version(),
        "an unchanged secret was written again"
    );

    // (c) The unmanaged secret was never touched, and is still reported.
    let after = taken_api.get(&names.id).await.unwrap();
    assert_eq!(
        after.resource_version(),
        created.resource_version(),
        "the unmanaged secret was touched"
    );
    assert_eq!(after.data, created.data);
    let r = registry(&client, &names.id).await;
    assert_eq!(
        failures(&r),
        [(taken.clone(), "SecretConflict".to_string())]
    );
}

#[tokio::test]
async fn a_recreated_namespace_gets_its_secret_each_time() {
    let bed = Bed::get();
    let names = TestNames::new("recr");
    let client = setup(&names).await;
    let _operator = Operator::start(bed, &names);
    let ns = names.ns("a");
    create_namespace(&client, &ns, &[("ecr-test", &names.id)]).await;
    create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "namespaces": selected_by(&names)}),
    )
    .await;
    wait_secret(&client, &ns, &names.id).await;
    wait_ready(&client, &names.id, "True", Some("Synced"), 15).await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    for round in 1..=5 {
        delete_namespace(&client, &ns).await;
        let t = Instant::now();
        eventually(
            30,
            &format!("round {round}: namespace {ns} gone"),
            || async {
                namespaces
                    .get_opt(&ns)
                    .await
                    .unwrap()
                    .is_none()
                    .then_some(())
            },
        )
        .await;
        let deleted_in = t.elapsed();
        create_namespace(&client, &ns, &[("ecr-test", &names.id)]).await;
        let t = Instant::now();
        eventually(
            2,
            &format!("round {round}: the secret in the re-created namespace {ns}"),
            || async { get_secret(&client, &ns, &names.id).await },
        )
        .await;
        eprintln!(
            "round {round}: namespace gone after {deleted_in:?}, secret after {:?}",
            t.elapsed()
        );
    }
}

#[tokio::test]
async fn a_throttled_refresh_still_serves_new_namespaces() {
    let bed = Bed::get();
    let names = TestNames::new("thr");
    let client = setup(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    // The operator signs with this test's own access key ID (Operator::start), so
    // the rules below only affect this test.
    let akid = names.access_key_id();
    let short = faults
        .add(
            &akid,
            "GetAuthorizationToken",
            json!({"action": "expires_in", "seconds": 60}),
        )
        .await;
    let operator = Operator::start(bed, &names);
    let first_ns = names.ns("a");
    create_namespace(&client, &first_ns, &[("ecr-test", &names.id)]).await;
    create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "namespaces": selected_by(&names), "refreshBefore": "50s"}),
    )
    .await;
    let first = wait_secret(&client, &first_ns, &names.id).await;
    // The token was fetched at most this long ago: it expires 60 s after the fetch.
    let fetched = Instant::now();
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), 15).await;
    let expires_at = r.status.as_ref().unwrap().expires_at.clone().unwrap().0;
    let left = expires_at.duration_since(jiff::Timestamp::now());
    assert!(
        left <= jiff::SignedDuration::from_secs(60) && left > jiff::SignedDuration::from_secs(45),
        "the token should live 60 s, {left:#} left"
    );

    // The first matching rule decides: the expiry rule makes way for throttling.
    faults.remove(&short).await;
    let throttle = faults
        .add(
            &akid,
            "GetAuthorizationToken",
            json!({"action": "throttle"}),
        )
        .await;
    // The refresh is due 10 s after the fetch.
    let r = wait_ready(&client, &names.id, "False", Some("Throttled"), 25).await;
    let message = ready_message(&r);
    assert!(message.contains("serving the last token"), "{message}");

    // ~20 s after the fetch (the token has ~40 s left, more than a quarter of its
    // 60 s lifetime): a new namespace still gets the last token.
    tokio::time::sleep(
        (fetched + Duration::from_secs(20)).saturating_duration_since(Instant::now()),
    )
    .await;
    let second_ns = names.ns("b");
    create_namespace(&client, &second_ns, &[("ecr-test", &names.id)]).await;
    let t = Instant::now();
    let second = eventually(
        5,
        "a secret in the namespace created during throttling",
        || async { get_secret(&client, &second_ns, &names.id).await },
    )
    .await;
    eprintln!("secret in the new namespace after {:?}", t.elapsed());
    assert_eq!(docker_config(&second), docker_config(&first));
    assert_eq!(
        second.annotations().get(EXPIRES_AT),
        first.annotations().get(EXPIRES_AT),
        "the new namespace got another token than the last one"
    );
    assert_eq!(docker_config(&second)["auths"][HOST]["username"], "AWS");
    let r = wait_ready(&client, &names.id, "False", Some("Throttled"), 5).await;
    let message = ready_message(&r);
    assert!(message.contains("serving the last token"), "{message}");
    assert!(
        faults.calls(&akid, "GetAuthorizationToken").await >= 2,
        "the refresh was attempted"
    );
    faults.remove(&throttle).await;
    operator.assert_logs_hold_none_of(&bed.secret_values());
}

#[tokio::test]
async fn upgrade_from_0_1_adopts_secrets_and_service_accounts_without_conflict() {
    let bed = Bed::get();
    let names = TestNames::new("upg");
    let client = setup(&names).await;
    let ns = names.ns("a");
    create_namespace(&client, &ns, &[("ecr-test", &names.id)]).await;
    let secret_name = names.id.clone();
    let reg = create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "namespaces": selected_by(&names), "serviceAccounts": ["default"]}),
    )
    .await;

    // Exactly what 0.1 wrote, with its single field manager `ecr-operator`.
    let stale = json!({"auths": {HOST: {"username": "AWS", "password": "stale", "auth": b64("AWS:stale")}}});
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let old = secrets
        .patch(
            &secret_name,
            &PatchParams::apply("ecr-operator"),
            &Patch::Apply(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": secret_name,
                    "namespace": ns,
                    "labels": {
                        "app.kubernetes.io/managed-by": "ecr-operator",
                        "ecr-operator.io/registry": names.id,
                    },
                    "annotations": {EXPIRES_AT: "2020-01-01T00:00:00Z"},
                    "ownerReferences": [{
                        "apiVersion": "ecr-operator.io/v1alpha1",
                        "kind": "EcrRegistry",
                        "name": names.id,
                        "uid": reg.uid().unwrap(),
                        "controller": true,
                        "blockOwnerDeletion": true,
                    }],
                },
                "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": b64(&stale.to_string())},
            })),
        )
        .await
        .expect("write the 0.1 secret");
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    eventually(15, "the default ServiceAccount", || async {
        service_account(&client, &ns, "default").await
    })
    .await;
    sas.patch(
        "default",
        &PatchParams {
            field_manager: Some("ecr-operator".into()),
            ..Default::default()
        },
        &Patch::Merge(json!({
            "metadata": {"annotations": {ADDED: secret_name}},
            "imagePullSecrets": [{"name": secret_name}],
        })),
    )
    .await
    .expect("write the 0.1 ServiceAccount entry");
    Api::<EcrRegistry>::all(client.clone())
        .patch_status(
            &names.id,
            &PatchParams::apply("ecr-operator").force(),
            &Patch::Apply(json!({
                "apiVersion": "ecr-operator.io/v1alpha1",
                "kind": "EcrRegistry",
                "status": {"managedNamespaces": [ns]},
            })),
        )
        .await
        .expect("write the 0.1 status");

    let operator = Operator::start(bed, &names);
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), 30).await;
    let status = r.status.unwrap();
    assert!(status.failures.is_empty(), "{:?}", status.failures);
    assert_eq!(status.namespaces.as_ref().unwrap().summary, "1/1");
    // The 0.1 list moved to the record, out of the status.
    assert!(status.managed_namespaces.is_empty(), "{status:?}");
    assert_eq!(
        recorded(&client, &names, &names.id).await,
        [ns.clone()].into()
    );

    // The secret: taken over, fresh, working, same owner.
    let secret = eventually(15, "the 0.1 secret to be refreshed", || async {
        let s = get_secret(&client, &ns, &secret_name).await?;
        (s.data != old.data).then_some(s)
    })
    .await;
    assert_eq!(
        docker_config(&secret)["auths"][HOST]["password"],
        bed.var("BED_ECR_PASSWORD")
    );
    assert_eq!(secret.owner_references()[0].uid, reg.uid().unwrap());
    assert_eq!(secret.labels()["ecr-operator.io/registry"], names.id);
    assert_ne!(
        secret.annotations().get(EXPIRES_AT),
        old.annotations().get(EXPIRES_AT)
    );
    let manager = format!("ecr-operator/{}", names.id);
    assert!(
        secret
            .managed_fields()
            .iter()
            .any(|m| m.manager.as_deref() == Some(manager.as_str())),
        "the secret is not applied by {manager}: {:?}",
        secret
            .managed_fields()
            .iter()
            .map(|m| &m.manager)
            .collect::<Vec<_>>()
    );
    let authfile = authfile_for(&secret, HOST, bed.var("BED_REGISTRY"));
    let (ok, err) = skopeo_pull(bed.var("BED_IMAGE"), authfile.path());
    assert!(ok, "pull with the adopted secret failed: {err}");

    // The ServiceAccount: listed once, the annotation rewritten as this registry's entry.
    let own = format!("{}/{secret_name}", names.id);
    let sa = eventually(15, "the 0.1 annotation rewritten", || async {
        let sa = service_account(&client, &ns, "default").await?;
        (sa.annotations().get(ADDED) == Some(&own)).then_some(sa)
    })
    .await;
    assert_eq!(pull_secret_names(&sa), [secret_name.as_str()]);

    // No SecretConflict at any point (Ready changes are recorded as Events).
    let events = events_of(&client, &names.id).await;
    assert!(
        events
            .iter()
            .all(|e| e.reason.as_deref() != Some("SecretConflict")),
        "{:?}",
        events
            .iter()
            .map(|e| (&e.reason, &e.note))
            .collect::<Vec<_>>()
    );
    let r = registry(&client, &names.id).await;
    assert!(failures(&r).is_empty(), "{:?}", failures(&r));
    operator.assert_logs_hold_none_of(&bed.secret_values());
}

/// Where the secrets are is recorded in ConfigMaps, not the status (which stays
/// small whatever the number of namespaces), and survives a restart: a namespace
/// that leaves the selection while the operator is down loses its secret when
/// the operator is back.
#[tokio::test]
async fn the_record_of_where_secrets_are_survives_a_restart_and_not_the_status() {
    let bed = Bed::get();
    let names = TestNames::new("rec");
    let client = setup(&names).await;
    let all: Vec<String> = (0..3).map(|i| names.ns(&format!("n{i}"))).collect();
    for ns in &all {
        create_namespace(&client, ns, &[("ecr-test", &names.id)]).await;
    }
    create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "namespaces": selected_by(&names)}),
    )
    .await;
    let operator = Operator::start(bed, &names);
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), 30).await;
    assert_eq!(
        r.status
            .as_ref()
            .unwrap()
            .namespaces
            .as_ref()
            .unwrap()
            .summary,
        "3/3"
    );
    let status = serde_json::to_value(&r.status).unwrap();
    assert!(status.get("managedNamespaces").is_none(), "{status}");
    assert_eq!(
        recorded(&client, &names, &names.id).await,
        all.iter().cloned().collect()
    );
    drop(operator);

    label_namespace(&client, &all[1], None).await;
    let _operator = Operator::start(bed, &names);
    eventually(30, "the deselected namespace's secret to go", || async {
        get_secret(&client, &all[1], &names.id)
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let kept: std::collections::BTreeSet<String> = [all[0].clone(), all[2].clone()].into();
    eventually(15, "the record without it", || async {
        (recorded(&client, &names, &names.id).await == kept).then_some(())
    })
    .await;
    for ns in &all {
        delete_namespace(&client, ns).await;
    }
}
