//! `promote-dags`: the target's prefix gets exactly the file set the source environment's live
//! release recorded, each file copied server-side from its recorded S3 version (so what the
//! source bucket holds now does not matter), streamed through memory when the target's
//! credentials cannot read the source bucket; then what the release lacks is deleted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::DagFile;
use super::steps::{self, DagsSettings};
use super::sync::{Diff, Place, Remote, SyncError};
use crate::aws::SdkFailure;
use crate::engine::{
    BoxFuture, CheckContext, Done, Engine, EngineError, StepContext, StepError, StepHandler,
};
use crate::plan::{ActionInput, PromoteSource, Step};

/// Copy the DAG files another environment's live release recorded into this one's bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromoteDags {
    /// Target DAG bucket.
    pub bucket: String,
    /// Target key prefix.
    pub prefix: String,
    /// The source environment's live release (its manifest and location).
    pub from: PromoteSource,
    /// The largest share of the target's files the promotion deletes without
    /// `allow_mass_delete`.
    pub max_delete_share: f64,
    /// Delete whatever share of the files the release lacks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_mass_delete: bool,
}

impl ActionInput for PromoteDags {
    const TYPE: &'static str = "promote-dags";

    fn reversibility(&self) -> crate::plan::Reversibility {
        crate::plan::Reversibility::Reversible
    }
}

/// The source release does not say where its files are (recorded before locations were).
#[derive(Debug, thiserror::Error)]
#[error(
    "release {release} of `{artifact}` in {environment} does not record its DAG files with their location; release it there again first"
)]
pub struct NoManifest {
    /// Source environment.
    pub environment: String,
    /// Artifact.
    pub artifact: String,
    /// The release.
    pub release: String,
}

/// Registers `promote-dags` with `engine`.
pub(crate) fn register(engine: &mut Engine, settings: DagsSettings) {
    engine.register(PromoteDags::TYPE, Arc::new(PromoteStep { settings }));
}

struct PromoteStep {
    settings: DagsSettings,
}

/// The source's files (its manifest read with the source's clients) and where they are.
async fn source(
    input: &PromoteDags,
    source_s3: &aws_sdk_s3::Client,
) -> Result<(Place, Vec<DagFile>), StepError> {
    let missing = || {
        StepError::failure(NoManifest {
            environment: input.from.environment.clone(),
            artifact: input.from.artifact.clone(),
            release: input.from.release_id.clone(),
        })
    };
    let Some(location) = input
        .from
        .artifact_ref
        .decode::<super::DagsRef>()
        .and_then(|r| r.location)
    else {
        return Err(missing());
    };
    let files = super::manifest::files(source_s3, &input.from.artifact_ref).await?;
    let (bucket, prefix) = location
        .strip_prefix("s3://")
        .and_then(|l| l.split_once('/'))
        .ok_or_else(missing)?;
    if files.iter().any(|f| f.version_id.is_none()) {
        return Err(missing());
    }
    let place = Place {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
    };
    Ok((place, files))
}

/// Files compared with the target: the same when the target's live release recorded the same
/// content for a key the bucket still has.
fn diff(
    files: &[DagFile],
    remote: &BTreeMap<String, Remote>,
    recorded: &HashMap<String, DagFile>,
) -> Diff {
    let mut out = Diff::default();
    for f in files {
        let same = recorded.get(&f.path).is_some_and(|r| r.sha256 == f.sha256);
        match (remote.contains_key(&f.path), same) {
            (false, _) => out.added.push(f.path.clone()),
            (true, true) => out.unchanged.push(f.path.clone()),
            (true, false) => out.changed.push(f.path.clone()),
        }
    }
    out.deleted = remote
        .keys()
        .filter(|k| !files.iter().any(|f| &f.path == *k))
        .cloned()
        .collect();
    out
}

impl StepHandler for PromoteStep {
    fn check(&self, step: &Step, cx: &CheckContext<'_>) -> Result<(), EngineError> {
        let input = cx.input::<PromoteDags>(step)?;
        cx.need_clients(step, &input.from.environment)
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: PromoteDags = step.action.input()?;
            let artifact = step.artifact_name().to_owned();
            self.promote(cx, &artifact, &input).await
        })
    }

    fn undo<'a>(
        &'a self,
        _step: &'a Step,
        data: &'a serde_json::Value,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(steps::undo(data, cx))
    }

    fn report_sections(&self) -> &'static [&'static str] {
        &["dags"]
    }
}

impl PromoteStep {
    async fn promote(
        &self,
        cx: &StepContext<'_>,
        artifact: &str,
        input: &PromoteDags,
    ) -> Result<Done, StepError> {
        let started = Instant::now();
        let source_s3 = &cx.clients_of(&input.from.environment)?.s3;
        let (from, files) = source(input, source_s3).await?;
        let s3 = &cx.clients().s3;
        let place = Place {
            bucket: input.bucket.clone(),
            prefix: input.prefix.clone(),
        };
        let steps::Seen { remote, recorded } = steps::Seen::read(cx, artifact, &place).await?;
        let diff = diff(&files, &remote, &recorded.files);
        let by_path: HashMap<&str, &DagFile> = files.iter().map(|f| (f.path.as_str(), f)).collect();
        let copies: Vec<_> = diff
            .added
            .iter()
            .chain(&diff.changed)
            .filter_map(|p| by_path.get(p.as_str()).copied())
            .map(|f| copy(s3, source_s3, &from, &place, f))
            .collect();
        let from = &input.from.environment;
        let restore = from == &cx.clients().target.environment;
        let origin = if restore {
            format!("restored release {}", input.from.release_id)
        } else {
            format!("copied from {from} release {}", input.from.release_id)
        };
        let change = steps::Change {
            artifact,
            place: &place,
            diff: &diff,
            remote: remote.len(),
            recorded: &recorded,
            manifest: files
                .iter()
                .map(|f| (f.path.clone(), f.sha256.clone()))
                .collect(),
            deletes: (
                input.max_delete_share,
                input.allow_mass_delete || self.settings.allow_mass_delete,
            ),
            bytes: 0,
            started,
            origin: Some(origin),
        };
        let copied = futures::stream::iter(copies)
            .buffer_unordered(self.settings.parallel.max(1))
            .try_collect::<HashMap<_, _>>();
        let mut done = steps::carry_out(cx, change, copied).await?;
        done.record.version = input.from.version.clone();
        // A rollback restores from the environment itself: it names the release instead.
        if restore {
            done.record.restored = Some(input.from.release_id.clone());
        } else {
            done.record.source_environment = Some(from.clone());
        }
        Ok(done)
    }
}

/// Copies one recorded version server-side; when the target's credentials cannot read the
/// source bucket, reads it with the source's and writes it with the target's.
async fn copy(
    s3: &aws_sdk_s3::Client,
    source_s3: &aws_sdk_s3::Client,
    from: &Place,
    to: &Place,
    file: &DagFile,
) -> Result<(String, Option<String>), SyncError> {
    let version = file.version_id.as_deref().unwrap_or_default();
    let copied = to.restore(s3, from, &file.path, version).await;
    let version = match copied {
        Ok(v) => v,
        Err(SyncError::S3 { ref source, .. }) if denied(source) => {
            stream(s3, source_s3, from, to, file, version).await?
        }
        Err(other) => return Err(other),
    };
    Ok((file.path.clone(), version))
}

fn denied(failure: &SdkFailure) -> bool {
    let text = failure.to_string();
    text.contains("AccessDenied") || text.contains("403")
}

async fn stream(
    s3: &aws_sdk_s3::Client,
    source_s3: &aws_sdk_s3::Client,
    from: &Place,
    to: &Place,
    file: &DagFile,
    version: &str,
) -> Result<Option<String>, SyncError> {
    let key = format!("{}{}", from.prefix, file.path);
    let bytes = bytes_of(source_s3, from, &key, version).await?;
    to.put_bytes(s3, &file.path, &file.sha256, bytes).await
}

async fn bytes_of(
    source_s3: &aws_sdk_s3::Client,
    from: &Place,
    key: &str,
    version: &str,
) -> Result<Vec<u8>, SyncError> {
    let object = source_s3
        .get_object()
        .bucket(&from.bucket)
        .key(key)
        .version_id(version)
        .send()
        .await
        .map_err(|e| from.sdk_error("GetObject", key, e))?;
    let bytes = object.body.collect().await.map_err(|e| SyncError::Read {
        path: key.into(),
        source: std::io::Error::other(e),
    })?;
    Ok(bytes.into_bytes().to_vec())
}
