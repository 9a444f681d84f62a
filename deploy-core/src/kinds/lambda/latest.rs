//! Putting `$LATEST` back after a publish: the undo of `publish-lambda` and `promote-lambda`.
//!
//! The environment variables the publish set go back to their previous values (a variable it
//! added is removed). The code goes back when the previous zip is kept in the artifact bucket,
//! under its sha256, where every publish with an `artifact_bucket` keeps its zip. Without such
//! a copy nothing can put the code back (Lambda has no call that copies a version's code to
//! `$LATEST`): the code stays (the variables still go back) and a failed run names it.

use serde::{Deserialize, Serialize};

use super::plan::PublishLambda;
use super::publish::{self, Before, LambdaError, PublishSettings, Published};
use crate::engine::{StepContext, StepError, Undo};
use crate::plan::Step;

/// A zip kept in the artifact bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KeptZip {
    bucket: String,
    key: String,
}

/// What the undo needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PutBack {
    function: String,
    /// The previous zip, when the publish changed the code.
    code: Option<KeptZip>,
    /// The previous code and variables.
    before: Before,
}

/// How the change `published` made to `$LATEST` is undone.
pub(super) async fn undo_of(
    cx: &StepContext<'_>,
    input: &PublishLambda,
    published: &Published,
) -> Result<Undo, StepError> {
    let env_changed = published.env_changed && !published.before.env.is_empty();
    if !published.uploaded && !env_changed {
        return Ok(Undo::Nothing);
    }
    let code = if published.uploaded {
        kept_zip(cx, input, &published.before.code_sha256).await
    } else {
        None
    };
    let what = match (&code, env_changed) {
        (Some(_), true) => "code and environment",
        (Some(_), false) => "code",
        (None, _) => "environment",
    };
    let code_stays = published.uploaded && code.is_none();
    let put_back = PutBack {
        function: input.function.clone(),
        code,
        before: published.before.clone(),
    };
    let description = format!("put the {what} of {}'s $LATEST back", input.function);
    match (code_stays, env_changed) {
        (false, _) => Undo::compensate(description, &put_back),
        (true, true) => Undo::partial(description, &put_back, code_left(input, published)),
        (true, false) => Ok(Undo::Irreversible {
            left: code_left(input, published),
        }),
    }
}

/// What stays when the previous code cannot be put back.
fn code_left(input: &PublishLambda, published: &Published) -> String {
    format!(
        "$LATEST of {} keeps the new code {} (version {}): its previous zip is not kept in an \
         artifact bucket to put back (`artifact_bucket` keeps every zip)",
        input.function, published.code_sha256, published.version
    )
}

/// The previous zip (its `CodeSha256` being `code_sha256`) in `input`'s artifact bucket, if
/// it is there; a bucket that cannot be asked counts as not having it.
async fn kept_zip(
    cx: &StepContext<'_>,
    input: &PublishLambda,
    code_sha256: &str,
) -> Option<KeptZip> {
    let bucket = input.artifact_bucket.as_ref()?;
    let digest = aws_smithy_types::base64::decode(code_sha256).ok()?;
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("{}{hex}.zip", super::config::ZIP_PREFIX);
    let head = cx.clients().s3.head_object().bucket(bucket).key(&key);
    head.send().await.ok()?;
    Some(KeptZip {
        bucket: bucket.clone(),
        key,
    })
}

/// Undoes a publish: the previous code from the artifact bucket, then the previous variables.
pub(super) async fn put_back(
    cx: &StepContext<'_>,
    settings: &PublishSettings,
    step: &Step,
    data: &serde_json::Value,
) -> Result<(), StepError> {
    let undo: PutBack = Undo::decode(data)?;
    let artifact = step.artifact_name();
    let lambda = &cx.clients().lambda();
    let function = undo.function.as_str();
    let reporter = cx.reporter();
    if let Some(zip) = &undo.code {
        lambda
            .update_function_code()
            .function_name(function)
            .s3_bucket(&zip.bucket)
            .s3_key(&zip.key)
            .send()
            .await
            .map_err(|err| LambdaError::sdk(function, "lambda:UpdateFunctionCode", err))?;
        publish::wait_updated(lambda, artifact, function, settings, reporter.as_ref()).await?;
    }
    if undo.before.env.is_empty() {
        return Ok(());
    }
    let current = publish::configuration(lambda, function).await?;
    let mut env = current.env;
    for (name, value) in &undo.before.env {
        match value {
            Some(value) => env.insert(name.clone(), value.clone()),
            None => env.remove(name),
        };
    }
    publish::update_env(lambda, function, env, current.revision_id.as_deref()).await?;
    publish::wait_updated(lambda, artifact, function, settings, reporter.as_ref()).await?;
    Ok(())
}
