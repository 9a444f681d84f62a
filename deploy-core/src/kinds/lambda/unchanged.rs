//! Whether a Lambda release would change nothing: the version the live release recorded has
//! the zip's `CodeSha256` and every configured environment value, and the alias serves it
//! alone. Then the publish and the shift answer [`crate::engine::Preflight::Unchanged`].

use std::collections::BTreeMap;

use super::LambdaRef;
use super::package::{self, Package};
use super::plan::PublishLambda;
use super::publish::LambdaError;
use super::shift::plan::ShiftLambdaAlias;
use crate::engine::{Preflight, StepContext, StepError};
use crate::kinds::lambda::shift::alias::Alias;
use crate::ledger::{Ledger, PointerKind};

/// What the artifact's live release recorded: the function version and its `CodeSha256`.
async fn live(cx: &StepContext<'_>, artifact: &str) -> Result<Option<LambdaRef>, StepError> {
    let clients = cx.clients();
    let pointer = Ledger::new(clients.s3.clone(), &clients.target)
        .pointer(artifact, PointerKind::Live)
        .await?;
    Ok(pointer
        .and_then(|p| p.value.artifact_ref)
        .and_then(|r| r.decode::<LambdaRef>())
        .filter(|r| r.function_version.is_some()))
}

/// The publish's answer: unchanged when the live release's version has `zip`'s code and
/// `env` (the variables the publish sets).
pub(super) async fn publish(
    cx: &StepContext<'_>,
    artifact: &str,
    input: &PublishLambda,
    env: &BTreeMap<String, String>,
) -> Result<Preflight, StepError> {
    if !cx.plan().operation.changes_live() {
        return Ok(Preflight::Changes);
    }
    let Some(live) = live(cx, artifact).await? else {
        return Ok(Preflight::Changes);
    };
    let zip: Package = super::steps::off_runtime(input, cx, package::package).await?;
    let version = live.function_version.as_deref().unwrap_or_default();
    if zip.code_sha256 != live.code_sha256 {
        return Ok(Preflight::Changes);
    }
    let out = cx
        .clients()
        .lambda()
        .get_function_configuration()
        .function_name(&input.function)
        .qualifier(version)
        .send()
        .await
        .map_err(|err| LambdaError::sdk(&input.function, "lambda:GetFunctionConfiguration", err))?;
    let variables = out.environment().and_then(|e| e.variables());
    let same_env = env
        .iter()
        .all(|(k, v)| variables.and_then(|vars| vars.get(k)) == Some(v));
    Ok(
        if out.code_sha256() == Some(zip.code_sha256.as_str()) && same_env {
            Preflight::Unchanged
        } else {
            Preflight::Changes
        },
    )
}

/// The shift's answer: unchanged when the alias serves the live release's version alone.
pub(super) async fn shift(
    cx: &StepContext<'_>,
    artifact: &str,
    input: &ShiftLambdaAlias,
) -> Result<Preflight, StepError> {
    if !cx.plan().operation.changes_live() {
        return Ok(Preflight::Changes);
    }
    let Some(live) = live(cx, artifact).await? else {
        return Ok(Preflight::Changes);
    };
    let alias = Alias::new(cx.clients().lambda(), &input.function, &input.alias)
        .read()
        .await?;
    Ok(match alias {
        Some(a) if Some(&a.version) == live.function_version.as_ref() && a.routing.is_empty() => {
            Preflight::Unchanged
        }
        _ => Preflight::Changes,
    })
}
