//! How a published artifact reaches what runs: strategies and their resolved settings.

mod cleanup;
pub mod codedeploy;
pub mod ecs;
pub mod ecs_blue_green;
pub(crate) mod ecs_rolling;
pub mod gates;
pub mod image;
pub mod lambda;
pub mod plan;
pub mod poller;
pub mod schedules;
pub mod settings;
pub mod task_definition;
pub(crate) mod task_definitions;
pub(crate) mod verify;

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

/// Rollout of an image artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "kebab-case")]
pub enum ImageRollout {
    /// ECS rolling update.
    EcsRolling(EcsService),
    /// CodeDeploy blue/green.
    CodedeployBlueGreen {
        /// The ECS service CodeDeploy deploys to.
        #[serde(flatten)]
        service: EcsService,
        /// CodeDeploy application name.
        application: String,
        /// CodeDeploy deployment group name.
        deployment_group: String,
        /// The container port the load balancer sends to (default: the service's
        /// `loadBalancers` entry for the container).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container_port: Option<u16>,
        /// Lambda functions the AppSpec's `Hooks` name, by CodeDeploy event.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        lifecycle_hooks: Vec<LifecycleHook>,
    },
    /// ECS's own blue/green, canary or linear deployment.
    EcsBlueGreen(EcsBlueGreen),
    /// New revisions of task-definition families, picked up by the next scheduled run.
    TaskDefinitions(JobFamilies),
    /// Publish only.
    None,
}

impl ImageRollout {
    /// The strategy this rollout uses.
    pub fn strategy(&self) -> Strategy {
        match self {
            ImageRollout::EcsRolling(_) => Strategy::EcsRolling,
            ImageRollout::CodedeployBlueGreen { .. } => Strategy::CodedeployBlueGreen,
            ImageRollout::EcsBlueGreen(_) => Strategy::EcsBlueGreen,
            ImageRollout::TaskDefinitions(_) => Strategy::TaskDefinitions,
            ImageRollout::None => Strategy::None,
        }
    }
}

/// ECS's own blue/green deployment of a service (`deploymentConfiguration.strategy`): the
/// alternate target group and listener rules come from the service's `loadBalancers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EcsBlueGreen {
    /// The service.
    #[serde(flatten)]
    pub service: EcsService,
    /// How traffic moves.
    pub shift: TrafficShift,
    /// How long the old tasks are kept after all traffic moved (`bakeTimeInMinutes`).
    pub bake_minutes: u32,
    /// Lambda functions ECS calls at lifecycle stages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lifecycle_hooks: Vec<LifecycleHook>,
}

/// How ECS moves production traffic to the new tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrafficShift {
    /// All at once (`BLUE_GREEN`).
    BlueGreen,
    /// A share first, the rest after a bake (`CANARY`).
    Canary {
        /// `canaryPercent`.
        percent: f64,
        /// `canaryBakeTimeInMinutes`.
        bake_minutes: u32,
    },
    /// Equal steps (`LINEAR`).
    Linear {
        /// `stepPercent`.
        percent: f64,
        /// `stepBakeTimeInMinutes`.
        interval_minutes: u32,
    },
}

/// A Lambda function called at lifecycle stages of a deployment (ECS's own blue/green: its
/// stages and a role; CodeDeploy: its hook events, no role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleHook {
    /// The function's ARN.
    pub function: String,
    /// `lifecycleStages`, as ECS names them (`POST_TEST_TRAFFIC_SHIFT`).
    pub stages: Vec<String>,
    /// The role ECS assumes to call the function (empty for CodeDeploy).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
}

/// Task-definition families whose next revision gets the image, for jobs that run by family
/// (`RunTask`, Airflow's ECS operator) or on a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFamilies {
    /// Families to register a revision in.
    pub families: Vec<String>,
    /// The container whose image changes.
    pub container: String,
    /// Cluster for `pre_deploy`, if any.
    pub cluster: Option<String>,
    /// Old revisions to keep per family (older ones are deregistered).
    pub keep_revisions: u32,
    /// One-off task that must exit 0 first.
    pub pre_deploy: Option<PreDeploy>,
    /// EventBridge rules (`rule` or `bus/rule`) whose ECS targets follow the new revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<String>,
    /// EventBridge Scheduler schedules (`name` or `group/name`) whose ECS target follows the
    /// new revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduler_schedules: Vec<String>,
}

/// An ECS service and the container in it whose image changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EcsService {
    /// Cluster name.
    pub cluster: String,
    /// Service name.
    pub service: String,
    /// Container name in the task definition.
    pub container: String,
    /// Old task-definition revisions to keep (older ones are deregistered).
    pub keep_revisions: u32,
    /// One-off task (database migration) that must exit 0 before the rollout.
    pub pre_deploy: Option<PreDeploy>,
    /// HTTP check that must pass after the rollout.
    pub health_check: Option<HealthCheck>,
    /// How long to wait for the service to become stable.
    #[serde(with = "crate::duration_serde")]
    pub timeout: Duration,
    /// CloudWatch alarms that fail (and roll back) the deployment when they go to ALARM
    /// (`deploymentConfiguration.alarms`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<String>,
    /// Give up as soon as tasks of the new revision keep failing to start, before the
    /// circuit breaker's threshold.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_fast: bool,
}

/// A one-off ECS task run before a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreDeploy {
    /// Task-definition family to run (with the new image).
    pub task_definition: String,
    /// Command override.
    pub command: Vec<String>,
    /// How long the task may run.
    #[serde(with = "crate::duration_serde")]
    pub timeout: Duration,
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

/// Rollout of a Lambda function behind an alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LambdaRollout {
    /// The strategy (one of the `lambda-*` ones).
    pub strategy: Strategy,
    /// Cumulative traffic percentages on the new version, ending at 100.
    pub steps: Vec<u32>,
    /// Wait between steps.
    #[serde(with = "crate::duration_serde")]
    pub interval: Duration,
    /// CloudWatch alarms that must stay OK between steps.
    pub alarms: Vec<String>,
    /// HTTP check between steps.
    pub health_check: Option<HealthCheck>,
    /// The new version's `Errors` (CloudWatch sum over the interval) that stop the rollout
    /// when exceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_errors: Option<u64>,
}
