//! The `deploy.toml` schema exactly as written: serde structs, unknown keys rejected.
//! Nothing here is validated beyond types; [`super::resolve`] turns it into typed values.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::catalog::ArtifactKind;

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
    pub notify: Option<bool>,
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
    /// The key before `[notifications.slack]`: refused with where it moved.
    pub slack_webhook_env: Option<String>,
    pub slack: Option<RawSlack>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlack {
    pub webhook_env: Option<String>,
    pub token_env: Option<String>,
    pub channel: Option<String>,
    pub api_url: Option<String>,
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
