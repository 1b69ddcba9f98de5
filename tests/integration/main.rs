//! Integration tests on the test bed: a real control plane, moto behind the fault
//! proxy, and a registry that accepts exactly ECR's credentials. One binary, so
//! the bed is started once per run and shared by tests running in parallel.
//! `support/` holds the helpers; every other module is a suite (tests/README.md).

mod support;

mod bad_input;
mod bed_smoke;
mod bench;
mod cli;
mod cli_mirror;
mod cli_mirror_auth;
mod cli_mirror_local;
mod cli_mirror_more;
mod cli_mirror_retries;
mod cli_repos;
mod crd_validation;
mod credentials;
mod deploy;
mod ecr_mirror;
mod faults;
mod least_privilege;
mod namespace_roles;
mod registry_behaviour;
mod registry_regions;
mod registry_truth;
mod restarts;
mod runtime;
