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
use crate::mirror::{plan, status};
use crate::runtime::events::Events;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use std::sync::Arc;

/// The action of every Event about an EcrMirror.
const ACTION: &str = "Mirror";

/// The reason when the name of an EcrMirror's Job or CronJob is taken.
pub const NAME_CONFLICT: &str = "NameConflict";

fn name_conflict<K: Resource<DynamicType = ()>>(name: &str, ns: &str, holder: &str) -> Blocked {
    let kind = K::kind(&());
    Blocked {
        reason: NAME_CONFLICT,
        message: format!(
            "{kind} {name} in namespace {ns} exists and is not this EcrMirror's ({holder}): the operator does not write over it; delete or rename that {kind}, or rename the EcrMirror"
        ),
        spec_error: false,
    }
}

/// Who holds a name that a create found taken.
enum Holder {
    /// This EcrMirror: the cache had not shown it yet.
    ThisMirror,
    /// Nobody any more: deleted since.
    Gone,
    /// Someone else, described for the status.
    Other(String),
}

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
            .ensure_and_apply(mirror, registry, resolved, desired, false)
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
        let ours = step.cron_job.is_some();
        match self
            .ensure_and_apply(mirror, registry, resolved, desired, ours)
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

    /// Suspends the EcrMirror's CronJob while the EcrMirror is blocked, with a
    /// merge patch (an apply of only these fields would drop the rest). The
    /// spec-hash annotation changes too, so the first pass that resolves again
    /// renders and applies the CronJob in full.
    pub async fn hold_cron_job(
        &self,
        mirror: &EcrMirror,
        blocked: &std::result::Result<Resolved, Blocked>,
    ) -> Result<Arc<CronJob>> {
        let name = mirror_job::cron_job_name(mirror);
        let ns = mirror.namespace().unwrap_or_default();
        let api: Api<CronJob> = Api::namespaced(self.client.clone(), &ns);
        let patch = serde_json::json!({
            "metadata": {"annotations": {SPEC_HASH_ANNOTATION: "held"}},
            "spec": {"suspend": true},
        });
        let held = api
            .patch(
                &name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &Patch::Merge(&patch),
            )
            .await
            .map_err(Error::Kube)?;
        let why = blocked.as_ref().err().map_or("", |b| b.reason);
        tracing::info!(
            cron_job = name,
            reason = why,
            "CronJob suspended while blocked"
        );
        self.events
            .publish(
                &mirror.object_ref(&()),
                true,
                "Suspended",
                ACTION,
                &format!("CronJob {name} suspended until {why} is resolved"),
            )
            .await;
        Ok(Arc::new(held))
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

    /// Makes sure the repository exists (push), then writes the object: applied
    /// when it is `ours` (this EcrMirror controls the one in the cache), created
    /// otherwise. The inner error is a problem to report in the status (and
    /// whether it is transient); the outer one an API failure to retry with backoff.
    async fn ensure_and_apply<K>(
        &self,
        mirror: &EcrMirror,
        registry: &EcrRegistry,
        resolved: &Resolved,
        desired: K,
        ours: bool,
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
        let written = if ours {
            Self::force_apply(&api, &name, &desired).await
        } else {
            // Created, never applied: an object of that name that is not this
            // EcrMirror's (a user's CronJob, a Job left by a deleted EcrMirror of
            // the same name) is reported, never written over.
            match api.create(&PostParams::default(), &desired).await {
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    match self.holder(&api, &name, mirror).await? {
                        Holder::ThisMirror => Self::force_apply(&api, &name, &desired).await,
                        // Deleted in between: created on the next try.
                        Holder::Gone => {
                            let why = "an object deleted since";
                            return Ok(Err((name_conflict::<K>(&name, &ns, why), true)));
                        }
                        Holder::Other(holder) => {
                            return Ok(Err((name_conflict::<K>(&name, &ns, &holder), false)));
                        }
                    }
                }
                other => other,
            }
        };
        match written {
            Ok(applied) => Ok(Ok(applied)),
            Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => Ok(Err((
                Blocked {
                    reason: "InvalidSpec",
                    message: format!(
                        "{}the API server refused {}: {}",
                        mirror_job::refused_field(&s.message)
                            .map(|f| format!("{f}: "))
                            .unwrap_or_default(),
                        name,
                        s.message
                    ),
                    spec_error: true,
                },
                false,
            ))),
            Err(e) => Err(Error::Kube(e)),
        }
    }

    async fn force_apply<K>(api: &Api<K>, name: &str, desired: &K) -> kube::Result<K>
    where
        K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(desired),
        )
        .await
    }

    /// Who holds the name an EcrMirror wanted. By a list of that one name: the
    /// operator has no `get` on Jobs and CronJobs.
    async fn holder<K>(&self, api: &Api<K>, name: &str, mirror: &EcrMirror) -> Result<Holder>
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let found = api
            .list_metadata(&ListParams::default().fields(&format!("metadata.name={name}")))
            .await
            .map_err(Error::Kube)?;
        let Some(existing) = found.items.first() else {
            return Ok(Holder::Gone);
        };
        if plan::is_controlled_by(existing, mirror.uid().as_deref()) {
            return Ok(Holder::ThisMirror);
        }
        Ok(Holder::Other(
            match existing
                .owner_references()
                .iter()
                .find(|o| o.controller == Some(true))
            {
                Some(o) if o.kind == "EcrMirror" => format!(
                    "it belongs to an earlier EcrMirror {} (uid {})",
                    o.name, o.uid
                ),
                Some(o) => format!("it belongs to {} {}", o.kind, o.name),
                None => "it belongs to no EcrMirror".into(),
            },
        ))
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
