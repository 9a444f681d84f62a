//! The migration gate (`pre_deploy`): before a service changes, a one-off task of the
//! configured family runs the released image with the configured command, in the service's
//! network and launch type, and must stop with exit code 0. Anything else stops the release
//! before any service change (exit 6), naming the exit code, ECS's reason and the log stream.
//!
//! A migration that ran is not undone when a later step fails: migrations must keep the
//! previous revision working (expand, then contract in a later release).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ecs::types::{ContainerOverride, Task, TaskOverride};
use serde::{Deserialize, Serialize};

use super::{EcsService, JobFamilies, PreDeploy};
use crate::aws::SdkFailure;
use crate::engine::{
    BoxFuture, Done, Engine, StepContext, StepError, StepHandler, StepOutput, Undo,
};
use crate::events::Event;
use crate::kinds::image::rollout::ecs::LiveService;
use crate::kinds::image::rollout::schedules;
use crate::kinds::image::rollout::settings::{RolloutSettings, Runtime};
use crate::kinds::image::rollout::task_definition;
use crate::kinds::image::steps::ImageOutput;
use crate::plan::{Action, ActionInput, Chain, Step};
use crate::wait::{Cancelled, LastPause, Poll, Wait, Waited};

use super::launch::{self, Launch, LaunchFrom};

/// Run the migration task with the released image and wait for it to exit 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMigration {
    /// Cluster.
    pub cluster: String,
    /// The service whose network and launch type the task uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Without a service: the rule or schedule whose ECS target's network and launch type
    /// the task uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_from: Option<LaunchFrom>,
    /// Task-definition family of the migration.
    pub task_definition: String,
    /// The container that gets the released image and the command.
    pub container: String,
    /// Command override.
    pub command: Vec<String>,
    /// The down migration, run by the step's undo with the same image; empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollback_command: Vec<String>,
    /// How long the task may run.
    #[serde(with = "crate::duration_serde")]
    pub timeout: Duration,
}

impl ActionInput for RunMigration {
    const TYPE: &'static str = "run-migration";

    fn reversibility(&self) -> crate::plan::Reversibility {
        if !self.rollback_command.is_empty() {
            return crate::plan::Reversibility::Reversible;
        }
        crate::plan::Reversibility::Irreversible(format!(
            "what the migration `{}` changed (it has no `rollback_command`)",
            self.command.join(" ")
        ))
    }
}

/// The migration did not end with exit code 0.
#[derive(Debug, thiserror::Error)]
#[error(
    "migration task {task} ({task_definition}) {outcome}; ECS said: {reason}{}; {consequence}",
    log_stream.as_ref().map(|s| format!("; its output is in the log stream {s}")).unwrap_or_default()
)]
pub struct MigrationFailed {
    /// The task id.
    pub task: String,
    /// The task definition it ran.
    pub task_definition: String,
    /// `exited with code 1`, `did not stop within 600s`.
    pub outcome: String,
    /// ECS's stop reason.
    pub reason: String,
    /// The CloudWatch log stream of the container, from its `awslogs` options.
    pub log_stream: Option<String>,
    /// What that means (`nothing was rolled out`, `the schema may be left migrated`).
    pub consequence: &'static str,
}

/// Adds the migration of `service` (when it has `pre_deploy`) to `chain`.
pub fn plan_step(service: &EcsService, pre: &PreDeploy, chain: &mut Chain<'_>) {
    add(of_service(service, pre), chain);
}

/// The migration of `service`.
pub(crate) fn of_service(service: &EcsService, pre: &PreDeploy) -> RunMigration {
    RunMigration {
        cluster: service.cluster.clone(),
        service: Some(service.service.clone()),
        launch_from: None,
        task_definition: pre.task_definition.clone(),
        container: service.container.clone(),
        command: pre.command.clone(),
        rollback_command: pre.rollback_command.clone(),
        timeout: pre.timeout,
    }
}

/// Adds the migration of `task-definitions` jobs (when they have `pre_deploy` and a
/// cluster) to `chain`: launched like the first configured rule or schedule runs them.
pub fn plan_jobs_step(jobs: &JobFamilies, chain: &mut Chain<'_>) {
    if let Some(run) = of_jobs(jobs) {
        add(run, chain);
    }
}

/// The migration of `jobs`, when they have `pre_deploy` and a cluster.
pub(crate) fn of_jobs(jobs: &JobFamilies) -> Option<RunMigration> {
    let (Some(pre), Some(cluster)) = (&jobs.pre_deploy, &jobs.cluster) else {
        return None;
    };
    let launch_from = match (jobs.schedules.first(), jobs.scheduler_schedules.first()) {
        (Some(rule), _) => Some(LaunchFrom::Rule(rule.clone())),
        (None, Some(schedule)) => Some(LaunchFrom::Schedule(schedule.clone())),
        (None, None) => None,
    };
    Some(RunMigration {
        cluster: cluster.clone(),
        service: None,
        launch_from,
        task_definition: pre.task_definition.clone(),
        container: jobs.container.clone(),
        command: pre.command.clone(),
        rollback_command: pre.rollback_command.clone(),
        timeout: pre.timeout,
    })
}

fn add(run: RunMigration, chain: &mut Chain<'_>) {
    chain.then(
        format!(
            "run the migration {} ({}) and wait for exit code 0",
            run.task_definition,
            run.command.join(" ")
        ),
        Action::new(&run),
        vec![],
    );
}

/// Registers the migration gate with `engine`.
pub fn register(engine: &mut Engine, settings: Arc<RolloutSettings>) {
    engine.register(RunMigration::TYPE, Arc::new(MigrationGate(settings)));
}

struct MigrationGate(Arc<RolloutSettings>);

impl StepHandler for MigrationGate {
    fn is_gate(&self) -> bool {
        true
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: RunMigration = step.action.input()?;
            let artifact = step.artifact_name();
            let runtime = self.0.runtime.get(artifact).cloned().unwrap_or_default();
            let image = cx.get::<ImageOutput>(artifact).ok_or_else(|| {
                StepError::failure(format!(
                    "there is no image of `{artifact}` in this run to migrate with"
                ))
            })?;
            let image = image.reference();
            let migration = Migration {
                cx,
                artifact,
                input: &input,
                command: &input.command,
                consequence: NOT_ROLLED_OUT,
                poll: self.0.poll,
            };
            let task = migration.run(&image, &runtime).await?;
            let undo = if input.rollback_command.is_empty() {
                // Nothing puts a schema back: the outcome of a later failure says so.
                Undo::Irreversible {
                    left: format!(
                        "task {task} of cluster {} ran it: the schema stays migrated",
                        input.cluster
                    ),
                }
            } else {
                let what = format!(
                    "run the down migration `{}`",
                    input.rollback_command.join(" ")
                );
                Undo::compensate(what, &Down { image })?
            };
            Ok(Done {
                record: StepOutput::default(),
                undo,
            })
        })
    }

    fn undo<'a>(
        &'a self,
        step: &'a Step,
        data: &'a serde_json::Value,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let input: RunMigration = step.action.input()?;
            let artifact = step.artifact_name();
            let Down { image } = Undo::decode(data)?;
            let task = run_down(cx, artifact, &input, &image, &self.0).await?;
            cx.reporter().report(&Event::Note {
                message: format!("{artifact}: the down migration ran as task {task}"),
            });
            Ok(())
        })
    }
}

/// Runs `input`'s down command (`rollback_command`) for `artifact` with `image` (the image the
/// migration ran with); the task that ran it. A failure is exit 1, whatever stopped it, and
/// says the schema may be left migrated.
pub(crate) async fn run_down(
    cx: &StepContext<'_>,
    artifact: &str,
    input: &RunMigration,
    image: &str,
    settings: &RolloutSettings,
) -> Result<String, StepError> {
    let runtime = settings.runtime.get(artifact).cloned().unwrap_or_default();
    let down = Migration {
        cx,
        artifact,
        input,
        command: &input.rollback_command,
        consequence: LEFT_MIGRATED,
        poll: settings.poll,
    };
    down.run(image, &runtime)
        .await
        .map_err(|err| StepError::failure(err.to_string()).leaving(LEFT_MIGRATED))
}

/// What the down migration needs: the image the migration ran with (it has the down script).
#[derive(Debug, Serialize, Deserialize)]
struct Down {
    image: String,
}

struct Migration<'a> {
    cx: &'a StepContext<'a>,
    artifact: &'a str,
    input: &'a RunMigration,
    /// The command: the migration's, or its down command.
    command: &'a [String],
    /// What a failure means, for its message.
    consequence: &'static str,
    poll: Duration,
}

/// What a failed migration means.
const NOT_ROLLED_OUT: &str = "nothing was rolled out";
/// What a failed down migration means.
const LEFT_MIGRATED: &str = "the schema may be left migrated";

impl Migration<'_> {
    /// Runs the command with `image`; the task that ran it.
    async fn run(&self, image: &str, runtime: &Runtime) -> Result<String, StepError> {
        let (task_definition, log, fallback) = self.revision(image, runtime).await?;
        let launch = self.launch(fallback).await?;
        let task = self.start(&task_definition, &launch).await?;
        let stopped = self.wait(&task, &task_definition).await?;
        self.judge(&stopped, &task_definition, log.as_ref())?;
        Ok(task)
    }

    /// How the task is launched: like the service, the rule or the schedule, or `fallback`.
    async fn launch(&self, fallback: Launch) -> Result<Launch, StepError> {
        let cx = self.cx;
        if let Some(service) = &self.input.service {
            let live = LiveService::new(cx, self.artifact, &self.input.cluster, service, self.poll);
            return Ok(Launch::of_service(&live.describe().await?));
        }
        let found = match &self.input.launch_from {
            Some(LaunchFrom::Rule(rule)) => schedules::rule_targets(cx.clients(), rule)
                .await?
                .iter()
                .find_map(|t| t.ecs_parameters().map(launch::of_rule_target)),
            Some(LaunchFrom::Schedule(schedule)) => schedules::get_schedule(cx.clients(), schedule)
                .await?
                .target()
                .and_then(|t| t.ecs_parameters().map(launch::of_schedule_target)),
            None => None,
        };
        Ok(found.unwrap_or(fallback))
    }

    /// The migration family's revision with the released image, where the container logs
    /// (`awslogs` group and stream prefix) when it says, and how the family asks to be
    /// launched.
    async fn revision(
        &self,
        image: &str,
        runtime: &Runtime,
    ) -> Result<(String, Option<LogPlace>, Launch), StepError> {
        let ecs = &self.cx.clients().ecs();
        let family = &self.input.task_definition;
        let described = ecs
            .describe_task_definition()
            .task_definition(family)
            .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(|e| self.api("DescribeTaskDefinition", SdkFailure::new(e)))?;
        let Some(current) = described.task_definition() else {
            return Err(StepError::failure(format!(
                "task definition {family} has no contents"
            )));
        };
        let arn = current.task_definition_arn().unwrap_or(family).to_owned();
        let change = runtime.change(&self.input.container, image);
        let log = LogPlace::of(current, &self.input.container);
        let fallback = Launch::of_definition(current);
        let rendered = task_definition::render(current, described.tags(), &change)
            .map_err(StepError::failure)?;
        let arn = task_definition::register(ecs, &arn, rendered)
            .await
            .map_err(StepError::failure)?;
        Ok((arn, log, fallback))
    }

    /// `RunTask` in the service's network and launch type, with the command override.
    async fn start(&self, task_definition: &str, launch: &Launch) -> Result<String, StepError> {
        let overrides = TaskOverride::builder()
            .container_overrides(
                ContainerOverride::builder()
                    .name(&self.input.container)
                    .set_command(Some(self.command.to_vec()))
                    .build(),
            )
            .build();
        let out = self
            .cx
            .clients()
            .ecs()
            .run_task()
            .cluster(&self.input.cluster)
            .task_definition(task_definition)
            .overrides(overrides)
            .set_network_configuration(launch.network.clone())
            .set_launch_type(launch.launch_type())
            .set_capacity_provider_strategy(launch.capacity())
            .set_platform_version(launch.platform_version.clone())
            .started_by("deploy")
            .send()
            .await
            .map_err(|e| self.api("RunTask", SdkFailure::new(e)))?;
        let task = out.tasks().first().and_then(|t| t.task_arn());
        match task {
            Some(arn) => {
                self.note(format!("migration task {} started", task_id(arn)));
                Ok(arn.to_owned())
            }
            None => Err(StepError::failure(format!(
                "ecs:RunTask of {task_definition} started no task: {}",
                out.failures()
                    .iter()
                    .filter_map(|f| f.reason())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))),
        }
    }

    /// Waits for the task to stop; stops it when it runs past the timeout.
    async fn wait(&self, task: &str, task_definition: &str) -> Result<Task, StepError> {
        let wait = Wait::within(self.input.timeout, self.poll)
            .last_pause(LastPause::Whole)
            .cancelled_by(Some(self.cx.cancel));
        let waited = wait
            .until(move || async move {
                let described = self.describe(task).await?;
                let status = described.last_status().unwrap_or("PENDING");
                if status == "STOPPED" {
                    return Ok::<_, StepError>(Poll::Done(described));
                }
                self.cx.reporter().report(&wait.event(
                    self.artifact,
                    format!("migration task {}: {status}", task_id(task)),
                ));
                Ok(Poll::NotYet(()))
            })
            .await?;
        match waited {
            Waited::Done(stopped) => Ok(stopped),
            Waited::TimedOut(()) => {
                self.stop(task).await;
                Err(StepError::blocked(MigrationFailed {
                    task: task_id(task).to_owned(),
                    task_definition: task_definition.to_owned(),
                    outcome: format!("did not stop within {}s", self.input.timeout.as_secs()),
                    reason: "stopped by deploy".into(),
                    log_stream: None,
                    consequence: self.consequence,
                }))
            }
            Waited::Cancelled(()) => {
                self.stop(task).await;
                Err(StepError::failure(Cancelled))
            }
        }
    }

    /// Exit code 0 of the migration's container passes; anything else blocks.
    fn judge(
        &self,
        task: &Task,
        task_definition: &str,
        log: Option<&LogPlace>,
    ) -> Result<(), StepError> {
        let container = task
            .containers()
            .iter()
            .find(|c| c.name() == Some(self.input.container.as_str()));
        let exit = container.and_then(|c| c.exit_code());
        if exit == Some(0) {
            self.note(format!(
                "migration task {} exited 0",
                task_id(task.task_arn().unwrap_or_default())
            ));
            return Ok(());
        }
        Err(StepError::blocked(MigrationFailed {
            task: task_id(task.task_arn().unwrap_or_default()).to_owned(),
            task_definition: task_definition.to_owned(),
            outcome: exit.map_or_else(
                || "stopped without an exit code".to_owned(),
                |code| format!("exited with code {code}"),
            ),
            reason: task
                .stopped_reason()
                .unwrap_or("no reason given")
                .to_owned(),
            log_stream: log
                .map(|l| l.stream(&self.input.container, task.task_arn().unwrap_or_default())),
            consequence: self.consequence,
        }))
    }

    async fn describe(&self, task: &str) -> Result<Task, StepError> {
        let out = self
            .cx
            .clients()
            .ecs()
            .describe_tasks()
            .cluster(&self.input.cluster)
            .tasks(task)
            .send()
            .await
            .map_err(|e| self.api("DescribeTasks", SdkFailure::new(e)))?;
        out.tasks()
            .first()
            .cloned()
            .ok_or_else(|| StepError::failure(format!("migration task {task} is gone")))
    }

    async fn stop(&self, task: &str) {
        let stopped = self
            .cx
            .clients()
            .ecs()
            .stop_task()
            .cluster(&self.input.cluster)
            .task(task)
            .reason("deploy: the migration ran out of time or the run was cancelled")
            .send()
            .await;
        if let Err(err) = stopped {
            tracing::warn!(err = %SdkFailure::new(err), task, "could not stop the migration task");
        }
    }

    fn note(&self, message: String) {
        self.cx.reporter().report(&Event::Note {
            message: format!("{}: {message}", self.artifact),
        });
    }

    fn api(&self, operation: &'static str, source: SdkFailure) -> StepError {
        StepError::failure(MigrationApi {
            operation,
            family: self.input.task_definition.clone(),
            source,
        })
    }
}

/// An ECS call of the migration failed.
#[derive(Debug, thiserror::Error)]
#[error("ecs:{operation} for the migration {family} failed: {source}")]
pub struct MigrationApi {
    /// The operation.
    pub operation: &'static str,
    /// The migration's task-definition family.
    pub family: String,
    /// The SDK's error.
    #[source]
    pub source: SdkFailure,
}

/// Where a container logs with the `awslogs` driver.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogPlace {
    group: String,
    prefix: Option<String>,
}

impl LogPlace {
    fn of(definition: &aws_sdk_ecs::types::TaskDefinition, container: &str) -> Option<LogPlace> {
        let config = definition
            .container_definitions()
            .iter()
            .find(|c| c.name() == Some(container))?
            .log_configuration()?;
        if config.log_driver().as_str() != "awslogs" {
            return None;
        }
        let options = config.options()?;
        Some(LogPlace {
            group: options.get("awslogs-group")?.clone(),
            prefix: options.get("awslogs-stream-prefix").cloned(),
        })
    }

    /// `group:prefix/container/task-id`, as the awslogs driver names the stream; without a
    /// prefix the stream is named by the container runtime, so only the group is known.
    fn stream(&self, container: &str, task_arn: &str) -> String {
        match &self.prefix {
            Some(prefix) => format!("{}:{prefix}/{container}/{}", self.group, task_id(task_arn)),
            None => format!("{} (no awslogs-stream-prefix)", self.group),
        }
    }
}

/// The id at the end of a task ARN.
fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}
