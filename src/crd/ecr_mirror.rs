//! The `EcrMirror` custom resource: copy one image into Amazon ECR (push) or out of
//! it (pull) with a Job (or a CronJob on a schedule) that uses the pull secret an
//! EcrRegistry keeps fresh in the EcrMirror's namespace.
//!
//! As for EcrRegistry, every field carries a doc comment (the `kubectl explain`
//! text) and every constraint a schema can express is in the schema. What CEL
//! cannot check (the repository policy is JSON) the operator checks, and reports
//! in the status.

use super::DNS_SUBDOMAIN_PATTERN;
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An ECR repository name, as CreateRepository accepts it (namespaces with `/`).
pub const REPOSITORY_PATTERN: &str =
    r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$";
/// An image tag (OCI distribution spec).
pub const TAG_PATTERN: &str = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$";
/// An ECR repository with a tag or a sha256 digest: `team/app:v1`, `app@sha256:<64 hex>`.
pub const ECR_SOURCE_PATTERN: &str = r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$";
/// An image reference: starts with a letter or digit (so it can never pass for a
/// flag of the `mirror` command) and holds no white space.
pub const IMAGE_REF_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$";
/// A cron schedule of five fields, or a macro such as @hourly or @every 2h.
const SCHEDULE_PATTERN: &str = r"^(@[a-z]+( [0-9a-z]+)?|[^ ]+( +[^ ]+){4})$";

/// Copies one image into or out of Amazon ECR with a Job.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ecr-operator.io",
    version = "v1alpha1",
    kind = "EcrMirror",
    plural = "ecrmirrors",
    shortname = "ecrmir",
    namespaced,
    status = "EcrMirrorStatus",
    doc = "EcrMirror copies an image into Amazon ECR (push) or out of it (pull) with a Job, once or on a schedule, using the pull secret that an EcrRegistry keeps fresh in this namespace.",
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name: must be at most 63 characters, because it is used as a label value on the Jobs"),
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Job","type":"string","jsonPath":".status.jobName"}"#,
    printcolumn = r#"{"name":"Digest","type":"string","jsonPath":".status.digest"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.push) != has(self.pull)").message("spec: set exactly one of push and pull"))]
pub struct EcrMirrorSpec {
    /// The EcrRegistry whose managed secret authenticates to ECR. It must select this
    /// namespace (the mirror waits until its secret is written there); the secret is
    /// mounted into the Job read-only. Its identity also
    /// creates the ECR repository of a push.
    pub registry_ref: RegistryRef,

    /// 12-digit AWS account ID of the ECR registry to use, one of the EcrRegistry's
    /// registries. Default: the first registry in the EcrRegistry's status.registries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9]{12}$"))]
    pub registry_id: Option<String>,

    /// AWS region of the ECR registry to use, one of the EcrRegistry's regions
    /// (spec.region or spec.regions). Default: its first region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::ecr_registry::REGION_PATTERN))]
    pub region: Option<String>,

    /// Copy an image from another registry into ECR. Exactly one of push and pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<Push>,

    /// Copy an image from ECR into another registry. Exactly one of push and pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<Pull>,

    /// A cron schedule (five fields, e.g. "0 3 * * *", or @hourly, @daily, ...):
    /// the copy runs as a CronJob on this schedule. Absent: it runs once, as a Job;
    /// any change of the spec, or a new value of the annotation
    /// ecr-operator.io/run-at, runs it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), pattern(SCHEDULE_PATTERN))]
    pub schedule: Option<String>,

    /// Stop copying. With a schedule: no new runs (a running copy finishes).
    /// Without: no Job starts, and a running one is cancelled (deleted); back to
    /// false, the copy runs again as a new Job.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,

    /// Settings of the Job that copies the image.
    #[serde(default, skip_serializing_if = "JobTemplate::is_empty")]
    pub job_template: JobTemplate,
}

/// A reference to an EcrRegistry (cluster-scoped).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub struct RegistryRef {
    /// Name of the EcrRegistry.
    #[schemars(length(min = 1, max = 63), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// Copy an image into an ECR repository.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Push {
    /// The image to copy, with a tag or digest, e.g. docker.io/library/nginx:1.27 or
    /// ghcr.io/org/app@sha256:<digest>.
    #[schemars(length(min = 1, max = 1024), pattern(IMAGE_REF_PATTERN))]
    pub source: String,

    /// A kubernetes.io/dockerconfigjson Secret in this namespace with credentials for
    /// the source registry. Absent: the source is read anonymously.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub source_pull_secret: Option<String>,

    /// The ECR repository to copy into, e.g. mirror/nginx. The operator creates it
    /// when it does not exist.
    #[schemars(length(min = 2, max = 256), pattern(REPOSITORY_PATTERN))]
    pub repository: String,

    /// Tags to give the image in the repository; the first one is the main
    /// destination, the others are added to the same manifest.
    #[schemars(length(min = 1, max = 20), inner(pattern(TAG_PATTERN)), extend("x-kubernetes-list-type" = "set"))]
    pub tags: Vec<String>,

    /// Settings of the repository when the operator creates it. An existing
    /// repository keeps its tag mutability and scan settings; repositoryPolicy, when
    /// given, replaces the repository's policy.
    #[serde(default)]
    pub create_repository: CreateRepository,
}

/// Settings of a repository the operator creates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateRepository {
    /// MUTABLE (tags can be overwritten) or IMMUTABLE. Default: MUTABLE.
    #[serde(default)]
    pub image_tag_mutability: TagMutability,

    /// Scan images for vulnerabilities when they are pushed. Default: false.
    #[serde(default)]
    pub scan_on_push: bool,

    /// A repository policy as a JSON document (IAM policy grammar), set with
    /// SetRepositoryPolicy. The operator checks that it is JSON; AWS checks the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 10240))]
    pub repository_policy: Option<String>,
}

/// Whether tags of a repository can be overwritten.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum TagMutability {
    /// Tags can be moved to another image.
    #[default]
    #[serde(rename = "MUTABLE")]
    Mutable,
    /// A tag, once pushed, always names the same image.
    #[serde(rename = "IMMUTABLE")]
    Immutable,
}

/// Copy an image out of ECR into another registry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pull {
    /// The ECR repository and tag or digest to copy, e.g. team/app:v1 or
    /// team/app@sha256:<digest>; the registry host comes from the EcrRegistry.
    #[schemars(length(min = 4, max = 400), pattern(ECR_SOURCE_PATTERN))]
    pub source: String,

    /// Where to copy the image, with a tag, e.g. registry.example.com/mirror/app:v1.
    #[schemars(length(min = 1, max = 1024), pattern(IMAGE_REF_PATTERN))]
    pub destination: String,

    /// A kubernetes.io/dockerconfigjson Secret in this namespace with credentials
    /// that may push to the destination. Absent: the destination is written
    /// anonymously.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub destination_push_secret: Option<String>,
}

/// Label and annotation keys the pod cannot take from jobTemplate: the Kubernetes
/// domains (where pod-security annotations such as AppArmor's live) and the
/// operator's own.
const RESERVED_KEY_RULE: &str =
    r"self.all(k, !k.matches('^([^/]*[.])?(kubernetes[.]io|k8s[.]io|ecr-operator[.]io)/'))";

/// Settings of the Job (and of the CronJob's Jobs) that copies the image.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobTemplate {
    /// Image of the copying container; it must have `ecr-operator` as entrypoint.
    /// Default: the operator's own image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), pattern(IMAGE_REF_PATTERN))]
    pub image: Option<String>,

    /// Always, IfNotPresent or Never. Default: the Kubernetes default for the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// CPU and memory of the copying container. Default: none set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Node labels the pod must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Taints the pod tolerates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Node and pod affinity of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// ServiceAccount of the pod. The copy needs no Kubernetes API access: the
    /// account's token is not mounted. Default: the namespace's default account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub service_account_name: Option<String>,

    /// Retries before the Job is marked failed, 0 to 20. Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 20))]
    pub backoff_limit: Option<i32>,

    /// How long one run may take, from the Job's start, before Kubernetes stops
    /// it and marks it failed (DeadlineExceeded), in seconds: 60 to 604800 (7 days).
    /// Default: 3600. A stalled copy therefore never blocks a scheduled mirror
    /// (which runs one copy at a time) for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 604800))]
    pub active_deadline_seconds: Option<i64>,

    /// Delete a finished Job after this many seconds (at least 60, so the operator
    /// sees how it ended). Default: keep it. The EcrMirror's status keeps the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 31536000))]
    pub ttl_seconds_after_finished: Option<i32>,

    /// Labels added to the pod, e.g. for a NetworkPolicy to select it. Keys of the
    /// kubernetes.io, k8s.io and ecr-operator.io domains are refused; the
    /// operator's own labels are always set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    #[x_kube(validation = Rule::new(RESERVED_KEY_RULE).message("spec.jobTemplate.podLabels: keys of the kubernetes.io, k8s.io and ecr-operator.io domains are reserved"))]
    pub pod_labels: BTreeMap<String, String>,

    /// Annotations added to the pod, e.g. sidecar.istio.io/inject: "false" so that an
    /// injected sidecar does not keep a finished copy's pod running. Keys of the
    /// kubernetes.io, k8s.io and ecr-operator.io domains are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    #[x_kube(validation = Rule::new(RESERVED_KEY_RULE).message("spec.jobTemplate.podAnnotations: keys of the kubernetes.io, k8s.io and ecr-operator.io domains are reserved"))]
    pub pod_annotations: BTreeMap<String, String>,

    /// Environment variables of the copying container, with literal values, e.g.
    /// HTTPS_PROXY, NO_PROXY (the copy honours them) or SSL_CERT_FILE (a CA bundle
    /// mounted with volumes). A proxy and a CA together can read the copy's
    /// traffic, so the EcrRegistry must allow job overrides (its
    /// spec.mirrors.allowJobOverrides).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Vec<JobEnvVar>,

    /// ConfigMaps mounted read-only into the copying container, e.g. a CA bundle for
    /// a registry or proxy with a private CA (point SSL_CERT_FILE at it with env).
    /// Needs the EcrRegistry's spec.mirrors.allowJobOverrides, as env does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub volumes: Vec<JobVolume>,
}

/// An environment variable with a literal value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
pub struct JobEnvVar {
    /// The variable's name, e.g. HTTPS_PROXY.
    #[schemars(length(min = 1, max = 128), pattern(r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub name: String,

    /// Its value.
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// A ConfigMap mounted read-only into the copying container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(self.name in ['ecr', 'other', 'tmp'])").message("spec.jobTemplate.volumes[].name: ecr, other and tmp are the operator's own volumes; pick another name"))]
#[x_kube(validation = Rule::new("!self.mountPath.startsWith('/var/run/ecr-operator') && self.mountPath != '/tmp' && !self.mountPath.startsWith('/tmp/') && self.mountPath != '/dev/termination-log'").message("spec.jobTemplate.volumes[].mountPath: /var/run/ecr-operator, /tmp and /dev/termination-log are the operator's; mount somewhere else, e.g. /etc/ssl/extra"))]
pub struct JobVolume {
    /// The volume's name (a DNS label).
    #[schemars(length(min = 1, max = 63), pattern(super::DNS_LABEL_PATTERN))]
    pub name: String,

    /// Where the ConfigMap's files appear in the container: an absolute path.
    #[schemars(length(min = 2, max = 1024), pattern(r"^/[^:]*[^/:]$"))]
    pub mount_path: String,

    /// The ConfigMap of this namespace to mount (its keys become files; items picks
    /// some of them).
    pub config_map: ConfigMapVolumeSource,
}

impl JobTemplate {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// When the kubelet pulls the container image.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the node lacks the image.
    IfNotPresent,
    /// Never pull; the node must have the image.
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Observed state, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EcrMirrorStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Pending (waiting for the Job, its pod or the registry secret; the message
    /// names what keeps a pod from starting, e.g. an image pull error or an
    /// unschedulable pod), Running, Succeeded or Failed (the message ends with
    /// the copy's last error): the state of the latest copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// The Job of the latest copy (for a schedule: the CronJob's latest Job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,

    /// The CronJob that runs a scheduled copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_job_name: Option<String>,

    /// When a copy last succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<Time>,

    /// Digest (sha256:...) of the image the last successful copy of this spec wrote,
    /// as its pod reported it (the termination message of the copying container),
    /// never a later lookup of a tag that may have moved. Absent when the spec
    /// changed since, or when the pod was gone before the operator saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,

    /// What is happening, and on failure the cause and what to fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Ready: the Job or CronJob is in place (its reason names what blocks it
    /// otherwise). Succeeded: how the latest copy ended (Unknown while it runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The state of the latest copy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Waiting: for the registry secret, for the schedule, or for the Job's pod to start.
    Pending,
    /// The copying container runs.
    Running,
    /// The copy finished.
    Succeeded,
    /// The copy failed, or cannot start until the spec is fixed; see message.
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd_yaml() -> String {
        crate::crd::crd_yaml::<EcrMirror>()
    }

    #[test]
    fn committed_crd_matches_the_code() {
        let committed = include_str!("../../crds/ecrmirror.yaml");
        assert!(
            committed == crd_yaml(),
            "crds/ecrmirror.yaml is stale: run `make crds` and commit the result"
        );
    }

    #[test]
    fn the_crd_carries_the_cel_rules_and_columns() {
        let yaml = crd_yaml();
        for needle in [
            "has(self.push) != has(self.pull)",
            "size(self.metadata.name) <= 63",
            "jsonPath: .status.phase",
            "jsonPath: .status.jobName",
            "jsonPath: .status.digest",
            "scope: Namespaced",
        ] {
            assert!(yaml.contains(needle), "CRD lacks {needle}");
        }
    }
}
