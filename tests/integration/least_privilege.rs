//! The admission fence of deploy/ (docs/operating.md, "Admission fence"): the
//! operator's ServiceAccount, with exactly the rendered RBAC, ValidatingAdmissionPolicy
//! and binding, sends raw requests that its RBAC allows (kube's `Api`, not
//! kubectl, which would read first), and the API server refuses all but the
//! operator's own writes:
//!
//! - Secrets it does not manage, in any namespace: an empty merge patch (which
//!   would answer with the whole Secret), a forced apply, a create, a delete and a
//!   deletecollection are refused, and no answer carries their data;
//!   deletecollection is admitted Secret by Secret;
//! - the operator's own pull secrets (as `DesiredSecret` renders them) are still
//!   created, patched, taken back after a hand edit and removed;
//! - ServiceAccounts: only `imagePullSecrets` and the operator's annotation change;
//! - ServiceAccount tokens (web identity): only for the audience `sts.amazonaws.com`
//!   alone, for at most 3600 s, bound to no object;
//! - Jobs and CronJobs: only EcrMirror workloads as `mirror::job` renders them,
//!   with the operator's image.
//!
//! The binding takes the operator's identity and mirror image from its
//! ServiceAccount (the policy's parameter). deploy.rs (the operator binary,
//! every EcrRegistry feature) and ecr_mirror.rs (the mirror controller) run the
//! operator behind this fence too.

use crate::deploy::{
    Renderer, apply, delete_cluster_scoped, identity_of, kubectl_admin, of_kind, rendered_for_test,
    run,
};
use crate::support::bed::{Bed, TestNames, create_namespace, delete_namespace};
use crate::support::fixtures::{create_registry, setup};
use ecr_operator::crd::ecr_mirror::EcrMirror;
use ecr_operator::crd::ecr_registry::EcrRegistry;
use ecr_operator::registry::apply::field_manager;
use ecr_operator::registry::desired_secret::DesiredSecret;
use ecr_operator::runtime::fence::{self, Fence};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::client::Body;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const ACCOUNT: &str = "123456789012";

// ---------------------------------------------------------------------------
// The fence, shared with deploy.rs and ecr_mirror.rs

/// The fence out of rendered deploy/ objects: the policy, its binding and the
/// ServiceAccount it takes the operator's identity and mirror image from.
/// `service_account` and `image` replace the rendered ones (for a controller that
/// runs as another ServiceAccount, or with another image).
pub(crate) fn fence_objects(
    rendered: &[Value],
    service_account: Option<&str>,
    image: Option<&str>,
) -> Vec<Value> {
    let one = |kind: &str| {
        let found = of_kind(rendered, kind);
        assert_eq!(found.len(), 1, "deploy/ renders exactly one {kind}");
        found[0].clone()
    };
    let policy = one("ValidatingAdmissionPolicy");
    let mut binding = one("ValidatingAdmissionPolicyBinding");
    let mut account = one("ServiceAccount");
    assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
    assert_eq!(
        binding["spec"]["paramRef"]["name"],
        account["metadata"]["name"]
    );
    assert_eq!(
        binding["spec"]["paramRef"]["namespace"],
        account["metadata"]["namespace"]
    );
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    let deployment = one("Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        account["metadata"]["annotations"][MIRROR_IMAGE], container["image"],
        "the fence admits the operator's own image for mirror Jobs"
    );
    if let Some(sa) = service_account {
        account["metadata"]["name"] = json!(sa);
        binding["spec"]["paramRef"]["name"] = json!(sa);
    }
    if let Some(image) = image {
        account["metadata"]["annotations"][MIRROR_IMAGE] = json!(image);
    }
    vec![policy, binding, account]
}

/// The ServiceAccount annotation that names the image mirror Jobs may run.
const MIRROR_IMAGE: &str = "ecr-operator.io/mirror-image";

/// A Job as anyone but the operator would write it: busybox as root, reading a
/// Secret.
fn root_job(name: &str, secret: &str) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "c",
                "image": "busybox",
                "command": ["sh", "-c", "cat /s/*"],
                "securityContext": {"runAsUser": 0},
                "volumeMounts": [{"name": "s", "mountPath": "/s"}],
            }],
            "volumes": [{"name": "s", "secret": {"secretName": secret}}],
        }}},
    })
}

/// Applies the fence and waits until the API server enforces it on `operator`'s
/// requests, as the operator itself checks it (`runtime::fence`: a dry-run create
/// of an unlabelled Secret, which the RBAC allows, is refused by the policy): the
/// policy, the binding and the ServiceAccount reach the API server's admission
/// informers a moment after they are stored.
pub(crate) async fn install_fence(fence: &[Value], operator: &Client, ns: &str) {
    apply(&fence.iter().collect::<Vec<_>>());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let found = fence::probe(operator, ns).await;
        if found == Fence::Enforced {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the admission fence is not enforced after 30 s: {found:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Deletes the policy and its binding (the ServiceAccount goes with its namespace).
pub(crate) fn remove_fence(fence: &[Value]) {
    for o in fence.iter().filter(|o| o["kind"] != "ServiceAccount") {
        let kind = o["kind"].as_str().unwrap().to_lowercase();
        let name = o["metadata"]["name"].as_str().unwrap();
        let _ = run(
            kubectl_admin().args(["delete", &kind, name, "--ignore-not-found"]),
            None,
        );
    }
}

// ---------------------------------------------------------------------------
// One test's world

/// The rendered identity (kustomize) and fence for an operator in `<id>-op`, a
/// client that is that operator, and a namespace `<id>-other` it has no business in.
struct Fenced {
    names: TestNames,
    admin: Client,
    operator: Client,
    op_ns: String,
    other: String,
    identity: Vec<Value>,
    fence: Vec<Value>,
}

impl Fenced {
    /// With EcrMirror's permissions (`mirror`) or without.
    async fn start(prefix: &str, mirror: bool) -> Self {
        let bed = Bed::get();
        let names = TestNames::new(prefix);
        let op_ns = names.ns("op");
        let admin = setup(&names).await;
        let rendered = rendered_for_test(&names, Renderer::Kustomize, mirror);
        let identity = identity_of(&rendered);
        apply(&identity.iter().collect::<Vec<_>>());
        let sa = format!("{}-ecr-operator", names.id);
        let kubeconfig = bed.mint_kubeconfig(&["--service-account", &format!("{op_ns}/{sa}")]);
        let operator = bed.client_for(&kubeconfig).await;
        let fence = fence_objects(&rendered, None, None);
        install_fence(&fence, &operator, &op_ns).await;
        let other = names.ns("other");
        create_namespace(&admin, &other, &[]).await;
        Self {
            names,
            admin,
            operator,
            op_ns,
            other,
            identity,
            fence,
        }
    }

    /// The image the fence lets mirror Jobs use: the operator's own.
    fn operator_image(&self) -> String {
        self.fence[2]["metadata"]["annotations"][MIRROR_IMAGE]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn secrets(&self, client: &Client) -> Api<Secret> {
        Api::namespaced(client.clone(), &self.other)
    }

    /// A Secret of someone else's in the other namespace, created by the admin.
    async fn foreign_secret(&self, name: &str, extra: Value) -> Secret {
        let mut obj = json!({
            "metadata": {"name": name, "labels": {"ecr-operator.io/registry": self.names.id}},
            "stringData": {"password": self.password()},
        });
        merge(&mut obj, extra);
        self.secrets(&self.admin)
            .create(
                &PostParams::default(),
                &serde_json::from_value(obj).unwrap(),
            )
            .await
            .expect("create the foreign secret")
    }

    /// The value the foreign secrets hold: no answer to the operator may carry it.
    fn password(&self) -> String {
        format!("fence-{}-hunter2", self.names.id)
    }

    fn assert_no_data(&self, what: &str, text: &str) {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(self.password());
        assert!(
            !text.contains(&self.password()) && !text.contains(&encoded),
            "{what}: the answer carries the secret's data: {text}"
        );
    }

    async fn stop(self) {
        remove_fence(&self.fence);
        delete_cluster_scoped(&self.identity);
        let _ = Api::<EcrRegistry>::all(self.admin.clone())
            .delete(&self.names.id, &DeleteParams::default())
            .await;
        for ns in [&self.other, &self.op_ns] {
            delete_namespace(&self.admin, ns).await;
        }
    }
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// The API server's answer is the policy's refusal (403, or 422 for Jobs).
fn refused_by_policy<T: std::fmt::Debug>(
    answer: Result<T, kube::Error>,
    what: &str,
) -> Box<kube::core::Status> {
    match answer {
        Err(kube::Error::Api(s)) => {
            assert!(
                matches!(s.code, 403 | 422) && s.message.contains("ValidatingAdmissionPolicy"),
                "{what}: refused, but not by the admission policy: {s:?}"
            );
            s
        }
        other => panic!("{what}: not refused: {other:?}"),
    }
}

fn apply_params(manager: &str) -> PatchParams {
    PatchParams::apply(manager).force()
}

/// An EcrRegistry of this test (no operator runs it: the tests only need its uid,
/// and for mirrors the status an operator would have written).
async fn registry(w: &Fenced, secret_in: &str) -> EcrRegistry {
    let r = create_registry(
        &w.admin,
        &w.names,
        json!({"region": "us-east-1", "mirrors": {"namespaces": ["*"], "repositories": ["*"]}}),
    )
    .await;
    Api::<EcrRegistry>::all(w.admin.clone())
        .patch_status(
            &r.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "managedNamespaces": [secret_in],
                "registries": [format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com")],
                "secretName": "ecr-pull",
            }})),
        )
        .await
        .expect("EcrRegistry status")
}

/// The pull secret exactly as the operator writes it for `registry`.
fn desired_secret(registry: &EcrRegistry, ns: &str) -> Secret {
    DesiredSecret::new(
        registry,
        r#"{"auths":{}}"#.to_string(),
        jiff::Timestamp::now() + jiff::SignedDuration::from_hours(12),
    )
    .for_namespace(ns)
}

// ---------------------------------------------------------------------------
// Secrets

#[tokio::test]
async fn secrets_the_operator_does_not_manage_are_refused_and_never_answered() {
    let w = Fenced::start("lpsec", false).await;
    let reg = registry(&w, &w.other).await;
    let foreign = w.foreign_secret("foreign", json!({})).await;
    // A look-alike: the operator's labels and type, but no EcrRegistry owner.
    let look_alike = w
        .foreign_secret(
            "look-alike",
            json!({
                "metadata": {"labels": {"app.kubernetes.io/managed-by": "ecr-operator"}},
                "type": "kubernetes.io/dockerconfigjson",
                "stringData": {".dockerconfigjson": r#"{"auths":{}}"#},
            }),
        )
        .await;
    let theirs = w.secrets(&w.operator);

    // The empty merge patch: refused before any body is written, through kube's Api ...
    for name in ["foreign", "look-alike"] {
        let s = refused_by_policy(
            theirs
                .patch(name, &PatchParams::default(), &Patch::Merge(json!({})))
                .await,
            &format!("empty merge patch of {name}"),
        );
        assert_eq!(s.code, 403);
        w.assert_no_data("empty merge patch", &format!("{s:?}"));
    }
    // ... and as raw bytes on the wire: a Status, no `data`.
    let request = http::Request::patch(format!("/api/v1/namespaces/{}/secrets/foreign", w.other))
        .header("Content-Type", "application/merge-patch+json")
        .body(Body::from(b"{}".to_vec()))
        .unwrap();
    let response = w.operator.send(request).await.expect("raw PATCH");
    let code = response.status().as_u16();
    let body = response.into_body().collect_bytes().await.unwrap();
    let text = String::from_utf8_lossy(&body);
    assert_eq!(code, 403, "{text}");
    let status: Value = serde_json::from_str(&text).expect("a JSON body");
    assert_eq!(status["kind"], "Status", "{text}");
    assert!(status.get("data").is_none(), "{text}");
    w.assert_no_data("raw empty merge patch", &text);

    // A forced apply that would make the foreign secret look like the operator's.
    let mut takeover = desired_secret(&reg, &w.other);
    takeover.metadata.name = Some("foreign".into());
    takeover.type_ = None; // a Secret's type cannot change; the labels and owner can
    refused_by_policy(
        theirs
            .patch(
                "foreign",
                &apply_params(&field_manager(&reg.name_any())),
                &Patch::Apply(&takeover),
            )
            .await,
        "forced apply onto the foreign secret",
    );
    // The look-alike passes as new, not as old: it has no EcrRegistry owner yet.
    let mut takeover = desired_secret(&reg, &w.other);
    takeover.metadata.name = Some("look-alike".into());
    refused_by_policy(
        theirs
            .patch(
                "look-alike",
                &apply_params(&field_manager(&reg.name_any())),
                &Patch::Apply(&takeover),
            )
            .await,
        "forced apply onto the look-alike",
    );

    // Creating a Secret the operator would not write: unlabelled, without an
    // owner, or of another type.
    let candidates = [
        (
            "unlabelled",
            json!({"metadata": {"name": "new-1"}, "stringData": {"a": "b"}}),
        ),
        ("no owner", {
            let mut s = serde_json::to_value(desired_secret(&reg, &w.other)).unwrap();
            s["metadata"]["name"] = json!("new-2");
            s["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("ownerReferences");
            s
        }),
        ("Opaque", {
            let mut s = serde_json::to_value(desired_secret(&reg, &w.other)).unwrap();
            s["metadata"]["name"] = json!("new-3");
            s["type"] = json!("Opaque");
            s
        }),
        ("a ServiceAccount token", {
            let mut s = serde_json::to_value(desired_secret(&reg, &w.other)).unwrap();
            s["metadata"]["name"] = json!("new-4");
            s["metadata"]["annotations"] = json!({"kubernetes.io/service-account.name": "default"});
            s["type"] = json!("kubernetes.io/service-account-token");
            s.as_object_mut().unwrap().remove("data");
            s
        }),
    ];
    for (what, s) in candidates {
        refused_by_policy(
            theirs
                .create(&PostParams::default(), &serde_json::from_value(s).unwrap())
                .await,
            &format!("create of a secret: {what}"),
        );
    }

    // Delete: no RBAC verb for it in the first place.
    match theirs.delete("foreign", &DeleteParams::default()).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403, "{s:?}");
            w.assert_no_data("delete", &format!("{s:?}"));
        }
        other => panic!("delete of the foreign secret: not refused: {other:?}"),
    }
    // deletecollection by a label both foreign secrets carry.
    let s = refused_by_policy(
        theirs
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels(&format!("ecr-operator.io/registry={}", w.names.id)),
            )
            .await,
        "deletecollection by label",
    );
    w.assert_no_data("deletecollection", &format!("{s:?}"));

    // Both are exactly as they were.
    for before in [&foreign, &look_alike] {
        let after = w.secrets(&w.admin).get(&before.name_any()).await.unwrap();
        assert_eq!(
            after.resource_version(),
            before.resource_version(),
            "{} was changed",
            before.name_any()
        );
    }
    w.stop().await;
}

/// The finding docs/operating.md records: a deletecollection is admitted once per
/// Secret it would delete (operation DELETE, that Secret as oldObject, no name),
/// in name order by the API server's one delete worker (the default
/// `--delete-collection-workers=1`); the first refusal ends the request with that
/// error, after the Secrets before it are gone.
/// Without EcrMirror's part of deploy/ (the default) the operator's identity has
/// no batch verb at all: the RBAC refuses before the fence is asked.
#[tokio::test]
async fn without_the_mirror_component_no_batch_verb_is_granted() {
    let w = Fenced::start("lpnob", false).await;
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let job: Job = serde_json::from_value(root_job("no-batch", "none")).unwrap();
    let jobs: Api<Job> = Api::namespaced(w.operator.clone(), &w.other);
    let cron_jobs: Api<CronJob> = Api::all(w.operator.clone());
    for (what, answer) in [
        (
            "create a Job",
            jobs.create(&dry_run, &job).await.map(|_| ()),
        ),
        (
            "list Jobs",
            jobs.list(&ListParams::default()).await.map(|_| ()),
        ),
        (
            "watch CronJobs",
            cron_jobs.list(&ListParams::default()).await.map(|_| ()),
        ),
    ] {
        match answer {
            Err(kube::Error::Api(s)) => assert!(
                s.code == 403 && s.message.contains("cannot"),
                "{what}: refused, but not by the RBAC: {s:?}"
            ),
            other => panic!("{what}: not refused: {other:?}"),
        }
    }
    w.stop().await;
}

/// An uninstalled and reinstalled fence (a Helm upgrade that turns it off and on,
/// a reinstall) is enforced again.
#[tokio::test]
async fn a_reinstalled_fence_is_enforced_again() {
    let w = Fenced::start("lpre", false).await;
    remove_fence(&w.fence);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fence::probe(&w.operator, &w.op_ns).await != Fence::NotEnforced {
        assert!(
            std::time::Instant::now() < deadline,
            "the removed fence is still enforced after 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The API server refreshes its policies every second: let it drop the last
    // one that used the parameter's kind.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    install_fence(&w.fence, &w.operator, &w.op_ns).await;
    w.stop().await;
}

#[tokio::test]
async fn deletecollection_is_admitted_secret_by_secret() {
    let w = Fenced::start("lpdc", false).await;
    let reg = registry(&w, &w.other).await;
    let theirs = w.secrets(&w.operator);
    let label = format!("ecr-operator.io/registry={}", w.names.id);

    // "a-ours" (the operator's) sorts before "b-foreign".
    // (The registry is named after the test: its label is the foreign one's.)
    let mut ours = desired_secret(&reg, &w.other);
    ours.metadata.name = Some("a-ours".into());
    theirs
        .patch(
            "a-ours",
            &PatchParams::apply(&field_manager(&reg.name_any())),
            &Patch::Apply(&ours),
        )
        .await
        .expect("the operator writes its secret");
    w.foreign_secret("b-foreign", json!({})).await;

    let s = refused_by_policy(
        theirs
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels(&label),
            )
            .await,
        "deletecollection over both",
    );
    assert_eq!(s.code, 403);
    w.assert_no_data("deletecollection over both", &format!("{s:?}"));
    let left: Vec<String> = w
        .secrets(&w.admin)
        .list(&ListParams::default().labels(&label))
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(left, ["b-foreign"], "what the deletecollection left");
    w.stop().await;
}

#[tokio::test]
async fn the_operators_own_secrets_are_still_written_taken_back_and_removed() {
    let w = Fenced::start("lpown", false).await;
    let reg = registry(&w, &w.other).await;
    let ours = desired_secret(&reg, &w.other);
    let name = ours.name_any();
    let manager = field_manager(&reg.name_any());
    let api = w.secrets(&w.operator);

    // Written by server-side apply, as the operator does, then patched.
    api.patch(&name, &PatchParams::apply(&manager), &Patch::Apply(&ours))
        .await
        .expect("create by apply");
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"ecr-operator.io/note": "x"}}})),
    )
    .await
    .expect("merge patch of its own secret");

    // Edited by hand (its label), then taken back: the dry-run ownership test and
    // the forced apply, as take_back does. The probe's object still lacks the
    // label: updates are judged by the owner reference.
    w.secrets(&w.admin)
        .patch(
            &name,
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &Patch::Merge(
                json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "someone-else"}}}),
            ),
        )
        .await
        .unwrap();
    let test: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": reg.uid().unwrap()},
    ]))
    .unwrap();
    let probe = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    api.patch(&name, &probe, &Patch::Json::<()>(test))
        .await
        .expect("the dry-run ownership test");
    api.patch(&name, &apply_params(&manager), &Patch::Apply(&ours))
        .await
        .expect("the forced apply that takes it back");
    let back = w.secrets(&w.admin).get(&name).await.unwrap();
    assert_eq!(
        back.labels()["app.kubernetes.io/managed-by"],
        "ecr-operator"
    );

    // Removed by label and name, as remove_secret does.
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default()
            .labels(&format!("ecr-operator.io/registry={}", reg.name_any()))
            .fields(&format!("metadata.name={name}")),
    )
    .await
    .expect("deletecollection of its own secret");
    assert!(w.secrets(&w.admin).get_opt(&name).await.unwrap().is_none());
    w.stop().await;
}

// ---------------------------------------------------------------------------
// ServiceAccounts

#[tokio::test]
async fn service_accounts_only_take_image_pull_secrets() {
    let w = Fenced::start("lpsa", false).await;
    let role = "arn:aws:iam::111122223333:role/app";
    let sa: ServiceAccount = serde_json::from_value(json!({
        "metadata": {
            "name": "app",
            "labels": {"team": "a"},
            "annotations": {"eks.amazonaws.com/role-arn": role, "note": "kept"},
        },
    }))
    .unwrap();
    let admin_sas: Api<ServiceAccount> = Api::namespaced(w.admin.clone(), &w.other);
    let before = admin_sas.create(&PostParams::default(), &sa).await.unwrap();
    let theirs: Api<ServiceAccount> = Api::namespaced(w.operator.clone(), &w.other);

    let refused = [
        (
            "the IRSA role",
            json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::666666666666:role/x"}}}),
        ),
        (
            "another annotation removed",
            json!({"metadata": {"annotations": {"note": null}}}),
        ),
        ("a label", json!({"metadata": {"labels": {"team": "b"}}})),
        (
            "automountServiceAccountToken",
            json!({"automountServiceAccountToken": true}),
        ),
        ("secrets", json!({"secrets": [{"name": "x"}]})),
        (
            "imagePullSecrets with the IRSA role",
            json!({
                "metadata": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::666666666666:role/x"}},
                "imagePullSecrets": [{"name": "p"}],
            }),
        ),
    ];
    for (what, patch) in refused {
        let s = refused_by_policy(
            theirs
                .patch("app", &PatchParams::default(), &Patch::Merge(patch))
                .await,
            what,
        );
        assert_eq!(s.code, 403, "{what}");
    }
    assert_eq!(
        admin_sas.get("app").await.unwrap().resource_version(),
        before.resource_version(),
        "a refused patch changed the ServiceAccount"
    );

    // What the operator writes: imagePullSecrets and its annotation, under the
    // resourceVersion it read.
    let patched = theirs
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {
                    "resourceVersion": before.resource_version(),
                    "annotations": {"ecr-operator.io/added-image-pull-secrets": "r/p"},
                },
                "imagePullSecrets": [{"name": "p"}],
            })),
        )
        .await
        .expect("imagePullSecrets and the operator's annotation");
    assert_eq!(patched.image_pull_secrets.as_ref().unwrap()[0].name, "p");
    assert_eq!(patched.annotations()["eks.amazonaws.com/role-arn"], role);
    // ... and removes them again.
    theirs
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {"ecr-operator.io/added-image-pull-secrets": null}},
                "imagePullSecrets": [],
            })),
        )
        .await
        .expect("removal of the operator's entries");
    w.stop().await;
}

// ---------------------------------------------------------------------------
// ServiceAccount tokens (web identity)

/// What the fence answers a token request it refuses.
const TOKEN_REFUSAL: &str = "ecr-operator may only request ServiceAccount tokens for the audience \
    sts.amazonaws.com, for at most 3600 seconds, bound to no object";

/// A raw TokenRequest (`POST .../serviceaccounts/NAME/token`) under `client`: the
/// status code and the body. The body of a 201 holds the token: never print it.
async fn request_token(client: &Client, ns: &str, sa: &str, spec: Value) -> (u16, Value) {
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": spec,
    });
    let request = http::Request::post(format!(
        "/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"
    ))
    .header("Content-Type", "application/json")
    .body(Body::from(serde_json::to_vec(&body).unwrap()))
    .unwrap();
    let response = client.send(request).await.expect("raw TokenRequest");
    let code = response.status().as_u16();
    let bytes = response.into_body().collect_bytes().await.unwrap();
    (
        code,
        serde_json::from_slice(&bytes).expect("a JSON answer to the TokenRequest"),
    )
}

/// The claims of a JWT (its payload; the token itself is not kept or printed).
fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT of three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .expect("a base64url JWT payload");
    serde_json::from_slice(&bytes).expect("JSON JWT claims")
}

/// The operator may ask for a ServiceAccount token for AWS STS only (web
/// identity): audience `sts.amazonaws.com` alone, at most an hour (it asks for
/// 10 minutes), bound to no object. A token for the API server (asked for or by
/// default), a longer one, one with a second audience or one bound to an object
/// is refused by the fence (403), though the RBAC allows them all. The policy
/// sees the TokenRequest, not the ServiceAccount: the ServiceAccount's role
/// annotation is the operator's to check.
#[tokio::test]
async fn service_account_tokens_only_for_aws_sts() {
    let w = Fenced::start("lptok", false).await;
    let sa: ServiceAccount = serde_json::from_value(json!({
        "metadata": {
            "name": "app",
            "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/app"},
        },
    }))
    .unwrap();
    Api::<ServiceAccount>::namespaced(w.admin.clone(), &w.other)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();

    // What the operator asks for (600 s), up to the limit (3600 s): admitted, and
    // the token is what was asked for.
    for seconds in [600, 3600] {
        let (code, answer) = request_token(
            &w.operator,
            &w.other,
            "app",
            json!({"audiences": ["sts.amazonaws.com"], "expirationSeconds": seconds}),
        )
        .await;
        assert_eq!(
            (code, answer["kind"].as_str()),
            (201, Some("TokenRequest")),
            "a token for AWS STS, {seconds} s: {}",
            if code == 201 {
                "(token withheld)".to_string()
            } else {
                answer.to_string()
            }
        );
        let token = answer["status"]["token"].as_str().unwrap_or_default();
        assert!(!token.is_empty(), "no token in the answer");
        let claims = jwt_claims(token);
        assert_eq!(claims["aud"], json!(["sts.amazonaws.com"]));
        assert_eq!(
            claims["sub"],
            json!(format!("system:serviceaccount:{}:app", w.other))
        );
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            seconds,
            "the token's lifetime"
        );
        assert!(
            claims["kubernetes.io"].get("pod").is_none()
                && claims["kubernetes.io"].get("secret").is_none(),
            "the token is bound to an object"
        );
    }

    // Anything else: refused by the fence (the RBAC allows every one of them).
    let refused = [
        (
            "an API server token",
            json!({"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 600}),
        ),
        (
            "no audience (the API server's)",
            json!({"expirationSeconds": 600}),
        ),
        (
            "a second over the limit",
            json!({"audiences": ["sts.amazonaws.com"], "expirationSeconds": 3601}),
        ),
        (
            "a day",
            json!({"audiences": ["sts.amazonaws.com"], "expirationSeconds": 86400}),
        ),
        (
            "a second audience",
            json!({"audiences": ["sts.amazonaws.com", "other"], "expirationSeconds": 600}),
        ),
        (
            "bound to a Secret",
            json!({
                "audiences": ["sts.amazonaws.com"],
                "expirationSeconds": 600,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": "any"},
            }),
        ),
    ];
    for (what, spec) in refused {
        let (code, answer) = request_token(&w.operator, &w.other, "app", spec).await;
        let shown = if code == 201 {
            "(token withheld)".to_string()
        } else {
            answer.to_string()
        };
        assert_eq!(code, 403, "{what}: {shown}");
        assert_eq!(answer["kind"], "Status", "{what}: {shown}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("ValidatingAdmissionPolicy") && message.contains(TOKEN_REFUSAL),
            "{what}: refused, but not by the fence's token rule: {shown}"
        );
        assert!(answer["status"].get("token").is_none(), "{what}: {shown}");
    }

    // The ServiceAccount rule still answers with its own message (the token rule
    // does not break it for requests without a subresource).
    let s = refused_by_policy(
        Api::<ServiceAccount>::namespaced(w.operator.clone(), &w.other)
            .patch(
                "app",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"team": "b"}}})),
            )
            .await,
        "a label on the ServiceAccount",
    );
    assert_eq!(s.code, 403);
    assert!(
        s.message
            .contains("ecr-operator may only change imagePullSecrets"),
        "{s:?}"
    );
    w.stop().await;
}

// ---------------------------------------------------------------------------
// Jobs and CronJobs

#[tokio::test]
async fn only_mirror_jobs_with_the_operators_image_are_admitted() {
    let w = Fenced::start("lpjob", true).await;
    let reg = registry(&w, &w.other).await;
    let mirrors: Api<EcrMirror> = Api::namespaced(w.admin.clone(), &w.other);
    let mirror: EcrMirror = serde_json::from_value(json!({
        "apiVersion": "ecr-operator.io/v1alpha1",
        "kind": "EcrMirror",
        "metadata": {"name": "app"},
        "spec": {
            "registryRef": {"name": reg.name_any()},
            "push": {
                "source": "docker.io/library/busybox:1",
                "sourcePullSecret": "hub",
                "repository": "mirror/app",
                "tags": ["1"],
            },
        },
    }))
    .unwrap();
    let mirror = mirrors
        .create(&PostParams::default(), &mirror)
        .await
        .unwrap();
    let image = w.operator_image();
    let jobs: Api<Job> = Api::namespaced(w.operator.clone(), &w.other);
    let cron_jobs: Api<CronJob> = Api::namespaced(w.operator.clone(), &w.other);
    let pp = || PatchParams::apply("ecr-operator").force();

    // Not a mirror workload.
    let s = refused_by_policy(
        jobs.create(
            &PostParams::default(),
            &serde_json::from_value(root_job("evil", "hub")).unwrap(),
        )
        .await,
        "a root busybox Job",
    );
    assert_eq!(
        s.code, 422,
        "Jobs are refused as Invalid (EcrMirror reports InvalidSpec)"
    );

    // The operator's own, as it renders them: admitted.
    let job = ecr_operator::mirror::job::render(&mirror, &reg, &image).expect("render the Job");
    let job_name = job.name_any();
    jobs.patch(&job_name, &pp(), &Patch::Apply(&job))
        .await
        .expect("the mirror Job");
    // With the proxy, CA bundle and pod metadata a jobTemplate may add: admitted.
    let mut extended = mirror.clone();
    extended.metadata.name = Some("app-proxied".into());
    extended.spec.job_template = serde_json::from_value(json!({
        "env": [{"name": "HTTPS_PROXY", "value": "http://proxy.corp:3128"}],
        "volumes": [{"name": "ca", "mountPath": "/etc/corp-ca", "configMap": {"name": "corp-ca"}}],
        "podAnnotations": {"sidecar.istio.io/inject": "false"},
        "podLabels": {"team": "a"},
    }))
    .unwrap();
    let mut open = reg.clone();
    open.spec.mirrors.as_mut().unwrap().allow_job_overrides = true;
    let proxied = ecr_operator::mirror::job::render(&extended, &open, &image).expect("render");
    jobs.patch(&proxied.name_any(), &pp(), &Patch::Apply(&proxied))
        .await
        .expect("a mirror Job with env, a ConfigMap volume and pod metadata");
    jobs.delete(&proxied.name_any(), &DeleteParams::background())
        .await
        .expect("delete of that Job");
    let mut scheduled = mirror.clone();
    scheduled.spec.schedule = Some("0 0 1 1 *".into());
    let cron = ecr_operator::mirror::job::render_cron_job(&scheduled, &reg, &image)
        .expect("render the CronJob");
    cron_jobs
        .patch(&cron.name_any(), &pp(), &Patch::Apply(&cron))
        .await
        .expect("the mirror CronJob");

    // The same Job, changed in one way each: refused.
    let rendered = serde_json::to_value(&job).unwrap();
    type Change = fn(&mut Value);
    let variants: Vec<(&str, Change)> = vec![
        ("another image (jobTemplate.image)", |j| {
            j["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:1");
        }),
        ("no mirror label", |j| {
            j["metadata"]["labels"]
                .as_object_mut()
                .unwrap()
                .remove("ecr-operator.io/mirror");
        }),
        ("a second container", |j| {
            let c = j["spec"]["template"]["spec"]["containers"][0].clone();
            let mut second = c.clone();
            second["name"] = json!("second");
            j["spec"]["template"]["spec"]["containers"] = json!([c, second]);
        }),
        ("root", |j| {
            j["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] =
                json!(0);
            j["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] =
                json!(false);
        }),
        ("privileged", |j| {
            let sc = &mut j["spec"]["template"]["spec"]["containers"][0]["securityContext"];
            sc["privileged"] = json!(true);
            sc["allowPrivilegeEscalation"] = json!(true);
        }),
        ("a ServiceAccount token", |j| {
            j["spec"]["template"]["spec"]["automountServiceAccountToken"] = json!(true);
        }),
        ("the host network", |j| {
            j["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
        }),
        ("a hostPath volume", |j| {
            j["spec"]["template"]["spec"]["volumes"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "host", "hostPath": {"path": "/"}}));
        }),
        ("an environment variable read from a Secret", |j| {
            j["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "X",
                "valueFrom": {"secretKeyRef": {"name": "hub", "key": ".dockerconfigjson"}}}]);
        }),
        ("a Secret's keys as environment", |j| {
            j["spec"]["template"]["spec"]["containers"][0]["envFrom"] =
                json!([{"secretRef": {"name": "hub"}}]);
        }),
        ("a whole Secret", |j| {
            j["spec"]["template"]["spec"]["volumes"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "all", "secret": {"secretName": "hub"}}));
        }),
    ];
    for (i, (what, change)) in variants.iter().enumerate() {
        let mut j = rendered.clone();
        j["metadata"]["name"] = json!(format!("variant-{i}"));
        change(&mut j);
        refused_by_policy(
            jobs.create(&PostParams::default(), &serde_json::from_value(j).unwrap())
                .await,
            &format!("a mirror Job with {what}"),
        );
    }

    // Someone else's Job: neither patched nor deleted. The operator's: deleted.
    Api::<Job>::namespaced(w.admin.clone(), &w.other)
        .create(
            &PostParams::default(),
            &serde_json::from_value(root_job("theirs", "hub")).unwrap(),
        )
        .await
        .unwrap();
    let s = refused_by_policy(
        jobs.patch("theirs", &PatchParams::default(), &Patch::Merge(json!({})))
            .await,
        "an empty patch of someone else's Job",
    );
    assert_eq!(s.code, 403);
    let s = refused_by_policy(
        jobs.delete("theirs", &DeleteParams::background()).await,
        "delete of someone else's Job",
    );
    assert_eq!(s.code, 403);
    jobs.delete(&job_name, &DeleteParams::background())
        .await
        .expect("delete of the mirror Job");
    cron_jobs
        .delete(&cron.name_any(), &DeleteParams::background())
        .await
        .expect("delete of the mirror CronJob");
    w.stop().await;
}

// ---------------------------------------------------------------------------
// Rendering

#[test]
fn the_fence_is_on_by_default_and_helm_can_turn_it_off() {
    use crate::deploy::{helm_template, kustomize, parse_stream, run_ok};
    let kinds = |objects: &[Value]| -> Vec<String> {
        let mut kinds: Vec<String> = objects
            .iter()
            .filter(|o| {
                o["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("admissionregistration.k8s.io/"))
            })
            .map(|o| o["kind"].as_str().unwrap().to_string())
            .collect();
        kinds.sort();
        kinds
    };
    let fence = [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ];
    assert_eq!(kinds(&parse_stream(&kustomize(None, None, &[]))), fence);
    let on = parse_stream(&helm_template("ecr-operator", "ecr-operator", &[]));
    assert_eq!(kinds(&on), fence);
    let off = parse_stream(&helm_template(
        "ecr-operator",
        "ecr-operator",
        &["--set", "admissionPolicy.enabled=false"],
    ));
    assert!(kinds(&off).is_empty(), "{:?}", kinds(&off));
    // kustomize: the overlay patch of docs/operating.md.
    let overlay = tempfile::tempdir().unwrap();
    let base = crate::support::bed::repo_root().join(crate::deploy::KUSTOMIZE);
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        format!(
            r#"resources: [{}]
patches:
  - target: {{group: admissionregistration.k8s.io}}
    patch: |-
      $patch: delete
      apiVersion: admissionregistration.k8s.io/v1
      kind: ValidatingAdmissionPolicy
      metadata: {{name: any}}
"#,
            crate::deploy::relative(overlay.path(), &base).display()
        ),
    )
    .unwrap();
    let off = run_ok(kubectl_admin().arg("kustomize").arg(overlay.path()), None);
    let off = parse_stream(&off);
    assert!(kinds(&off).is_empty(), "{:?}", kinds(&off));
    assert_eq!(of_kind(&off, "Deployment").len(), 1);

    // An overlay's `images:` reaches the image mirror Jobs run (with EcrMirror on)
    // and the one the fence admits for them.
    let overlay = tempfile::tempdir().unwrap();
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        format!(
            r#"resources: [{}]
components: [{}]
images:
  - name: ghcr.io/ecr-operator/ecr-operator
    newName: registry.example/mirrored/ecr-operator
    newTag: "9.9"
"#,
            crate::deploy::relative(overlay.path(), &base).display(),
            crate::deploy::relative(overlay.path(), &base.join("components/mirror")).display()
        ),
    )
    .unwrap();
    let images = run_ok(kubectl_admin().arg("kustomize").arg(overlay.path()), None);
    let images = parse_stream(&images);
    let container = &of_kind(&images, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].as_array().unwrap();
    let own = env
        .iter()
        .find(|e| e["name"] == "ECR_OPERATOR_IMAGE")
        .unwrap();
    for image in [
        &container["image"],
        &own["value"],
        &of_kind(&images, "ServiceAccount")[0]["metadata"]["annotations"][MIRROR_IMAGE],
    ] {
        assert_eq!(image, "registry.example/mirrored/ecr-operator:9.9");
    }

    // The binding follows the release's names, and kustomize's namespace and prefix.
    for (objects, account, ns) in [
        (
            parse_stream(&helm_template("x", "elsewhere", &[])),
            "x-ecr-operator",
            "elsewhere",
        ),
        (
            parse_stream(&kustomize(Some("elsewhere"), Some("x-"), &[])),
            "x-ecr-operator",
            "elsewhere",
        ),
    ] {
        let binding = of_kind(&objects, "ValidatingAdmissionPolicyBinding")[0];
        assert_eq!(binding["spec"]["paramRef"]["name"], account);
        assert_eq!(binding["spec"]["paramRef"]["namespace"], ns);
        assert_eq!(binding["spec"]["policyName"], "x-ecr-operator");
        assert_eq!(
            of_kind(&objects, "Deployment")[0]["spec"]["template"]["spec"]["serviceAccountName"],
            "x-ecr-operator"
        );
    }
}
