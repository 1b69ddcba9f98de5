//! The EcrRegistry controller: keeps a `kubernetes.io/dockerconfigjson` Secret
//! with a fresh ECR token in every selected namespace.

pub mod apply;
pub mod controller;
pub mod desired_secret;
pub mod namespace_selection;
pub mod plan;
pub mod status;
pub mod token;
