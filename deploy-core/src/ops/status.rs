//! `status`: what the ledger says is live and published, and for ECS services what actually
//! runs, with drift when the two disagree. Bounded cost: the pointers of each artifact, and one
//! `DescribeServices` plus one `DescribeTaskDefinition` per ECS service.

use serde::Serialize;

use super::{OpsError, clients};
use crate::aws::AwsClients;
use crate::config::{Config, Environment};
use crate::kinds::ArtifactDetail;
use crate::kinds::image::rollout::ImageRollout;
use crate::ledger::{ArtifactRef, ArtifactStatus, Ledger};

/// One artifact in one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusRow {
    /// What the ledger says.
    #[serde(flatten)]
    pub ledger: ArtifactStatus,
    /// What the ECS service runs, for artifacts rolled out to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<Running>,
}

/// What an ECS service runs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Running {
    /// `cluster/service`.
    pub service: String,
    /// The task definition it runs (ARN), or why it could not be read.
    pub task_definition: Option<String>,
    /// The image of the configured container.
    pub image: Option<String>,
    /// The running image is not the digest the ledger says is live.
    pub drift: bool,
    /// Why the service could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The status of every artifact of `environments` (all when empty), in file order.
pub async fn status(config: &Config, environments: &[String]) -> Result<Vec<StatusRow>, OpsError> {
    let envs: Vec<&Environment> = if environments.is_empty() {
        config.environments_in_order()
    } else {
        environments
            .iter()
            .map(|name| config.environment(name))
            .collect::<Result<_, _>>()?
    };
    let mut rows = Vec::new();
    for env in envs {
        let clients = clients(config, env).await;
        let specs = env.select(&[])?;
        let names: Vec<String> = specs.iter().map(|a| a.name.clone()).collect();
        let ledger = Ledger::new(clients.s3.clone(), &env.target)
            .status(&names)
            .await?;
        for (spec, status) in specs.iter().zip(ledger) {
            let running = match &spec.detail {
                ArtifactDetail::Image(image) => match &image.rollout {
                    ImageRollout::EcsRolling(service) => {
                        Some(running(&clients, service, &status).await)
                    }
                    _ => None,
                },
                _ => None,
            };
            rows.push(StatusRow {
                ledger: status,
                running,
            });
        }
    }
    Ok(rows)
}

async fn running(
    clients: &AwsClients,
    service: &crate::kinds::image::rollout::EcsService,
    status: &ArtifactStatus,
) -> Running {
    let name = format!("{}/{}", service.cluster, service.service);
    let read = crate::kinds::image::rollout::ecs::running_image(clients, service).await;
    let (task_definition, image, problem) = match read {
        Ok((arn, image)) => (Some(arn), image, None),
        Err(problem) => (None, None, Some(problem)),
    };
    let live_digest = match status.live.as_ref().and_then(|p| p.artifact_ref.as_ref()) {
        Some(ArtifactRef::Image { digest, .. }) => Some(digest.as_str()),
        _ => None,
    };
    let drift = match (&image, live_digest) {
        (Some(image), Some(digest)) => !image.ends_with(&format!("@{digest}")),
        _ => false,
    };
    Running {
        service: name,
        task_definition,
        image,
        drift,
        problem,
    }
}
