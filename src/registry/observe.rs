//! What the EcrRegistry controller reads, from its caches only (no request),
//! turned into the plain values that planning takes.

use crate::crd::ecr_registry::{EcrRegistry, ROLE_ARN_ANNOTATION, SA_ROLE_ARN_ANNOTATION};
use crate::registry::namespace_selection::{NamespaceMatcher, ObservedNamespace};
use crate::registry::plan::{self, ADDED_PULL_SECRETS_ANNOTATION, ObservedServiceAccount};
use crate::runtime::watches::Projection;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The namespaces a pass of `registry` can concern: those it selects and those
/// it has its secret in (`managed`). The others are not copied out of the cache:
/// with 10,000 namespaces that copy was most of a pass's work. All of them while
/// the selection does not parse (the plan reports it).
pub fn namespaces(
    cache: &Projection<Arc<ObservedNamespace>>,
    registry: &EcrRegistry,
    managed: &BTreeSet<String>,
) -> Vec<Arc<ObservedNamespace>> {
    let matcher = NamespaceMatcher::new(&registry.spec.namespaces).ok();
    cache
        .read()
        .values()
        .filter(|ns| managed.contains(&ns.name) || matcher.as_ref().is_none_or(|m| m.matches(ns)))
        .cloned()
        .collect()
}

/// What the controller keeps of a namespace (by name): all of them.
pub fn namespace(ns: &PartialObjectMeta<Namespace>) -> (String, Option<Arc<ObservedNamespace>>) {
    let name = ns.name_any();
    let observed = ObservedNamespace {
        name: name.clone(),
        uid: ns.uid().unwrap_or_default(),
        labels: ns.labels().clone(),
        role_arn: ns.annotations().get(ROLE_ARN_ANNOTATION).cloned(),
        terminating: ns.meta().deletion_timestamp.is_some(),
    };
    (name, Some(Arc::new(observed)))
}

/// The ServiceAccounts a pass of `registry` can change: those it lists by name and
/// those carrying the operator's entries (to be removed when no longer wanted).
/// Only those are copied: a registry listing none copies none.
pub fn service_accounts(
    cache: &Projection<ObservedServiceAccount>,
    registry: &EcrRegistry,
) -> Vec<ObservedServiceAccount> {
    let listed = &registry.spec.service_accounts;
    cache
        .read()
        .values()
        .filter(|sa| listed.contains(&sa.name) || !sa.added_by_operator.is_empty())
        .cloned()
        .collect()
}

/// What the controller keeps of a ServiceAccount (by `namespace/name`): only
/// those some registry lists by name (`listed`) and those carrying the operator's
/// entries. In a cluster of many ServiceAccounts most are neither.
pub fn service_account(
    sa: &ServiceAccount,
    listed: &BTreeSet<String>,
) -> (String, Option<ObservedServiceAccount>) {
    let key = format!("{}/{}", sa.namespace().unwrap_or_default(), sa.name_any());
    let added = sa.annotations().get(ADDED_PULL_SECRETS_ANNOTATION);
    if added.is_none() && !listed.contains(&sa.name_any()) {
        return (key, None);
    }
    let observed = ObservedServiceAccount {
        namespace: sa.namespace().unwrap_or_default(),
        name: sa.name_any(),
        resource_version: sa.resource_version().unwrap_or_default(),
        image_pull_secrets: sa
            .image_pull_secrets
            .iter()
            .flatten()
            .map(|r| r.name.clone())
            .collect(),
        added_by_operator: plan::parse_added(added.map(String::as_str)),
        role_arn: sa.annotations().get(SA_ROLE_ARN_ANNOTATION).cloned(),
    };
    (key, Some(observed))
}

/// The ServiceAccount names the registries list (spec.serviceAccounts and
/// spec.auth.webIdentity): what [`service_account`] keeps.
pub fn listed_service_accounts<'a>(
    registries: impl IntoIterator<Item = &'a EcrRegistry>,
) -> BTreeSet<String> {
    registries
        .into_iter()
        .flat_map(|r| {
            r.spec
                .service_accounts
                .iter()
                .chain(web_identity_service_account(r))
        })
        .cloned()
        .collect()
}

/// The ServiceAccount of spec.auth.webIdentity, if any.
pub fn web_identity_service_account(registry: &EcrRegistry) -> Option<&String> {
    let web = registry.spec.auth.as_ref()?.web_identity.as_ref()?;
    Some(&web.service_account)
}

/// The ServiceAccount `namespace/name` as cached.
pub fn one_service_account(
    cache: &Projection<ObservedServiceAccount>,
    namespace: &str,
    name: &str,
) -> Option<ObservedServiceAccount> {
    cache.read().get(&format!("{namespace}/{name}")).cloned()
}

/// The namespaces where an older EcrRegistry claims `registry`'s secret name (see
/// [`plan::claims_by_others`]). Only registries with that secret name are
/// matched against the namespaces: with one secret name each, that is none, and
/// a pass costs O(N), not O(R·N). Registries being deleted claim nothing.
pub fn claims_by_others(
    registry: &EcrRegistry,
    registries: &Store<EcrRegistry>,
    namespaces: &[Arc<ObservedNamespace>],
) -> BTreeMap<String, String> {
    if registry.meta().deletion_timestamp.is_some() {
        return BTreeMap::new();
    }
    let name = registry.name_any();
    let secret = registry.secret_name();
    let registries = registries.state();
    let selections: Vec<(&EcrRegistry, Vec<String>)> = registries
        .iter()
        .filter(|r| r.meta().deletion_timestamp.is_none())
        .filter(|r| r.name_any() != name && r.secret_name() == secret)
        .map(|r| &**r)
        .chain(std::iter::once(registry))
        .filter_map(|r| {
            let m = NamespaceMatcher::new(&r.spec.namespaces).ok()?;
            let selected = namespaces
                .iter()
                .filter(|ns| m.matches(ns))
                .map(|ns| ns.name.clone())
                .collect();
            Some((r, selected))
        })
        .collect();
    plan::claims_by_others(&selections)
        .remove(&name)
        .unwrap_or_default()
}
