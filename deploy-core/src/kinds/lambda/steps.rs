//! The Lambda publish on the engine's seam (`publish-lambda`): zip, upload when the code
//! changed, merge the environment, publish a version. A published version runs nothing until
//! the alias moves (the rollout's step, with its own undo); the change to `$LATEST` is undone
//! by [`super::latest`], or declared irreversible when the previous code is not kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::output::LambdaOutput;
use super::package::{self, PackageError, Packaging};
use super::plan::PublishLambda;
use super::publish::{self, PublishRequest};
use super::settings::LambdaSettings;
use crate::engine::{
    BoxFuture, CheckContext, Done, EngineError, Preflight, StepContext, StepError, StepHandler,
    StepOutput,
};
use crate::events::Event;
use crate::ledger::{ArtifactRef, AwsObject};
use crate::plan::{PromoteSource, Step};

/// A publish, as the report's `lambdas` section lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LambdaReport {
    /// Artifact.
    pub artifact: String,
    /// Function.
    pub function: String,
    /// The version published or reused.
    pub version: String,
    /// `CodeSha256` of the zip.
    pub code_sha256: String,
    /// Zip size in bytes.
    pub size: u64,
    /// Whether the code was uploaded.
    pub uploaded: bool,
    /// The artifact bucket's key, when the zip went through S3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_key: Option<String>,
    /// Whether the environment changed.
    pub env_changed: bool,
    /// Whether a new version was published.
    pub new_version: bool,
}

const SECTIONS: &[&str] = &["lambdas"];

pub(super) struct PublishStep(pub(super) Arc<LambdaSettings>);

/// Where `input`'s source is.
pub(super) fn source(input: &PublishLambda, cx: &StepContext<'_>) -> PathBuf {
    crate::config::paths::absolute(cx.source_root(), Path::new(&input.source))
}

pub(super) fn packaging<'a>(input: &'a PublishLambda, source: &'a Path) -> Packaging<'a> {
    Packaging {
        source,
        exclude: &input.exclude,
        handler: input.handler.as_deref(),
    }
}

/// Runs `work` on `input`'s source on a blocking thread: a source that blocks (a file that
/// never ends) holds that thread, not the runtime, and a stop can abandon it.
pub(super) async fn off_runtime<T: Send + 'static>(
    input: &PublishLambda,
    cx: &StepContext<'_>,
    work: fn(&Packaging<'_>) -> Result<T, PackageError>,
) -> Result<T, StepError> {
    let (input, source) = (input.clone(), source(input, cx));
    let done = tokio::task::spawn_blocking(move || work(&packaging(&input, &source)))
        .await
        .map_err(StepError::failure)?;
    Ok(done?)
}

/// Checks before the lock: the source zips, the function exists.
pub(super) async fn preflight(
    input: &PublishLambda,
    cx: &StepContext<'_>,
) -> Result<(), StepError> {
    off_runtime(input, cx, package::inspect).await?;
    publish::configuration(cx.clients().lambda(), &input.function).await?;
    Ok(())
}

impl StepHandler for PublishStep {
    fn check(&self, step: &Step, cx: &CheckContext<'_>) -> Result<(), EngineError> {
        cx.input::<PublishLambda>(step).map(drop)
    }

    fn preflight<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Preflight, StepError>> {
        Box::pin(async move {
            let input: PublishLambda = step.action.input()?;
            preflight(&input, cx).await?;
            let artifact = step.artifact_name();
            let empty = BTreeMap::new();
            let env = self.0.env.get(artifact).unwrap_or(&empty);
            super::unchanged::publish(cx, artifact, &input, env).await
        })
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: PublishLambda = step.action.input()?;
            let zip = off_runtime(&input, cx, package::package).await?;
            let published = self
                .0
                .publish(cx, step.artifact_name(), &input, &zip)
                .await?;
            done(cx, &input, published, None).await
        })
    }

    fn undo<'a>(
        &'a self,
        step: &'a Step,
        data: &'a serde_json::Value,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(super::latest::put_back(cx, &self.0.publish, step, data))
    }

    fn report_sections(&self) -> &'static [&'static str] {
        SECTIONS
    }
}

impl LambdaSettings {
    /// Publishes `zip` as `input` says; reports it and leaves the version for the shift.
    pub(super) async fn publish(
        &self,
        cx: &StepContext<'_>,
        artifact: &str,
        input: &PublishLambda,
        zip: &package::Package,
    ) -> Result<publish::Published, StepError> {
        let empty = BTreeMap::new();
        let request = PublishRequest {
            artifact,
            function: &input.function,
            artifact_bucket: input.artifact_bucket.as_deref(),
            env: self.env.get(artifact).unwrap_or(&empty),
            package: zip,
        };
        let work = publish::publish(
            cx.clients(),
            &request,
            &self.publish,
            cx.reporter().as_ref(),
        );
        let published = tokio::select! {
            result = work => result?,
            () = cx.cancelled() => return Err(StepError::failure(publish::LambdaError::Stopped)),
        };
        let sent = if published.uploaded {
            "uploaded"
        } else {
            "unchanged, nothing sent"
        };
        cx.reporter().report(&Event::Note {
            message: format!(
                "{artifact}: {} version {} (code {}, {} bytes, {sent})",
                input.function,
                published.version,
                published.code_sha256,
                zip.bytes.len(),
            ),
        });
        cx.report_item(
            "lambdas",
            &LambdaReport {
                artifact: artifact.to_owned(),
                function: input.function.clone(),
                version: published.version.clone(),
                code_sha256: published.code_sha256.clone(),
                size: zip.bytes.len() as u64,
                uploaded: published.uploaded,
                s3_key: published.s3_key.clone(),
                env_changed: published.env_changed,
                new_version: published.new_version,
            },
        );
        cx.put(
            artifact,
            LambdaOutput {
                function: input.function.clone(),
                version: published.version.clone(),
                code_sha256: published.code_sha256.clone(),
            },
        );
        Ok(published)
    }
}

/// The record of `published`, and how its change to `$LATEST` is undone.
pub(super) async fn done(
    cx: &StepContext<'_>,
    input: &PublishLambda,
    published: publish::Published,
    from: Option<&PromoteSource>,
) -> Result<Done, StepError> {
    let undo = super::latest::undo_of(cx, input, &published).await?;
    let mut touched = vec![AwsObject {
        kind: "lambda-version".into(),
        id: format!("{}:{}", input.function, published.version),
    }];
    let zip = zip_location(input, &published);
    if let Some(location) = &zip {
        touched.push(AwsObject {
            kind: "s3-object".into(),
            id: location.clone(),
        });
    }
    Ok(Done {
        record: StepOutput {
            artifact_ref: Some(ArtifactRef::new(&super::LambdaRef {
                code_sha256: published.code_sha256,
                function_version: Some(published.version),
                zip,
            })),
            touched,
            version: from.and_then(|f| f.version.clone()),
            source_environment: from.map(|f| f.environment.clone()),
            restored: None,
        },
        undo,
    })
}

/// `s3://bucket/key` of the zip kept in the artifact bucket.
fn zip_location(input: &PublishLambda, published: &publish::Published) -> Option<String> {
    let (bucket, key) = (input.artifact_bucket.as_ref()?, published.s3_key.as_ref()?);
    Some(format!("s3://{bucket}/{key}"))
}
