//! Proof that every part of the bed is real: the API server validates, the
//! garbage collector collects, RBAC forbids, moto answers, the registry
//! authenticates.

use crate::support::bed::{Bed, TestNames, create_namespace, eventually};
use ecr_operator::aws::auth_token::Password;
use ecr_operator::aws::identity::{Identity, StaticKeys};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Resource};
use serde_json::json;

#[tokio::test]
async fn api_server_rejects_an_invalid_object() {
    let client = Bed::get().client().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let bad: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "Not_A_Valid_Name"}})).unwrap();
    match api.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 422, "{s:?}"),
        other => panic!("expected 422 Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_collector_deletes_an_owned_object() {
    let bed = Bed::get();
    let client = bed.client().await;
    let names = TestNames::new("gc");
    let ns = names.ns("a");
    create_namespace(&client, &ns, &[]).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let owner = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .unwrap();
    let owner_ref = owner.controller_owner_ref(&()).unwrap();
    let dependent: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "dependent", "ownerReferences": [owner_ref]}
    }))
    .unwrap();
    api.create(&PostParams::default(), &dependent)
        .await
        .unwrap();
    api.delete("owner", &DeleteParams::default()).await.unwrap();
    eventually(30, "GC to delete the dependent", || async {
        api.get_opt("dependent")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    // Namespace deletion really happens too (the namespace controller runs).
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    nss.delete(&ns, &DeleteParams::default()).await.unwrap();
    eventually(60, "the namespace to be deleted", || async {
        nss.get_opt(&ns).await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn rbac_forbids_an_unprivileged_user() {
    let bed = Bed::get();
    let path = bed.mint_kubeconfig(&["--user", "nobody"]);
    let client = bed.client_for(&path).await;
    let api: Api<Secret> = Api::namespaced(client, "default");
    match api.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn moto_returns_a_token_that_the_registry_accepts() {
    let bed = Bed::get();
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(bed.var("AWS_ENDPOINT_URL"))
        .load()
        .await;
    let identity = Identity {
        region: bed.var("AWS_REGION").to_string(),
        public: false,
        fips: false,
        static_keys: Some(StaticKeys {
            access_key_id: TestNames::new("moto").access_key_id(),
            secret_access_key: Password::new(bed.var("AWS_SECRET_ACCESS_KEY")),
            session_token: None,
        }),
        assume_role: None,
    };
    let token = identity
        .fetch_token(&base)
        .await
        .expect("GetAuthorizationToken");
    assert_eq!(token.username, "AWS");
    assert_eq!(token.password.expose(), bed.var("BED_ECR_PASSWORD"));
    assert_eq!(token.account.as_deref(), Some("123456789012"));
    // moto reports an expiry in 2015: it must be taken as 12 hours from now.
    assert!(token.expiry_adjusted);
}

#[test]
fn skopeo_pushes_with_the_right_credentials_and_fails_with_wrong_ones() {
    let bed = Bed::get();
    let registry = bed.var("BED_REGISTRY");
    let creds = format!("AWS:{}", bed.var("BED_ECR_PASSWORD"));
    let dest = format!("docker://{registry}/smoke/{}:v1", TestNames::new("push").id);
    let copy = |creds: &str| {
        std::process::Command::new("skopeo")
            .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
            .args([
                "--src-creds",
                &format!("AWS:{}", bed.var("BED_ECR_PASSWORD")),
            ])
            .args(["--dest-creds", creds])
            .arg(format!("docker://{}", bed.var("BED_IMAGE")))
            .arg(&dest)
            .output()
            .expect("run skopeo")
    };
    let ok = copy(&creds);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = copy("AWS:wrong-password");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .to_lowercase()
            .contains("unauthorized"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
