//! What image rollouts need besides the plan: each artifact's runtime configuration and the
//! settings every strategy shares. Kept apart from `image.rs` (which dispatches to the
//! strategies) so that the strategies can use them without importing their dispatcher.

use std::collections::BTreeMap;
use std::time::Duration;

/// The runtime configuration of one artifact in one environment: merged into the container
/// (or function) by the rollout, never written into a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runtime {
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// ECS secrets: name → `valueFrom` ARN (the values are never read).
    pub secrets: BTreeMap<String, String>,
}

impl Runtime {
    /// The change of `container` to `image` (`registry/repository@digest`) with this `env` and
    /// these `secrets`.
    pub(crate) fn change<'a>(
        &'a self,
        container: &'a str,
        image: &'a str,
    ) -> super::task_definition::Change<'a> {
        super::task_definition::Change {
            container,
            image,
            env: &self.env,
            secrets: &self.secrets,
        }
    }
}

/// What image rollouts need besides the plan.
#[derive(Debug, Clone, Default)]
pub struct RolloutSettings {
    /// How often waits look at AWS.
    pub poll: Duration,
    /// Each artifact's runtime configuration in the environment applied.
    pub runtime: BTreeMap<String, Runtime>,
    /// Skip checking, before the lock, that what a task definition references exists
    /// (`--skip-verify`).
    pub skip_verify: bool,
    /// Rollouts that run at once (`parallel_uploads`); more wait for a slot.
    pub parallel: usize,
}
