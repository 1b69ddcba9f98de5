//! The EcrMirror controller: watches EcrMirrors, their EcrRegistries, and the Jobs
//! and CronJobs it made (by label), and for each EcrMirror runs
//! observe → [`mirror_job::render`] (pure) → ensure the ECR repository → apply → status (pure).
//!
//! The Job of a one-off copy is named after the EcrMirror's generation and created
//! once; a finished Job is never re-created (its outcome lives on in the status,
//! even after `ttlSecondsAfterFinished` removed it). A scheduled copy is one CronJob
//! per EcrMirror, re-applied when its rendered spec changes. Jobs and CronJobs of
//! an older spec are deleted.
//!
//! The digest in the status comes from ECR, not from the pod (the operator reads no
//! pods): when a copy succeeds, `ecr:DescribeImages` names the digest of the pushed
//! tag (push) or of the source tag (pull).

use crate::aws::failure::ecr_error;
use crate::aws::identity::Identity;
use crate::crd::ecr_mirror::{EcrMirror, EcrMirrorStatus, Phase};
use crate::crd::ecr_registry::EcrRegistry;
use crate::error::{Error, Result};
use crate::mirror::job::{
    self as mirror_job, Blocked, MIRROR_LABEL, Resolved, SPEC_HASH_ANNOTATION,
};
use crate::registry::desired_secret::{FIELD_MANAGER, MANAGED_BY, MANAGED_BY_LABEL};
use crate::runtime::backoff::Backoffs;
use crate::runtime::watches::{cached, keep_all, wait_for_crd};
use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_ecr::types::{ImageIdentifier, ImageScanningConfiguration, ImageTagMutability};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const READY: &str = "Ready";
pub const SUCCEEDED: &str = "Succeeded";

/// How the EcrMirror controller runs.
#[derive(Clone, Debug)]
pub struct MirrorConfig {
    /// The operator's own namespace: where the EcrRegistries' credential Secrets live.
    pub operator_namespace: String,
    /// The image of the copying Jobs unless an EcrMirror sets jobTemplate.image: the
    /// operator's own (flag/env `ECR_OPERATOR_IMAGE`). Its entrypoint must be
    /// `ecr-operator`.
    pub image: String,
    /// Only EcrMirrors matching this label selector are handled (sharding, tests).
    pub selector: Option<String>,
    /// Name of this instance in Events.
    pub instance: String,
}

struct Context {
    client: Client,
    config: MirrorConfig,
    aws: aws_config::SdkConfig,
    registries: Store<EcrRegistry>,
    jobs: Store<Job>,
    cron_jobs: Store<CronJob>,
    recorder: Recorder,
    /// Digests looked up per Job uid (None: the image was not found), so each
    /// successful Job costs one DescribeImages.
    digests: Mutex<HashMap<String, Option<String>>>,
    backoff: Backoffs,
}

/// What building and applying did in one pass.
#[derive(Default)]
struct Step {
    job: Option<Arc<Job>>,
    cron_job: Option<Arc<CronJob>>,
    /// What keeps the copy from starting.
    blocked: Option<Blocked>,
    /// The block is expected to clear by itself (retry with backoff).
    transient: bool,
}

/// Runs until `shutdown` completes. Fails at once when the EcrMirror CRD is not
/// installed or `config.image` is empty.
pub async fn run(
    client: Client,
    config: MirrorConfig,
    aws: aws_config::SdkConfig,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    if config.image.trim().is_empty() {
        return Err(Error::InvalidSpec(
            "no image for the EcrMirror Jobs: set --image or ECR_OPERATOR_IMAGE to the operator's own image".into(),
        ));
    }
    let mirrors: Api<EcrMirror> = Api::all(client.clone());
    wait_for_crd(&mirrors, Error::MirrorCrdMissing).await?;
    let mut mirror_watch = watcher::Config::default();
    if let Some(sel) = &config.selector {
        mirror_watch = mirror_watch.labels(sel);
    }
    let controller = Controller::new(mirrors, mirror_watch);
    let mirror_store = controller.store();

    let (registries, registry_events, _) = cached(
        Api::<EcrRegistry>::all(client.clone()),
        watcher::Config::default(),
        keep_all,
    );

    let ours = format!("{MANAGED_BY_LABEL}={MANAGED_BY},{MIRROR_LABEL}");
    let (jobs, job_events, _) = cached(
        Api::<Job>::all(client.clone()),
        watcher::Config::default().labels(&ours),
        keep_all,
    );

    let (cron_jobs, cron_events, _) = cached(
        Api::<CronJob>::all(client.clone()),
        watcher::Config::default().labels(&ours),
        keep_all,
    );

    let reporter = Reporter {
        controller: "ecr-operator".into(),
        instance: Some(config.instance.clone()),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        config,
        aws,
        registries,
        jobs,
        cron_jobs,
        digests: Mutex::default(),
        backoff: Backoffs::default(),
    });

    controller
        .watches_stream(registry_events, move |registry| {
            let name = registry.name_any();
            mirror_store
                .state()
                .iter()
                .filter(|m| m.spec.registry_ref.name == name)
                .map(|m| ObjectRef::from_obj(&**m))
                .collect::<Vec<_>>()
        })
        .watches_stream(job_events, mirror_of)
        .watches_stream(cron_events, mirror_of)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "mirror reconcile failed");
            }
        })
        .await;
    Ok(())
}

/// The EcrMirror a Job or CronJob belongs to, by its label.
fn mirror_of<K: Resource>(obj: K) -> Option<ObjectRef<EcrMirror>> {
    let name = obj.meta().labels.as_ref()?.get(MIRROR_LABEL)?;
    Some(ObjectRef::new(name).within(obj.meta().namespace.as_deref()?))
}

fn error_policy(mirror: Arc<EcrMirror>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(
        namespace = mirror.namespace(),
        mirror = mirror.name_any(),
        reason = error.reason(),
        error = %error,
        "mirror reconcile failed"
    );
    Action::requeue(ctx.backoff.next(&key(&mirror)))
}

fn key(mirror: &EcrMirror) -> String {
    format!(
        "{}/{}",
        mirror.namespace().unwrap_or_default(),
        mirror.name_any()
    )
}

fn is_controlled_by(obj: &impl Resource, uid: Option<&str>) -> bool {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid)
}

async fn reconcile(mirror: Arc<EcrMirror>, ctx: Arc<Context>) -> Result<Action> {
    if mirror.meta().deletion_timestamp.is_some() {
        // The garbage collector removes the Jobs and CronJobs it owns.
        return Ok(Action::await_change());
    }
    ctx.sync(&mirror).await
}

impl Context {
    async fn sync(&self, mirror: &EcrMirror) -> Result<Action> {
        let ns = mirror.namespace().unwrap_or_default();
        let name = mirror.name_any();
        let uid = mirror.uid();
        let prev = mirror.status.clone().unwrap_or_default();
        let scheduled = mirror.spec.schedule.is_some();

        // Observe.
        let registry = self
            .registries
            .get(&ObjectRef::new(&mirror.spec.registry_ref.name));
        let resolved = match &registry {
            None => Err(Blocked {
                reason: "RegistryNotFound",
                message: format!(
                    "EcrRegistry {} (spec.registryRef.name) does not exist: create it, or fix the name",
                    mirror.spec.registry_ref.name
                ),
                spec_error: false,
            }),
            Some(r) => mirror_job::resolve(mirror, r),
        };
        let mine: Vec<Arc<Job>> = self
            .jobs
            .state()
            .into_iter()
            .filter(|j| j.namespace().as_deref() == Some(ns.as_str()))
            .filter(|j| j.labels().get(MIRROR_LABEL) == Some(&name))
            .collect();
        let cron_name = mirror_job::cron_job_name(mirror);
        let cron = self
            .cron_jobs
            .get(&ObjectRef::new(&cron_name).within(&ns))
            .filter(|c| is_controlled_by(&**c, uid.as_deref()));

        let this_job = (!scheduled)
            .then(|| mirror_job::job_name(mirror))
            .and_then(|n| {
                mine.iter()
                    .find(|j| j.name_any() == n && is_controlled_by(&***j, uid.as_deref()))
                    .cloned()
            });

        // Build and apply what is missing.
        let mut step = Step {
            job: this_job,
            cron_job: cron.clone(),
            ..Step::default()
        };
        if let (Some(registry), Ok(resolved)) = (&registry, &resolved) {
            if scheduled {
                self.ensure_cron_job(mirror, registry, resolved, &mut step)
                    .await?;
            } else if step.job.is_none() && !finished_before(&prev, mirror) {
                self.ensure_job(mirror, registry, resolved, &mut step)
                    .await?;
            }
        }
        let blocked = resolved.as_ref().err().cloned().or(step.blocked.clone());
        let mut requeue = step.transient.then(|| self.backoff.next(&key(mirror)));

        // Remove what an older spec made: Jobs of other generations, and the
        // CronJob or the one-off Jobs when the schedule came or went.
        let keep_job = (!scheduled).then(|| mirror_job::job_name(mirror));
        for old in mine
            .iter()
            .filter(|j| is_controlled_by(&***j, uid.as_deref()) && Some(j.name_any()) != keep_job)
        {
            self.delete::<Job>(&ns, &old.name_any()).await;
        }
        if !scheduled && let Some(c) = &cron {
            self.delete::<CronJob>(&ns, &c.name_any()).await;
            step.cron_job = None;
        }

        // The Job the status describes: for a schedule, the CronJob's latest run.
        let job = match (scheduled, &step.cron_job) {
            (false, _) => step.job.clone(),
            (true, None) => None,
            (true, Some(c)) => {
                let cron_uid = c.uid();
                mine.iter()
                    .filter(|j| is_controlled_by(&***j, cron_uid.as_deref()))
                    .max_by_key(|j| {
                        (
                            j.metadata.creation_timestamp.clone().map(|t| t.0),
                            j.name_any(),
                        )
                    })
                    .cloned()
            }
        };
        let cron_job = step.cron_job.clone();

        let digest = match (&job, &resolved) {
            (Some(j), Ok(resolved)) if needs_digest(&prev, j) => {
                match self.digest(mirror, registry.as_deref(), resolved, j).await {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(namespace = ns, mirror = name, error = %e, "digest lookup failed");
                        requeue = requeue.or(Some(Duration::from_secs(30)));
                        None
                    }
                }
            }
            _ => None,
        };

        let new_status = compute(&StatusInput {
            mirror,
            job: job.as_deref(),
            cron_job: cron_job.as_deref(),
            blocked: blocked.as_ref(),
            looked_up_digest: digest,
            now: jiff::Timestamp::now(),
        });
        self.write_status(mirror, &prev, new_status).await?;

        if requeue.is_none() {
            self.backoff.reset(&key(mirror));
        }
        Ok(match (requeue, &blocked) {
            (Some(d), _) => Action::requeue(d),
            // Waiting on something outside the watches (an AWS fix): retry slowly.
            (None, Some(b)) if !b.spec_error => Action::requeue(Duration::from_secs(300)),
            _ => Action::await_change(),
        })
    }

    /// Creates this generation's one-off Job (after the repository, for a push).
    async fn ensure_job(
        &self,
        mirror: &EcrMirror,
        registry: &EcrRegistry,
        resolved: &Resolved,
        step: &mut Step,
    ) -> Result<()> {
        let desired = match mirror_job::render(mirror, registry, &self.config.image) {
            Ok(d) => d,
            Err(b) => {
                step.blocked = Some(b);
                return Ok(());
            }
        };
        match self
            .ensure_and_apply(mirror, registry, resolved, desired)
            .await?
        {
            Ok(applied) => {
                // A Job that a lagging store does not show yet is applied again (a
                // no-op): announce it once.
                let prev = mirror.status.as_ref().and_then(|s| s.job_name.as_ref());
                if prev != applied.metadata.name.as_ref() {
                    self.announce(mirror, format!("Job {}", applied.name_any()))
                        .await;
                }
                step.job = Some(Arc::new(applied));
            }
            Err((b, transient)) => {
                step.blocked = Some(b);
                step.transient = transient;
            }
        }
        Ok(())
    }

    /// Applies the CronJob when its rendered spec changed (or it is missing).
    async fn ensure_cron_job(
        &self,
        mirror: &EcrMirror,
        registry: &EcrRegistry,
        resolved: &Resolved,
        step: &mut Step,
    ) -> Result<()> {
        let desired = match mirror_job::render_cron_job(mirror, registry, &self.config.image) {
            Ok(d) => d,
            Err(b) => {
                step.blocked = Some(b);
                return Ok(());
            }
        };
        let hash = |c: &CronJob| c.annotations().get(SPEC_HASH_ANNOTATION).cloned();
        if step.cron_job.as_deref().and_then(hash) == hash(&desired) {
            return Ok(());
        }
        match self
            .ensure_and_apply(mirror, registry, resolved, desired)
            .await?
        {
            Ok(applied) => {
                let prev = mirror
                    .status
                    .as_ref()
                    .and_then(|s| s.cron_job_name.as_ref());
                if step.cron_job.is_none() && prev != applied.metadata.name.as_ref() {
                    self.announce(mirror, format!("CronJob {}", applied.name_any()))
                        .await;
                }
                step.cron_job = Some(Arc::new(applied));
            }
            Err((b, transient)) => {
                step.blocked = Some(b);
                step.transient = transient;
            }
        }
        Ok(())
    }

    async fn announce(&self, mirror: &EcrMirror, what: String) {
        tracing::info!(
            namespace = mirror.namespace(),
            mirror = mirror.name_any(),
            "{what} created"
        );
        self.publish(
            mirror,
            EventType::Normal,
            "Created",
            format!("{what} created"),
        )
        .await;
    }

    /// Makes sure the repository exists (push), then applies the object. The inner
    /// error is a problem to report in the status (and whether it is transient);
    /// the outer one an API failure to retry with backoff.
    async fn ensure_and_apply<K>(
        &self,
        mirror: &EcrMirror,
        registry: &EcrRegistry,
        resolved: &Resolved,
        desired: K,
    ) -> Result<std::result::Result<K, (Blocked, bool)>>
    where
        K: Resource<DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
    {
        if mirror.spec.push.is_some()
            && let Err(e) = self.ensure_repository(mirror, registry, resolved).await
        {
            tracing::warn!(namespace = mirror.namespace(), mirror = mirror.name_any(), error = %e, "repository not ready");
            let transient = e.is_transient();
            return Ok(Err((
                Blocked {
                    reason: e.reason(),
                    message: e.to_string(),
                    spec_error: false,
                },
                transient,
            )));
        }
        let ns = mirror.namespace().unwrap_or_default();
        let api: Api<K> = Api::namespaced(self.client.clone(), &ns);
        let name = desired.meta().name.clone().unwrap_or_default();
        match api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await
        {
            Ok(applied) => Ok(Ok(applied)),
            Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => Ok(Err((
                Blocked {
                    reason: "InvalidSpec",
                    message: format!("the API server refused {}: {}", name, s.message),
                    spec_error: true,
                },
                false,
            ))),
            Err(e) => Err(Error::Kube(e)),
        }
    }

    async fn ecr_client(&self, registry: &EcrRegistry) -> Result<aws_sdk_ecr::Client> {
        let identity =
            Identity::for_registry(&self.client, &self.config.operator_namespace, registry).await?;
        Ok(aws_sdk_ecr::Client::new(
            &identity.sdk_config(&self.aws).await?,
        ))
    }

    /// CreateRepository (an existing repository is fine), then SetRepositoryPolicy
    /// when a policy is given.
    async fn ensure_repository(
        &self,
        mirror: &EcrMirror,
        registry: &EcrRegistry,
        resolved: &Resolved,
    ) -> Result<()> {
        let Some(push) = &mirror.spec.push else {
            return Ok(());
        };
        let ecr = self.ecr_client(registry).await?;
        let settings = &push.create_repository;
        let mutability = match settings.image_tag_mutability {
            crate::crd::ecr_mirror::TagMutability::Mutable => ImageTagMutability::Mutable,
            crate::crd::ecr_mirror::TagMutability::Immutable => ImageTagMutability::Immutable,
        };
        match ecr
            .create_repository()
            .registry_id(&resolved.account)
            .repository_name(&push.repository)
            .image_tag_mutability(mutability)
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(settings.scan_on_push)
                    .build(),
            )
            .send()
            .await
        {
            Ok(_) => tracing::info!(
                namespace = mirror.namespace(),
                mirror = mirror.name_any(),
                repository = push.repository,
                "ECR repository created"
            ),
            Err(e) if e.code() == Some("RepositoryAlreadyExistsException") => {}
            Err(e) => return Err(ecr_error("CreateRepository", &e)),
        }
        if let Some(policy) = &settings.repository_policy {
            ecr.set_repository_policy()
                .registry_id(&resolved.account)
                .repository_name(&push.repository)
                .policy_text(policy)
                .send()
                .await
                .map_err(|e| ecr_error("SetRepositoryPolicy", &e))?;
        }
        Ok(())
    }

    /// The digest of the image in ECR after a successful copy; None when the image
    /// is not there (e.g. deleted since, or a tag moved).
    async fn digest(
        &self,
        mirror: &EcrMirror,
        registry: Option<&EcrRegistry>,
        resolved: &Resolved,
        job: &Job,
    ) -> Result<Option<String>> {
        let uid = job.uid().unwrap_or_default();
        if let Some(d) = self.digests.lock().expect("lock").get(&uid) {
            return Ok(d.clone());
        }
        let (repository, tag) = match (&mirror.spec.push, &mirror.spec.pull) {
            (Some(push), _) => (
                push.repository.clone(),
                push.tags.first().cloned().unwrap_or_default(),
            ),
            (None, Some(pull)) => match pull.source.split_once('@') {
                Some((_, digest)) => return Ok(Some(digest.to_string())),
                None => match pull.source.rsplit_once(':') {
                    Some((repo, tag)) => (repo.to_string(), tag.to_string()),
                    None => return Ok(None),
                },
            },
            (None, None) => return Ok(None),
        };
        let Some(registry) = registry else {
            return Ok(None);
        };
        let ecr = self.ecr_client(registry).await?;
        let digest = match ecr
            .describe_images()
            .registry_id(&resolved.account)
            .repository_name(&repository)
            .image_ids(ImageIdentifier::builder().image_tag(&tag).build())
            .send()
            .await
        {
            Ok(out) => out
                .image_details()
                .first()
                .and_then(|d| d.image_digest())
                .map(str::to_string),
            Err(e)
                if matches!(
                    e.code(),
                    Some("ImageNotFoundException" | "RepositoryNotFoundException")
                ) =>
            {
                None
            }
            Err(e) => return Err(ecr_error("DescribeImages", &e)),
        };
        let mut cache = self.digests.lock().expect("lock");
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(uid, digest.clone());
        Ok(digest)
    }

    async fn delete<K>(&self, ns: &str, name: &str)
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => tracing::info!(
                namespace = ns,
                name,
                kind = K::kind(&()).as_ref(),
                "deleted (older spec)"
            ),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!(namespace = ns, name, error = %e, "delete failed"),
        }
    }

    /// Writes the status only when it changed; an Event when a copy starts running,
    /// succeeds or fails, and for each new reason the copy is blocked.
    async fn write_status(
        &self,
        mirror: &EcrMirror,
        prev: &EcrMirrorStatus,
        new: EcrMirrorStatus,
    ) -> Result<()> {
        if mirror.status.as_ref() == Some(&new) {
            return Ok(());
        }
        let api: Api<EcrMirror> =
            Api::namespaced(self.client.clone(), &mirror.namespace().unwrap_or_default());
        // Server-side apply, not a merge patch: a field that became empty (the
        // CronJob's name once the schedule is gone) must be removed, not kept.
        api.patch_status(
            &mirror.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(serde_json::json!({
                "apiVersion": EcrMirror::api_version(&()),
                "kind": EcrMirror::kind(&()),
                "status": new,
            })),
        )
        .await?;
        let message = new.message.clone().unwrap_or_default();
        let ready =
            |s: &EcrMirrorStatus| condition(s, READY).map(|c| (c.status.clone(), c.reason.clone()));
        if let Some((status, reason)) = ready(&new)
            && status == "False"
            && ready(prev) != Some((status, reason.clone()))
        {
            self.publish(mirror, EventType::Warning, &reason, message.clone())
                .await;
        }
        if let Some(phase) = new.phase
            && phase != Phase::Pending
            && (prev.phase != Some(phase) || prev.job_name != new.job_name)
            && new.job_name.is_some()
        {
            let type_ = if phase == Phase::Failed {
                EventType::Warning
            } else {
                EventType::Normal
            };
            self.publish(mirror, type_, phase.as_str(), message).await;
        }
        Ok(())
    }

    async fn publish(&self, mirror: &EcrMirror, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: "Mirror".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &mirror.object_ref(&())).await {
            tracing::warn!(mirror = mirror.name_any(), error = %e, "event not recorded");
        }
    }
}

/// True when the status already holds the outcome of this generation's one-off
/// Job: it is not created again (ttlSecondsAfterFinished may have removed it).
fn finished_before(prev: &EcrMirrorStatus, mirror: &EcrMirror) -> bool {
    prev.observed_generation == mirror.metadata.generation
        && prev.job_name.as_deref() == Some(mirror_job::job_name(mirror).as_str())
        && matches!(prev.phase, Some(Phase::Succeeded | Phase::Failed))
}

/// True when `job` succeeded and the status does not hold its digest yet (a failed
/// lookup is retried; an image that is not there is remembered per Job).
pub fn needs_digest(prev: &EcrMirrorStatus, job: &Job) -> bool {
    job_outcome(job).phase == Phase::Succeeded
        && !(prev.job_name == Some(job.name_any())
            && prev.phase == Some(Phase::Succeeded)
            && prev.digest.is_some())
}

/// What a Job's status says about the copy.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    pub phase: Phase,
    /// CamelCase reason for the Succeeded condition.
    pub reason: String,
    pub message: String,
    pub completion_time: Option<Time>,
}

/// The phase of a copy from its Job's status alone (the operator reads no pods):
/// Complete → Succeeded, Failed → Failed, a ready pod → Running, else Pending.
pub fn job_outcome(job: &Job) -> JobOutcome {
    let name = job.name_any();
    let status = job.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let is_true = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    if is_true("Complete").is_some() {
        return JobOutcome {
            phase: Phase::Succeeded,
            reason: "Completed".into(),
            message: format!("Job {name} copied the image"),
            completion_time: status.completion_time,
        };
    }
    if let Some(c) = is_true("Failed") {
        let reason = c.reason.clone().unwrap_or_else(|| "JobFailed".into());
        let detail = c.message.clone().unwrap_or_default();
        return JobOutcome {
            phase: Phase::Failed,
            message: format!(
                "Job {name} failed: {reason}{}{detail}; see `kubectl logs job/{name}` (its pods' termination messages hold the mirror's last error)",
                if detail.is_empty() { "" } else { ": " },
            ),
            reason,
            completion_time: None,
        };
    }
    let failed = status.failed.unwrap_or(0);
    let retrying = if failed > 0 {
        format!(" ({failed} failed attempt(s) so far)")
    } else {
        String::new()
    };
    if status.ready.unwrap_or(0) > 0 {
        JobOutcome {
            phase: Phase::Running,
            reason: "Running".into(),
            message: format!("Job {name} is copying the image{retrying}"),
            completion_time: None,
        }
    } else {
        JobOutcome {
            phase: Phase::Pending,
            reason: "Pending".into(),
            message: format!("Job {name} is waiting for its pod to start{retrying}"),
            completion_time: None,
        }
    }
}

/// Everything the status is computed from.
pub struct StatusInput<'a> {
    pub mirror: &'a EcrMirror,
    /// The Job the status describes: this generation's one-off Job, or the CronJob's latest.
    pub job: Option<&'a Job>,
    pub cron_job: Option<&'a CronJob>,
    /// What keeps the operator from creating the Job (or keeps it from working).
    pub blocked: Option<&'a Blocked>,
    /// The digest looked up for a Job that just succeeded.
    pub looked_up_digest: Option<String>,
    pub now: jiff::Timestamp,
}

/// The EcrMirror's status as a pure function of what was observed. No timestamps
/// change unless a condition changes, so an unchanged state writes nothing.
pub fn compute(input: &StatusInput<'_>) -> EcrMirrorStatus {
    let mirror = input.mirror;
    let prev = mirror.status.clone().unwrap_or_default();
    let generation = mirror.metadata.generation;
    let scheduled = mirror.spec.schedule.is_some();
    let outcome = input.job.map(job_outcome);
    let kept = !scheduled && input.job.is_none() && finished_before(&prev, mirror);

    let (phase, mut message, succeeded_reason) = match (&outcome, input.blocked) {
        (Some(o), _) => (o.phase, o.message.clone(), o.reason.clone()),
        (None, _) if kept => (
            prev.phase.unwrap_or(Phase::Pending),
            prev.message.clone().unwrap_or_default(),
            condition(&prev, SUCCEEDED)
                .map(|c| c.reason.clone())
                .unwrap_or_default(),
        ),
        (None, Some(b)) => (
            if b.spec_error {
                Phase::Failed
            } else {
                Phase::Pending
            },
            b.message.clone(),
            b.reason.to_string(),
        ),
        (None, None) => match input.cron_job {
            Some(c) => (
                Phase::Pending,
                format!(
                    "CronJob {} waits for its first run (schedule {:?})",
                    c.name_any(),
                    mirror.spec.schedule.clone().unwrap_or_default()
                ),
                "Pending".to_string(),
            ),
            None => (
                Phase::Pending,
                "creating the Job".to_string(),
                "Pending".to_string(),
            ),
        },
    };
    if let (Some(b), Some(_)) = (input.blocked, &outcome) {
        message = format!("{}; {message}", b.message);
    }
    if scheduled && mirror.spec.suspend && input.blocked.is_none() {
        message = format!("suspended; {message}");
    }

    let succeeded_now = outcome.as_ref().filter(|o| o.phase == Phase::Succeeded);
    let mut last_success_time = prev.last_success_time.clone();
    let candidates = [
        succeeded_now.and_then(|o| o.completion_time.clone()),
        input
            .cron_job
            .and_then(|c| c.status.as_ref())
            .and_then(|s| s.last_successful_time.clone()),
    ];
    for t in candidates.into_iter().flatten() {
        if last_success_time.as_ref().is_none_or(|l| l.0 < t.0) {
            last_success_time = Some(t);
        }
    }
    if succeeded_now.is_some() && last_success_time.is_none() {
        last_success_time = Some(Time(input.now));
    }

    let job_name = match input.job {
        Some(j) => Some(j.name_any()),
        None if kept => prev.job_name.clone(),
        None => None,
    };
    let digest = match input.job {
        Some(j) if needs_digest(&prev, j) => input.looked_up_digest.clone(),
        _ => prev.digest.clone(),
    };

    let in_place = if scheduled {
        input.cron_job.is_some()
    } else {
        input.job.is_some() || kept
    };
    let (ready_status, ready_reason, ready_message) = match input.blocked {
        Some(b) => ("False", b.reason.to_string(), b.message.clone()),
        None if in_place && scheduled => (
            "True",
            "CronJobReady".to_string(),
            format!(
                "CronJob {} runs the copy on schedule {:?}{}",
                input.cron_job.map(|c| c.name_any()).unwrap_or_default(),
                mirror.spec.schedule.clone().unwrap_or_default(),
                if mirror.spec.suspend {
                    " (suspended)"
                } else {
                    ""
                }
            ),
        ),
        None if in_place => (
            "True",
            "JobCreated".to_string(),
            format!("Job {} runs the copy", job_name.clone().unwrap_or_default()),
        ),
        None => ("Unknown", "Pending".to_string(), message.clone()),
    };
    let succeeded_status = match phase {
        Phase::Succeeded => "True",
        Phase::Failed => "False",
        Phase::Pending | Phase::Running => "Unknown",
    };
    let conditions = vec![
        make_condition(
            &prev,
            READY,
            ready_status,
            ready_reason,
            ready_message,
            generation,
            input.now,
        ),
        make_condition(
            &prev,
            SUCCEEDED,
            succeeded_status,
            succeeded_reason,
            message.clone(),
            generation,
            input.now,
        ),
    ];
    EcrMirrorStatus {
        observed_generation: generation,
        phase: Some(phase),
        job_name,
        cron_job_name: input.cron_job.map(|c| c.name_any()),
        last_success_time,
        digest,
        message: Some(message),
        conditions,
    }
}

fn make_condition(
    prev: &EcrMirrorStatus,
    type_: &str,
    status: &str,
    reason: String,
    message: String,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Condition {
    let last_transition_time = match condition(prev, type_) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: if reason.is_empty() {
            status.to_string()
        } else {
            reason
        },
        message: message.chars().take(32768).collect(),
        last_transition_time,
        observed_generation: generation,
    }
}

/// The condition of `type_` in a status.
pub fn condition<'a>(status: &'a EcrMirrorStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mirror(extra: serde_json::Value) -> EcrMirror {
        let mut spec = json!({
            "registryRef": {"name": "prod"},
            "push": {"source": "docker.io/library/nginx:1.27", "repository": "mirror/nginx", "tags": ["1.27"]},
        });
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "apiVersion": "ecr-operator.io/v1alpha1",
            "kind": "EcrMirror",
            "metadata": {"name": "nginx", "namespace": "apps", "uid": "u-1", "generation": 2},
            "spec": spec,
        }))
        .unwrap()
    }

    fn job(name: &str, status: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "apps", "uid": format!("uid-{name}")},
            "status": status,
        }))
        .unwrap()
    }

    fn now() -> jiff::Timestamp {
        "2026-01-02T03:04:05Z".parse().unwrap()
    }

    fn input<'a>(m: &'a EcrMirror, j: Option<&'a Job>) -> StatusInput<'a> {
        StatusInput {
            mirror: m,
            job: j,
            cron_job: None,
            blocked: None,
            looked_up_digest: None,
            now: now(),
        }
    }

    #[test]
    fn job_status_maps_to_phases() {
        let pending = job(
            "a",
            json!({"active": 1, "startTime": "2026-01-01T00:00:00Z"}),
        );
        assert_eq!(job_outcome(&pending).phase, Phase::Pending);
        let running = job("a", json!({"active": 1, "ready": 1}));
        assert_eq!(job_outcome(&running).phase, Phase::Running);
        let done = job(
            "a",
            json!({"succeeded": 1, "completionTime": "2026-01-01T00:01:00Z", "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"}]}),
        );
        let o = job_outcome(&done);
        assert_eq!(o.phase, Phase::Succeeded);
        assert!(o.completion_time.is_some());
        let failed = job(
            "a",
            json!({"failed": 3, "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}),
        );
        let o = job_outcome(&failed);
        assert_eq!(o.phase, Phase::Failed);
        assert_eq!(o.reason, "BackoffLimitExceeded");
        assert!(o.message.contains("backoff limit"), "{}", o.message);
        assert!(o.message.contains("kubectl logs job/a"), "{}", o.message);
        // Success criteria met but not yet Complete: still running.
        let finishing = job(
            "a",
            json!({"ready": 1, "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]}),
        );
        assert_eq!(job_outcome(&finishing).phase, Phase::Running);
    }

    #[test]
    fn a_succeeded_job_sets_time_digest_and_conditions() {
        let m = mirror(json!({}));
        let j = job(
            "nginx-2",
            json!({"completionTime": "2026-01-01T00:01:00Z", "conditions": [{"type": "Complete", "status": "True"}]}),
        );
        let mut i = input(&m, Some(&j));
        i.looked_up_digest = Some("sha256:abc".into());
        let s = compute(&i);
        assert_eq!(s.phase, Some(Phase::Succeeded));
        assert_eq!(s.job_name.as_deref(), Some("nginx-2"));
        assert_eq!(s.digest.as_deref(), Some("sha256:abc"));
        assert_eq!(
            s.last_success_time.as_ref().unwrap().0.to_string(),
            "2026-01-01T00:01:00Z"
        );
        assert_eq!(condition(&s, READY).unwrap().status, "True");
        assert_eq!(condition(&s, SUCCEEDED).unwrap().status, "True");
        assert_eq!(s.observed_generation, Some(2));
    }

    #[test]
    fn an_unchanged_state_yields_an_equal_status() {
        let mut m = mirror(json!({}));
        let j = job("nginx-2", json!({"active": 1, "ready": 1}));
        let first = compute(&input(&m, Some(&j)));
        m.status = Some(first.clone());
        let mut later = input(&m, Some(&j));
        later.now = now() + jiff::SignedDuration::from_secs(3600);
        assert_eq!(compute(&later), first);
    }

    #[test]
    fn the_digest_is_kept_once_recorded() {
        let mut m = mirror(json!({}));
        let j = job(
            "nginx-2",
            json!({"conditions": [{"type": "Complete", "status": "True"}]}),
        );
        let mut i = input(&m, Some(&j));
        i.looked_up_digest = Some("sha256:abc".into());
        m.status = Some(compute(&i));
        assert!(!needs_digest(m.status.as_ref().unwrap(), &j));
        let again = compute(&input(&m, Some(&j)));
        assert_eq!(again.digest.as_deref(), Some("sha256:abc"));
    }

    #[test]
    fn a_failed_job_names_the_cause() {
        let m = mirror(json!({}));
        let j = job(
            "nginx-2",
            json!({"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}),
        );
        let s = compute(&input(&m, Some(&j)));
        assert_eq!(s.phase, Some(Phase::Failed));
        assert!(
            s.message
                .as_deref()
                .unwrap()
                .contains("BackoffLimitExceeded")
        );
        let c = condition(&s, SUCCEEDED).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "BackoffLimitExceeded")
        );
    }

    #[test]
    fn a_blocked_mirror_says_why() {
        let m = mirror(json!({}));
        let b = Blocked {
            reason: "RegistrySecretMissing",
            message: "EcrRegistry prod has not written its secret".into(),
            spec_error: false,
        };
        let mut i = input(&m, None);
        i.blocked = Some(&b);
        let s = compute(&i);
        assert_eq!(s.phase, Some(Phase::Pending));
        let c = condition(&s, READY).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "RegistrySecretMissing")
        );
        assert!(s.message.unwrap().contains("has not written"));
        assert_eq!(s.job_name, None);

        let b = Blocked {
            reason: "InvalidSpec",
            message: "spec.push.createRepository.repositoryPolicy: not valid JSON".into(),
            spec_error: true,
        };
        i.blocked = Some(&b);
        assert_eq!(compute(&i).phase, Some(Phase::Failed));
    }

    #[test]
    fn a_finished_job_removed_by_its_ttl_keeps_its_outcome() {
        let mut m = mirror(json!({}));
        let j = job(
            "nginx-2",
            json!({"completionTime": "2026-01-01T00:01:00Z", "conditions": [{"type": "Complete", "status": "True"}]}),
        );
        let mut i = input(&m, Some(&j));
        i.looked_up_digest = Some("sha256:abc".into());
        let done = compute(&i);
        m.status = Some(done.clone());
        assert!(finished_before(m.status.as_ref().unwrap(), &m));
        assert_eq!(compute(&input(&m, None)), done);
        // A new generation is a new copy.
        m.metadata.generation = Some(3);
        assert!(!finished_before(m.status.as_ref().unwrap(), &m));
        let next = compute(&input(&m, None));
        assert_eq!(next.phase, Some(Phase::Pending));
        assert_eq!(next.digest.as_deref(), Some("sha256:abc"));
        assert!(next.last_success_time.is_some());
    }

    #[test]
    fn a_schedule_reports_the_cron_job_and_its_latest_run() {
        let m = mirror(json!({"schedule": "0 3 * * *", "suspend": true}));
        let cj: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "nginx", "namespace": "apps"},
            "status": {"lastSuccessfulTime": "2026-01-01T03:00:30Z"},
        }))
        .unwrap();
        let mut i = input(&m, None);
        i.cron_job = Some(&cj);
        let s = compute(&i);
        assert_eq!(s.cron_job_name.as_deref(), Some("nginx"));
        assert_eq!(s.phase, Some(Phase::Pending));
        assert!(s.message.as_deref().unwrap().starts_with("suspended"));
        assert_eq!(condition(&s, READY).unwrap().reason, "CronJobReady");
        assert_eq!(
            s.last_success_time.as_ref().unwrap().0.to_string(),
            "2026-01-01T03:00:30Z"
        );
        let run = job("nginx-29000000", json!({"active": 1, "ready": 1}));
        i.job = Some(&run);
        let s = compute(&i);
        assert_eq!(s.phase, Some(Phase::Running));
        assert_eq!(s.job_name.as_deref(), Some("nginx-29000000"));
    }
}
