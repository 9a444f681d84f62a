//! Publishing an image to the environment's ECR repository: the repository is checked (or
//! created), ECR credentials are fetched, the image is pushed over the distribution protocol,
//! and the result is the digest every later step deploys.

use std::path::Path;

use super::archive::DockerArchive;
use super::layout::OciLayout;
use super::{BlobStore, SourceError};
use crate::aws::AwsClients;
pub use crate::aws::ecr_login::{EcrLoginError, ecr_login};
use crate::kinds::ImageSource;
use crate::ledger::{ArtifactRef, AwsObject};
use crate::registry::{
    Credentials, Progress, PushReport, Registry, RegistryError, RegistrySettings,
};

/// Why publishing an image failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The ECR repository does not exist.
    #[error(
        "ECR repository `{repository}` does not exist in account {account} ({region}); create it with the \
         environment's infra stack (infra/environment.yaml, parameter ImageRepositories) or set \
         `create_repository = true` on the artifact"
    )]
    MissingRepository {
        /// Repository name.
        repository: String,
        /// Account.
        account: String,
        /// Region.
        region: String,
    },
    /// The tag exists with other content and tags are not moved.
    #[error(
        "tag `{tag}` of `{repository}` already points at {existing}, not at {pushing}; tags are immutable. \
         Publish under a new version (--version)"
    )]
    TagConflict {
        /// Repository.
        repository: String,
        /// Tag.
        tag: String,
        /// What it points at.
        existing: String,
        /// What this publish would point it at.
        pushing: String,
    },
    /// An ECR API call failed.
    #[error("{operation} failed: {source}")]
    Ecr {
        /// The operation.
        operation: &'static str,
        /// The SDK's error.
        #[source]
        source: crate::aws::SdkFailure,
    },
    /// The source could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// `$DEPLOY_ENDPOINT_URL_REGISTRY` is not a registry address.
    #[error(
        "${} is not a registry address: {problem}",
        crate::aws::ecr_login::REGISTRY_ENV
    )]
    RegistryEnv {
        /// What is wrong with it.
        problem: String,
    },
    /// The login to the environment's ECR registry failed.
    #[error(transparent)]
    EcrLogin(#[from] EcrLoginError),
    /// After a copy the target does not hold the digest that was copied.
    #[error(
        "after copying, {repository}:{tag} resolves to {found} in {registry}, not to the source's {expected}; nothing was recorded"
    )]
    DigestMismatch {
        /// Target registry.
        registry: String,
        /// Target repository.
        repository: String,
        /// Tag.
        tag: String,
        /// The source digest.
        expected: String,
        /// What the target holds.
        found: String,
    },
    /// The source environment's registry no longer has the image.
    #[error(
        "{repository}@{digest} is not in the {environment} registry any more; promote what {environment} runs now"
    )]
    SourceGone {
        /// Source environment.
        environment: String,
        /// Source repository.
        repository: String,
        /// Digest.
        digest: String,
    },
    /// The image a rollback goes back to is gone from the environment's repository.
    #[error(
        "{repository}@{digest} (release {release_id}) is not in this environment's registry any more (an ECR lifecycle rule or a hand deletion removed it); roll back to a later release with `--to`, or release that version again"
    )]
    RestoreGone {
        /// Repository.
        repository: String,
        /// Digest.
        digest: String,
        /// The release a rollback goes back to.
        release_id: String,
    },
    /// A promotion of something that is not an image.
    #[error("the {environment} release {release_id} is not an image")]
    NotAnImage {
        /// Source environment.
        environment: String,
        /// Release.
        release_id: String,
    },
}

impl crate::error::Classify for PublishError {
    fn class(&self) -> crate::error::ErrorClass {
        match self {
            // A repository the configuration names that does not exist is its problem.
            PublishError::RegistryEnv { .. } | PublishError::MissingRepository { .. } => {
                crate::error::ErrorClass::Usage
            }
            _ => crate::error::ErrorClass::Failure,
        }
    }

    fn config_key(&self) -> Option<&'static str> {
        matches!(self, PublishError::MissingRepository { .. }).then_some("repository")
    }
}

/// Where the image's blobs come from.
enum Origin {
    Local(Box<dyn BlobStore>),
    Remote(Box<Registry>, String),
}

/// What a publish produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The registry the image is in (`host[:port]`), as image references name it.
    pub registry: String,
    /// The push, blob by blob.
    pub push: PushReport,
    /// Whether the tag already pointed at this image (nothing was pushed).
    pub unchanged: bool,
    /// For the ledger.
    pub artifact_ref: ArtifactRef,
    /// For the ledger.
    pub touched: Vec<AwsObject>,
}

/// Inputs of one image publish.
#[derive(Debug)]
pub struct PublishRequest<'a> {
    /// ECR repository name.
    pub repository: &'a str,
    /// Where the image is read from.
    pub source: &'a ImageSource,
    /// Directory relative source paths start from (the configuration's directory).
    pub source_root: &'a Path,
    /// Tag to set.
    pub tag: &'a str,
    /// Create the repository if it is missing.
    pub create_repository: bool,
    /// Push tuning.
    pub settings: RegistrySettings,
}

/// Checks a publish can work before anything is locked or changed: the source opens and
/// resolves to an image, and the repository exists (or will be created). Returns the digest
/// the publish will push.
pub async fn preflight(
    clients: &AwsClients,
    request: &PublishRequest<'_>,
) -> Result<crate::oci::Digest, PublishError> {
    let (_, contents) = open_source(request).await?;
    if clients.target.endpoints.registry.is_none() {
        check_registry_env()?;
    }
    if !request.create_repository {
        ensure_repository(clients, request.repository, false).await?;
    }
    Ok(contents.root.digest)
}

async fn open_source(
    request: &PublishRequest<'_>,
) -> Result<(Origin, super::ImageContents), PublishError> {
    let resolve = |path: &Path| {
        request
            .source_root
            .join(path.strip_prefix("./").unwrap_or(path))
    };
    Ok(match request.source {
        ImageSource::Oci { path, tag } => {
            let layout = OciLayout::open(&resolve(path))?;
            let contents = layout.image(tag.as_deref())?;
            (Origin::Local(Box::new(layout)), contents)
        }
        ImageSource::DockerArchive { path } => {
            let mut archive = DockerArchive::open(&resolve(path))?;
            let contents = archive.image(None)?;
            (Origin::Local(Box::new(archive)), contents)
        }
        ImageSource::Registry {
            registry,
            repository,
            reference,
        } => {
            let credentials = Credentials::stored_for(registry);
            let source = Registry::new(registry, credentials, request.settings.clone())?;
            let contents = source.remote_image(repository, reference).await?;
            (
                Origin::Remote(Box::new(source), repository.clone()),
                contents,
            )
        }
    })
}

/// Checks `$DEPLOY_ENDPOINT_URL_REGISTRY`, when set, as `endpoints.registry` is checked.
fn check_registry_env() -> Result<(), PublishError> {
    let Some(value) = crate::aws::ecr_login::registry_from_env() else {
        return Ok(());
    };
    match crate::config::checks::endpoint_problem("registry", &value, true) {
        Some(problem) => Err(PublishError::RegistryEnv {
            problem: problem.message,
        }),
        None => Ok(()),
    }
}

/// Publishes one image.
pub async fn publish(
    clients: &AwsClients,
    request: &PublishRequest<'_>,
    progress: &Progress<'_>,
) -> Result<Published, PublishError> {
    let (origin, contents) = open_source(request).await?;
    ensure_repository(clients, request.repository, request.create_repository).await?;
    let registry = registry(clients, request.settings.clone()).await?;

    deliver(
        &registry,
        request.repository,
        request.tag,
        &origin,
        &contents,
        progress,
    )
    .await
}

/// Puts `contents` into `repository` under `tag` unless the tag already holds it (an
/// immutable tag holding something else is an error), then checks the tag resolves to the
/// image's digest.
async fn deliver(
    registry: &Registry,
    repository: &str,
    tag: &str,
    origin: &Origin,
    contents: &super::ImageContents,
    progress: &Progress<'_>,
) -> Result<Published, PublishError> {
    let digest = &contents.root.digest;
    let existing = registry.manifest_digest(repository, tag).await?;
    if let Some(existing) = &existing
        && existing != digest
    {
        return Err(PublishError::TagConflict {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            existing: existing.to_string(),
            pushing: digest.to_string(),
        });
    }
    let push = if existing.is_some() {
        // The tag holds this very image: every blob is there already.
        PushReport {
            reference: format!("{repository}@{digest}"),
            digest: digest.clone(),
            blobs: contents
                .blobs
                .iter()
                .map(|b| crate::registry::BlobReport {
                    digest: b.digest.clone(),
                    size: b.size,
                    action: crate::registry::BlobAction::Skipped,
                })
                .collect(),
            bytes_sent: 0,
        }
    } else {
        let push = match origin {
            Origin::Local(store) => {
                registry
                    .push_layout(repository, store.as_ref(), contents, tag, progress)
                    .await?
            }
            Origin::Remote(source, from) => {
                registry
                    .copy_image(repository, source, from, contents, tag, progress)
                    .await?
            }
        };
        // Read back what the tag resolves to: the digest later steps deploy must be there.
        let found = registry.manifest_digest(repository, tag).await?;
        if found.as_ref() != Some(digest) {
            return Err(PublishError::DigestMismatch {
                registry: registry.host().to_owned(),
                repository: repository.to_owned(),
                tag: tag.to_owned(),
                expected: digest.to_string(),
                found: found.map_or_else(|| "nothing".to_owned(), |d| d.to_string()),
            });
        }
        push
    };
    Ok(Published {
        registry: registry.host().to_owned(),
        artifact_ref: ArtifactRef::new(&super::ImageRef {
            repository: repository.to_owned(),
            digest: push.digest.to_string(),
        }),
        touched: vec![AwsObject {
            kind: "ecr-image".into(),
            id: format!("{repository}:{tag} ({})", push.digest),
        }],
        unchanged: existing.is_some(),
        push,
    })
}

/// Inputs of one promotion.
#[derive(Debug)]
pub struct PromoteRequest<'a> {
    /// ECR repository in the target environment.
    pub repository: &'a str,
    /// The source environment's release.
    pub from: &'a crate::plan::PromoteSource,
    /// Tag to set in the target.
    pub tag: &'a str,
    /// Create the target repository if it is missing.
    pub create_repository: bool,
    /// Push tuning.
    pub settings: RegistrySettings,
}

/// The source image of a promotion: repository and digest.
fn promoted_image(from: &crate::plan::PromoteSource) -> Result<super::ImageRef, PublishError> {
    from.artifact_ref
        .decode::<super::ImageRef>()
        .ok_or_else(|| PublishError::NotAnImage {
            environment: from.environment.clone(),
            release_id: from.release_id.clone(),
        })
}

/// Checks a promotion can work before anything is locked or changed: the target repository
/// exists and the source registry still has the image.
pub async fn promote_preflight(
    clients: &AwsClients,
    source: &AwsClients,
    request: &PromoteRequest<'_>,
) -> Result<(), PublishError> {
    let super::ImageRef {
        repository: from_repo,
        digest,
    } = promoted_image(request.from)?;
    let (from_repo, digest) = (from_repo.as_str(), digest.as_str());
    if !request.create_repository {
        ensure_repository(clients, request.repository, false).await?;
    }
    let source_registry = registry(source, request.settings.clone()).await?;
    if source_registry
        .manifest_digest(from_repo, digest)
        .await?
        .is_none()
    {
        return Err(PublishError::SourceGone {
            environment: request.from.environment.clone(),
            repository: from_repo.to_owned(),
            digest: digest.to_owned(),
        });
    }
    Ok(())
}

/// The registry (`host[:port]`) of the environment, once it is known to still hold
/// `repository@digest`, the image a rollback to `release_id` goes back to. Reads only.
pub async fn restore_check(
    clients: &AwsClients,
    settings: RegistrySettings,
    (repository, digest): (&str, &str),
    release_id: &str,
) -> Result<String, PublishError> {
    let registry = registry(clients, settings).await?;
    if registry
        .manifest_digest(repository, digest)
        .await?
        .is_none()
    {
        return Err(PublishError::RestoreGone {
            repository: repository.to_owned(),
            digest: digest.to_owned(),
            release_id: release_id.to_owned(),
        });
    }
    Ok(registry.host().to_owned())
}

/// Copies the exact image (manifest bytes and blobs, by digest) a source environment runs into
/// this environment's repository: mounted when both repositories are in one registry, streamed
/// blob by blob (never to disk) otherwise. The digest in the target is read back and checked.
pub async fn promote(
    clients: &AwsClients,
    source: &AwsClients,
    request: &PromoteRequest<'_>,
    progress: &Progress<'_>,
) -> Result<Published, PublishError> {
    let super::ImageRef {
        repository: from_repo,
        digest,
    } = promoted_image(request.from)?;
    let (from_repo, digest) = (from_repo.as_str(), digest.as_str());
    ensure_repository(clients, request.repository, request.create_repository).await?;
    let source_registry = registry(source, request.settings.clone()).await?;
    let target_registry = registry(clients, request.settings.clone()).await?;
    // Fetched by digest: the manifest bytes are checked against it.
    let contents = source_registry.remote_image(from_repo, digest).await?;
    deliver(
        &target_registry,
        request.repository,
        request.tag,
        &Origin::Remote(Box::new(source_registry), from_repo.to_owned()),
        &contents,
        progress,
    )
    .await
}

async fn ensure_repository(
    clients: &AwsClients,
    repository: &str,
    create: bool,
) -> Result<(), PublishError> {
    let found = clients
        .ecr()
        .describe_repositories()
        .repository_names(repository)
        .send()
        .await;
    match found {
        Ok(_) => Ok(()),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_repository_not_found_exception()) =>
        {
            if !create {
                return Err(PublishError::MissingRepository {
                    repository: repository.to_owned(),
                    account: clients.target.account.to_string(),
                    region: clients.target.region.clone(),
                });
            }
            clients
                .ecr()
                .create_repository()
                .repository_name(repository)
                .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Immutable)
                .image_scanning_configuration(
                    aws_sdk_ecr::types::ImageScanningConfiguration::builder()
                        .scan_on_push(true)
                        .build(),
                )
                .send()
                .await
                .map(drop)
                .map_err(|err| PublishError::Ecr {
                    operation: "ecr:CreateRepository",
                    source: crate::aws::SdkFailure::new(err),
                })
        }
        Err(err) => Err(PublishError::Ecr {
            operation: "ecr:DescribeRepositories",
            source: crate::aws::SdkFailure::new(err),
        }),
    }
}

/// A registry client for the environment's ECR registry, logged in with
/// `GetAuthorizationToken`; `endpoints.registry` replaces the address ECR reports.
async fn registry(
    clients: &AwsClients,
    settings: RegistrySettings,
) -> Result<Registry, PublishError> {
    let login = ecr_login(clients).await?;
    Ok(Registry::new(&login.endpoint, login.credentials, settings)?)
}
