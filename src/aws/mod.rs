//! AWS: identities and their SDK configuration, ECR authorization tokens, the
//! registry host names they open, the Docker config that carries them, and one
//! mapping of AWS failures to errors.

pub mod auth_token;
pub mod base_config;
pub mod docker_config;
pub mod failure;
pub mod identity;
pub mod rate_limit;
pub mod registry_hosts;
pub mod web_identity;
