//! EcrRegistry behaviour with the real operator binary on the bed.

use crate::support::bed::{Bed, TestNames, create_namespace, eventually};
use crate::support::faults::Faults;
use crate::support::fixtures::{
    authfile_for, create_registry, create_registry_named, create_service_account, docker_config,
    get_secret, label_namespace, pull_secrets, recorded, selected_by, setup, skopeo_pull,
    wait_entry, wait_ready, wait_secret,
};
use crate::support::operator::Operator;
use ecr_operator::crd::ecr_registry::EcrRegistry;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

async fn wait_no_secret(client: &Client, ns: &str, name: &str) {
    eventually(15, &format!("secret {ns}/{name} to go"), || async {
        get_secret(client, ns, name).await.is_none().then_some(())
    })
    .await
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

#[tokio::test]
async fn secrets_follow_the_selection_and_authenticate_a_pull() {
    let bed = Bed::get();
    let names = TestNames::new("sel");
    let client = setup(&names).await;
    let operator = Operator::start(bed, &names);
    let (a, b, c) = (names.ns("a"), names.ns("b"), names.ns("c"));
    create_namespace(&client, &a, &[("ecr-test", &names.id)]).await;
    create_namespace(&client, &b, &[]).await;
    create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "namespaces": selected_by(&names), "serviceAccounts": ["default"]}),
    )
    .await;

    let secret = wait_secret(&client, &a, &names.id).await;
    let labels = secret.labels();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "ecr-operator");
    assert_eq!(labels["ecr-operator.io/registry"], names.id);
    assert_eq!(secret.owner_references()[0].kind, "EcrRegistry");
    let config = docker_config(&secret);
    assert_eq!(config["auths"][HOST]["username"], "AWS");

    // The written credentials really authenticate a pull; a wrong token does not.
    let image = bed.var("BED_IMAGE");
    let registry = bed.var("BED_REGISTRY");
    let authfile = authfile_for(&secret, HOST, registry);
    let (ok, err) = skopeo_pull(image, authfile.path());
    assert!(ok, "pull with the managed secret failed: {err}");
    let mut wrong = secret.clone();
    let mut bad = config.clone();
    bad["auths"][HOST]["auth"] = json!(base64_encode("AWS:wrong"));
    bad["auths"][HOST]["password"] = json!("wrong");
    wrong.data.as_mut().unwrap().insert(
        ".dockerconfigjson".into(),
        k8s_openapi::ByteString(bad.to_string().into_bytes()),
    );
    let (ok, err) = skopeo_pull(image, authfile_for(&wrong, HOST, registry).path());
    assert!(!ok && err.to_lowercase().contains("unauthorized"), "{err}");

    // Not selected: no secret.
    assert!(get_secret(&client, &b, &names.id).await.is_none());
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), 15).await;
    let status = r.status.unwrap();
    assert_eq!(status.registries, [HOST]);
    assert_eq!(status.namespaces.unwrap().summary, "1/1");
    assert!(status.expires_at.is_some() && status.next_refresh_time.is_some());
    // `kubectl get ecrreg` shows what the README says: SYNCED and the expiry time.
    let out = bed
        .kubectl()
        .args(["get", "ecrreg", &names.id, "--no-headers"])
        .output()
        .unwrap();
    let row = String::from_utf8_lossy(&out.stdout).to_string();
    let expires = status
        .expires_at
        .as_ref()
        .unwrap()
        .0
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        columns[1..5],
        ["us-east-1", "True", "1/1", expires.as_str()],
        "{row}"
    );

    // The default ServiceAccount (made by the controller-manager) gets the entry.
    wait_entry(&client, &a, "default", &names.id, 15).await;

    // A namespace created later gets its secret at once; one that starts to match too.
    create_namespace(&client, &c, &[("ecr-test", &names.id)]).await;
    wait_secret(&client, &c, &names.id).await;
    label_namespace(&client, &b, Some(&names.id)).await;
    wait_secret(&client, &b, &names.id).await;

    // One that stops matching loses the secret and the ServiceAccount entry.
    label_namespace(&client, &a, None).await;
    wait_no_secret(&client, &a, &names.id).await;
    eventually(15, "default SA entry removed", || async {
        (!pull_secrets(&client, &a, "default")
            .await
            .contains(&names.id))
        .then_some(())
    })
    .await;
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), 15).await;
    assert_eq!(
        recorded(&client, &names, &names.id).await,
        [b.clone(), c.clone()].into()
    );
    assert!(r.status.clone().unwrap().managed_namespaces.is_empty());

    operator.assert_logs_hold_none_of(&bed.secret_values());
    let status = serde_json::to_string(&r.status).unwrap();
    let events = serde_json::to_string(&events_of(&client, &names.id).await).unwrap();
    for secret in bed.secret_values() {
        assert!(
            !status.contains(&secret) && !events.contains(&secret),
            "a secret value leaked into status or events"
        );
    }
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn one_token_call_per_identity_and_region_and_a_quiet_steady_state() {
    let bed = Bed::get();
    let names = TestNames::new("one");
    let client = setup(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let operator = Operator::start(bed, &names);
    let namespaces: Vec<String> = (0..3).map(|i| names.ns(&format!("n{i}"))).collect();
    for ns in &namespaces {
        create_namespace(&client, ns, &[("ecr-test", &names.id)]).await;
    }
    for suffix in ["x", "y"] {
        create_registry_named(
            &client,
            &names,
            &format!("{}-{suffix}", names.id),
            json!({"region": "us-east-1", "namespaces": selected_by(&names)}),
        )
        .await;
    }
    for suffix in ["x", "y"] {
        let r = wait_ready(
            &client,
            &format!("{}-{suffix}", names.id),
            "True",
            Some("Synced"),
            20,
        )
        .await;
        assert_eq!(r.status.unwrap().namespaces.unwrap().summary, "3/3");
    }
    let akid = names.access_key_id();
    assert_eq!(
        faults.calls(&akid, "GetAuthorizationToken").await,
        1,
        "one call shared by both registries and all namespaces"
    );

    // Between refreshes nothing is written.
    let snapshot = || async {
        let mut versions = vec![];
        for ns in &namespaces {
            for suffix in ["x", "y"] {
                let s = get_secret(&client, ns, &format!("{}-{suffix}", names.id))
                    .await
                    .unwrap();
                versions.push(s.resource_version().unwrap());
            }
        }
        for suffix in ["x", "y"] {
            let r = Api::<EcrRegistry>::all(client.clone())
                .get(&format!("{}-{suffix}", names.id))
                .await
                .unwrap();
            versions.push(r.resource_version().unwrap());
        }
        versions
    };
    let before = snapshot().await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(
        before,
        snapshot().await,
        "objects changed in the steady state"
    );
    assert_eq!(faults.calls(&akid, "GetAuthorizationToken").await, 1);
    drop(operator);
}

#[tokio::test]
async fn an_unmanaged_secret_is_never_overwritten() {
    let bed = Bed::get();
    let names = TestNames::new("own");
    let client = setup(&names).await;
    let _operator = Operator::start(bed, &names);
    let (taken, free) = (names.ns("taken"), names.ns("free"));
    create_namespace(&client, &taken, &[("ecr-test", &names.id)]).await;
    create_namespace(&client, &free, &[("ecr-test", &names.id)]).await;
    let theirs: Secret = serde_json::from_value(json!({
        "metadata": {"name": names.id},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": "{\"auths\":{\"example.com\":{\"auth\":\"dXNlcjpwYXNz\"}}}"},
    }))
    .unwrap();
    let api: Api<Secret> = Api::namespaced(client.clone(), &taken);
    let created = api.create(&PostParams::default(), &theirs).await.unwrap();
    create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "namespaces": selected_by(&names)}),
    )
    .await;

    wait_secret(&client, &free, &names.id).await;
    let r = wait_ready(&client, &names.id, "False", Some("SecretConflict"), 20).await;
    let status = r.status.unwrap();
    assert_eq!(status.failures.len(), 1);
    assert_eq!(status.failures[0].namespace, taken);
    assert_eq!(status.namespaces.unwrap().summary, "1/2");
    let after = api.get(&names.id).await.unwrap();
    assert_eq!(
        after.resource_version(),
        created.resource_version(),
        "the unmanaged secret was touched"
    );
    eventually(15, "a SecretConflict Event", || async {
        events_of(&client, &names.id)
            .await
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("SecretConflict"))
    })
    .await;

    // Once the user removes their secret, the namespace is synced and the failure clears.
    api.delete(&names.id, &Default::default()).await.unwrap();
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), 30).await;
    let status = r.status.unwrap();
    assert!(status.failures.is_empty(), "{:?}", status.failures);
    assert_eq!(status.namespaces.unwrap().summary, "2/2");
}

#[tokio::test]
async fn an_aws_outage_keeps_existing_secrets_and_recovers() {
    let bed = Bed::get();
    let names = TestNames::new("out");
    let client = setup(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    let akid = names.access_key_id();
    // Tokens that live 20 s, so a refresh is due 10 s after each fetch.
    let short = faults
        .add(
            &akid,
            "GetAuthorizationToken",
            json!({"action": "expires_in", "seconds": 20}),
        )
        .await;
    let operator = Operator::start(bed, &names);
    let ns = names.ns("a");
    create_namespace(&client, &ns, &[("ecr-test", &names.id)]).await;
    create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "namespaces": selected_by(&names), "refreshBefore": "10s"}),
    )
    .await;
    let before = wait_secret(&client, &ns, &names.id).await;
    wait_ready(&client, &names.id, "True", Some("Synced"), 15).await;

    // The first matching rule decides, so the expiry rule makes way for the outage.
    faults.remove(&short).await;
    let throttle = faults
        .add(
            &akid,
            "GetAuthorizationToken",
            json!({"action": "throttle"}),
        )
        .await;
    let r = wait_ready(&client, &names.id, "False", Some("Throttled"), 40).await;
    let message = ecr_operator::registry::status::ready(r.status.as_ref())
        .unwrap()
        .message
        .clone();
    // Until when the secrets stay valid: served to new namespaces while far enough
    // from expiry ("serving the last token ... until"), else "stay valid until".
    let expires = &before.annotations()["ecr-operator.io/expires-at"];
    assert!(
        message.contains("until") && message.contains(expires.as_str()),
        "{message}"
    );
    let during = get_secret(&client, &ns, &names.id)
        .await
        .expect("the secret survives the outage");
    assert_eq!(
        during.resource_version(),
        before.resource_version(),
        "the secret was touched while AWS failed"
    );

    faults.remove(&throttle).await;
    wait_ready(&client, &names.id, "True", Some("Synced"), 60).await;
    let after = get_secret(&client, &ns, &names.id).await.unwrap();
    assert_ne!(
        after.annotations()["ecr-operator.io/expires-at"],
        before.annotations()["ecr-operator.io/expires-at"],
        "the secret was refreshed after recovery"
    );
    operator.assert_logs_hold_none_of(&bed.secret_values());
}

#[tokio::test]
async fn a_silent_aws_endpoint_times_out_without_holding_up_other_identities() {
    let bed = Bed::get();
    let names = TestNames::new("slow");
    let client = setup(&names).await;
    let faults = Faults::new(bed.var("BED_FAULTS"));
    // The operator's own identity hangs: far longer than the 30 s operation timeout.
    let hang = faults
        .add(
            &names.access_key_id(),
            "GetAuthorizationToken",
            json!({"action": "delay", "delayMs": 120_000}),
        )
        .await;
    let operator = Operator::start(bed, &names);
    let (slow, fast) = (names.ns("slow"), names.ns("fast"));
    create_namespace(&client, &slow, &[]).await;
    create_namespace(&client, &fast, &[]).await;
    create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "namespaces": {"names": [slow]}}),
    )
    .await;
    // Another identity: static keys of another access key ID, with no fault.
    let other = format!("{}-other", names.id);
    let keys: Secret = serde_json::from_value(json!({
        "metadata": {"name": "other-keys"},
        "stringData": {
            "AWS_ACCESS_KEY_ID": format!("{}O", names.access_key_id()),
            "AWS_SECRET_ACCESS_KEY": bed.var("AWS_SECRET_ACCESS_KEY"),
        },
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &names.ns("op"))
        .create(&PostParams::default(), &keys)
        .await
        .unwrap();
    create_registry_named(
        &client,
        &names,
        &other,
        json!({"region": "us-east-1", "namespaces": {"names": [fast]},
               "auth": {"secretRef": {"name": "other-keys"}}}),
    )
    .await;

    // The other identity is served while the first one's call hangs.
    wait_ready(&client, &other, "True", Some("Synced"), 20).await;
    wait_secret(&client, &fast, &other).await;
    // The hanging call ends in a Timeout reason, not a wedge.
    let r = wait_ready(&client, &names.id, "False", Some("Timeout"), 60).await;
    let message = &ecr_operator::registry::status::ready(r.status.as_ref())
        .unwrap()
        .message;
    assert!(message.contains("GetAuthorizationToken"), "{message}");
    assert!(get_secret(&client, &slow, &names.id).await.is_none());

    faults.remove(&hang).await;
    wait_ready(&client, &names.id, "True", Some("Synced"), 120).await;
    operator.assert_logs_hold_none_of(&bed.secret_values());
}

#[tokio::test]
async fn deleting_the_registry_removes_its_secrets_and_service_account_entries() {
    let bed = Bed::get();
    let names = TestNames::new("del");
    let client = setup(&names).await;
    let _operator = Operator::start(bed, &names);
    let ns = names.ns("a");
    create_namespace(&client, &ns, &[("ecr-test", &names.id)]).await;
    create_service_account(&client, &ns, "builder").await;
    create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "namespaces": selected_by(&names), "serviceAccounts": ["builder"], "secret": {"name": "pull"}}),
    )
    .await;
    wait_secret(&client, &ns, "pull").await;
    eventually(15, "builder SA patched", || async {
        (pull_secrets(&client, &ns, "builder").await == ["mine", "pull"]).then_some(())
    })
    .await;

    Api::<EcrRegistry>::all(client.clone())
        .delete(&names.id, &DeleteParams::default())
        .await
        .unwrap();
    wait_no_secret(&client, &ns, "pull").await;
    eventually(15, "builder SA entry removed, others kept", || async {
        (pull_secrets(&client, &ns, "builder").await == ["mine"]).then_some(())
    })
    .await;
    eventually(15, "the EcrRegistry to be gone", || async {
        Api::<EcrRegistry>::all(client.clone())
            .get_opt(&names.id)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

/// The operator keeps only the ServiceAccounts the registries list (and those with
/// its entries): a name listed later must still reach the ServiceAccounts of that
/// name that exist already, and a name no longer listed loses its entries.
#[tokio::test]
async fn a_service_account_listed_later_gets_its_entry_and_loses_it_when_unlisted() {
    let bed = Bed::get();
    let names = TestNames::new("salist");
    let client = setup(&names).await;
    let ns = names.ns("a");
    create_namespace(&client, &ns, &[("ecr-test", &names.id)]).await;
    create_service_account(&client, &ns, "builder").await;
    create_registry(
        &client,
        &names,
        json!({"region": "us-east-1", "namespaces": selected_by(&names), "serviceAccounts": ["default"]}),
    )
    .await;
    // Started after the registry: its first list of ServiceAccounts keeps
    // `default` only.
    let _operator = Operator::start(bed, &names);
    wait_entry(&client, &ns, "default", &names.id, 30).await;
    assert_eq!(pull_secrets(&client, &ns, "builder").await, ["mine"]);

    let registries: Api<EcrRegistry> = Api::all(client.clone());
    let list = |sas: &[&str]| Patch::Merge(json!({"spec": {"serviceAccounts": sas}}));
    registries
        .patch(
            &names.id,
            &PatchParams::default(),
            &list(&["default", "builder"]),
        )
        .await
        .unwrap();
    eventually(15, "builder SA patched", || async {
        (pull_secrets(&client, &ns, "builder").await == ["mine", names.id.as_str()]).then_some(())
    })
    .await;

    registries
        .patch(&names.id, &PatchParams::default(), &list(&["default"]))
        .await
        .unwrap();
    eventually(15, "builder SA entry removed, others kept", || async {
        (pull_secrets(&client, &ns, "builder").await == ["mine"]).then_some(())
    })
    .await;
    assert!(
        pull_secrets(&client, &ns, "default")
            .await
            .contains(&names.id)
    );
}
