//! `kind = "lambda"` in `deploy.toml`: the function, its alias, the zip's bucket and the
//! traffic-shifting rollout.

use std::path::{Path, PathBuf};

use crate::config::aws_names::{alias_problem, function_problem, handler_problem};
use crate::config::kind::ArtifactContext;
use crate::config::raw::{RawArtifact, RawRollout};
use crate::kinds::lambda::shift::LambdaRollout;
use crate::kinds::{ArtifactKind, LambdaSpec};

/// The keys a Lambda artifact takes.
const KEYS: &str =
    "source, function, alias, artifact_bucket, exclude, handler, keep_versions, env, rollout";

/// Where zips go in `artifact_bucket`: `lambda/<sha256>.zip`.
pub(crate) const ZIP_PREFIX: &str = "lambda/";

/// Published versions kept by default, and the bounds of `keep_versions`.
const KEEP_VERSIONS: (u32, std::ops::RangeInclusive<u32>) = (10, 1..=1000);

/// Rejects the Lambda-only keys on an artifact of another kind.
pub(crate) fn reject_elsewhere(ctx: &mut ArtifactContext<'_, '_, '_>, raw: &RawArtifact) {
    let present = [
        // `exclude` is also a key of DAG folders.
        (
            "exclude",
            raw.exclude.is_some() && raw.kind != ArtifactKind::Dags,
        ),
        ("handler", raw.handler.is_some()),
        ("keep_versions", raw.keep_versions.is_some()),
    ];
    for (key, _) in present.iter().filter(|(_, set)| *set) {
        ctx.error(
            &[key],
            format!("`{key}` does not apply to {} artifacts", raw.kind),
            Some(format!("remove `{key}`; it is a key of lambda artifacts")),
        );
    }
}

/// Resolves a Lambda artifact (overrides merged, placeholders expanded).
pub(crate) fn resolve(
    ctx: &mut ArtifactContext<'_, '_, '_>,
    raw: RawArtifact,
) -> Option<LambdaSpec> {
    ctx.reject(
        ArtifactKind::Lambda,
        KEYS,
        &[
            ("secrets", raw.secrets.is_some()),
            ("repository", raw.repository.is_some()),
            ("scan", raw.scan.is_some()),
            ("scan_on_publish", raw.scan_on_publish.is_some()),
            ("create_repository", raw.create_repository.is_some()),
            ("bucket", raw.bucket.is_some()),
            ("prefix", raw.prefix.is_some()),
        ],
        &[],
    );
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
    ctx.reject(
        ArtifactKind::Lambda,
        KEYS,
        &[
            ("cluster", raw.cluster.is_some()),
            ("service", raw.service.is_some()),
            ("container", raw.container.is_some()),
            ("families", raw.families.is_some()),
            ("application", raw.application.is_some()),
            ("deployment_group", raw.deployment_group.is_some()),
            ("pre_deploy", raw.pre_deploy.is_some()),
            ("keep_revisions", raw.keep_revisions.is_some()),
        ],
        &["rollout"],
    );
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
