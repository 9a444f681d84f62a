//! `run-down-migration`: a `deploy rollback` that replaces a release whose migration has a
//! `rollback_command` runs it, after the service is back, as a one-off task with the image of
//! the release being replaced (it has the down script). Its failure is exit 1 naming the task,
//! its exit code and log stream: the schema may be left migrated.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::migration::{self, RunMigration};
use super::settings::RolloutSettings;
use crate::engine::{BoxFuture, Done, Engine, StepContext, StepError, StepHandler, Undo};
use crate::events::Event;
use crate::kinds::image::steps::ImageOutput;
use crate::plan::{Action, ActionInput, Chain, Step};

/// Run the down migration with the image of the release a rollback replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDownMigration {
    /// The migration, whose `rollback_command` runs.
    pub migration: RunMigration,
    /// The repository of the image.
    pub repository: String,
    /// The digest of the release being replaced.
    pub digest: String,
    /// That release.
    pub release_id: String,
}

impl ActionInput for RunDownMigration {
    const TYPE: &'static str = "run-down-migration";

    fn reversibility(&self) -> crate::plan::Reversibility {
        crate::plan::Reversibility::Irreversible(format!(
            "what the down migration `{}` changed",
            self.migration.rollback_command.join(" ")
        ))
    }
}

/// Adds the down migration of `run` with the image `repository@digest` of `release_id`, when
/// it has a `rollback_command`.
pub(crate) fn plan_step(
    run: RunMigration,
    image: (&str, &str),
    release_id: &str,
    chain: &mut Chain<'_>,
) {
    if run.rollback_command.is_empty() {
        return;
    }
    let (repository, digest) = image;
    chain.then(
        format!(
            "run the down migration {} ({}) with the image of release {release_id}",
            run.task_definition,
            run.rollback_command.join(" ")
        ),
        Action::new(&RunDownMigration {
            migration: run,
            repository: repository.to_owned(),
            digest: digest.to_owned(),
            release_id: release_id.to_owned(),
        }),
        vec![],
    );
}

/// Registers the down migration with `engine`.
pub fn register(engine: &mut Engine, settings: Arc<RolloutSettings>) {
    engine.register(RunDownMigration::TYPE, Arc::new(DownStep(settings)));
}

struct DownStep(Arc<RolloutSettings>);

impl StepHandler for DownStep {
    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: RunDownMigration = step.action.input()?;
            let artifact = step.artifact_name();
            let registry = cx.get::<ImageOutput>(artifact).map(|i| i.registry.clone());
            let Some(registry) = registry else {
                return Err(StepError::failure(format!(
                    "there is no registry of `{artifact}` in this run to run the down migration from"
                )));
            };
            let image = format!("{registry}/{}@{}", input.repository, input.digest);
            let task = migration::run_down(cx, artifact, &input.migration, &image, &self.0).await?;
            cx.reporter().report(&Event::Note {
                message: format!(
                    "{artifact}: the down migration of release {} ran as task {task}",
                    input.release_id
                ),
            });
            let left = format!("task {task} ran the down migration");
            Ok(Done {
                undo: Undo::Irreversible { left },
                ..Done::default()
            })
        })
    }
}
