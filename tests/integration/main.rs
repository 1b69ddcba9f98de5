//! Integration tests on the test bed: a real control plane, moto behind the fault
//! proxy, and a registry that accepts exactly ECR's credentials. One binary, so
//! the bed is started once per run and shared by tests running in parallel.

mod bed;
mod bench;
mod faults;
mod fixtures;
mod operator;

mod cli;
mod crd_validation;
mod credentials;
mod deploy;
mod ecr_mirror;
mod mirror;
mod registry_behaviour;
mod runtime;
mod smoke;
