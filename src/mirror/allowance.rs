//! The tenancy gate: what an EcrRegistry's `spec.mirrors` (the cluster admin's)
//! lets the EcrMirrors of a namespace do through it. Checked before any Job is
//! rendered or any AWS call is made, so a refused EcrMirror costs nothing and
//! changes nothing.

use crate::crd::ecr_mirror::EcrMirror;
use crate::crd::ecr_registry::{EcrRegistry, MirrorAllowance};
use crate::mirror::job::Blocked;
use kube::ResourceExt;

/// The reason of every refusal, in the Ready condition.
pub const NOT_ALLOWED: &str = "MirrorNotAllowed";

/// Stands for the EcrMirror's namespace in `spec.mirrors.repositories`.
const NAMESPACE_PLACEHOLDER: &str = "{namespace}";

/// Ok when the EcrRegistry allows this EcrMirror: its namespace, the ECR
/// repository it pushes to or pulls from, and any job override or repository
/// policy it sets.
pub fn check(mirror: &EcrMirror, registry: &EcrRegistry) -> Result<(), Blocked> {
    let ns = mirror.namespace().unwrap_or_default();
    let registry_name = registry.name_any();
    let refuse = |message: String| {
        Err(Blocked {
            reason: NOT_ALLOWED,
            message,
            spec_error: true,
        })
    };
    let Some(allowed) = &registry.spec.mirrors else {
        return refuse(format!(
            "EcrRegistry {registry_name} allows no EcrMirrors: its spec.mirrors (set by the cluster admin) must list namespace {ns} and the repository"
        ));
    };
    if !allowed.namespaces.iter().any(|n| n == "*" || *n == ns) {
        return refuse(format!(
            "EcrRegistry {registry_name} does not allow EcrMirrors in namespace {ns}: its spec.mirrors.namespaces lists {}; ask the cluster admin to add {ns}",
            allowed.namespaces.join(", ")
        ));
    }
    let (field, repository) = match (&mirror.spec.push, &mirror.spec.pull) {
        (Some(push), _) => ("spec.push.repository", push.repository.as_str()),
        (None, Some(pull)) => ("spec.pull.source", pull_repository(&pull.source)),
        (None, None) => return Ok(()),
    };
    if !repository_allowed(allowed, &ns, repository) {
        return refuse(format!(
            "{field}: repository {repository} is outside what EcrRegistry {registry_name} allows namespace {ns} (spec.mirrors.repositories: {}): use one of those, or ask the cluster admin",
            allowed.repositories.join(", ")
        ));
    }
    let t = &mirror.spec.job_template;
    let overrides = [
        ("spec.jobTemplate.image", t.image.is_some()),
        (
            "spec.jobTemplate.serviceAccountName",
            t.service_account_name.is_some(),
        ),
        // A proxy and a CA of the author's choosing can read the copy's traffic,
        // the ECR token included.
        ("spec.jobTemplate.env", !t.env.is_empty()),
        ("spec.jobTemplate.volumes", !t.volumes.is_empty()),
    ];
    if let Some((field, _)) = overrides.iter().find(|(_, set)| *set)
        && !allowed.allow_job_overrides
    {
        return refuse(format!(
            "{field}: EcrRegistry {registry_name} does not allow job overrides (spec.mirrors.allowJobOverrides): remove the field (the copy then runs the operator's image, under the namespace's default ServiceAccount, with no extra environment or volumes), or ask the cluster admin"
        ));
    }
    let policy = mirror
        .spec
        .push
        .as_ref()
        .is_some_and(|p| p.create_repository.repository_policy.is_some());
    if policy && !allowed.allow_repository_policy {
        return refuse(format!(
            "spec.push.createRepository.repositoryPolicy: EcrRegistry {registry_name} does not allow EcrMirrors to set repository policies (spec.mirrors.allowRepositoryPolicy): remove the field, or ask the cluster admin"
        ));
    }
    Ok(())
}

/// The repository of a pull source: `team/app:v1` or `team/app@sha256:…`.
fn pull_repository(source: &str) -> &str {
    let no_digest = source.split_once('@').map_or(source, |(r, _)| r);
    no_digest.rsplit_once(':').map_or(no_digest, |(r, _)| r)
}

/// True when `repository` matches an entry of `allowed.repositories`, with
/// `{namespace}` read as `ns`.
fn repository_allowed(allowed: &MirrorAllowance, ns: &str, repository: &str) -> bool {
    allowed.repositories.iter().any(|entry| {
        let entry = entry.replace(NAMESPACE_PLACEHOLDER, ns);
        match entry.strip_suffix('*') {
            // "*" or "prefix/*": the prefix keeps its slash, so team-a/* never
            // admits team-ab/app.
            Some(prefix) => repository.starts_with(prefix) && repository.len() > prefix.len(),
            None => entry == repository,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn registry(mirrors: Value) -> EcrRegistry {
        let mut spec = json!({"region": "eu-west-1"});
        if !mirrors.is_null() {
            spec["mirrors"] = mirrors;
        }
        serde_json::from_value(json!({
            "apiVersion": "ecr-operator.io/v1alpha1", "kind": "EcrRegistry",
            "metadata": {"name": "prod"}, "spec": spec,
        }))
        .unwrap()
    }

    fn mirror(ns: &str, spec: Value) -> EcrMirror {
        let mut spec = spec;
        spec["registryRef"] = json!({"name": "prod"});
        serde_json::from_value(json!({
            "apiVersion": "ecr-operator.io/v1alpha1", "kind": "EcrMirror",
            "metadata": {"name": "m", "namespace": ns}, "spec": spec,
        }))
        .unwrap()
    }

    fn push(ns: &str, repository: &str) -> EcrMirror {
        mirror(
            ns,
            json!({"push": {"source": "docker.io/library/nginx:1.27", "repository": repository, "tags": ["1.27"]}}),
        )
    }

    fn pull(ns: &str, source: &str) -> EcrMirror {
        mirror(
            ns,
            json!({"pull": {"source": source, "destination": "registry.example.com/x:1"}}),
        )
    }

    fn refusal(m: &EcrMirror, r: &EcrRegistry) -> String {
        let b = check(m, r).expect_err("refused");
        assert_eq!(b.reason, NOT_ALLOWED);
        assert!(b.spec_error);
        b.message
    }

    #[test]
    fn without_an_allowance_no_mirror_may_use_the_registry() {
        let msg = refusal(&push("dev", "dev/app"), &registry(Value::Null));
        assert!(msg.contains("spec.mirrors"), "{msg}");
    }

    #[test]
    fn only_the_listed_namespaces_may_mirror() {
        let r = registry(json!({"namespaces": ["team-a"], "repositories": ["*"]}));
        assert!(check(&push("team-a", "x/app"), &r).is_ok());
        let msg = refusal(&push("team-b", "x/app"), &r);
        assert!(
            msg.contains("namespace team-b") && msg.contains("team-a"),
            "{msg}"
        );
        let any = registry(json!({"namespaces": ["*"], "repositories": ["*"]}));
        assert!(check(&push("team-b", "x/app"), &any).is_ok());
    }

    #[test]
    fn repositories_match_exactly_or_by_prefix_with_the_namespace_placeholder() {
        let r = registry(json!({
            "namespaces": ["*"],
            "repositories": ["{namespace}/*", "mirror/nginx"],
        }));
        assert!(check(&push("dev", "dev/app"), &r).is_ok());
        assert!(check(&push("dev", "dev/sub/app"), &r).is_ok());
        assert!(check(&push("dev", "mirror/nginx"), &r).is_ok());
        // A mirror in dev cannot reach prod's repositories, nor a look-alike prefix.
        let msg = refusal(&push("dev", "prod/payments"), &r);
        assert!(
            msg.contains("spec.push.repository") && msg.contains("prod/payments"),
            "{msg}"
        );
        refusal(&push("dev", "devil/app"), &r);
        refusal(&push("dev", "mirror/nginx-other"), &r);
        // Pulls: the source's repository, whatever its tag or digest.
        assert!(check(&pull("dev", "dev/app:v1"), &r).is_ok());
        let digest = format!("dev/app@sha256:{}", "a".repeat(64));
        assert!(check(&pull("dev", &digest), &r).is_ok());
        let msg = refusal(&pull("dev", "prod/payments:v1"), &r);
        assert!(msg.contains("spec.pull.source"), "{msg}");
    }

    #[test]
    fn job_overrides_and_repository_policies_need_their_own_allowance() {
        let r = registry(json!({"namespaces": ["*"], "repositories": ["*"]}));
        for (field, template) in [
            (
                "spec.jobTemplate.image",
                json!({"image": "evil.example.com/x:1"}),
            ),
            (
                "spec.jobTemplate.serviceAccountName",
                json!({"serviceAccountName": "admin"}),
            ),
            (
                "spec.jobTemplate.env",
                json!({"env": [{"name": "HTTPS_PROXY", "value": "http://evil.example.com:3128"}]}),
            ),
            (
                "spec.jobTemplate.volumes",
                json!({"volumes": [{"name": "ca", "mountPath": "/etc/ca", "configMap": {"name": "evil-ca"}}]}),
            ),
        ] {
            let mut m = push("dev", "dev/app");
            m.spec.job_template = serde_json::from_value(template).unwrap();
            let msg = refusal(&m, &r);
            assert!(msg.contains(field), "{msg}");
            let open = registry(
                json!({"namespaces": ["*"], "repositories": ["*"], "allowJobOverrides": true}),
            );
            assert!(check(&m, &open).is_ok());
        }
        let mut m = push("dev", "dev/app");
        m.spec
            .push
            .as_mut()
            .unwrap()
            .create_repository
            .repository_policy = Some("{}".into());
        let msg = refusal(&m, &r);
        assert!(msg.contains("repositoryPolicy"), "{msg}");
        let open = registry(
            json!({"namespaces": ["*"], "repositories": ["*"], "allowRepositoryPolicy": true}),
        );
        assert!(check(&m, &open).is_ok());
    }
}
