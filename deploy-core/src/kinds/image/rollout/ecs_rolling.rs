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

use aws_sdk_ecs::types::{Service, TaskDefinition};
use serde::{Deserialize, Serialize};

use super::cleanup;
use super::ecs::{EcsError, Ended, LiveService, describe_definition};
use super::poller::Poller;
use super::settings::Runtime;
use super::strategy::Rollout;
use super::task_definition::{self, Change, Rendered};
use crate::engine::{BoxFuture, Done, StepContext, StepError, StepOutput, Undo, UndoFailed};
use crate::events::Event;
use crate::kinds::image::rollout::EcsService as EcsServiceConfig;
use crate::kinds::image::steps::ImageOutput;
use crate::ledger::AwsObject;

/// What the undo of a rolling update needs: the revision the service ran before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Previous {
    cluster: String,
    service: String,
    task_definition: String,
    timeout_secs: u64,
}

/// Nothing was published or copied for the artifact in this run, so there is no image to roll
/// out.
#[derive(Debug, thiserror::Error)]
#[error("there is no image of `{artifact}` in this run to roll out")]
pub struct NoImage {
    /// The artifact.
    pub artifact: String,
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

/// The revision a service runs, the one it moves to, and the record so far.
pub(crate) struct Next {
    pub previous: String,
    pub next: String,
    pub record: StepOutput,
}

/// The next revision of `ecs`'s service with the image this run published (registered when it
/// differs), or, when the service already runs it, the finished step ("unchanged").
pub(crate) async fn next_for_service(
    ecs: &LiveService<'_>,
    config: &EcsServiceConfig,
    runtime: &Runtime,
) -> Result<Result<Next, Done>, StepError> {
    let (cx, artifact) = (ecs.cx, ecs.artifact);
    let image = cx.get::<ImageOutput>(artifact).ok_or_else(|| {
        StepError::failure(NoImage {
            artifact: artifact.to_owned(),
        })
    })?;
    let previous = ecs
        .describe()
        .await?
        .task_definition()
        .unwrap_or_default()
        .to_owned();
    let change = Change {
        container: &config.container,
        image: &image.reference(),
        env: &runtime.env,
        secrets: &runtime.secrets,
    };
    let next = next_revision(cx, &previous, &change).await?;
    let mut record = StepOutput {
        touched: vec![
            object("ecs-task-definition", &next),
            object(
                "ecs-service",
                &format!("{}/{}", config.cluster, config.service),
            ),
        ],
        ..StepOutput::default()
    };
    if next == previous {
        cx.reporter().report(&Event::Note {
            message: format!(
                "{artifact}: {} already runs {next} (unchanged)",
                config.service
            ),
        });
        return Ok(Err(Done {
            record,
            undo: Undo::Nothing,
        }));
    }
    // The rollback target, for people and for `rollback`.
    record
        .touched
        .push(object("ecs-previous-task-definition", &previous));
    Ok(Ok(Next {
        previous,
        next,
        record,
    }))
}

/// Deregisters old revisions of the service's family that nothing uses any more (after every
/// service strategy's successful deployment).
pub(crate) async fn clean_up(
    cx: &StepContext<'_>,
    artifact: &str,
    config: &EcsServiceConfig,
    [next, previous]: [String; 2],
) {
    let Some(family) = cleanup::family_of(&next) else {
        return;
    };
    let keep = config.keep_revisions;
    let old = cleanup::old_revisions(cx, artifact, family, keep).await;
    if old.is_empty() {
        return;
    }
    let gathered = cleanup::InUse::gather(cx, artifact, keep, Some(&config.cluster)).await;
    if let Some(mut in_use) = gathered {
        in_use.extend([next.clone(), previous]);
        cleanup::deregister_unused(cx, (artifact, family), keep, &old, &in_use).await;
    }
}

/// Checks before the lock: the service exists and is ACTIVE, its task definition has the
/// configured container, and (unless `skip_verify`) what it references exists. Returns the
/// service and its task definition as read, for the blue/green strategies' own checks.
pub(crate) async fn preflight(
    cx: &StepContext<'_>,
    artifact: &str,
    config: &EcsServiceConfig,
    runtime: &Runtime,
    settings: (Duration, bool),
) -> Result<(Service, TaskDefinition), StepError> {
    let (poll, skip_verify) = settings;
    let ecs = LiveService::new(cx, artifact, &config.cluster, &config.service, poll);
    let service = ecs.describe().await?;
    let current = service.task_definition().unwrap_or_default();
    let (definition, _) = describe_definition(cx, current).await?;
    has_container(&definition, &config.container, current)?;
    if !skip_verify {
        super::verify::task_definition(cx, &definition, &config.container, runtime).await?;
    }
    Ok((service, definition))
}

/// Fails unless `definition` (named `name`) has a container named `container`.
pub(crate) fn has_container(
    definition: &aws_sdk_ecs::types::TaskDefinition,
    container: &str,
    name: &str,
) -> Result<(), StepError> {
    let containers: Vec<String> = definition
        .container_definitions()
        .iter()
        .filter_map(|c| c.name().map(str::to_owned))
        .collect();
    if containers.iter().any(|c| c == container) {
        return Ok(());
    }
    Err(StepError::failure(
        task_definition::RenderError::MissingContainer {
            container: container.to_owned(),
            task_definition: name.to_owned(),
            containers,
        },
    ))
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

/// The revision with `change`: registered when it differs from `current`.
pub(crate) async fn next_revision(
    cx: &StepContext<'_>,
    current: &str,
    change: &Change<'_>,
) -> Result<String, StepError> {
    let (definition, tags) = describe_definition(cx, current).await?;
    let rendered =
        task_definition::render(&definition, &tags, change).map_err(StepError::failure)?;
    if let Rendered::Unchanged = rendered {
        return Ok(current.to_owned());
    }
    task_definition::register(cx.clients().ecs(), current, rendered)
        .await
        .map_err(StepError::failure)
}

pub(crate) fn object(kind: &str, id: &str) -> AwsObject {
    AwsObject {
        kind: kind.into(),
        id: id.to_owned(),
    }
}

impl super::strategy::RolloutStrategy for &EcsServiceConfig {
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
