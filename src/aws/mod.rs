//! AWS: identities and their SDK configuration, ECR authorization tokens, the
//! registry host names they open, and the Docker config that carries them.

pub mod auth_token;
pub mod base_config;
pub mod docker_config;
pub mod identity;
pub mod registry_hosts;
