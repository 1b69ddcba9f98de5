//! Where an EcrRegistry's secrets live: the namespaces it wrote to, so it can take
//! its secret back out of a namespace that leaves the selection, even one that left
//! while the operator was down (it may not list Secrets outside its namespace).
//!
//! Kept in ConfigMaps in the operator's namespace, not in the status: the status
//! goes to every watcher of EcrRegistries on every write, and 10,000 namespace
//! names would be 230 KB of it (an object is capped at 1.5 MiB). The names are
//! spread over [`CHUNKS`] ConfigMaps by a hash of the name, so a new namespace
//! rewrites one small ConfigMap, and one registry can record ~600,000 namespaces.
//! Each ConfigMap is owned by its EcrRegistry: Kubernetes deletes them with it.
//!
//! Release 0.1 kept the list in `status.managedNamespaces`: read while no record
//! exists, and dropped from the status once the record is written.

use crate::crd::ecr_registry::EcrRegistry;
use crate::crd::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::registry::plan::Plan;
use crate::registry::status::SyncOutcome;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// ConfigMaps per EcrRegistry, at most.
pub const CHUNKS: usize = 16;
/// Label of every record ConfigMap (what the operator watches).
pub const RECORD_LABEL: &str = "ecr-operator.io/record";
pub const RECORD_LABEL_VALUE: &str = "namespaces";
/// Label with the UID of the EcrRegistry a record ConfigMap belongs to (what it
/// is listed by; a UID is a valid label value, a name may be too long).
pub const REGISTRY_UID_LABEL: &str = "ecr-operator.io/registry-uid";
/// Annotation naming that EcrRegistry, for people.
pub const REGISTRY_ANNOTATION: &str = "ecr-operator.io/registry";
/// The data key: namespace names, one per line, sorted.
pub const DATA_KEY: &str = "namespaces";

/// The chunk a namespace is recorded in. SHA-256: the cluster keeps the result,
/// so it must not change with the Rust release.
pub fn chunk_of(namespace: &str) -> usize {
    usize::from(Sha256::digest(namespace.as_bytes())[0]) % CHUNKS
}

/// Name of chunk `chunk` of `registry`'s record: `ecr-registry.<name>.<chunk>`,
/// or a hash of the name where that would be too long for a ConfigMap.
pub fn config_map_name(registry: &str, chunk: usize) -> String {
    let name = format!("ecr-registry.{registry}.{chunk}");
    if name.len() <= 253 {
        return name;
    }
    let hash: String = Sha256::digest(registry.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("ecr-registry.{hash}.{chunk}")
}

/// The namespaces recorded for `registry` in `config_maps` (its record
/// ConfigMaps, as listed by its UID label), or None when it has no record yet.
/// Only ConfigMaps owned by this very object count: a registry deleted and
/// created again under the same name starts afresh.
pub fn read<'a>(
    registry: &EcrRegistry,
    config_maps: impl IntoIterator<Item = &'a ConfigMap>,
) -> Option<BTreeSet<String>> {
    let uid = registry.uid()?;
    let mut found = false;
    let mut names = BTreeSet::new();
    for cm in config_maps {
        let owned = cm.owner_references().iter().any(|o| o.uid == uid);
        if !owned {
            continue;
        }
        found = true;
        let data = cm.data.as_ref().and_then(|d| d.get(DATA_KEY));
        names.extend(data.into_iter().flat_map(|d| d.lines()).map(String::from));
    }
    found.then_some(names)
}

/// Where the secrets are after a pass: `managed` before it, less the namespaces
/// whose secret was removed or that are gone, plus those written.
pub fn next(managed: &BTreeSet<String>, plan: &Plan, outcome: &SyncOutcome) -> BTreeSet<String> {
    let mut next = managed.clone();
    for ns in outcome.removed.iter().chain(&plan.forget) {
        next.remove(ns);
    }
    next.extend(outcome.written.iter().cloned());
    next
}

/// The chunks of `managed`, each as its data text (empty chunks included, as "").
pub fn chunks(managed: &BTreeSet<String>) -> Vec<String> {
    let mut chunks: Vec<Vec<&str>> = vec![Vec::new(); CHUNKS];
    for ns in managed {
        chunks[chunk_of(ns)].push(ns);
    }
    chunks.into_iter().map(|c| c.join("\n")).collect()
}

/// Chunk `chunk` of `registry`'s record, holding `text`.
pub fn config_map(
    registry: &EcrRegistry,
    namespace: &str,
    chunk: usize,
    text: String,
) -> ConfigMap {
    let name = registry.name_any();
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name(&name, chunk)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
                (RECORD_LABEL.to_string(), RECORD_LABEL_VALUE.to_string()),
                (
                    REGISTRY_UID_LABEL.to_string(),
                    registry.uid().unwrap_or_default(),
                ),
            ])),
            annotations: Some(BTreeMap::from([(REGISTRY_ANNOTATION.to_string(), name)])),
            owner_references: registry.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(DATA_KEY.to_string(), text)])),
        ..Default::default()
    }
}

/// The chunks whose text differs between `old` and `new` (indexes).
pub fn changed(old: &BTreeSet<String>, new: &BTreeSet<String>) -> Vec<usize> {
    let (old, new) = (chunks(old), chunks(new));
    (0..CHUNKS).filter(|&i| old[i] != new[i]).collect()
}

/// The selector that lists `registry`'s record ConfigMaps.
pub fn selector(registry: &EcrRegistry) -> String {
    format!(
        "{RECORD_LABEL}={RECORD_LABEL_VALUE},{REGISTRY_UID_LABEL}={}",
        registry.uid().unwrap_or_default()
    )
}

/// Loads `registry`'s record from the operator's namespace (one list request).
pub async fn load(
    client: &kube::Client,
    namespace: &str,
    registry: &EcrRegistry,
) -> Result<Option<BTreeSet<String>>, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default().labels(&selector(registry)))
        .await?;
    Ok(read(registry, &list.items))
}

/// Whether `registry` has recorded its secret in namespace `ns` (one get), or
/// listed it in its status as release 0.1 did.
pub async fn contains(
    client: &kube::Client,
    namespace: &str,
    registry: &EcrRegistry,
    ns: &str,
) -> Result<bool, kube::Error> {
    if let Some(s) = &registry.status
        && s.managed_namespaces.iter().any(|m| m == ns)
    {
        return Ok(true);
    }
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let name = config_map_name(&registry.name_any(), chunk_of(ns));
    Ok(api
        .get_opt(&name)
        .await?
        .and_then(|cm| read(registry, [&cm]))
        .is_some_and(|names| names.contains(ns)))
}

/// Writes the chunks that differ between `old` and `new` (server-side apply;
/// an emptied chunk is deleted).
pub async fn write(
    client: &kube::Client,
    namespace: &str,
    registry: &EcrRegistry,
    old: &BTreeSet<String>,
    new: &BTreeSet<String>,
) -> Result<(), kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let texts = chunks(new);
    let name = registry.name_any();
    for i in changed(old, new) {
        let cm_name = config_map_name(&name, i);
        if texts[i].is_empty() {
            match api.delete(&cm_name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        let cm = config_map(registry, namespace, i, texts[i].clone());
        let params = PatchParams::apply(crate::crd::FIELD_MANAGER).force();
        api.patch(&cm_name, &params, &Patch::Apply(&cm)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ecr_registry;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn chunks_are_pinned_because_the_cluster_stores_them() {
        // SHA-256("default")[0] = 0x37 = 55 → 55 % 16 = 7.
        assert_eq!(chunk_of("default"), 7);
        assert_eq!(config_map_name("prod", 7), "ecr-registry.prod.7");
        let long = "r".repeat(250);
        let hashed = config_map_name(&long, 3);
        assert!(hashed.starts_with("ecr-registry.") && hashed.ends_with(".3"));
        assert_eq!(hashed.len(), "ecr-registry.".len() + 32 + 2);
    }

    #[test]
    fn a_new_namespace_changes_one_chunk() {
        let old = set(&["a", "b", "c"]);
        let mut new = old.clone();
        new.insert("d".into());
        assert_eq!(changed(&old, &new), [chunk_of("d")]);
        assert!(changed(&new, &new).is_empty());
    }

    #[test]
    fn the_record_round_trips_through_its_config_maps() {
        let r = ecr_registry("prod");
        let managed = set(&["a", "b", "team-x"]);
        let cms: Vec<ConfigMap> = chunks(&managed)
            .into_iter()
            .enumerate()
            .filter(|(_, text)| !text.is_empty())
            .map(|(i, text)| config_map(&r, "ecr-operator", i, text))
            .collect();
        assert_eq!(read(&r, &cms), Some(managed));
        assert_eq!(read(&r, &[]), None, "no record yet");
        // Another object of the same name (deleted and created again) has none.
        let mut other = r.clone();
        other.metadata.uid = Some("another-uid".into());
        assert_eq!(read(&other, &cms), None);
    }
}
