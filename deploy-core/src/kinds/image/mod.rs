//! Container images: read from a local layout or archive or another registry, pushed to the
//! environment's ECR repository by digest, scanned, promoted, and rolled out by a strategy of
//! [`rollout`].

pub mod actions;
pub mod archive;
pub(crate) mod config;
pub mod layout;
pub mod plan;
pub mod publish;
pub mod rollout;
pub mod scan;
pub mod steps;

pub(crate) use crate::registry::source::{sha256_of, walk};
pub use crate::registry::source::{
    BlobLocation, BlobStore, ImageContents, SourceError,
};
