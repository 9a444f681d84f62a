//! Lambda functions: zips uploaded, versions published, aliases moved behind an alias
//! ([`super::LambdaSpec`]).

pub(crate) mod config;
pub(crate) mod facts;
mod iam;
pub(crate) mod kind;
mod latest;
pub(crate) mod names;
pub(crate) mod output;
pub mod package;
pub mod plan;
pub(crate) mod promote;
pub(crate) mod publish;
pub mod restore;
pub mod settings;
pub mod shift;
pub(crate) mod status;
pub(crate) mod steps;
mod unchanged;

use std::sync::Arc;

use crate::engine::Engine;
use crate::plan::ActionInput;
use plan::{PromoteLambda, PublishLambda};
use settings::LambdaSettings;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use shift::LambdaRollout;

/// The exact code a release refers to, kept in records as an
/// [`ArtifactRef`](crate::ledger::ArtifactRef).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LambdaRef {
    /// Base64 SHA-256 of the zip, as Lambda reports `CodeSha256`.
    pub code_sha256: String,
    /// Published Lambda version number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_version: Option<String>,
    /// Where the zip is kept (`s3://<artifact_bucket>/lambda/<sha256 hex>.zip`), for
    /// promotions; absent without an `artifact_bucket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
}

impl crate::ledger::KindRef for LambdaRef {
    const KIND: &'static str = "lambda";

    fn content_id(&self) -> &str {
        &self.code_sha256
    }
}

/// Registers the Lambda publish and the alias shift with `engine`.
pub fn register(engine: &mut Engine, settings: LambdaSettings) {
    let settings = Arc::new(settings);
    engine.register(
        PublishLambda::TYPE,
        Arc::new(steps::PublishStep(settings.clone())),
    );
    engine.register(
        PromoteLambda::TYPE,
        Arc::new(promote::PromoteStep(settings.clone())),
    );
    engine.register(restore::RestoreLambda::TYPE, Arc::new(restore::RestoreStep));
    crate::kinds::lambda::shift::register(engine, settings.shift.clone());
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
