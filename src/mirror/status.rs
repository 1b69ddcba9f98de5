//! The EcrMirror's status as a pure function of what one pass observed: the
//! phase of the copy from its Job's status, the Ready and Succeeded conditions, the
//! digest and the last success, and the Events a change of status is worth.

use crate::crd::ecr_mirror::{EcrMirror, EcrMirrorStatus, Phase};
use crate::mirror::job::Blocked;
use crate::mirror::plan::finished_before;
use crate::mirror::pods;
use crate::runtime::conditions;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;

pub const READY: &str = "Ready";
pub const SUCCEEDED: &str = "Succeeded";

/// The condition of `type_` in a status.
pub fn condition<'a>(status: &'a EcrMirrorStatus, type_: &str) -> Option<&'a Condition> {
    conditions::find(&status.conditions, type_)
}

/// What a Job's status says about the copy.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    pub phase: Phase,
    /// CamelCase reason for the Succeeded condition.
    pub reason: String,
    pub message: String,
    pub completion_time: Option<Time>,
    /// What a successful copy wrote, as its pod reported it.
    pub digest: Option<String>,
}

/// The phase of a copy from its Job's status (Complete → Succeeded, Failed →
/// Failed, a ready pod → Running, else Pending), with what its `pods` add: the
/// digest, the last error, why a pod does not start.
pub fn job_outcome(job: &Job, pods: &[&Pod]) -> JobOutcome {
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
            digest: pods::copied_digest(pods),
        };
    }
    if let Some(c) = is_true("Failed") {
        let reason = c.reason.clone().unwrap_or_else(|| "JobFailed".into());
        let detail = c.message.clone().unwrap_or_default();
        let last = match pods::last_error(pods) {
            Some(e) => format!("; last error: {e}"),
            None => format!("; see `kubectl logs job/{name}`"),
        };
        return JobOutcome {
            phase: Phase::Failed,
            message: format!(
                "Job {name} failed: {reason}{}{detail}{last}",
                if detail.is_empty() { "" } else { ": " },
            ),
            reason,
            completion_time: None,
            digest: None,
        };
    }
    let failed = status.failed.unwrap_or(0);
    let retrying = match (failed, pods::last_error(pods)) {
        (0, _) => String::new(),
        (n, Some(e)) => format!(" ({n} failed attempt(s) so far; last error: {e})"),
        (n, None) => format!(" ({n} failed attempt(s) so far)"),
    };
    if status.ready.unwrap_or(0) > 0 {
        JobOutcome {
            phase: Phase::Running,
            reason: "Running".into(),
            message: format!("Job {name} is copying the image{retrying}"),
            completion_time: None,
            digest: None,
        }
    } else {
        let waiting = match pods::waiting_cause(pods) {
            Some(cause) => format!("Job {name} is waiting: {cause}"),
            None => format!("Job {name} is waiting for its pod to start"),
        };
        JobOutcome {
            phase: Phase::Pending,
            reason: "Pending".into(),
            message: format!("{waiting}{retrying}"),
            completion_time: None,
            digest: None,
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
    /// The pods of `job` (status only).
    pub pods: &'a [&'a Pod],
    pub now: jiff::Timestamp,
}

/// The EcrMirror's status as a pure function of what was observed. No timestamps
/// change unless a condition changes, so an unchanged state writes nothing.
pub fn compute(input: &StatusInput<'_>) -> EcrMirrorStatus {
    let mirror = input.mirror;
    let prev = mirror.status.clone().unwrap_or_default();
    let generation = mirror.metadata.generation;
    let scheduled = mirror.spec.schedule.is_some();
    let outcome = input.job.map(|j| job_outcome(j, input.pods));
    // This generation's Job finished and is gone: its outcome stays.
    let kept = !scheduled && input.job.is_none() && finished_before(&prev, mirror);

    let (phase, message, succeeded_reason) = copy(input, &prev, outcome.as_ref(), kept);
    let job_name = match input.job {
        Some(j) => Some(j.name_any()),
        None if kept => prev.job_name.clone(),
        None => None,
    };
    let digest = digest(input, &prev, outcome.as_ref(), job_name.as_deref());
    let in_place = if scheduled {
        input.cron_job.is_some()
    } else {
        input.job.is_some() || kept
    };
    let (ready_status, ready_reason, ready_message) =
        ready(input, in_place, job_name.as_deref(), &message);
    let succeeded_status = match phase {
        Phase::Succeeded => "True",
        Phase::Failed => "False",
        Phase::Pending | Phase::Running => "Unknown",
    };
    let conditions = vec![
        conditions::condition(
            &prev.conditions,
            READY,
            ready_status,
            ready_reason,
            ready_message,
            generation,
            input.now,
        ),
        conditions::condition(
            &prev.conditions,
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
        last_success_time: last_success_time(input, &prev, outcome.as_ref()),
        digest,
        message: Some(message),
        conditions,
    }
}

/// The digest of the latest successful copy of this spec: what the succeeded
/// Job's pod wrote; the one recorded for this Job when its pods are gone; none
/// once the spec changed (a new generation copies something else).
fn digest(
    input: &StatusInput<'_>,
    prev: &EcrMirrorStatus,
    outcome: Option<&JobOutcome>,
    job_name: Option<&str>,
) -> Option<String> {
    let same_spec = prev.observed_generation == input.mirror.metadata.generation;
    let recorded = || prev.digest.clone().filter(|_| same_spec);
    match outcome {
        Some(o) if o.phase == Phase::Succeeded => o
            .digest
            .clone()
            .or_else(|| recorded().filter(|_| prev.job_name.as_deref() == job_name)),
        _ => recorded(),
    }
}

/// The phase of the copy, the status message and the Succeeded condition's reason:
/// from the Job, else from the outcome `kept` in `prev`, else from the block, else
/// waiting for the Job or the CronJob's first run.
fn copy(
    input: &StatusInput<'_>,
    prev: &EcrMirrorStatus,
    outcome: Option<&JobOutcome>,
    kept: bool,
) -> (Phase, String, String) {
    let mirror = input.mirror;
    let (phase, mut message, succeeded_reason) = match (outcome, input.blocked) {
        (Some(o), _) => (o.phase, o.message.clone(), o.reason.clone()),
        (None, _) if kept => (
            prev.phase.unwrap_or(Phase::Pending),
            prev.message.clone().unwrap_or_default(),
            condition(prev, SUCCEEDED)
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
            None if mirror.spec.suspend => (
                Phase::Pending,
                "suspended (spec.suspend): no copy runs until it is false".to_string(),
                "Suspended".to_string(),
            ),
            None => (
                Phase::Pending,
                "creating the Job".to_string(),
                "Pending".to_string(),
            ),
        },
    };
    if let (Some(b), Some(_)) = (input.blocked, outcome) {
        message = format!("{}; {message}", b.message);
    }
    if mirror.spec.schedule.is_some() && mirror.spec.suspend && input.blocked.is_none() {
        message = format!("suspended; {message}");
    }
    (phase, message, succeeded_reason)
}

/// The latest of the recorded success, the Job's completion (when it succeeded)
/// and the CronJob's last successful run; `now` for a success without a time.
fn last_success_time(
    input: &StatusInput<'_>,
    prev: &EcrMirrorStatus,
    outcome: Option<&JobOutcome>,
) -> Option<Time> {
    let succeeded_now = outcome.filter(|o| o.phase == Phase::Succeeded);
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
        last_success_time = Some(crate::runtime::status::time(input.now));
    }
    last_success_time
}

/// The Ready condition's status, reason and message: False while blocked, True
/// once the Job or CronJob is `in_place`, else Unknown with the copy's `message`.
fn ready(
    input: &StatusInput<'_>,
    in_place: bool,
    job_name: Option<&str>,
    message: &str,
) -> (&'static str, String, String) {
    let mirror = input.mirror;
    match input.blocked {
        Some(b) => ("False", b.reason.to_string(), b.message.clone()),
        None if in_place && mirror.spec.schedule.is_some() => (
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
            format!("Job {} runs the copy", job_name.unwrap_or_default()),
        ),
        // Nothing to put in place: the spec says so.
        None if mirror.spec.suspend => ("True", "Suspended".to_string(), message.to_string()),
        None => ("Unknown", "Pending".to_string(), message.to_string()),
    }
}

/// An Event a change of status is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

/// The Events for a status going from `prev` to `new`: a Warning for each new
/// reason the copy is blocked, and one when a copy starts running, succeeds or
/// fails (a Warning when it fails).
pub fn notices(prev: &EcrMirrorStatus, new: &EcrMirrorStatus) -> Vec<Notice> {
    let mut out = Vec::new();
    let message = new.message.clone().unwrap_or_default();
    let ready =
        |s: &EcrMirrorStatus| condition(s, READY).map(|c| (c.status.clone(), c.reason.clone()));
    if let Some((status, reason)) = ready(new)
        && status == "False"
        && ready(prev) != Some((status, reason.clone()))
    {
        out.push(Notice {
            warning: true,
            reason,
            note: message.clone(),
        });
    }
    if let Some(phase) = new.phase
        && phase != Phase::Pending
        && (prev.phase != Some(phase) || prev.job_name != new.job_name)
        && new.job_name.is_some()
    {
        out.push(Notice {
            warning: phase == Phase::Failed,
            reason: phase.as_str().to_string(),
            note: message,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::pods::tests::{DIGEST, pod};
    use crate::test_support::{job, mirror};
    use serde_json::json;

    fn succeeded_pod(job: &str) -> Pod {
        pod(
            &format!("{job}-x"),
            job,
            "2026-01-01T00:00:00Z",
            json!({"terminated": {"exitCode": 0, "message": DIGEST}}),
        )
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
            pods: &[],
            now: now(),
        }
    }

    #[test]
    fn job_status_maps_to_phases() {
        let pending = job(
            "a",
            json!({"active": 1, "startTime": "2026-01-01T00:00:00Z"}),
        );
        assert_eq!(job_outcome(&pending, &[]).phase, Phase::Pending);
        let running = job("a", json!({"active": 1, "ready": 1}));
        assert_eq!(job_outcome(&running, &[]).phase, Phase::Running);
        let done = job(
            "a",
            json!({"succeeded": 1, "completionTime": "2026-01-01T00:01:00Z", "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"}]}),
        );
        let o = job_outcome(&done, &[]);
        assert_eq!(o.phase, Phase::Succeeded);
        assert!(o.completion_time.is_some());
        let failed = job(
            "a",
            json!({"failed": 3, "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}),
        );
        let o = job_outcome(&failed, &[]);
        assert_eq!(o.phase, Phase::Failed);
        assert_eq!(o.reason, "BackoffLimitExceeded");
        assert!(o.message.contains("backoff limit"), "{}", o.message);
        // Without its pods, the way to the error.
        assert!(o.message.contains("kubectl logs job/a"), "{}", o.message);
        // Success criteria met but not yet Complete: still running.
        let finishing = job(
            "a",
            json!({"ready": 1, "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]}),
        );
        assert_eq!(job_outcome(&finishing, &[]).phase, Phase::Running);
    }

    #[test]
    fn a_succeeded_job_sets_time_digest_and_conditions() {
        let m = mirror(json!({}));
        let j = job(
            "nginx-2",
            json!({"completionTime": "2026-01-01T00:01:00Z", "conditions": [{"type": "Complete", "status": "True"}]}),
        );
        let p = succeeded_pod("nginx-2");
        let pods = [&p];
        let mut i = input(&m, Some(&j));
        i.pods = &pods;
        let s = compute(&i);
        assert_eq!(s.phase, Some(Phase::Succeeded));
        assert_eq!(s.job_name.as_deref(), Some("nginx-2"));
        assert_eq!(s.digest.as_deref(), Some(DIGEST));
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
    fn the_digest_is_kept_for_its_job_and_spec_only() {
        let mut m = mirror(json!({}));
        let j = job(
            "nginx-2",
            json!({"conditions": [{"type": "Complete", "status": "True"}]}),
        );
        let p = succeeded_pod("nginx-2");
        let pods = [&p];
        let mut i = input(&m, Some(&j));
        i.pods = &pods;
        m.status = Some(compute(&i));
        // The pod is gone (pod GC): the Job's recorded digest stays.
        let again = compute(&input(&m, Some(&j)));
        assert_eq!(again.digest.as_deref(), Some(DIGEST));
        // Another succeeded Job whose pod is gone: its digest is unknown, not the old one's.
        let other = job(
            "nginx-2-abc123",
            json!({"conditions": [{"type": "Complete", "status": "True"}]}),
        );
        assert_eq!(compute(&input(&m, Some(&other))).digest, None);
        // A new spec: the old copy's digest says nothing about it.
        m.metadata.generation = Some(3);
        let pending = job("nginx-3", json!({"active": 1}));
        assert_eq!(compute(&input(&m, Some(&pending))).digest, None);
    }

    #[test]
    fn pods_name_the_error_and_what_keeps_them_from_starting() {
        let m = mirror(json!({}));
        let failed = job(
            "nginx-2",
            json!({"failed": 3, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}),
        );
        let p = pod(
            "nginx-2-x",
            "nginx-2",
            "2026-01-01T00:00:00Z",
            json!({"terminated": {"exitCode": 1, "message": "Error: registry.example.com/app:v1: manifest unknown"}}),
        );
        let pods = [&p];
        let mut i = input(&m, Some(&failed));
        i.pods = &pods;
        let msg = compute(&i).message.unwrap();
        assert!(
            msg.contains(
                "last error: pod nginx-2-x: Error: registry.example.com/app:v1: manifest unknown"
            ),
            "{msg}"
        );
        let pending = job("nginx-2", json!({"active": 1}));
        let p = pod(
            "nginx-2-y",
            "nginx-2",
            "2026-01-01T00:00:00Z",
            json!({"waiting": {"reason": "ErrImagePull", "message": "pull access denied"}}),
        );
        let pods = [&p];
        let mut i = input(&m, Some(&pending));
        i.pods = &pods;
        let s = compute(&i);
        assert_eq!(s.phase, Some(Phase::Pending));
        assert!(
            s.message
                .unwrap()
                .contains("waiting: pod nginx-2-y: ErrImagePull: pull access denied"),
        );
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
        let p = succeeded_pod("nginx-2");
        let pods = [&p];
        let mut i = input(&m, Some(&j));
        i.pods = &pods;
        let done = compute(&i);
        m.status = Some(done.clone());
        assert!(finished_before(m.status.as_ref().unwrap(), &m));
        assert_eq!(compute(&input(&m, None)), done);
        // A new generation is a new copy.
        m.metadata.generation = Some(3);
        assert!(!finished_before(m.status.as_ref().unwrap(), &m));
        let next = compute(&input(&m, None));
        assert_eq!(next.phase, Some(Phase::Pending));
        assert_eq!(next.digest, None);
        assert!(next.last_success_time.is_some());
    }

    #[test]
    fn a_suspended_one_off_mirror_says_so() {
        let m = mirror(json!({"suspend": true}));
        let s = compute(&input(&m, None));
        assert_eq!(s.phase, Some(Phase::Pending));
        assert!(s.message.as_deref().unwrap().starts_with("suspended"));
        let ready = condition(&s, READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Suspended")
        );
        assert_eq!(condition(&s, SUCCEEDED).unwrap().reason, "Suspended");
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

    #[test]
    fn a_new_block_reason_is_a_warning_once() {
        let m = mirror(json!({}));
        let b = Blocked {
            reason: "RegistrySecretMissing",
            message: "EcrRegistry prod has not written its secret".into(),
            spec_error: false,
        };
        let mut i = input(&m, None);
        i.blocked = Some(&b);
        let blocked = compute(&i);
        assert_eq!(
            notices(&EcrMirrorStatus::default(), &blocked),
            [Notice {
                warning: true,
                reason: "RegistrySecretMissing".into(),
                note: "EcrRegistry prod has not written its secret".into(),
            }]
        );
        assert_eq!(notices(&blocked, &blocked), []);
        let other = Blocked {
            reason: "RegistryNotReady",
            ..b.clone()
        };
        i.blocked = Some(&other);
        let n = notices(&blocked, &compute(&i));
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].reason, "RegistryNotReady");
    }

    #[test]
    fn a_copy_that_runs_succeeds_or_fails_is_announced_once() {
        let m = mirror(json!({}));
        let pending = compute(&input(&m, Some(&job("nginx-2", json!({"active": 1})))));
        assert_eq!(notices(&EcrMirrorStatus::default(), &pending), []);

        let running = compute(&input(&m, Some(&job("nginx-2", json!({"ready": 1})))));
        let n = notices(&pending, &running);
        assert_eq!(
            n.iter()
                .map(|n| (n.warning, n.reason.as_str()))
                .collect::<Vec<_>>(),
            [(false, "Running")]
        );
        assert_eq!(notices(&running, &running), []);

        let done = job(
            "nginx-2",
            json!({"conditions": [{"type": "Complete", "status": "True"}]}),
        );
        let succeeded = compute(&input(&m, Some(&done)));
        let n = notices(&running, &succeeded);
        assert_eq!((n.len(), n[0].warning), (1, false));
        assert_eq!(n[0].reason, "Succeeded");
        assert_eq!(n[0].note, "Job nginx-2 copied the image");

        let failed = compute(&input(
            &m,
            Some(&job(
                "nginx-2",
                json!({"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}),
            )),
        ));
        let n = notices(&running, &failed);
        assert_eq!((n.len(), n[0].warning), (1, true));
        assert_eq!(n[0].reason, "Failed");

        // The same phase for a new Job (the CronJob's next run) is announced again.
        let next = compute(&input(&m, Some(&job("nginx-3", json!({"ready": 1})))));
        assert_eq!(notices(&running, &next).len(), 1);
    }
}
