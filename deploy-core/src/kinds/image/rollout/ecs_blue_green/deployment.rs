//! One ECS service deployment followed: found after `UpdateService`, polled (status,
//! lifecycle stage), gated while the old tasks bake, stopped with rollback.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{
    ServiceDeployment, ServiceDeploymentStatus, StopServiceDeploymentStopType,
};

use crate::aws::SdkFailure;
use crate::engine::{StepContext, StepError};
use crate::events::Event;
use crate::rollout::health::{self, CheckHealth};
use crate::wait::{Poll, Wait, Waited};

/// Why a service deployment failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceDeploymentError {
    /// An ECS call failed.
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
    /// The deployment failed, was rolled back or could not be found.
    #[error("the service deployment {deployment} of {cluster}/{service} {what}")]
    Failed {
        /// The service deployment ARN (or `?`).
        deployment: String,
        /// Cluster.
        cluster: String,
        /// Service.
        service: String,
        /// What happened.
        what: String,
    },
}

/// How a followed deployment ended.
#[derive(Debug)]
pub(crate) enum Ended {
    Successful,
    /// ECS rolled it back (circuit breaker, alarms), with the reason.
    RolledBack(String),
    /// It failed without a rollback (`ROLLBACK_FAILED`, `STOPPED`).
    Failed(String),
    /// The health gate failed while the old tasks baked.
    GateFailed(String),
    TimedOut,
    Cancelled,
}

/// One service's deployments, with the run's context.
pub(crate) struct Followed<'a> {
    pub cx: &'a StepContext<'a>,
    pub artifact: &'a str,
    pub cluster: &'a str,
    pub service: &'a str,
    pub poll: Duration,
}

impl Followed<'_> {
    pub fn api(&self, operation: &'static str, source: SdkFailure) -> StepError {
        StepError::failure(ServiceDeploymentError::Api {
            operation,
            cluster: self.cluster.to_owned(),
            service: self.service.to_owned(),
            source,
        })
    }

    pub fn failed(&self, deployment: &str, what: String) -> ServiceDeploymentError {
        ServiceDeploymentError::Failed {
            deployment: deployment.to_owned(),
            cluster: self.cluster.to_owned(),
            service: self.service.to_owned(),
            what,
        }
    }

    /// The newest service deployment of the service (the one `UpdateService` started).
    pub async fn latest(&self) -> Result<String, StepError> {
        let out = self
            .cx
            .clients()
            .ecs()
            .list_service_deployments()
            .cluster(self.cluster)
            .service(self.service)
            .send()
            .await
            .map_err(|e| self.api("ListServiceDeployments", SdkFailure::new(e)))?;
        let newest = out
            .service_deployments()
            .iter()
            .max_by(|a, b| {
                let at = |d: &aws_sdk_ecs::types::ServiceDeploymentBrief| {
                    d.created_at().map(|t| t.as_secs_f64()).unwrap_or(0.0)
                };
                at(a).total_cmp(&at(b))
            })
            .and_then(|d| d.service_deployment_arn());
        newest.map(str::to_owned).ok_or_else(|| {
            StepError::failure(self.failed("?", "was not found after UpdateService".into()))
        })
    }

    async fn describe(&self, arn: &str) -> Result<ServiceDeployment, StepError> {
        let out = self
            .cx
            .clients()
            .ecs()
            .describe_service_deployments()
            .service_deployment_arns(arn)
            .send()
            .await
            .map_err(|e| self.api("DescribeServiceDeployments", SdkFailure::new(e)))?;
        out.service_deployments()
            .first()
            .cloned()
            .ok_or_else(|| StepError::failure(self.failed(arn, "is gone".into())))
    }

    /// Follows `arn` to its end; runs `gate` once while the old tasks bake.
    pub async fn follow(
        &self,
        arn: &str,
        deadline: Instant,
        gate: Option<&CheckHealth>,
    ) -> Result<Ended, StepError> {
        // The gate, until it has run; and the lifecycle stage reported last.
        let gate = Mutex::new(gate);
        let last_stage = Mutex::new(String::new());
        let (gate, last_stage) = (&gate, &last_stage);
        let wait = Wait::new(deadline, self.poll).cancelled_by(Some(self.cx.cancel));
        let waited = wait
            .until(move || async move {
                let mut d = self.observe(arn, last_stage).await?;
                let due = if baking(&d) {
                    gate.lock().unwrap_or_else(PoisonError::into_inner).take()
                } else {
                    None
                };
                if let Some(check) = due {
                    if let Err(err) =
                        health::wait_healthy(self.cx, self.artifact, check, self.poll).await
                    {
                        return Ok(Poll::Done(Ended::GateFailed(err.to_string())));
                    }
                    d = self.observe(arn, last_stage).await?;
                }
                Ok::<_, StepError>(ended(&d).map_or(Poll::NotYet(()), Poll::Done))
            })
            .await?;
        Ok(match waited {
            Waited::Done(ended) => ended,
            Waited::TimedOut(()) => Ended::TimedOut,
            Waited::Cancelled(()) => Ended::Cancelled,
        })
    }

    /// The deployment now, its lifecycle stage reported when it changed.
    async fn observe(
        &self,
        arn: &str,
        last_stage: &Mutex<String>,
    ) -> Result<ServiceDeployment, StepError> {
        let d = self.describe(arn).await?;
        let stage = d.lifecycle_stage().map_or("", |s| s.as_str());
        let mut last = last_stage.lock().unwrap_or_else(PoisonError::into_inner);
        self.progress(&d, stage, &mut last);
        Ok(d)
    }

    fn progress(&self, d: &ServiceDeployment, stage: &str, last: &mut String) {
        let status = d.status().map_or("?", |s| s.as_str());
        if stage != last {
            self.cx.reporter().report(&Event::Note {
                message: format!(
                    "{}: {}/{} {status} {stage}",
                    self.artifact, self.cluster, self.service
                ),
            });
            last.clone_from(&stage.to_owned());
        }
    }

    /// `StopServiceDeployment` with `ROLLBACK`, then the rollback waited for.
    pub async fn roll_back(&self, arn: &str, why: String, deadline: Instant) -> StepError {
        let stopped = self
            .cx
            .clients()
            .ecs()
            .stop_service_deployment()
            .service_deployment_arn(arn)
            .stop_type(StopServiceDeploymentStopType::Rollback)
            .send()
            .await;
        if let Err(err) = stopped {
            return StepError::failure(format!(
                "{}; stopping it failed: {}",
                self.failed(arn, why),
                SdkFailure::new(err)
            ));
        }
        match self.follow(arn, deadline, None).await {
            Ok(Ended::RolledBack(_)) => StepError::failure(self.failed(arn, why)).rolled_back(),
            Ok(_) => StepError::failure(format!(
                "{}; its rollback did not complete",
                self.failed(arn, why)
            )),
            Err(err) => StepError::failure(format!(
                "{}; following its rollback failed: {err}",
                self.failed(arn, why)
            )),
        }
    }
}

/// Whether the old tasks bake (or the deployment is already through): the gate's moment.
fn baking(d: &ServiceDeployment) -> bool {
    d.lifecycle_stage()
        .is_some_and(|s| s.as_str() == "BAKE_TIME")
        || d.status() == Some(&ServiceDeploymentStatus::Successful)
}

/// How `d` ended, once it has.
fn ended(d: &ServiceDeployment) -> Option<Ended> {
    let status = d.status()?;
    let reason = d.status_reason().unwrap_or("no reason given").to_owned();
    match status {
        ServiceDeploymentStatus::Successful => Some(Ended::Successful),
        ServiceDeploymentStatus::RollbackSuccessful => Some(Ended::RolledBack(reason)),
        ServiceDeploymentStatus::RollbackFailed | ServiceDeploymentStatus::Stopped => Some(
            Ended::Failed(format!("ended {}: {reason}", status.as_str())),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use aws_sdk_ecs::operation::describe_service_deployments::DescribeServiceDeploymentsOutput;
    use aws_sdk_ecs::types::{ServiceDeployment, ServiceDeploymentStatus};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::{Ended, Followed};
    use crate::engine::TestRun;

    use crate::aws::error_response as failing;

    /// Throttling and a transient server error while a service deployment is followed are
    /// retried within the deadline; the outcome is acted on at once.
    #[tokio::test]
    async fn throttled_and_failing_polls_are_retried() {
        let describe = mock!(aws_sdk_ecs::Client::describe_service_deployments)
            .sequence()
            .http_response(|| failing(400, "ThrottlingException"))
            .http_response(|| failing(500, "ServerException"))
            .output(|| {
                DescribeServiceDeploymentsOutput::builder()
                    .service_deployments(
                        ServiceDeployment::builder()
                            .service_deployment_arn("arn:sd/1")
                            .status(ServiceDeploymentStatus::Successful)
                            .build(),
                    )
                    .build()
            })
            .build();
        let ecs = mock_client!(aws_sdk_ecs, RuleMode::Sequential, [&describe], |c| {
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
        let followed = Followed {
            cx: &cx,
            artifact: "api",
            cluster: "c",
            service: "s",
            poll: Duration::from_millis(1),
        };
        let started = Instant::now();
        let ended = followed
            .follow("arn:sd/1", Instant::now() + Duration::from_secs(5), None)
            .await
            .expect("followed");
        assert!(matches!(ended, Ended::Successful), "{ended:?}");
        assert_eq!(
            describe.num_calls(),
            3,
            "two failed answers, then the real one"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "acted on at once"
        );
    }
}
