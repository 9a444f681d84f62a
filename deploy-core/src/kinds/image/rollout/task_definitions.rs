//! `task-definitions`: a new revision of every configured family with the released image (and
//! the artifact's `env` and `secrets`), so the next run of a job (`RunTask` by family, Airflow's
//! ECS operator, a schedule that names the family) uses it. Nothing runs now.
//!
//! Configured EventBridge rules and Scheduler schedules are then pointed at the new revisions
//! ([`super::schedules`]).
//!
//! The undo points the schedules back and deregisters the revisions this step registered, so
//! each family's latest ACTIVE revision is the one before again. A family or schedule that
//! fails midway has what was changed before it put back the same way before the step fails.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::JobFamilies;
use super::cleanup;
use super::ecs::describe_definition;
use super::schedules::{self, Repointed, Schedules, Source};
use super::service::{NoImage, object};
use super::settings::Runtime;
use super::strategy::Rollout;
use super::task_definition::{self, Change, Rendered};
use crate::aws::SdkFailure;
use crate::engine::{BoxFuture, Done, StepContext, StepError, StepOutput, Undo, UndoFailed};
use crate::events::Event;
use crate::kinds::image::steps::ImageOutput;

/// What the undo needs: the revisions registered and the schedules pointed at them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Registered {
    task_definitions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    schedules: Vec<Repointed>,
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

fn schedules(config: &JobFamilies) -> Schedules<'_> {
    Schedules {
        rules: &config.schedules,
        schedules: &config.scheduler_schedules,
        families: &config.families,
    }
}

/// Checks before the lock: every family has an ACTIVE revision with the configured container,
/// (unless `skip_verify`) what each references exists, and every rule and schedule exists and
/// runs one of the families.
pub(crate) async fn preflight(
    cx: &StepContext<'_>,
    config: &JobFamilies,
    runtime: &Runtime,
    skip_verify: bool,
) -> Result<(), StepError> {
    for family in &config.families {
        let (definition, _) = describe_definition(cx, family).await?;
        super::service::has_container(&definition, &config.container, family)?;
        if !skip_verify {
            super::verify::task_definition(cx, &definition, &config.container, runtime).await?;
        }
    }
    schedules(config).verify(cx).await
}

/// Whether a rollout of the live image (left by the publish's preflight) would change nothing:
/// every family's latest ACTIVE revision already runs it with the configured environment, and
/// every rule and schedule that pins one of the families pins that latest revision.
async fn unchanged(
    cx: &StepContext<'_>,
    artifact: &str,
    config: &JobFamilies,
    runtime: &Runtime,
) -> Result<crate::engine::Preflight, StepError> {
    use crate::engine::Preflight;
    let Some(image) = cx.get::<ImageOutput>(artifact) else {
        return Ok(Preflight::Changes);
    };
    let reference = image.reference();
    let change = runtime.change(&config.container, &reference);
    let mut latest = Vec::new();
    for family in &config.families {
        let (definition, tags) = describe_definition(cx, family).await?;
        if !matches!(
            task_definition::render(&definition, &tags, &change),
            Ok(Rendered::Unchanged)
        ) {
            return Ok(Preflight::Changes);
        }
        latest.extend(definition.task_definition_arn().map(str::to_owned));
    }
    let pinned = super::status::pinned(cx.clients(), config)
        .await
        .map_err(StepError::failure)?;
    Ok(if pinned.iter().all(|(_, arn)| latest.contains(arn)) {
        Preflight::Unchanged
    } else {
        Preflight::Changes
    })
}

/// Registers a revision with the released image in every family of `config`, then points the
/// configured rules and schedules at them.
pub(crate) async fn run(
    cx: &StepContext<'_>,
    artifact: &str,
    config: &JobFamilies,
    runtime: &Runtime,
) -> Result<Done, StepError> {
    let image = cx.get::<ImageOutput>(artifact).ok_or_else(|| {
        StepError::failure(NoImage {
            artifact: artifact.to_owned(),
        })
    })?;
    let reference = image.reference();
    let change = runtime.change(&config.container, &reference);
    let mut done = Registered {
        task_definitions: Vec::new(),
        schedules: Vec::new(),
    };
    let mut latest = BTreeMap::new();
    for family in &config.families {
        match next(cx, family, &change).await {
            Ok((arn, new)) => {
                let what = if new { "registered" } else { "unchanged" };
                cx.reporter().report(&Event::Note {
                    message: format!("{artifact}: {family}: {arn} ({what})"),
                });
                if new {
                    done.task_definitions.push(arn.clone());
                }
                latest.insert(family.clone(), arn);
            }
            Err(err) => return Err(abandon(cx, &done, err).await),
        }
    }
    match schedules(config).repoint(cx, artifact, &latest).await {
        Ok(changed) => done.schedules = changed,
        Err((changed, err)) => {
            done.schedules = changed;
            return Err(abandon(cx, &done, err).await);
        }
    }
    clean_up(cx, artifact, config, &latest, &done).await;
    finish(latest, done)
}

/// The record (each family's revision, each schedule changed) and the undo.
fn finish(latest: BTreeMap<String, String>, done: Registered) -> Result<Done, StepError> {
    let mut touched: Vec<_> = latest
        .values()
        .map(|arn| object("ecs-task-definition", arn))
        .collect();
    touched.extend(done.schedules.iter().map(|r| {
        let kind = match r.source {
            Source::Rule => "eventbridge-rule",
            Source::Schedule => "scheduler-schedule",
        };
        object(kind, &r.name)
    }));
    let undo = if done.task_definitions.is_empty() && done.schedules.is_empty() {
        Undo::Nothing
    } else {
        let mut what: Vec<String> = done
            .schedules
            .iter()
            .map(|r| format!("point {} back at {}", r.name, r.previous))
            .collect();
        if !done.task_definitions.is_empty() {
            what.push(format!("deregister {}", done.task_definitions.join(", ")));
        }
        Undo::compensate(what.join("; "), &done)?
    };
    Ok(Done {
        record: StepOutput {
            touched,
            ..StepOutput::default()
        },
        undo,
    })
}

/// Deregisters old revisions of every family that nothing uses any more. The revisions the
/// rules and schedules named before this step are in use too: its undo points them back there.
async fn clean_up(
    cx: &StepContext<'_>,
    artifact: &str,
    config: &JobFamilies,
    latest: &BTreeMap<String, String>,
    done: &Registered,
) {
    let keep = config.keep_revisions;
    let mut families = Vec::new();
    for family in &config.families {
        let old = cleanup::old_revisions(cx, artifact, family, keep).await;
        if !old.is_empty() {
            families.push((family, old));
        }
    }
    if families.is_empty() {
        return;
    }
    let cluster = config.cluster.as_deref();
    let Some(mut in_use) = cleanup::InUse::gather(cx, artifact, keep, cluster).await else {
        return;
    };
    in_use.extend(latest.values().cloned());
    in_use.extend(done.schedules.iter().map(|r| r.previous.clone()));
    in_use.extend(schedules(config).in_use(cx).await);
    for (family, old) in families {
        cleanup::deregister_unused(cx, (artifact, family), keep, &old, &in_use).await;
    }
}

/// Undoes a completed step: the schedules back on their revisions, then the revisions it
/// registered deregistered.
pub(crate) async fn undo(cx: &StepContext<'_>, data: &serde_json::Value) -> Result<(), StepError> {
    let done: Registered = Undo::decode(data)?;
    put_back(cx, &done).await
}

async fn put_back(cx: &StepContext<'_>, done: &Registered) -> Result<(), StepError> {
    schedules::put_back(cx, &done.schedules).await?;
    deregister(cx, &done.task_definitions).await
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
    let arn = task_definition::register(cx.clients().ecs(), &current, rendered)
        .await
        .map_err(StepError::failure)?;
    Ok((arn, true))
}

/// A family or a schedule failed: put back what this step changed before, then fail as
/// rolled back (or name what stays when that fails too).
async fn abandon(cx: &StepContext<'_>, done: &Registered, err: StepError) -> StepError {
    if done.task_definitions.is_empty() && done.schedules.is_empty() {
        return err;
    }
    match put_back(cx, done).await {
        Ok(()) => err.rolled_back(),
        Err(undo) => UndoFailed::error(err, "what was changed before", undo),
    }
}

async fn deregister(cx: &StepContext<'_>, arns: &[String]) -> Result<(), StepError> {
    for arn in arns {
        cx.clients()
            .ecs()
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

impl super::strategy::RolloutStrategy for &JobFamilies {
    /// Registering revisions and repointing schedules follow no deployment.
    fn takes_slot(&self) -> bool {
        false
    }

    fn preflight<'a>(&'a self, r: &'a Rollout<'a>) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(preflight(r.cx, self, &r.runtime, r.settings.skip_verify))
    }

    fn unchanged<'a>(
        &'a self,
        r: &'a Rollout<'a>,
    ) -> BoxFuture<'a, Result<crate::engine::Preflight, StepError>> {
        Box::pin(unchanged(r.cx, r.artifact, self, &r.runtime))
    }

    fn run<'a>(&'a self, r: &'a Rollout<'a>) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(run(r.cx, r.artifact, self, &r.runtime))
    }

    fn undo<'a>(
        &'a self,
        r: &'a Rollout<'a>,
        data: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(undo(r.cx, data))
    }
}
