//! The `deploy.toml` schema exactly as written: serde structs, unknown keys rejected.
//! Nothing here is validated beyond types; [`super::resolve`] turns it into typed values.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::catalog::ArtifactKind;
use crate::catalog::Strategy;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub project: String,
    pub environments: BTreeMap<String, RawEnvironment>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, toml::Table>,
    #[serde(default)]
    pub notifications: Option<RawNotifications>,
    #[serde(default)]
    pub settings: Option<RawSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEnvironment {
    pub region: String,
    pub account: String,
    pub profile: Option<String>,
    pub role_arn: Option<String>,
    pub state_bucket: String,
    pub promote_from: Option<String>,
    #[serde(default)]
    pub approval: bool,
    #[serde(default)]
    pub endpoints: RawEndpoints,
    #[serde(default)]
    pub overrides: BTreeMap<String, toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEndpoints {
    pub sts: Option<String>,
    pub s3: Option<String>,
    pub ecr: Option<String>,
    pub registry: Option<String>,
    pub ecs: Option<String>,
    pub codedeploy: Option<String>,
    pub lambda: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotifications {
    pub slack_webhook_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    pub lock_ttl: Option<String>,
    pub poll_interval: Option<String>,
    pub timeout: Option<String>,
    pub retry_max_attempts: Option<u32>,
    pub parallel_uploads: Option<usize>,
    pub upload: Option<crate::registry::UploadMode>,
    pub part_size: Option<String>,
    pub scan_timeout: Option<String>,
}

/// One artifact after the environment's overrides were merged in and placeholders expanded:
/// its `kind`, and the rest of its table, which that kind reads with its own schema
/// ([`super::kind::ArtifactContext::read`]) once the keys of other kinds were refused.
#[derive(Debug, Deserialize)]
pub(crate) struct RawArtifact {
    pub kind: ArtifactKind,
    #[serde(flatten)]
    pub table: toml::Table,
}

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
