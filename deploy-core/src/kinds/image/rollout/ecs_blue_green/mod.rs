//! `ecs-blue-green`: ECS's own blue/green, canary or linear deployment (since 2025). The next
//! revision is rendered as for `ecs-rolling`; `UpdateService` sends it with
//! `deploymentConfiguration.strategy`, the bake time, the canary or linear steps, the
//! lifecycle hooks, the alarms and the circuit breaker; the alternate target group and the
//! listener rules stay what the service's `loadBalancers` say (infra/). The service deployment
//! is followed with `ListServiceDeployments` / `DescribeServiceDeployments`.
//!
//! - While the old tasks bake (`BAKE_TIME`, or at the end without bake time), the health gate
//!   runs (`health_check.test_url`, else `url`); when it fails, `StopServiceDeployment`
//!   (`ROLLBACK`) and the rollback is waited for (exit 3).
//! - ECS rolling back by itself (circuit breaker, alarms) → exit 3, never success.
//! - The `timeout` or a cancel → `StopServiceDeployment` (`ROLLBACK`), waited for (exit 3).
//! - The undo of a completed deployment is a deployment of the previous revision.

pub(crate) mod config;
mod deployment;

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{
    CanaryConfiguration, DeploymentAlarms, DeploymentCircuitBreaker, DeploymentConfiguration,
    DeploymentLifecycleHook, DeploymentLifecycleHookStage, DeploymentStrategy, LinearConfiguration,
};
use serde::{Deserialize, Serialize};

use deployment::{Ended, Followed};

use super::ecs::{EcsError, LiveService};
use super::service::{self, Next, object};
use super::settings::Runtime;
use super::{EcsBlueGreen, TrafficShift};
use crate::engine::{Done, StepContext, StepError, Undo};
use crate::rollout::health::CheckHealth;

/// What the undo needs: the rollout's settings and the revision to deploy again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Previous {
    rollout: EcsBlueGreen,
    task_definition: String,
}

/// Checks before the lock: what `ecs-rolling` checks, and that the service has a load balancer
/// with an alternate target group (`advancedConfiguration`), which ECS's blue/green needs.
pub(crate) async fn preflight(
    cx: &StepContext<'_>,
    artifact: &str,
    rollout: &EcsBlueGreen,
    runtime: &Runtime,
    settings: (Duration, bool),
) -> Result<(), StepError> {
    let config = &rollout.service;
    let (service, _) = service::preflight(cx, artifact, config, runtime, settings).await?;
    let alternate = service
        .load_balancers()
        .iter()
        .any(|lb| lb.advanced_configuration().is_some());
    if alternate {
        return Ok(());
    }
    Err(StepError::failure(EcsError::NoService {
        cluster: config.cluster.clone(),
        service: config.service.clone(),
        problem: "has no load balancer with an alternate target group (loadBalancers[].advancedConfiguration), which ECS blue/green needs".into(),
    }))
}

/// The `deploymentConfiguration` of `rollout`.
fn deployment_configuration(rollout: &EcsBlueGreen) -> Result<DeploymentConfiguration, StepError> {
    let mut config = DeploymentConfiguration::builder()
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(true)
                .build(),
        )
        .bake_time_in_minutes(i32::try_from(rollout.bake_minutes).unwrap_or(i32::MAX));
    config = match &rollout.shift {
        TrafficShift::BlueGreen => config.strategy(DeploymentStrategy::BlueGreen),
        TrafficShift::Canary {
            percent,
            bake_minutes,
        } => config
            .strategy(DeploymentStrategy::Canary)
            .canary_configuration(
                CanaryConfiguration::builder()
                    .canary_percent(*percent)
                    .canary_bake_time_in_minutes(i32::try_from(*bake_minutes).unwrap_or(i32::MAX))
                    .build(),
            ),
        TrafficShift::Linear {
            percent,
            interval_minutes,
        } => config
            .strategy(DeploymentStrategy::Linear)
            .linear_configuration(
                LinearConfiguration::builder()
                    .step_percent(*percent)
                    .step_bake_time_in_minutes(i32::try_from(*interval_minutes).unwrap_or(i32::MAX))
                    .build(),
            ),
    };
    for hook in &rollout.lifecycle_hooks {
        let stages = hook
            .stages
            .iter()
            .map(|s| DeploymentLifecycleHookStage::from(s.as_str()));
        config = config.lifecycle_hooks(
            DeploymentLifecycleHook::builder()
                .hook_target_arn(&hook.function)
                .role_arn(&hook.role)
                .set_lifecycle_stages(Some(stages.collect()))
                .build(),
        );
    }
    if !rollout.service.alarms.is_empty() {
        let alarms = DeploymentAlarms::builder()
            .enable(true)
            .rollback(true)
            .set_alarm_names(Some(rollout.service.alarms.clone()))
            .build()
            .map_err(StepError::failure)?;
        config = config.alarms(alarms);
    }
    Ok(config.build())
}

/// Deploys the image this run published for `artifact`.
pub(crate) async fn run(
    cx: &StepContext<'_>,
    artifact: &str,
    rollout: &EcsBlueGreen,
    runtime: &Runtime,
    poll: Duration,
) -> Result<Done, StepError> {
    let config = &rollout.service;
    let live = LiveService::new(cx, artifact, &config.cluster, &config.service, poll);
    let Next {
        previous,
        next,
        mut record,
    } = match service::next_for_service(&live, config, runtime).await? {
        Ok(next) => next,
        Err(unchanged) => return Ok(unchanged),
    };
    let data = Previous {
        rollout: rollout.clone(),
        task_definition: previous.clone(),
    };
    let undo = Undo::compensate(
        format!(
            "deploy {previous} to {}/{} again",
            config.cluster, config.service
        ),
        &data,
    )?;
    // A run killed during the deployment is settled by deploying the previous revision.
    cx.journal(&undo).await;
    let arn = deploy(cx, artifact, rollout, &next, poll).await?;
    record.touched.push(object("ecs-service-deployment", &arn));
    service::clean_up(cx, artifact, config, [next, previous.clone()]).await;
    Ok(Done { record, undo })
}

/// One service deployment of `task_definition`, to success or rolled back; its ARN.
async fn deploy(
    cx: &StepContext<'_>,
    artifact: &str,
    rollout: &EcsBlueGreen,
    task_definition: &str,
    poll: Duration,
) -> Result<String, StepError> {
    let config = &rollout.service;
    let followed = Followed {
        cx,
        artifact,
        cluster: &config.cluster,
        service: &config.service,
        poll,
    };
    cx.clients()
        .ecs()
        .update_service()
        .cluster(&config.cluster)
        .service(&config.service)
        .task_definition(task_definition)
        .deployment_configuration(deployment_configuration(rollout)?)
        .send()
        .await
        .map_err(|e| followed.api("UpdateService", crate::aws::SdkFailure::new(e)))?;
    let arn = followed.latest().await?;
    let gate = config
        .health_check
        .as_ref()
        .map(|h| CheckHealth::of(h, h.test_url.as_ref().unwrap_or(&h.url)));
    let deadline = Instant::now() + config.timeout;
    let why = match followed.follow(&arn, deadline, gate.as_ref()).await? {
        Ended::Successful => return Ok(arn),
        Ended::RolledBack(reason) => {
            return Err(StepError::failure(
                followed.failed(&arn, format!("was rolled back by ECS: {reason}")),
            )
            .rolled_back());
        }
        Ended::Failed(reason) => return Err(StepError::failure(followed.failed(&arn, reason))),
        Ended::GateFailed(reason) => format!("failed its health gate: {reason}"),
        Ended::TimedOut => format!("did not finish within {}s", config.timeout.as_secs()),
        Ended::Cancelled => format!("was {}", crate::wait::CANCELLED),
    };
    Err(followed
        .roll_back(&arn, why, Instant::now() + config.timeout)
        .await)
}

/// Undoes a completed deployment: a deployment of the revision the service ran before.
pub(crate) async fn undo(
    cx: &StepContext<'_>,
    artifact: &str,
    data: &serde_json::Value,
    poll: Duration,
) -> Result<(), StepError> {
    let previous: Previous = Undo::decode(data)?;
    let mut rollout = previous.rollout;
    rollout.service.health_check = None;
    deploy(cx, artifact, &rollout, &previous.task_definition, poll).await?;
    Ok(())
}

super::strategy::deployment_strategy!(&EcsBlueGreen);
