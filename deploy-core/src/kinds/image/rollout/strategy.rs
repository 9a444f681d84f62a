//! What the `rollout-image` step asks of each strategy of the image kind: its checks before the
//! lock, the rollout, and the undo of a completed rollout. Each strategy's module implements
//! [`RolloutStrategy`] for its settings; [`ImageRollout::rollout_strategy`] is the one place that picks
//! it, so a new strategy is a new module and one arm there.

use super::ImageRollout;
use super::codedeploy::BlueGreen;
use super::poller::Poller;
use super::settings::{RolloutSettings, Runtime};
use crate::engine::{BoxFuture, Done, Preflight, StepContext, StepError};

/// One rollout of one artifact, as the step hands it to its strategy.
pub(crate) struct Rollout<'a> {
    /// The step's context.
    pub cx: &'a StepContext<'a>,
    /// The artifact rolled out.
    pub artifact: &'a str,
    /// Its runtime configuration (`env`, `secrets`) in this environment.
    pub runtime: Runtime,
    /// Poll interval, `--skip-verify`, parallel slots.
    pub settings: &'a RolloutSettings,
    /// Shared `DescribeServices` rounds of the rollouts running at once.
    pub poller: &'a Poller,
}

impl Rollout<'_> {
    /// The poll interval and `--skip-verify`, as the preflights take them.
    pub(crate) fn checks(&self) -> (std::time::Duration, bool) {
        (self.settings.poll, self.settings.skip_verify)
    }
}

/// A strategy of the image kind.
pub(crate) trait RolloutStrategy: Send + Sync {
    /// Whether the rollout follows a deployment and so waits for one of the `parallel` slots.
    fn takes_slot(&self) -> bool {
        true
    }

    /// Checks before the lock (the service, its task definition, what they reference).
    fn preflight<'a>(&'a self, rollout: &'a Rollout<'a>) -> BoxFuture<'a, Result<(), StepError>>;

    /// Whether the rollout would change nothing, given the image a preflight found already
    /// live ([`crate::kinds::image::steps::ImageOutput`]). The default cannot tell.
    fn unchanged<'a>(
        &'a self,
        rollout: &'a Rollout<'a>,
    ) -> BoxFuture<'a, Result<Preflight, StepError>> {
        let _ = rollout;
        Box::pin(async { Ok(Preflight::Changes) })
    }

    /// Rolls the image this run published out; [`Done::undo`] puts back what it replaced.
    fn run<'a>(&'a self, rollout: &'a Rollout<'a>) -> BoxFuture<'a, Result<Done, StepError>>;

    /// Puts back what a completed [`RolloutStrategy::run`] replaced, from its undo's data.
    fn undo<'a>(
        &'a self,
        rollout: &'a Rollout<'a>,
        data: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(), StepError>>;
}

/// Implements [`RolloutStrategy`] for `$settings` with the calling module's `preflight(cx,
/// artifact, settings, runtime, (poll, skip_verify))`, `run(cx, artifact, settings, runtime,
/// poll)` and `undo(cx, artifact, data, poll)`: the shape of the blue/green strategies.
macro_rules! deployment_strategy {
    ($settings:ty) => {
        impl $crate::kinds::image::rollout::strategy::RolloutStrategy for $settings {
            fn preflight<'a>(
                &'a self,
                r: &'a $crate::kinds::image::rollout::strategy::Rollout<'a>,
            ) -> $crate::engine::BoxFuture<'a, Result<(), $crate::engine::StepError>> {
                Box::pin(preflight(r.cx, r.artifact, self, &r.runtime, r.checks()))
            }

            fn unchanged<'a>(
                &'a self,
                r: &'a $crate::kinds::image::rollout::strategy::Rollout<'a>,
            ) -> $crate::engine::BoxFuture<
                'a,
                Result<$crate::engine::Preflight, $crate::engine::StepError>,
            > {
                Box::pin($crate::kinds::image::rollout::service::unchanged(
                    r.cx,
                    r.artifact,
                    &self.service,
                    &r.runtime,
                ))
            }

            fn run<'a>(
                &'a self,
                r: &'a $crate::kinds::image::rollout::strategy::Rollout<'a>,
            ) -> $crate::engine::BoxFuture<
                'a,
                Result<$crate::engine::Done, $crate::engine::StepError>,
            > {
                Box::pin(run(r.cx, r.artifact, self, &r.runtime, r.settings.poll))
            }

            fn undo<'a>(
                &'a self,
                r: &'a $crate::kinds::image::rollout::strategy::Rollout<'a>,
                data: &'a serde_json::Value,
            ) -> $crate::engine::BoxFuture<'a, Result<(), $crate::engine::StepError>> {
                Box::pin(undo(r.cx, r.artifact, data, r.settings.poll))
            }
        }
    };
}
pub(crate) use deployment_strategy;

/// `strategy = "none"`: the image is published; what runs is not touched.
struct NoRollout;

impl RolloutStrategy for NoRollout {
    fn takes_slot(&self) -> bool {
        false
    }

    fn preflight<'a>(&'a self, _: &'a Rollout<'a>) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async { Ok(()) })
    }

    fn unchanged<'a>(&'a self, _: &'a Rollout<'a>) -> BoxFuture<'a, Result<Preflight, StepError>> {
        // Nothing runs the image: the publish decides.
        Box::pin(async { Ok(Preflight::Follows) })
    }

    fn run<'a>(&'a self, _: &'a Rollout<'a>) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async { Ok(Done::nothing()) })
    }

    fn undo<'a>(
        &'a self,
        _: &'a Rollout<'a>,
        _: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        // `run` declares no undo, so the engine never asks for one.
        Box::pin(async { Ok(()) })
    }
}

impl ImageRollout {
    /// The strategy that rolls out with these settings.
    pub(crate) fn rollout_strategy(&self) -> Box<dyn RolloutStrategy + '_> {
        match self {
            ImageRollout::EcsRolling(service) => Box::new(service),
            ImageRollout::CodedeployBlueGreen {
                service,
                application,
                deployment_group,
                container_port,
                lifecycle_hooks,
            } => Box::new(BlueGreen {
                service,
                application,
                group: deployment_group,
                container_port: *container_port,
                lifecycle_hooks,
            }),
            ImageRollout::EcsBlueGreen(rollout) => Box::new(rollout),
            ImageRollout::TaskDefinitions(jobs) => Box::new(jobs),
            ImageRollout::None => Box::new(NoRollout),
        }
    }
}
