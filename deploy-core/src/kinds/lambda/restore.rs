//! `restore-lambda-version`: a rollback puts the alias back on a version this environment ran
//! before. Nothing is uploaded or published: the version must still exist and report the
//! `CodeSha256` the release recorded, checked before the lock and again before the shift.

use super::LambdaRef;
use super::output::LambdaOutput;
use super::publish::LambdaError;
use crate::engine::{
    BoxFuture, CheckContext, Done, EngineError, Preflight, StepContext, StepError, StepHandler,
    StepOutput,
};
use crate::error::{Classify, ErrorClass};
use crate::events::Event;
use crate::plan::{ActionInput, PromoteSource, Step};
use serde::{Deserialize, Serialize};

/// Go back to the version of `function` an earlier release of this environment published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreLambda {
    /// Function name.
    pub function: String,
    /// The release restored.
    pub from: PromoteSource,
}

impl ActionInput for RestoreLambda {
    const TYPE: &'static str = "restore-lambda-version";

    fn reversibility(&self) -> crate::plan::Reversibility {
        // It only reads: the version is already published.
        crate::plan::Reversibility::Nothing
    }
}

/// The version a rollback goes back to is gone or holds other code.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The release recorded no version (written before versions were recorded).
    #[error(
        "release {release_id} recorded no version of {function} to go back to; release that version again"
    )]
    NoVersion {
        /// Function.
        function: String,
        /// The release.
        release_id: String,
    },
    /// The version was deleted (`keep_versions`, or by hand).
    #[error(
        "version {version} of {function} (release {release_id}) no longer exists (`keep_versions` or a hand deletion removed it); roll back to a later release with `--to`, or release that version again"
    )]
    Gone {
        /// Function.
        function: String,
        /// Version.
        version: String,
        /// The release.
        release_id: String,
    },
    /// The version reports other code than the release recorded.
    #[error(
        "version {version} of {function} reports code {actual}, but release {release_id} recorded {expected}; nothing was changed"
    )]
    OtherCode {
        /// Function.
        function: String,
        /// Version.
        version: String,
        /// The release.
        release_id: String,
        /// What the version reports.
        actual: String,
        /// What the release recorded.
        expected: String,
    },
}

impl Classify for RestoreError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Failure
    }
}

pub(super) struct RestoreStep;

impl StepHandler for RestoreStep {
    fn check(&self, step: &Step, cx: &CheckContext<'_>) -> Result<(), EngineError> {
        cx.input::<RestoreLambda>(step).map(drop)
    }

    fn preflight<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Preflight, StepError>> {
        Box::pin(async move {
            let input: RestoreLambda = step.action.input()?;
            verified(cx, &input).await.map(|_| Preflight::Changes)
        })
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: RestoreLambda = step.action.input()?;
            let artifact = step.artifact_name();
            let output = verified(cx, &input).await?;
            cx.reporter().report(&Event::Note {
                message: format!(
                    "{artifact}: going back to release {} (version {} of {}, code {})",
                    input.from.release_id, output.version, output.function, output.code_sha256
                ),
            });
            cx.put(artifact, output);
            Ok(Done {
                record: StepOutput::restored(&input.from),
                ..Done::default()
            })
        })
    }
}

/// The recorded version of the function, once it is known to still hold the recorded code.
async fn verified(cx: &StepContext<'_>, input: &RestoreLambda) -> Result<LambdaOutput, StepError> {
    let (function, release_id) = (&input.function, &input.from.release_id);
    let recorded = input.from.artifact_ref.decode::<LambdaRef>();
    let Some((version, expected)) =
        recorded.and_then(|r| Some((r.function_version?, r.code_sha256)))
    else {
        return Err(StepError::failure(RestoreError::NoVersion {
            function: function.clone(),
            release_id: release_id.clone(),
        }));
    };
    let answer = cx
        .clients()
        .lambda()
        .get_function_configuration()
        .function_name(function)
        .qualifier(&version)
        .send()
        .await;
    let config = match answer {
        Ok(config) => config,
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            return Err(StepError::failure(RestoreError::Gone {
                function: function.clone(),
                version,
                release_id: release_id.clone(),
            }));
        }
        Err(err) => {
            let err = LambdaError::sdk(function, "lambda:GetFunctionConfiguration", err);
            return Err(StepError::failure(err));
        }
    };
    let actual = config.code_sha256().unwrap_or_default();
    if actual != expected {
        return Err(StepError::failure(RestoreError::OtherCode {
            function: function.clone(),
            version,
            release_id: release_id.clone(),
            actual: actual.to_owned(),
            expected,
        }));
    }
    Ok(LambdaOutput {
        function: function.clone(),
        version,
        code_sha256: expected,
    })
}
