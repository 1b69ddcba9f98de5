//! The custom resources: their specs, statuses and generated CRD YAML.

pub mod ecr_mirror;
pub mod ecr_registry;
