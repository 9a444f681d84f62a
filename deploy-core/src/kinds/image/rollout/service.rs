//! What the three service strategies (`ecs-rolling`, `codedeploy-blue-green`, `ecs-blue-green`)
//! share: the checks before the lock, the next revision rendered from what the service runs
//! (registered only when it differs), the objects a record names, and the clean-up of old
//! revisions after a successful deployment. Describing, updating and following the service
//! is [`super::ecs`].

use std::time::Duration;

use aws_sdk_ecs::types::{Service, TaskDefinition, TaskDefinitionStatus};

use super::cleanup;
use super::ecs::{LiveService, describe_definition};
use super::settings::Runtime;
use super::task_definition::{self, Change, Rendered};
use crate::engine::{Done, Preflight, StepContext, StepError, StepOutput, Undo};
use crate::events::Event;
use crate::kinds::image::rollout::EcsService as EcsServiceConfig;
use crate::kinds::image::steps::{ImageOutput, RestoredRevision};
use crate::ledger::AwsObject;

/// Nothing was published or copied for the artifact in this run, so there is no image to roll
/// out.
#[derive(Debug, thiserror::Error)]
#[error("there is no image of `{artifact}` in this run to roll out")]
pub struct NoImage {
    /// The artifact.
    pub artifact: String,
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
    let reference = image.reference();
    let change = runtime.change(&config.container, &reference);
    let next = match cx.get::<RestoredRevision>(artifact) {
        Some(recorded) => restored_revision(ecs, &recorded.0, &previous, &change).await?,
        None => next_revision(cx, &previous, &change).await?,
    };
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

/// The revision a rollback goes back to: the one the release recorded while it is ACTIVE and
/// runs the image; registered again from its contents when clean-up deregistered it; when it
/// cannot be read any more, the image rendered into what the service runs now.
async fn restored_revision(
    ecs: &LiveService<'_>,
    recorded: &str,
    current: &str,
    change: &Change<'_>,
) -> Result<String, StepError> {
    let cx = ecs.cx;
    let (definition, tags) = match describe_definition(cx, recorded).await {
        Ok(found) => found,
        Err(err) => {
            cx.reporter().report(&Event::Note {
                message: format!(
                    "{}: the recorded revision {recorded} cannot be read ({err}); the image goes into {current} instead",
                    ecs.artifact
                ),
            });
            return next_revision(cx, current, change).await;
        }
    };
    let runs_image = definition
        .container_definitions()
        .iter()
        .any(|c| c.name() == Some(change.container) && c.image() == Some(change.image));
    if !runs_image {
        return next_revision(cx, recorded, change).await;
    }
    if definition.status() == Some(&TaskDefinitionStatus::Active) {
        return Ok(recorded.to_owned());
    }
    let again = task_definition::again(&definition, &tags).map_err(StepError::failure)?;
    let arn = task_definition::register(cx.clients().ecs(), recorded, again)
        .await
        .map_err(StepError::failure)?;
    cx.reporter().report(&Event::Note {
        message: format!(
            "{}: {recorded} was deregistered; registered again as {arn}",
            ecs.artifact
        ),
    });
    Ok(arn)
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

/// Whether `config`'s service already runs the task definition a rollout of the image an
/// earlier preflight found live ([`ImageOutput`]) would register: then the rollout changes
/// nothing.
pub(crate) async fn unchanged(
    cx: &StepContext<'_>,
    artifact: &str,
    config: &EcsServiceConfig,
    runtime: &Runtime,
) -> Result<Preflight, StepError> {
    let Some(image) = cx.get::<ImageOutput>(artifact) else {
        return Ok(Preflight::Changes);
    };
    let live = LiveService::new(
        cx,
        artifact,
        &config.cluster,
        &config.service,
        Duration::ZERO,
    );
    let service = live.describe().await?;
    let Some(current) = service.task_definition() else {
        return Ok(Preflight::Changes);
    };
    let (definition, tags) = describe_definition(cx, current).await?;
    let reference = image.reference();
    let change = runtime.change(&config.container, &reference);
    Ok(match task_definition::render(&definition, &tags, &change) {
        Ok(Rendered::Unchanged) => Preflight::Unchanged,
        _ => Preflight::Changes,
    })
}

pub(crate) fn object(kind: &str, id: &str) -> AwsObject {
    AwsObject {
        kind: kind.into(),
        id: id.to_owned(),
    }
}
