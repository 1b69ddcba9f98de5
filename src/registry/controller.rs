//! The controller: watches EcrRegistries, namespaces (metadata only), ServiceAccounts
//! and the credential Secrets in the operator's own namespace, and runs the
//! reconcile pipeline observe → plan → apply → status for each EcrRegistry.

use crate::aws::auth_token::{parse_refresh_before, refresh_at};
use crate::aws::docker_config::DockerConfig;
use crate::aws::identity::Identity;
use crate::aws::registry_hosts::registry_hosts;
use crate::crd::ecr_registry::EcrRegistry;
use crate::error::{Error, Result};
use crate::registry::desired_secret::{DesiredSecret, FIELD_MANAGER};
use crate::registry::namespace_selection::{NamespaceMatcher, ObservedNamespace};
use crate::registry::plan::{
    self, ADDED_PULL_SECRETS_ANNOTATION, Observed, ObservedServiceAccount,
};
use crate::registry::status::{self, StatusInput, SyncOutcome};
use crate::registry::token::TokenCache;
use crate::runtime::admin::Readiness;
use crate::runtime::backoff::Backoffs;
use crate::runtime::metrics::{Metrics, RefreshLabels, RegistryLabels};
use crate::runtime::watches::{cached, keep_all, wait_for_crd};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const FINALIZER: &str = "ecr-operator.io/cleanup";

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The operator's own namespace: where credential Secrets are read.
    pub operator_namespace: String,
    /// Only EcrRegistries matching this label selector are handled (sharding, tests).
    pub registry_selector: Option<String>,
    /// Name of this instance in Events.
    pub instance: String,
}

pub struct Context {
    client: Client,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    config: Config,
    tokens: TokenCache,
    registries: Store<EcrRegistry>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    service_accounts: Store<ServiceAccount>,
    credentials: Store<Secret>,
    /// Every cache has listed once.
    caches_ready: std::sync::atomic::AtomicBool,
    /// Fingerprint last written per registry and namespace: what makes the steady
    /// state quiet (no request when nothing changed).
    applied: Mutex<HashMap<String, BTreeMap<String, u64>>>,
    backoff: Backoffs,
    recorder: Recorder,
    /// Identities already warned about an implausible token expiry.
    warned_expiry: Mutex<HashSet<String>>,
}

/// Shared with the admin server.
pub struct Telemetry {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
}

/// Runs until `shutdown` completes. Fails at once when the CRD is not installed;
/// waits with backoff while the API server is unreachable.
pub async fn run(
    client: Client,
    config: Config,
    aws: aws_config::SdkConfig,
    telemetry: Telemetry,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let registries: Api<EcrRegistry> = Api::all(client.clone());
    wait_for_crd(&registries, Error::CrdMissing).await?;
    let mut registry_watch = watcher::Config::default();
    if let Some(sel) = &config.registry_selector {
        registry_watch = registry_watch.labels(sel);
    }
    let controller = Controller::new(registries, registry_watch);

    // Only labels and the deletion timestamp of namespaces are read.
    let (namespaces, ns_events, ns_listed) = cached(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default(),
        |ns| ns.metadata.annotations = None,
    );

    // Only imagePullSecrets and the operator's own annotation of ServiceAccounts.
    let (service_accounts, sa_events, sa_listed) = cached(
        Api::<ServiceAccount>::all(client.clone()),
        watcher::Config::default(),
        |sa| {
            sa.secrets = None;
            sa.metadata.labels = None;
            if let Some(a) = sa.metadata.annotations.as_mut() {
                a.retain(|k, _| k == ADDED_PULL_SECRETS_ANNOTATION);
            }
        },
    );

    // Credential Secrets live in the operator's own namespace only: cached there,
    // so a reconcile reads them without a request.
    let (credentials, credential_events, credentials_listed) = cached(
        Api::<Secret>::namespaced(client.clone(), &config.operator_namespace),
        watcher::Config::default(),
        keep_all,
    );

    let reporter = Reporter {
        controller: "ecr-operator".into(),
        instance: Some(config.instance.clone()),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        metrics: telemetry.metrics.clone(),
        readiness: telemetry.readiness,
        client,
        config,
        tokens: TokenCache::new(aws, telemetry.metrics),
        registries: controller.store(),
        namespaces,
        service_accounts,
        credentials,
        caches_ready: Default::default(),
        applied: Mutex::default(),
        backoff: Backoffs::default(),
        warned_expiry: Mutex::default(),
    });

    // Ready once every cache has listed and each EcrRegistry has had a first pass.
    let sync_ctx = ctx.clone();
    tokio::spawn(async move {
        let listed = [ns_listed, sa_listed, credentials_listed];
        while !listed
            .iter()
            .all(|l| l.load(std::sync::atomic::Ordering::SeqCst))
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The controller itself holds reconciles until the registry cache is ready;
        // bounded here, since that wait was seen to hang when awaited elsewhere.
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            sync_ctx.registries.wait_until_ready(),
        )
        .await;
        let names = sync_ctx
            .registries
            .state()
            .iter()
            .map(|r| r.name_any())
            .collect();
        // First the registries due for a first pass, then the gate: every pass
        // that gets through the gate counts.
        sync_ctx.readiness.caches_synced(names);
        sync_ctx
            .caches_ready
            .store(true, std::sync::atomic::Ordering::SeqCst);
        tracing::info!("caches synced");
    });

    let all = ctx.registries.clone();
    let by_sa = ctx.registries.clone();
    let by_secret = ctx.registries.clone();
    let operator_ns = ctx.config.operator_namespace.clone();
    controller
        .watches_stream(ns_events, move |_ns| {
            all.state()
                .iter()
                .map(|r| ObjectRef::from_obj(&**r))
                .collect::<Vec<_>>()
        })
        .watches_stream(sa_events, move |sa| {
            by_sa
                .state()
                .iter()
                .filter(|r| r.spec.service_accounts.contains(&sa.name_any()))
                .map(|r| ObjectRef::from_obj(&**r))
                .collect::<Vec<_>>()
        })
        .watches_stream(credential_events, move |secret| {
            let name = secret.name_any();
            let in_operator_ns = secret.namespace().as_deref() == Some(operator_ns.as_str());
            by_secret
                .state()
                .iter()
                .filter(|r| {
                    in_operator_ns
                        && r.spec
                            .auth
                            .as_ref()
                            .and_then(|a| a.secret_ref.as_ref())
                            .map(|s| &s.name)
                            == Some(&name)
                })
                .map(|r| ObjectRef::from_obj(&**r))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile failed");
            }
        })
        .await;
    Ok(())
}

async fn reconcile(registry: Arc<EcrRegistry>, ctx: Arc<Context>) -> Result<Action> {
    // Plan only on complete caches: a half-listed namespace cache would look like
    // namespaces that are gone. (Checked, not awaited: awaiting the stores' first
    // list inside a reconcile was seen to never wake up.)
    if !ctx.caches_ready.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let name = registry.name_any();
    let timer = std::time::Instant::now();
    let api: Api<EcrRegistry> = Api::all(ctx.client.clone());
    let result = finalizer(&api, FINALIZER, registry, |event| async {
        match event {
            Finalizer::Apply(r) => ctx.sync(&r, false).await,
            Finalizer::Cleanup(r) => ctx.sync(&r, true).await,
        }
    })
    .await
    .or_else(|e| match e {
        // A late pass after the object is gone: nothing left to do.
        kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(s)) if s.code == 404 => {
            Ok(Action::await_change())
        }
        e => Err(Error::Finalizer(Box::new(e))),
    });
    ctx.metrics
        .reconcile_duration
        .observe(timer.elapsed().as_secs_f64());
    ctx.readiness.reconciled(&name);
    result
}

fn error_policy(registry: Arc<EcrRegistry>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(registry = registry.name_any(), reason = error.reason(), error = %error, "reconcile failed");
    Action::requeue(ctx.backoff.next(&registry.name_any()))
}

impl Context {
    async fn sync(&self, registry: &EcrRegistry, deleting: bool) -> Result<Action> {
        let name = registry.name_any();
        let namespaces = self.observed_namespaces();
        let service_accounts = self.observed_service_accounts();

        // Observe the token (not while deleting: cleanup needs no AWS).
        let refresh_before =
            parse_refresh_before(&registry.spec.refresh_before).map_err(Error::InvalidSpec);
        let mut token_error = None;
        let mut token = None;
        let mut next_refresh = None;
        if !deleting {
            match &refresh_before {
                Err(e) => token_error = Some(Error::InvalidSpec(e.to_string())),
                Ok(rb) => match self.identity(registry) {
                    Err(e) => token_error = Some(e),
                    Ok(identity) => match self.tokens.get(&identity, *rb).await {
                        Ok(t) => {
                            if t.fetched_now {
                                self.count_refresh(&name, "success");
                                tracing::info!(registry = name, region = identity.region, expires_at = %t.token.expires_at, "token fetched");
                            }
                            if t.token.expiry_adjusted
                                && self
                                    .warned_expiry
                                    .lock()
                                    .expect("lock")
                                    .insert(identity.cache_key())
                            {
                                tracing::warn!(
                                    registry = name,
                                    "AWS reported an expiry in the past or more than 12h away (clock skew?); treating the token as valid for 12h from now"
                                );
                            }
                            let at = refresh_at(t.token.fetched_at, t.token.expires_at, *rb);
                            next_refresh = Some(at + jitter(&name, t.token.fetched_at, at));
                            token = Some(t.token);
                        }
                        Err(e) => {
                            self.count_refresh(&name, e.reason());
                            token = self.tokens.last(&identity).await;
                            token_error = Some(e);
                        }
                    },
                },
            }
        }

        let accounts = match (
            &registry.spec.registry_ids,
            token.as_ref().and_then(|t| t.account.clone()),
        ) {
            (ids, _) if !ids.is_empty() => ids.clone(),
            (_, Some(account)) => vec![account],
            (_, None) => vec![],
        };
        if token.is_some() && accounts.is_empty() && token_error.is_none() {
            token_error = Some(Error::InvalidSpec(
                "spec.registryIds: the account of the credentials is unknown; list the registry account IDs".into(),
            ));
        }
        let hosts = registry_hosts(&accounts, &registry.spec.region, &registry.spec.endpoints);
        let desired = match (&token, &token_error) {
            (Some(t), None) => Some(DesiredSecret::new(
                registry,
                DockerConfig::for_token(t, &hosts).to_json(),
                t.expires_at,
            )),
            _ => None,
        };

        let claims = self.claims_by_others(&namespaces);
        let no_claims = BTreeMap::new();
        let applied = self
            .applied
            .lock()
            .expect("lock")
            .get(&name)
            .cloned()
            .unwrap_or_default();
        // The cached object may predate our last status write: the namespaces this
        // process wrote to are managed whatever that status says.
        let observed = registry;
        let mut registry = registry.clone();
        let status = registry.status.get_or_insert_default();
        status.managed_namespaces = status
            .managed_namespaces
            .iter()
            .chain(applied.keys())
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let registry = &registry;
        let plan = plan::plan(&Observed {
            registry,
            namespaces: &namespaces,
            service_accounts: &service_accounts,
            claimed_by_others: claims.get(&name).unwrap_or(&no_claims),
            desired: desired.as_ref(),
            applied: &applied,
            deleting,
        })
        .map_err(Error::InvalidSpec)?;

        let outcome =
            crate::registry::apply::apply(&self.client, &name, &plan, desired.as_ref()).await;
        self.remember(&name, &plan, &outcome, desired.as_ref(), deleting);
        if deleting {
            return match outcome.failures.first() {
                None => Ok(Action::await_change()),
                Some(f) => Err(Error::InvalidSpec(format!(
                    "cleanup incomplete in {}: {}",
                    f.namespace, f.message
                ))),
            };
        }

        let new_status = status::compute(&StatusInput {
            registry,
            plan: &plan,
            outcome: &outcome,
            token: token.as_ref(),
            hosts: &hosts,
            next_refresh,
            error: token_error.as_ref(),
            now: jiff::Timestamp::now(),
        });
        self.record_gauges(&name, &new_status);
        // Compared with what the API server last told us, not the adjusted copy.
        self.write_status(observed, new_status).await?;

        // Failed namespaces are retried with backoff (capped at 5 minutes): Secrets are
        // not watched, so a conflict the user resolves is seen at the next try.
        let transient = token_error.as_ref().is_some_and(Error::is_transient)
            || !outcome.failures.is_empty()
            || !plan.conflicts.is_empty();
        if transient {
            return Ok(Action::requeue(self.backoff.next(&name)));
        }
        self.backoff.reset(&name);
        Ok(match (next_refresh, token_error) {
            (Some(at), None) => {
                let wait = at
                    .duration_since(jiff::Timestamp::now())
                    .max(jiff::SignedDuration::from_secs(1));
                Action::requeue(Duration::try_from(wait).unwrap_or(Duration::from_secs(1)))
            }
            // Configuration errors wait for a change of spec or Secret, with a slow retry.
            _ => Action::requeue(Duration::from_secs(300)),
        })
    }

    fn identity(&self, registry: &EcrRegistry) -> Result<Identity> {
        let ns = &self.config.operator_namespace;
        let secret = registry
            .spec
            .auth
            .as_ref()
            .and_then(|a| a.secret_ref.as_ref())
            .and_then(|r| self.credentials.get(&ObjectRef::new(&r.name).within(ns)));
        Identity::for_registry_from(registry, ns, secret.as_deref())
    }

    fn observed_namespaces(&self) -> Vec<ObservedNamespace> {
        self.namespaces
            .state()
            .iter()
            .map(|ns| ObservedNamespace {
                name: ns.name_any(),
                labels: ns.labels().clone(),
                terminating: ns.meta().deletion_timestamp.is_some(),
            })
            .collect()
    }

    fn observed_service_accounts(&self) -> Vec<ObservedServiceAccount> {
        self.service_accounts
            .state()
            .iter()
            .map(|sa| ObservedServiceAccount {
                namespace: sa.namespace().unwrap_or_default(),
                name: sa.name_any(),
                resource_version: sa.resource_version().unwrap_or_default(),
                image_pull_secrets: sa
                    .image_pull_secrets
                    .iter()
                    .flatten()
                    .map(|r| r.name.clone())
                    .collect(),
                added_by_operator: sa
                    .annotations()
                    .get(ADDED_PULL_SECRETS_ANNOTATION)
                    .map(|v| {
                        v.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    fn claims_by_others(
        &self,
        namespaces: &[ObservedNamespace],
    ) -> BTreeMap<String, BTreeMap<String, String>> {
        let registries = self.registries.state();
        let selections: Vec<(&EcrRegistry, Vec<String>)> = registries
            .iter()
            .filter(|r| r.meta().deletion_timestamp.is_none())
            .filter_map(|r| {
                let m = NamespaceMatcher::new(&r.spec.namespaces).ok()?;
                let selected = namespaces
                    .iter()
                    .filter(|ns| m.matches(ns))
                    .map(|ns| ns.name.clone())
                    .collect();
                Some((&**r, selected))
            })
            .collect();
        plan::claims_by_others(&selections)
    }

    fn remember(
        &self,
        name: &str,
        plan: &plan::Plan,
        outcome: &SyncOutcome,
        desired: Option<&DesiredSecret>,
        deleting: bool,
    ) {
        let mut applied = self.applied.lock().expect("lock");
        if deleting {
            applied.remove(name);
            return;
        }
        let entry = applied.entry(name.to_string()).or_default();
        for ns in outcome.removed.iter().chain(&plan.forget) {
            entry.remove(ns);
        }
        if let Some(d) = desired {
            for ns in &outcome.written {
                entry.insert(ns.clone(), d.fingerprint);
            }
        }
    }

    /// Writes the status only when it changed, and records an Event when Ready changes.
    async fn write_status(
        &self,
        registry: &EcrRegistry,
        new: crate::crd::ecr_registry::EcrRegistryStatus,
    ) -> Result<()> {
        if registry.status.as_ref() == Some(&new) {
            return Ok(());
        }
        let before =
            status::ready(registry.status.as_ref()).map(|c| (c.status.clone(), c.reason.clone()));
        let after = status::ready(Some(&new)).cloned();
        let api: Api<EcrRegistry> = Api::all(self.client.clone());
        // Server-side apply: fields left out of the new status (an emptied failures
        // list, say) are removed, which a merge patch would keep.
        api.patch_status(
            &registry.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "ecr-operator.io/v1alpha1",
                "kind": "EcrRegistry",
                "status": new,
            })),
        )
        .await?;
        if let Some(c) = after
            && before != Some((c.status.clone(), c.reason.clone()))
        {
            let event = Event {
                type_: if c.status == "True" {
                    EventType::Normal
                } else {
                    EventType::Warning
                },
                reason: c.reason.clone(),
                note: Some(c.message.chars().take(1000).collect()),
                action: "Sync".into(),
                secondary: None,
            };
            if let Err(e) = self
                .recorder
                .publish(&event, &registry.object_ref(&()))
                .await
            {
                tracing::warn!(registry = registry.name_any(), error = %e, "event not recorded");
            }
        }
        Ok(())
    }

    fn count_refresh(&self, registry: &str, result: &str) {
        self.metrics
            .refreshes
            .get_or_create(&RefreshLabels {
                registry: registry.into(),
                result: result.into(),
            })
            .inc();
    }

    fn record_gauges(&self, registry: &str, status: &crate::crd::ecr_registry::EcrRegistryStatus) {
        let labels = RegistryLabels {
            registry: registry.into(),
        };
        if let Some(t) = &status.expires_at {
            self.metrics
                .token_expiry
                .get_or_create(&labels)
                .set(t.0.as_second() as f64);
        }
        if let Some(n) = &status.namespaces {
            self.metrics
                .namespaces_selected
                .get_or_create(&labels)
                .set(n.selected.into());
            self.metrics
                .namespaces_synced
                .get_or_create(&labels)
                .set(n.synced.into());
        }
    }
}

/// Spreads the refreshes of registries that share a token over up to a minute (at
/// most a tenth of the wait). Derived from the registry and the token, not random,
/// so an unchanged state always yields the same status.
fn jitter(
    registry: &str,
    fetched_at: jiff::Timestamp,
    refresh_at: jiff::Timestamp,
) -> jiff::SignedDuration {
    let window = (refresh_at.duration_since(fetched_at) / 10)
        .min(jiff::SignedDuration::from_secs(60))
        .as_millis()
        .max(1);
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&(registry, fetched_at.as_millisecond()), &mut h);
    jiff::SignedDuration::from_millis((std::hash::Hasher::finish(&h) % window as u64) as i64)
}
