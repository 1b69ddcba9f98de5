//! Per-namespace roles (`spec.auth.namespaceRole`, and ServiceAccount web
//! identity, `spec.auth.webIdentity`, at the end) on moto B, which enforces IAM:
//! signatures, identity policies and role trust policies with `sts:ExternalId`.
//! Each tenant role trusts the test's user only with the external ID
//! `<cluster-id>/<namespace>` of its own namespaces, so a namespace that names
//! another tenant's role is denied by the emulator, not by the operator.
//!
//! What the emulator does not show: every role here lives in moto's one account,
//! whose token is the same string for every caller, so which role fetched a
//! namespace's token is read from the fault proxy's records (it maps each
//! temporary key to the role that issued it), not from the token.

use crate::support::bed::{Bed, TestNames, create_namespace, delete_namespace, eventually};
use crate::support::faults::Faults;
use crate::support::fixtures::{
    authfile_for, create_registry, delete_registry, get_secret, setup, skopeo_pull, wait_ready,
};
use crate::support::iam::{self, put_user_credentials, start_on_moto_b_with};
use crate::support::leaks::assert_no_leak;
use crate::support::operator::Operator;
use base64::Engine as _;
use ecr_operator::crd::ecr_registry::{
    EcrRegistry, EcrRegistryStatus, ROLE_ARN_ANNOTATION, SA_ROLE_ARN_ANNOTATION,
};
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const TIMEOUT: u64 = 60;

/// A role's trust: the user may assume it with one of `external_ids`.
fn trust(user_arn: &str, external_ids: &[String]) -> Value {
    json!({
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Principal": {"AWS": [user_arn]},
        "Condition": {"StringEquals": {"sts:ExternalId": external_ids}},
    })
}

async fn annotate(client: &Client, ns: &str, role_arn: Option<&str>) {
    let patch = json!({"metadata": {"annotations": {ROLE_ARN_ANNOTATION: role_arn}}});
    Api::<Namespace>::all(client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate namespace");
}

/// Waits for Ready=False PartialSync and checks that status.failures is exactly
/// `want` (namespace, reason); returns the status.
async fn partial_sync(client: &Client, name: &str, want: &[(&str, &str)]) -> EcrRegistryStatus {
    let r = wait_ready(client, name, "False", Some("PartialSync"), TIMEOUT).await;
    let status = r.status.unwrap_or_default();
    let failed: Vec<(&str, &str)> = status
        .failures
        .iter()
        .map(|f| (f.namespace.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(failed, want, "{status:?}");
    status
}

/// The operator's EcrRegistry passes so far (its metrics).
async fn passes(operator: &Operator) -> u64 {
    let (_, metrics) = operator.admin_get("/metrics").await;
    metrics
        .lines()
        .find(|l| {
            l.starts_with(
                "ecr_operator_reconcile_duration_seconds_count{controller=\"EcrRegistry\"}",
            )
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_default() as u64
}

async fn cleanup(client: &Client, names: &TestNames, namespaces: &[String]) {
    delete_registry(client, &names.id, TIMEOUT).await;
    for ns in namespaces {
        delete_namespace(client, ns).await;
    }
    delete_namespace(client, &names.ns("op")).await;
}

#[tokio::test]
async fn each_namespace_gets_its_own_role_s_token_and_another_tenant_s_role_is_denied() {
    let names = TestNames::new("tenant");
    let client = setup(&names).await;
    let cluster = names.ns("cluster");
    let (ns_a, ns_b, ns_c, ns_d) = (names.ns("a"), names.ns("b"), names.ns("c"), names.ns("d"));
    let ext = |ns: &str| format!("{cluster}/{ns}");
    let (role_a, role_b) = (names.ns("role-a"), names.ns("role-b"));
    let (arn_a, arn_b) = (iam::role_arn(&role_a), iam::role_arn(&role_b));
    let user_name = names.ns("user");
    let user_arn = iam::user_arn(&user_name);
    let users = iam::create(json!({
        "users": [{"name": user_name, "statements": [
            iam::allow("sts:AssumeRole", "*"),
            // The registry's own identity, for unannotated namespaces.
            iam::allow("ecr:GetAuthorizationToken", "*"),
        ]}],
        "roles": [
            {"name": role_a, "trust": [trust(&user_arn, &[ext(&ns_a)])],
             "statements": [iam::allow("ecr:GetAuthorizationToken", "*")]},
            {"name": role_b, "trust": [trust(&user_arn, &[ext(&ns_b)])],
             "statements": [iam::allow("ecr:GetAuthorizationToken", "*")]},
        ],
    }))
    .await;
    let user = &users[0];
    let bed = Bed::get();
    let operator = start_on_moto_b_with(&names, &[("ECR_OPERATOR_CLUSTER_ID", &cluster)]);
    let credentials = put_user_credentials(&client, &names, user).await;
    let label = [("tenant-test", names.id.as_str())];
    for ns in [&ns_a, &ns_b, &ns_c, &ns_d] {
        create_namespace(&client, ns, &label).await;
    }
    annotate(&client, &ns_a, Some(&arn_a)).await;
    // Tenant B names tenant A's role; D names no role at all.
    annotate(&client, &ns_b, Some(&arn_a)).await;
    annotate(&client, &ns_d, Some("team-d")).await;
    create_registry(
        &client,
        &names,
        json!({
            "region": "us-east-1",
            "auth": {
                "secretRef": {"name": credentials},
                "namespaceRole": {"unannotated": "RegistryIdentity"},
            },
            "namespaces": {"selector": {"matchLabels": {"tenant-test": names.id}}},
        }),
    )
    .await;

    // B is refused by A's trust policy, D's annotation is no role ARN: Ready
    // says so and names these two only, each with its own reason.
    let status = partial_sync(
        &client,
        &names.id,
        &[
            (&ns_b, "AssumeRoleDenied"),
            (&ns_d, "InvalidRoleAnnotation"),
        ],
    )
    .await;
    assert!(status.failures[0].message.contains(&arn_a), "{status:?}");
    assert!(status.failures[1].message.contains("team-d"), "{status:?}");
    assert_eq!(
        status.namespaces.as_ref().map(|n| n.summary.as_str()),
        Some("2/4")
    );
    // A's secret pulls, and its token was fetched by A's role.
    for ns in [&ns_a, &ns_c] {
        let secret = eventually(TIMEOUT, "the secret of A and C", || async {
            get_secret(&client, ns, &names.id).await
        })
        .await;
        let authfile = authfile_for(&secret, ECR_HOST, bed.var("BED_REGISTRY"));
        let (ok, stderr) = skopeo_pull(bed.var("BED_IMAGE"), authfile.path());
        assert!(ok, "pulling with the secret of {ns} failed: {stderr}");
    }
    assert_eq!(iam::calls_by_role(&arn_a, "GetAuthorizationToken").await, 1);
    assert!(get_secret(&client, &ns_b, &names.id).await.is_none());
    assert!(get_secret(&client, &ns_d, &names.id).await.is_none());
    // Tenant B reads why in its own namespace, as itself (the built-in view role
    // bound there).
    let tenant_b = format!("{}-tenant-b", names.id);
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "tenant-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": tenant_b}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &ns_b)
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind view in B");
    let tenant = bed
        .client_for(&bed.mint_kubeconfig(&["--user", &tenant_b]))
        .await;
    let events = eventually(TIMEOUT, "a Warning Event in B", || async {
        let list = Api::<CoreEvent>::namespaced(tenant.clone(), &ns_b)
            .list(&ListParams::default())
            .await
            .expect("list events");
        let found: Vec<CoreEvent> = list
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("AssumeRoleDenied"))
            .collect();
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    assert!(
        events[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains(&arn_a)
    );

    // A refused namespace is not asked about again at every pass: three more
    // passes (a namespace label touched each time), still one denied call.
    let denied = || iam::records_by_role_at("BED_IAM_FAULTS", &arn_a, "AssumeRole", 403);
    assert_eq!(denied().await.len(), 1, "{:?}", denied().await);
    for i in 0..3 {
        let before = passes(&operator).await;
        Api::<Namespace>::all(client.clone())
            .patch(
                &ns_a,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"touched": i.to_string()}}})),
            )
            .await
            .expect("label namespace");
        eventually(TIMEOUT, "another pass", || async {
            (passes(&operator).await > before).then_some(())
        })
        .await;
    }
    assert_eq!(denied().await.len(), 1, "B was asked about again");

    // B names its own role: admitted at once. D's annotation goes: it gets the
    // registry's own token, as C.
    annotate(&client, &ns_b, Some(&arn_b)).await;
    annotate(&client, &ns_d, None).await;
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), TIMEOUT).await;
    assert_eq!(
        r.status.and_then(|s| s.namespaces).map(|n| n.summary),
        Some("4/4".to_string())
    );
    assert!(get_secret(&client, &ns_b, &names.id).await.is_some());
    assert_eq!(iam::calls_by_role(&arn_b, "GetAuthorizationToken").await, 1);

    // The admin's choice for unannotated namespaces: none. C's secret goes, the
    // tenants' stay.
    Api::<EcrRegistry>::all(client.clone())
        .patch(
            &names.id,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"auth": {"namespaceRole": {"unannotated": "NoSecret"}}}}),
            ),
        )
        .await
        .expect("patch EcrRegistry");
    for ns in [&ns_c, &ns_d] {
        eventually(TIMEOUT, "C's and D's secrets removed", || async {
            get_secret(&client, ns, &names.id)
                .await
                .is_none()
                .then_some(())
        })
        .await;
    }
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), TIMEOUT).await;
    assert_eq!(
        r.status.and_then(|s| s.namespaces).map(|n| n.summary),
        Some("2/2".to_string())
    );
    for ns in [&ns_a, &ns_b] {
        assert!(get_secret(&client, ns, &names.id).await.is_some(), "{ns}");
    }

    // Nothing AWS handed out shows anywhere.
    let issued = Faults::new(bed.var("BED_IAM_FAULTS"))
        .issued(&user.access_key_id)
        .await;
    let mut secrets: Vec<&str> = issued.iter().map(String::as_str).collect();
    secrets.push(&user.secret_access_key);
    assert_no_leak(&client, &operator, &names.id, &secrets).await;
    cleanup(&client, &names, &[ns_a, ns_b, ns_c, ns_d]).await;
}

#[tokio::test]
async fn two_hundred_tenants_sharing_twenty_roles_fetch_twenty_tokens_within_the_rate() {
    const ROLES: usize = 20;
    const TENANTS: usize = 200;
    const RATE: f64 = 4.0;
    let names = TestNames::new("tenants");
    let client = setup(&names).await;
    let cluster = names.ns("cluster");
    let tenant = |i: usize| names.ns(&format!("t{i:03}"));
    let role = |r: usize| names.ns(&format!("r{r:02}"));
    let user_name = names.ns("user");
    let user_arn = iam::user_arn(&user_name);
    let roles: Vec<Value> = (0..ROLES)
        .map(|r| {
            let ids: Vec<String> = (0..TENANTS)
                .filter(|i| i % ROLES == r)
                .map(|i| format!("{cluster}/{}", tenant(i)))
                .collect();
            json!({"name": role(r), "trust": [trust(&user_arn, &ids)],
                   "statements": [iam::allow("ecr:GetAuthorizationToken", "*")]})
        })
        .collect();
    let users = iam::create(json!({
        "users": [{"name": user_name, "statements": [iam::allow("sts:AssumeRole", "*")]}],
        "roles": roles,
    }))
    .await;
    let namespaces: Vec<String> = (0..TENANTS).map(tenant).collect();
    let label = [("tenant-test", names.id.as_str())];
    for (i, ns) in namespaces.iter().enumerate() {
        create_namespace(&client, ns, &label).await;
        annotate(&client, ns, Some(&iam::role_arn(&role(i % ROLES)))).await;
    }
    let _operator = start_on_moto_b_with(
        &names,
        &[
            ("ECR_OPERATOR_CLUSTER_ID", &cluster),
            ("ECR_OPERATOR_TOKEN_RATE", &RATE.to_string()),
        ],
    );
    let credentials = put_user_credentials(&client, &names, &users[0]).await;
    create_registry(
        &client,
        &names,
        json!({
            "region": "us-east-1",
            "auth": {"secretRef": {"name": credentials}, "namespaceRole": {}},
            "namespaces": {"selector": {"matchLabels": {"tenant-test": names.id}}},
        }),
    )
    .await;
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), 120).await;
    assert_eq!(
        r.status.and_then(|s| s.namespaces).map(|n| n.summary),
        Some(format!("{TENANTS}/{TENANTS}"))
    );

    // Another pass (a namespace label changes): the tokens are fresh, none fetched.
    Api::<Namespace>::all(client.clone())
        .patch(
            &namespaces[0],
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .expect("label namespace");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let mut times = Vec::new();
    for r in 0..ROLES {
        let arn = iam::role_arn(&role(r));
        let fetched = iam::records_by_role(&arn, "GetAuthorizationToken").await;
        assert_eq!(
            fetched.len(),
            1,
            "role {arn}: one token for its ten namespaces"
        );
        let assumed = iam::calls_by_role(&arn, "AssumeRole").await;
        assert_eq!(assumed, 10, "role {arn}: each namespace assumes it once");
        times.extend(fetched.iter().map(|c| c["time"].as_f64().expect("time")));
    }
    // All twenty calls count against one account and region: never more than
    // RATE in any second, as the proxy saw them arrive.
    times.sort_by(f64::total_cmp);
    for (i, t) in times.iter().enumerate() {
        let within = times[i..].iter().take_while(|u| **u < t + 1.0).count();
        assert!(
            within as f64 <= RATE,
            "{within} token calls within 1s from {t}: {times:?}"
        );
    }
    cleanup(&client, &names, &namespaces).await;
}

/// spec.auth.webIdentity: each namespace's ServiceAccount `puller` has its token
/// exchanged for its own role. On moto A: moto B, which enforces IAM, answers
/// the unsigned AssumeRoleWithWebIdentity (as AWS defines it) with a 500, as it
/// requires a signature on every call; and no moto checks a web identity: not
/// the token's signature against the bed's issuer, not the trust policy's OIDC
/// conditions, not even that the role exists. So the test reads the token the
/// operator sent from the proxy's record and checks what AWS would: audience
/// sts.amazonaws.com, subject system:serviceaccount:<namespace>:puller, ten
/// minutes of validity, and the role and session name asked for.
#[tokio::test]
async fn a_service_account_s_token_is_exchanged_for_its_own_role_s_token() {
    let names = TestNames::new("webid");
    let client = setup(&names).await;
    let bed = Bed::get();
    let (ns_1, ns_2, ns_3) = (names.ns("w1"), names.ns("w2"), names.ns("w3"));
    let arn = iam::role_arn(&names.ns("role-w"));
    let calls = |operation: &'static str| {
        let arn = arn.clone();
        async move { iam::records_by_role_at("BED_FAULTS", &arn, operation, 200).await }
    };
    let operator = Operator::start(bed, &names);
    let label = [("webid-test", names.id.as_str())];
    for ns in [&ns_1, &ns_2, &ns_3] {
        create_namespace(&client, ns, &label).await;
    }
    service_account(&client, &ns_1, Some(&arn)).await;
    service_account(&client, &ns_2, None).await;
    create_registry(
        &client,
        &names,
        json!({
            "region": "us-east-1",
            "auth": {"webIdentity": {"serviceAccount": "puller"}},
            "namespaces": {"selector": {"matchLabels": {"webid-test": names.id}}},
        }),
    )
    .await;

    partial_sync(
        &client,
        &names.id,
        &[
            (&ns_2, "RoleAnnotationMissing"),
            (&ns_3, "ServiceAccountMissing"),
        ],
    )
    .await;
    let secret = eventually(TIMEOUT, "the secret of w1", || async {
        get_secret(&client, &ns_1, &names.id).await
    })
    .await;
    let authfile = authfile_for(&secret, ECR_HOST, bed.var("BED_REGISTRY"));
    let (ok, stderr) = skopeo_pull(bed.var("BED_IMAGE"), authfile.path());
    assert!(ok, "pulling with the secret of w1 failed: {stderr}");
    for ns in [&ns_2, &ns_3] {
        assert!(get_secret(&client, ns, &names.id).await.is_none(), "{ns}");
    }
    assert_eq!(calls("GetAuthorizationToken").await.len(), 1);

    // What the operator sent to STS: a token of w1's ServiceAccount, for STS.
    let exchanges = calls("AssumeRoleWithWebIdentity").await;
    assert_eq!(exchanges.len(), 1, "{exchanges:?}");
    // Unsigned, as AWS defines the call: no key of the operator's takes part.
    assert!(exchanges[0]["accessKeyId"].is_null(), "{:?}", exchanges[0]);
    let params = &exchanges[0]["params"];
    assert_eq!(params["RoleSessionName"], format!("ecr-{ns_1}"));
    let jwt = params["WebIdentityToken"]
        .as_str()
        .expect("a token was sent");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).expect("a JWT"))
            .expect("base64url"),
    )
    .expect("JSON claims");
    assert_eq!(claims["aud"], json!(["sts.amazonaws.com"]), "{claims}");
    assert_eq!(
        claims["sub"],
        format!("system:serviceaccount:{ns_1}:puller"),
        "{claims}"
    );
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 600, "{claims}");

    // The missing pieces added: both admitted.
    service_account(&client, &ns_2, Some(&arn)).await;
    service_account(&client, &ns_3, Some(&arn)).await;
    let r = wait_ready(&client, &names.id, "True", Some("Synced"), TIMEOUT).await;
    assert_eq!(
        r.status.and_then(|s| s.namespaces).map(|n| n.summary),
        Some("3/3".to_string())
    );
    // Still one token for the role, each namespace having exchanged its own.
    assert_eq!(calls("GetAuthorizationToken").await.len(), 1);
    assert_eq!(calls("AssumeRoleWithWebIdentity").await.len(), 3);
    assert_no_leak(&client, &operator, &names.id, &[jwt]).await;
    cleanup(&client, &names, &[ns_1, ns_2, ns_3]).await;
}

/// Creates or updates ServiceAccount `puller` in `ns`, with `role_arn` as its
/// eks.amazonaws.com/role-arn annotation.
async fn service_account(client: &Client, ns: &str, role_arn: Option<&str>) {
    let annotations: serde_json::Map<String, Value> = role_arn
        .map(|arn| (SA_ROLE_ARN_ANNOTATION.to_string(), json!(arn)))
        .into_iter()
        .collect();
    let sa = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "puller", "annotations": annotations},
    });
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .patch(
            "puller",
            &PatchParams::apply("namespace-roles-test").force(),
            &Patch::Apply(&sa),
        )
        .await
        .expect("apply ServiceAccount");
}
