//! The EcrMirror controller: runs a Job (or CronJob) that copies an image into
//! ECR or out of it, and reports the copy in the EcrMirror's status.
//!
//! [`controller`] drives each pass; [`allowance`] (the cluster admin's tenancy
//! gate), [`plan`], [`job`], [`pods`] and [`status`] decide (pure);
//! `apply` and `ecr` talk to the Kubernetes API and to ECR.

pub mod allowance;
mod apply;
pub mod controller;
mod ecr;
pub mod job;
pub mod plan;
pub mod pods;
pub mod status;
