//! Carries an EcrMirror pass out against the API: a thin layer that renders and
//! applies the Job or CronJob (after the repository, for a push), deletes what is
//! stale, writes the status and publishes the Events. It decides nothing beyond
//! turning API answers into a [`Step`].

use crate::crd::FIELD_MANAGER;
use crate::crd::ecr_mirror::{EcrMirror, EcrMirrorStatus};
use crate::crd::ecr_registry::EcrRegistry;
use crate::error::{Error, Result};
use crate::mirror::ecr::Ecr;
use crate::mirror::job::{self as mirror_job, Blocked, Resolved, SPEC_HASH_ANNOTATION};
use crate::mirror::status;
use crate::runtime::events::Events;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use std::sync::Arc;

/// The action of every Event about an EcrMirror.
const ACTION: &str = "Mirror";

/// What rendering and applying did in one pass.
#[derive(Default)]
pub struct Step {
    pub job: Option<Arc<Job>>,
    pub cron_job: Option<Arc<CronJob>>,
    /// What keeps the copy from starting.
    pub blocked: Option<Blocked>,
    /// The block is expected to clear by itself (retry with backoff).
    pub transient: bool,
}

impl Step {
    fn block(&mut self, blocked: Blocked, transient: bool) {
        self.blocked = Some(blocked);
        self.transient = transient;
    }
}

/// The API writes of one pass.
pub struct Applier<'a> {
    pub client: &'a Client,
    /// The image of the copying Jobs unless the EcrMirror sets its own.
    pub image: &'a str,
    pub events: &'a Events,
    pub ecr: &'a Ecr,
}

impl Applier<'_> {
    /// Creates this generation's one-off Job (after the repository, for a push).
    pub async fn ensure_job(
        &self,
        mirror: &EcrMirror,
        registry: &EcrRegistry,
        resolved: &Resolved,
        step: &mut Step,
    ) -> Result<()> {
        let desired = match mirror_job::render(mirror, registry, self.image) {
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
            Err((b, transient)) => step.block(b, transient),
        }
        Ok(())
    }

    /// Applies the CronJob when its rendered spec changed (or it is missing).
    pub async fn ensure_cron_job(
        &self,
        mirror: &EcrMirror,
        registry: &EcrRegistry,
        resolved: &Resolved,
        step: &mut Step,
    ) -> Result<()> {
        let desired = match mirror_job::render_cron_job(mirror, registry, self.image) {
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
            Err((b, transient)) => step.block(b, transient),
        }
        Ok(())
    }

    async fn announce(&self, mirror: &EcrMirror, what: String) {
        tracing::info!("{what} created");
        self.events
            .publish(
                &mirror.object_ref(&()),
                false,
                "Created",
                ACTION,
                &format!("{what} created"),
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
            && let Err(e) = self.ecr.ensure_repository(mirror, registry, resolved).await
        {
            tracing::warn!(error = %e, "repository not ready");
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

    /// Deletes a stale Job or CronJob; one already gone is fine, a failure is
    /// logged (the next pass tries again).
    pub async fn delete<K>(&self, ns: &str, name: &str)
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => tracing::info!(name, kind = K::kind(&()).as_ref(), "deleted (older spec)"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!(name, error = %e, "delete failed"),
        }
    }

    /// Writes the status only when it changed, then publishes the Events the
    /// change is worth ([`status::notices`]).
    pub async fn write_status(&self, mirror: &EcrMirror, new: EcrMirrorStatus) -> Result<()> {
        if mirror.status.as_ref() == Some(&new) {
            return Ok(());
        }
        let api: Api<EcrMirror> =
            Api::namespaced(self.client.clone(), &mirror.namespace().unwrap_or_default());
        crate::runtime::status::apply(&api, &mirror.name_any(), FIELD_MANAGER, &new).await?;
        let prev = mirror.status.clone().unwrap_or_default();
        let object = mirror.object_ref(&());
        for n in status::notices(&prev, &new) {
            self.events
                .publish(&object, n.warning, &n.reason, ACTION, &n.note)
                .await;
        }
        Ok(())
    }
}
