//! The steps the engine runs itself: the account check, the lock (with every handler's
//! preflight before it and the plan's preconditions after it), the records and the unlock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use super::record::RunState;
use super::{CheckContext, Done, Engine, EngineError, Preflight, StepContext, StepError};
use crate::events::Event;
use crate::ledger::PointerKind;
use crate::lock::EnvLock;
use crate::plan::core::{AcquireLock, RecordRelease, ReleaseLock, VerifyAccount};
use crate::plan::{ActionInput, Plan, Step};

/// Why a step did not complete.
pub(super) enum Failure {
    /// The step failed.
    Step(StepError),
    /// The engine refused to go on (preflight, preconditions).
    Engine(EngineError),
    /// The step did not stop within the cancel grace and was dropped.
    Abandoned,
    /// Every preflight found nothing to change: the run ends before the lock.
    Unchanged,
}

const CORE: [&str; 4] = [
    VerifyAccount::TYPE,
    AcquireLock::TYPE,
    RecordRelease::TYPE,
    ReleaseLock::TYPE,
];

/// Whether `action` is one of the engine's own.
pub(super) fn is_core(action: &str) -> bool {
    CORE.contains(&action)
}

/// Checks a core step's inputs.
pub(super) fn check(step: &Step, cx: &CheckContext<'_>) -> Result<(), EngineError> {
    match step.action.name() {
        VerifyAccount::TYPE => cx.input::<VerifyAccount>(step).map(drop),
        AcquireLock::TYPE => cx.input::<AcquireLock>(step).map(drop),
        RecordRelease::TYPE => cx.input::<RecordRelease>(step).map(drop),
        _ => cx.input::<ReleaseLock>(step).map(drop),
    }
}

impl Engine {
    /// Runs a core step.
    pub(super) async fn run_core(
        &self,
        step: &Step,
        cx: &StepContext<'_>,
        state: &RunState,
    ) -> Result<Done, Failure> {
        match step.action.name() {
            VerifyAccount::TYPE => {
                let identity = self.clients.verify_account().await.map_err(step_failure)?;
                if let Ok(mut slot) = state.identity.lock() {
                    *slot = Some(identity);
                }
            }
            AcquireLock::TYPE => self.lock(cx, state).await?,
            RecordRelease::TYPE => self.record(step, cx.plan, state).await?,
            _ => self.unlock(cx.plan, state).await?,
        }
        Ok(Done::nothing())
    }

    /// Preflight of every step, the lock, then the preconditions.
    async fn lock(&self, cx: &StepContext<'_>, state: &RunState) -> Result<(), Failure> {
        let plan = cx.plan;
        let lock = EnvLock::new(
            self.ledger.clone(),
            &plan.environment,
            self.options.lock.clone(),
        );
        // What the preflights read stays current if the lock does not change hands before
        // this run takes it; an unreadable lock just means reading again.
        let observed = lock.observe().await.ok();
        let found = self.preflight(cx).await.map_err(Failure::Engine)?;
        let kinds: Vec<Preflight> = found.iter().map(|(_, p)| *p).collect();
        if plan.operation.changes_live() && unchanged(&kinds) {
            // A saved plan made before someone else's release is stale, not unchanged.
            self.check_preconditions(plan)
                .await
                .map_err(Failure::Engine)?;
            return Err(Failure::Unchanged);
        }
        let actor = state.actor(&self.options.actor);
        let operation = format!("{} plan {}", plan.operation.as_str(), plan.id);
        let acquire = lock.acquire(
            &actor,
            &operation,
            self.options.wait_lock,
            self.reporter.as_ref(),
        );
        // Waiting for someone else's lock stops with the run; a lease this run took in the
        // instant it was cancelled expires on its own.
        let guard = tokio::select! {
            guard = acquire => guard.map_err(step_failure)?,
            () = cx.cancelled() => {
                return Err(Failure::Step(StepError::failure("stopped while waiting for the lock")));
            }
        };
        let current = observed.is_some_and(|etag| etag.as_deref() == guard.replaced());
        state.preflight_current.store(current, Ordering::SeqCst);
        let lease_id = guard.lease_id().to_owned();
        *state.lock.lock().await = Some(guard);
        self.open_journal(cx, state, lease_id)
            .await
            .map_err(Failure::Engine)?;
        self.check_preconditions(plan)
            .await
            .map_err(Failure::Engine)?;
        // What the preflights read still holds only if nobody else ran in between.
        if plan.operation.changes_live() && state.preflight_current.load(Ordering::SeqCst) {
            self.leave_alone(unchanged_artifacts(&found), state);
        }
        Ok(())
    }

    /// Marks `artifacts` as left alone by this run, and says so.
    fn leave_alone(&self, artifacts: BTreeSet<String>, state: &RunState) {
        for artifact in &artifacts {
            self.reporter.report(&Event::Note {
                message: format!(
                    "{artifact}: unchanged: what it would put in place already runs and is its \
                     live release; left alone, not recorded"
                ),
            });
        }
        *state
            .unchanged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = artifacts;
    }

    /// Reads the environment's journal, settles a dead run's, and starts this run's.
    async fn open_journal(
        &self,
        cx: &StepContext<'_>,
        state: &RunState,
        lease_id: String,
    ) -> Result<(), EngineError> {
        let found = super::journal::read(&self.ledger).await?;
        if let Some(dead) = found.dead {
            // What the preflights read may have been the dead run's work: read it again.
            state.preflight_current.store(false, Ordering::SeqCst);
            self.settle(cx, dead).await?;
        }
        let doc = super::journal::Doc {
            schema: super::journal::JOURNAL_SCHEMA,
            plan: cx.plan.clone(),
            lease_id,
            actor: state.actor(&self.options.actor),
            started_at: time::OffsetDateTime::now_utc(),
            finished: false,
            committing: false,
            entries: Vec::new(),
        };
        state.journal.begin(&self.ledger, doc, found.etag).await?;
        Ok(())
    }

    /// Runs every handler's preflight, in plan order; the first failure stops. What each
    /// found, for the steps that have a handler.
    /// Every handled step's preflight, with the step's artifact.
    async fn preflight(
        &self,
        cx: &StepContext<'_>,
    ) -> Result<Vec<(Option<String>, Preflight)>, EngineError> {
        let mut found = Vec::new();
        for step in &cx.plan.steps {
            let Some(handler) = self.handler(step.action.name()) else {
                continue;
            };
            match handler.preflight(step, cx).await {
                Ok(preflight) => found.push((step.artifact.clone(), preflight)),
                Err(source) => {
                    return Err(EngineError::Preflight {
                        artifact: step.artifact_name().to_owned(),
                        source: Box::new(source),
                    });
                }
            }
        }
        Ok(found)
    }

    async fn check_preconditions(&self, plan: &Plan) -> Result<(), EngineError> {
        for pre in &plan.preconditions {
            let now = self.ledger.pointer(&pre.artifact, pre.pointer).await?;
            let now_id = now.map(|p| p.value.release_id);
            if now_id != pre.release_id {
                return Err(EngineError::Stale {
                    detail: format!(
                        "{} of `{}` was {} and is now {}",
                        match pre.pointer {
                            PointerKind::Live => "the live release",
                            PointerKind::Published => "the published release",
                        },
                        pre.artifact,
                        pre.release_id.as_deref().unwrap_or("none"),
                        now_id.as_deref().unwrap_or("none")
                    ),
                });
            }
        }
        Ok(())
    }

    async fn record(&self, step: &Step, plan: &Plan, state: &RunState) -> Result<(), Failure> {
        if !state.committing.swap(true, Ordering::SeqCst) {
            state.journal.committing(self.reporter.as_ref()).await;
        }
        let input: RecordRelease = step
            .action
            .input()
            .map_err(|e| Failure::Step(StepError::failure(e)))?;
        let Some(artifact) = &step.artifact else {
            return Ok(());
        };
        let record = self.release_record(
            plan,
            state,
            artifact,
            &input,
            crate::ledger::Outcome::Succeeded,
        );
        let Err(err) = self.commit(state, record.clone()).await else {
            return Ok(());
        };
        // The work is done and stays: no failed record may say otherwise. Say what runs.
        state.artifact(artifact, |run| run.unrecorded = true);
        let what = self.unrecorded(&record, &err).await;
        Err(Failure::Step(StepError::failure(what)))
    }

    async fn unlock(&self, plan: &Plan, state: &RunState) -> Result<(), Failure> {
        self.give_back(plan, state).await;
        Ok(())
    }

    /// Gives the lock back. When that fails even after the ledger's retries, the run's own
    /// outcome stands: the lease is named, with when it expires, and left to expire.
    pub(super) async fn give_back(&self, plan: &Plan, state: &RunState) {
        let Some(guard) = state.lock.lock().await.take() else {
            return;
        };
        state.journal.finish(self.reporter.as_ref()).await;
        let lease_id = guard.lease_id().to_owned();
        let expires_at = guard.expires_at().await;
        match guard.release().await {
            Ok(()) => self.reporter.report(&Event::LockReleased {
                environment: plan.environment.clone(),
            }),
            Err(err) => {
                tracing::debug!(%err, lease = %lease_id, "could not give the lock back");
                self.reporter.report(&Event::LockKept {
                    environment: plan.environment.clone(),
                    lease_id,
                    expires_at: crate::lock::rfc3339(expires_at),
                    error: err.to_string(),
                });
            }
        }
    }
}

/// Whether the preflights say the run would change nothing: none changes anything, and one
/// at least put its check to it (a plan of gates alone is not a no-op to skip).
fn unchanged(found: &[Preflight]) -> bool {
    found.iter().all(|p| *p != Preflight::Changes) && found.contains(&Preflight::Unchanged)
}

/// The artifacts whose own preflights say they would change nothing (as [`unchanged`] says of
/// a whole run).
fn unchanged_artifacts(found: &[(Option<String>, Preflight)]) -> BTreeSet<String> {
    let mut by_artifact: BTreeMap<&str, Vec<Preflight>> = BTreeMap::new();
    for (artifact, preflight) in found {
        if let Some(artifact) = artifact {
            by_artifact.entry(artifact).or_default().push(*preflight);
        }
    }
    by_artifact
        .into_iter()
        .filter(|(_, found)| unchanged(found))
        .map(|(artifact, _)| artifact.to_owned())
        .collect()
}

fn step_failure(error: impl Into<StepError>) -> Failure {
    Failure::Step(error.into())
}
