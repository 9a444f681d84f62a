//! The steps of an image: on a promotion, the source's scan gate then the copy by digest;
//! otherwise the push and, with `scan_on_publish`, the gate on what was pushed; then the
//! rollout strategy's steps. A rollback reads the image of the release it restores instead
//! (nothing is pushed), runs no up migration, and ends with the replaced release's down migration.

use super::ImageRef;
use super::actions::{PromoteImage, PublishImage, RestoreImage, ScanImage};
use crate::kinds::{ImageSpec, ScanGate};
use crate::ledger::{AwsObject, Operation};
use crate::plan::{Action, Chain, PlanRequest, PromoteSource};

/// Adds the steps of `image` to `chain`.
pub fn steps(image: &ImageSpec, request: &PlanRequest<'_>, chain: &mut Chain<'_>) {
    let name = chain.artifact().to_owned();
    let promoted = request.promote.iter().find(|p| p.artifact == name);
    if let Some(from) = promoted
        && request.operation == Operation::Rollback
    {
        restore_step(image, from, chain);
    } else if let Some(from) = promoted {
        promote_steps(image, from, chain);
    } else if request.operation.publishes()
        && let Some(source) = &image.source
    {
        let tag = request.version.clone().unwrap_or_default();
        let repository = image.repository.clone();
        chain.then(
            format!("push {name} to ECR {repository}:{tag}"),
            Action::new(&PublishImage {
                repository: repository.clone(),
                source: source.clone(),
                tag: tag.clone(),
                create_repository: image.create_repository,
            }),
            vec![ecr_image(&repository, &tag)],
        );
        if image.scan_on_publish && image.scan != ScanGate::None {
            chain.then(
                format!("check the scan of {name} ({})", image.scan.as_str()),
                Action::new(&ScanImage {
                    environment: request.environment.target.environment.clone(),
                    repository,
                    digest: None,
                    gate: image.scan,
                }),
                vec![],
            );
        }
    }
    if request.operation.changes_live() {
        let rollout = match request.operation {
            Operation::Rollback => image.rollout.for_rollback(request.gradual),
            _ => image.rollout.clone(),
        };
        let migrate = request.operation != Operation::Rollback;
        crate::kinds::image::rollout::plan::image_steps(
            &image.repository,
            &rollout,
            migrate,
            chain,
        );
    }
    if request.operation == Operation::Rollback {
        down_step(image, request, chain);
    }
}

/// After a rollback's rollout: the down migration of the release being replaced, with its
/// image, when the migration has a `rollback_command` (a live rollback ran no migration).
fn down_step(image: &ImageSpec, request: &PlanRequest<'_>, chain: &mut Chain<'_>) {
    use crate::kinds::image::rollout::{ImageRollout, down, migration};
    let status = request
        .status
        .iter()
        .find(|s| s.artifact == chain.artifact());
    let Some(live) = status.and_then(|s| s.live.as_ref()) else {
        return;
    };
    let reference = live
        .artifact_ref
        .as_ref()
        .and_then(|r| r.decode::<ImageRef>());
    let Some(ImageRef { digest, .. }) = reference.filter(|_| live.operation != Operation::Rollback)
    else {
        return;
    };
    let run = match (&image.rollout, image.rollout.service()) {
        (_, Some(service)) => service
            .pre_deploy
            .as_ref()
            .map(|pre| migration::of_service(service, pre)),
        (ImageRollout::TaskDefinitions(jobs), None) => migration::of_jobs(jobs),
        _ => None,
    };
    if let Some(run) = run {
        down::plan_step(run, (&image.repository, &digest), &live.release_id, chain);
    }
}

/// Rolls back to `from`: its digest, already in the repository, and (for services) the task
/// definition revision it ran.
fn restore_step(image: &ImageSpec, from: &PromoteSource, chain: &mut Chain<'_>) {
    let Some(ImageRef { digest, .. }) = from.artifact_ref.decode::<ImageRef>() else {
        return;
    };
    let revision = from
        .touched
        .iter()
        .find(|o| o.kind == "ecs-task-definition")
        .map(|o| o.id.clone());
    let name = chain.artifact().to_owned();
    let what = match &revision {
        Some(revision) => format!("{digest}, task definition {revision}"),
        None => digest.clone(),
    };
    chain.then(
        format!("go back to release {} of {name} ({what})", from.release_id),
        Action::new(&RestoreImage {
            repository: image.repository.clone(),
            from: from.clone(),
            revision,
        }),
        vec![],
    );
}

fn promote_steps(image: &ImageSpec, from: &PromoteSource, chain: &mut Chain<'_>) {
    let Some(ImageRef {
        repository: from_repo,
        digest,
    }) = from.artifact_ref.decode::<ImageRef>()
    else {
        return;
    };
    let name = chain.artifact().to_owned();
    if image.scan != ScanGate::None {
        chain.then(
            format!(
                "check the scan of {name} in {} ({})",
                from.environment,
                image.scan.as_str()
            ),
            Action::new(&ScanImage {
                environment: from.environment.clone(),
                repository: from_repo.clone(),
                digest: Some(digest.clone()),
                gate: image.scan,
            }),
            vec![],
        );
    }
    let tag = from
        .version
        .clone()
        .unwrap_or_else(|| from.release_id.clone());
    let repository = image.repository.clone();
    chain.then(
        format!(
            "copy {name} {digest} from {} to ECR {repository}:{tag}",
            from.environment
        ),
        Action::new(&PromoteImage {
            repository: repository.clone(),
            from: from.clone(),
            tag: tag.clone(),
            create_repository: image.create_repository,
        }),
        vec![ecr_image(&repository, &tag)],
    );
}

fn ecr_image(repository: &str, tag: &str) -> AwsObject {
    AwsObject {
        kind: "ecr-image".into(),
        id: format!("{repository}:{tag}"),
    }
}
