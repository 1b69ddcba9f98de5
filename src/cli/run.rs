//! `ecr-operator run`: the admin server, leader election and the controllers.

use anyhow::Context as _;
use ecr_operator::mirror::controller as mirror_controller;
use ecr_operator::registry::controller::{self, Telemetry};
use ecr_operator::runtime::admin::{self, Readiness};
use ecr_operator::runtime::fence;
use ecr_operator::runtime::leader::{self, LeaseSettings};
use ecr_operator::runtime::metrics::Metrics;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(clap::Args)]
#[command(after_help = "Examples:
  ecr-operator run                                  # in a cluster, as deployed by deploy/
  KUBECONFIG=~/.kube/config ecr-operator run --namespace ecr-operator --leader-elect=false")]
pub struct RunArgs {
    /// The operator's own namespace, where credential Secrets (spec.auth.secretRef)
    /// and the leader-election Lease live.
    #[arg(long, env = "POD_NAMESPACE", default_value = "ecr-operator")]
    namespace: String,
    /// This instance's name, shown in Events and used as the leader-election identity.
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// Only handle EcrRegistries whose labels match this selector (e.g. shard=a),
    /// and the EcrMirrors that name them.
    #[arg(long, env = "ECR_OPERATOR_REGISTRY_SELECTOR")]
    registry_selector: Option<String>,
    /// Address of the admin server (/healthz, /readyz, /metrics).
    #[arg(long, env = "ECR_OPERATOR_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    admin_addr: String,
    /// Elect a leader with a coordination.k8s.io Lease so only one replica writes.
    #[arg(long, env = "ECR_OPERATOR_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "ecr-operator")]
    lease_name: String,
    /// The operator's own image, run by the EcrMirror Jobs. Without it the EcrMirror
    /// controller stays off (deploy/ sets it only with EcrMirror's batch permissions).
    #[arg(long, env = "ECR_OPERATOR_IMAGE")]
    image: Option<String>,
    /// Every managed secret is re-asserted at least this often, spread over the
    /// interval (drift repair: a secret deleted or edited by hand comes back). An
    /// unchanged secret costs one no-op apply per interval and no storage write.
    #[arg(long, env = "ECR_OPERATOR_RESYNC_INTERVAL", default_value = "10m", value_parser = parse_resync_interval)]
    resync_interval: std::time::Duration,
    /// Names this cluster in the external ID of per-namespace roles
    /// (spec.auth.namespaceRole): a role is assumed for namespace N with the
    /// external ID "<cluster-id>/N". Give each cluster sharing an AWS account its
    /// own, so that one cluster's namespace cannot use another's role.
    #[arg(long, env = "ECR_OPERATOR_CLUSTER_ID", default_value = "default", value_parser = parse_cluster_id)]
    cluster_id: String,
    /// GetAuthorizationToken calls per second and (account, region), at most,
    /// shared by every registry and tenant role. ECR allows about 20; the default
    /// leaves half for other clients of the same account.
    #[arg(long, env = "ECR_OPERATOR_TOKEN_RATE", default_value = "10", value_parser = parse_token_rate)]
    token_rate: std::num::NonZeroU32,
    /// Seconds a leader's lease lasts without renewal: the longest a failover takes.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(5..=300))]
    lease_duration: u64,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let readiness = Arc::new(Readiness::default());
    serve_admin(&args.admin_addr, metrics.clone(), readiness.clone()).await?;
    let client = ecr_operator::runtime::kube_client::client(metrics.clone())
        .await
        .context("no Kubernetes configuration: run in a cluster or set KUBECONFIG")?;
    check_namespace(&client, &args.namespace).await?;
    watch_fence(&client, &args.namespace, &metrics, &readiness);
    let aws = ecr_operator::aws::base_config::load().await;
    let identity = args
        .pod_name
        .clone()
        .unwrap_or_else(|| format!("ecr-operator-{}", std::process::id()));
    let stop = stop_signal();

    // Futures are lazy: nothing runs until leadership (or its absence) awaits it.
    let telemetry = Telemetry {
        metrics: metrics.clone(),
        readiness: readiness.clone(),
    };
    let controllers = within_grace(
        controllers(&args, &identity, client.clone(), aws, telemetry, &stop),
        stopped(&stop),
    );

    if !args.leader_elect {
        readiness.set_electing(true);
        readiness.set_leading(true);
        metrics.leader.set(1);
        tracing::info!(
            namespace = args.namespace,
            "starting controllers (leader election off)"
        );
        controllers.await?;
        tracing::info!("stopped");
        return Ok(());
    }

    let lease = LeaseSettings {
        namespace: args.namespace.clone(),
        name: args.lease_name.clone(),
        identity,
        duration_secs: args.lease_duration,
    };
    readiness.set_electing(true);
    let on_leading = |leading: bool| {
        metrics.leader.set(i64::from(leading));
        readiness.set_leading(leading);
    };
    match leader::lead(client, &lease, stopped(&stop), on_leading, controllers).await {
        Ok(None) => Ok(()),
        Ok(Some(done)) => {
            tracing::info!("stopped");
            done.map_err(anyhow::Error::from)
        }
        Err(e) => {
            tracing::error!(error = %e, "stopping");
            Err(e.into())
        }
    }
}

async fn serve_admin(
    addr: &str,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--admin-addr {addr}: cannot listen"))?;
    let router = admin::router(metrics, readiness);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(())
}

/// One flag for "stop": set by SIGTERM/SIGINT, awaited by every task.
fn stop_signal() -> watch::Receiver<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    stop_rx
}

fn stopped(
    rx: &watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + Sync + use<> {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// How long the controllers get to stop after SIGTERM before they are dropped.
const GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// `work`, dropped [`GRACE`] after `stop` if it has not ended by then. A
/// controller stopped while its caches were still listing was seen never to end
/// (kube-runtime's queue waits for a cache that no longer fills). Dropping it is
/// safe: every write is an idempotent apply, done again by the next leader.
async fn within_grace(
    work: impl std::future::Future<Output = ecr_operator::Result<()>>,
    stop: impl std::future::Future<Output = ()>,
) -> ecr_operator::Result<()> {
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => return done,
        _ = stop => {}
    }
    match tokio::time::timeout(GRACE, work).await {
        Ok(done) => done,
        Err(_) => {
            tracing::warn!(grace = ?GRACE, "controllers still busy after the stop signal; stopping without them");
            Ok(())
        }
    }
}

/// Both controllers as one future; the EcrMirror one only with an image for its Jobs.
fn controllers(
    args: &RunArgs,
    identity: &str,
    client: kube::Client,
    aws: aws_config::SdkConfig,
    telemetry: Telemetry,
    stop: &watch::Receiver<bool>,
) -> impl std::future::Future<Output = ecr_operator::Result<()>> + use<> {
    let metrics = telemetry.metrics.clone();
    let mirrors = args.image.clone().map(|image| {
        let config = mirror_controller::MirrorConfig {
            operator_namespace: args.namespace.clone(),
            image,
            selector: args.registry_selector.clone(),
            instance: identity.to_string(),
        };
        mirror_controller::run(client.clone(), config, aws.clone(), metrics, stopped(stop))
    });
    if mirrors.is_none() {
        tracing::info!(
            "EcrMirror controller off: no --image / ECR_OPERATOR_IMAGE (turn it on with deploy/kustomize/components/mirror or Helm mirror.enabled=true)"
        );
    }
    let config = controller::Config {
        operator_namespace: args.namespace.clone(),
        registry_selector: args.registry_selector.clone(),
        instance: identity.to_string(),
        resync_interval: args.resync_interval,
        cluster_id: args.cluster_id.clone(),
        token_rate: args.token_rate,
    };
    let registries = controller::run(client, config, aws, telemetry, stopped(stop));
    async move {
        match mirrors {
            Some(mirrors) => tokio::try_join!(registries, mirrors).map(|_| ()),
            None => registries.await,
        }
    }
}

/// Warns (log, metric, `/readyz` detail) while the admission fence is not
/// enforced on this operator's own requests; checked again every 10 minutes, so
/// a fence removed later is noticed too.
fn watch_fence(
    client: &kube::Client,
    namespace: &str,
    metrics: &Metrics,
    readiness: &Arc<Readiness>,
) {
    let gauge = prometheus_client::metrics::gauge::Gauge::default();
    metrics.register(
        "admission_fence_enforced",
        "1 while the admission fence refuses this operator's writes to objects it does not manage, 0 while it does not, -1 when the check failed",
        gauge.clone(),
    );
    tokio::spawn(fence::watch(
        client.clone(),
        namespace.to_string(),
        gauge,
        readiness.clone(),
        std::time::Duration::from_secs(600),
    ));
}

/// The operator's namespace must exist: its credential Secrets and Lease live
/// there. Checked with a list by name (the operator may list namespaces, not get
/// them); a failed check is left to the controllers to report.
async fn check_namespace(client: &kube::Client, namespace: &str) -> anyhow::Result<()> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    let by_name = kube::api::ListParams::default().fields(&format!("metadata.name={namespace}"));
    match api.list_metadata(&by_name).await {
        Ok(list) if list.items.is_empty() => anyhow::bail!(
            "the operator's namespace {namespace:?} does not exist: create it (`kubectl create namespace {namespace}`) or pass --namespace / POD_NAMESPACE"
        ),
        _ => Ok(()),
    }
}

/// Calls per second, 1 to 200.
fn parse_token_rate(s: &str) -> Result<std::num::NonZeroU32, String> {
    s.parse::<std::num::NonZeroU32>()
        .ok()
        .filter(|n| n.get() <= 200)
        .ok_or_else(|| format!("{s:?} is not a rate: give calls per second, 1 to 200"))
}

/// What an external ID may hold before "/<namespace>" ([`CLUSTER_ID_PATTERN`]).
///
/// [`CLUSTER_ID_PATTERN`]: ecr_operator::registry::tenants::CLUSTER_ID_PATTERN
fn parse_cluster_id(s: &str) -> Result<String, String> {
    let pattern = ecr_operator::registry::tenants::CLUSTER_ID_PATTERN;
    match regex::Regex::new(pattern)
        .expect("a valid pattern")
        .is_match(s)
    {
        true => Ok(s.to_string()),
        false => Err(format!(
            "{s:?} is not a cluster ID: use 1 to 160 of letters, digits and +=,.@:_- (no \"/\")"
        )),
    }
}

/// "10m", "30s", "1h": at least 10 seconds, at most a day.
fn parse_resync_interval(s: &str) -> Result<std::time::Duration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 10m, 90s or 1h"))?;
    if d < jiff::SignedDuration::from_secs(10) || d > jiff::SignedDuration::from_hours(24) {
        return Err(format!("{s} is outside 10s..24h"));
    }
    std::time::Duration::try_from(d).map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutdown requested");
}
