//! `task-definitions`: a new revision of every configured family with the released image (and
//! the artifact's `env` and `secrets`), so the next run of a job (`RunTask` by family, Airflow's
//! ECS operator, a schedule that names the family) uses it. Nothing runs now.
//!
//! The undo deregisters the revisions this step registered, so each family's latest ACTIVE
//! revision is the one before again. A family that fails midway has the revisions registered
//! before it deregistered the same way before the step fails.

use serde::{Deserialize, Serialize};

use super::cleanup;
use super::ecs::describe_definition;
use super::ecs_rolling::{NoImage, object};
use super::image::Runtime;
use super::task_definition::{self, Change, Rendered};
use crate::artifact::image::steps::ImageOutput;
use crate::aws::SdkFailure;
use crate::engine::{Done, StepContext, StepError, StepOutput, Undo};
use crate::events::Event;

/// What the undo needs: the revisions registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Registered {
    task_definitions: Vec<String>,
}

/// `DeregisterTaskDefinition` failed.
#[derive(Debug, thiserror::Error)]
#[error("ecs:DeregisterTaskDefinition of {task_definition} failed: {source}")]
pub struct DeregisterFailed {
    /// The revision.
    pub task_definition: String,
    /// The SDK's error.
    #[source]
    pub source: SdkFailure,
}

/// Registers a revision with the released image in every family of `families`.
pub(crate) async fn run(
    cx: &StepContext<'_>,
    artifact: &str,
    families: &[String],
    container: &str,
    keep_revisions: u32,
    runtime: &Runtime,
) -> Result<Done, StepError> {
    let image = cx.get::<ImageOutput>(artifact).ok_or_else(|| {
        StepError::failure(NoImage {
            artifact: artifact.to_owned(),
        })
    })?;
    let reference = image.reference();
    let change = Change {
        container,
        image: &reference,
        env: &runtime.env,
        secrets: &runtime.secrets,
    };
    let mut registered = Vec::new();
    let mut touched = Vec::new();
    for family in families {
        match next(cx, family, &change).await {
            Ok((arn, new)) => {
                let what = if new { "registered" } else { "unchanged" };
                cx.reporter().report(&Event::Note {
                    message: format!("{artifact}: {family}: {arn} ({what})"),
                });
                touched.push(object("ecs-task-definition", &arn));
                if new {
                    registered.push(arn);
                }
            }
            Err(err) => return Err(abandon(cx, &registered, err).await),
        }
    }
    for family in families {
        cleanup::old_revisions(cx, artifact, family, keep_revisions, &[]).await;
    }
    let undo = if registered.is_empty() {
        Undo::Nothing
    } else {
        Undo::Compensate {
            description: format!("deregister {}", registered.join(", ")),
            data: serde_json::to_value(Registered {
                task_definitions: registered,
            })
            .unwrap_or_default(),
        }
    };
    Ok(Done {
        record: StepOutput {
            touched,
            ..StepOutput::default()
        },
        undo,
    })
}

/// Undoes a completed step: deregisters the revisions it registered.
pub(crate) async fn undo(cx: &StepContext<'_>, data: &serde_json::Value) -> Result<(), StepError> {
    let registered: Registered =
        serde_json::from_value(data.clone()).map_err(StepError::failure)?;
    deregister(cx, &registered.task_definitions).await
}

/// The family's latest ACTIVE revision with `change`; whether it was registered now.
async fn next(
    cx: &StepContext<'_>,
    family: &str,
    change: &Change<'_>,
) -> Result<(String, bool), StepError> {
    let (definition, tags) = describe_definition(cx, family).await?;
    let current = definition
        .task_definition_arn()
        .unwrap_or(family)
        .to_owned();
    let rendered =
        task_definition::render(&definition, &tags, change).map_err(StepError::failure)?;
    if let Rendered::Unchanged = rendered {
        return Ok((current, false));
    }
    let arn = task_definition::register(&cx.clients().ecs, &current, rendered)
        .await
        .map_err(StepError::failure)?;
    Ok((arn, true))
}

/// A family failed: deregister what this step registered before, then fail as rolled back
/// (or name what stays when that fails too).
async fn abandon(cx: &StepContext<'_>, registered: &[String], err: StepError) -> StepError {
    if registered.is_empty() {
        return err;
    }
    match deregister(cx, registered).await {
        Ok(()) => err.rolled_back(),
        Err(undo) => StepError::failure(format!(
            "{err}; deregistering the revisions registered before failed too: {undo}"
        )),
    }
}

async fn deregister(cx: &StepContext<'_>, arns: &[String]) -> Result<(), StepError> {
    for arn in arns {
        cx.clients()
            .ecs
            .deregister_task_definition()
            .task_definition(arn)
            .send()
            .await
            .map_err(|e| {
                StepError::failure(DeregisterFailed {
                    task_definition: arn.clone(),
                    source: SdkFailure::new(e),
                })
            })?;
    }
    Ok(())
}
