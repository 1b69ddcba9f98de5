//! The EcrRegistry controller: keeps a `kubernetes.io/dockerconfigjson` Secret
//! with a fresh ECR token in every selected namespace.
//!
//! [`controller`] drives one pass per EcrRegistry through named steps:
//! [`token`] (the shared token cache and refresh timing, one token per region)
//! → [`desired_secret`] (the secret the regions' tokens make, with [`regions`]) → [`observe`] and [`plan`] (pure, with
//! [`namespace_selection`]) → [`apply`] (thin API layer) → [`status`] (pure) →
//! [`requeue`] (pure, with [`resync`]: drift repair). [`record`] keeps where the
//! secrets live; [`metrics`] are the per-registry series.

pub mod apply;
pub mod controller;
pub mod desired_secret;
pub mod metrics;
pub mod namespace_selection;
pub mod observe;
pub mod plan;
pub mod record;
pub mod regions;
pub mod requeue;
pub mod resync;
pub mod status;
pub mod tenant_tokens;
pub mod tenants;
pub mod token;
