//! Settling a dead run: when this run takes the lock and finds the journal of a run that never
//! finished (its process was killed, its machine lost; its lease expired or was released with
//! `deploy lock ENV release`), it undoes what that run had changed, newest first, with the
//! same handlers' undo a failure runs (a deployment followed back to the previous revision, an
//! alias with routing put back on one version, a DAG prefix put back to its recorded
//! versions), records each of that run's artifacts as `abandoned` with what was undone and
//! what is left, and only then does its own work. A run that died while it was writing its
//! records had finished its work: nothing of it is undone, and the ledger's own rules settle a
//! record whose pointer never moved.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::journal::Doc;
use super::record::RunState;
use super::{Engine, EngineError, StepContext};
use crate::events::Event;
use crate::ledger::Outcome;
use crate::plan::Plan;
use crate::plan::core::RecordRelease;

/// What settling did for one artifact of the dead run.
#[derive(Debug, Default)]
struct Settled {
    undone: Vec<String>,
    /// What stays changed: the parts its steps declared irreversible, and the undos that
    /// failed.
    left: Vec<String>,
    /// Whether an undo failed: what the environment holds is then not known.
    failed: bool,
}

impl Engine {
    /// Settles `dead` (an unfinished journal); fails when an undo failed (a part its steps
    /// declared irreversible stays, is recorded, and does not stop this run).
    pub(super) async fn settle(&self, cx: &StepContext<'_>, dead: Doc) -> Result<(), EngineError> {
        let started = crate::lock::rfc3339(dead.started_at);
        self.reporter.report(&Event::Note {
            message: format!(
                "the {} run of plan {} ({}, started {started}) ended without finishing; \
                 settling what it left first",
                dead.plan.operation.as_str(),
                dead.plan.id,
                dead.actor,
            ),
        });
        if dead.committing {
            // Its work was done and it was writing its records: the ledger's own rules settle
            // a record whose pointer never moved (docs/ledger.md); nothing is undone.
            self.reporter.report(&Event::Note {
                message: "it had done its work and was recording it: nothing to undo".into(),
            });
            return Ok(());
        }
        let settled = self.undo_dead(cx, &dead).await;
        self.record_abandoned(cx.plan, &dead, &settled).await;
        if !settled.values().any(|s| s.failed) {
            return Ok(());
        }
        let left: Vec<String> = settled.values().flat_map(|s| s.left.clone()).collect();
        Err(EngineError::Unsettled {
            plan: dead.plan.id.clone(),
            left,
        })
    }

    /// Runs the undo of every change the journal names, newest first.
    async fn undo_dead(&self, cx: &StepContext<'_>, dead: &Doc) -> BTreeMap<String, Settled> {
        // The undo runs to its end whatever happens to this run.
        let cancel = CancellationToken::new();
        let dead_cx = StepContext {
            plan: &dead.plan,
            cancel: &cancel,
            current: None,
            journal: None,
            ..*cx
        };
        let mut settled: BTreeMap<String, Settled> = BTreeMap::new();
        for entry in dead.entries.iter().rev() {
            let Some(step) = dead.plan.steps.iter().find(|s| s.id == entry.step) else {
                continue;
            };
            let here = settled.entry(step.artifact_name().to_owned()).or_default();
            if let Some(left) = &entry.left {
                here.left.push(format!("{} ({left})", step.description));
            }
            let Some(data) = &entry.data else {
                continue;
            };
            self.reporter.report(&Event::UndoStarted {
                step: step.id.clone(),
                description: entry.description.clone(),
            });
            let result = match self.handler(step.action.name()) {
                Some(handler) => handler.undo(step, data, &dead_cx).await,
                None => Err(super::StepError::failure(format!(
                    "this deploy has no handler for {}",
                    step.action.name()
                ))),
            };
            match result {
                Ok(()) => {
                    self.reporter.report(&Event::UndoFinished {
                        step: step.id.clone(),
                    });
                    here.undone.push(entry.description.clone());
                }
                Err(err) => {
                    self.reporter.report(&Event::UndoFailed {
                        step: step.id.clone(),
                        error: err.to_string(),
                    });
                    here.left
                        .push(format!("{} failed: {err}", entry.description));
                    here.failed = true;
                }
            }
        }
        settled
    }

    /// An `abandoned` record for each artifact of the dead run (which had recorded none).
    async fn record_abandoned(&self, own: &Plan, dead: &Doc, settled: &BTreeMap<String, Settled>) {
        let state = RunState::default();
        for step in &dead.plan.steps {
            let (Some(artifact), Ok(input)) =
                (&step.artifact, step.action.input::<RecordRelease>())
            else {
                continue;
            };
            let here = settled.get(artifact);
            let outcome = Outcome::Abandoned {
                reason: "the run stopped without finishing (its process died or was killed)"
                    .to_owned(),
                settled_by: own.id.clone(),
                undone: here.map(|s| s.undone.clone()).unwrap_or_default(),
                left: here.map(|s| s.left.clone()).unwrap_or_default(),
            };
            let mut record = self.release_record(&dead.plan, &state, artifact, &input, outcome);
            record.actor = dead.actor.clone();
            record.started_at = dead.started_at;
            record.finished_at = OffsetDateTime::now_utc();
            if let Err(err) = self.commit(&state, record).await {
                tracing::warn!(%err, artifact, "could not record the abandoned release");
            }
        }
    }
}
