//! The custom resources: their specs, statuses and generated CRD YAML, and the
//! names both controllers put on what they write.

pub mod ecr_mirror;
pub mod ecr_registry;
pub mod labels;

/// A DNS-1123 subdomain: the names of Secrets, ServiceAccounts and most objects.
pub(crate) const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A DNS-1123 label: namespace names.
pub(crate) const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// The label on everything the operator writes, and its value.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "ecr-operator";
/// The server-side-apply field manager of the operator's writes.
pub const FIELD_MANAGER: &str = "ecr-operator";

/// The CustomResourceDefinition of `K` as YAML (what `ecr-operator crd` prints and
/// `crds/` holds).
pub fn crd_yaml<K: kube::CustomResourceExt>() -> String {
    serde_saphyr::to_string(&K::crd()).expect("a CRD always serializes")
}
