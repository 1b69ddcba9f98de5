//! deploy/ (the kustomize base and the Helm chart), the CRD copies they ship, the
//! RBAC they grant, and the container image of scripts/image/build.
//!
//! - Both renderers produce the same objects, and the API server accepts every one
//!   of them (server-side dry run, Pod Security "restricted" without a warning).
//! - The ClusterRole and Role grant exactly the rules listed here, and those rules
//!   are enough: the operator runs every EcrRegistry feature as the deployed
//!   ServiceAccount, with no other permission, behind the admission fence
//!   (least_privilege.rs) deploy/ installs with them.
//! - The image is a valid OCI image whose static binary runs with no libraries.

use crate::least_privilege::{fence_objects, install_fence, remove_fence};
use crate::support::bed::{
    Bed, TestNames, create_namespace, delete_namespace, eventually, repo_root,
};
use crate::support::faults::Faults;
use crate::support::fixtures::{
    create_registry, get_secret, label_namespace, pull_secrets, setup, wait_ready,
};
use crate::support::operator::Operator;
use ecr_operator::crd::ecr_registry::EcrRegistry;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Every permission the operator may have cluster-wide: (API group, resource, verbs).
/// Server-side apply reports a foreign secret as a conflict without a read, so there
/// is no get/list/watch on Secrets here.
const CLUSTER_RULES: &[(&str, &str, &[&str])] = &[
    (
        "ecr-operator.io",
        "ecrregistries",
        &["get", "list", "watch", "patch", "update"],
    ),
    (
        "ecr-operator.io",
        "ecrregistries/status",
        &["get", "patch", "update"],
    ),
    ("", "namespaces", &["list", "watch"]),
    ("", "serviceaccounts", &["list", "watch", "patch"]),
    // ServiceAccount web identity: tokens for AWS STS only (the admission fence
    // admits no other audience, least_privilege.rs).
    ("", "serviceaccounts/token", &["create"]),
    ("", "secrets", &["create", "patch", "deletecollection"]),
    ("events.k8s.io", "events", &["create", "patch"]),
];

/// What EcrMirror adds cluster-wide (kustomize components/mirror, Helm
/// mirror.enabled), in a ClusterRole of its own.
const MIRROR_RULES: &[(&str, &str, &[&str])] = &[
    ("ecr-operator.io", "ecrmirrors", &["list", "watch"]),
    ("ecr-operator.io", "ecrmirrors/status", &["patch"]),
    (
        "batch",
        "jobs",
        &["list", "watch", "create", "patch", "delete"],
    ),
    (
        "batch",
        "cronjobs",
        &["list", "watch", "create", "patch", "delete"],
    ),
    ("", "pods", &["list", "watch"]),
];

/// Every permission the operator may have in its own namespace.
const NAMESPACE_RULES: &[(&str, &str, &[&str])] = &[
    // Credential Secrets (spec.auth.secretRef).
    ("", "secrets", &["get", "list", "watch"]),
    // Each EcrRegistry's record of where its secrets are.
    (
        "",
        "configmaps",
        &["get", "list", "create", "patch", "delete"],
    ),
    // Leader election (kube-lease-manager: get, create, and patch to renew).
    ("coordination.k8s.io", "leases", &["get", "create", "patch"]),
];

/// Labels only Helm writes (the kustomize base has no release).
const HELM_ONLY_LABELS: &[&str] = &["helm.sh/chart", "app.kubernetes.io/managed-by"];

const CHART: &str = "deploy/helm/ecr-operator";
pub(crate) const KUSTOMIZE: &str = "deploy/kustomize";
const COMPONENTS: &[&str] = &["servicemonitor", "networkpolicy", "mirror"];
/// The Helm values that match [`COMPONENTS`].
const HELM_COMPONENTS: &[&str] = &[
    "--set",
    "serviceMonitor.enabled=true",
    "--set",
    "networkPolicy.enabled=true",
    "--set",
    "mirror.enabled=true",
];

// ---------------------------------------------------------------------------
// Rendering

pub(crate) fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

pub(crate) fn run_ok(cmd: &mut Command, stdin: Option<&str>) -> String {
    let what = format!("{cmd:?}");
    let out = run(cmd, stdin);
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The Helm CLI, built once per machine from the Go module proxy (scripts/tools/build-helm).
fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let out = run_ok(
            &mut Command::new(repo_root().join("scripts/tools/build-helm")),
            None,
        );
        PathBuf::from(out.trim())
    })
}

fn kubectl_bin() -> PathBuf {
    Path::new(Bed::get().var("BED_BIN")).join("kubectl")
}

/// Objects of a YAML stream (empty documents dropped).
pub(crate) fn parse_stream(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("valid YAML stream")
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// `path` as seen from `from` (kustomize wants relative paths to bases).
pub(crate) fn relative(from: &Path, path: &Path) -> PathBuf {
    let mut up = PathBuf::new();
    for _ in from.components().skip(1) {
        up.push("..");
    }
    up.join(path.strip_prefix("/").expect("absolute path"))
}

/// `kubectl kustomize` of the base through an overlay with these settings.
pub(crate) fn kustomize(
    namespace: Option<&str>,
    name_prefix: Option<&str>,
    components: &[&str],
) -> String {
    let overlay = tempfile::tempdir().expect("temp dir");
    let base = repo_root().join(KUSTOMIZE);
    let mut k = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [relative(overlay.path(), &base)],
        "components": components
            .iter()
            .map(|c| relative(overlay.path(), &base.join("components").join(c)))
            .collect::<Vec<_>>(),
    });
    if let Some(ns) = namespace {
        k["namespace"] = json!(ns);
    }
    if let Some(p) = name_prefix {
        k["namePrefix"] = json!(p);
    }
    std::fs::write(overlay.path().join("kustomization.yaml"), k.to_string())
        .expect("write overlay");
    run_ok(
        Command::new(kubectl_bin())
            .arg("kustomize")
            .arg(overlay.path()),
        None,
    )
}

/// `helm template RELEASE deploy/helm/ecr-operator -n NAMESPACE --include-crds ARGS`.
pub(crate) fn helm_template(release: &str, namespace: &str, args: &[&str]) -> String {
    run_ok(
        Command::new(helm())
            .args(["template", release])
            .arg(repo_root().join(CHART))
            .args(["--namespace", namespace, "--include-crds"])
            .args(args),
        None,
    )
}

fn key(o: &Value) -> String {
    format!(
        "{} {} {}/{}",
        o["apiVersion"].as_str().unwrap_or_default(),
        o["kind"].as_str().unwrap_or_default(),
        o["metadata"]["namespace"].as_str().unwrap_or_default(),
        o["metadata"]["name"].as_str().unwrap_or_default(),
    )
}

/// Whole floats as integers: Helm passes `crds/` through verbatim (`60.0`),
/// kustomize re-serializes it (`60`).
fn whole_numbers(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && n.is_f64()) {
                *v = json!(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// Objects by key, without the labels that only Helm writes.
fn normalized(objects: Vec<Value>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for mut o in objects {
        whole_numbers(&mut o);
        if let Some(labels) = o["metadata"]["labels"].as_object_mut() {
            for l in HELM_ONLY_LABELS {
                labels.remove(*l);
            }
        }
        let k = key(&o);
        assert!(out.insert(k.clone(), o).is_none(), "{k} rendered twice");
    }
    out
}

fn assert_same_objects(kustomize: BTreeMap<String, Value>, helm: BTreeMap<String, Value>) {
    let k_keys: Vec<_> = kustomize.keys().collect();
    let h_keys: Vec<_> = helm.keys().collect();
    assert_eq!(
        k_keys, h_keys,
        "kustomize and Helm render different objects"
    );
    for (k, kv) in &kustomize {
        assert!(
            kv == &helm[k],
            "{k} differs:\nkustomize: {}\nhelm:      {}",
            serde_json::to_string_pretty(kv).unwrap(),
            serde_json::to_string_pretty(&helm[k]).unwrap()
        );
    }
}

pub(crate) fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

// ---------------------------------------------------------------------------
// Files: CRD copies and versions

fn cargo_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

#[test]
fn deploy_crds_are_copies_of_crds_dir() {
    let root = repo_root();
    let mut names: Vec<String> = std::fs::read_dir(root.join("crds"))
        .expect("crds/")
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "crds/ holds no YAML");
    let kustomization: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root.join(KUSTOMIZE).join("kustomization.yaml")).unwrap(),
    )
    .unwrap();
    for copy_dir in [
        root.join(KUSTOMIZE).join("crds"),
        root.join(CHART).join("crds"),
    ] {
        let mut copies: Vec<String> = std::fs::read_dir(&copy_dir)
            .expect("crds copy dir")
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        copies.sort();
        assert_eq!(
            copies,
            names,
            "{} must hold exactly the files of crds/: run deploy/sync-crds",
            copy_dir.display()
        );
        for n in &names {
            assert!(
                std::fs::read(root.join("crds").join(n)).unwrap()
                    == std::fs::read(copy_dir.join(n)).unwrap(),
                "{} drifted from crds/{n}: run deploy/sync-crds",
                copy_dir.join(n).display()
            );
        }
    }
    let resources: Vec<&str> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for n in &names {
        assert!(
            resources.contains(&format!("crds/{n}").as_str()),
            "deploy/kustomize/kustomization.yaml does not list crds/{n}"
        );
    }
}

#[test]
fn chart_and_kustomize_versions_follow_cargo() {
    let root = repo_root();
    let version = cargo_version();
    let chart: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root.join(CHART).join("Chart.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(chart["version"], json!(version), "Chart.yaml version");
    assert_eq!(chart["appVersion"], json!(version), "Chart.yaml appVersion");
    let kustomization: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root.join(KUSTOMIZE).join("kustomization.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        kustomization["images"][0]["newTag"],
        json!(version),
        "deploy/kustomize image tag"
    );
    for o in parse_stream(&kustomize(None, None, COMPONENTS)) {
        if o["kind"] != "CustomResourceDefinition" {
            assert_eq!(
                o["metadata"]["labels"]["app.kubernetes.io/version"],
                json!(version),
                "version label of {}",
                key(&o)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering: kustomize == Helm

#[test]
fn kustomize_and_helm_render_the_same_objects() {
    // Defaults. Helm leaves the Namespace to `helm install --create-namespace`.
    let mut k = normalized(parse_stream(&kustomize(None, None, &[])));
    let h = normalized(parse_stream(&helm_template(
        "ecr-operator",
        "ecr-operator",
        &[],
    )));
    let k_namespace = k
        .remove("v1 Namespace /ecr-operator")
        .expect("kustomize renders the Namespace");
    assert_same_objects(k, h);
    // ... and renders the same Namespace when asked to.
    let h_ns = normalized(parse_stream(&helm_template(
        "ecr-operator",
        "ecr-operator",
        &["--set", "createNamespace=true"],
    )));
    assert_eq!(h_ns["v1 Namespace /ecr-operator"], k_namespace);

    // The optional parts: kustomize components == Helm values.
    let mut k = normalized(parse_stream(&kustomize(None, None, COMPONENTS)));
    k.remove("v1 Namespace /ecr-operator");
    let h = normalized(parse_stream(&helm_template(
        "ecr-operator",
        "ecr-operator",
        HELM_COMPONENTS,
    )));
    assert!(k.contains_key("monitoring.coreos.com/v1 ServiceMonitor ecr-operator/ecr-operator"));
    assert!(k.contains_key("networking.k8s.io/v1 NetworkPolicy ecr-operator/ecr-operator"));
    assert_same_objects(k, h);
}

#[test]
fn helm_lint_is_clean() {
    let out = run_ok(
        Command::new(helm())
            .args(["lint", "--strict"])
            .arg(repo_root().join(CHART)),
        None,
    );
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

#[test]
fn deployment_is_hardened_and_wired_as_documented() {
    let objects = parse_stream(&kustomize(None, None, &[]));
    let d = of_kind(&objects, "Deployment")[0];
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(c["args"], json!(["run"]));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(
        c["ports"][0],
        json!({"name": "admin", "containerPort": 8080, "protocol": "TCP"})
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "admin"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "admin"})
    );
    let env: BTreeMap<&str, &Value> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect();
    assert_eq!(
        env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(env["LOG_FORMAT"]["value"], "json");
    assert_eq!(c["resources"]["limits"]["memory"], "128Mi");
    assert_eq!(
        pod["topologySpreadConstraints"].as_array().unwrap().len(),
        2
    );
    let pdb = of_kind(&objects, "PodDisruptionBudget")[0];
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"], d["spec"]["selector"]);
    let svc = of_kind(&objects, "Service")[0];
    assert_eq!(svc["spec"]["ports"][0]["name"], "admin");
    assert_eq!(
        svc["spec"]["selector"],
        d["spec"]["selector"]["matchLabels"]
    );
    let sa = of_kind(&objects, "ServiceAccount")[0];
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);

    // Helm's values reach the pod: IRSA, proxy, no leader election, placement.
    let objects = parse_stream(&helm_template(
        "ecr-operator",
        "ecr-operator",
        &[
            "--set",
            "serviceAccount.roleArn=arn:aws:iam::111122223333:role/ecr-operator",
            "--set",
            "proxy.httpsProxy=http://proxy.internal:3128",
            "--set",
            "proxy.noProxy=10.0.0.1\\,.svc",
            "--set",
            "leaderElection.enabled=false",
            "--set",
            "replicaCount=1",
            "--set",
            "nodeSelector.kubernetes\\.io/os=linux",
            "--set",
            "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ],
    ));
    let sa = of_kind(&objects, "ServiceAccount")[0];
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::111122223333:role/ecr-operator"
    );
    let d = of_kind(&objects, "Deployment")[0];
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["args"], json!(["run", "--leader-elect=false"]));
    let env: BTreeMap<&str, &Value> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), &e["value"]))
        .collect();
    assert_eq!(env["HTTPS_PROXY"], "http://proxy.internal:3128");
    assert_eq!(env["NO_PROXY"], "10.0.0.1,.svc");
    assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
    assert!(
        c["image"]
            .as_str()
            .unwrap()
            .starts_with("ghcr.io/ecr-operator/ecr-operator@sha256:")
    );
}

// ---------------------------------------------------------------------------
// RBAC: exactly the expected rules

type Grant = (String, String, String);

fn expand(rules: &[(&str, &str, &[&str])]) -> BTreeSet<Grant> {
    rules
        .iter()
        .flat_map(|(g, r, verbs)| {
            verbs
                .iter()
                .map(|v| (g.to_string(), r.to_string(), v.to_string()))
        })
        .collect()
}

/// The (group, resource, verb) grants of a rendered ClusterRole or Role.
fn grants(role: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    let name = key(role);
    for rule in role["rules"].as_array().expect("rules") {
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "{name}: nonResourceURLs are not expected"
        );
        let list = |field: &str| -> Vec<String> {
            rule[field]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: a rule without {field}"))
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        for g in list("apiGroups") {
            for r in list("resources") {
                for v in list("verbs") {
                    assert!(
                        g != "*" && r != "*" && v != "*",
                        "{name}: wildcard in {rule}"
                    );
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    assert!(
        role.get("aggregationRule").is_none(),
        "{name}: no aggregation"
    );
    out
}

fn assert_rbac_is_exactly_expected(objects: &[Value], namespace: &str, what: &str, mirror: bool) {
    for kind in ["Role", "RoleBinding"] {
        assert_eq!(
            of_kind(objects, kind).len(),
            1,
            "{what}: exactly one {kind} expected"
        );
    }
    // The operator's ClusterRole, and EcrMirror's when it is on.
    let cluster_roles = of_kind(objects, "ClusterRole");
    let cluster_bindings = of_kind(objects, "ClusterRoleBinding");
    let count = if mirror { 2 } else { 1 };
    assert_eq!(cluster_roles.len(), count, "{what}: ClusterRoles");
    assert_eq!(cluster_bindings.len(), count, "{what}: ClusterRoleBindings");
    let mut cluster_expected = expand(CLUSTER_RULES);
    if mirror {
        cluster_expected.extend(expand(MIRROR_RULES));
    }
    let cluster_granted = cluster_roles.iter().flat_map(|r| grants(r)).collect();
    let role = of_kind(objects, "Role")[0];
    for (granted, expected, scope) in [
        (cluster_granted, cluster_expected, "ClusterRole"),
        (grants(role), expand(NAMESPACE_RULES), "Role"),
    ] {
        let extra: Vec<_> = granted.difference(&expected).collect();
        assert!(
            extra.is_empty(),
            "{what}: the {scope} grants more than the operator needs: {extra:?}"
        );
        let missing: Vec<_> = expected.difference(&granted).collect();
        assert!(
            missing.is_empty(),
            "{what}: the {scope} lacks {missing:?} (or update the expected list)"
        );
    }
    assert_eq!(
        role["metadata"]["namespace"], namespace,
        "{what}: Role namespace"
    );

    let sa = of_kind(objects, "ServiceAccount")[0];
    let subject = json!([{
        "kind": "ServiceAccount",
        "name": sa["metadata"]["name"],
        "namespace": namespace,
    }]);
    let mut bound: Vec<&Value> = cluster_bindings
        .iter()
        .map(|crb| {
            assert_eq!(
                crb["subjects"], subject,
                "{what}: ClusterRoleBinding subjects"
            );
            assert_eq!(crb["roleRef"]["kind"], "ClusterRole");
            &crb["roleRef"]["name"]
        })
        .collect();
    let mut names: Vec<&Value> = cluster_roles
        .iter()
        .map(|r| &r["metadata"]["name"])
        .collect();
    bound.sort_by_key(|v| v.to_string());
    names.sort_by_key(|v| v.to_string());
    assert_eq!(bound, names, "{what}: each ClusterRole bound once");
    let rb = of_kind(objects, "RoleBinding")[0];
    assert_eq!(rb["metadata"]["namespace"], namespace);
    assert_eq!(rb["subjects"], subject, "{what}: RoleBinding subjects");
    assert_eq!(rb["roleRef"]["kind"], "Role");
    assert_eq!(rb["roleRef"]["name"], role["metadata"]["name"]);
}

#[test]
fn rendered_rbac_grants_exactly_the_expected_rules() {
    // Without EcrMirror, no batch permission at all.
    let k = parse_stream(&kustomize(None, None, &[]));
    assert_rbac_is_exactly_expected(&k, "ecr-operator", "kustomize", false);
    let h = parse_stream(&helm_template("ecr-operator", "ecr-operator", &[]));
    assert_rbac_is_exactly_expected(&h, "ecr-operator", "helm", false);
    let k = parse_stream(&kustomize(None, None, COMPONENTS));
    assert_rbac_is_exactly_expected(&k, "ecr-operator", "kustomize, components", true);
    let k = parse_stream(&kustomize(Some("elsewhere"), Some("x-"), COMPONENTS));
    assert_rbac_is_exactly_expected(&k, "elsewhere", "kustomize, namespace elsewhere", true);
    let h = parse_stream(&helm_template("x", "elsewhere", HELM_COMPONENTS));
    assert_rbac_is_exactly_expected(&h, "elsewhere", "helm, namespace elsewhere", true);
}

// ---------------------------------------------------------------------------
// The API server accepts everything (server-side dry run)

/// A stand-in for the Prometheus Operator's ServiceMonitor CRD with the fields the
/// chart uses, so a ServiceMonitor can be dry-run on the bed. Installed only when
/// the bed has no ServiceMonitor CRD.
const SERVICE_MONITOR_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1",
  "kind": "CustomResourceDefinition",
  "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
  "spec": {
    "group": "monitoring.coreos.com",
    "scope": "Namespaced",
    "names": {"kind": "ServiceMonitor", "listKind": "ServiceMonitorList", "plural": "servicemonitors", "singular": "servicemonitor"},
    "versions": [{
      "name": "v1", "served": true, "storage": true,
      "schema": {"openAPIV3Schema": {
        "type": "object",
        "required": ["spec"],
        "properties": {
          "spec": {
            "type": "object",
            "required": ["selector"],
            "properties": {
              "selector": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
              "namespaceSelector": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
              "endpoints": {"type": "array", "items": {
                "type": "object",
                "properties": {
                  "port": {"type": "string"},
                  "path": {"type": "string"},
                  "interval": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
                }
              }}
            }
          }
        }
      }}
    }]
  }
}"#;

pub(crate) fn kubectl_admin() -> Command {
    Bed::get().kubectl()
}

fn ensure_service_monitor_crd() {
    let out = run(
        kubectl_admin().args(["get", "crd", "servicemonitors.monitoring.coreos.com"]),
        None,
    );
    if !out.status.success() {
        // Two tests may race here; apply is idempotent.
        run_ok(
            kubectl_admin().args([
                "apply",
                "--server-side",
                "--field-manager=ecr-operator-tests",
                "-f",
                "-",
            ]),
            Some(SERVICE_MONITOR_CRD),
        );
    }
    run_ok(
        kubectl_admin().args([
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/servicemonitors.monitoring.coreos.com",
        ]),
        None,
    );
}

/// Server-side dry run of a YAML stream: accepted, and without any warning
/// (Pod Security "restricted" warns through the namespace's `warn` label).
fn dry_run(yaml: &str, what: &str) {
    let out = run(
        kubectl_admin().args([
            "apply",
            "--server-side",
            "--dry-run=server",
            "--force-conflicts",
            "--field-manager=ecr-operator-deploy-test",
            "-f",
            "-",
        ]),
        Some(yaml),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what}: the API server refused a manifest:\n{stderr}"
    );
    assert!(
        !stderr.contains("Warning"),
        "{what}: the API server warned:\n{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("(server dry run)"), "{what}: {stdout}");
}

/// Applies a list of objects for real (as the bed's admin).
pub(crate) fn apply(objects: &[&Value]) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    run_ok(
        kubectl_admin().args([
            "apply",
            "--server-side",
            "--field-manager=ecr-operator-deploy-test",
            "-f",
            "-",
        ]),
        Some(&list.to_string()),
    );
}

#[tokio::test]
async fn every_rendered_manifest_passes_server_side_dry_run() {
    let names = TestNames::new("dry");
    let ns = names.ns("op");
    let client = Bed::get().client().await;
    ensure_service_monitor_crd();

    // The Namespace for real (with its Pod Security labels), the rest dry-run into it.
    let k = kustomize(Some(&ns), None, COMPONENTS);
    let objects = parse_stream(&k);
    apply(&of_kind(&objects, "Namespace"));
    let namespace: Namespace = Api::all(client.clone()).get(&ns).await.unwrap();
    assert_eq!(
        namespace.metadata.labels.unwrap()["pod-security.kubernetes.io/warn"],
        "restricted"
    );

    dry_run(&k, "kustomize");
    let h = helm_template(&names.id, &ns, HELM_COMPONENTS);
    dry_run(&h, "helm");
    let crds = std::fs::read_dir(repo_root().join("crds"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n");
    dry_run(&crds, "crds/");

    // And the checks are real: a pod template that breaks "restricted" is warned about.
    let broken = helm_template(&names.id, &ns, &["--set-json", "securityContext=null"]);
    let out = run(
        kubectl_admin().args(["apply", "--server-side", "--dry-run=server", "-f", "-"]),
        Some(&broken),
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("would violate PodSecurity"),
        "no Pod Security warning for a privileged template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    delete_namespace(&client, &ns).await;
}

// ---------------------------------------------------------------------------
// The operator with exactly the rendered RBAC

pub(crate) enum Renderer {
    Kustomize,
    Helm,
}

/// Everything deploy/ renders for an operator in `<id>-op`, named
/// `<id>-ecr-operator` (unique per test: ClusterRoles and the admission policy
/// are cluster-wide), with EcrMirror's part or not.
pub(crate) fn rendered_for_test(names: &TestNames, renderer: Renderer, mirror: bool) -> Vec<Value> {
    let ns = names.ns("op");
    let objects = match renderer {
        Renderer::Kustomize => {
            let components: &[&str] = if mirror { &["mirror"] } else { &[] };
            parse_stream(&kustomize(
                Some(&ns),
                Some(&format!("{}-", names.id)),
                components,
            ))
        }
        Renderer::Helm => {
            let values: &[&str] = if mirror {
                &["--set", "mirror.enabled=true"]
            } else {
                &[]
            };
            parse_stream(&helm_template(&names.id, &ns, values))
        }
    };
    assert_rbac_is_exactly_expected(&objects, &ns, "rendered for the test", mirror);
    objects
}

/// Deletes the cluster-scoped objects among `objects` (ClusterRoles and their
/// bindings, the admission policy and binding); the others go with their namespace.
pub(crate) fn delete_cluster_scoped(objects: &[Value]) {
    for o in objects
        .iter()
        .filter(|o| o["metadata"]["namespace"].is_null())
    {
        let kind = o["kind"].as_str().unwrap().to_lowercase();
        let name = o["metadata"]["name"].as_str().unwrap();
        let _ = run(
            kubectl_admin().args(["delete", &kind, name, "--ignore-not-found"]),
            None,
        );
    }
}

/// The ServiceAccount and RBAC objects of `rendered`.
pub(crate) fn identity_of(rendered: &[Value]) -> Vec<Value> {
    rendered
        .iter()
        .filter(|o| {
            matches!(
                o["kind"].as_str(),
                Some(
                    "ServiceAccount"
                        | "ClusterRole"
                        | "ClusterRoleBinding"
                        | "Role"
                        | "RoleBinding"
                )
            )
        })
        .cloned()
        .collect()
}

/// `kubectl auth can-i` as the kubeconfig's identity.
fn can_i(kubeconfig: &Path, args: &[&str]) -> bool {
    let out = run(
        Command::new(kubectl_bin())
            .env("KUBECONFIG", kubeconfig)
            .args(["auth", "can-i"])
            .args(args),
        None,
    );
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

async fn operator_runs_every_feature_with_rendered_rbac(renderer: Renderer, prefix: &str) {
    let bed = Bed::get();
    let names = TestNames::new(prefix);
    let op_ns = names.ns("op");
    let client = setup(&names).await;
    let rendered = rendered_for_test(&names, renderer, false);
    let identity = identity_of(&rendered);
    apply(&identity.iter().collect::<Vec<_>>());
    let sa = identity
        .iter()
        .find(|o| o["kind"] == "ServiceAccount")
        .unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sa, format!("{}-ecr-operator", names.id));
    let kubeconfig = bed.mint_kubeconfig(&["--service-account", &format!("{op_ns}/{sa}")]);

    // What the identity may and may not do, as the API server sees it.
    assert!(!can_i(
        &kubeconfig,
        &["list", "secrets", "--all-namespaces"]
    ));
    assert!(!can_i(&kubeconfig, &["get", "secrets", "-n", "default"]));
    assert!(can_i(&kubeconfig, &["get", "secrets", "-n", &op_ns]));
    assert!(can_i(&kubeconfig, &["patch", "secrets", "-n", "default"]));
    // ServiceAccount web identity: the RBAC allows any token request; the fence
    // admits only tokens for AWS STS (least_privilege.rs).
    assert!(can_i(
        &kubeconfig,
        &[
            "create",
            "serviceaccounts",
            "--subresource=token",
            "-n",
            "default"
        ]
    ));
    // ... and the admission fence deploy/ installs with that RBAC is enforced on
    // every request the operator makes below.
    let fence = fence_objects(&rendered, None, None);
    install_fence(&fence, &bed.client_for(&kubeconfig).await, &op_ns).await;

    // Credentials from a Secret in the operator's namespace, with a key of their own.
    let secret_key_id = format!("AKIAR{}", &names.access_key_id()[5..]);
    assert_ne!(secret_key_id, names.access_key_id());
    let creds: Secret = serde_json::from_value(json!({
        "metadata": {"name": "aws-keys"},
        "stringData": {
            "AWS_ACCESS_KEY_ID": secret_key_id,
            "AWS_SECRET_ACCESS_KEY": bed.var("AWS_SECRET_ACCESS_KEY"),
        },
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &op_ns)
        .create(&PostParams::default(), &creds)
        .await
        .unwrap();

    let (a, b, c) = (names.ns("a"), names.ns("b"), names.ns("c"));
    create_namespace(&client, &a, &[("ecr-test", &names.id)]).await;
    create_namespace(&client, &b, &[("ecr-test", &names.id)]).await;
    create_namespace(&client, &c, &[("ecr-test", &names.id)]).await;
    // c already holds a secret of that name that someone else manages.
    let foreign: Secret =
        serde_json::from_value(json!({"metadata": {"name": names.id}, "stringData": {"x": "y"}}))
            .unwrap();
    Api::<Secret>::namespaced(client.clone(), &c)
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();

    let operator = Operator::start_with(bed, &names, &kubeconfig, &[]);
    create_registry(
        &client,
        &names,
        json!({
            "region": "us-east-1",
            "namespaces": {"selector": {"matchLabels": {"ecr-test": names.id}}},
            "serviceAccounts": ["default"],
            "auth": {"secretRef": {"name": "aws-keys"}},
        }),
    )
    .await;

    // Selected namespaces get the secret and the ServiceAccount entry.
    for ns in [&a, &b] {
        eventually(30, &format!("secret in {ns}"), || async {
            get_secret(&client, ns, &names.id).await
        })
        .await;
        eventually(30, &format!("default SA entry in {ns}"), || async {
            pull_secrets(&client, ns, "default")
                .await
                .contains(&names.id)
                .then_some(())
        })
        .await;
    }
    // The foreign secret: a conflict, not a permission problem, and left alone.
    let r = wait_ready(&client, &names.id, "False", Some("SecretConflict"), 30).await;
    let failures = r.status.unwrap().failures;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        (failures[0].namespace.as_str(), failures[0].reason.as_str()),
        (c.as_str(), "SecretConflict")
    );
    let kept = get_secret(&client, &c, &names.id).await.unwrap();
    assert!(
        kept.data.unwrap().contains_key("x"),
        "the foreign secret was changed"
    );

    // The token came with the keys of the credentials Secret.
    let faults = Faults::new(bed.var("BED_FAULTS"));
    assert!(faults.calls(&secret_key_id, "GetAuthorizationToken").await >= 1);
    assert_eq!(
        faults
            .calls(&names.access_key_id(), "GetAuthorizationToken")
            .await,
        0
    );

    // Once the conflict is gone, all selected namespaces are synced.
    Api::<Secret>::namespaced(client.clone(), &c)
        .delete(&names.id, &DeleteParams::default())
        .await
        .unwrap();
    wait_ready(&client, &names.id, "True", Some("Synced"), 30).await;

    // A namespace that leaves the selection loses the secret and the entry.
    label_namespace(&client, &a, None).await;
    eventually(30, &format!("secret in {a} to go"), || async {
        get_secret(&client, &a, &names.id)
            .await
            .is_none()
            .then_some(())
    })
    .await;
    eventually(30, &format!("default SA entry in {a} to go"), || async {
        (!pull_secrets(&client, &a, "default")
            .await
            .contains(&names.id))
        .then_some(())
    })
    .await;

    // Events about the registry were recorded.
    eventually(30, "Events about the EcrRegistry", || async {
        let events = Api::<Event>::namespaced(client.clone(), "default")
            .list(&ListParams::default())
            .await
            .unwrap();
        events
            .items
            .into_iter()
            .find(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(&names.id))
    })
    .await;

    // Its own ServiceAccount token (the kubeconfig's) and the static secret key
    // never reached its logs, the status, the Events or the metrics.
    let sa_token = std::fs::read_to_string(&kubeconfig)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("token:")
                .map(|t| t.trim().to_string())
        })
        .expect("a token in the ServiceAccount's kubeconfig");
    let scanned = crate::support::leaks::assert_no_leak(
        &client,
        &operator,
        &names.id,
        &[&sa_token, bed.var("AWS_SECRET_ACCESS_KEY")],
    )
    .await;
    println!("FIGURE leaks scenario=service_account_token values_scanned={scanned} hits=0");

    // Deleting the EcrRegistry cleans up (the operator removes its finalizer only
    // after it has removed the ServiceAccount entries, which GC never touches).
    let registries: Api<EcrRegistry> = Api::all(client.clone());
    registries
        .delete(&names.id, &DeleteParams::default())
        .await
        .unwrap();
    eventually(30, "the EcrRegistry to be gone", || async {
        registries
            .get_opt(&names.id)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    for ns in [&b, &c] {
        assert!(
            !pull_secrets(&client, ns, "default")
                .await
                .contains(&names.id),
            "{ns}"
        );
    }
    eventually(30, &format!("secret in {b} to go"), || async {
        get_secret(&client, &b, &names.id)
            .await
            .is_none()
            .then_some(())
    })
    .await;

    // The operator sees the fence its identity is behind, and without
    // EcrMirror's part of deploy/ its mirror controller is off.
    let (_, metrics) = operator.admin_get("/metrics").await;
    assert!(
        metrics.contains("ecr_operator_admission_fence_enforced 1"),
        "{metrics}"
    );
    let (code, readyz) = operator.admin_get("/readyz").await;
    assert_eq!((code, readyz.as_str()), (200, "ready"));
    let logs = operator.logs();
    assert!(logs.contains("EcrMirror controller off"), "{logs}");

    // Not one request was refused along the way (watches, leases, writes,
    // Events), but the fence's probe.
    assert!(!logs.is_empty(), "operator wrote no logs");
    for line in logs.lines() {
        assert!(
            !line.contains("forbidden") && !line.contains("Forbidden"),
            "the operator was refused something: {line}"
        );
    }
    drop(operator);

    remove_fence(&fence);
    delete_cluster_scoped(&identity);
    for ns in [&a, &b, &c, &op_ns] {
        delete_namespace(&client, ns).await;
    }
}

#[tokio::test]
async fn operator_works_with_exactly_the_kustomize_rbac() {
    operator_runs_every_feature_with_rendered_rbac(Renderer::Kustomize, "rbk").await;
}

#[tokio::test]
async fn operator_works_with_exactly_the_helm_rbac() {
    operator_runs_every_feature_with_rendered_rbac(Renderer::Helm, "rbh").await;
}

// ---------------------------------------------------------------------------
// The image (scripts/image/build)

/// The image directory of scripts/image/build (built once per run, cached by hash).
fn image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let out = run_ok(
            &mut Command::new(repo_root().join("scripts/image/build")),
            None,
        );
        PathBuf::from(out.trim())
    })
}

fn image_ref() -> String {
    std::fs::read_to_string(image().join("ref"))
        .unwrap()
        .trim()
        .to_string()
}

fn skopeo_inspect(args: &[&str], target: &str) -> Value {
    let out = run_ok(
        Command::new("skopeo").arg("inspect").args(args).arg(target),
        None,
    );
    serde_json::from_str(&out).expect("skopeo JSON")
}

#[test]
fn image_is_a_valid_oci_image_with_a_static_binary() {
    let dir = image();
    let reference = image_ref();
    assert!(
        reference.ends_with(&format!("/ecr-operator:{}", cargo_version())),
        "{reference}"
    );
    let layout = format!("oci:{}:{reference}", dir.join("oci").display());

    let config = skopeo_inspect(&["--config"], &layout);
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(c["Entrypoint"], json!(["/ecr-operator"]));
    assert_eq!(c["Cmd"], json!(["run"]));
    assert!(c["ExposedPorts"].get("8080/tcp").is_some(), "{c}");
    assert_eq!(
        c["Labels"]["org.opencontainers.image.version"],
        json!(cargo_version())
    );
    assert_eq!(
        c["Labels"]["org.opencontainers.image.licenses"],
        "Apache-2.0"
    );
    // The archive holds the same image.
    let from_archive = skopeo_inspect(
        &["--config"],
        &format!("oci-archive:{}", dir.join("image.tar").display()),
    );
    assert_eq!(from_archive, config);

    // The layer: exactly the binary, passwd/group, CA bundle (and their directories).
    let manifest = skopeo_inspect(&["--raw"], &layout);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let digest = layers[0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let blob = dir.join("oci/blobs/sha256").join(digest);
    let listing = run_ok(Command::new("tar").arg("-tvzf").arg(&blob), None);
    let files: BTreeSet<&str> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        files,
        BTreeSet::from([
            "ecr-operator",
            "etc/group",
            "etc/passwd",
            "etc/ssl/certs/ca-certificates.crt"
        ]),
        "{listing}"
    );
    assert!(
        listing.lines().all(|l| !l.contains("bin/sh")),
        "a shell in the image"
    );

    // The binary from the layer is static and runs with no library at all.
    let unpacked = tempfile::tempdir().unwrap();
    // A root filesystem: "/" must be searchable by user 65532.
    std::fs::set_permissions(
        unpacked.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(&blob)
            .arg("-C")
            .arg(unpacked.path()),
        None,
    );
    let bin = unpacked.path().join("ecr-operator");
    let file = run_ok(Command::new("file").arg("-b").arg(&bin), None);
    // glibc with crt-static makes a static PIE.
    assert!(
        file.contains("statically linked") || file.contains("static-pie linked"),
        "{file}"
    );
    let ldd = run(Command::new("ldd").arg(&bin), None);
    let ldd = String::from_utf8_lossy(&ldd.stdout);
    assert!(!ldd.contains("=>"), "shared libraries: {ldd}");
    let passwd = std::fs::read_to_string(unpacked.path().join("etc/passwd")).unwrap();
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
    let certs =
        std::fs::read_to_string(unpacked.path().join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert!(certs.matches("BEGIN CERTIFICATE").count() > 50);

    // In an empty environment (no PATH, no libraries), and, as root can, inside
    // the image's own root filesystem as user 65532.
    let version = run_ok(Command::new(&bin).env_clear().arg("--version"), None);
    assert!(version.contains(&cargo_version()), "{version}");
    let crd = run_ok(Command::new(&bin).env_clear().arg("crd"), None);
    assert!(crd.contains("ecrregistries.ecr-operator.io"), "{crd}");
    let root = run(Command::new("id").arg("-u"), None);
    if String::from_utf8_lossy(&root.stdout).trim() == "0" {
        let out = run_ok(
            Command::new("/usr/sbin/chroot")
                .arg("--userspec=65532:65532")
                .arg(unpacked.path())
                .args(["/ecr-operator", "crd"])
                .env_clear(),
            None,
        );
        assert!(out.contains("ecrregistries.ecr-operator.io"));
    }

    // Small: under 25 MB as pulled (gzip layer + config) and as unpacked.
    let sizes: BTreeMap<String, u64> = std::fs::read_to_string(dir.join("sizes"))
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    assert!(sizes["compressed_bytes"] < 25_000_000, "{sizes:?}");
    assert!(sizes["uncompressed_bytes"] < 25_000_000, "{sizes:?}");
}

#[test]
fn image_pushes_to_the_bed_registry() {
    let bed = Bed::get();
    let dir = image();
    let reference = image_ref();
    let tag = reference.rsplit(':').next().unwrap();
    let names = TestNames::new("img");
    let remote = format!(
        "{}/ecr-operator/{}:{tag}",
        bed.var("BED_REGISTRY"),
        names.id
    );
    let creds = format!("AWS:{}", bed.var("BED_ECR_PASSWORD"));
    run_ok(
        Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &format!("oci-archive:{}", dir.join("image.tar").display()),
            &format!("docker://{remote}"),
        ]),
        None,
    );
    let args = ["--tls-verify=false", "--creds", &creds];
    let pushed = skopeo_inspect(&args, &format!("docker://{remote}"));
    assert_eq!(pushed["Os"], "linux");
    assert_eq!(pushed["Architecture"], "amd64");
    let config = skopeo_inspect(
        &[&args[..], &["--config"]].concat(),
        &format!("docker://{remote}"),
    );
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["Entrypoint"], json!(["/ecr-operator"]));
    // Same image: the registry serves the digest of the local layout.
    let local = skopeo_inspect(
        &[],
        &format!("oci:{}:{reference}", dir.join("oci").display()),
    );
    assert_eq!(pushed["Digest"], local["Digest"]);
}

#[test]
fn dockerfile_passes_hadolint_and_context_checks() {
    let out = run(
        &mut Command::new(repo_root().join("scripts/image/lint-dockerfile")),
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/image/lint-dockerfile:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
