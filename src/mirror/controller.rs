//! The EcrMirror controller: watches EcrMirrors, their EcrRegistries, and the Jobs,
//! CronJobs and pods it made (by label), and for each EcrMirror runs
//! observe → [`plan`] and [`mirror_job::render`] (pure) → ensure the ECR repository
//! and apply (`apply`, `ecr`) → [`status`] (pure) → requeue.
//!
//! The Job of a one-off copy is named after the EcrMirror's generation and created
//! once; a finished Job is never re-created (its outcome lives on in the status,
//! even after `ttlSecondsAfterFinished` removed it). A scheduled copy is one CronJob
//! per EcrMirror, re-applied when its rendered spec changes. Jobs and CronJobs of
//! an older spec are deleted.
//!
//! The digest in the status is the one the copy wrote ([`pods`]: the pod's
//! termination message), not a later lookup of a tag that may have moved since.

use crate::crd::ecr_mirror::EcrMirror;
use crate::crd::ecr_registry::EcrRegistry;
use crate::crd::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::error::{Error, Result};
use crate::mirror::apply::{Applier, Step};
use crate::mirror::ecr::Ecr;
use crate::mirror::job::{self as mirror_job, MIRROR_LABEL};
use crate::mirror::plan::{self, Observed};
use crate::mirror::pods;
use crate::mirror::status::{self, StatusInput};
use crate::registry::record;
use crate::runtime::backoff::Backoffs;
use crate::runtime::events::Events;
use crate::runtime::metrics::Metrics;
use crate::runtime::watches::{cached, keep_all, triggers, wait_for_crd};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use std::future::Future;
use std::sync::Arc;

pub use crate::mirror::status::{READY, SUCCEEDED, condition};

/// How the EcrMirror controller runs.
#[derive(Clone, Debug)]
pub struct MirrorConfig {
    /// The operator's own namespace: where the EcrRegistries' credential Secrets live.
    pub operator_namespace: String,
    /// The image of the copying Jobs unless an EcrMirror sets jobTemplate.image: the
    /// operator's own (flag/env `ECR_OPERATOR_IMAGE`). Its entrypoint must be
    /// `ecr-operator`.
    pub image: String,
    /// Only EcrMirrors whose EcrRegistry's labels match this selector are handled
    /// (sharding by EcrRegistry, as `--registry-selector` says); the EcrMirrors'
    /// own labels do not matter.
    pub selector: Option<String>,
    /// Name of this instance in Events.
    pub instance: String,
}

/// The controller's name in metrics.
const CONTROLLER: &str = "EcrMirror";

struct Context {
    client: Client,
    metrics: Arc<Metrics>,
    config: MirrorConfig,
    registries: Store<EcrRegistry>,
    jobs: Store<Job>,
    cron_jobs: Store<CronJob>,
    pods: Store<Pod>,
    events: Events,
    ecr: Ecr,
    backoff: Backoffs,
}

/// Runs until `shutdown` completes. Fails at once when the EcrMirror CRD is not
/// installed or `config.image` is empty.
pub async fn run(
    client: Client,
    config: MirrorConfig,
    aws: aws_config::SdkConfig,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    if config.image.trim().is_empty() {
        return Err(Error::InvalidSpec(
            "no image for the EcrMirror Jobs: set --image or ECR_OPERATOR_IMAGE to the operator's own image".into(),
        ));
    }
    let mirrors: Api<EcrMirror> = Api::all(client.clone());
    wait_for_crd(&mirrors, Error::MirrorCrdMissing).await?;
    let (mirror_store, mirror_events, _) = cached(mirrors, watcher::Config::default(), keep_all);
    let controller =
        Controller::for_stream(triggers(mirror_events, "EcrMirror"), mirror_store.clone());

    let mut registry_watch = watcher::Config::default();
    if let Some(sel) = &config.selector {
        registry_watch = registry_watch.labels(sel);
    }
    let (registries, registry_events, _) = cached(
        Api::<EcrRegistry>::all(client.clone()),
        registry_watch,
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
    // The Job controller copies the template's labels to the pods.
    let (pods, pod_events, _) = cached(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().labels(&ours),
        pods::trim,
    );

    let ctx = Arc::new(Context {
        events: Events::new(client.clone(), &config.instance),
        metrics,
        ecr: Ecr::new(client.clone(), config.operator_namespace.clone(), aws),
        client,
        config,
        registries,
        jobs,
        cron_jobs,
        pods,
        backoff: Backoffs::default(),
    });

    controller
        .watches_stream(triggers(registry_events, "EcrRegistry"), move |registry| {
            let name = registry.name_any();
            mirror_store
                .state()
                .iter()
                .filter(|m| m.spec.registry_ref.name == name)
                .map(|m| ObjectRef::from_obj(&**m))
                .collect::<Vec<_>>()
        })
        .watches_stream(triggers(job_events, "Job"), mirror_of)
        .watches_stream(triggers(cron_events, "CronJob"), mirror_of)
        .watches_stream(triggers(pod_events, "Pod"), mirror_of)
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

/// The objects of `store` in namespace `ns` labelled with the EcrMirror `name`.
fn labelled<K: Resource + Clone>(store: &Store<K>, ns: &str, name: &str) -> Vec<Arc<K>>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store
        .state()
        .into_iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(ns))
        .filter(|o| {
            o.meta()
                .labels
                .as_ref()
                .and_then(|l| l.get(MIRROR_LABEL))
                .map(String::as_str)
                == Some(name)
        })
        .collect()
}

/// The EcrMirror a Job, CronJob or pod belongs to, by its label.
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
    ctx.metrics.reconcile_failed(CONTROLLER, error.reason());
    Action::requeue(ctx.backoff.next(&key(&mirror)))
}

fn key(mirror: &EcrMirror) -> String {
    format!(
        "{}/{}",
        mirror.namespace().unwrap_or_default(),
        mirror.name_any()
    )
}

#[tracing::instrument(
    skip_all,
    fields(namespace = %mirror.namespace().unwrap_or_default(), mirror = %mirror.name_any())
)]
async fn reconcile(mirror: Arc<EcrMirror>, ctx: Arc<Context>) -> Result<Action> {
    if mirror.meta().deletion_timestamp.is_some() {
        // The garbage collector removes the Jobs and CronJobs it owns.
        return Ok(Action::await_change());
    }
    let timer = std::time::Instant::now();
    let result = ctx.sync(&mirror).await;
    ctx.metrics
        .reconciled(CONTROLLER, timer.elapsed().as_secs_f64());
    result
}

impl Context {
    async fn sync(&self, mirror: &EcrMirror) -> Result<Action> {
        let registry = self.registry_of(mirror).await?;
        if registry.is_none() && self.config.selector.is_some() {
            // Sharded: an EcrRegistry outside this instance's selector is another
            // instance's to serve, and only an instance without a selector says
            // that a missing one does not exist.
            return Ok(Action::await_change());
        }
        let observed = self.observe(mirror, registry);

        let step = self.apply(mirror, &observed).await?;
        let blocked = observed
            .resolved
            .as_ref()
            .err()
            .or(step.blocked.as_ref())
            .cloned();
        let retry = step.transient.then(|| self.backoff.next(&key(mirror)));
        let cron_job = self.remove_stale(mirror, &observed, step.cron_job).await;

        let job = plan::described_job(
            mirror,
            step.job.as_ref(),
            cron_job.as_deref(),
            &observed.jobs,
        );
        let job_pods = job
            .as_ref()
            .map(|j| pods::of_job(&observed.pods, &j.name_any()))
            .unwrap_or_default();
        let new_status = status::compute(&StatusInput {
            mirror,
            job: job.as_deref(),
            cron_job: cron_job.as_deref(),
            blocked: blocked.as_ref(),
            pods: &job_pods,
            now: jiff::Timestamp::now(),
        });
        self.applier().write_status(mirror, new_status).await?;

        if retry.is_none() {
            self.backoff.reset(&key(mirror));
        }
        Ok(plan::requeue(retry, blocked.as_ref()))
    }

    /// The EcrMirror's registry from the cache, with `status.managedNamespaces`
    /// saying whether its record holds the mirror's namespace (one get): that
    /// list is what resolving a mirror reads (the record is not in the status).
    async fn registry_of(&self, mirror: &EcrMirror) -> Result<Option<Arc<EcrRegistry>>> {
        let ns = mirror.namespace().unwrap_or_default();
        let Some(registry) = self
            .registries
            .get(&ObjectRef::new(&mirror.spec.registry_ref.name))
        else {
            return Ok(None);
        };
        let op_ns = &self.config.operator_namespace;
        let present = record::contains(&self.client, op_ns, &registry, &ns).await?;
        let mut known = (*registry).clone();
        known.status.get_or_insert_default().managed_namespaces =
            if present { vec![ns] } else { vec![] };
        Ok(Some(Arc::new(known)))
    }

    /// The EcrMirror's Jobs, CronJob and pods, from the caches.
    fn observe(&self, mirror: &EcrMirror, registry: Option<Arc<EcrRegistry>>) -> Observed {
        let ns = mirror.namespace().unwrap_or_default();
        let name = mirror.name_any();
        let cron_job = self
            .cron_jobs
            .get(&ObjectRef::new(&mirror_job::cron_job_name(mirror)).within(&ns))
            .filter(|c| plan::is_controlled_by(&**c, mirror.uid().as_deref()));
        Observed {
            resolved: plan::resolve(mirror, registry.as_deref()),
            registry,
            jobs: labelled(&self.jobs, &ns, &name),
            cron_job,
            labelled_cron_jobs: labelled(&self.cron_jobs, &ns, &name),
            pods: labelled(&self.pods, &ns, &name),
        }
    }

    /// Renders and applies the CronJob, or this generation's Job when it is due;
    /// nothing while the registry does not resolve.
    async fn apply(&self, mirror: &EcrMirror, observed: &Observed) -> Result<Step> {
        let mut step = Step {
            job: plan::this_job(mirror, &observed.jobs),
            cron_job: observed.cron_job.clone(),
            ..Step::default()
        };
        let applier = self.applier();
        if plan::hold_cron_job(&observed.resolved, step.cron_job.as_deref()) {
            step.cron_job = Some(applier.hold_cron_job(mirror, &observed.resolved).await?);
        }
        let (Some(registry), Ok(resolved)) = (&observed.registry, &observed.resolved) else {
            return Ok(step);
        };
        if mirror.spec.schedule.is_some() {
            applier
                .ensure_cron_job(mirror, registry, resolved, &mut step)
                .await?;
        } else if plan::create_job(mirror, step.job.as_deref()) {
            applier
                .ensure_job(mirror, registry, resolved, &mut step)
                .await?;
        }
        Ok(step)
    }

    /// Deletes what an older spec made: Jobs of other generations, and the CronJob
    /// or the one-off Jobs when the schedule came or went. Returns the CronJob that
    /// is left.
    async fn remove_stale(
        &self,
        mirror: &EcrMirror,
        observed: &Observed,
        cron_job: Option<Arc<CronJob>>,
    ) -> Option<Arc<CronJob>> {
        let ns = mirror.namespace().unwrap_or_default();
        let stale = plan::stale(mirror, &observed.jobs, observed.cron_job.as_deref());
        let applier = self.applier();
        for name in &stale.jobs {
            applier.delete::<Job>(&ns, name).await;
        }
        for name in plan::renamed_cron_jobs(mirror, &observed.labelled_cron_jobs) {
            applier.delete::<CronJob>(&ns, &name).await;
        }
        match stale.cron_job {
            Some(name) => {
                applier.delete::<CronJob>(&ns, &name).await;
                None
            }
            None => cron_job,
        }
    }

    fn applier(&self) -> Applier<'_> {
        Applier {
            client: &self.client,
            image: &self.config.image,
            events: &self.events,
            ecr: &self.ecr,
        }
    }
}
