//! Planning: a pure function from observed state to the writes that make it right.
//!
//! Nothing here talks to the API; `apply` carries the plan out.

use crate::crd::ecr_registry::{EcrRegistry, NamespaceFailure};
use crate::crd::labels::check_map;
use crate::registry::desired_secret::{Desired, ForNamespace};
use crate::registry::namespace_selection::{NamespaceMatcher, ObservedNamespace};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Annotation on a ServiceAccount listing the imagePullSecrets entries the operator
/// added, each as `<registry>/<secret>`, so a registry removes only its own entries.
/// (Release 0.1 wrote bare `<secret>` entries: those count as a registry's own only
/// in the namespaces it selects or selected.)
pub const ADDED_PULL_SECRETS_ANNOTATION: &str = "ecr-operator.io/added-image-pull-secrets";

/// The annotation entry of `registry` for `secret`.
pub fn own_entry(registry: &str, secret: &str) -> String {
    format!("{registry}/{secret}")
}

/// The entries listed in [`ADDED_PULL_SECRETS_ANNOTATION`] (comma-separated).
pub fn parse_added(annotation: Option<&str>) -> Vec<String> {
    annotation
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The annotation's value for `added`; None removes the annotation.
pub fn format_added(added: &[String]) -> Option<String> {
    (!added.is_empty()).then(|| added.join(","))
}

/// What the operator knows of a ServiceAccount.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObservedServiceAccount {
    pub namespace: String,
    pub name: String,
    pub resource_version: String,
    pub image_pull_secrets: Vec<String>,
    /// Entries the operator added (from [`ADDED_PULL_SECRETS_ANNOTATION`]).
    pub added_by_operator: Vec<String>,
    /// Its eks.amazonaws.com/role-arn annotation (spec.auth.webIdentity).
    pub role_arn: Option<String>,
}

/// Everything the plan depends on.
pub struct Observed<'a> {
    pub registry: &'a EcrRegistry,
    /// Namespaces the registry has its secret in (its record).
    pub managed: &'a BTreeSet<String>,
    pub namespaces: &'a [Arc<ObservedNamespace>],
    pub service_accounts: &'a [ObservedServiceAccount],
    /// Namespaces where an older EcrRegistry writes a secret of the same name.
    pub claimed_by_others: &'a BTreeMap<String, String>,
    /// The secret each namespace gets; none while no token is available (nothing
    /// is written, nothing that exists is removed for that reason).
    pub desired: &'a Desired,
    /// Fingerprint last applied per namespace UID by this process, for the
    /// namespaces not yet due for a re-assertion (drift repair).
    pub applied: &'a BTreeMap<String, u64>,
    /// The EcrRegistry is being deleted: undo everything.
    pub deleting: bool,
}

/// Remove a managed secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretRemoval {
    pub namespace: String,
    pub name: String,
}

/// New imagePullSecrets (and bookkeeping annotation) for one ServiceAccount.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAccountChange {
    pub namespace: String,
    pub name: String,
    pub resource_version: String,
    pub image_pull_secrets: Vec<String>,
    pub added_by_operator: Vec<String>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Selected namespaces, sorted (terminating ones left out).
    pub selected: Vec<String>,
    /// Namespaces whose secret must be written (or re-asserted).
    pub apply: Vec<String>,
    /// Managed secrets to remove.
    pub remove: Vec<SecretRemoval>,
    /// Namespaces that still exist and hold the managed secret untouched.
    pub keep: Vec<String>,
    /// Managed namespaces that no longer exist (their secret went with them).
    pub forget: Vec<String>,
    pub service_accounts: Vec<ServiceAccountChange>,
    /// Selected namespaces that cannot get the secret, and why.
    pub conflicts: Vec<NamespaceFailure>,
}

/// The names a plan is made with.
struct Names<'a> {
    registry: String,
    secret: String,
    /// The secret's name when last written (differs after a rename).
    old_secret: String,
    /// Namespaces the registry wrote to (its record and this process's memory).
    managed: BTreeSet<&'a str>,
    /// Selected namespaces it may write to (no other registry's claim).
    writable: BTreeSet<&'a str>,
}

pub fn plan(observed: &Observed<'_>) -> Result<Plan, String> {
    let registry = observed.registry;
    let status = registry.status.as_ref();
    let secret = registry.secret_name();
    let mut names = Names {
        registry: registry.metadata.name.clone().unwrap_or_default(),
        old_secret: status
            .and_then(|s| s.secret_name.clone())
            .unwrap_or_else(|| secret.clone()),
        secret,
        managed: observed.managed.iter().map(String::as_str).collect(),
        writable: BTreeSet::new(),
    };
    let mut p = Plan::default();
    plan_secrets(observed, &mut names, &mut p)?;
    plan_removals(observed, &names, &mut p);
    for sa in observed.service_accounts {
        if let Some(change) = plan_service_account(observed, &names, sa) {
            p.service_accounts.push(change);
        }
    }
    Ok(p)
}

/// The selected namespaces and which of them need a write.
fn plan_secrets<'a>(
    observed: &Observed<'a>,
    names: &mut Names<'a>,
    p: &mut Plan,
) -> Result<(), String> {
    // Deletion needs no selector: a bad one never blocks it.
    let matcher = match observed.deleting {
        true => None,
        false => Some(NamespaceMatcher::new(&observed.registry.spec.namespaces)?),
    };
    if !observed.deleting {
        let template = &observed.registry.spec.secret;
        check_map("spec.secret.labels", &template.labels, true)?;
        check_map("spec.secret.annotations", &template.annotations, false)?;
    }
    let renamed = names.secret != names.old_secret;
    for ns in observed.namespaces {
        let selected = matcher.as_ref().is_some_and(|m| m.matches(ns));
        if ns.terminating || !selected {
            continue;
        }
        if let Some(other) = observed.claimed_by_others.get(&ns.name) {
            p.selected.push(ns.name.clone());
            p.conflicts.push(NamespaceFailure {
                namespace: ns.name.clone(),
                reason: "SecretConflict".into(),
                message: format!(
                    "EcrRegistry {other} already writes a secret named {} here; give one of them another spec.secret.name",
                    names.secret
                ),
            });
            continue;
        }
        let desired = observed.desired.for_namespace(&ns.name);
        match desired {
            ForNamespace::NotServed => continue,
            ForNamespace::Failed { failure, withdraw } => {
                p.selected.push(ns.name.clone());
                p.conflicts.push(failure.clone());
                if withdraw {
                    continue;
                }
            }
            _ => p.selected.push(ns.name.clone()),
        }
        names.writable.insert(ns.name.as_str());
        match desired {
            ForNamespace::Write(d)
                if observed.applied.get(&ns.uid) != Some(&d.fingerprint) || renamed =>
            {
                p.apply.push(ns.name.clone())
            }
            _ if names.managed.contains(ns.name.as_str()) => p.keep.push(ns.name.clone()),
            _ => {}
        }
    }
    p.selected.sort();
    p.apply.sort();
    Ok(())
}

/// Secrets to remove where the registry no longer writes, and namespaces to forget.
fn plan_removals(observed: &Observed<'_>, names: &Names<'_>, p: &mut Plan) {
    let existing: BTreeMap<&str, &ObservedNamespace> = observed
        .namespaces
        .iter()
        .map(|ns| (ns.name.as_str(), &**ns))
        .collect();
    for ns in &names.managed {
        // A namespace that is gone took its secret with it; a terminating one will.
        let Some(observed_ns) = existing.get(ns) else {
            p.forget.push(ns.to_string());
            continue;
        };
        if observed_ns.terminating {
            continue;
        }
        if !names.writable.contains(ns) || names.old_secret != names.secret {
            p.remove.push(SecretRemoval {
                namespace: ns.to_string(),
                name: names.old_secret.clone(),
            });
        }
    }
}

/// The ServiceAccount's imagePullSecrets with this registry's entry added where it
/// is wanted and removed where it is not; other entries are never touched.
fn plan_service_account(
    observed: &Observed<'_>,
    names: &Names<'_>,
    sa: &ObservedServiceAccount,
) -> Option<ServiceAccountChange> {
    let ns = sa.namespace.as_str();
    let (secret, old) = (&names.secret, &names.old_secret);
    let wanted = names.writable.contains(ns)
        && observed.registry.spec.service_accounts.contains(&sa.name)
        && (observed.desired.secret_for(ns).is_some() || names.managed.contains(ns));
    // Bare 0.1 entries are ours only where we select or selected.
    let legacy_ours = names.writable.contains(ns) || names.managed.contains(ns);
    let ours = |entry: &str, secret: &str| {
        entry == own_entry(&names.registry, secret) || (legacy_ours && entry == secret)
    };
    let mut secrets = sa.image_pull_secrets.clone();
    let mut added = sa.added_by_operator.clone();
    if old != secret && added.iter().any(|e| ours(e, old)) {
        secrets.retain(|s| s != old);
        added.retain(|e| !ours(e, old));
    }
    let has = secrets.contains(secret);
    let mine = added.iter().any(|e| ours(e, secret));
    let own = own_entry(&names.registry, secret);
    if wanted && (!has || mine) {
        if !has {
            secrets.push(secret.clone());
        }
        // Recorded (or rewritten from a bare 0.1 entry) as this registry's own.
        if !added.contains(&own) {
            added.retain(|e| !ours(e, secret));
            added.push(own);
        }
    } else if !wanted && mine {
        secrets.retain(|s| s != secret);
        added.retain(|e| !ours(e, secret));
    }
    (secrets != sa.image_pull_secrets || added != sa.added_by_operator).then(|| {
        ServiceAccountChange {
            namespace: sa.namespace.clone(),
            name: sa.name.clone(),
            resource_version: sa.resource_version.clone(),
            image_pull_secrets: secrets,
            added_by_operator: added,
        }
    })
}

/// For each EcrRegistry, the namespaces where an older registry (by creation time,
/// then name) already claims the same secret name. Registries are given with their
/// selected namespaces.
pub fn claims_by_others(
    registries: &[(&EcrRegistry, Vec<String>)],
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut ordered: Vec<&(&EcrRegistry, Vec<String>)> = registries.iter().collect();
    ordered.sort_by_key(|(r, _)| {
        (
            r.metadata.creation_timestamp.as_ref().map(|t| t.0),
            r.metadata.name.clone(),
        )
    });
    let mut owner_of: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut result: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (registry, namespaces) in ordered {
        let name = registry.metadata.name.clone().unwrap_or_default();
        let secret = registry.secret_name();
        let mine = result.entry(name.clone()).or_default();
        for ns in namespaces {
            match owner_of.get(&(ns.clone(), secret.clone())) {
                Some(other) => {
                    mine.insert(ns.clone(), other.clone());
                }
                None => {
                    owner_of.insert((ns.clone(), secret.clone()), name.clone());
                }
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_added_annotation_round_trips_and_tolerates_empty_entries() {
        assert_eq!(parse_added(None), Vec::<String>::new());
        assert_eq!(parse_added(Some("")), Vec::<String>::new());
        assert_eq!(parse_added(Some("a,,b,")), vec!["a", "b"]);
        assert_eq!(
            format_added(&["a".into(), "b".into()]).as_deref(),
            Some("a,b")
        );
        assert_eq!(format_added(&[]), None);
    }
    use crate::crd::ecr_registry::{EcrRegistrySpec, EcrRegistryStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn registry(status: EcrRegistryStatus) -> EcrRegistry {
        let mut spec = EcrRegistrySpec {
            region: Some("us-east-1".into()),
            ..Default::default()
        };
        spec.namespaces.selector = Some(LabelSelector {
            match_labels: Some([("ecr".to_string(), "on".to_string())].into()),
            ..Default::default()
        });
        spec.service_accounts = vec!["default".into()];
        let mut r = EcrRegistry::new("reg", spec);
        r.metadata.uid = Some("uid-1".into());
        r.status = Some(status);
        r
    }

    fn ns(name: &str, on: bool) -> ObservedNamespace {
        ObservedNamespace {
            name: name.into(),
            uid: uid(name),
            labels: if on {
                [("ecr".to_string(), "on".to_string())].into()
            } else {
                Default::default()
            },
            ..Default::default()
        }
    }

    fn uid(ns: &str) -> String {
        format!("uid-{ns}")
    }

    use crate::registry::desired_secret::DesiredSecret;

    fn desired(r: &EcrRegistry) -> DesiredSecret {
        DesiredSecret::new(r, "{}".into(), jiff::Timestamp::UNIX_EPOCH)
    }

    fn observed<'a>(
        r: &'a EcrRegistry,
        nss: &'a [ObservedNamespace],
        sas: &'a [ObservedServiceAccount],
        desired: Option<&'a DesiredSecret>,
        applied: &'a BTreeMap<String, u64>,
    ) -> Observed<'a> {
        static NONE: std::sync::LazyLock<BTreeMap<String, String>> =
            std::sync::LazyLock::new(BTreeMap::new);
        // Where the secrets are: the fixture's status list (as release 0.1 kept it).
        let managed: &'static BTreeSet<String> = Box::leak(Box::new(
            r.status
                .iter()
                .flat_map(|s| s.managed_namespaces.clone())
                .collect(),
        ));
        Observed {
            registry: r,
            managed,
            namespaces: Box::leak(nss.iter().cloned().map(Arc::new).collect()),
            service_accounts: sas,
            claimed_by_others: &NONE,
            desired: Box::leak(Box::new(Desired::shared(desired.cloned()))),
            applied,
            deleting: false,
        }
    }

    #[test]
    fn writes_selected_namespaces_once_then_nothing() {
        let r = registry(Default::default());
        let d = desired(&r);
        let nss = [ns("a", true), ns("b", false), ns("c", true)];
        let mut applied = BTreeMap::new();
        let p = plan(&observed(&r, &nss, &[], Some(&d), &applied)).unwrap();
        assert_eq!(p.selected, ["a", "c"]);
        assert_eq!(p.apply, ["a", "c"]);
        applied.insert(uid("a"), d.fingerprint);
        applied.insert(uid("c"), d.fingerprint);
        let p = plan(&observed(&r, &nss, &[], Some(&d), &applied)).unwrap();
        assert!(p.apply.is_empty() && p.remove.is_empty(), "{p:?}");
    }

    #[test]
    fn a_namespace_that_stops_matching_loses_the_secret() {
        let r = registry(EcrRegistryStatus {
            managed_namespaces: vec!["a".into(), "b".into(), "gone".into()],
            ..Default::default()
        });
        let d = desired(&r);
        let nss = [ns("a", true), ns("b", false)];
        let applied = BTreeMap::from([(uid("a"), d.fingerprint)]);
        let p = plan(&observed(&r, &nss, &[], Some(&d), &applied)).unwrap();
        assert_eq!(
            p.remove,
            [SecretRemoval {
                namespace: "b".into(),
                name: "reg".into()
            }]
        );
        assert_eq!(p.keep, ["a"]);
        assert_eq!(p.forget, ["gone"]);
    }

    #[test]
    fn without_a_token_nothing_is_written_and_nothing_valid_removed() {
        let r = registry(EcrRegistryStatus {
            managed_namespaces: vec!["a".into()],
            ..Default::default()
        });
        let nss = [ns("a", true), ns("new", true)];
        let p = plan(&observed(&r, &nss, &[], None, &BTreeMap::new())).unwrap();
        assert!(p.apply.is_empty() && p.remove.is_empty());
        assert_eq!(p.keep, ["a"]);
    }

    #[test]
    fn under_namespace_roles_each_namespace_gets_its_own_and_a_refused_one_loses_it() {
        use crate::registry::desired_secret::TenantSecret;
        let r = registry(EcrRegistryStatus {
            managed_namespaces: ["a", "b", "c", "d", "e"].map(String::from).to_vec(),
            ..Default::default()
        });
        let role_a = Arc::new(DesiredSecret::new(
            &r,
            "{\"a\":1}".into(),
            jiff::Timestamp::UNIX_EPOCH,
        ));
        let failure = |ns: &str| NamespaceFailure {
            namespace: ns.into(),
            reason: "AssumeRoleDenied".into(),
            message: "denied".into(),
        };
        let tenants = BTreeMap::from([
            ("a".to_string(), TenantSecret::Write(role_a.clone())),
            // Another tenant's role: denied, an answer: its secret goes.
            (
                "b".to_string(),
                TenantSecret::Failed {
                    failure: failure("b"),
                    withdraw: true,
                },
            ),
            // STS unreachable: reported, its secret kept.
            (
                "c".to_string(),
                TenantSecret::Failed {
                    failure: failure("c"),
                    withdraw: false,
                },
            ),
            // Unannotated, NoSecret: not selected, its secret goes.
            ("d".to_string(), TenantSecret::NotServed),
            // Unannotated, RegistryIdentity: the shared secret.
            ("e".to_string(), TenantSecret::Shared),
        ]);
        let desired = Desired {
            shared: Some(desired(&r)),
            tenants: Some(tenants),
        };
        let nss = ["a", "b", "c", "d", "e"].map(|n| ns(n, true));
        let mut o = observed(&r, &nss, &[], None, Box::leak(Box::default()));
        o.desired = &desired;
        let p = plan(&o).unwrap();
        assert_eq!(p.selected, ["a", "b", "c", "e"]);
        assert_eq!(p.apply, ["a", "e"]);
        assert_eq!(p.keep, ["c"]);
        let removed: Vec<&str> = p.remove.iter().map(|r| r.namespace.as_str()).collect();
        assert_eq!(removed, ["b", "d"]);
        assert_eq!(p.conflicts, [failure("b"), failure("c")]);
        assert_eq!(
            desired.secret_for("a").unwrap().fingerprint,
            role_a.fingerprint
        );
        assert_ne!(
            desired.secret_for("e").unwrap().fingerprint,
            role_a.fingerprint
        );
        // A namespace that appeared after the tokens were fetched waits.
        assert!(desired.secret_for("new").is_none());
    }

    #[test]
    fn terminating_namespaces_are_skipped_quietly() {
        let r = registry(EcrRegistryStatus {
            managed_namespaces: vec!["t".into()],
            ..Default::default()
        });
        let d = desired(&r);
        let mut t = ns("t", true);
        t.terminating = true;
        let p = plan(&observed(&r, &[t], &[], Some(&d), &BTreeMap::new())).unwrap();
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn deleting_removes_everything_it_added() {
        let r = registry(EcrRegistryStatus {
            managed_namespaces: vec!["a".into()],
            ..Default::default()
        });
        let d = desired(&r);
        let sa = ObservedServiceAccount {
            namespace: "a".into(),
            name: "default".into(),
            image_pull_secrets: vec!["mine".into(), "reg".into()],
            added_by_operator: vec!["reg".into()],
            ..Default::default()
        };
        let nss = [ns("a", true)];
        let applied = BTreeMap::new();
        let mut o = observed(&r, &nss, std::slice::from_ref(&sa), Some(&d), &applied);
        o.deleting = true;
        let p = plan(&o).unwrap();
        assert!(p.apply.is_empty());
        assert_eq!(p.remove.len(), 1);
        assert_eq!(p.service_accounts[0].image_pull_secrets, ["mine"]);
        assert!(p.service_accounts[0].added_by_operator.is_empty());
    }

    #[test]
    fn service_accounts_get_the_entry_and_keep_theirs() {
        let r = registry(Default::default());
        let d = desired(&r);
        let sas = [
            ObservedServiceAccount {
                namespace: "a".into(),
                name: "default".into(),
                image_pull_secrets: vec!["mine".into()],
                ..Default::default()
            },
            ObservedServiceAccount {
                namespace: "a".into(),
                name: "builder".into(),
                ..Default::default()
            },
        ];
        let p = plan(&observed(
            &r,
            &[ns("a", true)],
            &sas,
            Some(&d),
            &BTreeMap::new(),
        ))
        .unwrap();
        assert_eq!(p.service_accounts.len(), 1);
        assert_eq!(p.service_accounts[0].image_pull_secrets, ["mine", "reg"]);
        assert_eq!(p.service_accounts[0].added_by_operator, ["reg/reg"]);
    }

    fn sa(ns: &str, secrets: &[&str], added: &[&str]) -> ObservedServiceAccount {
        ObservedServiceAccount {
            namespace: ns.into(),
            name: "default".into(),
            image_pull_secrets: secrets.iter().map(|s| s.to_string()).collect(),
            added_by_operator: added.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn another_registrys_entry_is_never_removed() {
        // The write storm of 0.1: two registries, one secret name, disjoint namespaces.
        let r = registry(Default::default());
        let d = desired(&r);
        let theirs = sa("b", &["reg"], &["other/reg"]);
        let p = plan(&observed(
            &r,
            &[ns("a", true), ns("b", false)],
            &[theirs],
            Some(&d),
            &BTreeMap::new(),
        ))
        .unwrap();
        assert!(p.service_accounts.is_empty(), "{p:?}");
    }

    #[test]
    fn a_bare_entry_of_0_1_is_ours_only_where_we_select_or_selected() {
        let r = registry(EcrRegistryStatus {
            managed_namespaces: vec!["a".into()],
            ..Default::default()
        });
        let d = desired(&r);
        let nss = [ns("a", true), ns("b", false)];
        let sas = [sa("a", &["reg"], &["reg"]), sa("b", &["reg"], &["reg"])];
        let p = plan(&observed(&r, &nss, &sas, Some(&d), &BTreeMap::new())).unwrap();
        // Rewritten as this registry's own in "a"; "b" was never ours: untouched.
        assert_eq!(p.service_accounts.len(), 1, "{p:?}");
        assert_eq!(p.service_accounts[0].namespace, "a");
        assert_eq!(p.service_accounts[0].image_pull_secrets, ["reg"]);
        assert_eq!(p.service_accounts[0].added_by_operator, ["reg/reg"]);
    }

    #[test]
    fn an_entry_already_recorded_as_ours_is_left_as_it_is() {
        let r = registry(Default::default());
        let d = desired(&r);
        let settled = sa("a", &["x", "reg", "y"], &["z/q", "reg/reg", "w/v"]);
        let p = plan(&observed(
            &r,
            &[ns("a", true)],
            &[settled],
            Some(&d),
            &BTreeMap::new(),
        ))
        .unwrap();
        assert!(p.service_accounts.is_empty(), "{p:?}");
    }

    #[test]
    fn a_recreated_namespace_is_written_again() {
        let r = registry(Default::default());
        let d = desired(&r);
        let applied = BTreeMap::from([(uid("a"), d.fingerprint)]);
        let mut recreated = ns("a", true);
        recreated.uid = "uid-a-2".into();
        let p = plan(&observed(&r, &[recreated], &[], Some(&d), &applied)).unwrap();
        assert_eq!(p.apply, ["a"]);
    }

    #[test]
    fn a_bad_selector_fails_planning_but_never_deletion() {
        let mut r = registry(EcrRegistryStatus {
            managed_namespaces: vec!["a".into()],
            ..Default::default()
        });
        r.spec.namespaces.selector = Some(LabelSelector {
            match_expressions: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: "team".into(),
                    operator: "Equals".into(),
                    values: None,
                },
            ]),
            ..Default::default()
        });
        let nss = [ns("a", true)];
        let err = plan(&observed(&r, &nss, &[], None, &BTreeMap::new())).unwrap_err();
        assert!(err.contains("spec.namespaces.selector"), "{err}");
        let none = BTreeMap::new();
        let mut o = observed(&r, &nss, &[], None, &none);
        o.deleting = true;
        assert_eq!(plan(&o).unwrap().remove.len(), 1);
    }

    #[test]
    fn an_entry_the_user_added_is_never_removed() {
        let r = registry(Default::default());
        let d = desired(&r);
        let sa = ObservedServiceAccount {
            namespace: "b".into(),
            name: "default".into(),
            image_pull_secrets: vec!["reg".into()],
            ..Default::default()
        };
        let p = plan(&observed(
            &r,
            &[ns("b", false)],
            &[sa],
            Some(&d),
            &BTreeMap::new(),
        ))
        .unwrap();
        assert!(p.service_accounts.is_empty());
    }

    #[test]
    fn renaming_the_secret_moves_it() {
        let mut r = registry(EcrRegistryStatus {
            managed_namespaces: vec!["a".into()],
            secret_name: Some("old".into()),
            ..Default::default()
        });
        r.spec.secret.name = Some("new".into());
        let d = desired(&r);
        let sa = ObservedServiceAccount {
            namespace: "a".into(),
            name: "default".into(),
            image_pull_secrets: vec!["old".into()],
            added_by_operator: vec!["old".into()],
            ..Default::default()
        };
        let applied = BTreeMap::from([(uid("a"), d.fingerprint)]);
        let p = plan(&observed(&r, &[ns("a", true)], &[sa], Some(&d), &applied)).unwrap();
        assert_eq!(p.apply, ["a"]);
        assert_eq!(p.remove[0].name, "old");
        assert_eq!(p.service_accounts[0].image_pull_secrets, ["new"]);
    }

    #[test]
    fn the_older_registry_wins_a_shared_secret_name() {
        let mut older = registry(Default::default());
        older.metadata.name = Some("older".into());
        older.spec.secret.name = Some("pull".into());
        older.metadata.creation_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        let mut newer = older.clone();
        newer.metadata.name = Some("newer".into());
        newer.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(1),
            ));
        let claims = claims_by_others(&[
            (&newer, vec!["a".into(), "b".into()]),
            (&older, vec!["a".into()]),
        ]);
        assert!(claims["older"].is_empty());
        assert_eq!(
            claims["newer"],
            BTreeMap::from([("a".to_string(), "older".to_string())])
        );
    }
}
