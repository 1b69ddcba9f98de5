//! Helpers shared by the suites; no tests here.

/// The test bed: started once per run (or reused from the environment), clients, unique names.
pub mod bed;
/// Client of the bed's fault-injecting AWS proxy.
pub mod faults;
/// Creating and observing CRDs, EcrRegistries, Secrets and labelled namespaces.
pub mod fixtures;
/// IAM users and roles on moto B, and the operator pointed there.
pub mod iam;
/// Scanning logs, status, Events and metrics for secret values.
pub mod leaks;
/// The real operator binary run as a child process for one test.
pub mod operator;
/// A docker-registry of one test's own with htpasswd auth for a chosen password.
pub mod private_registry;
/// A fault proxy of one test's own in front of the bed's second registry.
pub mod registry_faults;

/// An HTTP client for the tests' own requests. reqwest is built without a TLS
/// provider of its own (the binary has one stack, aws-lc-rs), so it is installed
/// first: a test that builds its client before anything else did would panic.
pub fn http_client() -> reqwest::Client {
    ecr_operator::oci::install_crypto_provider();
    reqwest::Client::new()
}
