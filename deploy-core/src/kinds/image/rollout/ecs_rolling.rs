//! `ecs-rolling`: the next revision of the service's task definition with the released image
//! (and the artifact's `env` and `secrets`), `UpdateService` with the deployment circuit
//! breaker, and the PRIMARY deployment followed until it completes.
//!
//! - COMPLETED: done; the undo puts the service back on the previous revision.
//! - FAILED: ECS's circuit breaker rolls the service back by itself; the step waits for that
//!   and fails as rolled back (exit 3), never as a success.
//! - Out of time, or the run cancelled: the step puts the service back itself, waits, and fails
//!   as rolled back.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::ecs::{EcsError, Ended, LiveService};
use super::poller::Poller;
use super::service::{Next, clean_up, next_for_service, object, preflight};
use super::settings::Runtime;
use super::strategy::Rollout;
use crate::engine::{BoxFuture, Done, StepContext, StepError, Undo, UndoFailed};
use crate::kinds::image::rollout::EcsService as EcsServiceConfig;

/// What the undo of a rolling update needs: the revision the service ran before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Previous {
    cluster: String,
    service: String,
    task_definition: String,
    timeout_secs: u64,
}

/// Rolls `config`'s service out to the image this run published for `artifact`.
pub(crate) async fn run(
    cx: &StepContext<'_>,
    artifact: &str,
    config: &EcsServiceConfig,
    runtime: &Runtime,
    (poll, poller): (Duration, &Poller),
) -> Result<Done, StepError> {
    let mut ecs = LiveService::new(cx, artifact, &config.cluster, &config.service, poll);
    ecs.fail_fast = config.fail_fast;
    ecs.poller = Some(poller);
    let Next {
        previous,
        next,
        mut record,
    } = match next_for_service(&ecs, config, runtime).await? {
        Ok(next) => next,
        Err(unchanged) => return Ok(unchanged),
    };
    // A run killed while it follows the deployment is settled by putting the service back.
    cx.journal(&undo_to(config, &previous)?).await;
    let id = ecs.update(&next, &config.alarms).await?;
    record.touched.push(object("ecs-deployment", &id));
    let ended = ecs
        .follow(&id, &next, Instant::now() + config.timeout, true)
        .await?;
    match ended {
        Ended::Completed => {
            clean_up(cx, artifact, config, [next.clone(), previous.clone()]).await;
            Ok(Done {
                record,
                undo: undo_to(config, &previous)?,
            })
        }
        Ended::Failed(reason) => Err(after_breaker(&ecs, config, &previous, reason).await),
        Ended::TimedOut | Ended::Cancelled | Ended::GaveUp(_) => {
            Err(put_back(&ecs, config, &previous, ended).await)
        }
    }
}

/// Undoes a completed rolling update: the service back on the revision it ran before.
pub(crate) async fn undo(
    cx: &StepContext<'_>,
    artifact: &str,
    data: &serde_json::Value,
    poll: Duration,
) -> Result<(), StepError> {
    let previous: Previous = Undo::decode(data)?;
    let ecs = LiveService::new(cx, artifact, &previous.cluster, &previous.service, poll);
    ecs.restore(
        &previous.task_definition,
        Duration::from_secs(previous.timeout_secs),
    )
    .await
}

fn undo_to(config: &EcsServiceConfig, previous: &str) -> Result<Undo, StepError> {
    let data = Previous {
        cluster: config.cluster.clone(),
        service: config.service.clone(),
        task_definition: previous.to_owned(),
        timeout_secs: config.timeout.as_secs(),
    };
    Undo::compensate(
        format!(
            "put {}/{} back on {previous}",
            config.cluster, config.service
        ),
        &data,
    )
}

/// The circuit breaker failed the deployment: wait for ECS's own rollback to complete.
async fn after_breaker(
    ecs: &LiveService<'_>,
    config: &EcsServiceConfig,
    previous: &str,
    reason: String,
) -> StepError {
    let failed = EcsError::DeploymentFailed {
        cluster: config.cluster.clone(),
        service: config.service.clone(),
        reason: reason.clone(),
    };
    let back = ecs
        .follow("", previous, Instant::now() + config.timeout, false)
        .await;
    match back {
        Ok(Ended::Completed) => StepError::failure(failed).rolled_back(),
        Ok(_) | Err(_) => StepError::failure(EcsError::DeploymentFailed {
            cluster: config.cluster.clone(),
            service: config.service.clone(),
            reason: format!("{reason}; and ECS's rollback to {previous} did not complete"),
        }),
    }
}

/// Out of time or cancelled: put the service back on `previous` ourselves.
async fn put_back(
    ecs: &LiveService<'_>,
    config: &EcsServiceConfig,
    previous: &str,
    ended: Ended,
) -> StepError {
    let (cluster, service) = (config.cluster.clone(), config.service.clone());
    let why = match ended {
        Ended::Cancelled => EcsError::Cancelled { cluster, service },
        Ended::GaveUp(reason) => EcsError::DeploymentFailed {
            cluster,
            service,
            reason,
        },
        _ => EcsError::TimedOut {
            cluster,
            service,
            waited: config.timeout,
        },
    };
    match ecs.restore(previous, config.timeout).await {
        Ok(()) => StepError::failure(why).rolled_back(),
        Err(err) => UndoFailed::error(why, format!("the service on {previous}"), err),
    }
}

impl super::strategy::RolloutStrategy for &EcsServiceConfig {
    fn unchanged<'a>(
        &'a self,
        r: &'a Rollout<'a>,
    ) -> BoxFuture<'a, Result<crate::engine::Preflight, StepError>> {
        Box::pin(super::service::unchanged(
            r.cx, r.artifact, self, &r.runtime,
        ))
    }

    fn preflight<'a>(&'a self, r: &'a Rollout<'a>) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            preflight(r.cx, r.artifact, self, &r.runtime, r.checks())
                .await
                .map(|_| ())
        })
    }

    fn run<'a>(&'a self, r: &'a Rollout<'a>) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(run(
            r.cx,
            r.artifact,
            self,
            &r.runtime,
            (r.settings.poll, r.poller),
        ))
    }

    fn undo<'a>(
        &'a self,
        r: &'a Rollout<'a>,
        data: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(undo(r.cx, r.artifact, data, r.settings.poll))
    }
}
