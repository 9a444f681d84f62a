//! The DAG steps on the engine's seam: `sync-dags` makes the bucket's prefix hold exactly the
//! folder's files. Its undo puts back the previous version of every file it overwrote or
//! deleted (server-side copies of the old S3 versions; the bucket is versioned) and deletes
//! the files it added.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::DagFile;
use super::collect::{self, CollectOptions};
use super::plan::SyncDags;
use super::sync::{self, Diff, HashedFile, Place, Remote, SyncError};
use super::validate;
use crate::engine::{
    BoxFuture, CheckContext, Done, Engine, EngineError, Preflight, StepContext, StepError,
    StepHandler, StepOutput, Undo, UndoFailed,
};
use crate::error::ErrorClass;
use crate::events::Event;
use crate::ledger::{AwsObject, Ledger, PointerKind};
use crate::plan::{ActionInput, Step};

/// The environment variable that lets one run delete more than `max_delete_share`.
pub const ALLOW_MASS_DELETE_ENV: &str = "DEPLOY_ALLOW_MASS_DELETE";

/// Settings the DAG steps share.
#[derive(Debug, Clone)]
pub struct DagsSettings {
    /// Files uploaded at once.
    pub parallel: usize,
    /// Delete more than `max_delete_share` of the files (`--allow-mass-delete`).
    pub allow_mass_delete: bool,
}

impl Default for DagsSettings {
    fn default() -> DagsSettings {
        DagsSettings {
            parallel: 8,
            allow_mass_delete: false,
        }
    }
}

/// Registers the DAG steps with `engine`.
pub fn register(engine: &mut Engine, settings: DagsSettings) {
    super::promote::register(engine, settings.clone());
    engine.register(
        SyncDags::TYPE,
        Arc::new(SyncStep {
            settings,
            prepared: Mutex::default(),
        }),
    );
}

/// A sync as the report's `dags` section lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DagsReport {
    /// Artifact.
    pub artifact: String,
    /// `s3://bucket/prefix`.
    pub target: String,
    /// Files uploaded (new or changed).
    pub uploaded: Vec<String>,
    /// Files deleted.
    pub deleted: Vec<String>,
    /// Files already in the bucket with the same content.
    pub unchanged: usize,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
}

/// What the undo of a sync needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SyncUndo {
    place: Place,
    /// Files overwritten or deleted, with the version they had.
    restore: Vec<(String, String)>,
    /// Files the sync added.
    remove: Vec<String>,
}

struct SyncStep {
    settings: DagsSettings,
    /// What the preflight read, by plan and step: the run uses the folder rather than reading
    /// and parsing everything again (each upload still checks the file's SHA-256), and the
    /// bucket and ledger when they are still current (`preflight_reads_current`).
    prepared: Mutex<HashMap<(String, String), Prepared>>,
}

struct Prepared {
    files: Vec<HashedFile>,
    seen: Seen,
}

/// The prefix's listing and the live release's files, read together.
pub(crate) struct Seen {
    pub remote: BTreeMap<String, Remote>,
    pub recorded: Recorded,
}

impl Seen {
    /// Lists `place`, reads `artifact`'s live release and checks the bucket keeps versions, at
    /// once.
    pub(crate) async fn read(
        cx: &StepContext<'_>,
        artifact: &str,
        place: &Place,
    ) -> Result<Seen, StepError> {
        let s3 = &cx.clients().s3;
        let list = async { place.list(s3).await.map_err(StepError::from) };
        let versioned = async { place.check_versioning(s3).await.map_err(StepError::from) };
        let (remote, recorded, ()) =
            tokio::try_join!(list, recorded(cx, artifact, place), versioned)?;
        Ok(Seen { remote, recorded })
    }
}

/// The files of an artifact's live release by path, and the manifest object holding them.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    pub files: HashMap<String, DagFile>,
    pub manifest: Option<String>,
}

/// Collects, reads, validates and hashes the folder; blocking work, spread over the machine's
/// cores (each file is read, hashed and parsed by one worker; the bytes are not kept).
pub fn prepare(root: &Path, input: &SyncDags) -> Result<Vec<HashedFile>, StepError> {
    let folder = crate::config::paths::absolute(root, Path::new(&input.source));
    let options = CollectOptions {
        syntax: input.ignore_syntax,
        include: input.include.clone(),
        exclude: input.exclude.clone(),
    };
    let collection =
        collect::collect(&folder, &options).map_err(|e| StepError::new(ErrorClass::Usage, e))?;
    let files = collection.files;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let share = files.len().div_ceil(workers).max(1);
    let checked: Vec<Checked> = std::thread::scope(|scope| {
        let parts: Vec<_> = files
            .chunks(share)
            .map(|part| {
                scope.spawn(|| {
                    part.iter()
                        .map(|f| read_and_check(&input.source, f))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|part| {
                part.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Result<_, _>>()
    })?;
    let (hashed, verdicts): (Vec<_>, Vec<_>) =
        checked.into_iter().map(|c| (c.hashed, c.verdict)).unzip();
    validate::conclude(&input.source, files.iter().zip(verdicts))?;
    Ok(hashed)
}

/// Whether a sync would change nothing: the prefix holds exactly the folder's files, and they
/// are the files the live release recorded there.
fn no_change(files: &[HashedFile], seen: &Seen) -> bool {
    let diff = sync::diff(files, &seen.remote);
    let recorded = &seen.recorded;
    diff.added.is_empty()
        && diff.changed.is_empty()
        && diff.deleted.is_empty()
        && !files.is_empty()
        && recorded.files.len() == files.len()
        && files.iter().all(|f| {
            recorded
                .files
                .get(&f.file.path)
                .is_some_and(|r| r.sha256 == f.sha256)
        })
}

/// One file read, hashed and checked.
struct Checked {
    hashed: HashedFile,
    verdict: Result<Vec<String>, validate::Problem>,
}

fn read_and_check(folder: &str, file: &collect::SourceFile) -> Result<Checked, StepError> {
    let bytes = if file.size > validate::MAX_FILE_BYTES {
        Vec::new()
    } else {
        std::fs::read(&file.local).map_err(|source| {
            StepError::new(
                ErrorClass::Usage,
                collect::CollectError::Io {
                    path: file.local.clone(),
                    source,
                },
            )
        })?
    };
    Ok(Checked {
        verdict: validate::check_file(folder, file, &bytes),
        hashed: HashedFile::new(file.clone(), &bytes),
    })
}

async fn prepare_async(root: &Path, input: &SyncDags) -> Result<Vec<HashedFile>, StepError> {
    let (root, input) = (root.to_owned(), input.clone());
    tokio::task::spawn_blocking(move || prepare(&root, &input))
        .await
        .map_err(StepError::failure)?
}

impl StepHandler for SyncStep {
    fn check(&self, step: &Step, cx: &CheckContext<'_>) -> Result<(), EngineError> {
        cx.input::<SyncDags>(step).map(drop)
    }

    fn preflight<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Preflight, StepError>> {
        Box::pin(async move {
            let input: SyncDags = step.action.input()?;
            // The folder is read and parsed while the bucket is listed; a bad file is
            // reported before a failed read.
            let place = input.place();
            let (files, seen) = tokio::join!(
                prepare_async(cx.source_root(), &input),
                Seen::read(cx, step.artifact_name(), &place)
            );
            let (files, seen) = (files?, seen?);
            let found = if no_change(&files, &seen) {
                Preflight::Unchanged
            } else {
                Preflight::Changes
            };
            // A run that changes nothing ends before `run`: nothing to keep for it.
            if found == Preflight::Changes
                && let Ok(mut prepared) = self.prepared.lock()
            {
                let key = (cx.plan().id.clone(), step.id.clone());
                prepared.insert(key, Prepared { files, seen });
            }
            Ok(found)
        })
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: SyncDags = step.action.input()?;
            let artifact = step.artifact_name().to_owned();
            let key = (cx.plan().id.clone(), step.id.clone());
            let cached = self.prepared.lock().ok().and_then(|mut p| p.remove(&key));
            let (files, seen) = match cached {
                Some(p) => (
                    p.files,
                    Some(p.seen).filter(|_| cx.preflight_reads_current()),
                ),
                None => (prepare_async(cx.source_root(), &input).await?, None),
            };
            let seen = match seen {
                Some(seen) => seen,
                None => Seen::read(cx, &artifact, &input.place()).await?,
            };
            self.sync(cx, &artifact, &input, files, seen).await
        })
    }

    fn undo<'a>(
        &'a self,
        _step: &'a Step,
        data: &'a serde_json::Value,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(undo(data, cx))
    }

    fn report_sections(&self) -> &'static [&'static str] {
        &["dags"]
    }
}

impl SyncStep {
    async fn sync(
        &self,
        cx: &StepContext<'_>,
        artifact: &str,
        input: &SyncDags,
        files: Vec<HashedFile>,
        seen: Seen,
    ) -> Result<Done, StepError> {
        let started = Instant::now();
        let s3 = &cx.clients().s3;
        let place = input.place();
        let Seen { remote, recorded } = seen;
        let diff = sync::diff(&files, &remote);
        let by_path: HashMap<&str, &HashedFile> =
            files.iter().map(|f| (f.file.path.as_str(), f)).collect();
        let to_upload: Vec<&HashedFile> = diff
            .added
            .iter()
            .chain(&diff.changed)
            .filter_map(|p| by_path.get(p.as_str()).copied())
            .collect();
        let bytes = to_upload.iter().map(|f| f.file.size).sum();
        let reporter = cx.reporter().clone();
        let on_done = |f: &HashedFile| {
            reporter.report(&Event::BytesTransferred {
                artifact: artifact.to_owned(),
                item: f.file.path.clone(),
                done: f.file.size,
                total: Some(f.file.size),
            });
        };
        let change = Change {
            artifact,
            place: &place,
            diff: &diff,
            remote: remote.len(),
            recorded: &recorded,
            manifest: files
                .iter()
                .map(|f| (f.file.path.clone(), f.sha256.clone()))
                .collect(),
            deletes: (
                input.max_delete_share,
                input.allow_mass_delete || self.settings.allow_mass_delete,
            ),
            bytes,
            started,
            origin: None,
        };
        let uploads = sync::upload_all(s3, &place, to_upload, self.settings.parallel, &on_done);
        carry_out(cx, change, uploads).await
    }
}

/// A sync or promotion once its diff with the bucket is known.
pub(crate) struct Change<'a> {
    pub artifact: &'a str,
    pub place: &'a Place,
    pub diff: &'a Diff,
    /// Objects under the prefix now (the mass-delete valve's whole).
    pub remote: usize,
    /// The live release, for the version ids of the files kept.
    pub recorded: &'a Recorded,
    /// Path and SHA-256 of every file the prefix holds afterwards.
    pub manifest: Vec<(String, String)>,
    /// `max_delete_share`, and whether more may go.
    pub deletes: (f64, bool),
    /// Bytes the writes send.
    pub bytes: u64,
    pub started: Instant,
    /// Where the files came from, said after the counts.
    pub origin: Option<String>,
}

/// What a sync and a promotion share: the mass-delete valve, the versions the undo needs,
/// `writes` (the uploads or copies of the added and changed files: path and new version) and
/// the deletes, all put back if they fail part way, then the report and the record.
pub(crate) async fn carry_out(
    cx: &StepContext<'_>,
    change: Change<'_>,
    writes: impl std::future::Future<Output = Result<HashMap<String, Option<String>>, SyncError>>,
) -> Result<Done, StepError> {
    let s3 = &cx.clients().s3;
    let Change {
        artifact,
        place,
        diff,
        recorded,
        ..
    } = change;
    check_deletes(change.deletes, place, diff, change.remote)?;
    let mut versions = known_versions(s3, place, &recorded.files, &change.manifest, diff).await?;
    let undo = SyncUndo::new(place, &versions, diff);
    // A run killed part way through the writes is settled by putting the prefix back.
    cx.journal(&undo.as_undo(diff)?).await;
    let changes = async {
        let written = writes.await?;
        place.delete(s3, &diff.deleted).await?;
        Ok(written)
    };
    for (path, version) in undo.on_failure(s3, changes).await? {
        match version {
            Some(v) => versions.insert(path, v),
            None => versions.remove(&path),
        };
    }
    let report = DagsReport {
        artifact: artifact.to_owned(),
        target: format!("s3://{}/{}", place.bucket, place.prefix),
        uploaded: diff.added.iter().chain(&diff.changed).cloned().collect(),
        deleted: diff.deleted.clone(),
        unchanged: diff.unchanged.len(),
        bytes_uploaded: change.bytes,
    };
    let counts = note(&report, change.manifest.len(), change.started);
    cx.reporter().report(&Event::Note {
        message: match &change.origin {
            Some(origin) => format!("{counts} ({origin})"),
            None => counts,
        },
    });
    cx.report_item("dags", &report);
    let sync = Synced {
        place,
        manifest: &change.manifest,
        versions: &versions,
        diff,
        undo,
    };
    done(cx, artifact, sync, recorded.manifest.as_deref()).await
}

/// Puts back what a sync or promotion overwrote or deleted and deletes what it added.
pub(crate) async fn undo(data: &serde_json::Value, cx: &StepContext<'_>) -> Result<(), StepError> {
    let undo: SyncUndo = Undo::decode(data)?;
    undo.apply(&cx.clients().s3).await.map_err(StepError::from)
}

impl SyncUndo {
    /// The step's undo: nothing when `diff` changes nothing.
    fn as_undo(&self, diff: &Diff) -> Result<Undo, StepError> {
        if diff.added.is_empty() && diff.changed.is_empty() && diff.deleted.is_empty() {
            return Ok(Undo::Nothing);
        }
        Undo::compensate(
            format!(
                "put back the previous {} file(s) and delete the {} added under s3://{}/{}",
                self.restore.len(),
                self.remove.len(),
                self.place.bucket,
                self.place.prefix
            ),
            self,
        )
    }

    /// The undo of `diff` under `place`: the versions the files it overwrites or deletes have
    /// now, and the files it adds.
    fn new(place: &Place, versions: &HashMap<String, String>, diff: &Diff) -> SyncUndo {
        let restore = diff
            .changed
            .iter()
            .chain(&diff.deleted)
            .filter_map(|p| versions.get(p).map(|v| (p.clone(), v.clone())))
            .collect();
        SyncUndo {
            place: place.clone(),
            restore,
            remove: diff.added.clone(),
        }
    }

    /// Copies each overwritten or deleted file's previous version back, deletes the added ones.
    async fn apply(&self, s3: &aws_sdk_s3::Client) -> Result<(), SyncError> {
        for (path, version) in &self.restore {
            self.place.restore(s3, &self.place, path, version).await?;
        }
        self.place.delete(s3, &self.remove).await
    }

    /// Runs `changes` (the uploads or copies, then the deletes); when they fail part way, every
    /// file they may have touched is put back first, so the failed step leaves the previous set
    /// (exit code 3). Putting back an untouched file only adds a version with the same bytes.
    async fn on_failure<T>(
        &self,
        s3: &aws_sdk_s3::Client,
        changes: impl std::future::Future<Output = Result<T, SyncError>>,
    ) -> Result<T, StepError> {
        let error = match changes.await {
            Ok(done) => return Ok(done),
            Err(error) => error,
        };
        let place = format!("s3://{}/{}", self.place.bucket, self.place.prefix);
        match self.apply(s3).await {
            Ok(()) => Err(StepError::new(
                ErrorClass::RolledBack,
                format!("{error}; the previous files under {place} were put back"),
            )
            .rolled_back()),
            Err(undo) => Err(UndoFailed::error_then(
                error,
                format!("the previous files under {place}"),
                undo,
                ": it may hold a mix of both sets; rerun to converge",
            )),
        }
    }
}

/// The files of `artifact`'s live release in this environment, by path, when it was released
/// to `place`.
async fn recorded(
    cx: &StepContext<'_>,
    artifact: &str,
    place: &Place,
) -> Result<Recorded, StepError> {
    let clients = cx.clients();
    let live = Ledger::new(clients.s3.clone(), &clients.target)
        .pointer(artifact, PointerKind::Live)
        .await?;
    // A release recorded elsewhere (the configuration moved the files) says nothing about
    // what this bucket and prefix hold.
    let here = format!("s3://{}/{}", place.bucket, place.prefix);
    let Some(artifact_ref) = live.and_then(|p| p.value.artifact_ref) else {
        return Ok(Recorded::default());
    };
    let Some(recorded) = artifact_ref
        .decode::<super::DagsRef>()
        .filter(|r| r.location.as_deref() == Some(here.as_str()))
    else {
        return Ok(Recorded::default());
    };
    let files = super::manifest::files(&clients.s3, &artifact_ref).await?;
    let manifest = recorded.manifest;
    Ok(Recorded {
        files: files.into_iter().map(|f| (f.path.clone(), f)).collect(),
        manifest,
    })
}

/// Version ids of what the bucket holds now for the files `diff` keeps, changes or deletes:
/// from the live release when its file has the content the bucket has, else from one listing
/// of the versions.
async fn known_versions(
    s3: &aws_sdk_s3::Client,
    place: &Place,
    recorded: &HashMap<String, DagFile>,
    manifest: &[(String, String)],
    diff: &Diff,
) -> Result<HashMap<String, String>, StepError> {
    let sha: HashMap<&str, &str> = manifest
        .iter()
        .map(|(p, s)| (p.as_str(), s.as_str()))
        .collect();
    let mut versions = HashMap::new();
    let mut missing = false;
    let paths = || {
        diff.unchanged
            .iter()
            .chain(&diff.changed)
            .chain(&diff.deleted)
    };
    for path in paths() {
        let unchanged = diff.unchanged.contains(path);
        let known = recorded
            .get(path)
            .filter(|r| !unchanged || sha.get(path.as_str()) == Some(&r.sha256.as_str()))
            .and_then(|r| r.version_id.clone());
        match known {
            Some(v) => {
                versions.insert(path.clone(), v);
            }
            None => missing = true,
        }
    }
    if missing {
        let latest = place.latest_versions(s3).await?;
        for path in paths() {
            if let Some(v) = latest.get(path) {
                versions.insert(path.clone(), v.clone());
            }
        }
    }
    Ok(versions)
}

/// Refuses to delete more than the configured share of the bucket's files.
fn check_deletes(
    (share, allow): (f64, bool),
    place: &Place,
    diff: &Diff,
    total: usize,
) -> Result<(), SyncError> {
    let allowed =
        allow || std::env::var(ALLOW_MASS_DELETE_ENV).is_ok_and(|v| v == "1" || v == "true");
    let deletes = diff.deleted.len();
    if allowed || deletes == 0 || (deletes as f64) <= share * total as f64 {
        return Ok(());
    }
    Err(SyncError::MassDelete {
        bucket: place.bucket.clone(),
        prefix: place.prefix.clone(),
        deletes,
        total,
        share,
    })
}

/// What a sync or promotion left under `place`.
struct Synced<'a> {
    place: &'a Place,
    /// Path and SHA-256 of every file.
    manifest: &'a [(String, String)],
    /// S3 version of every file.
    versions: &'a HashMap<String, String>,
    diff: &'a Diff,
    /// How to put the previous files back.
    undo: SyncUndo,
}

/// The record and undo of `sync`; `live_manifest` is the live release's manifest object,
/// not written again when the release has the same files.
async fn done(
    cx: &StepContext<'_>,
    artifact: &str,
    sync: Synced<'_>,
    live_manifest: Option<&str>,
) -> Result<Done, StepError> {
    let Synced {
        place,
        manifest,
        versions,
        diff,
        undo: data,
    } = sync;
    let manifest: Vec<DagFile> = manifest
        .iter()
        .map(|(path, sha256)| DagFile {
            path: path.clone(),
            sha256: sha256.clone(),
            version_id: versions.get(path).cloned(),
        })
        .collect();
    let undo = data.as_undo(diff)?;
    let location = format!("s3://{}/{}", place.bucket, place.prefix);
    let content_hash = sync::content_hash(&manifest);
    let release = super::manifest::Release {
        artifact,
        content_hash,
        files: manifest,
        location,
    };
    let artifact_ref = super::manifest::reference(cx.clients(), release, live_manifest).await?;
    Ok(Done {
        record: StepOutput {
            artifact_ref: Some(artifact_ref),
            touched: vec![AwsObject {
                kind: "s3-prefix".into(),
                id: format!("s3://{}/{}", place.bucket, place.prefix),
            }],
            ..StepOutput::default()
        },
        undo,
    })
}

fn note(report: &DagsReport, checked: usize, started: Instant) -> String {
    format!(
        "{}: {} files checked, {} uploaded ({} bytes), {} deleted, {} unchanged in {:.1}s",
        report.artifact,
        checked,
        report.uploaded.len(),
        report.bytes_uploaded,
        report.deleted.len(),
        report.unchanged,
        started.elapsed().as_secs_f64()
    )
}
