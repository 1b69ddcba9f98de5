//! The binary's subcommands, one file each. This is the edge: errors are `anyhow`.

pub mod aws_args;
pub mod exit;
pub mod mirror;
pub mod mirror_login;
pub mod repos;
pub mod run;
pub mod token;
