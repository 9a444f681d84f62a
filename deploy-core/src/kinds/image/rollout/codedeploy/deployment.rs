//! One CodeDeploy deployment as a rollout follows it: created, polled (status, lifecycle
//! events, traffic weights), continued after the test-traffic gate, stopped with rollback, and
//! its rollback deployment waited for.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_codedeploy::types::{
    AppSpecContent, DeploymentInfo, DeploymentStatus, DeploymentWaitType, RevisionLocation,
    RevisionLocationType,
};

use crate::aws::SdkFailure;
use crate::engine::{StepContext, StepError};
use crate::events::Event;
use crate::wait::{Poll, Wait, Waited};

/// Why a CodeDeploy call or deployment failed.
#[derive(Debug, thiserror::Error)]
pub enum CodeDeployError {
    /// A CodeDeploy call failed.
    #[error("codedeploy:{operation} for {group} failed: {source}")]
    Api {
        /// The operation.
        operation: &'static str,
        /// `application/group`.
        group: String,
        /// The SDK's error.
        #[source]
        source: SdkFailure,
    },
    /// The application or the deployment group the configuration names does not exist.
    #[error(
        "CodeDeploy {what} `{name}` (rollout.{key}) does not exist in this environment's account \
         and region; create it with the environment's infra stack or fix `rollout.{key}` in \
         deploy.toml"
    )]
    Missing {
        /// `application` or `deployment group`.
        what: &'static str,
        /// Its name (`application/group` for a group).
        name: String,
        /// The configuration key (`application`, `deployment_group`).
        key: &'static str,
    },
    /// Another deployment of the group is in progress.
    #[error(
        "deployment group {group} already has deployment {deployment} in progress; wait for it (or stop it) and run again"
    )]
    Busy {
        /// `application/group`.
        group: String,
        /// The deployment in progress.
        deployment: String,
    },
    /// The deployment failed or was stopped.
    #[error("CodeDeploy deployment {deployment} of {group} {what}")]
    Failed {
        /// The deployment.
        deployment: String,
        /// `application/group`.
        group: String,
        /// What happened (`failed: HOOK_EXECUTION_FAILURE: ...`).
        what: String,
    },
}

/// How a followed deployment ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// `Succeeded`.
    Succeeded,
    /// `Failed` or `Stopped`, with CodeDeploy's reason and its rollback deployment, if any.
    Failed {
        reason: String,
        rollback: Option<String>,
    },
    /// `Ready`: waiting for `ContinueDeployment`.
    Ready,
    /// The deadline passed.
    TimedOut,
    /// The run was cancelled.
    Cancelled,
}

/// A deployment group and the run's context.
pub(crate) struct Group<'a> {
    pub cx: &'a StepContext<'a>,
    pub artifact: &'a str,
    pub application: &'a str,
    pub group: &'a str,
    pub poll: Duration,
}

impl Group<'_> {
    fn client(&self) -> &aws_sdk_codedeploy::Client {
        self.cx.clients().codedeploy()
    }

    fn name(&self) -> String {
        format!("{}/{}", self.application, self.group)
    }

    fn api(&self, operation: &'static str, source: SdkFailure) -> StepError {
        let missing = match source.code() {
            Some("ApplicationDoesNotExistException") => {
                Some(("application", self.application.to_owned(), "application"))
            }
            Some("DeploymentGroupDoesNotExistException") => {
                Some(("deployment group", self.name(), "deployment_group"))
            }
            _ => None,
        };
        if let Some((what, name, key)) = missing {
            let error = CodeDeployError::Missing { what, name, key };
            let at = if key == "application" {
                "rollout.application"
            } else {
                "rollout.deployment_group"
            };
            return StepError::new(crate::error::ErrorClass::Usage, error).at_key(at);
        }
        StepError::failure(CodeDeployError::Api {
            operation,
            group: self.name(),
            source,
        })
    }

    fn note(&self, message: String) {
        self.cx.reporter().report(&Event::Note {
            message: format!("{}: {message}", self.artifact),
        });
    }

    /// The group as CodeDeploy describes it.
    pub async fn describe(
        &self,
    ) -> Result<aws_sdk_codedeploy::types::DeploymentGroupInfo, StepError> {
        let out = self
            .client()
            .get_deployment_group()
            .application_name(self.application)
            .deployment_group_name(self.group)
            .send()
            .await
            .map_err(|e| self.api("GetDeploymentGroup", SdkFailure::new(e)))?;
        out.deployment_group_info.ok_or_else(|| {
            StepError::failure(format!(
                "deployment group {} was described without its contents",
                self.name()
            ))
        })
    }

    /// The group's deployments that are not over (created, queued, in progress or ready).
    async fn in_progress(
        &self,
    ) -> Result<aws_sdk_codedeploy::operation::list_deployments::ListDeploymentsOutput, SdkFailure>
    {
        self.client()
            .list_deployments()
            .application_name(self.application)
            .deployment_group_name(self.group)
            .set_include_only_statuses(Some(vec![
                DeploymentStatus::Created,
                DeploymentStatus::Queued,
                DeploymentStatus::InProgress,
                DeploymentStatus::Ready,
            ]))
            .send()
            .await
            .map_err(SdkFailure::new)
    }

    /// Stops the deployments of this artifact (by their description, `deploy ARTIFACT: ...`)
    /// that are not over: one a run that died left at its test gate, say. Each is stopped with
    /// CodeDeploy's rollback, which is followed to its end. Anyone else's deployment is left
    /// alone (the deployment that follows then names it).
    pub async fn stop_left(&self, deadline: Instant) -> Result<(), StepError> {
        let out = self
            .in_progress()
            .await
            .map_err(|e| self.api("ListDeployments", e))?;
        let ours = format!("deploy {}: ", self.artifact);
        for id in out.deployments() {
            let info = self.get(id).await?;
            if !info.description().is_some_and(|d| d.starts_with(&ours)) {
                continue;
            }
            self.note(format!(
                "{id} was left in progress by a run that died; stopping it"
            ));
            if let Some(rollback) = self.stop(id, deadline).await? {
                self.follow(&rollback, deadline, false, false).await?;
            }
        }
        Ok(())
    }

    /// Fails naming the deployment of the group that is in progress, if one is.
    pub async fn ensure_idle(&self) -> Result<(), StepError> {
        let out = self
            .in_progress()
            .await
            .map_err(|e| self.api("ListDeployments", e))?;
        match out.deployments().first() {
            None => Ok(()),
            Some(deployment) => Err(StepError::failure(CodeDeployError::Busy {
                group: self.name(),
                deployment: deployment.clone(),
            })),
        }
    }

    /// Starts a deployment of `appspec` (JSON, with its hex sha256); returns its id.
    pub async fn create(
        &self,
        (appspec, sha256): (String, String),
        description: &str,
    ) -> Result<String, StepError> {
        let revision = RevisionLocation::builder()
            .revision_type(RevisionLocationType::AppSpecContent)
            .app_spec_content(
                AppSpecContent::builder()
                    .content(appspec)
                    .sha256(sha256.clone())
                    .build(),
            )
            .build();
        let created = self
            .client()
            .create_deployment()
            .application_name(self.application)
            .deployment_group_name(self.group)
            .revision(revision)
            .description(description)
            .send()
            .await;
        let id = match created {
            Ok(out) => out.deployment_id().unwrap_or_default().to_owned(),
            Err(err) => {
                let failure = SdkFailure::new(err);
                match self.created_by_lost_answer(&failure, &sha256).await {
                    Some(id) => id,
                    None => return Err(self.api("CreateDeployment", failure)),
                }
            }
        };
        self.note(format!(
            "CodeDeploy deployment {id} of {} started",
            self.name()
        ));
        Ok(id)
    }

    /// After a refused `CreateDeployment` (`DeploymentLimitExceededException`): the
    /// deployment in progress when it is this run's own, its AppSpec's sha256 being
    /// `sha256`. An attempt whose answer was lost created it, and the SDK's retry met it.
    async fn created_by_lost_answer(&self, failure: &SdkFailure, sha256: &str) -> Option<String> {
        if failure.code() != Some("DeploymentLimitExceededException") {
            return None;
        }
        let out = self.in_progress().await.ok()?;
        for id in out.deployments() {
            let info = self.get(id).await.ok()?;
            let sent = info
                .revision()
                .and_then(|r| r.app_spec_content())
                .and_then(|c| c.sha256());
            if sent == Some(sha256) {
                return Some(id.clone());
            }
        }
        None
    }

    async fn get(&self, id: &str) -> Result<DeploymentInfo, StepError> {
        let out = self
            .client()
            .get_deployment()
            .deployment_id(id)
            .send()
            .await
            .map_err(|e| self.api("GetDeployment", SdkFailure::new(e)))?;
        out.deployment_info.ok_or_else(|| {
            StepError::failure(format!(
                "deployment {id} was described without its contents"
            ))
        })
    }

    /// Follows deployment `id` until it succeeds, fails, is `Ready` (when `stop_at_ready`),
    /// the deadline passes or (with `cancellable`) the run is cancelled.
    pub async fn follow(
        &self,
        id: &str,
        deadline: Instant,
        stop_at_ready: bool,
        cancellable: bool,
    ) -> Result<Ended, StepError> {
        let seen = Mutex::new(HashSet::new());
        let seen = &seen;
        let wait =
            Wait::new(deadline, self.poll).cancelled_by(cancellable.then_some(self.cx.cancel));
        let waited = wait
            .until(move || async move {
                let info = self.get(id).await?;
                self.progress(id, &info, seen, deadline).await;
                Ok::<_, StepError>(match info.status() {
                    Some(DeploymentStatus::Succeeded) => Poll::Done(Ended::Succeeded),
                    Some(DeploymentStatus::Failed | DeploymentStatus::Stopped) => {
                        Poll::Done(failed(&info))
                    }
                    Some(DeploymentStatus::Ready) if stop_at_ready => Poll::Done(Ended::Ready),
                    _ => Poll::NotYet(()),
                })
            })
            .await?;
        Ok(match waited {
            Waited::Done(ended) => ended,
            Waited::TimedOut(()) => Ended::TimedOut,
            Waited::Cancelled(()) => Ended::Cancelled,
        })
    }

    /// Reports the status, lifecycle events newly done and the traffic weights.
    async fn progress(
        &self,
        id: &str,
        info: &DeploymentInfo,
        seen: &Mutex<HashSet<String>>,
        deadline: Instant,
    ) {
        let status = info.status().map_or("?", DeploymentStatus::as_str);
        let Ok(targets) = self.targets(id).await else {
            return;
        };
        let mut weights = Vec::new();
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        for target in targets.iter().filter_map(|t| t.ecs_target()) {
            for event in target.lifecycle_events() {
                let name = event.lifecycle_event_name().unwrap_or("?");
                let state = event.status().map_or("?", |s| s.as_str());
                if matches!(state, "Succeeded" | "Failed" | "Skipped")
                    && seen.insert(name.to_owned())
                {
                    self.note(format!("{id}: {name} {}", state.to_lowercase()));
                }
            }
            for set in target.task_sets_info() {
                let label = set.task_set_label().map_or("?", |l| l.as_str());
                weights.push(format!("{label} {:.0}%", set.traffic_weight()));
            }
        }
        let shifted = weights
            .iter()
            .find(|w| w.starts_with("Green"))
            .and_then(|w| {
                w.trim_start_matches("Green ")
                    .trim_end_matches('%')
                    .parse::<u8>()
                    .ok()
            });
        self.cx.reporter().report(&Event::RolloutProgress {
            artifact: self.artifact.to_owned(),
            percent: shifted.unwrap_or(0),
            detail: format!("{id} {status}; traffic {}", weights.join(", ")),
            remaining_ms: Some(crate::kinds::image::rollout::ecs::remaining_ms(deadline)),
        });
    }

    async fn targets(
        &self,
        id: &str,
    ) -> Result<Vec<aws_sdk_codedeploy::types::DeploymentTarget>, SdkFailure> {
        let ids = self
            .client()
            .list_deployment_targets()
            .deployment_id(id)
            .send()
            .await
            .map_err(SdkFailure::new)?;
        if ids.target_ids().is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .client()
            .batch_get_deployment_targets()
            .deployment_id(id)
            .set_target_ids(Some(ids.target_ids().to_vec()))
            .send()
            .await
            .map_err(SdkFailure::new)?;
        Ok(out.deployment_targets().to_vec())
    }

    /// Lets a `Ready` deployment move production traffic.
    /// A refused or unanswered call is read back: a deployment no longer `Ready` was
    /// continued (a retry of a call whose answer was lost is refused as not ready).
    pub async fn resume(&self, id: &str) -> Result<(), StepError> {
        let sent = self
            .client()
            .continue_deployment()
            .deployment_id(id)
            .deployment_wait_type(DeploymentWaitType::ReadyWait)
            .send()
            .await;
        if let Err(err) = sent {
            let failure = self.api("ContinueDeployment", SdkFailure::new(err));
            match self.get(id).await {
                Ok(info) if info.status() != Some(&DeploymentStatus::Ready) => {}
                _ => return Err(failure),
            }
        }
        self.note(format!(
            "{id}: test traffic healthy, production traffic moves"
        ));
        Ok(())
    }

    /// Stops `id` with rollback; returns the rollback deployment, once CodeDeploy names it.
    /// A deployment that already completed cannot be stopped: its own rollback (from the
    /// group's automatic rollback on failure) is returned instead, if it has one.
    pub async fn stop(&self, id: &str, deadline: Instant) -> Result<Option<String>, StepError> {
        let stopped = self
            .client()
            .stop_deployment()
            .deployment_id(id)
            .auto_rollback_enabled(true)
            .send()
            .await;
        if let Err(err) = stopped {
            let completed = err
                .as_service_error()
                .is_some_and(|e| e.is_deployment_already_completed_exception());
            if !completed {
                return Err(self.api("StopDeployment", SdkFailure::new(err)));
            }
        } else {
            self.note(format!("{id}: stopped, rolling back"));
        }
        self.rollback_of(id, deadline).await
    }

    /// The rollback deployment of `id`, waiting (until `deadline`) for CodeDeploy to name it.
    pub async fn rollback_of(
        &self,
        id: &str,
        deadline: Instant,
    ) -> Result<Option<String>, StepError> {
        let waited = Wait::new(deadline, self.poll)
            .until(move || async move {
                let info = self.get(id).await?;
                Ok::<_, StepError>(
                    match info
                        .rollback_info()
                        .and_then(|r| r.rollback_deployment_id())
                    {
                        Some(rollback) => Poll::Done(rollback.to_owned()),
                        None => Poll::NotYet(()),
                    },
                )
            })
            .await?;
        Ok(match waited {
            Waited::Done(rollback) => Some(rollback),
            Waited::TimedOut(()) | Waited::Cancelled(()) => None,
        })
    }
}

fn failed(info: &DeploymentInfo) -> Ended {
    let status = info
        .status()
        .map_or("failed", DeploymentStatus::as_str)
        .to_lowercase();
    let reason = match info.error_information() {
        Some(e) => format!(
            "{status}: {}: {}",
            e.code().map_or("?", |c| c.as_str()),
            e.message().unwrap_or_default()
        ),
        None => status,
    };
    Ended::Failed {
        reason,
        rollback: info
            .rollback_info()
            .and_then(|r| r.rollback_deployment_id())
            .map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use aws_sdk_codedeploy::operation::get_deployment::GetDeploymentOutput;
    use aws_sdk_codedeploy::operation::list_deployment_targets::ListDeploymentTargetsOutput;
    use aws_sdk_codedeploy::types::{DeploymentInfo, DeploymentStatus};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::{Ended, Group};
    use crate::engine::TestRun;

    use crate::aws::error_response as failing;

    /// Throttling and a transient server error while a deployment is followed are retried by
    /// the SDK within the deadline, and the outcome is acted on at once.
    #[tokio::test]
    async fn throttled_and_failing_polls_are_retried() {
        let get = mock!(aws_sdk_codedeploy::Client::get_deployment)
            .sequence()
            .http_response(|| failing(400, "ThrottlingException"))
            .http_response(|| failing(503, "ServiceUnavailableException"))
            .output(|| {
                GetDeploymentOutput::builder()
                    .deployment_info(
                        DeploymentInfo::builder()
                            .deployment_id("d-1")
                            .status(DeploymentStatus::Succeeded)
                            .build(),
                    )
                    .build()
            })
            .build();
        let targets = mock!(aws_sdk_codedeploy::Client::list_deployment_targets)
            .then_output(|| ListDeploymentTargetsOutput::builder().build());
        let codedeploy = mock_client!(
            aws_sdk_codedeploy,
            RuleMode::MatchAny,
            [&get, &targets],
            |c| {
                c.retry_config(
                    aws_sdk_codedeploy::config::retry::RetryConfig::standard()
                        .with_max_attempts(5)
                        .with_initial_backoff(Duration::from_millis(1)),
                )
            }
        );
        let mut clients = crate::aws::test_clients();
        clients = clients.with_codedeploy(codedeploy);
        let run = TestRun::new(clients);
        let cx = run.cx();
        let group = Group {
            cx: &cx,
            artifact: "api",
            application: "app",
            group: "api",
            poll: Duration::from_millis(1),
        };
        let started = Instant::now();
        let ended = group
            .follow("d-1", Instant::now() + Duration::from_secs(5), true, true)
            .await
            .expect("followed");
        assert!(matches!(ended, Ended::Succeeded), "{ended:?}");
        assert_eq!(get.num_calls(), 3, "two failed answers, then the real one");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "acted on at once"
        );
    }
}
