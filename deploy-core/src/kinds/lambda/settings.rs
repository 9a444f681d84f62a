//! What the Lambda steps need besides the plan.

use std::collections::BTreeMap;

use super::publish::PublishSettings;
use crate::kinds::lambda::shift::ShiftSettings;

/// Settings of the Lambda steps.
#[derive(Debug, Clone, Default)]
pub struct LambdaSettings {
    /// Uploads and update waits.
    pub publish: PublishSettings,
    /// Alias shifts.
    pub shift: ShiftSettings,
    /// Each artifact's `env` in the environment applied (never written into a plan).
    pub env: BTreeMap<String, BTreeMap<String, String>>,
}

impl LambdaSettings {
    /// Adds the per-environment settings of artifact `name` (`env`, `keep_versions`).
    pub fn add(&mut self, name: &str, spec: &crate::kinds::LambdaSpec) {
        self.env.insert(name.to_owned(), spec.env.clone());
        self.shift
            .keep_versions
            .insert(name.to_owned(), spec.keep_versions);
    }
}
