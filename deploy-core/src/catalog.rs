//! The catalog: the name of every artifact kind and rollout strategy this library knows, and
//! which strategies roll out which kind. Names only; what each kind does is in its folder under
//! `kinds/`. A new kind or strategy adds its name here.

use std::fmt;

use serde::{Deserialize, Serialize};

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

    /// Whether publishing this kind already changes what runs: DAG files are read by Airflow
    /// as soon as they are in the prefix, so a DAG folder has no publish apart from its
    /// release.
    pub fn publish_goes_live(self) -> bool {
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
    /// The rollout keys the strategy uses besides `strategy`; `lambda-linear` takes `steps`
    /// (when `steps`) or `increment`.
    pub fn rollout_keys(self, steps: bool) -> &'static [&'static str] {
        match self {
            Strategy::EcsRolling => &[
                "cluster",
                "service",
                "container",
                "pre_deploy",
                "keep_revisions",
                "health_check",
                "timeout",
                "alarms",
                "fail_fast",
            ],
            Strategy::CodedeployBlueGreen => &[
                "cluster",
                "service",
                "container",
                "application",
                "deployment_group",
                "container_port",
                "lifecycle_hooks",
                "pre_deploy",
                "keep_revisions",
                "health_check",
                "timeout",
            ],
            Strategy::EcsBlueGreen => &[
                "cluster",
                "service",
                "container",
                "pre_deploy",
                "keep_revisions",
                "health_check",
                "timeout",
                "alarms",
                "ecs_strategy",
                "bake",
                "canary",
                "linear",
                "lifecycle_hooks",
            ],
            Strategy::TaskDefinitions => &[
                "families",
                "container",
                "cluster",
                "keep_revisions",
                "pre_deploy",
                "schedules",
                "scheduler_schedules",
            ],
            Strategy::LambdaAllAtOnce => &["alarms", "max_errors", "health_check"],
            Strategy::LambdaCanary => {
                &["steps", "interval", "alarms", "max_errors", "health_check"]
            }
            Strategy::LambdaLinear if steps => {
                &["steps", "interval", "alarms", "max_errors", "health_check"]
            }
            Strategy::LambdaLinear => &[
                "increment",
                "interval",
                "alarms",
                "max_errors",
                "health_check",
            ],
            Strategy::None | Strategy::S3Sync => &[],
        }
    }

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
