//! Planning: a pure function from observed state to the writes that make it right.
//!
//! Nothing here talks to the API; `apply` carries the plan out.

use crate::crd::ecr_registry::{EcrRegistry, NamespaceFailure};
use crate::registry::desired_secret::DesiredSecret;
use crate::registry::namespace_selection::{NamespaceMatcher, ObservedNamespace};
use std::collections::{BTreeMap, BTreeSet};

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
}

/// Everything the plan depends on.
pub struct Observed<'a> {
    pub registry: &'a EcrRegistry,
    pub namespaces: &'a [ObservedNamespace],
    pub service_accounts: &'a [ObservedServiceAccount],
    /// Namespaces where an older EcrRegistry writes a secret of the same name.
    pub claimed_by_others: &'a BTreeMap<String, String>,
    /// The secret to write, or None while no token is available (nothing is written,
    /// nothing that exists is removed for that reason).
    pub desired: Option<&'a DesiredSecret>,
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

pub fn plan(observed: &Observed<'_>) -> Result<Plan, String> {
    let registry = observed.registry;
    let status = registry.status.clone().unwrap_or_default();
    let secret_name = registry.secret_name();
    let old_secret_name = status
        .secret_name
        .clone()
        .unwrap_or_else(|| secret_name.clone());
    // Deletion needs no selector: a bad one never blocks it.
    let matcher = match observed.deleting {
        true => None,
        false => Some(NamespaceMatcher::new(&registry.spec.namespaces)?),
    };
    let managed: BTreeSet<&str> = status
        .managed_namespaces
        .iter()
        .map(String::as_str)
        .collect();
    let existing: BTreeMap<&str, &ObservedNamespace> = observed
        .namespaces
        .iter()
        .map(|ns| (ns.name.as_str(), ns))
        .collect();

    let mut p = Plan::default();
    let mut writable = BTreeSet::new();
    for ns in observed.namespaces {
        let selected = matcher.as_ref().is_some_and(|m| m.matches(ns));
        if ns.terminating || !selected {
            continue;
        }
        p.selected.push(ns.name.clone());
        if let Some(other) = observed.claimed_by_others.get(&ns.name) {
            p.conflicts.push(NamespaceFailure {
                namespace: ns.name.clone(),
                reason: "SecretConflict".into(),
                message: format!(
                    "EcrRegistry {other} already writes a secret named {secret_name} here; give one of them another spec.secret.name"
                ),
            });
            continue;
        }
        writable.insert(ns.name.as_str());
        match observed.desired {
            Some(d)
                if observed.applied.get(&ns.uid) != Some(&d.fingerprint)
                    || secret_name != old_secret_name =>
            {
                p.apply.push(ns.name.clone())
            }
            _ if managed.contains(ns.name.as_str()) => p.keep.push(ns.name.clone()),
            _ => {}
        }
    }
    p.selected.sort();
    p.apply.sort();

    for ns in &managed {
        // A namespace that is gone took its secret with it; a terminating one will.
        let Some(observed_ns) = existing.get(ns) else {
            p.forget.push(ns.to_string());
            continue;
        };
        if observed_ns.terminating {
            continue;
        }
        if !writable.contains(ns) || old_secret_name != secret_name {
            p.remove.push(SecretRemoval {
                namespace: ns.to_string(),
                name: old_secret_name.clone(),
            });
        }
    }

    let wanted_sas: BTreeSet<&str> = registry
        .spec
        .service_accounts
        .iter()
        .map(String::as_str)
        .collect();
    let name = registry.metadata.name.clone().unwrap_or_default();
    for sa in observed.service_accounts {
        let ns = sa.namespace.as_str();
        let wanted = writable.contains(ns)
            && wanted_sas.contains(sa.name.as_str())
            && (observed.desired.is_some() || managed.contains(ns));
        // Bare 0.1 entries are ours only where we select or selected.
        let legacy_ours = writable.contains(ns) || managed.contains(ns);
        let ours = |entry: &str, secret: &str| {
            entry == own_entry(&name, secret) || (legacy_ours && entry == secret)
        };
        let mut secrets = sa.image_pull_secrets.clone();
        let mut added = sa.added_by_operator.clone();
        if old_secret_name != secret_name && added.iter().any(|e| ours(e, &old_secret_name)) {
            secrets.retain(|s| *s != old_secret_name);
            added.retain(|e| !ours(e, &old_secret_name));
        }
        let has = secrets.contains(&secret_name);
        let mine = added.iter().any(|e| ours(e, &secret_name));
        let own = own_entry(&name, &secret_name);
        if wanted && (!has || mine) {
            if !has {
                secrets.push(secret_name.clone());
            }
            // Recorded (or rewritten from a bare 0.1 entry) as this registry's own.
            if !added.contains(&own) {
                added.retain(|e| !ours(e, &secret_name));
                added.push(own);
            }
        } else if !wanted && mine {
            secrets.retain(|s| *s != secret_name);
            added.retain(|e| !ours(e, &secret_name));
        }
        if secrets != sa.image_pull_secrets || added != sa.added_by_operator {
            p.service_accounts.push(ServiceAccountChange {
                namespace: sa.namespace.clone(),
                name: sa.name.clone(),
                resource_version: sa.resource_version.clone(),
                image_pull_secrets: secrets,
                added_by_operator: added,
            });
        }
    }
    Ok(p)
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
            region: "us-east-1".into(),
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
            terminating: false,
        }
    }

    fn uid(ns: &str) -> String {
        format!("uid-{ns}")
    }

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
        Observed {
            registry: r,
            namespaces: nss,
            service_accounts: sas,
            claimed_by_others: &NONE,
            desired,
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
