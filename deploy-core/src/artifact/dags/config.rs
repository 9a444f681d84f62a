//! `kind = "dags"` in `deploy.toml`: the DAG folder, its bucket and prefix.

use std::path::{Path, PathBuf};

use crate::artifact::{ArtifactKind, DagsSpec};
use crate::config::kind::ArtifactContext;
use crate::config::raw::{RawArtifact, RawRollout};

/// The strategies of DAG artifacts: the upload is the rollout.
/// The keys a DAG artifact takes.
const KEYS: &str = "source, bucket, prefix, rollout";

/// Resolves a DAG artifact (overrides merged, placeholders expanded).
pub(crate) fn resolve(ctx: &mut ArtifactContext<'_, '_, '_>, raw: RawArtifact) -> Option<DagsSpec> {
    ctx.reject(
        ArtifactKind::Dags,
        KEYS,
        &[
            ("env", raw.env.is_some()),
            ("secrets", raw.secrets.is_some()),
            ("repository", raw.repository.is_some()),
            ("scan", raw.scan.is_some()),
            ("scan_on_publish", raw.scan_on_publish.is_some()),
            ("create_repository", raw.create_repository.is_some()),
            ("function", raw.function.is_some()),
            ("alias", raw.alias.is_some()),
            ("artifact_bucket", raw.artifact_bucket.is_some()),
        ],
        &[],
    );
    if let Some(rollout) = &raw.rollout
        && ctx.check_strategy(ArtifactKind::Dags, rollout.strategy)
    {
        reject_rollout_keys(ctx, rollout);
    }
    let source = ctx.require(raw.source.as_ref(), &["source"]);
    let bucket = ctx.require(raw.bucket.as_ref(), &["bucket"]);
    if !bucket.is_empty() {
        ctx.check_bucket(&bucket, &["bucket"]);
    }
    let mut prefix = raw
        .prefix
        .unwrap_or_else(|| "dags/".into())
        .trim_start_matches('/')
        .to_owned();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Some(DagsSpec {
        source: PathBuf::from(source),
        bucket,
        prefix,
    })
}

/// `s3-sync` takes no settings: every other rollout key is refused.
fn reject_rollout_keys(ctx: &mut ArtifactContext<'_, '_, '_>, rollout: &RawRollout) {
    ctx.reject(
        ArtifactKind::Dags,
        KEYS,
        &[
            ("cluster", rollout.cluster.is_some()),
            ("service", rollout.service.is_some()),
            ("container", rollout.container.is_some()),
            ("families", rollout.families.is_some()),
            ("application", rollout.application.is_some()),
            ("deployment_group", rollout.deployment_group.is_some()),
            ("pre_deploy", rollout.pre_deploy.is_some()),
            ("keep_revisions", rollout.keep_revisions.is_some()),
            ("steps", rollout.steps.is_some()),
            ("increment", rollout.increment.is_some()),
            ("interval", rollout.interval.is_some()),
            ("alarms", rollout.alarms.is_some()),
            ("health_check", rollout.health_check.is_some()),
            ("timeout", rollout.timeout.is_some()),
        ],
        &["rollout"],
    );
}

/// Why the DAG folder cannot be synced, if it cannot.
pub(crate) fn check_source(base: &Path, dags: &DagsSpec) -> Option<String> {
    let dir = crate::config::paths::absolute(base, &dags.source);
    crate::config::paths::kind_problem(&dir, "DAG folder", true)
}
