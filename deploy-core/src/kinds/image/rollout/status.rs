//! What an ECS service of a rolling rollout runs now, for `status`, and whether it drifted from
//! what the ledger says is live.

use super::EcsService;
use crate::aws::AwsClients;
use crate::kinds::Running;
use crate::ledger::ArtifactStatus;

/// What `service` runs, compared with the live release in `status`.
pub(crate) async fn running(
    clients: &AwsClients,
    service: &EcsService,
    status: &ArtifactStatus,
) -> Running {
    let name = format!("{}/{}", service.cluster, service.service);
    let read = super::ecs::running_image(clients, service).await;
    let (task_definition, image, problem) = match read {
        Ok((arn, image)) => (Some(arn), image, None),
        Err(problem) => (None, None, Some(problem)),
    };
    let live_digest = status
        .live
        .as_ref()
        .and_then(|p| p.artifact_ref.as_ref())
        .and_then(|r| r.decode::<crate::kinds::image::ImageRef>())
        .map(|r| r.digest);
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
