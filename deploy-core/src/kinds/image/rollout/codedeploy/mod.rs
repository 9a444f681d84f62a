//! `codedeploy-blue-green`: the next revision of the service's task definition (rendered as for
//! `ecs-rolling`), then a CodeDeploy deployment with an AppSpec naming it, followed through its
//! lifecycle events and traffic weights.
//!
//! - When the group waits before moving production traffic (`deploymentReadyOption`
//!   `STOP_DEPLOYMENT`), the deployment is `Ready` with the replacement task set behind the test
//!   listener: `health_check.test_url` is checked then, and `ContinueDeployment` sent only if it
//!   passes. Without a `test_url` the deployment is continued at once.
//! - A failed test gate, the `timeout` or a cancel: `StopDeployment` with rollback, and the
//!   rollback deployment is waited for (exit 3).
//! - A deployment CodeDeploy failed (a hook failed) cannot be stopped: its rollback is the one
//!   the group's automatic rollback on `DEPLOYMENT_FAILURE` starts, named in `rollbackInfo`;
//!   it is waited for (exit 3). A rollback that fails or never comes: `failed` (exit 1), naming
//!   the task definition the service runs.
//! - The undo of a completed deployment (a later step failed) is a deployment of the previous
//!   revision.

mod appspec;
mod deployment;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use deployment::CodeDeployError;
use deployment::{Ended, Group};

use super::EcsService;
use super::ecs::{LiveService, describe_definition};
use super::service::{self, Next, object};
use super::settings::Runtime;
use crate::engine::{Done, StepContext, StepError, Undo};
use crate::events::Event;
use crate::rollout::health::{self, CheckHealth};

/// A `codedeploy-blue-green` rollout's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlueGreen<'a> {
    pub service: &'a EcsService,
    pub application: &'a str,
    pub group: &'a str,
    pub container_port: Option<u16>,
    pub lifecycle_hooks: &'a [super::LifecycleHook],
}

/// The deployment group is not one a blue/green rollout of the service can use.
#[derive(Debug, thiserror::Error)]
#[error("deployment group {group} {problem}; fix it in the environment's infra stack")]
pub struct GroupMismatch {
    /// `application/group`.
    pub group: String,
    /// What is wrong.
    pub problem: String,
}

/// What the undo needs: the revision to deploy again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Previous {
    application: String,
    group: String,
    cluster: String,
    service: String,
    container: String,
    container_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    lifecycle_hooks: Vec<super::LifecycleHook>,
    task_definition: String,
    timeout_secs: u64,
}

impl BlueGreen<'_> {
    fn group<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        artifact: &'a str,
        poll: Duration,
    ) -> Group<'a> {
        Group {
            cx,
            artifact,
            application: self.application,
            group: self.group,
            poll,
        }
    }
}

/// Checks before the lock: what `ecs-rolling` checks, the load balancer's container port, and
/// that the group deploys this service blue/green and rolls back by itself on failure.
pub(crate) async fn preflight(
    cx: &StepContext<'_>,
    artifact: &str,
    bg: &BlueGreen<'_>,
    runtime: &Runtime,
    (poll, skip_verify): (Duration, bool),
) -> Result<(), StepError> {
    let settings = (poll, skip_verify);
    let (service, definition) =
        service::preflight(cx, artifact, bg.service, runtime, settings).await?;
    let config = bg.service;
    appspec::container_port(&service, &definition, &config.container, bg.container_port)?;
    let info = bg.group(cx, artifact, poll).describe().await?;
    let group = format!("{}/{}", bg.application, bg.group);
    if let Some(problem) = group_problem(&info, config) {
        return Err(StepError::failure(GroupMismatch { group, problem }));
    }
    let wants_test = config
        .health_check
        .as_ref()
        .is_some_and(|h| h.test_url.is_some());
    if wants_test && !has_test_listener(&info) {
        return Err(StepError::new(
            crate::error::ErrorClass::Usage,
            GroupMismatch {
                group,
                problem: "has no test listener (testTrafficRoute), so `health_check.test_url` cannot reach the new tasks; remove `test_url` or give the group a test listener".into(),
            },
        ));
    }
    Ok(())
}

/// Whether the group routes test traffic to the replacement task set.
fn has_test_listener(info: &aws_sdk_codedeploy::types::DeploymentGroupInfo) -> bool {
    info.load_balancer_info()
        .map(|lb| lb.target_group_pair_info_list())
        .unwrap_or_default()
        .iter()
        .any(|pair| {
            pair.test_traffic_route()
                .is_some_and(|r| !r.listener_arns().is_empty())
        })
}

/// What makes `info` unfit for a blue/green rollout of `config`'s service, if anything.
fn group_problem(
    info: &aws_sdk_codedeploy::types::DeploymentGroupInfo,
    config: &EcsService,
) -> Option<String> {
    let deploys_service = info.ecs_services().iter().any(|s| {
        s.cluster_name() == Some(config.cluster.as_str())
            && s.service_name() == Some(config.service.as_str())
    });
    if !deploys_service {
        return Some(format!(
            "does not deploy ECS service {}/{}",
            config.cluster, config.service
        ));
    }
    let auto = info.auto_rollback_configuration();
    let on_failure = auto.is_some_and(|a| {
        a.enabled()
            && a.events()
                .contains(&aws_sdk_codedeploy::types::AutoRollbackEvent::DeploymentFailure)
    });
    (!on_failure).then(|| {
        "does not roll back automatically on DEPLOYMENT_FAILURE (autoRollbackConfiguration), so a failed hook would leave the deployment half done".to_owned()
    })
}

/// Deploys the image this run published for `artifact` blue/green.
pub(crate) async fn run(
    cx: &StepContext<'_>,
    artifact: &str,
    bg: &BlueGreen<'_>,
    runtime: &Runtime,
    poll: Duration,
) -> Result<Done, StepError> {
    let config = bg.service;
    let live = LiveService::new(cx, artifact, &config.cluster, &config.service, poll);
    let Next {
        previous,
        next,
        mut record,
    } = match service::next_for_service(&live, config, runtime).await? {
        Ok(next) => next,
        Err(unchanged) => return Ok(unchanged),
    };
    // A run killed during the deployment is settled by stopping it and deploying the
    // previous revision.
    cx.journal(&undo_to(bg, &previous)?).await;
    let id = deploy(cx, artifact, bg, &next, poll).await?;
    record.touched.push(object("codedeploy-deployment", &id));
    service::clean_up(cx, artifact, config, [next, previous.clone()]).await;
    Ok(Done {
        record,
        undo: undo_to(bg, &previous)?,
    })
}

/// One blue/green deployment of `task_definition`, to success or rolled back.
async fn deploy(
    cx: &StepContext<'_>,
    artifact: &str,
    bg: &BlueGreen<'_>,
    task_definition: &str,
    poll: Duration,
) -> Result<String, StepError> {
    let config = bg.service;
    let live = LiveService::new(cx, artifact, &config.cluster, &config.service, poll);
    let service = live.describe().await?;
    let (definition, _) = describe_definition(cx, task_definition).await?;
    let port =
        appspec::container_port(&service, &definition, &config.container, bg.container_port)?;
    let group = bg.group(cx, artifact, poll);
    group.ensure_idle().await?;
    let appspec = appspec::render(
        &service,
        task_definition,
        (&config.container, port),
        bg.lifecycle_hooks,
    );
    let id = group
        .create(appspec, &format!("deploy {artifact}: {task_definition}"))
        .await?;
    let test = config
        .health_check
        .as_ref()
        .and_then(|h| h.test_url.as_ref().map(|url| CheckHealth::of(h, url)));
    let shift = Shift {
        group: &group,
        live: &live,
        id: &id,
        timeout: config.timeout,
    };
    shift.run(test.as_ref()).await?;
    Ok(id)
}

/// One deployment being followed to its end.
struct Shift<'a> {
    group: &'a Group<'a>,
    live: &'a LiveService<'a>,
    id: &'a str,
    timeout: Duration,
}

impl Shift<'_> {
    async fn run(&self, test: Option<&CheckHealth>) -> Result<(), StepError> {
        let deadline = Instant::now() + self.timeout;
        let mut gated = false;
        loop {
            match self.group.follow(self.id, deadline, !gated, true).await? {
                Ended::Succeeded => return Ok(()),
                Ended::Ready => {
                    gated = true;
                    if let Some(check) = test {
                        let (cx, artifact) = (self.group.cx, self.group.artifact);
                        if let Err(gate) =
                            health::wait_healthy(cx, artifact, check, self.group.poll).await
                        {
                            return Err(self.roll_back(gate.to_string()).await);
                        }
                    }
                    self.group.resume(self.id).await?;
                }
                Ended::Failed { reason, rollback } => {
                    return Err(self.after_failure(reason, rollback).await);
                }
                Ended::TimedOut => {
                    let why = format!("did not finish within {}s", self.timeout.as_secs());
                    return Err(self.roll_back(why).await);
                }
                Ended::Cancelled => {
                    let why = format!("was {}", crate::wait::CANCELLED);
                    return Err(self.roll_back(why).await);
                }
            }
        }
    }

    fn error(&self, what: String) -> CodeDeployError {
        CodeDeployError::Failed {
            deployment: self.id.to_owned(),
            group: format!("{}/{}", self.group.application, self.group.group),
            what,
        }
    }

    /// Stops the deployment with rollback and waits for the rollback.
    async fn roll_back(&self, why: String) -> StepError {
        let deadline = Instant::now() + self.timeout;
        match self.group.stop(self.id, deadline).await {
            Ok(rollback) => self.wait_rollback(why, rollback, deadline).await,
            Err(err) => {
                StepError::failure(format!("{}; stopping it failed: {err}", self.error(why)))
            }
        }
    }

    /// CodeDeploy failed the deployment: wait for the rollback the group starts.
    async fn after_failure(&self, reason: String, rollback: Option<String>) -> StepError {
        let deadline = Instant::now() + self.timeout;
        let rollback = match rollback {
            Some(id) => Some(id),
            None => self
                .group
                .rollback_of(self.id, deadline)
                .await
                .ok()
                .flatten(),
        };
        self.wait_rollback(reason, rollback, deadline).await
    }

    async fn wait_rollback(
        &self,
        why: String,
        rollback: Option<String>,
        deadline: Instant,
    ) -> StepError {
        let failed = self.error(why);
        let Some(rollback) = rollback else {
            return StepError::failure(format!(
                "{failed}; no rollback came; {}",
                self.serving().await
            ));
        };
        match self.group.follow(&rollback, deadline, false, false).await {
            Ok(Ended::Succeeded) => {
                self.group.cx.reporter().report(&Event::Note {
                    message: format!(
                        "{}: rollback deployment {rollback} succeeded",
                        self.group.artifact
                    ),
                });
                StepError::failure(failed).rolled_back()
            }
            Ok(_) | Err(_) => StepError::failure(format!(
                "{failed}; its rollback deployment {rollback} did not succeed; {}",
                self.serving().await
            )),
        }
    }

    /// What serves traffic now, for an error that leaves it in doubt.
    async fn serving(&self) -> String {
        match self.live.describe().await {
            Ok(service) => format!(
                "the service runs {}",
                service.task_definition().unwrap_or("no task definition")
            ),
            Err(err) => format!("what the service runs could not be read: {err}"),
        }
    }
}

fn undo_to(bg: &BlueGreen<'_>, previous: &str) -> Result<Undo, StepError> {
    let config = bg.service;
    let data = Previous {
        application: bg.application.to_owned(),
        group: bg.group.to_owned(),
        cluster: config.cluster.clone(),
        service: config.service.clone(),
        container: config.container.clone(),
        container_port: bg.container_port,
        lifecycle_hooks: bg.lifecycle_hooks.to_vec(),
        task_definition: previous.to_owned(),
        timeout_secs: config.timeout.as_secs(),
    };
    Undo::compensate(
        format!(
            "deploy {previous} to {}/{} again (CodeDeploy {}/{})",
            config.cluster, config.service, bg.application, bg.group
        ),
        &data,
    )
}

/// Undoes a completed deployment: a deployment of the revision the service ran before.
pub(crate) async fn undo(
    cx: &StepContext<'_>,
    artifact: &str,
    data: &serde_json::Value,
    poll: Duration,
) -> Result<(), StepError> {
    let previous: Previous = Undo::decode(data)?;
    let service = EcsService {
        cluster: previous.cluster.clone(),
        service: previous.service.clone(),
        container: previous.container.clone(),
        keep_revisions: 0,
        pre_deploy: None,
        health_check: None,
        timeout: Duration::from_secs(previous.timeout_secs),
        alarms: Vec::new(),
        fail_fast: false,
    };
    let bg = BlueGreen {
        service: &service,
        application: &previous.application,
        group: &previous.group,
        container_port: previous.container_port,
        lifecycle_hooks: &previous.lifecycle_hooks,
    };
    let deadline = Instant::now() + service.timeout;
    bg.group(cx, artifact, poll).stop_left(deadline).await?;
    deploy(cx, artifact, &bg, &previous.task_definition, poll).await?;
    Ok(())
}

super::strategy::deployment_strategy!(BlueGreen<'_>);
