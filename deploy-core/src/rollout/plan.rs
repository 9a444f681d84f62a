//! The rollout steps each strategy adds after an artifact is published.

use serde::{Deserialize, Serialize};

use super::{ImageRollout, LambdaRollout};
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
}

/// Move a Lambda alias to the new version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftLambdaAlias {
    /// Function name.
    pub function: String,
    /// Alias.
    pub alias: String,
    /// How.
    pub rollout: LambdaRollout,
}

impl ActionInput for ShiftLambdaAlias {
    const TYPE: &'static str = "shift-lambda-alias";
}

/// Adds the rollout of the image in `repository` (nothing for `none`).
pub fn image_steps(repository: &str, rollout: &ImageRollout, chain: &mut Chain<'_>) {
    if *rollout == ImageRollout::None {
        return;
    }
    match rollout {
        ImageRollout::EcsRolling(service)
        | ImageRollout::CodedeployBlueGreen { service, .. }
        | ImageRollout::EcsBlueGreen(super::EcsBlueGreen { service, .. }) => {
            if let Some(pre) = &service.pre_deploy {
                super::gates::migration::plan_step(service, pre, chain);
            }
        }
        ImageRollout::TaskDefinitions(jobs) => super::gates::migration::plan_jobs_step(jobs, chain),
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
        super::gates::health::plan_step(check, chain);
    }
}

/// Adds the shift of `function`'s `alias`.
pub fn lambda_steps(function: &str, alias: &str, rollout: &LambdaRollout, chain: &mut Chain<'_>) {
    chain.then(
        format!("move alias {alias} of {function} ({})", rollout.strategy),
        Action::new(&ShiftLambdaAlias {
            function: function.to_owned(),
            alias: alias.to_owned(),
            rollout: rollout.clone(),
        }),
        vec![AwsObject {
            kind: "lambda-alias".into(),
            id: format!("{function}:{alias}"),
        }],
    );
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
