//! The EcrRegistry controller: watches EcrRegistries, namespaces (metadata only),
//! ServiceAccounts and the credential Secrets in the operator's own namespace, and
//! runs one pass of named steps for each EcrRegistry:
//! token → secret → observe and plan → apply → status → requeue.

use crate::aws::auth_token::{AuthToken, parse_refresh_before};
use crate::aws::docker_config::DockerConfig;
use crate::aws::identity::Identity;
use crate::aws::rate_limit::TokenRate;
use crate::crd::FIELD_MANAGER;
use crate::crd::ecr_registry::{EcrRegistry, EcrRegistryStatus, NamespaceFailure, Unannotated};
use crate::error::{Error, Result};
use crate::registry::apply::apply;
use crate::registry::desired_secret::{self, Desired, DesiredSecret, TenantSecret};
use crate::registry::metrics::RegistryMetrics;
use crate::registry::namespace_selection::{NamespaceMatcher, ObservedNamespace};
use crate::registry::observe;
use crate::registry::plan::{self, Observed, ObservedServiceAccount, Plan};
use crate::registry::record;
use crate::registry::regions::{self, RegionToken};
use crate::registry::requeue::{self, Pass, Requeue};
use crate::registry::resync::{self, Ledger, Written};
use crate::registry::status::{self, StatusInput, SyncOutcome};
use crate::registry::tenant_tokens::{Assume, TenantTokens};
use crate::registry::tenants::{self, Assignment, Mode};
use crate::registry::token::TokenCache;
use crate::runtime::admin::Readiness;
use crate::runtime::backoff::Backoffs;
use crate::runtime::events::Events;
use crate::runtime::metrics::Metrics;
use crate::runtime::watches::{Projection, cached, keep_all, projected, triggers, wait_for_crd};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Secret, ServiceAccount};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

pub const FINALIZER: &str = "ecr-operator.io/cleanup";
/// The controller's name in metrics.
const CONTROLLER: &str = "EcrRegistry";
/// EcrRegistries reconciled at once.
const RECONCILE_CONCURRENCY: u16 = 4;

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The operator's own namespace: where credential Secrets are read.
    pub operator_namespace: String,
    /// Only EcrRegistries matching this label selector are handled (sharding, tests).
    pub registry_selector: Option<String>,
    /// Name of this instance in Events.
    pub instance: String,
    /// Every managed secret is re-asserted at least this often (drift repair).
    pub resync_interval: Duration,
    /// Names this cluster in the external ID of per-namespace roles
    /// ("<cluster-id>/<namespace>").
    pub cluster_id: String,
    /// GetAuthorizationToken calls per second and (account, region), at most.
    pub token_rate: std::num::NonZeroU32,
}

pub struct Context {
    client: Client,
    metrics: Arc<Metrics>,
    registry_metrics: RegistryMetrics,
    readiness: Arc<Readiness>,
    config: Config,
    tokens: TokenCache,
    tenants: TenantTokens,
    /// The reason last published in each tenant namespace's Event, by (registry,
    /// namespace): an Event is published when it changes.
    tenant_events: Mutex<HashMap<(String, String), String>>,
    registries: Store<EcrRegistry>,
    namespaces: Projection<Arc<ObservedNamespace>>,
    service_accounts: Projection<ObservedServiceAccount>,
    /// The ServiceAccount names the registries list (what the cache keeps).
    listed_service_accounts: watch::Sender<BTreeSet<String>>,
    credentials: Store<Secret>,
    /// Every cache has listed once.
    caches_ready: AtomicBool,
    /// What this process wrote per registry, by namespace UID: what makes the
    /// steady state quiet, and when each secret is re-asserted.
    written: Mutex<HashMap<String, Ledger>>,
    /// Each registry's record of where its secrets live, as last read or written
    /// (loaded at its first pass), by registry name.
    records: Records,
    backoff: Backoffs,
    events: Events,
}

type Records = Arc<Mutex<HashMap<String, Record>>>;

/// Roles of one registry assumed at once.
const TENANT_ROLE_CONCURRENCY: usize = 16;

/// What spec.auth.namespaceRole or webIdentity gives a pass.
#[derive(Default)]
struct TenantStep {
    secrets: BTreeMap<String, TenantSecret>,
    /// The first-expiring token written.
    earliest: Option<AuthToken>,
    next_refresh: Option<jiff::Timestamp>,
    hosts: Vec<String>,
}

/// What a registry's record ConfigMaps hold.
struct Record {
    /// The registry object's UID (a registry created again starts afresh).
    uid: String,
    namespaces: BTreeSet<String>,
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
    // Bounded: each pass already has up to apply::CONCURRENCY writes in flight,
    // and a burst of events over many registries must not multiply that.
    let (registry_store, registry_events, _) = cached(registries.clone(), registry_watch, keep_all);
    let controller =
        Controller::for_stream(triggers(registry_events, "EcrRegistry"), registry_store)
            .with_config(
                kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY),
            );

    // Of namespaces (a metadata-only watch) and ServiceAccounts, only what planning
    // reads is kept: with 10,000 of each, whole objects were most of the memory.
    let (namespaces, ns_events, ns_listed) = projected(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default(),
        Box::new(observe::namespace),
        None::<watch::Receiver<()>>,
    );
    // ServiceAccounts: those the registries list by name (or that carry the
    // operator's entries). Seeded from one list of the registries, so that the
    // first list of ServiceAccounts already keeps the right ones; a registry
    // listing a new name starts the watch afresh (see `Context::list_service_accounts`).
    let listed = observe::listed_service_accounts(
        &registries_now(&client, config.registry_selector.as_deref()).await,
    );
    let (listed_sa_tx, listed_sa) = watch::channel(listed);
    let keep = listed_sa.clone();
    let (service_accounts, sa_events, sa_listed) = projected(
        Api::<ServiceAccount>::all(client.clone()),
        watcher::Config::default(),
        Box::new(move |sa| observe::service_account(sa, &keep.borrow())),
        Some(listed_sa),
    );
    // Credential Secrets live in the operator's own namespace only: cached there,
    // so a reconcile reads them without a request.
    let (credentials, credential_events, credentials_listed) = cached(
        Api::<Secret>::namespaced(client.clone(), &config.operator_namespace),
        watcher::Config::default(),
        keep_all,
    );

    // One limit for every registry and tenant of the process.
    let rate = Arc::new(TokenRate::new(config.token_rate));
    let ctx = Arc::new(Context {
        events: Events::new(client.clone(), &config.instance),
        metrics: telemetry.metrics.clone(),
        registry_metrics: RegistryMetrics::new(&telemetry.metrics),
        readiness: telemetry.readiness,
        client,
        config,
        tokens: TokenCache::new(aws.clone(), telemetry.metrics.clone(), rate.clone()),
        tenants: TenantTokens::new(aws, telemetry.metrics, rate),
        tenant_events: Mutex::default(),
        registries: controller.store(),
        namespaces,
        service_accounts,
        listed_service_accounts: listed_sa_tx,
        credentials,
        caches_ready: AtomicBool::default(),
        written: Mutex::default(),
        records: Records::default(),
        backoff: Backoffs::default(),
    });
    tokio::spawn(open_gate(
        ctx.clone(),
        [ns_listed, sa_listed, credentials_listed],
    ));

    let all = ctx.registries.clone();
    let records = ctx.records.clone();
    let by_sa = ctx.registries.clone();
    let by_secret = ctx.registries.clone();
    let operator_ns = ctx.config.operator_namespace.clone();
    controller
        .reconcile_on(ns_events.flat_map(move |ns| stream::iter(concerned_by(&all, &records, &ns))))
        .reconcile_on(
            sa_events.flat_map(move |sa| stream::iter(listing_service_account(&by_sa, &sa))),
        )
        .watches_stream(triggers(credential_events, "Secret"), move |secret| {
            using_credentials(&by_secret, &operator_ns, &secret)
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

/// The EcrRegistries there are now (none when they cannot be listed: the first
/// pass corrects what depends on them).
async fn registries_now(client: &Client, selector: Option<&str>) -> Vec<EcrRegistry> {
    let mut params = kube::api::ListParams::default();
    if let Some(sel) = selector {
        params = params.labels(sel);
    }
    match Api::<EcrRegistry>::all(client.clone()).list(&params).await {
        Ok(list) => list.items,
        Err(e) => {
            tracing::debug!(error = %e, "could not list EcrRegistries");
            Vec::new()
        }
    }
}

/// Ready once every cache has listed and each EcrRegistry has had a first pass.
async fn open_gate(ctx: Arc<Context>, listed: [Arc<AtomicBool>; 3]) {
    while !listed.iter().all(|l| l.load(Ordering::SeqCst)) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The controller itself holds reconciles until the registry cache is ready;
    // bounded here, since that wait was seen to hang when awaited elsewhere.
    let _ = tokio::time::timeout(Duration::from_secs(5), ctx.registries.wait_until_ready()).await;
    let names = ctx
        .registries
        .state()
        .iter()
        .map(|r| r.name_any())
        .collect();
    // First the registries due for a first pass, then the gate: every pass that
    // gets through the gate counts.
    ctx.readiness.caches_synced(names);
    ctx.caches_ready.store(true, Ordering::SeqCst);
    tracing::info!("caches synced");
}

/// The registries a namespace event concerns: those that select the namespace,
/// and those that manage a secret in it (it stopped matching, or it is gone). Not
/// every registry: with many registries and namespaces that would be most of the
/// work.
fn concerned_by(
    registries: &Store<EcrRegistry>,
    records: &Records,
    ns: &ObservedNamespace,
) -> Vec<ObjectRef<EcrRegistry>> {
    let records = records.lock().expect("lock");
    registries
        .state()
        .iter()
        .filter(|r| {
            let selects = NamespaceMatcher::new(&r.spec.namespaces).map_or(true, |m| m.matches(ns));
            // Not loaded yet: its first pass is still to come anyway.
            let manages = records
                .get(&r.name_any())
                .is_none_or(|rec| rec.namespaces.contains(&ns.name))
                || r.status
                    .as_ref()
                    .is_some_and(|s| s.managed_namespaces.contains(&ns.name));
            selects || manages
        })
        .map(|r| ObjectRef::from_obj(&**r))
        .collect()
}

/// The registries listing the ServiceAccount's name.
fn listing_service_account(
    registries: &Store<EcrRegistry>,
    sa: &ObservedServiceAccount,
) -> Vec<ObjectRef<EcrRegistry>> {
    registries
        .state()
        .iter()
        .filter(|r| {
            r.spec.service_accounts.contains(&sa.name)
                || observe::web_identity_service_account(r) == Some(&sa.name)
        })
        .map(|r| ObjectRef::from_obj(&**r))
        .collect()
}

fn using_credentials(
    registries: &Store<EcrRegistry>,
    operator_namespace: &str,
    secret: &Secret,
) -> Vec<ObjectRef<EcrRegistry>> {
    if secret.namespace().as_deref() != Some(operator_namespace) {
        return vec![];
    }
    let name = secret.name_any();
    registries
        .state()
        .iter()
        .filter(|r| {
            r.spec
                .auth
                .as_ref()
                .and_then(|a| a.secret_ref.as_ref())
                .is_some_and(|s| s.name == name)
        })
        .map(|r| ObjectRef::from_obj(&**r))
        .collect()
}

async fn reconcile(registry: Arc<EcrRegistry>, ctx: Arc<Context>) -> Result<Action> {
    // Plan only on complete caches: a half-listed namespace cache would look like
    // namespaces that are gone. (Checked, not awaited: awaiting the stores' first
    // list inside a reconcile was seen to never wake up.)
    if !ctx.caches_ready.load(Ordering::SeqCst) {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let name = registry.name_any();
    let span = tracing::info_span!("reconcile", registry = %name);
    let timer = std::time::Instant::now();
    let api: Api<EcrRegistry> = Api::all(ctx.client.clone());
    let result = finalizer(&api, FINALIZER, registry, |event| async {
        match event {
            Finalizer::Apply(r) => ctx.sync(&r, false).await,
            Finalizer::Cleanup(r) => ctx.sync(&r, true).await,
        }
    })
    .instrument(span)
    .await
    .or_else(|e| match e {
        // A late pass after the object is gone: nothing left to do.
        kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(s)) if s.code == 404 => {
            Ok(Action::await_change())
        }
        e => Err(Error::Finalizer(Box::new(e))),
    });
    ctx.metrics
        .reconciled(CONTROLLER, timer.elapsed().as_secs_f64());
    ctx.readiness.reconciled(&name);
    result
}

fn error_policy(registry: Arc<EcrRegistry>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(registry = registry.name_any(), reason = error.reason(), error = %error, "reconcile failed");
    ctx.metrics.reconcile_failed(CONTROLLER, error.reason());
    Action::requeue(ctx.backoff.next(&registry.name_any()))
}

impl Context {
    /// One pass; `deleting` undoes everything instead (the finalizer's cleanup).
    async fn sync(&self, registry: &EcrRegistry, deleting: bool) -> Result<Action> {
        self.list_service_accounts();
        let name = registry.name_any();
        let now = jiff::Timestamp::now();
        let managed = self.managed(registry).await?;
        // Under namespaceRole with NoSecret, and under webIdentity, the registry's
        // own identity serves no namespace and is not called.
        let own_identity_serves = match tenants::mode(&registry.spec) {
            None => true,
            Some(Mode::NamespaceRole(n)) => n.unannotated == Unannotated::RegistryIdentity,
            Some(Mode::WebIdentity(_)) => false,
        };
        let mut tokens = match own_identity_serves {
            true => self.token_steps(registry, deleting).await,
            false => Vec::new(),
        };
        self.recover_tokens(registry, &managed, &mut tokens, now)
            .await;
        let token_error_transient = tokens
            .iter()
            .any(|t| t.step.error.as_ref().is_some_and(Error::is_transient));
        let mut next_refresh = tokens.iter().filter_map(|t| t.step.next_refresh).min();
        let mut secret = desired_secret::for_regions(registry, tokens, now);
        let tenant = self.tenant_step(registry, &managed, deleting, now).await;
        let mut hosts = secret.hosts.clone();
        let mut token = secret.token.clone();
        if let Some(t) = &tenant {
            next_refresh = next_refresh.into_iter().chain(t.next_refresh).min();
            hosts.extend(t.hosts.iter().cloned());
            hosts.sort();
            hosts.dedup();
            token = token
                .into_iter()
                .chain(t.earliest.clone())
                .min_by_key(|t| t.expires_at);
        }
        let mut desired = Desired {
            shared: secret.desired.take(),
            tenants: tenant.map(|t| t.secrets),
        };
        let (plan, uids) = match self.plan(registry, &managed, &desired, deleting, now) {
            Ok(planned) => planned,
            // A spec the CRD's rules let through: reported, and nothing is touched.
            Err(e) => {
                secret.error = Some(e);
                desired = Desired::default();
                Default::default()
            }
        };
        self.publish_tenant_events(registry, &desired).await;
        let outcome = apply(&self.client, &name, &plan, &desired).await;
        let next_resync = self.remember(&name, &plan, &outcome, &desired, &uids, deleting);
        if deleting {
            self.registry_metrics.forget(&name);
            self.tenants.forget(&name);
            self.tenant_events
                .lock()
                .expect("lock")
                .retain(|(r, _), _| r != &name);
            self.records.lock().expect("lock").remove(&name);
            return cleanup_result(&outcome);
        }

        let next = record::next(&managed, &plan, &outcome);
        let recorded = self.write_record(registry, &next).await;
        let mut new_status = status::compute(&StatusInput {
            registry,
            managed: &next,
            plan: &plan,
            outcome: &outcome,
            token: token.as_ref(),
            serving: desired.serving(),
            hosts: &hosts,
            regions: &secret.regions,
            next_refresh,
            error: secret.error.as_ref(),
            now,
        });
        // Where the record could not be written, the status keeps the list (as
        // release 0.1 did) so that nothing is lost; normally it holds none.
        if !recorded {
            new_status.managed_namespaces = next.into_iter().collect();
        }
        self.registry_metrics.record(&name, &new_status);
        // Compared with what the API server last told us.
        self.write_status(registry, new_status).await?;

        let pass = Pass {
            transient_error: token_error_transient,
            lasting_error: secret.error.is_some() && !token_error_transient,
            namespace_failures: !outcome.failures.is_empty() || !plan.conflicts.is_empty(),
            next_refresh,
            next_resync,
            now: jiff::Timestamp::now(),
        };
        Ok(match requeue::after(&pass) {
            Requeue::Backoff { at_latest } => {
                let backoff = self.backoff.next(&name);
                Action::requeue(at_latest.map_or(backoff, |at| backoff.min(at)))
            }
            Requeue::After(wait) => {
                self.backoff.reset(&name);
                Action::requeue(wait)
            }
        })
    }

    /// Keeps the ServiceAccount cache to the names the registries list. A new name
    /// starts the watch afresh (the cache did not keep those); a name dropped only
    /// stops the cache from keeping more of them.
    fn list_service_accounts(&self) {
        let listed = observe::listed_service_accounts(self.registries.state().iter().map(|r| &**r));
        self.listed_service_accounts.send_if_modified(|current| {
            let widened = !listed.is_subset(current);
            *current = listed;
            widened
        });
    }

    /// The token step of every region, concurrently (none while deleting:
    /// cleanup needs no AWS).
    async fn token_steps(&self, registry: &EcrRegistry, deleting: bool) -> Vec<RegionToken> {
        if deleting {
            return Vec::new();
        }
        let name = registry.name_any();
        let checked = regions::check(&registry.spec);
        let steps = regions::names(&registry.spec).into_iter().map(|region| {
            let identity = match &checked {
                Ok(()) => self
                    .identity(registry)
                    .map(|i| regions::identity(&i, &region)),
                Err(e) => Err(Error::InvalidSpec(e.clone())),
            };
            let name = &name;
            async move {
                let step = self
                    .tokens
                    .step(name, &registry.spec.refresh_before, identity)
                    .await;
                RegionToken { name: region, step }
            }
        });
        let steps = futures::future::join_all(steps).await;
        for t in &steps {
            if let Some(result) = t.step.refresh_result {
                self.registry_metrics.count_refresh(&name, result);
            }
        }
        steps
    }

    /// A region whose refresh failed with nothing cached (the operator restarted
    /// during the outage) takes back its still-valid token from a secret the
    /// registry wrote, so that writing the other regions' fresh tokens does not
    /// drop its entry. One request, once: the token is cached from then on.
    async fn recover_tokens(
        &self,
        registry: &EcrRegistry,
        managed: &BTreeSet<String>,
        tokens: &mut [RegionToken],
        now: jiff::Timestamp,
    ) {
        let prev = registry.status.as_ref().map(|s| &s.regions);
        let wanted: Vec<usize> = (0..tokens.len())
            .filter(|&i| {
                let t = &tokens[i];
                t.step.token.is_none()
                    && t.step
                        .error
                        .as_ref()
                        .is_some_and(|e| !matches!(e, Error::InvalidSpec(_)))
                    && prev.is_some_and(|p| {
                        p.iter().any(|r| {
                            r.name == t.name && r.expires_at.as_ref().is_some_and(|e| e.0 > now)
                        })
                    })
            })
            .collect();
        let Some(ns) = managed.iter().next().filter(|_| !wanted.is_empty()) else {
            return;
        };
        let name = registry.secret_name();
        // The operator may not get Secrets (least privilege); an empty patch of one
        // it manages answers its content without changing it (the admission fence
        // refuses it on any other Secret).
        let api = Api::<Secret>::namespaced(self.client.clone(), ns);
        let empty = kube::api::Patch::Merge(serde_json::json!({}));
        let secret = match api
            .patch(&name, &kube::api::PatchParams::default(), &empty)
            .await
        {
            Ok(s)
                if s.labels().get(desired_secret::REGISTRY_LABEL) == Some(&registry.name_any()) =>
            {
                s
            }
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(namespace = %ns, error = %e, "could not read a managed secret back");
                return;
            }
        };
        let Some(config) = secret
            .data
            .as_ref()
            .and_then(|d| d.get(desired_secret::DATA_KEY))
            .and_then(|v| serde_json::from_slice::<DockerConfig>(&v.0).ok())
        else {
            return;
        };
        for i in wanted {
            let t = &mut tokens[i];
            let Some(status) = prev.and_then(|p| p.iter().find(|r| r.name == t.name)) else {
                continue;
            };
            let Some(token) = regions::token_from_secret(&config, &t.name, status) else {
                continue;
            };
            if let Ok(identity) = self.identity(registry) {
                self.tokens
                    .seed(&regions::identity(&identity, &t.name), token.clone())
                    .await;
            }
            tracing::info!(region = %t.name, expires_at = %token.expires_at, "kept the last token of a region that cannot be refreshed, read back from a managed secret");
            t.step.token = Some(token);
        }
    }

    /// Under spec.auth.namespaceRole or webIdentity: what each selected namespace
    /// gets, with one token per role and region (see [`TenantTokens`]). None
    /// otherwise.
    async fn tenant_step(
        &self,
        registry: &EcrRegistry,
        managed: &BTreeSet<String>,
        deleting: bool,
        now: jiff::Timestamp,
    ) -> Option<TenantStep> {
        let mode = tenants::mode(&registry.spec)?;
        if deleting {
            return None;
        }
        let web_sa = match &mode {
            Mode::WebIdentity(w) => Some(w.service_account.as_str()),
            Mode::NamespaceRole(_) => None,
        };
        // A bad selector is reported by planning.
        let matcher = NamespaceMatcher::new(&registry.spec.namespaces).ok()?;
        let assignments: Vec<(String, Assignment)> =
            observe::namespaces(&self.namespaces, registry, managed)
                .iter()
                .filter(|ns| !ns.terminating && matcher.matches(ns))
                .map(|ns| {
                    let sa = web_sa.and_then(|name| {
                        observe::one_service_account(&self.service_accounts, &ns.name, name)
                    });
                    (ns.name.clone(), tenants::assign(&mode, ns, sa.as_ref()))
                })
                .collect();
        let mut step = TenantStep::default();
        let failed =
            |ns: &str, reason: &str, message: String, withdraw: bool| TenantSecret::Failed {
                failure: NamespaceFailure {
                    namespace: ns.to_string(),
                    reason: reason.to_string(),
                    message,
                },
                withdraw,
            };
        for (ns, a) in &assignments {
            let secret = match a {
                Assignment::Role(_) => continue,
                Assignment::Registry => TenantSecret::Shared,
                Assignment::NotServed => TenantSecret::NotServed,
                Assignment::Invalid { reason, message } => {
                    failed(ns, reason, message.clone(), true)
                }
            };
            step.secrets.insert(ns.clone(), secret);
        }
        let roles = tenants::by_role(assignments.iter().map(|(ns, a)| (ns.as_str(), a)));
        // What keeps every role from being assumed: the spec or the registry's
        // credentials. Reported on each of its namespaces; what they hold is kept.
        let usable = regions::check(&registry.spec)
            .map_err(Error::InvalidSpec)
            .and_then(|()| {
                parse_refresh_before(&registry.spec.refresh_before).map_err(Error::InvalidSpec)
            })
            .and_then(|rb| Ok((rb, self.identity(registry)?)));
        let (rb, identity) = match usable {
            Ok(usable) => usable,
            Err(e) => {
                for ns in roles.values().flatten() {
                    step.secrets
                        .insert(ns.to_string(), failed(ns, e.reason(), e.to_string(), false));
                }
                return Some(step);
            }
        };
        let region_names = regions::names(&registry.spec);
        let name = registry.name_any();
        let how = match web_sa {
            Some(service_account) => Assume::WebIdentity {
                client: &self.client,
                registry: &identity,
                service_account,
            },
            None => Assume::ExternalId {
                registry: &identity,
                cluster_id: &self.config.cluster_id,
            },
        };
        // Bounded by a semaphore: with join_all, not a buffered stream, whose
        // borrowing items trip the compiler's check that the future is Send.
        let permits = tokio::sync::Semaphore::new(TENANT_ROLE_CONCURRENCY);
        let steps = futures::future::join_all(roles.iter().map(|(arn, namespaces)| {
            let (how, region_names, name, permits) = (&how, &region_names, &name, &permits);
            async move {
                let _permit = permits.acquire().await.expect("never closed");
                let s = self
                    .tenants
                    .step(name, how, arn, region_names, namespaces, rb)
                    .await;
                (*arn, s)
            }
        }))
        .await;
        for (arn, role) in steps {
            step.next_refresh = step
                .next_refresh
                .into_iter()
                .chain(role.tokens.iter().filter_map(|t| t.step.next_refresh))
                .min();
            let served = regions::serve(&registry.spec, role.tokens, &[], now);
            step.hosts.extend(served.hosts);
            let desired = served
                .config
                .as_ref()
                .zip(served.earliest.as_ref())
                .map(|(c, t)| Arc::new(DesiredSecret::new(registry, c.to_json(), t.expires_at)));
            if desired.is_some() {
                step.earliest = step
                    .earliest
                    .take()
                    .into_iter()
                    .chain(served.earliest)
                    .min_by_key(|t| t.expires_at);
            }
            for ns in role.admitted {
                let secret = match (&desired, &served.error) {
                    (Some(d), _) => TenantSecret::Write(d.clone()),
                    (None, e) => failed(
                        &ns,
                        e.as_ref().map_or("TokenUnavailable", Error::reason),
                        format!(
                            "role {arn}: {}",
                            e.as_ref()
                                .map_or("no token could be fetched".to_string(), Error::to_string)
                        ),
                        false,
                    ),
                };
                step.secrets.insert(ns, secret);
            }
            for (ns, r) in role.refused {
                let secret = failed(&ns, r.reason, r.message, !r.transient);
                step.secrets.insert(ns, secret);
            }
        }
        Some(step)
    }

    /// A Warning Event in each tenant namespace whose role failed, readable by the
    /// tenant, when its reason changes (not at every pass).
    async fn publish_tenant_events(&self, registry: &EcrRegistry, desired: &Desired) {
        let name = registry.name_any();
        let failures: BTreeMap<&str, &NamespaceFailure> = desired
            .tenants
            .iter()
            .flatten()
            .filter_map(|(ns, s)| match s {
                TenantSecret::Failed { failure, .. } => Some((ns.as_str(), failure)),
                _ => None,
            })
            .collect();
        let due: Vec<&NamespaceFailure> = {
            let mut published = self.tenant_events.lock().expect("lock");
            published.retain(|(r, ns), _| r != &name || failures.contains_key(ns.as_str()));
            failures
                .values()
                .filter(|f| {
                    published.insert((name.clone(), f.namespace.clone()), f.reason.clone())
                        != Some(f.reason.clone())
                })
                .copied()
                .collect()
        };
        for f in due {
            let secret = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Secret".into()),
                namespace: Some(f.namespace.clone()),
                name: Some(registry.secret_name()),
                ..Default::default()
            };
            let note = format!("EcrRegistry {name}: {}", f.message);
            self.events
                .publish(&secret, true, &f.reason, "Sync", &note)
                .await;
        }
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

    /// The namespaces `registry` has its secret in: its record (loaded once), a
    /// list release 0.1 left in its status, and what this process wrote (the
    /// record may lag behind a write that failed to be recorded).
    async fn managed(&self, registry: &EcrRegistry) -> Result<BTreeSet<String>> {
        let name = registry.name_any();
        let uid = registry.uid().unwrap_or_default();
        let loaded = {
            let records = self.records.lock().expect("lock");
            records
                .get(&name)
                .filter(|r| r.uid == uid)
                .map(|r| r.namespaces.clone())
        };
        let mut managed = match loaded {
            Some(namespaces) => namespaces,
            None => {
                let ns = &self.config.operator_namespace;
                let namespaces = record::load(&self.client, ns, registry)
                    .await?
                    .unwrap_or_default();
                let rec = Record {
                    uid,
                    namespaces: namespaces.clone(),
                };
                self.records.lock().expect("lock").insert(name.clone(), rec);
                namespaces
            }
        };
        if let Some(s) = &registry.status {
            managed.extend(s.managed_namespaces.iter().cloned());
        }
        let written = self.written.lock().expect("lock");
        if let Some(ledger) = written.get(&name) {
            managed.extend(ledger.values().map(|w| w.namespace.clone()));
        }
        Ok(managed)
    }

    /// Writes the chunks of the record that changed; false when that failed (the
    /// status keeps the list then).
    async fn write_record(&self, registry: &EcrRegistry, next: &BTreeSet<String>) -> bool {
        let name = registry.name_any();
        let old = match self.records.lock().expect("lock").get(&name) {
            Some(r) if &r.namespaces == next => return true,
            Some(r) => r.namespaces.clone(),
            None => BTreeSet::new(),
        };
        let ns = &self.config.operator_namespace;
        match record::write(&self.client, ns, registry, &old, next).await {
            Ok(()) => {
                let rec = Record {
                    uid: registry.uid().unwrap_or_default(),
                    namespaces: next.clone(),
                };
                self.records.lock().expect("lock").insert(name, rec);
                true
            }
            Err(e) => {
                tracing::warn!(registry = %name, error = %e, "could not record where the secrets are; kept in the status");
                false
            }
        }
    }

    /// Observes the caches and plans; also returns the UID of each namespace.
    fn plan(
        &self,
        registry: &EcrRegistry,
        managed: &BTreeSet<String>,
        desired: &Desired,
        deleting: bool,
        now: jiff::Timestamp,
    ) -> Result<(Plan, BTreeMap<String, String>)> {
        let name = registry.name_any();
        let namespaces = observe::namespaces(&self.namespaces, registry, managed);
        let service_accounts = observe::service_accounts(&self.service_accounts, registry);
        let claims = observe::claims_by_others(registry, &self.registries, &namespaces);
        let ledger = self
            .written
            .lock()
            .expect("lock")
            .get(&name)
            .cloned()
            .unwrap_or_default();
        let plan = plan::plan(&Observed {
            registry,
            managed,
            namespaces: &namespaces,
            service_accounts: &service_accounts,
            claimed_by_others: &claims,
            desired,
            applied: &resync::fresh(&ledger, now),
            deleting,
        })
        .map_err(Error::InvalidSpec)?;
        let uids = namespaces
            .iter()
            .map(|ns| (ns.name.clone(), ns.uid.clone()))
            .collect();
        Ok((plan, uids))
    }

    /// Records what was written; returns when the next re-assertion is due.
    fn remember(
        &self,
        name: &str,
        plan: &Plan,
        outcome: &SyncOutcome,
        desired: &Desired,
        uids: &BTreeMap<String, String>,
        deleting: bool,
    ) -> Option<jiff::Timestamp> {
        let mut written = self.written.lock().expect("lock");
        if deleting {
            written.remove(name);
            return None;
        }
        let ledger = written.entry(name.to_string()).or_default();
        let gone: BTreeSet<&String> = outcome.removed.iter().chain(&plan.forget).collect();
        // Namespaces gone, or re-created under a new UID, are forgotten.
        ledger.retain(|uid, w| !gone.contains(&w.namespace) && uids.get(&w.namespace) == Some(uid));
        let now = jiff::Timestamp::now();
        let interval = jiff::SignedDuration::try_from(self.config.resync_interval)
            .unwrap_or(jiff::SignedDuration::from_mins(10));
        {
            for ns in &outcome.written {
                let Some(uid) = uids.get(ns) else { continue };
                let Some(d) = desired.secret_for(ns) else {
                    continue;
                };
                let due = resync::due_after_write(ledger.get(uid), uid, now, interval);
                let entry = Written {
                    namespace: ns.clone(),
                    fingerprint: d.fingerprint,
                    due,
                };
                ledger.insert(uid.clone(), entry);
            }
        }
        resync::next_batch(ledger, now, interval)
    }

    /// Writes the status only when it changed, and records an Event when Ready changes.
    async fn write_status(&self, registry: &EcrRegistry, new: EcrRegistryStatus) -> Result<()> {
        if registry.status.as_ref() == Some(&new) {
            return Ok(());
        }
        let before =
            status::ready(registry.status.as_ref()).map(|c| (c.status.clone(), c.reason.clone()));
        let after = status::ready(Some(&new)).cloned();
        let api: Api<EcrRegistry> = Api::all(self.client.clone());
        crate::runtime::status::apply(&api, &registry.name_any(), FIELD_MANAGER, &new).await?;
        if let Some(c) = after
            && before != Some((c.status.clone(), c.reason.clone()))
        {
            self.events
                .publish(
                    &registry.object_ref(&()),
                    c.status != "True",
                    &c.reason,
                    "Sync",
                    &c.message,
                )
                .await;
        }
        Ok(())
    }
}

/// Deletion completes once every secret and ServiceAccount entry is gone.
fn cleanup_result(outcome: &SyncOutcome) -> Result<Action> {
    match outcome.failures.first() {
        None => Ok(Action::await_change()),
        Some(f) => Err(Error::InvalidSpec(format!(
            "cleanup incomplete in {}: {}",
            f.namespace, f.message
        ))),
    }
}
