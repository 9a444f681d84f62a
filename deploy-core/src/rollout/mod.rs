//! How a published artifact reaches what runs: strategies and their resolved settings.

pub mod health;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) mod config;

/// Every rollout strategy of every kind, as written in `deploy.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// ECS `UpdateService` with the deployment circuit breaker (image).
    EcsRolling,
    /// CodeDeploy blue/green deployment of an ECS service (image).
    CodedeployBlueGreen,
    /// ECS's own blue/green, canary or linear deployment of a service (image).
    EcsBlueGreen,
    /// Register new revisions of task-definition families (image).
    TaskDefinitions,
    /// Publish only (image).
    None,
    /// The upload to the DAG bucket is the rollout (dags).
    S3Sync,
    /// Move the alias to the new version at once (lambda).
    LambdaAllAtOnce,
    /// Shift a share of traffic, then the rest (lambda).
    LambdaCanary,
    /// Shift traffic in equal increments (lambda).
    LambdaLinear,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 9] = [
        Strategy::EcsRolling,
        Strategy::CodedeployBlueGreen,
        Strategy::EcsBlueGreen,
        Strategy::TaskDefinitions,
        Strategy::None,
        Strategy::S3Sync,
        Strategy::LambdaAllAtOnce,
        Strategy::LambdaCanary,
        Strategy::LambdaLinear,
    ];

    /// The name used in `deploy.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::EcsRolling => "ecs-rolling",
            Strategy::CodedeployBlueGreen => "codedeploy-blue-green",
            Strategy::EcsBlueGreen => "ecs-blue-green",
            Strategy::TaskDefinitions => "task-definitions",
            Strategy::None => "none",
            Strategy::S3Sync => "s3-sync",
            Strategy::LambdaAllAtOnce => "lambda-all-at-once",
            Strategy::LambdaCanary => "lambda-canary",
            Strategy::LambdaLinear => "lambda-linear",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An HTTP health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// The URL to GET.
    pub url: String,
    /// The status code that means healthy.
    pub expect_status: u16,
    /// A substring the body must contain, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    /// How long to keep trying.
    #[serde(with = "crate::duration_serde")]
    pub timeout: Duration,
    /// Blue/green: the test listener's URL, checked before production traffic moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_url: Option<String>,
}
