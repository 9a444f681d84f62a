//! The release ledger: immutable release records and per-artifact pointers in the
//! environment's state bucket.
//!
//! Layout under `deploy/<project>/<environment>/` in the state bucket:
//!
//! ```text
//! artifacts/<artifact>/releases/<newest-first stamp>-<release id>.json   immutable records
//! artifacts/<artifact>/live.json                                          what runs now
//! artifacts/<artifact>/published.json                                     latest published
//! lock.json                                                               the lease lock
//! lock-events/<newest-first stamp>-<id>.json                              forced releases
//! ```
//!
//! Records are created with `If-None-Match: *` and never rewritten. Pointers move with
//! `If-Match` on the ETag read before, so two writers cannot both move one. Record keys start
//! with `9999999999999 - unix millis`, so a plain listing returns the newest first: `history`
//! of the latest N costs one listing and N reads, however long the ledger is.
//!
//! Every document written is unique (a record has its release id, a pointer or lock document a
//! `write_id` nonce), so a conditional write whose answer was lost is recognised by reading the
//! object back. A succeeded record counts once the pointers its operation moves name it;
//! [`Ledger::commit`] reconciles records left without their pointer (a crash, S3 failing
//! between the two writes), and [`Ledger::history_entries`] tells them apart. The rules are
//! in `docs/ledger.md`.

mod commit;
mod history;
mod pointers;
mod reference;
mod store;

use std::fmt;

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::catalog::ArtifactKind;
use crate::target::Target;
pub use history::{HistoryEntry, Metrics, Standing};
pub use reference::{ArtifactRef, KindRef};
pub use store::Persistence;
pub(crate) use store::{Guard, Store};

/// Version of the record and pointer documents this library writes.
pub const SCHEMA: u32 = 1;

/// What went wrong reading or writing the state bucket.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Another writer changed the object first (a conditional write failed).
    #[error(
        "s3://{bucket}/{key} was changed by someone else at the same time; nothing was overwritten. \
         Rerun to continue from the new state"
    )]
    Conflict {
        /// State bucket.
        bucket: String,
        /// Object key.
        key: String,
    },
    /// The state bucket does not exist.
    #[error(
        "state bucket `{bucket}` does not exist; create it with the environment's infra stack \
         (infra/environment.yaml) or fix `state_bucket` in deploy.toml"
    )]
    MissingBucket {
        /// State bucket.
        bucket: String,
    },
    /// An S3 request failed (after the SDK's retries, and the ledger's own rounds of them
    /// when the failure was transient).
    #[error("s3://{bucket}/{key}: {operation} failed: {detail}")]
    Aws {
        /// The S3 operation (`PutObject`, `GetObject`, `ListObjectsV2`).
        operation: &'static str,
        /// State bucket.
        bucket: String,
        /// Object key or prefix.
        key: String,
        /// One line: S3's error code, HTTP status and message, or what broke the connection.
        detail: String,
        /// Whether trying again later may succeed (5xx, throttling, a timeout, a broken
        /// connection), as opposed to a refusal (403, 400).
        transient: bool,
        /// The SDK's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A conditional write was refused (possibly because an earlier attempt of the same write
    /// had landed and its answer was lost), and reading the object back to tell failed too:
    /// whether the write landed is not known.
    #[error(
        "s3://{bucket}/{key}: whether the write landed is unknown: its condition failed (an \
         earlier attempt of it may have landed) and reading the object back failed: {detail}"
    )]
    Unconfirmed {
        /// State bucket.
        bucket: String,
        /// Object key.
        key: String,
        /// Why the read back failed.
        detail: String,
    },
    /// A document in the state bucket is not what this library wrote.
    #[error("s3://{bucket}/{key} is not a valid ledger document: {detail}")]
    Corrupt {
        /// State bucket.
        bucket: String,
        /// Object key.
        key: String,
        /// The decoding error.
        detail: String,
    },
}

impl crate::error::Classify for LedgerError {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Failure
    }
}

impl LedgerError {
    /// Whether the request may succeed if made again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LedgerError::Aws {
                transient: true,
                ..
            }
        )
    }

    /// Whether another writer changed the object first.
    pub fn is_conflict(&self) -> bool {
        matches!(self, LedgerError::Conflict { .. })
    }
}

/// Who did something: a person at a terminal or a CI run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// User name (`GITHUB_ACTOR` in GitHub Actions, else `USER`).
    pub user: String,
    /// Host name.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// Link to the CI run, when running in CI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_run_url: Option<String>,
    /// The AWS principal, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_arn: Option<String>,
}

impl Actor {
    /// The actor of this process, from the environment (GitHub Actions variables when present).
    pub fn detect() -> Actor {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let ci_run_url = match (
            var("GITHUB_SERVER_URL"),
            var("GITHUB_REPOSITORY"),
            var("GITHUB_RUN_ID"),
        ) {
            (Some(server), Some(repo), Some(run)) => {
                Some(format!("{server}/{repo}/actions/runs/{run}"))
            }
            _ => None,
        };
        let host = var("HOSTNAME")
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown-host".into());
        Actor {
            user: var("GITHUB_ACTOR")
                .or_else(|| var("USER"))
                .or_else(|| var("LOGNAME"))
                .or_else(|| {
                    let out = std::process::Command::new("id").arg("-un").output().ok()?;
                    let name = String::from_utf8(out.stdout).ok()?.trim().to_owned();
                    (!name.is_empty()).then_some(name)
                })
                .or_else(|| var("USERNAME"))
                .unwrap_or_else(|| "unknown".into()),
            host,
            pid: std::process::id(),
            ci_run_url,
            aws_arn: None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{} (pid {})", self.user, self.host, self.pid)?;
        if let Some(url) = &self.ci_run_url {
            write!(f, ", {url}")?;
        }
        Ok(())
    }
}

/// What kind of change a release record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Published (pushed/uploaded) without changing what runs.
    Publish,
    /// Rolled out an already published version.
    Rollout,
    /// Published and rolled out.
    Release,
    /// Rolled out what another environment runs.
    Promote,
    /// Went back to an earlier release.
    Rollback,
    /// A step supplied by an embedding tool.
    Custom,
}

impl Operation {
    /// The name used in records and plans (`publish`, `release`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Publish => "publish",
            Operation::Rollout => "rollout",
            Operation::Release => "release",
            Operation::Promote => "promote",
            Operation::Rollback => "rollback",
            Operation::Custom => "custom",
        }
    }

    /// Whether a successful record of this operation changes what runs.
    pub fn changes_live(self) -> bool {
        matches!(
            self,
            Operation::Rollout | Operation::Release | Operation::Promote | Operation::Rollback
        )
    }

    /// Whether a successful record of this operation is the newest published version.
    pub fn publishes(self) -> bool {
        matches!(self, Operation::Publish | Operation::Release)
    }
}

/// An AWS object a step created or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsObject {
    /// What it is: `task-definition`, `codedeploy-deployment`, `lambda-version`, `s3-object`, ...
    pub kind: String,
    /// Its ARN, id or `s3://bucket/key`.
    pub id: String,
}

/// How a release ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Outcome {
    /// Everything succeeded.
    Succeeded,
    /// A step failed; what was changed is listed in `touched`.
    Failed {
        /// The error, one line.
        error: String,
    },
    /// The rollout failed and the previous release was restored.
    RolledBack {
        /// Why.
        reason: String,
    },
    /// The run stopped without finishing (its process died or was killed) and the next run of
    /// the environment settled what it had started, from its journal.
    Abandoned {
        /// What happened, one line.
        reason: String,
        /// The plan of the run that settled it.
        settled_by: String,
        /// What the settling run undid.
        #[serde(default)]
        undone: Vec<String>,
        /// What stays changed.
        #[serde(default)]
        left: Vec<String>,
    },
}

impl Outcome {
    /// The name records, events and reports use: `succeeded`, `failed`, `rolled-back`,
    /// `abandoned`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed { .. } => "failed",
            Outcome::RolledBack { .. } => "rolled-back",
            Outcome::Abandoned { .. } => "abandoned",
        }
    }
}

/// One immutable entry of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// Document version ([`SCHEMA`]).
    pub schema: u32,
    /// Release id, unique and time-ordered.
    pub id: String,
    /// Project.
    pub project: String,
    /// Environment.
    pub environment: String,
    /// Artifact name.
    pub artifact: String,
    /// Artifact kind.
    pub kind: ArtifactKind,
    /// What was done.
    pub operation: Operation,
    /// The version (git sha or `--version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The exact bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_ref: Option<ArtifactRef>,
    /// For promotes, the environment it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_environment: Option<String>,
    /// When the work started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// Who did it.
    pub actor: Actor,
    /// AWS objects created or changed.
    #[serde(default)]
    pub touched: Vec<AwsObject>,
    /// The result.
    pub outcome: Outcome,
    /// The live release before this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// For rollbacks: the earlier release whose bytes it restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<String>,
    /// When the released commit was made (its git committer date): where lead time starts.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub commit_time: Option<OffsetDateTime>,
    /// The version is the HEAD commit of a work tree that had uncommitted changes: what was
    /// released is not exactly that commit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dirty: bool,
    /// The plan this release applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
}

/// Which pointer of an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PointerKind {
    /// The release that runs now.
    Live,
    /// The latest published release.
    Published,
}

impl PointerKind {
    fn file(self) -> &'static str {
        match self {
            PointerKind::Live => "live.json",
            PointerKind::Published => "published.json",
        }
    }
}

/// The small document a pointer key holds: enough for `status` without reading records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// Document version.
    pub schema: u32,
    /// The release pointed at.
    pub release_id: String,
    /// Its record's key.
    pub record_key: String,
    /// What the release did.
    pub operation: Operation,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its exact bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_ref: Option<ArtifactRef>,
    /// When the pointer moved.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When the release's commit was made, if known.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub commit_time: Option<OffsetDateTime>,
    /// Who moved it.
    pub actor: Actor,
}

/// A document read together with the ETag needed to replace it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The document.
    pub value: T,
    /// Its ETag.
    pub etag: String,
}

/// The short form of a release id: its random suffix (`9fbafb78` of
/// `20261206T031904868Z-9fbafb78`), what `history` shows and `rollback --to` accepts.
pub fn short_release_id(id: &str) -> &str {
    id.rsplit_once('-').map_or(id, |(_, suffix)| suffix)
}

/// A new release id: UTC time to the millisecond plus randomness, sortable by time.
pub fn new_release_id(now: OffsetDateTime) -> String {
    use sha2::Digest;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = format!(
        "{}-{}-{n}-{:?}",
        now.unix_timestamp_nanos(),
        std::process::id(),
        std::time::Instant::now()
    );
    let hash = sha2::Sha256::digest(seed.as_bytes());
    let suffix: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}{:03}Z-{suffix}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}

/// Key prefix that sorts newer times first.
pub(crate) fn newest_first_stamp(at: OffsetDateTime) -> String {
    let millis = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    format!(
        "{:013}",
        9_999_999_999_999_i64.saturating_sub(millis).max(0)
    )
}

/// Reads and writes one environment's ledger.
#[derive(Debug, Clone)]
pub struct Ledger {
    store: Store,
    root: String,
    environment: String,
}

impl Ledger {
    /// The ledger of `target`, in its state bucket.
    pub fn new(s3: aws_sdk_s3::Client, target: &Target) -> Ledger {
        Ledger {
            store: Store::new(s3, target.state_bucket.clone()),
            root: target.state_prefix().trim_end_matches('/').to_owned(),
            environment: target.environment.clone(),
        }
    }

    /// The same ledger, trying as `persistence` says when S3 fails for a moment.
    pub fn with_persistence(mut self, persistence: Persistence) -> Ledger {
        self.store = self.store.with_persistence(persistence);
        self
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.root)
    }

    /// The key a record is stored under.
    pub fn record_key(&self, record: &ReleaseRecord) -> String {
        self.key(&format!(
            "artifacts/{}/releases/{}-{}.json",
            record.artifact,
            newest_first_stamp(record.started_at),
            record.id
        ))
    }

    fn pointer_key(&self, artifact: &str, kind: PointerKind) -> String {
        self.key(&format!("artifacts/{artifact}/{}", kind.file()))
    }

    pub(crate) fn decode<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        body: &[u8],
    ) -> Result<T, LedgerError> {
        serde_json::from_slice(body).map_err(|err| LedgerError::Corrupt {
            bucket: self.store.bucket().to_owned(),
            key: key.to_owned(),
            detail: err.to_string(),
        })
    }

    /// Writes a record; fails with [`LedgerError::Conflict`] if one with its key exists.
    pub async fn put_record(&self, record: &ReleaseRecord) -> Result<String, LedgerError> {
        self.put_record_superseding(record, &[]).await
    }

    /// Writes a record that supersedes the records with the ids `supersedes` (stored beside
    /// the record's fields, so [`ReleaseRecord`] readers see the plain record).
    async fn put_record_superseding(
        &self,
        record: &ReleaseRecord,
        supersedes: &[String],
    ) -> Result<String, LedgerError> {
        let key = self.record_key(record);
        let mut document = serde_json::to_value(record).unwrap_or_default();
        if let (false, Some(fields)) = (supersedes.is_empty(), document.as_object_mut()) {
            fields.insert("supersedes".into(), supersedes.into());
        }
        self.store
            .put(&key, to_json(&document), Guard::Create)
            .await?;
        Ok(key)
    }

    /// Reads one record by key with the ids of the records it supersedes.
    pub async fn stored_record(&self, key: &str) -> Result<Option<StoredRecord>, LedgerError> {
        let Some(object) = self.store.get(key).await? else {
            return Ok(None);
        };
        #[derive(Deserialize)]
        struct Extra {
            #[serde(default)]
            supersedes: Vec<String>,
        }
        let extra: Extra = self.decode(key, &object.body)?;
        Ok(Some(StoredRecord {
            key: key.to_owned(),
            record: self.decode(key, &object.body)?,
            supersedes: extra.supersedes,
        }))
    }

    /// Reads one record by key.
    pub async fn record(&self, key: &str) -> Result<Option<ReleaseRecord>, LedgerError> {
        match self.store.get(key).await? {
            Some(object) => self.decode(key, &object.body).map(Some),
            None => Ok(None),
        }
    }

    /// Reads a pointer with its ETag.
    pub async fn pointer(
        &self,
        artifact: &str,
        kind: PointerKind,
    ) -> Result<Option<Versioned<Pointer>>, LedgerError> {
        let key = self.pointer_key(artifact, kind);
        match self.store.get(&key).await? {
            Some(object) => Ok(Some(Versioned {
                value: self.decode(&key, &object.body)?,
                etag: object.etag,
            })),
            None => Ok(None),
        }
    }

    /// Moves a pointer if it still has the ETag `expected` (or does not exist, for `None`).
    pub async fn move_pointer(
        &self,
        artifact: &str,
        kind: PointerKind,
        pointer: &Pointer,
        expected: Option<&str>,
    ) -> Result<String, LedgerError> {
        let guard = expected.map_or(Guard::Create, Guard::Replace);
        self.store
            .put(
                &self.pointer_key(artifact, kind),
                stamped_json(pointer),
                guard,
            )
            .await
    }

    /// The live and published pointers of each artifact: two reads per artifact.
    pub async fn status(&self, artifacts: &[String]) -> Result<Vec<ArtifactStatus>, LedgerError> {
        futures::stream::iter(artifacts)
            .map(|artifact| async move {
                let (live, published) = futures::try_join!(
                    self.pointer(artifact, PointerKind::Live),
                    self.pointer(artifact, PointerKind::Published)
                )?;
                Ok(ArtifactStatus {
                    environment: self.environment.clone(),
                    artifact: artifact.clone(),
                    live: live.map(|p| p.value),
                    published: published.map(|p| p.value),
                })
            })
            .buffered(8)
            .try_collect()
            .await
    }

    /// The newest `limit` records across `artifacts`, newest first: one listing per artifact
    /// and one read per returned record.
    pub async fn history(
        &self,
        artifacts: &[String],
        limit: usize,
    ) -> Result<Vec<ReleaseRecord>, LedgerError> {
        let keys = self.newest_keys(artifacts, limit).await?;
        let records: Vec<Option<ReleaseRecord>> = futures::stream::iter(keys)
            .map(|key| async move { self.record(&key).await })
            .buffered(16)
            .try_collect()
            .await?;
        Ok(records.into_iter().flatten().collect())
    }

    /// The keys of the newest `limit` records across `artifacts`, newest first.
    pub(crate) async fn newest_keys(
        &self,
        artifacts: &[String],
        limit: usize,
    ) -> Result<Vec<String>, LedgerError> {
        // Owned names: a closure over borrowed ones is not `Send` for every lifetime, which
        // a step's boxed future needs.
        let listings: Vec<Vec<String>> = futures::stream::iter(artifacts.to_vec())
            .map(|artifact: String| {
                let prefix = self.key(&format!("artifacts/{artifact}/releases/"));
                async move { self.store.list(&prefix, limit).await }
            })
            .buffered(8)
            .try_collect()
            .await?;
        let mut keys: Vec<String> = listings.into_iter().flatten().collect();
        let file = |key: &String| key.rsplit('/').next().unwrap_or_default().to_owned();
        keys.sort_by_key(file);
        keys.truncate(limit);
        Ok(keys)
    }
}

/// What the ledger says about one artifact in one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactStatus {
    /// Environment.
    pub environment: String,
    /// Artifact.
    pub artifact: String,
    /// The live release, if any.
    pub live: Option<Pointer>,
    /// The latest published release, if any.
    pub published: Option<Pointer>,
}

/// A record as stored, with what the ledger keeps beside its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredRecord {
    /// Its key in the state bucket.
    pub key: String,
    /// The record.
    #[serde(flatten)]
    pub record: ReleaseRecord,
    /// Ids of earlier succeeded records whose pointers never moved, that this record replaces
    /// (see `docs/ledger.md`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<String>,
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain data types cannot fail: no maps with non-string keys, no I/O.
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

/// `value` as JSON with a fresh `write_id` field: no two writes have the same bytes, so a
/// conditional write whose answer was lost can tell its own write from someone else's.
pub(crate) fn stamped_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut document = serde_json::to_value(value).unwrap_or_default();
    if let Some(fields) = document.as_object_mut() {
        fields.insert(
            "write_id".into(),
            new_release_id(OffsetDateTime::now_utc()).into(),
        );
    }
    to_json(&document)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn newer_times_sort_first() {
        let older = newest_first_stamp(datetime!(2026-01-01 00:00:00 UTC));
        let newer = newest_first_stamp(datetime!(2026-01-01 00:00:00.001 UTC));
        assert!(newer < older);
        assert_eq!(newer.len(), 13);
    }

    #[test]
    fn release_ids_are_unique_and_readable() {
        let at = datetime!(2026-11-23 10:15:30.123 UTC);
        let a = new_release_id(at);
        let b = new_release_id(at);
        assert_ne!(a, b);
        assert!(a.starts_with("20261123T101530123Z-"), "{a}");
    }
}
