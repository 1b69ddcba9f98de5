//! ecr-operator keeps Kubernetes image-pull secrets for Amazon ECR fresh.
//!
//! Two custom resources, each with its own controller:
//!
//! - [`crd::ecr_registry::EcrRegistry`] (cluster-scoped), run by [`registry`]:
//!   observe (reflector stores, the token cache) → plan (pure) → apply (thin API
//!   layer) → status (pure) → write status.
//! - [`crd::ecr_mirror::EcrMirror`] (namespaced), run by [`mirror`]: observe →
//!   render the Job or CronJob (pure) → ensure the ECR repository → apply →
//!   status (pure) → write status.
//!
//! Beside them: [`aws`] (identities, ECR tokens, registry hosts, Docker configs),
//! [`oci`] (the image copy engine, no Kubernetes in it) and [`runtime`] (logging,
//! metrics, the admin server, watches, backoff: nothing CRD-specific).

pub mod aws;
pub mod crd;
pub mod error;
pub mod mirror;
pub mod oci;
pub mod registry;
pub mod runtime;

pub use error::{Error, Result};

#[cfg(test)]
mod test_support;
