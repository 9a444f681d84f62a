//! Image rollouts: the strategies that bring a published image to what runs (an ECS service
//! by rolling update, CodeDeploy blue/green or ECS's own blue/green; task-definition families
//! for jobs), with the migration gate before them and their settings.

mod cleanup;
pub(crate) mod codedeploy;
pub(crate) mod config;
pub(crate) mod down;
pub(crate) mod ecs;
pub(crate) mod ecs_blue_green;
pub(crate) mod ecs_rolling;
pub(crate) mod facts;
pub(crate) mod image;
pub(crate) mod launch;
pub(crate) mod migration;
pub(crate) mod names;
pub(crate) mod plan;
pub(crate) mod poller;
pub(crate) mod schedules;
pub(crate) mod service;
pub mod settings;
pub(crate) mod status;
pub(crate) mod strategy;
pub mod task_definition;
pub(crate) mod task_definitions;
pub(crate) mod verify;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::rollout::{HealthCheck, Strategy};

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
    /// The ECS service of the three service strategies; `None` for jobs and `none`.
    pub fn service(&self) -> Option<&EcsService> {
        match self {
            ImageRollout::EcsRolling(service)
            | ImageRollout::CodedeployBlueGreen { service, .. }
            | ImageRollout::EcsBlueGreen(EcsBlueGreen { service, .. }) => Some(service),
            ImageRollout::TaskDefinitions(_) | ImageRollout::None => None,
        }
    }

    /// This rollout as a rollback runs it: ECS's own blue/green moves all traffic at once
    /// unless `gradual` (the configured canary or linear shift, with its bakes).
    pub fn for_rollback(&self, gradual: bool) -> ImageRollout {
        match self {
            ImageRollout::EcsBlueGreen(rollout) if !gradual => {
                ImageRollout::EcsBlueGreen(EcsBlueGreen {
                    shift: TrafficShift::BlueGreen,
                    ..rollout.clone()
                })
            }
            other => other.clone(),
        }
    }

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
    /// The down migration: run with the same family and the image of the release being undone
    /// when that release is rolled back after its migration ran; empty: the migration is
    /// irreversible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollback_command: Vec<String>,
    /// How long the task may run.
    #[serde(with = "crate::duration_serde")]
    pub timeout: Duration,
}
