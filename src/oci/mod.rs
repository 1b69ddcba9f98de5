//! `ecr-operator mirror SOURCE DESTINATION`: copies one image reference from one
//! registry to another, a single-platform manifest or an index with all of its
//! platforms, Docker or OCI media types. Manifests are pushed byte for byte, so
//! every digest in the destination is the source's.
//!
//! - Credentials: Docker config files ([`credentials`]), anonymous where none match.
//! - Blobs already in the destination are not sent again (HEAD first); within one
//!   registry they are mounted across repositories; otherwise they stream from
//!   the source into the destination without being held in memory.
//! - Errors name their cause ([`MirrorError`]).

mod copy;
pub mod credentials;
pub mod error;
pub mod local;
pub mod manifest;
pub mod progress;
pub mod reference;

pub use copy::{
    Options, Source, Transport, install_crypto_provider, is_referrer_tag, mirror, source_tags,
};
pub use credentials::{AuthFiles, Credentials};
pub use error::MirrorError;
pub use manifest::Platform;
pub use progress::{BlobOutcome, ManifestOutcome, NoProgress, Progress, Summary};
pub use reference::ImageRef;
