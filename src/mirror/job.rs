//! The Job (or CronJob) that carries out an EcrMirror, as a pure function of the
//! EcrMirror, its EcrRegistry and the operator's image: no client, so every
//! property of the pod (arguments, mounts, security context, owner) is unit-tested.
//!
//! The container runs `ecr-operator mirror` (the image's entrypoint) with:
//!
//! ```text
//! push: mirror SRC <host>/<repository>:<tag1> [--tag <tagN>]... --authfile ECR [--authfile OTHER] --digest-file /dev/termination-log --timeout <9/10 of the deadline>
//! pull: mirror <host>/<repository>(:<tag>|@<digest>) DST --authfile ECR [--authfile OTHER] --digest-file /dev/termination-log --timeout <9/10 of the deadline>
//! ```
//!
//! where ECR is the EcrRegistry's managed secret and OTHER the user's secret for the
//! registry on the other side, both mounted read-only.

use crate::aws::registry_hosts::parse_registry_host;
use crate::crd::ecr_mirror::EcrMirror;
use crate::crd::ecr_registry::EcrRegistry;
use crate::crd::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::mirror::allowance;
use crate::registry::desired_secret::DATA_KEY;
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, KeyToPath, LocalObjectReference,
    PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// On Jobs, CronJobs and pods: the name of the EcrMirror they belong to.
pub const MIRROR_LABEL: &str = "ecr-operator.io/mirror";
/// On Jobs and CronJobs: the EcrMirror generation they were rendered from.
pub const GENERATION_ANNOTATION: &str = "ecr-operator.io/mirror-generation";
/// On an EcrMirror without a schedule: a new value runs the copy again, as a new
/// Job (`kubectl annotate ecrmirror NAME ecr-operator.io/run-at="$(date -u +%FT%TZ)" --overwrite`).
pub const RUN_AT_ANNOTATION: &str = "ecr-operator.io/run-at";
/// On CronJobs: a hash of the rendered spec, so an unchanged CronJob is not rewritten.
pub const SPEC_HASH_ANNOTATION: &str = "ecr-operator.io/spec-hash";
/// Where the EcrRegistry's managed secret is mounted.
pub const ECR_AUTH_DIR: &str = "/var/run/ecr-operator/ecr";
/// Where the user's secret for the other registry is mounted.
pub const OTHER_AUTH_DIR: &str = "/var/run/ecr-operator/other";
/// The file the `mirror` command writes the copied manifest's digest to.
pub const DIGEST_FILE: &str = "/dev/termination-log";
/// UID and GID of the copying container (distroless "nonroot").
pub const RUN_AS: i64 = 65532;
pub const CONTAINER_NAME: &str = "mirror";
pub const DEFAULT_BACKOFF_LIMIT: i32 = 2;
/// How long one run may take unless jobTemplate.activeDeadlineSeconds says otherwise.
pub const DEFAULT_ACTIVE_DEADLINE_SECONDS: i64 = 3600;
/// Job names are label values (`job-name` on the pods): at most 63 characters.
const MAX_JOB_NAME: usize = 63;
/// The CronJob controller appends `-<11 digits>` to name its Jobs.
const MAX_CRON_JOB_NAME: usize = 52;

/// Why the Job cannot be rendered; `reason` goes into the Ready condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub reason: &'static str,
    pub message: String,
    /// True when only a change of the EcrMirror's spec fixes it.
    pub spec_error: bool,
}

impl Blocked {
    fn spec(message: String) -> Self {
        Self {
            reason: "InvalidSpec",
            message,
            spec_error: true,
        }
    }
}

/// Where the copy goes, resolved against the EcrRegistry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The ECR registry host, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com.
    pub host: String,
    /// The 12-digit account of that host (CreateRepository's registryId).
    pub account: String,
    /// The region of that host (where CreateRepository is called).
    pub region: String,
    /// The managed secret in the EcrMirror's namespace.
    pub secret_name: String,
}

/// Checks what the schema cannot (the policy is JSON), that the EcrRegistry
/// allows this EcrMirror ([`allowance`]) and that its secret is in the EcrMirror's
/// namespace (by the registry's status.managedNamespaces: the operator reads no
/// Secrets there), and picks the ECR host.
pub fn resolve(mirror: &EcrMirror, registry: &EcrRegistry) -> Result<Resolved, Blocked> {
    let ns = mirror.namespace().unwrap_or_default();
    let registry_name = registry.name_any();
    if let Some(policy) = mirror
        .spec
        .push
        .as_ref()
        .and_then(|p| p.create_repository.repository_policy.as_deref())
    {
        match serde_json::from_str::<serde_json::Value>(policy) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => {
                return Err(Blocked::spec(
                    "spec.push.createRepository.repositoryPolicy: must be a JSON object (a policy document with Version and Statement)".into(),
                ));
            }
            Err(e) => {
                return Err(Blocked::spec(format!(
                    "spec.push.createRepository.repositoryPolicy: not valid JSON: {e}"
                )));
            }
        }
    }
    check_quantities(mirror)?;
    allowance::check(mirror, registry)?;
    let status = registry.status.clone().unwrap_or_default();
    let secret_name = status
        .secret_name
        .clone()
        .unwrap_or_else(|| registry.secret_name());
    if !status.managed_namespaces.contains(&ns) {
        return Err(Blocked {
            reason: "RegistrySecretMissing",
            message: format!(
                "EcrRegistry {registry_name} has not written its secret {secret_name} into namespace {ns}: select the namespace in the EcrRegistry's spec.namespaces (names or selector), and check its status"
            ),
            spec_error: false,
        });
    }
    let region = match &mirror.spec.region {
        Some(r) if registry.spec.regions().contains(&r.as_str()) => r.clone(),
        Some(r) => {
            return Err(Blocked::spec(format!(
                "spec.region: {r} is not among the regions of EcrRegistry {registry_name} ({}): add it to the EcrRegistry's spec.regions or fix spec.region",
                registry.spec.regions().join(", ")
            )));
        }
        None => match registry.spec.regions().first() {
            Some(r) => r.to_string(),
            None => {
                return Err(Blocked::spec(format!(
                    "spec.registryRef: EcrRegistry {registry_name} has no region, only ECR Public (spec.public), which EcrMirror cannot copy to or from: name an EcrRegistry with a region"
                )));
            }
        },
    };
    // The registries of that region (and account), in the status's sorted order.
    let mut candidates = status.registries.iter().filter(|h| {
        parse_registry_host(h).is_some_and(|e| {
            e.region == region
                && mirror
                    .spec
                    .registry_id
                    .as_ref()
                    .is_none_or(|id| &e.account == id)
        })
    });
    let host = match (candidates.next(), &mirror.spec.registry_id) {
        (Some(h), _) => h,
        (None, Some(id))
            if status
                .registries
                .iter()
                .any(|h| h.starts_with(&format!("{id}."))) =>
        {
            return Err(Blocked::spec(format!(
                "spec.region: EcrRegistry {registry_name} has no registry of account {id} in {region} ({}): fix spec.region",
                status.registries.join(", ")
            )));
        }
        (None, Some(id)) => {
            return Err(Blocked::spec(format!(
                "spec.registryId: {id} is not among the registries of EcrRegistry {registry_name} ({}): add it to the EcrRegistry's spec.registryIds or fix spec.registryId",
                status.registries.join(", ")
            )));
        }
        (None, None) => {
            return Err(Blocked {
                reason: "RegistryNotReady",
                message: format!(
                    "EcrRegistry {registry_name} lists no registries of {region} in its status yet: wait for it to sync, or check its Ready condition"
                ),
                spec_error: false,
            });
        }
    };
    let account = host.split('.').next().unwrap_or_default().to_string();
    Ok(Resolved {
        host: host.clone(),
        account,
        region,
        secret_name,
    })
}

/// The arguments of the copying container (the image's entrypoint is ecr-operator).
pub fn mirror_args(mirror: &EcrMirror, resolved: &Resolved) -> Vec<String> {
    let mut args = vec!["mirror".to_string()];
    let other_secret = match (&mirror.spec.push, &mirror.spec.pull) {
        (Some(push), _) => {
            let mut tags = push.tags.iter();
            let first = tags.next().map(String::as_str).unwrap_or("latest");
            args.push(push.source.clone());
            args.push(format!("{}/{}:{first}", resolved.host, push.repository));
            for tag in tags {
                args.extend(["--tag".to_string(), tag.clone()]);
            }
            push.source_pull_secret.as_ref()
        }
        (None, Some(pull)) => {
            args.push(format!("{}/{}", resolved.host, pull.source));
            args.push(pull.destination.clone());
            pull.destination_push_secret.as_ref()
        }
        (None, None) => None,
    };
    args.extend([
        "--authfile".to_string(),
        format!("{ECR_AUTH_DIR}/{DATA_KEY}"),
    ]);
    if other_secret.is_some() {
        args.extend([
            "--authfile".to_string(),
            format!("{OTHER_AUTH_DIR}/{DATA_KEY}"),
        ]);
    }
    args.extend(["--digest-file".to_string(), DIGEST_FILE.to_string()]);
    // Only the secrets mounted above: never a token from whatever AWS identity the
    // pod could reach (the node's instance profile).
    args.push("--no-ecr-login".to_string());
    // Ends the copy with its own error a little before Kubernetes' deadline kills
    // the pod, so the cause reaches the termination message.
    let deadline = active_deadline_seconds(mirror);
    args.extend([
        "--timeout".to_string(),
        format!("{}s", deadline - deadline / 10),
    ]);
    args
}

/// The schema takes any string for a quantity; the API server would refuse the
/// Job without naming the EcrMirror's field.
fn check_quantities(mirror: &EcrMirror) -> Result<(), Blocked> {
    let Some(r) = &mirror.spec.job_template.resources else {
        return Ok(());
    };
    for (kind, map) in [("limits", &r.limits), ("requests", &r.requests)] {
        for (name, q) in map.iter().flatten() {
            if !is_quantity(&q.0) {
                return Err(Blocked::spec(format!(
                    "spec.jobTemplate.resources.{kind}.{name}: {:?} is not a quantity; write e.g. 500m, 1 or 256Mi",
                    q.0
                )));
            }
        }
    }
    Ok(())
}

/// Kubernetes' quantity syntax: `^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$`.
fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let number = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    if number == 0 {
        return false;
    }
    let rest = &s[number..];
    let suffix = rest
        .find(|c: char| !"eEinumkKMGTP".contains(c))
        .unwrap_or(rest.len());
    let exponent = &rest[suffix..];
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    digits.chars().all(|c| c.is_ascii_digit())
}

/// The jobTemplate field behind what the API server refused of a rendered Job or
/// CronJob: its message names the Job's field (or, for a bad quantity, none).
pub fn refused_field(message: &str) -> Option<&'static str> {
    const FIELDS: &[(&str, &str)] = &[
        ("template.metadata.labels", "spec.jobTemplate.podLabels"),
        ("template.labels", "spec.jobTemplate.podLabels"),
        (
            "template.metadata.annotations",
            "spec.jobTemplate.podAnnotations",
        ),
        ("template.annotations", "spec.jobTemplate.podAnnotations"),
        ("spec.nodeSelector", "spec.jobTemplate.nodeSelector"),
        ("spec.tolerations", "spec.jobTemplate.tolerations"),
        ("spec.affinity", "spec.jobTemplate.affinity"),
        ("resources", "spec.jobTemplate.resources"),
        ("quantities", "spec.jobTemplate.resources"),
        ("spec.volumes", "spec.jobTemplate.volumes"),
        ("env", "spec.jobTemplate.env"),
    ];
    FIELDS
        .iter()
        .find(|(job, _)| message.contains(job))
        .map(|(_, field)| *field)
}

fn active_deadline_seconds(mirror: &EcrMirror) -> i64 {
    mirror
        .spec
        .job_template
        .active_deadline_seconds
        .unwrap_or(DEFAULT_ACTIVE_DEADLINE_SECONDS)
}

/// The one-off Job's name: the EcrMirror's name and generation, and a hash of its
/// run-at annotation when set, so a change of either makes a new Job. Shortened
/// with a hash when it would exceed 63 characters.
pub fn job_name(mirror: &EcrMirror) -> String {
    let generation = mirror.metadata.generation.unwrap_or(0);
    let suffix = match mirror.annotations().get(RUN_AT_ANNOTATION) {
        Some(run_at) if !run_at.is_empty() => {
            format!("-{generation}-{}", sha256_hex(run_at.as_bytes(), 6))
        }
        _ => format!("-{generation}"),
    };
    fit(&mirror.name_any(), &suffix, MAX_JOB_NAME)
}

/// The CronJob's name: the EcrMirror's, shortened to 52 characters when needed.
pub fn cron_job_name(mirror: &EcrMirror) -> String {
    fit(&mirror.name_any(), "", MAX_CRON_JOB_NAME)
}

fn fit(name: &str, suffix: &str, max: usize) -> String {
    if name.len() + suffix.len() <= max {
        return format!("{name}{suffix}");
    }
    let hash = sha256_hex(name.as_bytes(), 8);
    let keep = max - suffix.len() - hash.len() - 1;
    let prefix = name[..keep].trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}{suffix}")
}

/// The first `chars` hex digits of the SHA-256 of `data`. Names and annotations
/// made from it are stored in the cluster, so it must not change between builds
/// (unlike `std`'s `DefaultHasher`).
fn sha256_hex(data: &[u8], chars: usize) -> String {
    let mut hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex.truncate(chars);
    hex
}

fn labels(mirror: &EcrMirror) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        (MIRROR_LABEL.to_string(), mirror.name_any()),
    ])
}

fn metadata(mirror: &EcrMirror, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: mirror.namespace(),
        labels: Some(labels(mirror)),
        annotations: Some(BTreeMap::from([(
            GENERATION_ANNOTATION.to_string(),
            mirror.metadata.generation.unwrap_or(0).to_string(),
        )])),
        owner_references: mirror.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

/// The one-off Job of an EcrMirror without a schedule.
pub fn render(mirror: &EcrMirror, registry: &EcrRegistry, image: &str) -> Result<Job, Blocked> {
    Ok(Job {
        metadata: metadata(mirror, job_name(mirror)),
        spec: Some(job_spec(mirror, &resolve(mirror, registry)?, image)),
        status: None,
    })
}

/// The CronJob of a scheduled EcrMirror. Never two copies at once (Forbid).
pub fn render_cron_job(
    mirror: &EcrMirror,
    registry: &EcrRegistry,
    image: &str,
) -> Result<CronJob, Blocked> {
    let resolved = resolve(mirror, registry)?;
    let spec = CronJobSpec {
        schedule: mirror.spec.schedule.clone().unwrap_or_default(),
        suspend: Some(mirror.spec.suspend),
        concurrency_policy: Some("Forbid".into()),
        job_template: JobTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels(mirror)),
                ..Default::default()
            }),
            spec: Some(job_spec(mirror, &resolved, image)),
        },
        ..Default::default()
    };
    let mut metadata = metadata(mirror, cron_job_name(mirror));
    let rendered = serde_json::to_string(&spec).expect("a CronJobSpec serializes");
    metadata.annotations.get_or_insert_default().insert(
        SPEC_HASH_ANNOTATION.to_string(),
        sha256_hex(rendered.as_bytes(), 16),
    );
    Ok(CronJob {
        metadata,
        spec: Some(spec),
        status: None,
    })
}

fn job_spec(mirror: &EcrMirror, resolved: &Resolved, image: &str) -> JobSpec {
    let t = &mirror.spec.job_template;
    let other_secret = mirror
        .spec
        .push
        .as_ref()
        .and_then(|p| p.source_pull_secret.clone())
        .or_else(|| {
            mirror
                .spec
                .pull
                .as_ref()
                .and_then(|p| p.destination_push_secret.clone())
        });
    let secret_volume = |name: &str, secret: &str| Volume {
        name: name.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            items: Some(vec![KeyToPath {
                key: DATA_KEY.to_string(),
                path: DATA_KEY.to_string(),
                mode: None,
            }]),
            default_mode: Some(0o444),
            optional: Some(false),
        }),
        ..Default::default()
    };
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: Some(read_only),
        ..Default::default()
    };
    let mut volumes = vec![
        secret_volume("ecr", &resolved.secret_name),
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    let mut mounts = vec![
        mount("ecr", ECR_AUTH_DIR, true),
        mount("tmp", "/tmp", false),
    ];
    if let Some(secret) = &other_secret {
        volumes.push(secret_volume("other", secret));
        mounts.push(mount("other", OTHER_AUTH_DIR, true));
    }
    for v in &t.volumes {
        volumes.push(Volume {
            name: v.name.clone(),
            config_map: Some(v.config_map.clone()),
            ..Default::default()
        });
        mounts.push(mount(&v.name, &v.mount_path, true));
    }
    let env = t
        .env
        .iter()
        .map(|e| EnvVar {
            name: e.name.clone(),
            value: Some(e.value.clone()),
            value_from: None,
        })
        .collect::<Vec<_>>();
    let container = Container {
        name: CONTAINER_NAME.into(),
        image: Some(t.image.clone().unwrap_or_else(|| image.to_string())),
        image_pull_policy: t.image_pull_policy.map(|p| p.as_str().to_string()),
        args: Some(mirror_args(mirror, resolved)),
        env: (!env.is_empty()).then_some(env),
        resources: t.resources.clone(),
        volume_mounts: Some(mounts),
        // The digest on success; on failure, when the file is empty, the end of
        // the log (the error) reaches the pod's status.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        termination_message_path: Some(DIGEST_FILE.into()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    JobSpec {
        backoff_limit: Some(t.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT)),
        active_deadline_seconds: Some(active_deadline_seconds(mirror)),
        ttl_seconds_after_finished: t.ttl_seconds_after_finished,
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                // The operator's labels last: they select the pods and cannot be overridden.
                labels: Some(
                    t.pod_labels
                        .clone()
                        .into_iter()
                        .chain(labels(mirror))
                        .collect(),
                ),
                annotations: (!t.pod_annotations.is_empty()).then(|| t.pod_annotations.clone()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                service_account_name: t.service_account_name.clone(),
                automount_service_account_token: Some(false),
                enable_service_links: Some(false),
                // The operator's image may live in the same ECR.
                image_pull_secrets: Some(vec![LocalObjectReference {
                    name: resolved.secret_name.clone(),
                }]),
                node_selector: (!t.node_selector.is_empty()).then(|| t.node_selector.clone()),
                tolerations: (!t.tolerations.is_empty()).then(|| t.tolerations.clone()),
                affinity: t.affinity.clone(),
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(RUN_AS),
                    run_as_group: Some(RUN_AS),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".into(),
                        localhost_profile: None,
                    }),
                    ..Default::default()
                }),
                containers: vec![container],
                volumes: Some(volumes),
                ..Default::default()
            }),
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ecr_registry::EcrRegistryStatus;
    use serde_json::json;

    const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

    fn mirror(spec: serde_json::Value) -> EcrMirror {
        serde_json::from_value(json!({
            "apiVersion": "ecr-operator.io/v1alpha1",
            "kind": "EcrMirror",
            "metadata": {"name": "nginx", "namespace": "apps", "uid": "u-1", "generation": 3},
            "spec": spec,
        }))
        .unwrap()
    }

    fn push() -> EcrMirror {
        mirror(json!({
            "registryRef": {"name": "prod"},
            "push": {"source": "docker.io/library/nginx:1.27", "repository": "mirror/nginx", "tags": ["1.27", "stable"]},
        }))
    }

    fn pull() -> EcrMirror {
        mirror(json!({
            "registryRef": {"name": "prod"},
            "pull": {"source": "team/app:v1", "destination": "registry.example.com/app:v1", "destinationPushSecret": "dest-creds"},
        }))
    }

    fn registry(managed: &[&str], registries: &[&str]) -> EcrRegistry {
        let mut r: EcrRegistry = serde_json::from_value(json!({
            "apiVersion": "ecr-operator.io/v1alpha1",
            "kind": "EcrRegistry",
            "metadata": {"name": "prod", "uid": "r-1"},
            "spec": {"region": "eu-west-1", "mirrors": {"namespaces": ["*"], "repositories": ["*"], "allowJobOverrides": true, "allowRepositoryPolicy": true}},
        }))
        .unwrap();
        r.status = Some(EcrRegistryStatus {
            managed_namespaces: managed.iter().map(|s| s.to_string()).collect(),
            registries: registries.iter().map(|s| s.to_string()).collect(),
            secret_name: Some("ecr-prod".into()),
            ..Default::default()
        });
        r
    }

    fn ready_registry() -> EcrRegistry {
        registry(
            &["apps"],
            &[HOST, "210987654321.dkr.ecr.eu-west-1.amazonaws.com"],
        )
    }

    fn pod(job: &Job) -> PodSpec {
        job.spec.clone().unwrap().template.spec.unwrap()
    }

    #[test]
    fn push_args_name_the_ecr_destination_and_every_tag() {
        let job = render(&push(), &ready_registry(), "ecr-operator:1").unwrap();
        let args = pod(&job).containers[0].args.clone().unwrap();
        assert_eq!(
            args,
            [
                "mirror",
                "docker.io/library/nginx:1.27",
                &format!("{HOST}/mirror/nginx:1.27"),
                "--tag",
                "stable",
                "--authfile",
                "/var/run/ecr-operator/ecr/.dockerconfigjson",
                "--digest-file",
                "/dev/termination-log",
                "--no-ecr-login",
                "--timeout",
                "3240s",
            ]
        );
    }

    #[test]
    fn pull_args_read_from_ecr_and_use_the_destination_secret() {
        let job = render(&pull(), &ready_registry(), "ecr-operator:1").unwrap();
        let spec = pod(&job);
        let args = spec.containers[0].args.clone().unwrap();
        assert_eq!(
            args,
            [
                "mirror",
                &format!("{HOST}/team/app:v1"),
                "registry.example.com/app:v1",
                "--authfile",
                "/var/run/ecr-operator/ecr/.dockerconfigjson",
                "--authfile",
                "/var/run/ecr-operator/other/.dockerconfigjson",
                "--digest-file",
                "/dev/termination-log",
                "--no-ecr-login",
                "--timeout",
                "3240s",
            ]
        );
        let other = spec
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "other");
        assert_eq!(
            other.unwrap().secret.unwrap().secret_name.as_deref(),
            Some("dest-creds")
        );
    }

    #[test]
    fn region_picks_the_host_of_that_region_and_public_is_never_picked() {
        let mut r = registry(
            &["apps"],
            &[
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                HOST,
                "public.ecr.aws",
            ],
        );
        r.spec.region = None;
        r.spec.regions = vec!["us-east-1".into(), "eu-west-1".into()];
        r.spec.public = true;
        let mut m = pull();
        // The first region of the spec, not the first host of the sorted status.
        let first = resolve(&m, &r).unwrap();
        assert_eq!(
            (first.host.as_str(), first.region.as_str()),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com", "us-east-1")
        );
        m.spec.region = Some("eu-west-1".into());
        let eu = resolve(&m, &r).unwrap();
        assert_eq!((eu.host.as_str(), eu.region.as_str()), (HOST, "eu-west-1"));
        m.spec.region = Some("ap-south-1".into());
        let blocked = resolve(&m, &r).unwrap_err();
        assert!(
            blocked
                .message
                .starts_with("spec.region: ap-south-1 is not among"),
            "{blocked:?}"
        );
        // A registry of ECR Public alone has nothing to mirror through.
        r.spec.regions.clear();
        m.spec.region = None;
        let blocked = resolve(&m, &r).unwrap_err();
        assert!(blocked.message.contains("only ECR Public"), "{blocked:?}");
    }

    #[test]
    fn registry_id_picks_the_host_of_that_account() {
        let mut m = pull();
        m.spec.registry_id = Some("210987654321".into());
        let r = resolve(&m, &ready_registry()).unwrap();
        assert_eq!(r.host, "210987654321.dkr.ecr.eu-west-1.amazonaws.com");
        assert_eq!(r.account, "210987654321");
        m.spec.registry_id = Some("999999999999".into());
        let blocked = resolve(&m, &ready_registry()).unwrap_err();
        assert_eq!(blocked.reason, "InvalidSpec");
        assert!(blocked.message.contains("spec.registryId"), "{blocked:?}");
    }

    #[test]
    fn the_container_is_locked_down() {
        let job = render(&push(), &ready_registry(), "ecr-operator:1").unwrap();
        let spec = pod(&job);
        let c = &spec.containers[0];
        let sc = c.security_context.clone().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.run_as_user, Some(65532));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
        assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(
            c.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
        let psc = spec.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(c.image.as_deref(), Some("ecr-operator:1"));
    }

    #[test]
    fn pod_metadata_env_and_config_map_volumes_reach_the_pod() {
        let mut m = push();
        m.spec.job_template = serde_json::from_value(json!({
            "podLabels": {"team": "a", MIRROR_LABEL: "spoofed"},
            "podAnnotations": {"sidecar.istio.io/inject": "false"},
            "env": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
            "volumes": [{"name": "ca", "mountPath": "/etc/ca", "configMap": {"name": "corp-ca"}}],
        }))
        .unwrap();
        let job = render(&m, &ready_registry(), "img").unwrap();
        let template = job.spec.unwrap().template;
        let meta = template.metadata.unwrap();
        let labels = meta.labels.unwrap();
        assert_eq!(labels["team"], "a");
        // The operator's label wins: it is how the operator finds its pods.
        assert_eq!(labels[MIRROR_LABEL], "nginx");
        assert_eq!(
            meta.annotations.unwrap()["sidecar.istio.io/inject"],
            "false"
        );
        let spec = template.spec.unwrap();
        let c = &spec.containers[0];
        let env = c.env.clone().unwrap();
        assert_eq!(env[0].name, "HTTPS_PROXY");
        assert_eq!(env[0].value.as_deref(), Some("http://proxy:3128"));
        assert!(env[0].value_from.is_none());
        let mount = c
            .volume_mounts
            .clone()
            .unwrap()
            .into_iter()
            .find(|v| v.name == "ca")
            .unwrap();
        assert_eq!(
            (mount.mount_path.as_str(), mount.read_only),
            ("/etc/ca", Some(true))
        );
        let volume = spec
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "ca")
            .unwrap();
        assert_eq!(volume.config_map.unwrap().name, "corp-ca");
        assert!(volume.secret.is_none());
    }

    #[test]
    fn quantities_are_checked_naming_the_field() {
        for good in ["500m", "1", "2Gi", "1.5", "1e3", "+1Ki"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["lots", "", "Gi", "1 Gi", "1Gi!"] {
            assert!(!is_quantity(bad), "{bad}");
        }
        let mut m = push();
        m.spec.job_template =
            serde_json::from_value(json!({"resources": {"limits": {"cpu": "lots"}}})).unwrap();
        let b = resolve(&m, &ready_registry()).unwrap_err();
        assert!(
            b.message
                .starts_with("spec.jobTemplate.resources.limits.cpu: \"lots\""),
            "{}",
            b.message
        );
    }

    #[test]
    fn a_refused_job_names_the_jobtemplate_field() {
        let quantity = "Job in version \"v1\" cannot be handled as a Job: quantities must match the regular expression";
        assert_eq!(refused_field(quantity), Some("spec.jobTemplate.resources"));
        let label =
            "Job.batch \"m-1\" is invalid: spec.template.labels: Invalid value: \"bad key!\"";
        assert_eq!(refused_field(label), Some("spec.jobTemplate.podLabels"));
        assert_eq!(refused_field("something else"), None);
    }

    #[test]
    fn the_managed_secret_is_mounted_read_only() {
        let job = render(&push(), &ready_registry(), "img").unwrap();
        let spec = pod(&job);
        let mounts = spec.containers[0].volume_mounts.clone().unwrap();
        let ecr = mounts.iter().find(|m| m.name == "ecr").unwrap();
        assert_eq!(ecr.mount_path, ECR_AUTH_DIR);
        assert_eq!(ecr.read_only, Some(true));
        assert!(mounts.iter().all(|m| m.name != "other"));
        let volumes = spec.volumes.unwrap();
        let secret = volumes
            .iter()
            .find(|v| v.name == "ecr")
            .unwrap()
            .secret
            .clone()
            .unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("ecr-prod"));
        assert_eq!(secret.items.unwrap()[0].key, ".dockerconfigjson");
        assert_eq!(
            spec.image_pull_secrets.unwrap()[0].name,
            "ecr-prod".to_string()
        );
    }

    #[test]
    fn the_job_is_owned_labelled_and_named_by_generation() {
        let job = render(&push(), &ready_registry(), "img").unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some("nginx-3"));
        assert_eq!(job.metadata.namespace.as_deref(), Some("apps"));
        let owner = &job.metadata.owner_references.clone().unwrap()[0];
        assert_eq!(owner.kind, "EcrMirror");
        assert_eq!(owner.uid, "u-1");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(job.metadata.labels.unwrap()[MIRROR_LABEL], "nginx");
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(DEFAULT_BACKOFF_LIMIT));
        // No run without an end: a stalled copy cannot hold a Forbid schedule.
        assert_eq!(
            spec.active_deadline_seconds,
            Some(DEFAULT_ACTIVE_DEADLINE_SECONDS)
        );
    }

    #[test]
    fn the_run_at_annotation_names_a_new_job() {
        let mut m = push();
        assert_eq!(job_name(&m), "nginx-3");
        m.annotations_mut()
            .insert(RUN_AT_ANNOTATION.into(), "2026-11-30T10:00:00Z".into());
        let first = job_name(&m);
        assert!(
            first.starts_with("nginx-3-") && first.len() == "nginx-3-".len() + 6,
            "{first}"
        );
        assert_eq!(first, job_name(&m), "stable for one value");
        m.annotations_mut()
            .insert(RUN_AT_ANNOTATION.into(), "2026-11-30T11:00:00Z".into());
        assert_ne!(first, job_name(&m));
        m.metadata.name = Some("a".repeat(63));
        assert!(job_name(&m).len() <= 63);
    }

    #[test]
    fn long_names_are_shortened_deterministically() {
        let mut m = push();
        m.metadata.name = Some("a".repeat(63));
        let name = job_name(&m);
        assert!(name.len() <= 63, "{name}");
        assert!(name.ends_with("-3"));
        assert_eq!(name, job_name(&m));
        let cron = cron_job_name(&m);
        assert!(cron.len() <= 52, "{cron}");
        m.metadata.name = Some(format!("{}b", "a".repeat(62)));
        assert_ne!(cron, cron_job_name(&m));
    }

    #[test]
    fn job_template_overrides_apply() {
        let mut m = push();
        m.spec.job_template = serde_json::from_value(json!({
            "image": "my/image:2",
            "imagePullPolicy": "Always",
            "serviceAccountName": "mirror",
            "backoffLimit": 0,
            "activeDeadlineSeconds": 120,
            "ttlSecondsAfterFinished": 600,
            "nodeSelector": {"kubernetes.io/arch": "arm64"},
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            "resources": {"limits": {"memory": "256Mi"}},
        }))
        .unwrap();
        let job = render(&m, &ready_registry(), "img").unwrap();
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(120));
        assert_eq!(spec.ttl_seconds_after_finished, Some(600));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("mirror"));
        assert_eq!(pod.node_selector.unwrap()["kubernetes.io/arch"], "arm64");
        assert_eq!(pod.tolerations.unwrap().len(), 1);
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("my/image:2"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
        assert!(c.resources.clone().unwrap().limits.is_some());
    }

    #[test]
    fn a_namespace_without_the_secret_is_reported() {
        let blocked = render(&push(), &registry(&["other"], &[HOST]), "img").unwrap_err();
        assert_eq!(blocked.reason, "RegistrySecretMissing");
        assert!(blocked.message.contains("apps"), "{blocked:?}");
        assert!(!blocked.spec_error);
        let blocked = render(&push(), &registry(&["apps"], &[]), "img").unwrap_err();
        assert_eq!(blocked.reason, "RegistryNotReady");
    }

    #[test]
    fn a_policy_that_is_not_json_is_an_invalid_spec() {
        let mut m = push();
        m.spec
            .push
            .as_mut()
            .unwrap()
            .create_repository
            .repository_policy = Some("{nope".into());
        let blocked = render(&m, &ready_registry(), "img").unwrap_err();
        assert_eq!(blocked.reason, "InvalidSpec");
        assert!(blocked.message.contains("repositoryPolicy"));
        assert!(blocked.spec_error);
    }

    #[test]
    fn a_schedule_makes_a_forbid_concurrency_cron_job() {
        let mut m = push();
        m.spec.schedule = Some("0 3 * * *".into());
        m.spec.suspend = true;
        let cj = render_cron_job(&m, &ready_registry(), "img").unwrap();
        assert_eq!(cj.metadata.name.as_deref(), Some("nginx"));
        let spec = cj.spec.clone().unwrap();
        assert_eq!(spec.schedule, "0 3 * * *");
        assert_eq!(spec.suspend, Some(true));
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
        let template = spec.job_template;
        assert_eq!(
            template.metadata.unwrap().labels.unwrap()[MIRROR_LABEL],
            "nginx"
        );
        assert!(cj.metadata.annotations.as_ref().unwrap()[SPEC_HASH_ANNOTATION].len() == 16);
        let again = render_cron_job(&m, &ready_registry(), "img").unwrap();
        assert_eq!(cj, again);
        m.spec.suspend = false;
        let resumed = render_cron_job(&m, &ready_registry(), "img").unwrap();
        assert_ne!(
            cj.metadata.annotations.unwrap()[SPEC_HASH_ANNOTATION],
            resumed.metadata.annotations.unwrap()[SPEC_HASH_ANNOTATION]
        );
    }

    /// Job and CronJob names and the CronJob's spec hash are stored in the cluster:
    /// a hash that changed between builds would orphan objects or rewrite them.
    /// The spec hash also moves with any change to the rendered CronJob (which is
    /// then meant to be re-applied): update it along with such a change.
    #[test]
    fn hashes_are_pinned_because_the_cluster_stores_them() {
        let mut m = push();
        m.metadata.name = Some(format!("{}-{}", "a".repeat(40), "b".repeat(29)));
        assert_eq!(m.name_any().len(), 70);
        assert_eq!(
            job_name(&m),
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbb-feb2829c-3"
        );
        assert_eq!(
            cron_job_name(&m),
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bb-feb2829c"
        );
        m.metadata.name = Some("nginx".into());
        m.spec.schedule = Some("0 3 * * *".into());
        let cj = render_cron_job(&m, &ready_registry(), "img").unwrap();
        assert_eq!(
            cj.metadata.annotations.unwrap()[SPEC_HASH_ANNOTATION],
            "fd867eca6924fa71"
        );
        assert_eq!(sha256_hex(b"abc", 16), "ba7816bf8f01cfea");
    }
}
