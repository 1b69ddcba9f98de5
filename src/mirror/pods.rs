//! What the pods of a mirror Job say that the Job's status does not: the digest
//! the copy really wrote (the `mirror` command's `--digest-file` is the pod's
//! termination message), the last error of a failed attempt
//! (`FallbackToLogsOnError`), and why a pod does not start. Pure functions of
//! the pods the operator watches (by label, status only).

use crate::mirror::job::CONTAINER_NAME;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use kube::ResourceExt;

/// The label the Job controller puts on its pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// How much of a termination message reaches the status.
const MAX_DETAIL: usize = 400;
/// Container waiting reasons that are only the normal way to Running.
const STARTING: &[&str] = &["ContainerCreating", "PodInitializing"];

/// The pods of `job`, from the pods of its mirror.
pub fn of_job<'a>(pods: &'a [std::sync::Arc<Pod>], job: &str) -> Vec<&'a Pod> {
    pods.iter()
        .filter(|p| p.labels().get(JOB_NAME_LABEL).map(String::as_str) == Some(job))
        .map(|p| &**p)
        .collect()
}

/// Keeps what the status needs of a watched pod: its identity and status.
pub fn trim(pod: &mut Pod) {
    pod.spec = None;
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    pod.metadata.owner_references = None;
}

/// The digest a successful attempt wrote: `sha256:` and 64 hex digits.
pub fn copied_digest(pods: &[&Pod]) -> Option<String> {
    pods.iter()
        .filter_map(|p| terminated(p))
        .filter(|t| t.exit_code == 0)
        .filter_map(|t| t.message.as_deref().map(str::trim))
        .find(|m| is_digest(m))
        .map(str::to_string)
}

/// The last line of the newest failed attempt's termination message: the
/// `mirror` command's error.
pub fn last_error(pods: &[&Pod]) -> Option<String> {
    newest_first(pods)
        .into_iter()
        .filter_map(|p| terminated(p).filter(|t| t.exit_code != 0).map(|t| (p, t)))
        .find_map(|(p, t)| {
            let line = t
                .message
                .as_deref()?
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())?;
            Some(format!("pod {}: {}", p.name_any(), clip(line)))
        })
}

/// Why the newest pod does not run: unschedulable, or a container that cannot
/// start (image pull, configuration). None while it is on its normal way.
pub fn waiting_cause(pods: &[&Pod]) -> Option<String> {
    let pod = *newest_first(pods).first()?;
    let status = pod.status.as_ref()?;
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    {
        return Some(format!(
            "pod {} cannot be scheduled: {}{}",
            pod.name_any(),
            c.reason.as_deref().unwrap_or("Unschedulable"),
            c.message
                .as_deref()
                .map(|m| format!(": {}", clip(m)))
                .unwrap_or_default()
        ));
    }
    let waiting = mirror_container(pod)?.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.as_deref()?;
    if STARTING.contains(&reason) {
        return None;
    }
    Some(format!(
        "pod {}: {reason}{}",
        pod.name_any(),
        waiting
            .message
            .as_deref()
            .map(|m| format!(": {}", clip(m)))
            .unwrap_or_default()
    ))
}

fn newest_first<'a>(pods: &[&'a Pod]) -> Vec<&'a Pod> {
    let mut sorted = pods.to_vec();
    sorted.sort_by(|a, b| {
        let created = |p: &Pod| p.metadata.creation_timestamp.clone().map(|t| t.0);
        created(b)
            .cmp(&created(a))
            .then_with(|| b.name_any().cmp(&a.name_any()))
    });
    sorted
}

fn mirror_container(pod: &Pod) -> Option<&ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == CONTAINER_NAME)
}

fn terminated(pod: &Pod) -> Option<&ContainerStateTerminated> {
    mirror_container(pod)?.state.as_ref()?.terminated.as_ref()
}

fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_DETAIL) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use serde_json::{Value, json};

    pub const DIGEST: &str =
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A mirror pod of Job `job` with this status of its container.
    pub fn pod(name: &str, job: &str, created: &str, state: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "apps", "creationTimestamp": created,
                         "labels": {JOB_NAME_LABEL: job}},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "mirror", "image": "img", "imageID": "", "ready": false,
                 "restartCount": 0, "state": state}]},
        }))
        .unwrap()
    }

    fn terminated(exit: i32, message: &str) -> Value {
        json!({"terminated": {"exitCode": exit, "message": message}})
    }

    #[test]
    fn the_digest_is_what_a_successful_attempt_wrote() {
        let ok = pod("j-a", "j", "2026-01-01T00:00:00Z", terminated(0, DIGEST));
        let failed = pod(
            "j-b",
            "j",
            "2026-01-01T00:01:00Z",
            terminated(1, "Error: x"),
        );
        assert_eq!(copied_digest(&[&failed, &ok]).as_deref(), Some(DIGEST));
        // A failure's log lines, or garbage, are never taken for a digest.
        let odd = pod(
            "j-c",
            "j",
            "2026-01-01T00:00:00Z",
            terminated(0, "sha256:xyz"),
        );
        assert_eq!(copied_digest(&[&odd, &failed]), None);
    }

    #[test]
    fn the_last_error_is_the_newest_failures_last_line() {
        let older = pod(
            "j-a",
            "j",
            "2026-01-01T00:00:00Z",
            terminated(1, "Error: old"),
        );
        let newer = pod(
            "j-b",
            "j",
            "2026-01-01T00:01:00Z",
            terminated(
                1,
                "copying\nError: registry.example.com: read timed out after 60s\n",
            ),
        );
        assert_eq!(
            last_error(&[&older, &newer]).as_deref(),
            Some("pod j-b: Error: registry.example.com: read timed out after 60s")
        );
        let long = pod(
            "j-c",
            "j",
            "2026-01-01T00:02:00Z",
            terminated(2, &"x".repeat(2000)),
        );
        assert!(last_error(&[&long]).unwrap().chars().count() < MAX_DETAIL + 20);
    }

    #[test]
    fn a_pod_that_cannot_start_says_why_a_starting_one_does_not() {
        let pulling = pod(
            "j-a",
            "j",
            "2026-01-01T00:00:00Z",
            json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}}),
        );
        assert_eq!(
            waiting_cause(&[&pulling]).as_deref(),
            Some("pod j-a: ImagePullBackOff: Back-off pulling image \"x\"")
        );
        let creating = pod(
            "j-b",
            "j",
            "2026-01-01T00:00:00Z",
            json!({"waiting": {"reason": "ContainerCreating"}}),
        );
        assert_eq!(waiting_cause(&[&creating]), None);
        let mut unschedulable = creating.clone();
        unschedulable.status.as_mut().unwrap().conditions = Some(vec![
            serde_json::from_value(json!({"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."}))
            .unwrap(),
        ]);
        assert!(
            waiting_cause(&[&unschedulable])
                .unwrap()
                .contains("cannot be scheduled: Unschedulable: 0/1 nodes are available"),
        );
    }

    #[test]
    fn pods_belong_to_their_job_by_its_label() {
        let pods = vec![
            std::sync::Arc::new(pod("a-1-x", "a-1", "2026-01-01T00:00:00Z", json!({}))),
            std::sync::Arc::new(pod("a-2-y", "a-2", "2026-01-01T00:00:00Z", json!({}))),
        ];
        let of = of_job(&pods, "a-2");
        assert_eq!(of.len(), 1);
        assert_eq!(of[0].name_any(), "a-2-y");
    }
}
