//! Container images: read from a local layout or archive or another registry, pushed to the
//! environment's ECR repository by digest, scanned, promoted, and rolled out by a strategy of
//! [`rollout`].

pub mod actions;
pub mod archive;
pub(crate) mod config;
mod iam;
pub(crate) mod kind;
pub mod layout;
pub(crate) mod plan;
pub(crate) mod publish;
pub mod rollout;
pub(crate) mod scan;
pub(crate) mod steps;
mod unchanged;

pub use crate::registry::source::{BlobLocation, BlobStore, ImageContents, SourceError};
pub(crate) use crate::registry::source::{sha256_of, walk};

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use rollout::ImageRollout;

/// The exact image a release refers to, kept in records as an [`ArtifactRef`](crate::ledger::ArtifactRef).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// Repository (name in ECR, or full registry path).
    pub repository: String,
    /// `sha256:` manifest digest.
    pub digest: String,
}

impl crate::ledger::KindRef for ImageRef {
    const KIND: &'static str = "image";

    fn content_id(&self) -> &str {
        &self.digest
    }
}

/// How vulnerability scan findings gate a promote (or publish).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScanGate {
    /// Do not wait for or read scan results.
    #[default]
    None,
    /// Print the findings, never block.
    Report,
    /// Block when any finding is CRITICAL.
    BlockCritical,
    /// Block when any finding is HIGH or CRITICAL.
    BlockHigh,
}

/// A container image artifact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageSpec {
    /// ECR repository name in the environment's account, e.g. `planwise/api`.
    pub repository: String,
    /// Where the image comes from when publishing.
    pub source: Option<ImageSource>,
    /// Scan gate applied on promote.
    pub scan: ScanGate,
    /// Also apply the scan gate right after a publish (before the release is recorded).
    pub scan_on_publish: bool,
    /// Create the ECR repository when it is missing instead of failing.
    pub create_repository: bool,
    /// Environment variables merged into the container definition.
    pub env: BTreeMap<String, String>,
    /// ECS secrets (`valueFrom` ARNs) merged into the container definition.
    pub secrets: BTreeMap<String, String>,
    /// How a published image reaches running tasks.
    pub rollout: ImageRollout,
}

/// Where an image is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ImageSource {
    /// An OCI image layout directory, optionally one tag of its `index.json`.
    Oci {
        /// The layout directory.
        path: PathBuf,
        /// The `org.opencontainers.image.ref.name` to pick, if the layout holds several images.
        tag: Option<String>,
    },
    /// A tarball written by `docker save`.
    DockerArchive {
        /// The archive file.
        path: PathBuf,
    },
    /// An image in another registry, copied registry to registry.
    Registry {
        /// Registry host (with port, if any).
        registry: String,
        /// Repository path in that registry.
        repository: String,
        /// Tag or `sha256:` digest.
        reference: String,
    },
}
