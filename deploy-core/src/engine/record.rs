//! The run's state shared by its steps, and the release records written from it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use time::OffsetDateTime;

use super::{Engine, RecordedRelease, StepOutput};
use crate::aws::CallerIdentity;
use crate::events::Event;
use crate::ledger::{Actor, LedgerError, Outcome, ReleaseRecord, SCHEMA, new_release_id};
use crate::lock::LockGuard;
use crate::plan::Plan;
use crate::plan::core::RecordRelease;

/// One artifact's part of a run.
#[derive(Debug, Default)]
pub(super) struct ArtifactRun {
    pub started_at: Option<OffsetDateTime>,
    pub output: StepOutput,
    pub recorded: bool,
    /// A change of this artifact was undone (by its step's undo or by AWS).
    pub undone: bool,
    /// What stays changed after the undo.
    pub left: Vec<String>,
    /// Its work is done but its record could not be written.
    pub unrecorded: bool,
}

/// What the steps of one run share.
#[derive(Default)]
pub(super) struct RunState {
    pub identity: Mutex<Option<CallerIdentity>>,
    pub lock: tokio::sync::Mutex<Option<LockGuard>>,
    pub artifacts: Mutex<BTreeMap<String, ArtifactRun>>,
    pub releases: Mutex<Vec<RecordedRelease>>,
    /// Set when the first record is written: from then on a failure is not undone, since the
    /// ledger already says what runs.
    pub committing: AtomicBool,
    /// Set when the lock did not change hands between the start of the preflights and this
    /// run taking it ([`StepContext::preflight_reads_current`]).
    pub preflight_current: AtomicBool,
    /// The run's journal in the state bucket.
    pub journal: super::journal::Journal,
    /// Artifacts whose every step found nothing to change, in a run that changes others:
    /// their steps do not run and they are not recorded.
    pub unchanged: Mutex<std::collections::BTreeSet<String>>,
}

impl RunState {
    /// Runs `f` on `artifact`'s part of the run.
    pub fn artifact<R>(&self, artifact: &str, f: impl FnOnce(&mut ArtifactRun) -> R) -> R {
        let mut artifacts = self
            .artifacts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(artifacts.entry(artifact.to_owned()).or_default())
    }

    pub fn actor(&self, base: &Actor) -> Actor {
        let mut actor = base.clone();
        if let Ok(identity) = self.identity.lock()
            && let Some(identity) = identity.as_ref()
        {
            actor.aws_arn = Some(identity.arn.clone());
        }
        actor
    }
}

impl Engine {
    /// The record of `artifact` with `outcome`, from what the run's steps produced.
    pub(super) fn release_record(
        &self,
        plan: &Plan,
        state: &RunState,
        artifact: &str,
        input: &RecordRelease,
        outcome: Outcome,
    ) -> ReleaseRecord {
        let actor = state.actor(&self.options.actor);
        let now = OffsetDateTime::now_utc();
        let (started_at, output) =
            state.artifact(artifact, |run| (run.started_at, run.output.clone()));
        ReleaseRecord {
            schema: SCHEMA,
            id: new_release_id(now),
            project: plan.project.clone(),
            environment: plan.environment.clone(),
            artifact: artifact.to_owned(),
            kind: input.kind,
            operation: input.operation,
            version: output.version.or_else(|| plan.version.clone()),
            artifact_ref: output.artifact_ref,
            source_environment: output.source_environment,
            started_at: started_at.unwrap_or(now),
            finished_at: now,
            actor,
            touched: output.touched,
            outcome,
            previous: None,
            restored: output.restored,
            commit_time: plan.commit_times.get(artifact).and_then(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            }),
            dirty: plan.dirty,
            plan_id: Some(plan.id.clone()),
        }
    }

    /// Writes `record` and moves the pointers; reports it and keeps it for the run's report.
    pub(super) async fn commit(
        &self,
        state: &RunState,
        mut record: ReleaseRecord,
    ) -> Result<(), LedgerError> {
        let key = self.ledger.commit(&mut record).await?;
        self.reporter.report(&Event::ReleaseRecorded {
            artifact: record.artifact.clone(),
            release_id: record.id.clone(),
            outcome: record.outcome.name().into(),
        });
        state.artifact(&record.artifact, |run| run.recorded = true);
        if let Ok(mut releases) = state.releases.lock() {
            let content_id = record
                .artifact_ref
                .as_ref()
                .map(|r| r.content_id().to_owned());
            releases.push(RecordedRelease {
                artifact: record.artifact,
                release_id: record.id,
                key,
                outcome: record.outcome,
                version: record.version,
                content_id,
            });
        }
        Ok(())
    }

    /// What runs after the work of `record` is done but its commit failed with `err`: the
    /// version and content now live, and what the ledger says (the record is read back to
    /// tell whether it landed).
    pub(super) async fn unrecorded(&self, record: &ReleaseRecord, err: &LedgerError) -> String {
        let key = self.ledger.record_key(record);
        let previous = match self
            .ledger
            .pointer(&record.artifact, crate::ledger::PointerKind::Live)
            .await
        {
            Ok(Some(pointer)) => format!(
                "the live pointer names release {}",
                pointer.value.release_id
            ),
            Ok(None) => "the live pointer names no release".to_owned(),
            Err(_) => "the live pointer could not be read".to_owned(),
        };
        let ledger = match self.ledger.stored_record(&key).await {
            Ok(Some(_)) => format!(
                "its record {key} was written and {previous}: the next deploy of {} moves it",
                record.environment
            ),
            Ok(None) => format!("no record was written and {previous}"),
            Err(_) => format!("whether its record {key} was written is unknown and {previous}"),
        };
        let version = record
            .version
            .as_deref()
            .map_or_else(String::new, |v| format!("version {v}, "));
        let content = record
            .artifact_ref
            .as_ref()
            .map_or("", crate::ledger::ArtifactRef::content_id);
        format!(
            "the {} of {} is done and {}{content} runs in {}, but the ledger could not record it \
             ({err}); {ledger}",
            record.operation.as_str(),
            record.artifact,
            version,
            record.environment
        )
    }

    /// Writes a record for every artifact whose steps started but was not recorded: rolled
    /// back when every change it made was undone (or it made none and the run undid every
    /// change: the run says "every change was rolled back" and exits 3, and its records say
    /// the same), failed otherwise.
    pub(super) async fn record_failures(
        &self,
        plan: &Plan,
        state: &RunState,
        error: &str,
        all_undone: bool,
    ) {
        if state.lock.lock().await.is_none() {
            // Without the lock this run must not write to the ledger.
            return;
        }
        for step in &plan.steps {
            if !step.action.is::<RecordRelease>() {
                continue;
            }
            let (Some(artifact), Ok(input)) =
                (&step.artifact, step.action.input::<RecordRelease>())
            else {
                continue;
            };
            let outcome = state.artifact(artifact, |run| {
                if run.started_at.is_none() || run.recorded || run.unrecorded {
                    None
                } else if (run.undone || all_undone) && run.left.is_empty() {
                    Some(Outcome::RolledBack {
                        reason: error.to_owned(),
                    })
                } else {
                    Some(Outcome::Failed {
                        error: error.to_owned(),
                    })
                }
            });
            let Some(outcome) = outcome else {
                continue;
            };
            let record = self.release_record(plan, state, artifact, &input, outcome);
            if let Err(err) = self.commit(state, record).await {
                tracing::warn!(%err, artifact, "could not record the failed release");
            }
        }
    }
}
