//! The steps of an image: on a promotion, the source's scan gate then the copy by digest;
//! otherwise the push and, with `scan_on_publish`, the gate on what was pushed; then the
//! rollout strategy's steps.

use super::ImageRef;
use super::actions::{PromoteImage, PublishImage, ScanImage};
use crate::kinds::{ImageSpec, ScanGate};
use crate::ledger::AwsObject;
use crate::plan::{Action, Chain, PlanRequest, PromoteSource};

/// Adds the steps of `image` to `chain`.
pub fn steps(image: &ImageSpec, request: &PlanRequest<'_>, chain: &mut Chain<'_>) {
    let name = chain.artifact().to_owned();
    let promoted = request.promote.iter().find(|p| p.artifact == name);
    if let Some(from) = promoted {
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
        crate::kinds::image::rollout::plan::image_steps(&image.repository, &image.rollout, chain);
    }
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
