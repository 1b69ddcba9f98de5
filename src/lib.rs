//! ecr-operator keeps Kubernetes image-pull secrets for Amazon ECR fresh.
//!
//! Reconcile is a pipeline: observe (reflector stores, the token cache) →
//! [`plan`] (pure) → [`apply`] (thin API layer) → [`status`] (pure) → write status.

pub mod admin;
pub mod apply;
pub mod auth_token;
pub mod aws_base;
pub mod aws_identity;
pub mod backoff;
pub mod controller;
pub mod docker_config;
pub mod ecr_mirror;
pub mod ecr_registry;
pub mod error;
pub mod kube_client;
pub mod managed_secret;
pub mod metrics;
pub mod mirror;
pub mod mirror_controller;
pub mod mirror_job;
pub mod namespace_selection;
pub mod plan;
pub mod registry_hosts;
pub mod status;
pub mod telemetry;
pub mod token_cache;
pub mod watches;

pub use error::{Error, Result};
