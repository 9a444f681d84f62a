//! `kind = "lambda"` in `deploy.toml`: the function, its alias, the zip's bucket and the
//! traffic-shifting rollout.

use std::path::{Path, PathBuf};

use super::names::{alias_problem, handler_problem};
use crate::config::aws_names::function_problem;
use crate::config::kind::ArtifactContext;
use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::raw::RawArtifact;
use crate::kinds::lambda::shift::LambdaRollout;
use crate::kinds::{ArtifactKind, LambdaSpec};
use crate::rollout::raw::RawRollout;

/// The keys a Lambda artifact takes.
pub(crate) const KEYS: &[&str] = &[
    "source",
    "function",
    "alias",
    "artifact_bucket",
    "exclude",
    "handler",
    "keep_versions",
    "env",
    "rollout",
];

/// A Lambda artifact's table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLambda {
    source: Option<String>,
    function: Option<String>,
    alias: Option<String>,
    artifact_bucket: Option<String>,
    exclude: Option<Vec<String>>,
    handler: Option<String>,
    keep_versions: Option<u32>,
    env: Option<BTreeMap<String, String>>,
    rollout: Option<RawRollout>,
}

/// Where zips go in `artifact_bucket`: `lambda/<sha256>.zip`.
pub(crate) const ZIP_PREFIX: &str = "lambda/";

/// Published versions kept by default, and the bounds of `keep_versions`.
const KEEP_VERSIONS: (u32, std::ops::RangeInclusive<u32>) = (10, 1..=1000);

/// Resolves a Lambda artifact (overrides merged, placeholders expanded).
pub(crate) fn resolve(
    ctx: &mut ArtifactContext<'_, '_, '_>,
    raw: RawArtifact,
) -> Option<LambdaSpec> {
    let raw: RawLambda = ctx.read(raw)?;
    let function = ctx.require(raw.function.as_ref(), &["function"]);
    if !function.is_empty() {
        let home = ctx.home;
        ctx.problem(&["function"], function_problem(&function, home));
    }
    let alias = match &raw.alias {
        Some(alias) => ctx.require(Some(alias), &["alias"]),
        None => "live".into(),
    };
    if !alias.trim().is_empty() {
        ctx.problem(&["alias"], alias_problem(&alias));
    }
    if let Some(bucket) = &raw.artifact_bucket {
        ctx.check_bucket(bucket, &["artifact_bucket"]);
    }
    let rollout = match &raw.rollout {
        None => super::shift::config::lambda_default(),
        Some(rollout) => self::rollout(ctx, rollout)?,
    };
    let exclude = raw.exclude.unwrap_or_default();
    if let Err(err) = super::package::globs(&exclude) {
        ctx.error(
            &["exclude"],
            err.to_string(),
            Some("write globs such as \"tests/**\" or \"*.md\"".into()),
        );
    }
    if let Some(handler) = &raw.handler {
        ctx.problem(&["handler"], handler_problem(handler));
    }
    let keep_versions = raw.keep_versions.unwrap_or(KEEP_VERSIONS.0);
    if !KEEP_VERSIONS.1.contains(&keep_versions) {
        ctx.error(
            &["keep_versions"],
            format!("`keep_versions` is {keep_versions}; it must be between 1 and 1000"),
            None,
        );
    }
    Some(LambdaSpec {
        source: raw.source.map(PathBuf::from),
        function,
        alias,
        artifact_bucket: raw.artifact_bucket,
        exclude,
        handler: raw.handler,
        keep_versions,
        env: raw.env.unwrap_or_default(),
        rollout,
    })
}

fn rollout(ctx: &mut ArtifactContext<'_, '_, '_>, raw: &RawRollout) -> Option<LambdaRollout> {
    if !ctx.check_strategy(ArtifactKind::Lambda, raw.strategy) {
        return None;
    }
    super::shift::config::lambda(ctx, raw)
}

/// Why the Lambda source cannot be zipped or uploaded, if it cannot: missing, not a directory
/// or a `.zip`, or holding what Lambda would refuse (see [`super::package::inspect`]).
pub(crate) fn check_source(base: &Path, lambda: &LambdaSpec) -> Option<String> {
    let Some(source) = lambda.source.as_ref() else {
        return Some(NO_SOURCE.to_owned());
    };
    let p = crate::config::paths::absolute(base, source);
    super::package::inspect(&super::package::Packaging {
        source: &p,
        exclude: &lambda.exclude,
        handler: lambda.handler.as_deref(),
    })
    .err()
    .map(|err| err.to_string())
}

/// A Lambda artifact without `source` has no code to publish.
const NO_SOURCE: &str = "this Lambda artifact has no `source`, so there is no code to publish; \
     set `source` to the function's directory or .zip";
