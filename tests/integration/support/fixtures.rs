//! Helpers that create and observe the objects tests work with.

use crate::support::bed::{Bed, TestNames, create_namespace, eventually};
use ecr_operator::crd::ecr_registry::EcrRegistry;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, CustomResourceExt};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

static CRDS: OnceCell<()> = OnceCell::const_new();

/// Installs the CRDs (EcrRegistry, EcrMirror) once per run and waits until they
/// are established.
pub async fn install_crd(client: &Client) {
    CRDS.get_or_init(|| install_crds_now(client)).await;
}

/// Installs the CRDs and waits until they are established, every time: for a
/// control plane of the test's own.
pub async fn install_crds_now(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [
        EcrRegistry::crd(),
        ecr_operator::crd::ecr_mirror::EcrMirror::crd(),
    ] {
        let name = crd.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::apply("ecr-operator-tests").force(),
            &Patch::Apply(crd),
        )
        .await
        .expect("install CRD");
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .expect("CRD established in time")
        .expect("watch CRD");
    }
}

/// Admin client, CRD installed, and the test's operator namespace created.
pub async fn setup(names: &TestNames) -> Client {
    let client = Bed::get().client().await;
    install_crd(&client).await;
    create_namespace(&client, &names.ns("op"), &[]).await;
    client
}

/// Creates an EcrRegistry named after the test, labelled for the test's operator.
pub async fn create_registry(client: &Client, names: &TestNames, spec: Value) -> EcrRegistry {
    create_registry_named(client, names, &names.id, spec).await
}

pub async fn create_registry_named(
    client: &Client,
    names: &TestNames,
    name: &str,
    spec: Value,
) -> EcrRegistry {
    let api: Api<EcrRegistry> = Api::all(client.clone());
    let obj: EcrRegistry = serde_json::from_value(json!({
        "apiVersion": "ecr-operator.io/v1alpha1",
        "kind": "EcrRegistry",
        "metadata": {"name": name, "labels": {"test": names.id}},
        "spec": spec,
    }))
    .expect("valid EcrRegistry");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create EcrRegistry")
}

/// Deletes the EcrRegistry `name` and waits until it is gone (the running
/// operator removes its finalizer after cleaning up).
pub async fn delete_registry(client: &Client, name: &str, secs: u64) {
    let api: Api<EcrRegistry> = Api::all(client.clone());
    api.delete(name, &DeleteParams::default())
        .await
        .expect("delete EcrRegistry");
    eventually(secs, "the EcrRegistry to be gone", || async {
        api.get_opt(name)
            .await
            .expect("get EcrRegistry")
            .is_none()
            .then_some(())
    })
    .await;
}

/// Waits until the Ready condition has `status` (and `reason`, when given).
pub async fn wait_ready(
    client: &Client,
    name: &str,
    status: &str,
    reason: Option<&str>,
    secs: u64,
) -> EcrRegistry {
    let api: Api<EcrRegistry> = Api::all(client.clone());
    let what = format!("EcrRegistry {name} Ready={status} {reason:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let r = api.get(name).await.expect("get EcrRegistry");
        let ready = ecr_operator::registry::status::ready(r.status.as_ref()).cloned();
        if let Some(c) = &ready
            && c.status == status
            && reason.is_none_or(|want| c.reason == want)
        {
            return r;
        }
        if std::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}; last Ready condition: {ready:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

pub async fn get_secret(client: &Client, ns: &str, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .expect("get secret")
}

/// The parsed `.dockerconfigjson` of a secret.
pub fn docker_config(secret: &Secret) -> Value {
    assert_eq!(
        secret.type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
    let data = &secret.data.as_ref().expect("data")[".dockerconfigjson"];
    serde_json::from_slice(&data.0).expect("valid JSON")
}

/// Writes a Docker config file whose only entry is the secret's credentials for
/// `registry_host` under `as_host` (the bed's registry stands in for ECR).
pub fn authfile_for(
    secret: &Secret,
    registry_host: &str,
    as_host: &str,
) -> tempfile::NamedTempFile {
    let config = docker_config(secret);
    let entry = config["auths"][registry_host].clone();
    assert!(
        entry.is_object(),
        "no auths entry for {registry_host} in {:?}",
        config["auths"]
            .as_object()
            .map(|m| m.keys().collect::<Vec<_>>())
    );
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), json!({"auths": {as_host: entry}}).to_string())
        .expect("write authfile");
    file
}

/// Copies `image` with skopeo using `authfile`; returns (success, stderr).
pub fn skopeo_pull(image: &str, authfile: &std::path::Path) -> (bool, String) {
    let dest = std::env::temp_dir().join(format!("skopeo-pull-{}", rand::random::<u64>()));
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--authfile"])
        .arg(authfile)
        .arg(format!("docker://{image}"))
        .arg(format!("oci:{}:pulled", dest.display()))
        .output()
        .expect("run skopeo");
    let _ = std::fs::remove_dir_all(&dest);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Sets (or with None removes) the `ecr-test` label the tests select namespaces by.
pub async fn label_namespace(client: &Client, ns: &str, value: Option<&str>) {
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"ecr-test": value}}})),
        )
        .await
        .expect("label namespace");
}

/// Creates the ServiceAccount `name` in `ns` with a pull secret of its own, `mine`.
pub async fn create_service_account(client: &Client, ns: &str, name: &str) {
    let sa: ServiceAccount = serde_json::from_value(json!({
        "metadata": {"name": name}, "imagePullSecrets": [{"name": "mine"}]
    }))
    .unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await
        .expect("create ServiceAccount");
}

/// The imagePullSecrets names of a ServiceAccount (empty when it does not exist).
pub async fn pull_secrets(client: &Client, ns: &str, sa: &str) -> Vec<String> {
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .get_opt(sa)
        .await
        .unwrap()
        .and_then(|sa| sa.image_pull_secrets)
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.name)
        .collect()
}

/// Waits until the ServiceAccount lists `secret` among its imagePullSecrets.
pub async fn wait_entry(client: &Client, ns: &str, sa: &str, secret: &str, secs: u64) {
    eventually(secs, &format!("{ns}/{sa} to list {secret}"), || async {
        pull_secrets(client, ns, sa)
            .await
            .iter()
            .any(|s| s == secret)
            .then_some(())
    })
    .await;
}

/// The namespace selection of a test: namespaces labelled `ecr-test=<test id>`.
pub fn selected_by(names: &TestNames) -> Value {
    json!({"selector": {"matchLabels": {"ecr-test": names.id}}})
}

/// Waits (15 s at most) for the secret `ns/name` and returns it.
pub async fn wait_secret(client: &Client, ns: &str, name: &str) -> Secret {
    crate::support::bed::eventually(15, &format!("secret {ns}/{name}"), || async {
        get_secret(client, ns, name).await
    })
    .await
}

/// The namespaces the EcrRegistry `name` has recorded its secret in (its record
/// ConfigMaps in the operator's namespace `<id>-op`).
pub async fn recorded(
    client: &Client,
    names: &TestNames,
    name: &str,
) -> std::collections::BTreeSet<String> {
    let registry = Api::<ecr_operator::crd::ecr_registry::EcrRegistry>::all(client.clone())
        .get(name)
        .await
        .expect("get EcrRegistry");
    ecr_operator::registry::record::load(client, &names.ns("op"), &registry)
        .await
        .expect("list the record")
        .unwrap_or_default()
}
