//! What gets deployed: the artifact kinds, each a folder of its own (its configuration, plan,
//! steps, rollout strategies), and the registration list that hands them to the engine.

mod builtin;
pub mod dags;
pub mod image;
pub mod lambda;
mod plan;

pub use builtin::{Builtin, register_builtin};

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::rollout::Strategy;
use image::rollout::ImageRollout;
use lambda::shift::LambdaRollout;

/// The kind of an artifact: decides how it is published and which rollout strategies apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    /// A container image pushed to ECR.
    Image,
    /// A folder of Airflow DAG files synced to an S3 bucket.
    Dags,
    /// A zipped Lambda function.
    Lambda,
}

impl ArtifactKind {
    /// The name used in `deploy.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Image => "image",
            ArtifactKind::Dags => "dags",
            ArtifactKind::Lambda => "lambda",
        }
    }
}

impl ArtifactKind {
    /// The rollout strategies that apply to this kind, in the order `deploy.toml` documents them.
    ///
    /// ```
    /// use deploy_core::kinds::ArtifactKind;
    /// use deploy_core::rollout::Strategy;
    /// assert_eq!(ArtifactKind::Dags.strategies(), [Strategy::S3Sync]);
    /// assert_eq!(ArtifactKind::of_strategy(Strategy::LambdaCanary), ArtifactKind::Lambda);
    /// ```
    pub fn strategies(self) -> &'static [Strategy] {
        match self {
            ArtifactKind::Image => &[
                Strategy::EcsRolling,
                Strategy::CodedeployBlueGreen,
                Strategy::EcsBlueGreen,
                Strategy::TaskDefinitions,
                Strategy::None,
            ],
            ArtifactKind::Dags => &[Strategy::S3Sync],
            ArtifactKind::Lambda => &[
                Strategy::LambdaAllAtOnce,
                Strategy::LambdaCanary,
                Strategy::LambdaLinear,
            ],
        }
    }

    /// Whether [`crate::ops::rollback`] can restore an earlier release of this kind from what
    /// the ledger recorded of it: DAGs (their recorded S3 object versions). Images and Lambda
    /// functions go back by releasing the earlier version.
    pub fn restores_from_ledger(self) -> bool {
        matches!(self, ArtifactKind::Dags)
    }

    /// The kind `strategy` rolls out (a new strategy must say which, or this does not compile).
    pub fn of_strategy(strategy: Strategy) -> ArtifactKind {
        match strategy {
            Strategy::EcsRolling
            | Strategy::CodedeployBlueGreen
            | Strategy::EcsBlueGreen
            | Strategy::TaskDefinitions
            | Strategy::None => ArtifactKind::Image,
            Strategy::S3Sync => ArtifactKind::Dags,
            Strategy::LambdaAllAtOnce | Strategy::LambdaCanary | Strategy::LambdaLinear => {
                ArtifactKind::Lambda
            }
        }
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

/// One artifact as it applies to one environment: overrides merged, placeholders expanded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArtifactSpec {
    /// The artifact's name (its key under `[artifacts]`).
    pub name: String,
    /// Kind-specific settings.
    #[serde(flatten)]
    pub detail: ArtifactDetail,
}

impl ArtifactSpec {
    /// The artifact's kind.
    pub fn kind(&self) -> ArtifactKind {
        match self.detail {
            ArtifactDetail::Image(_) => ArtifactKind::Image,
            ArtifactDetail::Dags(_) => ArtifactKind::Dags,
            ArtifactDetail::Lambda(_) => ArtifactKind::Lambda,
        }
    }
}

/// Kind-specific part of an [`ArtifactSpec`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ArtifactDetail {
    /// A container image.
    Image(ImageSpec),
    /// Airflow DAG files.
    Dags(DagsSpec),
    /// A Lambda function.
    Lambda(LambdaSpec),
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

/// An Airflow DAG folder synced to S3.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DagsSpec {
    /// The local DAG folder.
    pub source: PathBuf,
    /// The environment's DAG bucket.
    pub bucket: String,
    /// Key prefix inside the bucket, ending with `/` (or empty).
    pub prefix: String,
    /// How `.airflowignore` files are read.
    pub ignore_syntax: dags::IgnoreSyntax,
    /// When not empty, only files matching one of these globs ship.
    pub include: Vec<String>,
    /// Files matching one of these globs never ship.
    pub exclude: Vec<String>,
    /// The largest share (0..=1) of the files in the bucket a sync deletes without
    /// `--allow-mass-delete`.
    pub max_delete_share: f64,
}

/// A Lambda function deployed from a zip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LambdaSpec {
    /// A directory to zip, or a `.zip` file.
    pub source: Option<PathBuf>,
    /// The function name in the environment.
    pub function: String,
    /// The alias that receives traffic.
    pub alias: String,
    /// Bucket for zips larger than the direct-upload limit.
    pub artifact_bucket: Option<String>,
    /// Globs (relative to the source directory) never zipped.
    pub exclude: Vec<String>,
    /// The function's handler (`main.handler`): its file must be in the zip.
    pub handler: Option<String>,
    /// Published versions kept (older ones no alias points at are deleted).
    pub keep_versions: u32,
    /// Environment variables merged into the function configuration.
    pub env: BTreeMap<String, String>,
    /// How traffic moves to the new version.
    pub rollout: LambdaRollout,
}
