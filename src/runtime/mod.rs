//! The runtime shell, shared by both controllers and knowing neither CRD:
//! logging, metrics, the admin server, the Kubernetes client, cached watches,
//! per-object backoff, conditions, Events, the status writer, leader election,
//! the admission fence probe and heap trimming.

pub mod admin;
pub mod backoff;
pub mod conditions;
pub mod events;
pub mod fence;
pub mod heap;
pub mod kube_client;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod status;
pub mod watches;
