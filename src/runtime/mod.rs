//! The runtime shell, shared by both controllers and knowing neither CRD:
//! logging, metrics, the admin server, the Kubernetes client, cached watches
//! and per-object backoff.

pub mod admin;
pub mod backoff;
pub mod kube_client;
pub mod logging;
pub mod metrics;
pub mod watches;
