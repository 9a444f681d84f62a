//! The `rollout` table of an artifact exactly as written: one schema for every strategy of
//! every kind, unknown keys refused; which key belongs to which strategy is
//! [`super::config`]'s table, and each kind resolves its own strategies' settings.

use serde::Deserialize;

use crate::catalog::Strategy;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRollout {
    pub strategy: Strategy,
    // ecs-rolling, codedeploy-blue-green, task-definitions
    pub cluster: Option<String>,
    pub service: Option<String>,
    pub container: Option<String>,
    pub families: Option<Vec<String>>,
    pub application: Option<String>,
    pub deployment_group: Option<String>,
    pub pre_deploy: Option<RawPreDeploy>,
    pub keep_revisions: Option<u32>,
    // task-definitions
    pub schedules: Option<Vec<String>>,
    pub scheduler_schedules: Option<Vec<String>>,
    // lambda
    pub steps: Option<Vec<u32>>,
    pub increment: Option<u32>,
    pub interval: Option<String>,
    pub alarms: Option<Vec<String>>,
    pub max_errors: Option<u64>,
    // ecs-rolling
    pub fail_fast: Option<bool>,
    // blue/green
    pub container_port: Option<u16>,
    // ecs-blue-green
    pub ecs_strategy: Option<String>,
    pub bake: Option<String>,
    pub canary: Option<RawCanary>,
    pub linear: Option<RawLinear>,
    pub lifecycle_hooks: Option<Vec<RawLifecycleHook>>,
    // common
    pub health_check: Option<RawHealthCheck>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCanary {
    pub percent: f64,
    pub bake: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLinear {
    pub percent: f64,
    pub interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLifecycleHook {
    pub function: String,
    pub stages: Vec<String>,
    pub role: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPreDeploy {
    pub task_definition: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub rollback_command: Vec<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthCheck {
    pub url: String,
    pub expect_status: Option<u16>,
    pub expect_body: Option<String>,
    pub timeout: Option<String>,
    pub test_url: Option<String>,
}
