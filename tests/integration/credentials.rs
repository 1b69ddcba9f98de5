//! Where the operator's AWS credentials come from, with the operator running:
//! the credentials Secret (missing, incomplete, created later), and on moto B,
//! which checks IAM, assumed roles with external IDs, role chains and denials.
//! After each scenario no secret value may show up in the operator's logs, the
//! EcrRegistry's status or its Events.

use crate::support::bed::{Bed, TestNames, create_namespace, delete_namespace, eventually};
use crate::support::faults::Faults;
use crate::support::fixtures::{
    authfile_for, create_registry, delete_registry, get_secret, setup, skopeo_pull, wait_ready,
};
use crate::support::iam::{self, ACCOUNT, put_credentials, put_user_credentials, start_on_moto_b};
use crate::support::leaks::assert_no_leak;
use crate::support::operator::Operator;
use ecr_operator::crd::ecr_registry::EcrRegistry;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const TIMEOUT: u64 = 30;

/// A registry with `auth` (region us-east-1) that selects only the test's `app` namespace.
async fn registry_for_app(client: &Client, names: &TestNames, auth: Value) -> EcrRegistry {
    create_namespace(client, &names.ns("app"), &[]).await;
    create_registry(
        client,
        names,
        json!({
            "region": "us-east-1",
            "auth": auth,
            "namespaces": {"names": [names.ns("app")]},
        }),
    )
    .await
}

/// The managed secret in the `app` namespace authenticates against the bed's registry.
async fn assert_app_secret_pulls(client: &Client, names: &TestNames) {
    let bed = Bed::get();
    let secret = eventually(
        TIMEOUT,
        "the managed secret in the app namespace",
        || async { get_secret(client, &names.ns("app"), &names.id).await },
    )
    .await;
    let authfile = authfile_for(&secret, ECR_HOST, bed.var("BED_REGISTRY"));
    let (ok, stderr) = skopeo_pull(bed.var("BED_IMAGE"), authfile.path());
    assert!(ok, "pulling with the managed secret failed: {stderr}");
}

/// Deletes the registry (the running operator removes its finalizer) and the namespaces.
async fn cleanup(client: &Client, names: &TestNames) {
    delete_registry(client, &names.id, TIMEOUT).await;
    delete_namespace(client, &names.ns("app")).await;
    delete_namespace(client, &names.ns("op")).await;
}

fn condition_message(r: &EcrRegistry) -> String {
    ecr_operator::registry::status::ready(r.status.as_ref())
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// A 20-character access key ID unique to this call (moto A accepts any).
fn random_access_key_id() -> String {
    format!("AKIASEC{:013}", rand::random::<u64>() % 10_000_000_000_000)
}

#[tokio::test]
async fn missing_credentials_secret_is_reported_then_picked_up_when_created() {
    let bed = Bed::get();
    let names = TestNames::new("credmiss");
    let client = setup(&names).await;
    let operator = Operator::start(bed, &names);
    let secret_name = names.ns("aws");
    registry_for_app(&client, &names, json!({"secretRef": {"name": secret_name}})).await;

    let r = wait_ready(
        &client,
        &names.id,
        "False",
        Some("CredentialsSecretMissing"),
        TIMEOUT,
    )
    .await;
    let message = condition_message(&r);
    assert!(
        message.contains(&format!("{}/{secret_name}", names.ns("op"))),
        "{message}"
    );
    assert!(
        get_secret(&client, &names.ns("app"), &names.id)
            .await
            .is_none()
    );

    // The operator watches its namespace's Secrets: no restart needed.
    let key_id = random_access_key_id();
    let secret_key = format!("credmiss-secret-{}", rand::random::<u64>());
    put_credentials(
        &client,
        &names,
        &secret_name,
        &[
            ("AWS_ACCESS_KEY_ID", &key_id),
            ("AWS_SECRET_ACCESS_KEY", &secret_key),
        ],
    )
    .await;
    wait_ready(&client, &names.id, "True", Some("Synced"), TIMEOUT).await;
    assert_app_secret_pulls(&client, &names).await;
    let calls = Faults::new(bed.var("BED_FAULTS"))
        .calls(&key_id, "GetAuthorizationToken")
        .await;
    assert!(
        calls >= 1,
        "the token was not fetched with the Secret's keys"
    );

    assert_no_leak(&client, &operator, &names.id, &[&secret_key]).await;
    cleanup(&client, &names).await;
}

#[tokio::test]
async fn credentials_secret_without_the_secret_key_is_incomplete() {
    let bed = Bed::get();
    let names = TestNames::new("credinc");
    let client = setup(&names).await;
    let operator = Operator::start(bed, &names);
    let secret_name = names.ns("aws");
    let key_id = random_access_key_id();
    put_credentials(
        &client,
        &names,
        &secret_name,
        &[("AWS_ACCESS_KEY_ID", &key_id)],
    )
    .await;
    registry_for_app(&client, &names, json!({"secretRef": {"name": secret_name}})).await;

    let r = wait_ready(
        &client,
        &names.id,
        "False",
        Some("CredentialsSecretIncomplete"),
        TIMEOUT,
    )
    .await;
    let message = condition_message(&r);
    assert!(message.contains("AWS_SECRET_ACCESS_KEY"), "{message}");
    assert!(message.contains(&secret_name), "{message}");

    // Completing the Secret fixes it.
    let secret_key = format!("credinc-secret-{}", rand::random::<u64>());
    put_credentials(
        &client,
        &names,
        &secret_name,
        &[
            ("AWS_ACCESS_KEY_ID", &key_id),
            ("AWS_SECRET_ACCESS_KEY", &secret_key),
        ],
    )
    .await;
    wait_ready(&client, &names.id, "True", Some("Synced"), TIMEOUT).await;
    assert_app_secret_pulls(&client, &names).await;

    assert_no_leak(&client, &operator, &names.id, &[&secret_key]).await;
    cleanup(&client, &names).await;
}

#[tokio::test]
async fn assume_role_with_the_wrong_external_id_is_denied_until_fixed() {
    let names = TestNames::new("iamext");
    let client = setup(&names).await;
    let user = names.ns("user");
    let role = names.ns("role");
    let role_arn = iam::role_arn(&role);
    let users = iam::create(json!({
        "users": [{"name": user, "statements": [iam::allow("sts:AssumeRole", &role_arn)]}],
        "roles": [{
            "name": role,
            "trust": [iam::trust(&[iam::user_arn(&user)], "ext-1")],
            "statements": [iam::allow("ecr:GetAuthorizationToken", "*")],
        }],
    }))
    .await;
    let user = &users[0];
    assert_eq!(user.arn, iam::user_arn(&names.ns("user")));
    let operator = start_on_moto_b(&names);
    let secret_name = put_user_credentials(&client, &names, user).await;
    registry_for_app(
        &client,
        &names,
        json!({
            "secretRef": {"name": secret_name},
            "assumeRole": {"roleArn": role_arn, "externalId": "wrong"},
        }),
    )
    .await;

    let r = wait_ready(
        &client,
        &names.id,
        "False",
        Some("AssumeRoleDenied"),
        TIMEOUT,
    )
    .await;
    let message = condition_message(&r);
    assert!(message.contains(&role_arn), "{message}");
    assert!(
        get_secret(&client, &names.ns("app"), &names.id)
            .await
            .is_none()
    );

    Api::<EcrRegistry>::all(client.clone())
        .patch(
            &names.id,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"auth": {"assumeRole": {"externalId": "ext-1"}}}})),
        )
        .await
        .expect("patch externalId");
    wait_ready(&client, &names.id, "True", Some("Synced"), TIMEOUT).await;
    assert_app_secret_pulls(&client, &names).await;
    assert!(
        iam::calls_by_role(&role_arn, "GetAuthorizationToken").await >= 1,
        "the token was not fetched with the role's session"
    );

    assert_no_leak(&client, &operator, &names.id, &[&user.secret_access_key]).await;
    cleanup(&client, &names).await;
}

#[tokio::test]
async fn role_chain_via_a_hub_role_fetches_the_token_as_the_target_role() {
    let names = TestNames::new("iamvia");
    let client = setup(&names).await;
    let user = names.ns("user");
    let hub = names.ns("hub");
    let target = names.ns("target");
    let (hub_arn, target_arn) = (iam::role_arn(&hub), iam::role_arn(&target));
    let hub_session = names.ns("hubsession");
    // Real AWS matches every session of the hub role by the role's ARN; moto only
    // matches the exact caller ARN, so the session's ARN is listed as well.
    let hub_principals = [
        hub_arn.clone(),
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/{hub}/{hub_session}"),
    ];
    let users = iam::create(json!({
        "users": [{"name": user, "statements": [iam::allow("sts:AssumeRole", &hub_arn)]}],
        "roles": [
            {
                "name": hub,
                "trust": [iam::trust(&[iam::user_arn(&user)], "ext-hub")],
                "statements": [iam::allow("sts:AssumeRole", &target_arn)],
            },
            {
                "name": target,
                "trust": [iam::trust(&hub_principals, "ext-target")],
                "statements": [iam::allow("ecr:GetAuthorizationToken", "*")],
            },
        ],
    }))
    .await;
    let user = &users[0];
    let operator = start_on_moto_b(&names);
    let secret_name = put_user_credentials(&client, &names, user).await;
    registry_for_app(
        &client,
        &names,
        json!({
            "secretRef": {"name": secret_name},
            "assumeRole": {
                "roleArn": target_arn,
                "externalId": "ext-target",
                "via": {"roleArn": hub_arn, "externalId": "ext-hub", "sessionName": hub_session},
            },
        }),
    )
    .await;

    wait_ready(&client, &names.id, "True", Some("Synced"), TIMEOUT).await;
    assert_app_secret_pulls(&client, &names).await;
    assert!(
        iam::calls_by_role(&hub_arn, "AssumeRole").await >= 1,
        "the hub role was not assumed"
    );
    assert!(
        iam::calls_by_role(&target_arn, "GetAuthorizationToken").await >= 1,
        "the token was not fetched as the target role"
    );

    // Neither the user's key nor what the two roles handed out (secret keys and
    // session tokens of the hub and the target) shows anywhere.
    let issued = Faults::new(Bed::get().var("BED_IAM_FAULTS"))
        .issued(&user.access_key_id)
        .await;
    assert!(
        issued.len() >= 4,
        "the proxy saw {} temporary secrets handed out for the role chain",
        issued.len()
    );
    let mut secrets: Vec<&str> = issued.iter().map(String::as_str).collect();
    secrets.push(&user.secret_access_key);
    let scanned = assert_no_leak(&client, &operator, &names.id, &secrets).await;
    println!(
        "FIGURE leaks scenario=role_chain issued_by_sts={} values_scanned={scanned} hits=0",
        issued.len()
    );
    cleanup(&client, &names).await;
}

#[tokio::test]
async fn user_without_ecr_permission_is_ecr_access_denied() {
    let names = TestNames::new("iamnoecr");
    let client = setup(&names).await;
    let users = iam::create(json!({"users": [{"name": names.ns("user"), "statements": []}]})).await;
    let user = &users[0];
    let operator = start_on_moto_b(&names);
    let secret_name = put_user_credentials(&client, &names, user).await;
    registry_for_app(&client, &names, json!({"secretRef": {"name": secret_name}})).await;

    let r = wait_ready(
        &client,
        &names.id,
        "False",
        Some("EcrAccessDenied"),
        TIMEOUT,
    )
    .await;
    let message = condition_message(&r);
    assert!(message.contains("ecr:GetAuthorizationToken"), "{message}");
    assert!(
        get_secret(&client, &names.ns("app"), &names.id)
            .await
            .is_none()
    );

    assert_no_leak(&client, &operator, &names.id, &[&user.secret_access_key]).await;
    cleanup(&client, &names).await;
}
