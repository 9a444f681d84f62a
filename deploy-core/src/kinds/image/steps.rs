//! The image steps on the engine's seam: push (`publish-image`), copy by digest from another
//! environment (`promote-image`) and the scan gate (`scan-image`).
//!
//! None of them has an undo: a pushed or copied image stays in ECR under its digest, and
//! nothing runs it or points at it until a later rollout step or the release record does.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use super::ImageRef;
use super::actions::{PromoteImage, PublishImage, RestoreImage, ScanImage};
use super::publish::{self, PromoteRequest, PublishRequest, Published};
use super::scan::{self, ScanError, ScanWait};
use crate::engine::{
    BoxFuture, CheckContext, Done, Engine, EngineError, Preflight, StepContext, StepError,
    StepHandler, StepOutput,
};
use crate::events::Event;
use crate::ledger::{Ledger, PointerKind};
use crate::plan::{ActionInput, Step};
use crate::registry::{BlobAction, Progress, PushReport, RegistrySettings};

/// An image a run pushed or copied, blob by blob: an item of the report's `images` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageReport {
    /// Artifact.
    pub artifact: String,
    /// Whether the tag already held the image (nothing sent).
    pub unchanged: bool,
    /// Total size of the image's blobs.
    pub size: u64,
    /// The push: reference, digest, each blob's action, bytes sent.
    #[serde(flatten)]
    pub push: PushReport,
}

/// The image this run published or copied for an artifact: what later steps of the artifact
/// (the scan gate, the rollout) read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOutput {
    /// The registry (`host[:port]`).
    pub registry: String,
    /// ECR repository.
    pub repository: String,
    /// Manifest digest.
    pub digest: String,
}

impl ImageOutput {
    /// The image by digest, as a task definition names it: `host/repository@sha256:...`.
    pub fn reference(&self) -> String {
        format!("{}/{}@{}", self.registry, self.repository, self.digest)
    }
}

/// Settings the image steps share.
#[derive(Debug, Clone, Default)]
pub struct ImageSettings {
    /// Registry push tuning.
    pub registry: RegistrySettings,
    /// How long scan gates wait for a scan, and how often they look.
    pub scan_wait: ScanWait,
}

/// Registers the image steps with `engine`.
pub fn register(engine: &mut Engine, settings: ImageSettings) {
    let settings = Arc::new(settings);
    engine.register(PublishImage::TYPE, Arc::new(PublishStep(settings.clone())));
    engine.register(
        PromoteImage::TYPE,
        Arc::new(PromoteStep {
            settings: settings.clone(),
            verified: Mutex::default(),
        }),
    );
    engine.register(RestoreImage::TYPE, Arc::new(RestoreStep(settings.clone())));
    engine.register(ScanImage::TYPE, Arc::new(ScanStep(settings)));
}

/// The task definition revision a rollback goes back to, for the service strategies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestoredRevision(pub String);

struct RestoreStep(Arc<ImageSettings>);

impl RestoreStep {
    async fn check(
        &self,
        input: &RestoreImage,
        cx: &StepContext<'_>,
    ) -> Result<ImageOutput, StepError> {
        let reference = input.from.artifact_ref.decode::<ImageRef>();
        let Some(ImageRef { digest, .. }) = reference else {
            return Err(StepError::failure(publish::PublishError::NotAnImage {
                environment: input.from.environment.clone(),
                release_id: input.from.release_id.clone(),
            }));
        };
        let place = (input.repository.as_str(), digest.as_str());
        let settings = self.0.registry.clone();
        let registry =
            publish::restore_check(cx.clients(), settings, place, &input.from.release_id).await?;
        Ok(ImageOutput {
            registry,
            repository: input.repository.clone(),
            digest,
        })
    }
}

impl StepHandler for RestoreStep {
    fn check(&self, step: &Step, cx: &CheckContext<'_>) -> Result<(), EngineError> {
        cx.input::<RestoreImage>(step).map(drop)
    }

    fn preflight<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Preflight, StepError>> {
        Box::pin(async move {
            let input: RestoreImage = step.action.input()?;
            self.check(&input, cx).await.map(|_| Preflight::Changes)
        })
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: RestoreImage = step.action.input()?;
            let artifact = step.artifact_name();
            let image = self.check(&input, cx).await?;
            cx.reporter().report(&Event::Note {
                message: format!(
                    "{artifact}: going back to release {} ({})",
                    input.from.release_id,
                    image.reference()
                ),
            });
            cx.put(artifact, image);
            if let Some(revision) = &input.revision {
                cx.put(artifact, RestoredRevision(revision.clone()));
            }
            Ok(Done {
                record: StepOutput::restored(&input.from),
                ..Done::default()
            })
        })
    }
}

const SECTIONS: &[&str] = &["images", "scans"];

struct PublishStep(Arc<ImageSettings>);

impl PublishStep {
    fn request<'a>(&self, input: &'a PublishImage, cx: &'a StepContext<'_>) -> PublishRequest<'a> {
        PublishRequest {
            repository: &input.repository,
            source: &input.source,
            source_root: cx.source_root(),
            tag: &input.tag,
            create_repository: input.create_repository,
            settings: self.0.registry.clone(),
        }
    }
}

impl StepHandler for PublishStep {
    fn check(&self, step: &Step, cx: &CheckContext<'_>) -> Result<(), EngineError> {
        cx.input::<PublishImage>(step).map(drop)
    }

    fn preflight<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Preflight, StepError>> {
        Box::pin(async move {
            let input: PublishImage = step.action.input()?;
            let digest = publish::preflight(cx.clients(), &self.request(&input, cx)).await?;
            let place = (input.repository.as_str(), digest.as_str());
            let settings = self.0.registry.clone();
            super::unchanged::publish(cx, step.artifact_name(), place, settings).await
        })
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: PublishImage = step.action.input()?;
            let artifact = step.artifact_name().to_owned();
            let progress = progress(cx, &artifact);
            let started = Instant::now();
            let published = cancellable(
                cx,
                publish::publish(cx.clients(), &self.request(&input, cx), &progress),
            )
            .await??;
            Ok(published_done(cx, &artifact, published, started, None))
        })
    }

    fn report_sections(&self) -> &'static [&'static str] {
        SECTIONS
    }
}

struct PromoteStep {
    settings: Arc<ImageSettings>,
    /// Source environments whose account was verified.
    verified: Mutex<HashSet<String>>,
}

impl PromoteStep {
    fn request<'a>(&self, input: &'a PromoteImage) -> PromoteRequest<'a> {
        PromoteRequest {
            repository: &input.repository,
            from: &input.from,
            tag: &input.tag,
            create_repository: input.create_repository,
            settings: self.settings.registry.clone(),
        }
    }

    /// The source environment (its account verified once) still runs the release copied.
    async fn check_source(
        &self,
        input: &PromoteImage,
        cx: &StepContext<'_>,
    ) -> Result<(), StepError> {
        let from = &input.from;
        let source = cx.clients_of(&from.environment)?;
        let first = self
            .verified
            .lock()
            .map(|mut v| v.insert(from.environment.clone()))
            .unwrap_or(true);
        if first {
            source.verify_account().await?;
        }
        let live = Ledger::new(source.s3.clone(), &source.target)
            .pointer(&from.artifact, PointerKind::Live)
            .await?
            .map(|p| p.value.release_id);
        if live.as_deref() != Some(from.release_id.as_str()) {
            return Err(StepError::failure(SourceMoved {
                environment: from.environment.clone(),
                artifact: from.artifact.clone(),
                planned: from.release_id.clone(),
                now: live.unwrap_or_else(|| "nothing".into()),
            }));
        }
        Ok(())
    }
}

/// The source environment no longer runs what the plan promotes.
#[derive(Debug, thiserror::Error)]
#[error(
    "{environment} no longer runs release {planned} of `{artifact}` (it runs {now}); make a new plan"
)]
pub struct SourceMoved {
    /// Source environment.
    pub environment: String,
    /// Artifact.
    pub artifact: String,
    /// The release the plan promotes.
    pub planned: String,
    /// What is live there now.
    pub now: String,
}

impl StepHandler for PromoteStep {
    fn check(&self, step: &Step, cx: &CheckContext<'_>) -> Result<(), EngineError> {
        let input = cx.input::<PromoteImage>(step)?;
        cx.need_clients(step, &input.from.environment)
    }

    fn preflight<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Preflight, StepError>> {
        Box::pin(async move {
            let input: PromoteImage = step.action.input()?;
            self.check_source(&input, cx).await?;
            let source = cx.clients_of(&input.from.environment)?;
            publish::promote_preflight(cx.clients(), source, &self.request(&input)).await?;
            Ok(Preflight::Changes)
        })
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: PromoteImage = step.action.input()?;
            let artifact = step.artifact_name().to_owned();
            let source = cx.clients_of(&input.from.environment)?;
            let progress = progress(cx, &artifact);
            let started = Instant::now();
            let published = cancellable(
                cx,
                publish::promote(cx.clients(), source, &self.request(&input), &progress),
            )
            .await??;
            Ok(published_done(
                cx,
                &artifact,
                published,
                started,
                Some(&input),
            ))
        })
    }

    fn report_sections(&self) -> &'static [&'static str] {
        SECTIONS
    }
}

struct ScanStep(Arc<ImageSettings>);

/// The image to scan is not known: nothing was published for the artifact.
#[derive(Debug, thiserror::Error)]
#[error("there is no published image of `{artifact}` in this run to scan")]
pub struct NothingToScan {
    /// The artifact.
    pub artifact: String,
}

impl StepHandler for ScanStep {
    fn check(&self, step: &Step, cx: &CheckContext<'_>) -> Result<(), EngineError> {
        let input = cx.input::<ScanImage>(step)?;
        cx.need_clients(step, &input.environment)
    }

    fn is_gate(&self) -> bool {
        true
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: ScanImage = step.action.input()?;
            let artifact = step.artifact_name().to_owned();
            let digest = match input.digest {
                Some(digest) => digest,
                None => match cx.get::<ImageOutput>(&artifact) {
                    Some(image) => image.digest.clone(),
                    None => return Err(StepError::failure(NothingToScan { artifact })),
                },
            };
            let clients = cx.clients_of(&input.environment)?;
            let result = cancellable(
                cx,
                scan::check(
                    clients.ecr(),
                    &input.repository,
                    &digest,
                    input.gate,
                    self.0.scan_wait,
                    cx.reporter().as_ref(),
                ),
            )
            .await?;
            let summary = match &result {
                Ok(summary) => Some(summary),
                Err(ScanError::Blocked { summary, .. }) => Some(summary.as_ref()),
                Err(_) => None,
            };
            if let Some(summary) = summary {
                cx.report_item("scans", summary);
            }
            result?;
            Ok(Done::nothing())
        })
    }

    fn report_sections(&self) -> &'static [&'static str] {
        SECTIONS
    }
}

/// The step was stopped because the run is being cancelled.
#[derive(Debug, thiserror::Error)]
#[error("{}", crate::wait::CANCELLED)]
pub struct Stopped;

/// Runs `work` until it ends or the run is cancelled. Image steps change nothing that runs,
/// so dropping them midway leaves only unreferenced blobs behind.
async fn cancellable<T>(
    cx: &StepContext<'_>,
    work: impl std::future::Future<Output = T>,
) -> Result<T, StepError> {
    tokio::select! {
        result = work => Ok(result),
        () = cx.cancelled() => Err(StepError::failure(Stopped)),
    }
}

/// Where the byte progress of `artifact`'s push goes.
fn progress<'a>(cx: &StepContext<'_>, artifact: &'a str) -> Progress<'a> {
    Progress {
        artifact,
        reporter: cx.reporter().clone(),
    }
}

/// Reports a push, leaves the image for later steps and the facts for the record.
fn published_done(
    cx: &StepContext<'_>,
    artifact: &str,
    published: Published,
    started: Instant,
    from: Option<&PromoteImage>,
) -> Done {
    cx.reporter().report(&Event::Note {
        message: push_note(artifact, &published, started),
    });
    if let Some(ImageRef { repository, digest }) = published.artifact_ref.decode::<ImageRef>() {
        cx.put(
            artifact,
            ImageOutput {
                registry: published.registry.clone(),
                repository,
                digest,
            },
        );
    }
    cx.report_item(
        "images",
        &ImageReport {
            artifact: artifact.to_owned(),
            unchanged: published.unchanged,
            size: published.push.blobs.iter().map(|b| b.size).sum(),
            push: published.push,
        },
    );
    Done {
        record: StepOutput {
            artifact_ref: Some(published.artifact_ref),
            touched: published.touched,
            version: from.and_then(|f| f.from.version.clone()),
            source_environment: from.map(|f| f.from.environment.clone()),
            restored: None,
        },
        ..Done::default()
    }
}

fn push_note(artifact: &str, published: &Published, started: Instant) -> String {
    if published.unchanged {
        return format!(
            "{artifact}: {} (already published, nothing sent)",
            published.push.reference
        );
    }
    let count = |action| {
        published
            .push
            .blobs
            .iter()
            .filter(|b| b.action == action)
            .count()
    };
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    format!(
        "{artifact}: {} ({} bytes sent in {seconds:.1}s, {:.1} MiB/s; {} blobs sent, {} skipped, {} mounted)",
        published.push.reference,
        published.push.bytes_sent,
        published.push.bytes_sent as f64 / seconds / (1024.0 * 1024.0),
        count(BlobAction::Sent),
        count(BlobAction::Skipped),
        count(BlobAction::Mounted),
    )
}
