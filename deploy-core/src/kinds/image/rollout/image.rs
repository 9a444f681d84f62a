//! The `rollout-image` step: hands the image's rollout to its strategy's module
//! (`ecs_rolling`, `codedeploy`, `ecs_blue_green`, `task_definitions`).

use std::sync::Arc;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::codedeploy::{self, BlueGreen};
use super::plan::RolloutImage;
use super::poller::Poller;
use super::{ImageRollout, ecs_blue_green, ecs_rolling, task_definitions};
use crate::engine::{
    BoxFuture, CheckContext, Done, Engine, EngineError, StepContext, StepError, StepHandler,
};
use crate::plan::{ActionInput, Step};

pub use super::settings::{RolloutSettings, Runtime};

/// Registers the `rollout-image` step and the migration gate with `engine`.
pub fn register(engine: &mut Engine, settings: RolloutSettings) {
    let settings = Arc::new(settings);
    super::migration::register(engine, settings.clone());
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
    fn runtime(&self, artifact: &str) -> Runtime {
        self.settings
            .runtime
            .get(artifact)
            .cloned()
            .unwrap_or_default()
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
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let input: RolloutImage = step.action.input()?;
            let artifact = step.artifact_name();
            let runtime = self.runtime(artifact);
            let skip_verify = self.settings.skip_verify;
            super::verify::rollout_inputs(cx, &input.rollout).await?;
            match &input.rollout {
                ImageRollout::EcsRolling(service) => {
                    let settings = (self.settings.poll, skip_verify);
                    ecs_rolling::preflight(cx, artifact, service, &runtime, settings)
                        .await
                        .map(|_| ())
                }
                ImageRollout::CodedeployBlueGreen { .. } => {
                    let bg = blue_green(&input.rollout);
                    let settings = (self.settings.poll, skip_verify);
                    match bg {
                        Some(bg) => {
                            codedeploy::preflight(cx, artifact, &bg, &runtime, settings).await
                        }
                        None => Ok(()),
                    }
                }
                ImageRollout::EcsBlueGreen(rollout) => {
                    let settings = (self.settings.poll, skip_verify);
                    ecs_blue_green::preflight(cx, artifact, rollout, &runtime, settings).await
                }
                ImageRollout::TaskDefinitions(jobs) => {
                    task_definitions::preflight(cx, jobs, &runtime, skip_verify).await
                }
                ImageRollout::None => Ok(()),
            }
        })
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: RolloutImage = step.action.input()?;
            let artifact = step.artifact_name();
            match &input.rollout {
                ImageRollout::EcsRolling(service) => {
                    let runtime = self.runtime(artifact);
                    let _slot = self.slot(cx).await?;
                    let watch = (self.settings.poll, &self.poller);
                    ecs_rolling::run(cx, artifact, service, &runtime, watch).await
                }
                ImageRollout::EcsBlueGreen(rollout) => {
                    let runtime = self.runtime(artifact);
                    let _slot = self.slot(cx).await?;
                    ecs_blue_green::run(cx, artifact, rollout, &runtime, self.settings.poll).await
                }
                ImageRollout::TaskDefinitions(jobs) => {
                    let runtime = self.runtime(artifact);
                    task_definitions::run(cx, artifact, jobs, &runtime).await
                }
                ImageRollout::CodedeployBlueGreen { .. } => {
                    let runtime = self.runtime(artifact);
                    let _slot = self.slot(cx).await?;
                    match blue_green(&input.rollout) {
                        Some(bg) => {
                            codedeploy::run(cx, artifact, &bg, &runtime, self.settings.poll).await
                        }
                        None => Ok(Done::nothing()),
                    }
                }
                ImageRollout::None => Ok(Done::nothing()),
            }
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
            let artifact = step.artifact_name();
            match input.rollout {
                ImageRollout::TaskDefinitions(_) => task_definitions::undo(cx, data).await,
                ImageRollout::EcsBlueGreen(_) => {
                    ecs_blue_green::undo(cx, artifact, data, self.settings.poll).await
                }
                ImageRollout::CodedeployBlueGreen { .. } => {
                    codedeploy::undo(cx, artifact, data, self.settings.poll).await
                }
                _ => ecs_rolling::undo(cx, artifact, data, self.settings.poll).await,
            }
        })
    }
}

/// The settings of a `codedeploy-blue-green` rollout.
fn blue_green(rollout: &ImageRollout) -> Option<BlueGreen<'_>> {
    match rollout {
        ImageRollout::CodedeployBlueGreen {
            service,
            application,
            deployment_group,
            container_port,
            lifecycle_hooks,
        } => Some(BlueGreen {
            service,
            application,
            group: deployment_group,
            container_port: *container_port,
            lifecycle_hooks,
        }),
        _ => None,
    }
}
