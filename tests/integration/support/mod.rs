//! Helpers shared by the suites; no tests here.

/// The test bed: started once per run (or reused from the environment), clients, unique names.
pub mod bed;
/// Client of the bed's fault-injecting AWS proxy.
pub mod faults;
/// Creating and observing CRDs, EcrRegistries, Secrets and labelled namespaces.
pub mod fixtures;
/// The real operator binary run as a child process for one test.
pub mod operator;
