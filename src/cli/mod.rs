//! The binary's subcommands, one file each. This is the edge: errors are `anyhow`.

pub mod run;
