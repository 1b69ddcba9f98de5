//! The decisions of one EcrMirror pass, as pure functions of what was observed:
//! which Job the pass keeps, whether it creates one, what an older spec left
//! behind, which Job the status describes, and when to come back.
//!
//! Nothing here talks to the API; `apply` and `ecr` carry the decisions out.

use crate::crd::ecr_mirror::{EcrMirror, EcrMirrorStatus, Phase};
use crate::crd::ecr_registry::EcrRegistry;
use crate::mirror::job::{self as mirror_job, Blocked, Resolved};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// How soon a mirror blocked by something outside the watches (an AWS fix) is
/// looked at again.
pub const BLOCKED_RETRY: Duration = Duration::from_secs(300);

/// What one pass sees of the cluster (from the caches) for one EcrMirror.
pub struct Observed {
    pub registry: Option<Arc<EcrRegistry>>,
    /// Where the copy goes, or why that is not known.
    pub resolved: Result<Resolved, Blocked>,
    /// The Jobs labelled with the EcrMirror's name in its namespace: its one-off
    /// Jobs and its CronJob's runs.
    pub jobs: Vec<Arc<Job>>,
    /// The EcrMirror's CronJob, when it controls one of that name.
    pub cron_job: Option<Arc<CronJob>>,
    /// The CronJobs labelled with the EcrMirror's name in its namespace, whatever
    /// their name (an older release shortened long names with another hash).
    pub labelled_cron_jobs: Vec<Arc<CronJob>>,
    /// The pods labelled with the EcrMirror's name in its namespace (status only).
    pub pods: Vec<Arc<Pod>>,
}

/// Resolves the EcrMirror against its EcrRegistry, which may not exist.
pub fn resolve(mirror: &EcrMirror, registry: Option<&EcrRegistry>) -> Result<Resolved, Blocked> {
    match registry {
        None => Err(Blocked {
            reason: "RegistryNotFound",
            message: format!(
                "EcrRegistry {} (spec.registryRef.name) does not exist: create it, or fix the name",
                mirror.spec.registry_ref.name
            ),
            spec_error: false,
        }),
        Some(r) => mirror_job::resolve(mirror, r),
    }
}

/// True when `obj` has a controller owner reference to `uid`.
pub fn is_controlled_by(obj: &impl Resource, uid: Option<&str>) -> bool {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid)
}

/// This generation's one-off Job, when it exists and the EcrMirror controls it;
/// None for a scheduled EcrMirror.
pub fn this_job(mirror: &EcrMirror, jobs: &[Arc<Job>]) -> Option<Arc<Job>> {
    let name = one_off_job_name(mirror)?;
    let uid = mirror.uid();
    jobs.iter()
        .find(|j| j.name_any() == name && is_controlled_by(&***j, uid.as_deref()))
        .cloned()
}

/// The name of the one-off Job this generation keeps; None when scheduled.
fn one_off_job_name(mirror: &EcrMirror) -> Option<String> {
    mirror
        .spec
        .schedule
        .is_none()
        .then(|| mirror_job::job_name(mirror))
}

/// True when the status already holds the outcome of this generation's one-off
/// Job: it is not created again (ttlSecondsAfterFinished may have removed it).
pub fn finished_before(prev: &EcrMirrorStatus, mirror: &EcrMirror) -> bool {
    prev.observed_generation == mirror.metadata.generation
        && prev.job_name.as_deref() == Some(mirror_job::job_name(mirror).as_str())
        && matches!(prev.phase, Some(Phase::Succeeded | Phase::Failed))
}

/// True when this pass creates the one-off Job: no schedule, not suspended, the
/// Job is not there and its outcome is not in the status yet.
pub fn create_job(mirror: &EcrMirror, this_job: Option<&Job>) -> bool {
    let prev = mirror.status.clone().unwrap_or_default();
    mirror.spec.schedule.is_none()
        && !mirror.spec.suspend
        && this_job.is_none()
        && !finished_before(&prev, mirror)
}

/// What an older spec made and this pass deletes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stale {
    /// Jobs the EcrMirror controls of other generations, or all of them once a
    /// schedule came (its CronJob's runs are the CronJob's, not these).
    pub jobs: Vec<String>,
    /// The CronJob, once the schedule went.
    pub cron_job: Option<String>,
}

pub fn stale(mirror: &EcrMirror, jobs: &[Arc<Job>], cron_job: Option<&CronJob>) -> Stale {
    let uid = mirror.uid();
    let keep = one_off_job_name(mirror);
    Stale {
        jobs: jobs
            .iter()
            .filter(|j| is_controlled_by(&***j, uid.as_deref()) && Some(j.name_any()) != keep)
            .map(|j| j.name_any())
            .collect(),
        cron_job: cron_job
            .filter(|_| mirror.spec.schedule.is_none())
            .map(|c| c.name_any()),
    }
}

/// CronJobs the EcrMirror controls under another name than today's (a long name
/// shortened by an older release's hash): deleted, so one schedule never runs twice.
pub fn renamed_cron_jobs(mirror: &EcrMirror, labelled: &[Arc<CronJob>]) -> Vec<String> {
    let uid = mirror.uid();
    let name = mirror_job::cron_job_name(mirror);
    labelled
        .iter()
        .filter(|c| is_controlled_by(&***c, uid.as_deref()) && c.name_any() != name)
        .map(|c| c.name_any())
        .collect()
}

/// The Job the status describes: this generation's one-off Job, or for a schedule
/// the latest run of the CronJob (by creation time, then name).
pub fn described_job(
    mirror: &EcrMirror,
    one_off: Option<&Arc<Job>>,
    cron_job: Option<&CronJob>,
    jobs: &[Arc<Job>],
) -> Option<Arc<Job>> {
    match (mirror.spec.schedule.is_some(), cron_job) {
        (false, _) => one_off.cloned(),
        (true, None) => None,
        (true, Some(c)) => {
            let cron_uid = c.uid();
            jobs.iter()
                .filter(|j| is_controlled_by(&***j, cron_uid.as_deref()))
                .max_by_key(|j| {
                    (
                        j.metadata.creation_timestamp.clone().map(|t| t.0),
                        j.name_any(),
                    )
                })
                .cloned()
        }
    }
}

/// True when the EcrMirror's CronJob must be held (suspended) because the
/// EcrMirror cannot run now: its registry's secret is gone from the namespace,
/// or the registry no longer allows it. A schedule must not keep copying with
/// a credential or an allowance that was taken away. Once resolved again, the
/// CronJob is rendered anew (the hold changes its spec hash) with the
/// EcrMirror's own `suspend`.
pub fn hold_cron_job(resolved: &Result<Resolved, Blocked>, cron_job: Option<&CronJob>) -> bool {
    resolved.is_err()
        && cron_job.is_some_and(|c| c.spec.as_ref().and_then(|s| s.suspend) != Some(true))
}

/// When to look at the EcrMirror again: after `retry` when something asked for it
/// (a transient failure's backoff); slowly while blocked by
/// something outside the watches; else on the next change.
pub fn requeue(retry: Option<Duration>, blocked: Option<&Blocked>) -> Action {
    match (retry, blocked) {
        (Some(d), _) => Action::requeue(d),
        (None, Some(b)) if !b.spec_error => Action::requeue(BLOCKED_RETRY),
        _ => Action::await_change(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{job, mirror, owned_by};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn jobs(list: Vec<Job>) -> Vec<Arc<Job>> {
        list.into_iter().map(Arc::new).collect()
    }

    fn cron_job(uid: &str) -> CronJob {
        let mut c: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "nginx", "namespace": "apps", "uid": uid},
        }))
        .unwrap();
        owned_by(&mut c.metadata, "u-1");
        c
    }

    fn blocked(spec_error: bool) -> Blocked {
        Blocked {
            reason: "Something",
            message: "m".into(),
            spec_error,
        }
    }

    #[test]
    fn a_blocked_mirror_holds_its_running_cron_job_once() {
        let running = {
            let mut c = cron_job("c-1");
            c.spec = Some(
                serde_json::from_value(
                    json!({"schedule": "@hourly", "suspend": false, "jobTemplate": {}}),
                )
                .unwrap(),
            );
            c
        };
        let held = {
            let mut c = running.clone();
            c.spec.as_mut().unwrap().suspend = Some(true);
            c
        };
        let blocked = Err(blocked(true));
        assert!(hold_cron_job(&blocked, Some(&running)));
        assert!(!hold_cron_job(&blocked, Some(&held)), "already held");
        assert!(!hold_cron_job(&blocked, None));
        let resolved = Ok(Resolved {
            host: "h".into(),
            account: "1".into(),
            region: "eu-west-1".into(),
            secret_name: "s".into(),
        });
        assert!(!hold_cron_job(&resolved, Some(&running)));
    }

    #[test]
    fn a_missing_registry_blocks_until_it_is_created() {
        let b = resolve(&mirror(json!({})), None).unwrap_err();
        assert_eq!(b.reason, "RegistryNotFound");
        assert!(b.message.contains("EcrRegistry prod"), "{b:?}");
        assert!(!b.spec_error);
    }

    #[test]
    fn this_job_is_this_generations_and_the_mirrors_own() {
        let m = mirror(json!({}));
        let mut other_owner = job("nginx-2", json!({}));
        owned_by(&mut other_owner.metadata, "someone-else");
        let mut old = job("nginx-1", json!({}));
        owned_by(&mut old.metadata, "u-1");
        let mut mine = job("nginx-2", json!({}));
        owned_by(&mut mine.metadata, "u-1");

        assert_eq!(
            this_job(&m, &jobs(vec![other_owner.clone(), old.clone()])),
            None
        );
        let found = this_job(&m, &jobs(vec![other_owner, old, mine.clone()]));
        assert_eq!(found.as_deref(), Some(&mine));

        let scheduled = mirror(json!({"schedule": "0 3 * * *"}));
        assert_eq!(this_job(&scheduled, &jobs(vec![mine])), None);
    }

    #[test]
    fn the_job_is_created_once_per_generation() {
        let mut m = mirror(json!({}));
        let mut j = job("nginx-2", json!({}));
        owned_by(&mut j.metadata, "u-1");
        assert!(create_job(&m, None));
        assert!(!create_job(&m, Some(&j)));

        // Its outcome is recorded, then the Job is removed by its TTL.
        m.status = Some(EcrMirrorStatus {
            observed_generation: Some(2),
            job_name: Some("nginx-2".into()),
            phase: Some(Phase::Failed),
            ..Default::default()
        });
        assert!(finished_before(m.status.as_ref().unwrap(), &m));
        assert!(!create_job(&m, None));

        // Still running when it went: created again.
        m.status.as_mut().unwrap().phase = Some(Phase::Running);
        assert!(!finished_before(m.status.as_ref().unwrap(), &m));
        assert!(create_job(&m, None));

        // A new generation is a new copy.
        m.status.as_mut().unwrap().phase = Some(Phase::Succeeded);
        m.metadata.generation = Some(3);
        assert!(create_job(&m, None));

        // So is a new run-at annotation, on a finished copy of this generation.
        m.status.as_mut().unwrap().observed_generation = Some(3);
        m.status.as_mut().unwrap().job_name = Some("nginx-3".into());
        assert!(!create_job(&m, None));
        m.annotations_mut().insert(
            mirror_job::RUN_AT_ANNOTATION.into(),
            "2026-11-30T10:00:00Z".into(),
        );
        assert!(create_job(&m, None));

        let scheduled = mirror(json!({"schedule": "0 3 * * *"}));
        assert!(!create_job(&scheduled, None));

        // Suspended: no Job; the one of an earlier generation (the change to
        // suspend made a new one) is stale, so a running copy is cancelled.
        let mut suspended = mirror(json!({"suspend": true}));
        assert!(!create_job(&suspended, None));
        let mut running = job("nginx-1", json!({"active": 1}));
        owned_by(&mut running.metadata, "u-1");
        assert_eq!(
            stale(&suspended, &[Arc::new(running)], None).jobs,
            ["nginx-1"]
        );
        suspended.spec.suspend = false;
        suspended.metadata.generation = Some(3);
        assert!(create_job(&suspended, None));
    }

    #[test]
    fn jobs_of_other_generations_and_a_dropped_cron_job_are_stale() {
        let m = mirror(json!({}));
        let mut old = job("nginx-1", json!({}));
        owned_by(&mut old.metadata, "u-1");
        let mut current = job("nginx-2", json!({}));
        owned_by(&mut current.metadata, "u-1");
        let mut cron_run = job("nginx-29000000", json!({}));
        owned_by(&mut cron_run.metadata, "cron-uid");
        let foreign = job("nginx-0", json!({}));
        let all = jobs(vec![old, current, cron_run, foreign]);
        let cj = cron_job("cron-uid");

        assert_eq!(
            stale(&m, &all, Some(&cj)),
            Stale {
                jobs: vec!["nginx-1".into()],
                cron_job: Some("nginx".into()),
            }
        );
        assert_eq!(
            stale(&m, &all, None),
            Stale {
                jobs: vec!["nginx-1".into()],
                cron_job: None,
            }
        );
    }

    #[test]
    fn a_cron_job_under_an_older_name_is_removed_a_foreign_one_is_not() {
        let m = mirror(json!({"schedule": "0 3 * * *"}));
        let today = cron_job("c-1");
        let mut older = cron_job("c-2");
        older.metadata.name = Some("nginx-0badc0de".into());
        let mut foreign = cron_job("c-3");
        foreign.metadata.name = Some("nginx-someone".into());
        foreign.metadata.owner_references = None;
        let all = [today, older, foreign].map(Arc::new);
        assert_eq!(renamed_cron_jobs(&m, &all), ["nginx-0badc0de"]);
    }

    #[test]
    fn a_schedule_makes_every_one_off_job_stale_and_keeps_the_cron_job() {
        let m = mirror(json!({"schedule": "0 3 * * *"}));
        let mut old = job("nginx-1", json!({}));
        owned_by(&mut old.metadata, "u-1");
        let mut current = job("nginx-2", json!({}));
        owned_by(&mut current.metadata, "u-1");
        let mut cron_run = job("nginx-29000000", json!({}));
        owned_by(&mut cron_run.metadata, "cron-uid");
        let all = jobs(vec![old, current, cron_run]);
        assert_eq!(
            stale(&m, &all, Some(&cron_job("cron-uid"))),
            Stale {
                jobs: vec!["nginx-1".into(), "nginx-2".into()],
                cron_job: None,
            }
        );
    }

    #[test]
    fn the_status_describes_the_one_off_job_or_the_latest_cron_run() {
        let one_off = Arc::new(job("nginx-2", json!({})));
        let run = |name: &str, created: &str| {
            let mut j = job(name, json!({}));
            j.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
            owned_by(&mut j.metadata, "cron-uid");
            j
        };
        let mut not_a_run = job("nginx-29999999", json!({}));
        not_a_run.metadata.creation_timestamp = Some(Time("2026-01-09T00:00:00Z".parse().unwrap()));
        let all = jobs(vec![
            run("nginx-29000001", "2026-01-02T03:00:00Z"),
            run("nginx-29000003", "2026-01-03T03:00:00Z"),
            run("nginx-29000002", "2026-01-01T03:00:00Z"),
            not_a_run,
        ]);
        let cj = cron_job("cron-uid");

        let m = mirror(json!({}));
        assert_eq!(
            described_job(&m, Some(&one_off), Some(&cj), &all),
            Some(one_off.clone())
        );
        assert_eq!(described_job(&m, None, None, &all), None);

        let scheduled = mirror(json!({"schedule": "0 3 * * *"}));
        assert_eq!(described_job(&scheduled, Some(&one_off), None, &all), None);
        let latest = described_job(&scheduled, None, Some(&cj), &all).unwrap();
        assert_eq!(latest.name_any(), "nginx-29000003");
        assert_eq!(described_job(&scheduled, None, Some(&cj), &[]), None);
    }

    #[test]
    fn requeue_follows_retries_then_blocks_then_waits() {
        let d = Duration::from_secs(7);
        assert_eq!(requeue(Some(d), None), Action::requeue(d));
        assert_eq!(requeue(Some(d), Some(&blocked(true))), Action::requeue(d));
        assert_eq!(
            requeue(None, Some(&blocked(false))),
            Action::requeue(BLOCKED_RETRY)
        );
        assert_eq!(requeue(None, Some(&blocked(true))), Action::await_change());
        assert_eq!(requeue(None, None), Action::await_change());
    }
}
