//! The inputs of the image steps, as they appear in a plan.

use serde::{Deserialize, Serialize};

use crate::kinds::{ImageSource, ScanGate};
use crate::plan::{ActionInput, PromoteSource};

/// Push an image to the environment's ECR repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishImage {
    /// ECR repository.
    pub repository: String,
    /// Where the image comes from.
    pub source: ImageSource,
    /// Tag to set (the version).
    pub tag: String,
    /// Create the repository if it is missing.
    #[serde(default)]
    pub create_repository: bool,
}

impl ActionInput for PublishImage {
    const TYPE: &'static str = "publish-image";

    fn reversibility(&self) -> crate::plan::Reversibility {
        // A pushed image runs nowhere until a later step or the record points at it.
        crate::plan::Reversibility::Nothing
    }
}

/// Copy an image by digest from another environment's repository (mounted when both are in
/// one registry, streamed blob by blob otherwise) and tag it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromoteImage {
    /// ECR repository in this environment.
    pub repository: String,
    /// What is copied.
    pub from: PromoteSource,
    /// Tag to set (the source release's version).
    pub tag: String,
    /// Create the repository if it is missing.
    #[serde(default)]
    pub create_repository: bool,
}

impl ActionInput for PromoteImage {
    const TYPE: &'static str = "promote-image";

    fn reversibility(&self) -> crate::plan::Reversibility {
        // A copied image runs nowhere until a later step or the record points at it.
        crate::plan::Reversibility::Nothing
    }
}

/// Wait for the ECR scan of an image and stop if its findings are above the gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanImage {
    /// Environment whose repository holds the image.
    pub environment: String,
    /// ECR repository.
    pub repository: String,
    /// The image; `null`: the image this plan published for the step's artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The gate.
    pub gate: ScanGate,
}

impl ActionInput for ScanImage {
    const TYPE: &'static str = "scan-image";

    fn reversibility(&self) -> crate::plan::Reversibility {
        crate::plan::Reversibility::Nothing
    }
}

/// Roll back to an image this environment ran before: its digest must still be in the
/// environment's repository (nothing is pushed); the service strategies go back to the task
/// definition revision the release recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreImage {
    /// ECR repository in this environment.
    pub repository: String,
    /// The release restored.
    pub from: PromoteSource,
    /// The task definition revision the release's service ran (its record's
    /// `ecs-task-definition`), for the service strategies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

impl ActionInput for RestoreImage {
    const TYPE: &'static str = "restore-image";

    fn reversibility(&self) -> crate::plan::Reversibility {
        // It only reads: the image is already there.
        crate::plan::Reversibility::Nothing
    }
}
