//! One status writer for every custom resource: server-side apply of the whole
//! status, so a field left out (an emptied list, a name that is gone) is removed,
//! which a merge patch would keep.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Applies `status` to the object `name` as `field_manager`, forced: the status
/// belongs to the controller alone.
pub async fn apply<K>(
    api: &Api<K>,
    name: &str,
    field_manager: &str,
    status: &impl Serialize,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch_status(
        name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        })),
    )
    .await?;
    Ok(())
}
