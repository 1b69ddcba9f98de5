//! The EcrMirror controller: runs a Job (or CronJob) that copies an image into
//! ECR or out of it, and reports the copy in the EcrMirror's status.
//!
//! [`controller`] drives each pass; [`plan`], [`job`] and [`status`] decide (pure);
//! `apply` and `ecr` talk to the Kubernetes API and to ECR.

mod apply;
pub mod controller;
mod ecr;
pub mod job;
pub mod plan;
pub mod status;
