//! One ECS service as the rollouts see it: what it runs, moving it to a task definition, and
//! following one deployment until it completes, fails, runs out of time or the run is
//! cancelled, with progress and the service's events as they arrive.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{
    DeploymentCircuitBreaker, DeploymentConfiguration, DeploymentRolloutState, Service, Tag,
    TaskDefinition,
};

use super::poller::Poller;
use crate::aws::SdkFailure;
use crate::engine::{StepContext, StepError};
use crate::events::Event;
use crate::wait::{Poll, Wait, Waited};

/// Why an ECS call or a deployment failed.
#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    /// An ECS API call failed.
    #[error("ecs:{operation} for {cluster}/{service} failed: {source}")]
    Api {
        /// The operation.
        operation: &'static str,
        /// Cluster.
        cluster: String,
        /// Service.
        service: String,
        /// The SDK's error.
        #[source]
        source: SdkFailure,
    },
    /// The cluster does not exist (ECS said `ClusterNotFoundException`).
    #[error(
        "ECS cluster `{cluster}` (rollout.cluster) does not exist in this environment's account \
         and region; create it with the environment's infra stack or fix `rollout.cluster` in \
         deploy.toml"
    )]
    NoCluster {
        /// Cluster.
        cluster: String,
    },
    /// The service does not exist or is not ACTIVE.
    #[error(
        "ECS service {cluster}/{service} {problem}; create it with the environment's infra stack"
    )]
    NoService {
        /// Cluster.
        cluster: String,
        /// Service.
        service: String,
        /// What is wrong (`does not exist`, `is DRAINING`).
        problem: String,
    },
    /// The deployment failed.
    #[error("the deployment of {cluster}/{service} failed: {reason}")]
    DeploymentFailed {
        /// Cluster.
        cluster: String,
        /// Service.
        service: String,
        /// ECS's reason.
        reason: String,
    },
    /// The deployment did not finish in time.
    #[error("the deployment of {cluster}/{service} did not finish within {}s", waited.as_secs())]
    TimedOut {
        /// Cluster.
        cluster: String,
        /// Service.
        service: String,
        /// How long it was given.
        waited: Duration,
    },
    /// A request could not be built from the configuration.
    #[error("{what}")]
    Invalid {
        /// What is wrong.
        what: String,
    },
    /// The run was cancelled while the deployment went on.
    #[error("stopped while {cluster}/{service} was being deployed: the run is being cancelled")]
    Cancelled {
        /// Cluster.
        cluster: String,
        /// Service.
        service: String,
    },
}

/// How a followed deployment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// rolloutState COMPLETED.
    Completed,
    /// rolloutState FAILED, with ECS's reason.
    Failed(String),
    /// The deadline passed.
    TimedOut,
    /// The run was cancelled.
    Cancelled,
    /// Tasks of the new revision keep failing to start (`fail_fast`); ECS has not failed the
    /// deployment yet.
    GaveUp(String),
}

/// One service of one cluster, with the run's context.
pub(crate) struct LiveService<'a> {
    pub cx: &'a StepContext<'a>,
    pub artifact: &'a str,
    pub cluster: &'a str,
    pub service: &'a str,
    pub poll: Duration,
    /// Give up on a deployment whose tasks keep failing to start.
    pub fail_fast: bool,
    /// Shared polls of the cluster, when other rollouts may follow its services too.
    pub poller: Option<&'a Poller>,
}

impl<'a> LiveService<'a> {
    /// `service` of `cluster`, for `artifact`'s events, polled every `poll`.
    pub fn new(
        cx: &'a StepContext<'a>,
        artifact: &'a str,
        cluster: &'a str,
        service: &'a str,
        poll: Duration,
    ) -> LiveService<'a> {
        LiveService {
            cx,
            artifact,
            cluster,
            service,
            poll,
            fail_fast: false,
            poller: None,
        }
    }

    fn ecs(&self) -> &aws_sdk_ecs::Client {
        self.cx.clients().ecs()
    }

    fn api(&self, operation: &'static str, source: SdkFailure) -> EcsError {
        if source.code() == Some("ClusterNotFoundException") {
            return EcsError::NoCluster {
                cluster: self.cluster.to_owned(),
            };
        }
        EcsError::Api {
            operation,
            cluster: self.cluster.to_owned(),
            service: self.service.to_owned(),
            source,
        }
    }

    /// The service, which must exist and be ACTIVE.
    pub async fn describe(&self) -> Result<Service, EcsError> {
        let out = self
            .ecs()
            .describe_services()
            .cluster(self.cluster)
            .services(self.service)
            .send()
            .await
            .map_err(|e| self.api("DescribeServices", SdkFailure::new(e)))?;
        self.active(out.services().first().cloned()).map_err(|e| *e)
    }

    /// The service as a round of the shared poller read it no earlier than `not_before`
    /// (without a poller, as [`LiveService::describe`] reads it now).
    async fn polled(&self, not_before: Instant) -> Result<Service, EcsError> {
        let Some(poller) = self.poller else {
            return self.describe().await;
        };
        let key = (self.environment(), self.cluster, self.service);
        let found = poller
            .describe(self.ecs(), key, not_before, self.poll / 2)
            .await
            .map_err(|e| self.api("DescribeServices", e))?;
        self.active(found).map_err(|e| *e)
    }

    fn environment(&self) -> &str {
        &self.cx.clients().target.environment
    }

    /// `service` when it is ACTIVE.
    fn active(&self, service: Option<Service>) -> Result<Service, Box<EcsError>> {
        let problem = match service.as_ref().and_then(Service::status) {
            Some("ACTIVE") => None,
            Some(other) => Some(format!("is {other}")),
            None => Some("does not exist".to_owned()),
        };
        match (service, problem) {
            (Some(service), None) => Ok(service),
            (_, problem) => Err(Box::new(EcsError::NoService {
                cluster: self.cluster.to_owned(),
                service: self.service.to_owned(),
                problem: problem.unwrap_or_default(),
            })),
        }
    }

    /// Moves the service to `task_definition` with the deployment circuit breaker (rollback
    /// on) and, when given, CloudWatch `alarms` that fail the deployment; returns the id of the
    /// deployment this started.
    pub async fn update(
        &self,
        task_definition: &str,
        alarms: &[String],
    ) -> Result<String, EcsError> {
        let mut config = DeploymentConfiguration::builder().deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(true)
                .build(),
        );
        if !alarms.is_empty() {
            let watched = aws_sdk_ecs::types::DeploymentAlarms::builder()
                .enable(true)
                .rollback(true)
                .set_alarm_names(Some(alarms.to_vec()))
                .build()
                .map_err(|e| EcsError::Invalid {
                    what: format!("deployment alarms {}: {e}", alarms.join(", ")),
                })?;
            config = config.alarms(watched);
        }
        let out = self
            .ecs()
            .update_service()
            .cluster(self.cluster)
            .service(self.service)
            .task_definition(task_definition)
            .deployment_configuration(config.build())
            .send()
            .await
            .map_err(|e| self.api("UpdateService", SdkFailure::new(e)))?;
        let primary = out
            .service()
            .into_iter()
            .flat_map(Service::deployments)
            .find(|d| d.status() == Some("PRIMARY") && d.task_definition() == Some(task_definition))
            .and_then(|d| d.id())
            .map(str::to_owned);
        Ok(primary.unwrap_or_default())
    }

    /// Follows deployment `id` (or, when empty, the PRIMARY deployment running
    /// `task_definition`, once there is one) until it ends or `deadline`; with `cancellable`,
    /// also until the run is cancelled.
    pub async fn follow(
        &self,
        id: &str,
        task_definition: &str,
        deadline: Instant,
        cancellable: bool,
    ) -> Result<Ended, EcsError> {
        let environment = self.environment();
        if let Some(poller) = self.poller {
            poller.watch(environment, self.cluster, self.service).await;
        }
        let ended = self
            .rounds(id, task_definition, deadline, cancellable)
            .await;
        if let Some(poller) = self.poller {
            poller
                .unwatch(environment, self.cluster, self.service)
                .await;
        }
        ended
    }

    async fn rounds(
        &self,
        id: &str,
        task_definition: &str,
        deadline: Instant,
        cancellable: bool,
    ) -> Result<Ended, EcsError> {
        let since = Instant::now();
        let seen_events = Mutex::new(HashSet::new());
        let seen_events = &seen_events;
        let wait =
            Wait::new(deadline, self.poll).cancelled_by(cancellable.then_some(self.cx.cancel));
        if wait.pause(self.pause(true).await).await.is_err() {
            return Ok(Ended::Cancelled);
        }
        let waited = wait
            .until(move || async move {
                let service = self.polled(since).await?;
                self.report_events(&service, seen_events);
                Ok::<_, EcsError>(
                    match self.progress(&service, id, task_definition, deadline) {
                        Some(ended) => Poll::Done(ended),
                        None => Poll::After(self.pause(false).await, ()),
                    },
                )
            })
            .await?;
        Ok(match waited {
            Waited::Done(ended) => ended,
            Waited::TimedOut(()) => Ended::TimedOut,
            Waited::Cancelled(()) => Ended::Cancelled,
        })
    }

    /// How long to wait before the next poll: until the cluster's next shared round, or one
    /// `poll` (nothing before the first poll without a poller).
    async fn pause(&self, first: bool) -> Duration {
        match self.poller {
            Some(poller) => {
                let due = poller
                    .next_round(self.environment(), self.cluster, self.poll)
                    .await;
                due.saturating_duration_since(Instant::now()).min(self.poll)
            }
            None if first => Duration::ZERO,
            None => self.poll,
        }
    }

    /// Reports the deployment's progress; how it ended, once it has.
    fn progress(
        &self,
        service: &Service,
        id: &str,
        task_definition: &str,
        deadline: Instant,
    ) -> Option<Ended> {
        let deployment = service.deployments().iter().find(|d| {
            if id.is_empty() {
                d.status() == Some("PRIMARY") && d.task_definition() == Some(task_definition)
            } else {
                d.id() == Some(id)
            }
        });
        let Some(deployment) = deployment else {
            if id.is_empty() {
                // ECS has not started the deployment yet (a circuit breaker's rollback).
                return None;
            }
            return Some(Ended::Failed(format!(
                "the deployment {id} is gone; the service runs {}",
                service.task_definition().unwrap_or("nothing")
            )));
        };
        let desired = deployment.desired_count().max(0);
        let running = deployment.running_count().max(0);
        let percent = (running * 100)
            .checked_div(desired)
            .unwrap_or(100)
            .clamp(0, 100);
        self.cx.reporter().report(&Event::RolloutProgress {
            artifact: self.artifact.to_owned(),
            percent: u8::try_from(percent).unwrap_or(100),
            detail: format!(
                "{}/{}: {running}/{desired} running, {} pending, {} failed",
                self.cluster,
                self.service,
                deployment.pending_count(),
                deployment.failed_tasks()
            ),
            remaining_ms: Some(remaining_ms(deadline)),
        });
        let failed = deployment.failed_tasks();
        if self.fail_fast
            && failed >= desired.max(2)
            && deployment.rollout_state() == Some(&DeploymentRolloutState::InProgress)
        {
            return Some(Ended::GaveUp(format!(
                "{failed} tasks of the new revision failed to start (fail_fast)"
            )));
        }
        match deployment.rollout_state() {
            Some(DeploymentRolloutState::Completed) => Some(Ended::Completed),
            Some(DeploymentRolloutState::Failed) => Some(Ended::Failed(
                deployment
                    .rollout_state_reason()
                    .unwrap_or("no reason given")
                    .to_owned(),
            )),
            _ => None,
        }
    }

    /// The service's events not reported yet, oldest first.
    fn report_events(&self, service: &Service, seen: &Mutex<HashSet<String>>) {
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh: Vec<&str> = service
            .events()
            .iter()
            .filter(|e| e.id().is_some_and(|id| seen.insert(id.to_owned())))
            .filter_map(|e| e.message())
            .collect();
        for message in fresh.into_iter().rev() {
            self.cx.reporter().report(&Event::Note {
                message: format!("{}: {message}", self.artifact),
            });
        }
    }

    /// Puts the service back on `task_definition` and waits (up to `limit`) for that
    /// deployment to complete.
    pub async fn restore(&self, task_definition: &str, limit: Duration) -> Result<(), StepError> {
        let id = self.update(task_definition, &[]).await?;
        match self
            .follow(&id, task_definition, Instant::now() + limit, false)
            .await?
        {
            Ended::Completed => Ok(()),
            Ended::Failed(reason) => Err(StepError::failure(EcsError::DeploymentFailed {
                cluster: self.cluster.to_owned(),
                service: self.service.to_owned(),
                reason: format!("putting it back on {task_definition}: {reason}"),
            })),
            Ended::TimedOut | Ended::Cancelled | Ended::GaveUp(_) => {
                Err(StepError::failure(EcsError::TimedOut {
                    cluster: self.cluster.to_owned(),
                    service: self.service.to_owned(),
                    waited: limit,
                }))
            }
        }
    }
}

/// The task definition `arn` with its tags.
pub(crate) async fn describe_definition(
    cx: &StepContext<'_>,
    arn: &str,
) -> Result<(TaskDefinition, Vec<Tag>), StepError> {
    let described = cx
        .clients()
        .ecs()
        .describe_task_definition()
        .task_definition(arn)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(|e| {
            StepError::failure(DescribeFailed {
                task_definition: arn.to_owned(),
                source: SdkFailure::new(e),
            })
        })?;
    let tags = described.tags().to_vec();
    match described.task_definition {
        Some(definition) => Ok((definition, tags)),
        None => Err(StepError::failure(format!(
            "task definition {arn} was described without its contents"
        ))),
    }
}

/// `DescribeTaskDefinition` failed.
#[derive(Debug, thiserror::Error)]
#[error("ecs:DescribeTaskDefinition of {task_definition} failed: {source}")]
pub struct DescribeFailed {
    /// The task definition.
    pub task_definition: String,
    /// The SDK's error.
    #[source]
    pub source: SdkFailure,
}

/// Milliseconds until `deadline` (0 once it passed).
pub(crate) fn remaining_ms(deadline: Instant) -> u64 {
    let left = deadline.saturating_duration_since(Instant::now());
    u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
}

impl crate::error::Classify for EcsError {
    /// A cluster or service the configuration names that does not exist is the configuration's
    /// problem (exit 2); anything else a failure.
    fn class(&self) -> crate::error::ErrorClass {
        match self {
            EcsError::NoCluster { .. } => crate::error::ErrorClass::Usage,
            EcsError::NoService { problem, .. } if problem == "does not exist" => {
                crate::error::ErrorClass::Usage
            }
            _ => crate::error::ErrorClass::Failure,
        }
    }

    fn config_key(&self) -> Option<&'static str> {
        match self {
            EcsError::NoCluster { .. } => Some("rollout.cluster"),
            EcsError::NoService { .. } => Some("rollout.service"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
    use aws_sdk_ecs::types::{Deployment, DeploymentRolloutState, Service};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::{Ended, LiveService};
    use crate::engine::TestRun;

    fn throttled() -> aws_smithy_runtime_api::http::Response {
        crate::aws::error_response(400, "ThrottlingException")
    }

    fn completed() -> DescribeServicesOutput {
        let deployment = Deployment::builder()
            .id("ecs-svc/1")
            .status("PRIMARY")
            .task_definition("arn:td:2")
            .desired_count(2)
            .running_count(2)
            .rollout_state(DeploymentRolloutState::Completed)
            .build();
        DescribeServicesOutput::builder()
            .services(
                Service::builder()
                    .status("ACTIVE")
                    .task_definition("arn:td:2")
                    .deployments(deployment)
                    .build(),
            )
            .build()
    }

    /// Throttling while a deployment is followed is retried by the SDK within the deadline.
    #[tokio::test]
    async fn throttled_polls_are_retried() {
        let rule = mock!(aws_sdk_ecs::Client::describe_services)
            .sequence()
            .http_response(throttled)
            .http_response(throttled)
            .output(completed)
            .build();
        let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&rule], |c| {
            c.retry_config(
                aws_sdk_ecs::config::retry::RetryConfig::standard()
                    .with_max_attempts(5)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
        });
        let mut clients = crate::aws::test_clients();
        clients = clients.with_ecs(ecs);
        let run = TestRun::new(clients);
        let cx = run.cx();
        let service = LiveService::new(&cx, "api", "c", "s", Duration::from_millis(1));
        let ended = service
            .follow(
                "ecs-svc/1",
                "arn:td:2",
                Instant::now() + Duration::from_secs(5),
                true,
            )
            .await
            .expect("followed");
        assert_eq!(ended, Ended::Completed);
        assert_eq!(
            rule.num_calls(),
            3,
            "two throttled answers, then the real one"
        );
        assert!(!run.recorder.events().is_empty(), "progress was reported");
    }
}
