//! One status writer for every custom resource: server-side apply of the whole
//! status, so a field left out (an emptied list, a name that is gone) is removed,
//! which a merge patch would keep.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
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
    tracing::debug!(kind = %K::kind(&()), name, "status written");
    Ok(())
}

/// A time for a status, at the precision the API server stores (whole seconds):
/// a status computed again from an unchanged world then equals the stored one,
/// and no write is sent.
pub fn time(t: jiff::Timestamp) -> Time {
    Time(jiff::Timestamp::from_second(t.as_second()).unwrap_or(t))
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_whole_seconds() {
        let t: jiff::Timestamp = "2026-11-30T05:00:01.987654Z".parse().unwrap();
        assert_eq!(super::time(t).0.to_string(), "2026-11-30T05:00:01Z");
    }
}
