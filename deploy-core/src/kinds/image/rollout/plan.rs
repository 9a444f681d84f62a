//! The rollout steps each image strategy adds after the image is published.

use serde::{Deserialize, Serialize};

use super::ImageRollout;
use crate::ledger::AwsObject;
use crate::plan::{Action, ActionInput, Chain};

/// Roll an image out by digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutImage {
    /// ECR repository.
    pub repository: String,
    /// How.
    pub rollout: ImageRollout,
}

impl ActionInput for RolloutImage {
    const TYPE: &'static str = "rollout-image";

    fn reversibility(&self) -> crate::plan::Reversibility {
        match self.rollout {
            ImageRollout::None => crate::plan::Reversibility::Nothing,
            _ => crate::plan::Reversibility::Reversible,
        }
    }
}

/// Adds the rollout of the image in `repository` (nothing for `none`), after the migration
/// when `migrate`.
pub fn image_steps(repository: &str, rollout: &ImageRollout, migrate: bool, chain: &mut Chain<'_>) {
    if *rollout == ImageRollout::None {
        return;
    }
    match rollout {
        _ if !migrate => {}
        ImageRollout::EcsRolling(service)
        | ImageRollout::CodedeployBlueGreen { service, .. }
        | ImageRollout::EcsBlueGreen(super::EcsBlueGreen { service, .. }) => {
            if let Some(pre) = &service.pre_deploy {
                super::migration::plan_step(service, pre, chain);
            }
        }
        ImageRollout::TaskDefinitions(jobs) => super::migration::plan_jobs_step(jobs, chain),
        ImageRollout::None => {}
    }
    let description = format!("roll out {} ({})", chain.artifact(), rollout.strategy());
    chain.then(
        description,
        Action::new(&RolloutImage {
            repository: repository.to_owned(),
            rollout: rollout.clone(),
        }),
        image_touches(rollout),
    );
    if let ImageRollout::EcsRolling(service) | ImageRollout::CodedeployBlueGreen { service, .. } =
        rollout
        && let Some(check) = &service.health_check
    {
        crate::rollout::health::plan_step(check, chain);
    }
}

fn image_touches(rollout: &ImageRollout) -> Vec<AwsObject> {
    let obj = |kind: &str, id: String| AwsObject {
        kind: kind.into(),
        id,
    };
    match rollout {
        ImageRollout::EcsRolling(s) => vec![
            obj("task-definition", format!("{}:*", s.service)),
            obj("ecs-service", format!("{}/{}", s.cluster, s.service)),
        ],
        ImageRollout::CodedeployBlueGreen {
            service,
            application,
            deployment_group,
            ..
        } => vec![
            obj("task-definition", format!("{}:*", service.service)),
            obj(
                "codedeploy-deployment",
                format!("{application}/{deployment_group}"),
            ),
        ],
        ImageRollout::EcsBlueGreen(rollout) => vec![
            obj("task-definition", format!("{}:*", rollout.service.service)),
            obj(
                "ecs-service",
                format!("{}/{}", rollout.service.cluster, rollout.service.service),
            ),
        ],
        ImageRollout::TaskDefinitions(jobs) => {
            let families = jobs.families.iter();
            let rules = jobs.schedules.iter();
            let schedules = jobs.scheduler_schedules.iter();
            families
                .map(|f| obj("task-definition", format!("{f}:*")))
                .chain(rules.map(|r| obj("eventbridge-rule", r.clone())))
                .chain(schedules.map(|s| obj("scheduler-schedule", s.clone())))
                .collect()
        }
        ImageRollout::None => vec![],
    }
}
