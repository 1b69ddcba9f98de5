//! The EcrMirror controller: runs a Job (or CronJob) that copies an image into
//! ECR or out of it, and reports the copy in the EcrMirror's status.

pub mod controller;
pub mod job;
