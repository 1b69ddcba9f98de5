//! EcrMirror on the bed: the controller runs in-process (the binary does not start
//! it yet) with the bed's admin client and moto. No kubelet runs, so the tests play
//! the Job's pod by patching the Job's status, as the Job controller would.
//!
//! The EcrRegistry is not reconciled here: each test writes its
//! status.managedNamespaces and status.registries itself, which is all an EcrMirror
//! reads of it.

use crate::deploy::{kustomize, of_kind, parse_stream};
use crate::least_privilege::{fence_objects, install_fence, remove_fence};
use crate::support::bed::{Bed, TestNames, create_namespace, delete_namespace, eventually};
use crate::support::faults::Faults;
use crate::support::fixtures;
use ecr_operator::crd::ecr_mirror::{EcrMirror, EcrMirrorStatus, Phase};
use ecr_operator::crd::ecr_registry::EcrRegistry;
use ecr_operator::mirror::controller::{
    self as mirror_controller, MirrorConfig, READY, SUCCEEDED, condition,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const ACCOUNT: &str = "123456789012";
const IMAGE: &str = "registry.example.com/ecr-operator:test";

/// One test's world: an app namespace, an EcrRegistry whose status says its secret
/// is there (or not), and a mirror controller for this test's EcrMirrors only.
struct World {
    client: Client,
    names: TestNames,
    ns: String,
    registry: String,
    host: String,
    controller: tokio::task::JoinHandle<()>,
    /// The admission fence the controller runs behind (least privilege only).
    fence: Vec<Value>,
}

impl World {
    async fn start(prefix: &str, secret_in_namespace: bool) -> Self {
        Self::start_as(prefix, secret_in_namespace, false).await
    }

    /// `least_privilege`: the controller runs as a ServiceAccount with exactly
    /// deploy/'s cluster rules, behind deploy/'s admission fence, not as the bed's admin.
    async fn start_as(prefix: &str, secret_in_namespace: bool, least_privilege: bool) -> Self {
        let bed = Bed::get();
        let names = TestNames::new(prefix);
        let client = fixtures::setup(&names).await;
        fixtures::install_crd(&client).await;
        let (controller_client, fence) = if least_privilege {
            least_privilege_client(&client, &names).await
        } else {
            (client.clone(), vec![])
        };
        let ns = names.ns("app");
        create_namespace(&client, &ns, &[]).await;
        let region = bed.var("AWS_REGION").to_string();
        let registry = fixtures::create_registry(
            &client,
            &names,
            json!({
                "region": region, "namespaces": {"names": [ns]}, "secret": {"name": "ecr-pull"},
                "mirrors": {"namespaces": ["*"], "repositories": ["*"], "allowJobOverrides": true, "allowRepositoryPolicy": true},
            }),
        )
        .await
        .name_any();
        let host = format!("{ACCOUNT}.dkr.ecr.{region}.amazonaws.com");
        let world = Self {
            controller: tokio::spawn(run_controller(
                controller_client,
                names.id.clone(),
                names.ns("op"),
            )),
            client,
            names,
            ns,
            registry,
            host,
            fence,
        };
        world.set_registry_namespaces(secret_in_namespace).await;
        world
    }

    /// Writes the EcrRegistry's status as its controller would.
    async fn set_registry_namespaces(&self, secret_in_namespace: bool) {
        let managed: Vec<&str> = if secret_in_namespace {
            vec![&self.ns]
        } else {
            vec![]
        };
        Api::<EcrRegistry>::all(self.client.clone())
            .patch_status(
                &self.registry,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                    "managedNamespaces": managed,
                    "registries": [self.host],
                    "secretName": "ecr-pull",
                }})),
            )
            .await
            .expect("patch EcrRegistry status");
    }

    /// Sets what the EcrRegistry allows EcrMirrors (`spec.mirrors`), as its admin
    /// would: the whole field (a merge patch would keep the earlier keys).
    async fn set_allowance(&self, mirrors: Value) {
        let registries = Api::<EcrRegistry>::all(self.client.clone());
        let mut values = vec![Value::Null];
        if !mirrors.is_null() {
            values.push(mirrors);
        }
        for value in values {
            registries
                .patch(
                    &self.registry,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"mirrors": value}})),
                )
                .await
                .expect("patch EcrRegistry spec.mirrors");
        }
    }

    /// The EcrMirror's Ready condition: (reason, message); empty before it has one.
    async fn ready(&self, name: &str) -> (String, String) {
        let m = self.mirrors().get(name).await.expect("get EcrMirror");
        m.status
            .as_ref()
            .and_then(|s| condition(s, READY))
            .map(|c| (c.reason.clone(), c.message.clone()))
            .unwrap_or_default()
    }

    fn mirrors(&self) -> Api<EcrMirror> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn create_mirror(&self, name: &str, spec: Value) -> EcrMirror {
        let mut spec = spec;
        spec["registryRef"] = json!({"name": self.registry});
        let obj: EcrMirror = serde_json::from_value(json!({
            "apiVersion": "ecr-operator.io/v1alpha1",
            "kind": "EcrMirror",
            "metadata": {"name": name, "labels": {"test": self.names.id}},
            "spec": spec,
        }))
        .expect("valid EcrMirror");
        self.mirrors()
            .create(&PostParams::default(), &obj)
            .await
            .expect("create EcrMirror")
    }

    /// Polls the EcrMirror until its status satisfies `check`.
    async fn wait_status(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&EcrMirrorStatus) -> bool,
    ) -> EcrMirror {
        let api = self.mirrors();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let m = api.get(name).await.expect("get EcrMirror");
            if m.status.as_ref().is_some_and(&check) {
                return m;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for EcrMirror {name}: {what}; last status: {:#?}",
                m.status
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    async fn wait_job(&self, name: &str) -> Job {
        let jobs = self.jobs();
        eventually(30, &format!("Job {name}"), || async {
            jobs.get_opt(name).await.expect("get Job")
        })
        .await
    }

    /// Marks the Job as the Job controller does when its pod succeeded. 1.35's
    /// validation wants SuccessCriteriaMet before Complete, a completion time, no
    /// active pods, and a startTime that never changes once set.
    async fn complete_job(&self, name: &str) {
        self.patch_job_status(name, |now| {
            json!({
                "active": 0, "ready": 0, "terminating": 0, "succeeded": 1,
                "completionTime": now,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": now, "lastTransitionTime": now},
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": now, "lastTransitionTime": now},
                ],
            })
        })
        .await;
    }

    /// Marks the Job as failed: FailureTarget before Failed, as 1.35 requires.
    async fn fail_job(&self, name: &str) {
        self.patch_job_status(name, |now| {
            json!({
                "active": 0, "ready": 0, "terminating": 0, "failed": 3,
                "conditions": [
                    {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastProbeTime": now, "lastTransitionTime": now},
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastProbeTime": now, "lastTransitionTime": now},
                ],
            })
        })
        .await;
    }

    /// Patches the Job's status with `status(now)`, plus a startTime when the Job
    /// controller has not set one yet. The Job controller writes the status too (it
    /// counts the pods it made), so a conflict is retried.
    async fn patch_job_status(&self, name: &str, status: impl Fn(&str) -> Value) {
        let jobs = self.jobs();
        let mut last = None;
        for _ in 0..20 {
            let now = jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap()
                .to_string();
            let current = jobs.get(name).await.expect("get Job");
            let mut patch = status(&now);
            if current.status.and_then(|s| s.start_time).is_none() {
                patch["startTime"] = json!(now);
            }
            match jobs
                .patch_status(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": patch })),
                )
                .await
            {
                Ok(_) => return,
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
        panic!("patch status of Job {name}: {last:?}");
    }

    fn ecr_base(&self) -> aws_config::ConfigLoader {
        aws_config(&self.names)
    }

    async fn ecr(&self) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.ecr_base().load().await)
    }

    async fn events_of(&self, mirror: &str) -> Vec<Event> {
        Api::<Event>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(mirror))
            .collect()
    }

    async fn stop(self) {
        self.controller.abort();
        remove_fence(&self.fence);
        let rbac_name = format!("{}-mirror", self.names.id);
        let _ = Api::<ClusterRoleBinding>::all(self.client.clone())
            .delete(&rbac_name, &DeleteParams::default())
            .await;
        let _ = Api::<ClusterRole>::all(self.client.clone())
            .delete(&rbac_name, &DeleteParams::default())
            .await;
        let _ = Api::<EcrRegistry>::all(self.client.clone())
            .delete(&self.registry, &DeleteParams::default())
            .await;
        delete_namespace(&self.client, &self.ns).await;
        delete_namespace(&self.client, &self.names.ns("op")).await;
    }
}

/// A client for the ServiceAccount `mirror` in the test's operator namespace,
/// bound to exactly the cluster rules deploy/ renders with EcrMirror on (the
/// operator's and its mirror ClusterRole's), and behind the admission fence of
/// deploy/ (its policy and binding, with `mirror` and [`IMAGE`] as its
/// parameter), which is returned for removal.
async fn least_privilege_client(admin: &Client, names: &TestNames) -> (Client, Vec<Value>) {
    let op = names.ns("op");
    let rbac_name = format!("{}-mirror", names.id);
    let rendered = parse_stream(&kustomize(
        Some(&op),
        Some(&format!("{}-", names.id)),
        &["mirror"],
    ));
    let rules: Vec<Value> = of_kind(&rendered, "ClusterRole")
        .iter()
        .flat_map(|r| r["rules"].as_array().unwrap().clone())
        .collect();
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "mirror", "namespace": op}})).unwrap();
    Api::<ServiceAccount>::namespaced(admin.clone(), &op)
        .create(&PostParams::default(), &sa)
        .await
        .expect("create ServiceAccount");
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": rbac_name},
        "rules": rules,
    }))
    .unwrap();
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("create ClusterRole");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": rbac_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": rbac_name},
        "subjects": [{"kind": "ServiceAccount", "name": "mirror", "namespace": op}],
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("create ClusterRoleBinding");
    let bed = Bed::get();
    let path = bed.mint_kubeconfig(&["--service-account", &format!("{op}/mirror")]);
    let client = bed.client_for(&path).await;
    let fence = fence_objects(&rendered, Some("mirror"), Some(IMAGE));
    install_fence(&fence, &client, &op).await;
    (client, fence)
}

fn aws_config(names: &TestNames) -> aws_config::ConfigLoader {
    let bed = Bed::get();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(bed.var("AWS_ENDPOINT_URL"))
        .region(aws_types::region::Region::new(
            bed.var("AWS_REGION").to_string(),
        ))
        .credentials_provider(aws_credential_types::Credentials::new(
            names.access_key_id(),
            bed.var("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "ecr-mirror-tests",
        ))
}

async fn run_controller(client: Client, id: String, operator_ns: String) {
    let names = TestNames { id: id.clone() };
    let aws = aws_config(&names).load().await;
    let config = MirrorConfig {
        operator_namespace: operator_ns,
        image: IMAGE.to_string(),
        selector: Some(format!("test={id}")),
        instance: format!("mirror-test-{id}"),
    };
    if let Err(e) = mirror_controller::run(
        client,
        config,
        aws,
        Default::default(),
        std::future::pending(),
    )
    .await
    {
        panic!("mirror controller stopped: {e}");
    }
}

fn container(job: &Job) -> k8s_openapi::api::core::v1::Container {
    job.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .clone()
}

#[tokio::test]
async fn a_push_creates_the_repository_and_a_locked_down_job_and_claims_no_digest_no_pod_reported()
{
    let w = World::start("mpush", true).await;
    let repository = format!("mirror/{}", w.names.id);
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "pull",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        }],
    });
    let mirror = w
        .create_mirror(
            "nginx",
            json!({
                "push": {
                    "source": "docker.io/library/nginx:1.27",
                    "sourcePullSecret": "hub-creds",
                    "repository": repository,
                    "tags": ["1.27", "stable"],
                    "createRepository": {
                        "imageTagMutability": "IMMUTABLE",
                        "scanOnPush": true,
                        "repositoryPolicy": policy.to_string(),
                    },
                },
            }),
        )
        .await;

    // The Job, as the API server accepted it.
    let job = w.wait_job("nginx-1").await;
    let c = container(&job);
    assert_eq!(c.image.as_deref(), Some(IMAGE));
    assert_eq!(
        c.args.clone().unwrap(),
        [
            "mirror".to_string(),
            "docker.io/library/nginx:1.27".into(),
            format!("{}/{repository}:1.27", w.host),
            "--tag".into(),
            "stable".into(),
            "--authfile".into(),
            "/var/run/ecr-operator/ecr/.dockerconfigjson".into(),
            "--authfile".into(),
            "/var/run/ecr-operator/other/.dockerconfigjson".into(),
            "--digest-file".into(),
            "/dev/termination-log".into(),
            "--no-ecr-login".into(),
            "--timeout".into(),
            "3240s".into(),
        ]
    );
    assert_eq!(
        c.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
    assert_eq!(
        job.spec.as_ref().unwrap().active_deadline_seconds,
        Some(3600)
    );
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.run_as_user, Some(65532));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
    assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let mounts = c.volume_mounts.unwrap();
    for (volume, path) in [
        ("ecr", "/var/run/ecr-operator/ecr"),
        ("other", "/var/run/ecr-operator/other"),
    ] {
        let m = mounts.iter().find(|m| m.name == volume).expect(volume);
        assert_eq!(m.mount_path, path);
        assert_eq!(m.read_only, Some(true));
    }
    let pod = job.spec.as_ref().unwrap().template.spec.clone().unwrap();
    let secret_of = |volume: &str| {
        pod.volumes
            .iter()
            .flatten()
            .find(|v| v.name == volume)
            .and_then(|v| v.secret.as_ref())
            .and_then(|s| s.secret_name.clone())
    };
    assert_eq!(secret_of("ecr").as_deref(), Some("ecr-pull"));
    assert_eq!(secret_of("other").as_deref(), Some("hub-creds"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    let owner = &job.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("EcrMirror", mirror.uid().unwrap().as_str(), Some(true))
    );

    // The repository, as the operator created it.
    let ecr = w.ecr().await;
    let repo = ecr
        .describe_repositories()
        .repository_names(&repository)
        .send()
        .await
        .expect("the repository exists");
    let repo = &repo.repositories()[0];
    assert_eq!(
        repo.image_tag_mutability().map(|m| m.as_str()),
        Some("IMMUTABLE")
    );
    assert_eq!(
        repo.image_scanning_configuration()
            .map(|s| s.scan_on_push()),
        Some(true)
    );
    let set = ecr
        .get_repository_policy()
        .repository_name(&repository)
        .send()
        .await
        .expect("the repository has a policy");
    let set: Value = serde_json::from_str(set.policy_text().unwrap()).unwrap();
    assert_eq!(set, policy);

    w.wait_status("nginx", "Pending with Ready=True", |s| {
        s.phase == Some(Phase::Pending)
            && s.job_name.as_deref() == Some("nginx-1")
            && condition(s, READY).is_some_and(|c| c.status == "True")
    })
    .await;

    // The Job completes (no kubelet here: tests/e2e/suite runs real mirror pods).
    w.complete_job("nginx-1").await;
    let done = w
        .wait_status("nginx", "Succeeded", |s| s.phase == Some(Phase::Succeeded))
        .await;
    // The steady state is quiet: no status write without a change.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let later = w.mirrors().get("nginx").await.unwrap();
    assert_eq!(
        later.resource_version(),
        done.resource_version(),
        "status rewritten"
    );
    let status = done.status.unwrap();
    assert!(status.last_success_time.is_some());
    // No pod reported what it copied: the status claims no digest (a tag looked
    // up later could name another image).
    assert_eq!(status.digest, None);
    assert_eq!(condition(&status, SUCCEEDED).unwrap().status, "True");
    let reasons: Vec<String> = w
        .events_of("nginx")
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for want in ["Created", "Succeeded"] {
        assert!(
            reasons.iter().any(|r| r == want),
            "no {want} event in {reasons:?}"
        );
    }

    // A change of the spec is a new copy: a new Job, the old one deleted.
    w.mirrors()
        .patch(
            "nginx",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"push": {"tags": ["1.27", "latest"]}}})),
        )
        .await
        .expect("change the tags");
    let next = w.wait_job("nginx-2").await;
    assert!(
        container(&next)
            .args
            .unwrap()
            .contains(&"latest".to_string())
    );
    eventually(30, "the old Job to be deleted", || async {
        match w.jobs().get_opt("nginx-1").await.unwrap() {
            None => Some(()),
            Some(j) if j.metadata.deletion_timestamp.is_some() => Some(()),
            Some(_) => None,
        }
    })
    .await;
    let m = w
        .wait_status("nginx", "the new Job", |s| {
            s.job_name.as_deref() == Some("nginx-2") && s.observed_generation == Some(2)
        })
        .await;
    let s = m.status.unwrap();
    assert_eq!(s.phase, Some(Phase::Pending));
    w.stop().await;
}

#[tokio::test]
async fn a_failed_pull_job_is_reported_with_its_cause() {
    let w = World::start("mpull", true).await;
    w.create_mirror(
        "export",
        json!({
            "pull": {
                "source": "team/app:v1",
                "destination": "registry.example.com/app:v1",
                "destinationPushSecret": "dest-creds",
            },
            "jobTemplate": {"backoffLimit": 0, "ttlSecondsAfterFinished": 600, "serviceAccountName": "mirror"},
        }),
    )
    .await;
    let job = w.wait_job("export-1").await;
    let args = container(&job).args.unwrap();
    assert_eq!(args[1], format!("{}/team/app:v1", w.host));
    assert_eq!(args[2], "registry.example.com/app:v1");
    let spec = job.spec.unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.ttl_seconds_after_finished, Some(600));
    assert_eq!(
        spec.template.spec.unwrap().service_account_name.as_deref(),
        Some("mirror")
    );

    w.fail_job("export-1").await;
    let m = w
        .wait_status("export", "Failed", |s| s.phase == Some(Phase::Failed))
        .await;
    let s = m.status.unwrap();
    let message = s.message.clone().unwrap();
    assert!(message.contains("BackoffLimitExceeded"), "{message}");
    assert!(message.contains("export-1"), "{message}");
    let c = condition(&s, SUCCEEDED).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "BackoffLimitExceeded")
    );
    assert!(s.last_success_time.is_none());
    let failed = eventually(10, "a Failed event", || async {
        w.events_of("export")
            .await
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Failed"))
    })
    .await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    w.stop().await;
}

#[tokio::test]
async fn a_schedule_makes_a_cron_job_whose_runs_are_reported() {
    let w = World::start("mcron", true).await;
    let digest = format!("sha256:{}", "ab".repeat(32));
    // Once a year, so the CronJob controller does not start a run during the test.
    w.create_mirror(
        "nightly",
        json!({
            "schedule": "0 0 1 1 *",
            "pull": {"source": format!("team/app@{digest}"), "destination": "registry.example.com/app:pinned"},
        }),
    )
    .await;
    let cron_jobs: Api<CronJob> = Api::namespaced(w.client.clone(), &w.ns);
    let cron = eventually(30, "the CronJob", || async {
        cron_jobs.get_opt("nightly").await.unwrap()
    })
    .await;
    let spec = cron.spec.clone().unwrap();
    assert_eq!(spec.schedule, "0 0 1 1 *");
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    assert_eq!(spec.suspend, Some(false));
    w.wait_status("nightly", "CronJobReady", |s| {
        s.cron_job_name.as_deref() == Some("nightly")
            && condition(s, READY).is_some_and(|c| c.reason == "CronJobReady")
    })
    .await;
    assert!(
        w.jobs().get_opt("nightly-1").await.unwrap().is_none(),
        "no one-off Job"
    );

    // Suspending updates the CronJob in place.
    w.mirrors()
        .patch(
            "nightly",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();
    eventually(30, "the CronJob to be suspended", || async {
        let c = cron_jobs.get("nightly").await.unwrap();
        (c.spec.unwrap().suspend == Some(true)).then_some(())
    })
    .await;

    // A run, as the CronJob controller would start it: the status follows it.
    let template = spec.job_template;
    let run: Job = serde_json::from_value(json!({
        "metadata": {
            "name": "nightly-29000000",
            "labels": template.metadata.as_ref().unwrap().labels,
            "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly",
                "uid": cron.uid().unwrap(), "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": template.spec,
    }))
    .unwrap();
    w.jobs()
        .create(&PostParams::default(), &run)
        .await
        .expect("create run");
    w.complete_job("nightly-29000000").await;
    let m = w
        .wait_status("nightly", "the run succeeded", |s| {
            s.phase == Some(Phase::Succeeded) && s.job_name.as_deref() == Some("nightly-29000000")
        })
        .await;
    let s = m.status.unwrap();
    assert!(s.last_success_time.is_some());
    assert!(s.message.unwrap().starts_with("suspended"));
    w.stop().await;
}

#[tokio::test]
async fn a_namespace_without_the_registry_secret_waits_for_it() {
    let w = World::start("mnosec", false).await;
    let repository = format!("mirror/{}", w.names.id);
    w.create_mirror(
        "waiting",
        json!({"push": {"source": "docker.io/library/busybox:1", "repository": repository, "tags": ["1"]}}),
    )
    .await;
    let m = w
        .wait_status("waiting", "RegistrySecretMissing", |s| {
            condition(s, READY).is_some_and(|c| c.reason == "RegistrySecretMissing")
        })
        .await;
    let s = m.status.unwrap();
    assert_eq!(s.phase, Some(Phase::Pending));
    let message = s.message.unwrap();
    assert!(
        message.contains(&w.ns) && message.contains(&w.registry),
        "{message}"
    );
    assert!(w.jobs().get_opt("waiting-1").await.unwrap().is_none());
    let ecr = w.ecr().await;
    assert!(
        ecr.describe_repositories()
            .repository_names(&repository)
            .send()
            .await
            .is_err(),
        "no repository is created before the secret is there"
    );

    // The registry selects the namespace: the copy starts.
    w.set_registry_namespaces(true).await;
    w.wait_job("waiting-1").await;
    w.wait_status("waiting", "Ready", |s| {
        condition(s, READY).is_some_and(|c| c.status == "True")
    })
    .await;
    w.stop().await;
}

#[tokio::test]
async fn a_repository_policy_that_is_not_json_fails_the_mirror() {
    let w = World::start("mpolicy", true).await;
    w.create_mirror(
        "badpolicy",
        json!({"push": {
            "source": "docker.io/library/busybox:1",
            "repository": format!("mirror/{}", w.names.id),
            "tags": ["1"],
            "createRepository": {"repositoryPolicy": "{\"Version\": "},
        }}),
    )
    .await;
    let m = w
        .wait_status("badpolicy", "InvalidSpec", |s| {
            condition(s, READY).is_some_and(|c| c.reason == "InvalidSpec")
        })
        .await;
    let s = m.status.unwrap();
    assert_eq!(s.phase, Some(Phase::Failed));
    assert!(s.message.unwrap().contains("repositoryPolicy"));
    assert!(w.jobs().get_opt("badpolicy-1").await.unwrap().is_none());
    w.stop().await;
}

#[tokio::test]
async fn invalid_mirrors_are_refused_by_the_api_server() {
    let bed = Bed::get();
    let names = TestNames::new("mbad");
    let client = bed.client().await;
    fixtures::install_crd(&client).await;
    let ns = names.ns("app");
    create_namespace(&client, &ns, &[]).await;
    let ar = ApiResource::erase::<EcrMirror>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let push =
        json!({"source": "docker.io/library/nginx:1", "repository": "mirror/nginx", "tags": ["1"]});
    let pull = json!({"source": "team/app:v1", "destination": "registry.example.com/app:v1"});
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "both push and pull",
            json!({"push": push, "pull": pull}),
            "exactly one of push and pull",
        ),
        (
            "neither push nor pull",
            json!({}),
            "exactly one of push and pull",
        ),
        (
            "a source that looks like a flag",
            json!({"push": {"source": "--authfile=/etc/shadow", "repository": "mirror/nginx", "tags": ["1"]}}),
            "spec.push.source",
        ),
        (
            "no tags",
            json!({"push": {"source": "nginx:1", "repository": "mirror/nginx", "tags": []}}),
            "spec.push.tags",
        ),
        (
            "an upper-case repository",
            json!({"push": {"source": "nginx:1", "repository": "Mirror/Nginx", "tags": ["1"]}}),
            "spec.push.repository",
        ),
        (
            "a pull source without tag",
            json!({"pull": {"source": "team/app", "destination": "x/y:1"}}),
            "spec.pull.source",
        ),
        (
            "an unknown tag mutability",
            json!({"push": {"source": "nginx:1", "repository": "mirror/nginx", "tags": ["1"], "createRepository": {"imageTagMutability": "SOMETIMES"}}}),
            "spec.push.createRepository.imageTagMutability",
        ),
        (
            "a bad schedule",
            json!({"pull": pull, "schedule": "every day"}),
            "spec.schedule",
        ),
        (
            "a short TTL",
            json!({"pull": pull, "jobTemplate": {"ttlSecondsAfterFinished": 5}}),
            "spec.jobTemplate.ttlSecondsAfterFinished",
        ),
        (
            "an AppArmor annotation (a Kubernetes domain)",
            json!({"pull": pull, "jobTemplate": {"podAnnotations": {"container.apparmor.security.beta.kubernetes.io/mirror": "unconfined"}}}),
            "spec.jobTemplate.podAnnotations",
        ),
        (
            "a label of the operator's domain",
            json!({"pull": pull, "jobTemplate": {"podLabels": {"ecr-operator.io/mirror": "other"}}}),
            "spec.jobTemplate.podLabels",
        ),
        (
            "a volume over the operator's own",
            json!({"pull": pull, "jobTemplate": {"volumes": [{"name": "ecr", "mountPath": "/etc/x", "configMap": {"name": "c"}}]}}),
            "spec.jobTemplate.volumes[].name",
        ),
        (
            "a volume mounted over the secrets",
            json!({"pull": pull, "jobTemplate": {"volumes": [{"name": "ca", "mountPath": "/var/run/ecr-operator/ecr", "configMap": {"name": "c"}}]}}),
            "spec.jobTemplate.volumes[].mountPath",
        ),
    ];
    let mut wrong = Vec::new();
    for (i, (case, spec, field)) in cases.into_iter().enumerate() {
        let mut spec = spec;
        spec["registryRef"] = json!({"name": "prod"});
        let obj = DynamicObject::new(&format!("bad-{i}"), &ar).data(json!({ "spec": spec }));
        match api.create(&PostParams::default(), &obj).await {
            Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains(field) => {}
            Err(e) => wrong.push(format!("{case}: want 422 naming {field}, got {e}")),
            Ok(_) => wrong.push(format!("{case}: accepted {spec}")),
        }
    }
    // And a valid one with every field is accepted.
    let full = json!({
        "registryRef": {"name": "prod"},
        "registryId": ACCOUNT,
        "schedule": "@daily",
        "suspend": true,
        "push": {
            "source": "ghcr.io/org/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "sourcePullSecret": "ghcr",
            "repository": "mirror/app",
            "tags": ["v1", "v1.2"],
            "createRepository": {"imageTagMutability": "IMMUTABLE", "scanOnPush": true, "repositoryPolicy": "{}"},
        },
        "jobTemplate": {
            "image": "example.com/ecr-operator:1", "imagePullPolicy": "IfNotPresent",
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "mirror", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
            "serviceAccountName": "mirror", "backoffLimit": 1, "ttlSecondsAfterFinished": 3600,
            "podLabels": {"team": "a"}, "podAnnotations": {"sidecar.istio.io/inject": "false"},
            "env": [{"name": "HTTPS_PROXY", "value": "http://proxy.corp:3128"}],
            "volumes": [{"name": "ca", "mountPath": "/etc/corp-ca", "configMap": {"name": "corp-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}],
        },
    });
    let obj = DynamicObject::new("full", &ar).data(json!({ "spec": full }));
    match api.create(&PostParams::default(), &obj).await {
        Ok(created) => assert_eq!(created.data["spec"], full, "the spec round-trips"),
        Err(e) => wrong.push(format!("a full valid spec: refused: {e}")),
    }
    delete_namespace(&client, &ns).await;
    assert!(
        wrong.is_empty(),
        "the API server did not answer as expected:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn the_examples_are_accepted_by_the_api_server() {
    let bed = Bed::get();
    let names = TestNames::new("mexamples");
    let client = bed.client().await;
    fixtures::install_crd(&client).await;
    let ns = names.ns("app");
    create_namespace(&client, &ns, &[]).await;
    let dir = crate::support::bed::repo_root().join("deploy/examples");
    let mut checked = Vec::new();
    for file in ["ecrmirror.yaml", "job-push.yaml", "job-pull.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).expect("read example");
        for mut doc in serde_saphyr::from_multiple::<Value>(&text).expect("YAML") {
            if doc.is_null() {
                continue;
            }
            doc["metadata"]["namespace"] = json!(ns);
            let kind = doc["kind"].as_str().unwrap().to_string();
            let ar = match kind.as_str() {
                "EcrMirror" => {
                    let typed: EcrMirror =
                        serde_json::from_value(doc.clone()).expect("an EcrMirror the code reads");
                    if let Some(push) = &typed.spec.push
                        && let Some(policy) = &push.create_repository.repository_policy
                    {
                        serde_json::from_str::<Value>(policy).expect("the policy is JSON");
                    }
                    ApiResource::erase::<EcrMirror>(&())
                }
                "Job" => ApiResource::erase::<Job>(&()),
                other => panic!("{file}: unexpected kind {other}"),
            };
            let obj: DynamicObject = serde_json::from_value(doc).unwrap();
            let name = obj.name_any();
            Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &ar)
                .create(
                    &PostParams {
                        dry_run: true,
                        ..Default::default()
                    },
                    &obj,
                )
                .await
                .unwrap_or_else(|e| panic!("{file}: {kind} {name} refused: {e}"));
            checked.push(format!("{file}: {kind} {name}"));
        }
    }
    delete_namespace(&client, &ns).await;
    assert_eq!(checked.len(), 4, "{checked:?}");
}

#[tokio::test]
async fn the_controller_works_with_only_its_documented_rbac() {
    let w = World::start_as("mrbac", true, true).await;
    w.create_mirror(
        "app",
        json!({"push": {
            "source": "docker.io/library/busybox:1",
            "repository": format!("mirror/{}", w.names.id),
            "tags": ["1"],
        }}),
    )
    .await;
    w.wait_job("app-1").await;
    w.complete_job("app-1").await;
    w.wait_status("app", "Succeeded", |s| s.phase == Some(Phase::Succeeded))
        .await;
    eventually(10, "the Events it recorded", || async {
        let reasons: Vec<String> = w
            .events_of("app")
            .await
            .into_iter()
            .filter_map(|e| e.reason)
            .collect();
        (reasons.contains(&"Created".to_string()) && reasons.contains(&"Succeeded".to_string()))
            .then_some(())
    })
    .await;

    // A schedule: the CronJob is created, the one-off Job deleted.
    w.mirrors()
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"schedule": "0 0 1 1 *"}})),
        )
        .await
        .unwrap();
    let cron_jobs: Api<CronJob> = Api::namespaced(w.client.clone(), &w.ns);
    eventually(30, "the CronJob", || async {
        cron_jobs.get_opt("app").await.unwrap()
    })
    .await;
    eventually(30, "the one-off Job to go", || async {
        let j = w.jobs().get_opt("app-1").await.unwrap();
        j.is_none_or(|j| j.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await;

    // No schedule again: the CronJob goes, a new one-off Job comes.
    w.mirrors()
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"schedule": null}})),
        )
        .await
        .unwrap();
    w.wait_job("app-3").await;
    eventually(30, "the CronJob to go", || async {
        let c = cron_jobs.get_opt("app").await.unwrap();
        c.is_none_or(|c| c.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await;
    let m = w
        .wait_status("app", "the new Job", |s| {
            s.job_name.as_deref() == Some("app-3") && s.cron_job_name.is_none()
        })
        .await;
    assert_eq!(
        condition(m.status.as_ref().unwrap(), READY).map(|c| c.status.as_str()),
        Some("True")
    );
    w.stop().await;
}

/// The cluster admin's gate (EcrRegistry spec.mirrors): a mirror in namespace
/// `app` may not push to another team's repository, set a repository policy or
/// pick its image without the allowance; refused before any Job or AWS call.
#[tokio::test]
async fn a_mirror_outside_the_registrys_allowance_is_refused_before_any_aws_call() {
    let w = World::start("mir-gate", true).await;
    w.set_allowance(json!({"namespaces": [w.ns], "repositories": ["{namespace}/*"]}))
        .await;
    let faults = Faults::new(Bed::get().var("BED_FAULTS"));
    let key = w.names.access_key_id();
    let push = |repository: String| json!({"source": "docker.io/library/nginx:1.27", "repository": repository, "tags": ["1"]});
    let mine = |name: &str| format!("{}/{name}", w.ns);
    let policy = r#"{"Version": "2012-10-17", "Statement": []}"#;
    let refused = [
        (
            "other-team",
            json!({"push": push("prod/payments".into())}),
            "spec.push.repository",
        ),
        (
            "policy",
            json!({"push": {"source": "docker.io/library/nginx:1.27", "repository": mine("a"), "tags": ["1"], "createRepository": {"repositoryPolicy": policy}}}),
            "repositoryPolicy",
        ),
        (
            "image",
            json!({"push": push(mine("b")), "jobTemplate": {"image": "evil.example.com/x:1"}}),
            "spec.jobTemplate.image",
        ),
        (
            "account",
            json!({"push": push(mine("c")), "jobTemplate": {"serviceAccountName": "default"}}),
            "spec.jobTemplate.serviceAccountName",
        ),
        (
            "pull",
            json!({"pull": {"source": "prod/payments:v1", "destination": "registry.example.com/x:1"}}),
            "spec.pull.source",
        ),
    ];
    for (name, spec, _) in &refused {
        w.create_mirror(name, spec.clone()).await;
    }
    for (name, _, field) in &refused {
        w.wait_status(name, "refused", |s| s.phase == Some(Phase::Failed))
            .await;
        let (reason, message) = w.ready(name).await;
        assert_eq!(reason, "MirrorNotAllowed", "{name}: {message}");
        assert!(message.contains(field), "{name}: {message}");
    }
    // Within the allowance the same registry works.
    w.create_mirror("allowed", json!({"push": push(mine("app"))}))
        .await;
    w.wait_job("allowed-1").await;
    let jobs: Vec<String> = w
        .jobs()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|j| j.name_any())
        .collect();
    assert_eq!(jobs, ["allowed-1"], "only the allowed mirror has a Job");
    assert_eq!(faults.calls(&key, "CreateRepository").await, 1);
    assert_eq!(faults.calls(&key, "SetRepositoryPolicy").await, 0);
    // Without spec.mirrors no EcrMirror may use the registry at all.
    w.set_allowance(Value::Null).await;
    w.create_mirror("no-allowance", json!({"push": push(mine("d"))}))
        .await;
    w.wait_status("no-allowance", "refused", |s| {
        s.phase == Some(Phase::Failed)
    })
    .await;
    let (reason, message) = w.ready("no-allowance").await;
    assert_eq!(reason, "MirrorNotAllowed", "{message}");
    assert!(message.contains("allows no EcrMirrors"), "{message}");
    assert_eq!(faults.calls(&key, "CreateRepository").await, 1);
    w.stop().await;
}

/// A CronJob or Job of the name an EcrMirror wants, that is not the EcrMirror's
/// (a user's, or one left by a deleted EcrMirror of that name), is reported as
/// NameConflict and left exactly as it was.
#[tokio::test]
async fn a_user_cron_job_or_a_leftover_job_of_that_name_is_never_written_over() {
    let w = World::start("mir-conflict", true).await;
    let cron_jobs: Api<CronJob> = Api::namespaced(w.client.clone(), &w.ns);
    let pod = json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]});
    let user_cron: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 1 * * *", "jobTemplate": {"spec": {"template": {"spec": pod}}}},
    }))
    .unwrap();
    let before = cron_jobs
        .create(&PostParams::default(), &user_cron)
        .await
        .unwrap();
    // A Job left behind by a deleted EcrMirror "once" (orphaned on deletion).
    let leftover: Job = serde_json::from_value(json!({
        "metadata": {"name": "once-1", "labels": {"app.kubernetes.io/managed-by": "ecr-operator", "ecr-operator.io/mirror": "once"}},
        "spec": {"template": {"spec": pod}},
    }))
    .unwrap();
    let leftover = w
        .jobs()
        .create(&PostParams::default(), &leftover)
        .await
        .unwrap();
    let push = json!({"source": "docker.io/library/nginx:1.27", "repository": format!("{}/x", w.ns), "tags": ["1"]});
    w.create_mirror("nightly", json!({"push": push, "schedule": "0 3 * * *"}))
        .await;
    w.create_mirror("once", json!({"push": push})).await;
    for (name, object) in [("nightly", "CronJob nightly"), ("once", "Job once-1")] {
        eventually(30, &format!("{name}: NameConflict"), || async {
            let (reason, message) = w.ready(name).await;
            (reason == "NameConflict").then_some(message)
        })
        .await;
        let (_, message) = w.ready(name).await;
        assert!(message.contains(object), "{name}: {message}");
    }
    let after = cron_jobs.get("nightly").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert!(after.metadata.owner_references.is_none());
    // The Job controller writes the Job's status; nothing of it is the operator's.
    let job = w.jobs().get("once-1").await.unwrap();
    assert!(job.metadata.owner_references.is_none());
    assert_eq!(job.spec, leftover.spec);
    let managers: Vec<String> = job
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        !managers.iter().any(|m| m.starts_with("ecr-operator")),
        "{managers:?}"
    );
    w.stop().await;
}

/// `--registry-selector` shards by EcrRegistry: an EcrMirror without the shard's
/// labels is served when its EcrRegistry matches (the selector's help says so).
#[tokio::test]
async fn mirrors_are_served_whatever_their_own_labels_when_sharding_by_registry() {
    let w = World::start("mir-shard", true).await;
    let obj: EcrMirror = serde_json::from_value(json!({
        "apiVersion": "ecr-operator.io/v1alpha1",
        "kind": "EcrMirror",
        "metadata": {"name": "unlabelled"},
        "spec": {
            "registryRef": {"name": w.registry},
            "push": {"source": "docker.io/library/nginx:1.27", "repository": format!("{}/x", w.ns), "tags": ["1"]},
        },
    }))
    .unwrap();
    w.mirrors()
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
    w.wait_job("unlabelled-1").await;
    w.stop().await;
}

/// A schedule stops while its EcrMirror may not run: the admin takes the
/// allowance away (or the registry's secret leaves the namespace) and the
/// CronJob is suspended; given back, it runs on its schedule again.
#[tokio::test]
async fn a_schedule_is_held_while_its_allowance_or_secret_is_gone() {
    let w = World::start("mir-hold", true).await;
    let push = json!({"source": "docker.io/library/nginx:1.27", "repository": format!("{}/x", w.ns), "tags": ["1"]});
    w.create_mirror("nightly", json!({"push": push, "schedule": "0 3 * * *"}))
        .await;
    let cron_jobs: Api<CronJob> = Api::namespaced(w.client.clone(), &w.ns);
    let suspended = |want: bool| {
        let cron_jobs = cron_jobs.clone();
        async move {
            eventually(30, &format!("CronJob nightly suspend={want}"), || async {
                let c = cron_jobs.get_opt("nightly").await.unwrap()?;
                (c.spec.as_ref()?.suspend == Some(want)).then_some(())
            })
            .await
        }
    };
    suspended(false).await;
    w.set_allowance(Value::Null).await;
    suspended(true).await;
    let (reason, _) = w.ready("nightly").await;
    assert_eq!(reason, "MirrorNotAllowed");
    w.set_allowance(json!({"namespaces": ["*"], "repositories": ["*"]}))
        .await;
    suspended(false).await;
    // The same when the registry's secret leaves the namespace.
    w.set_registry_namespaces(false).await;
    suspended(true).await;
    w.set_registry_namespaces(true).await;
    suspended(false).await;
    w.stop().await;
}

/// `ecr-operator.io/run-at` runs a finished one-off copy again, as a new Job, and
/// the Job of the earlier run goes.
#[tokio::test]
async fn the_run_at_annotation_runs_a_finished_copy_again() {
    let w = World::start("mir-rerun", true).await;
    let push = json!({"source": "docker.io/library/nginx:1.27", "repository": format!("{}/x", w.ns), "tags": ["1"]});
    w.create_mirror("once", json!({"push": push})).await;
    w.wait_job("once-1").await;
    w.complete_job("once-1").await;
    w.wait_status("once", "succeeded", |s| s.phase == Some(Phase::Succeeded))
        .await;
    w.mirrors()
        .patch(
            "once",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"ecr-operator.io/run-at": "2026-11-30T10:00:00Z"}}})),
        )
        .await
        .unwrap();
    let rerun = w
        .wait_status("once", "a new Job", |s| {
            s.job_name
                .as_deref()
                .is_some_and(|j| j.starts_with("once-1-"))
        })
        .await;
    let name = rerun.status.unwrap().job_name.unwrap();
    w.wait_job(&name).await;
    eventually(30, "the earlier Job deleted", || async {
        w.jobs()
            .get_opt("once-1")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    w.stop().await;
}

#[tokio::test]
async fn suspend_cancels_a_one_off_copy_and_resuming_runs_it_again() {
    let w = World::start("mir-susp", true).await;
    let push = json!({"source": "docker.io/library/nginx:1.27", "repository": format!("{}/x", w.ns), "tags": ["1"]});
    w.create_mirror("once", json!({"push": push})).await;
    w.wait_job("once-1").await;
    w.mirrors()
        .patch(
            "once",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();
    let m = w
        .wait_status("once", "suspended", |s| {
            s.observed_generation == Some(2)
                && condition(s, READY).is_some_and(|c| c.reason == "Suspended")
        })
        .await;
    assert_eq!(m.status.unwrap().phase, Some(Phase::Pending));
    eventually(30, "the running Job deleted (cancelled)", || async {
        match w.jobs().get_opt("once-1").await.unwrap() {
            None => Some(()),
            Some(j) if j.metadata.deletion_timestamp.is_some() => Some(()),
            Some(_) => None,
        }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        w.jobs().get_opt("once-2").await.unwrap().is_none(),
        "no Job while suspended"
    );
    w.mirrors()
        .patch(
            "once",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .unwrap();
    w.wait_job("once-3").await;
    w.stop().await;
}
