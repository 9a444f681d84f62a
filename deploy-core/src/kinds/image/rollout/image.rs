//! The `rollout-image` step: hands the image's rollout to its strategy
//! ([`super::strategy::RolloutStrategy`]: `ecs_rolling`, `codedeploy`, `ecs_blue_green`,
//! `task_definitions`), within the `parallel` slots for those that follow a deployment.

use std::sync::Arc;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::plan::RolloutImage;
use super::poller::Poller;
use super::strategy::Rollout;
use crate::engine::{
    BoxFuture, CheckContext, Done, Engine, EngineError, Preflight, StepContext, StepError,
    StepHandler,
};
use crate::plan::{ActionInput, Step};

pub use super::settings::{RolloutSettings, Runtime};

/// Registers the `rollout-image` step and the migration gate with `engine`.
pub fn register(engine: &mut Engine, settings: RolloutSettings) {
    let settings = Arc::new(settings);
    super::migration::register(engine, settings.clone());
    super::down::register(engine, settings.clone());
    let slots = Semaphore::new(settings.parallel.max(1));
    let rollouts = ImageRollouts {
        settings,
        poller: Poller::default(),
        slots,
    };
    engine.register(RolloutImage::TYPE, Arc::new(rollouts));
}

struct ImageRollouts {
    settings: Arc<RolloutSettings>,
    /// Shared `DescribeServices` rounds of the rollouts running at once.
    poller: Poller,
    /// Bounds the rollouts running at once.
    slots: Semaphore,
}

impl ImageRollouts {
    /// What the strategy of `step` is handed.
    fn rollout<'a>(&'a self, step: &'a Step, cx: &'a StepContext<'a>) -> Rollout<'a> {
        let artifact = step.artifact_name();
        Rollout {
            cx,
            artifact,
            runtime: self
                .settings
                .runtime
                .get(artifact)
                .cloned()
                .unwrap_or_default(),
            settings: &self.settings,
            poller: &self.poller,
        }
    }

    /// A rollout slot; waits while `parallel` rollouts run, unless the run is cancelled.
    async fn slot(&self, cx: &StepContext<'_>) -> Result<SemaphorePermit<'_>, StepError> {
        tokio::select! {
            permit = self.slots.acquire() => permit.map_err(StepError::failure),
            () = cx.cancelled() => Err(StepError::failure("stopped before the rollout started: the run is being cancelled")),
        }
    }
}

impl StepHandler for ImageRollouts {
    fn check(&self, step: &Step, cx: &CheckContext<'_>) -> Result<(), EngineError> {
        cx.input::<RolloutImage>(step).map(|_| ())
    }

    fn preflight<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Preflight, StepError>> {
        Box::pin(async move {
            let input: RolloutImage = step.action.input()?;
            super::verify::rollout_inputs(cx, &input.rollout).await?;
            let rollout = self.rollout(step, cx);
            let strategy = input.rollout.rollout_strategy();
            strategy.preflight(&rollout).await?;
            if !cx.plan().operation.changes_live() {
                return Ok(Preflight::Changes);
            }
            strategy.unchanged(&rollout).await
        })
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: RolloutImage = step.action.input()?;
            let strategy = input.rollout.rollout_strategy();
            let _slot = match strategy.takes_slot() {
                true => Some(self.slot(cx).await?),
                false => None,
            };
            let rollout = self.rollout(step, cx);
            strategy.run(&rollout).await
        })
    }

    fn undo<'a>(
        &'a self,
        step: &'a Step,
        data: &'a serde_json::Value,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let input: RolloutImage = step.action.input()?;
            let rollout = self.rollout(step, cx);
            input.rollout.rollout_strategy().undo(&rollout, data).await
        })
    }
}
