//! `promote-lambda`: the target environment publishes exactly the code the source runs. The
//! zip is rebuilt from the source (packaging is deterministic) and used when it has the source
//! release's `CodeSha256`; otherwise the zip the source release kept in its artifact bucket is
//! copied, and its hash checked. The version published must report the same `CodeSha256`.

use std::path::Path;
use std::sync::Arc;

use super::package::{self, Package, Packaging};
use super::plan::PromoteLambda;
use super::publish::{self, LambdaError};
use super::settings::LambdaSettings;
use super::steps;
use crate::engine::{
    BoxFuture, CheckContext, Done, EngineError, Preflight, StepContext, StepError, StepHandler,
};
use crate::error::{Classify, ErrorClass};
use crate::plan::{PromoteSource, Step};

/// The code promoted is not the code the source environment runs.
#[derive(Debug, thiserror::Error)]
pub enum PromoteMismatch {
    /// The local source zips to other bytes, and the source release kept no zip.
    #[error(
        "the source of `{artifact}` zips to code {local}, but {environment} runs {expected} \
         (release {release}) and kept no zip in an artifact bucket; check out the commit of that \
         release and promote again"
    )]
    Source {
        /// Artifact.
        artifact: String,
        /// Source environment.
        environment: String,
        /// Its release.
        release: String,
        /// Its `CodeSha256`.
        expected: String,
        /// The local zip's.
        local: String,
    },
    /// The zip kept in the source's artifact bucket has other bytes.
    #[error("{location} holds code {actual}, not the {expected} the source release recorded")]
    Stored {
        /// `s3://bucket/key`.
        location: String,
        /// Its hash.
        actual: String,
        /// The release's.
        expected: String,
    },
    /// The version published here reports other code.
    #[error("version {version} of {function} reports code {actual}, not {expected}")]
    Published {
        /// Function.
        function: String,
        /// The version.
        version: String,
        /// What it reports.
        actual: String,
        /// The source's.
        expected: String,
    },
}

impl Classify for PromoteMismatch {
    fn class(&self) -> ErrorClass {
        ErrorClass::Failure
    }
}

pub(super) struct PromoteStep(pub(super) Arc<LambdaSettings>);

impl StepHandler for PromoteStep {
    fn check(&self, step: &Step, cx: &CheckContext<'_>) -> Result<(), EngineError> {
        let input = cx.input::<PromoteLambda>(step)?;
        cx.need_clients(step, &input.from.environment)
    }

    fn preflight<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Preflight, StepError>> {
        Box::pin(async move {
            let input: PromoteLambda = step.action.input()?;
            steps::preflight(&input.publish, cx).await?;
            let (expected, stored) = recorded(&input.from);
            if stored.is_none() {
                let local = local_zip(&input, cx).await?;
                mismatch(
                    step.artifact_name(),
                    &input.from,
                    &expected,
                    &local.code_sha256,
                )?;
            }
            Ok(Preflight::Changes)
        })
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: PromoteLambda = step.action.input()?;
            let artifact = step.artifact_name();
            let (expected, _) = recorded(&input.from);
            let zip = promoted_zip(cx, artifact, &input).await?;
            let published = self.0.publish(cx, artifact, &input.publish, &zip).await?;
            let function = &input.publish.function;
            let actual =
                publish::version_code(cx.clients().lambda(), function, &published.version).await?;
            if actual != expected {
                return Err(StepError::failure(PromoteMismatch::Published {
                    function: function.clone(),
                    version: published.version,
                    actual,
                    expected,
                }));
            }
            steps::done(cx, &input.publish, published, Some(&input.from)).await
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
        &["lambdas"]
    }
}

/// The source release's `CodeSha256` and the zip it kept, if any.
fn recorded(from: &PromoteSource) -> (String, Option<String>) {
    match from.artifact_ref.decode::<super::LambdaRef>() {
        Some(super::LambdaRef {
            code_sha256, zip, ..
        }) => (code_sha256, zip),
        None => (format!("a {} release", from.artifact_ref.kind()), None),
    }
}

async fn local_zip(input: &PromoteLambda, cx: &StepContext<'_>) -> Result<Package, StepError> {
    steps::off_runtime(&input.publish, cx, package::package).await
}

fn mismatch(
    artifact: &str,
    from: &PromoteSource,
    expected: &str,
    local: &str,
) -> Result<(), StepError> {
    if expected == local {
        return Ok(());
    }
    Err(StepError::failure(PromoteMismatch::Source {
        artifact: artifact.to_owned(),
        environment: from.environment.clone(),
        release: from.release_id.clone(),
        expected: expected.to_owned(),
        local: local.to_owned(),
    }))
}

/// The zip to publish: the local one when it is the source's code, else the stored copy.
async fn promoted_zip(
    cx: &StepContext<'_>,
    artifact: &str,
    input: &PromoteLambda,
) -> Result<Package, StepError> {
    let (expected, stored) = recorded(&input.from);
    let local = local_zip(input, cx).await;
    if let Ok(zip) = &local
        && zip.code_sha256 == expected
    {
        return local;
    }
    let Some(location) = stored else {
        let local = local?;
        mismatch(artifact, &input.from, &expected, &local.code_sha256)?;
        return Ok(local);
    };
    let bytes = fetch(cx, &input.from.environment, &location).await?;
    let packaging = Packaging {
        source: Path::new(&location),
        exclude: &[],
        handler: input.publish.handler.as_deref(),
    };
    let zip = package::from_zip(&packaging, bytes)?;
    if zip.code_sha256 != expected {
        return Err(StepError::failure(PromoteMismatch::Stored {
            location,
            actual: zip.code_sha256,
            expected,
        }));
    }
    Ok(zip)
}

/// The bytes at `s3://bucket/key`, read with the source environment's clients.
async fn fetch(
    cx: &StepContext<'_>,
    environment: &str,
    location: &str,
) -> Result<Vec<u8>, StepError> {
    let (bucket, key) = location
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(|| StepError::failure(format!("`{location}` is not an s3:// location")))?;
    let source = cx.clients_of(environment)?;
    let sdk = |err| LambdaError::sdk(location, "s3:GetObject", err);
    let out = source
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(sdk)?;
    let body = out.body.collect().await.map_err(StepError::failure)?;
    Ok(body.into_bytes().to_vec())
}
