//! One run of a plan: start every step whose needs are done, collect results as they come,
//! and on a failure or a cancel stop, undo what completed (newest first), record and unlock.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::core::Failure;
use super::outputs::{Outputs, Sections};
use super::record::RunState;
use super::{
    ApplyFailure, ApplyReport, Done, Engine, EngineError, Rollback, StepContext, StepError,
    StepReport, StepStatus, Undo,
};
use crate::events::Event;
use crate::plan::core::RecordRelease;
use crate::plan::{Plan, Step};

type Finished = (usize, Result<Done, Failure>, u64);

/// Where each step of the run stands.
struct Schedule<'p> {
    plan: &'p Plan,
    status: Vec<Option<StepStatus>>,
    elapsed: Vec<u64>,
    started: Vec<bool>,
    /// Completed steps in completion order, with their undo.
    completed: Vec<(usize, Undo)>,
    /// The first failure: the step and why.
    failure: Option<(usize, Failure)>,
    /// The preflights found nothing to change: nothing more starts.
    unchanged: bool,
}

impl<'p> Schedule<'p> {
    fn new(plan: &'p Plan) -> Schedule<'p> {
        let n = plan.steps.len();
        Schedule {
            plan,
            status: vec![None; n],
            elapsed: vec![0; n],
            started: vec![false; n],
            completed: Vec::new(),
            failure: None,
            unchanged: false,
        }
    }

    /// Steps not started whose needs are all done.
    fn ready(&self) -> Vec<usize> {
        (0..self.plan.steps.len())
            .filter(|&i| !self.started[i] && self.needs_done(&self.plan.steps[i]))
            .collect()
    }

    /// Whether every step `step` needs completed.
    fn needs_done(&self, step: &Step) -> bool {
        step.needs.iter().all(|id| {
            self.plan
                .steps
                .iter()
                .position(|s| &s.id == id)
                .is_some_and(|i| finished(self.status[i]))
        })
    }

    /// Whether every step completed.
    fn all_done(&self) -> bool {
        self.status.iter().all(|s| finished(*s))
    }

    fn report(&self) -> Vec<StepReport> {
        self.plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| StepReport {
                step: step.id.clone(),
                description: step.description.clone(),
                status: self.status[i].unwrap_or(StepStatus::Skipped),
                elapsed_ms: self.elapsed[i],
            })
            .collect()
    }
}

/// Whether a step is done with: completed, or left alone with its unchanged artifact.
fn finished(status: Option<StepStatus>) -> bool {
    matches!(status, Some(StepStatus::Done | StepStatus::Unchanged))
}

/// Applies `plan` with `engine` until it ends or `external` is cancelled.
pub(super) async fn apply(
    engine: &Engine,
    plan: &Plan,
    external: &CancellationToken,
) -> Result<ApplyReport, Box<ApplyFailure>> {
    let started = Instant::now();
    let mut report = ApplyReport {
        plan_id: plan.id.clone(),
        steps: Vec::new(),
        releases: Vec::new(),
        identity: None,
        unchanged: false,
        unchanged_artifacts: Vec::new(),
        sections: Default::default(),
    };
    if let Err(error) = engine.check(plan) {
        return Err(Box::new(ApplyFailure {
            environment: plan.environment.clone(),
            report,
            error,
        }));
    }
    engine.reporter.report(&Event::PlanStarted {
        plan_id: plan.id.clone(),
        environment: plan.environment.clone(),
        steps: plan.steps.len(),
    });
    let (outputs, sections, state) = (Outputs::default(), Sections::default(), RunState::default());
    for handler in engine.handlers.values() {
        handler
            .report_sections()
            .iter()
            .for_each(|s| sections.declare(s));
    }
    let cancel = external.child_token();
    let cx = StepContext {
        plan,
        clients: &engine.clients,
        sources: &engine.sources,
        reporter: &engine.reporter,
        outputs: &outputs,
        sections: &sections,
        cancel: &cancel,
        source_root: &engine.options.source_root,
        preflight_current: &state.preflight_current,
        current: None,
        journal: Some(&state.journal),
    };
    let mut schedule = Schedule::new(plan);
    engine.schedule(&mut schedule, &cx, &state).await;
    let error = engine
        .conclude(&mut schedule, &cx, &state, external.is_cancelled())
        .await;
    report.steps = schedule.report();
    report.releases =
        std::mem::take(&mut *state.releases.lock().unwrap_or_else(|e| e.into_inner()));
    report.identity = state.identity.lock().ok().and_then(|mut i| i.take());
    report.sections = sections.take();
    report.unchanged = schedule.unchanged;
    report.unchanged_artifacts = state
        .unchanged
        .lock()
        .map(|set| set.iter().cloned().collect())
        .unwrap_or_default();
    engine.reporter.report(&Event::PlanFinished {
        success: error.is_none(),
        elapsed_ms: millis(started.elapsed()),
    });
    match error {
        None => Ok(report),
        Some(error) => Err(Box::new(ApplyFailure {
            environment: plan.environment.clone(),
            report,
            error,
        })),
    }
}

impl Engine {
    /// Runs steps as their needs complete until none is left or a failure or cancel stops it.
    async fn schedule(&self, schedule: &mut Schedule<'_>, cx: &StepContext<'_>, state: &RunState) {
        let mut running = FuturesUnordered::new();
        loop {
            // Once the first record is written every artifact's work is done: a cancel no
            // longer stops the records and the unlock that follow.
            let committing = state.committing.load(std::sync::atomic::Ordering::SeqCst);
            let going = schedule.failure.is_none() && !schedule.unchanged;
            if going && (committing || !cx.cancel.is_cancelled()) {
                // A step left alone is finished at once: what needs it may be ready now.
                let mut again = true;
                while again {
                    again = false;
                    for i in schedule.ready() {
                        schedule.started[i] = true;
                        if left_alone(&cx.plan.steps[i], state) {
                            schedule.status[i] = Some(StepStatus::Unchanged);
                            again = true;
                            continue;
                        }
                        running.push(self.timed_step(i, &cx.plan.steps[i], cx, state));
                    }
                }
            }
            let Some((i, result, elapsed)) = running.next().await else {
                break;
            };
            schedule.elapsed[i] = elapsed;
            let step = &cx.plan.steps[i];
            match result {
                Ok(done) => {
                    if let Some(artifact) = &step.artifact {
                        state.artifact(artifact, |run| run.output.merge(done.record));
                    }
                    schedule.status[i] = Some(StepStatus::Done);
                    schedule.completed.push((i, done.undo));
                }
                Err(Failure::Unchanged) => {
                    schedule.status[i] = Some(StepStatus::Skipped);
                    schedule.unchanged = true;
                    self.reporter.report(&Event::Unchanged {
                        environment: cx.plan.environment.clone(),
                    });
                }
                Err(failure) => {
                    schedule.status[i] = Some(StepStatus::Failed);
                    if let Failure::Abandoned = failure {
                        let what = "stopped before it finished; what it changed is unknown";
                        left_changed(cx.plan, i, state, what);
                    }
                    if let Failure::Step(error) = &failure
                        && let Some(what) = error.left()
                    {
                        left_changed(cx.plan, i, state, what);
                    }
                    self.reporter.report(&Event::StepFailed {
                        step: step.id.clone(),
                        error: failure_text(&failure),
                    });
                    if schedule.failure.is_none() {
                        schedule.failure = Some((i, failure));
                    }
                    cx.cancel.cancel();
                }
            }
        }
    }

    /// One step with its events, its wall time and the cancel grace.
    async fn timed_step(
        &self,
        i: usize,
        step: &Step,
        cx: &StepContext<'_>,
        state: &RunState,
    ) -> Finished {
        let started = Instant::now();
        self.reporter.report(&Event::StepStarted {
            step: step.id.clone(),
            artifact: step.artifact.clone(),
            description: step.description.clone(),
        });
        if let Some(artifact) = &step.artifact {
            state.artifact(artifact, |run| {
                run.started_at.get_or_insert_with(OffsetDateTime::now_utc);
            });
        }
        let grace = self.options.cancel_grace;
        let span = tracing::info_span!("step", id = %step.id, action = step.action.name());
        let result = tokio::select! {
            result = self.run_step(step, cx, state).instrument(span) => result,
            () = async { cx.cancel.cancelled().await; tokio::time::sleep(grace).await } => {
                Err(Failure::Abandoned)
            }
        };
        // Noted here, inside the step's own future: the scheduler must not wait on the journal
        // while other steps, which may hold it, are not being polled.
        if let Ok(done) = &result {
            state
                .journal
                .note(step, &done.undo, self.reporter.as_ref())
                .await;
        }
        let elapsed_ms = millis(started.elapsed());
        if result.is_ok() {
            self.reporter.report(&Event::StepFinished {
                step: step.id.clone(),
                elapsed_ms,
            });
        }
        (i, result, elapsed_ms)
    }

    async fn run_step(
        &self,
        step: &Step,
        cx: &StepContext<'_>,
        state: &RunState,
    ) -> Result<Done, Failure> {
        if let Some(lock) = state.lock.lock().await.as_ref() {
            lock.check().map_err(|e| Failure::Step(e.into()))?;
        }
        for hook in &self.intercepts {
            hook(step).map_err(Failure::Step)?;
        }
        if super::core::is_core(step.action.name()) {
            return self.run_core(step, cx, state).await;
        }
        let Some(handler) = self.handler(step.action.name()) else {
            // Engine::check refuses such plans before anything runs.
            return Err(Failure::Step(StepError::failure(format!(
                "no handler for {}",
                step.action.name()
            ))));
        };
        let cx = StepContext {
            current: Some(step),
            ..*cx
        };
        handler.run(step, &cx).await.map_err(Failure::Step)
    }

    /// After the last step: on a failure or cancel, undo, record and unlock; the run's error.
    async fn conclude(
        &self,
        schedule: &mut Schedule<'_>,
        cx: &StepContext<'_>,
        state: &RunState,
        cancelled: bool,
    ) -> Option<EngineError> {
        let failure = schedule.failure.take();
        if failure.is_none() && schedule.unchanged {
            return None;
        }
        if failure.is_none() && (!cancelled || schedule.all_done()) {
            if cancelled {
                self.reporter.report(&Event::Note {
                    message: "the stop came after the work was done: the run finished".into(),
                });
            }
            return None;
        }
        let committing = state.committing.load(std::sync::atomic::Ordering::SeqCst);
        if let Some((i, Failure::Step(error))) = &failure
            && error.is_rolled_back()
            && let Some(artifact) = &cx.plan.steps[*i].artifact
        {
            state.artifact(artifact, |run| run.undone = true);
        }
        if let Some((i, Failure::Abandoned)) = &failure {
            left_changed(
                cx.plan,
                *i,
                state,
                "stopped before it finished; what it changed is unknown",
            );
        }
        let rollback = if committing {
            unrecorded_work(schedule, state)
        } else {
            self.unwind(schedule, cx, state).await
        };
        let error = engine_error(cx.plan, failure, rollback, cancelled);
        let all_undone = error.rollback() == Some(&Rollback::Complete);
        self.record_failures(cx.plan, state, &error.to_string(), all_undone)
            .await;
        self.give_back(cx.plan, state).await;
        Some(error)
    }

    /// Undoes the completed steps, newest first.
    async fn unwind(
        &self,
        schedule: &mut Schedule<'_>,
        cx: &StepContext<'_>,
        state: &RunState,
    ) -> Rollback {
        // The undo runs to its end even though the run was cancelled.
        let undo_cancel = CancellationToken::new();
        let undo_cx = StepContext {
            cancel: &undo_cancel,
            ..*cx
        };
        let mut undone = false;
        for (i, undo) in std::mem::take(&mut schedule.completed).into_iter().rev() {
            let step = &cx.plan.steps[i];
            match undo {
                Undo::Nothing => {}
                Undo::Irreversible { left } => {
                    schedule.status[i] = Some(StepStatus::UndoFailed);
                    left_changed(cx.plan, i, state, &left);
                }
                Undo::Compensate { description, data } => {
                    let ok = self
                        .undo_step(step, &description, &data, &undo_cx, state)
                        .await;
                    schedule.status[i] = Some(undo_status(ok));
                    undone |= ok;
                }
                Undo::Partial {
                    description,
                    data,
                    left,
                } => {
                    let ok = self
                        .undo_step(step, &description, &data, &undo_cx, state)
                        .await;
                    schedule.status[i] = Some(undo_status(ok));
                    left_changed(cx.plan, i, state, &left);
                    undone |= ok;
                }
            }
        }
        let artifacts = state.artifacts.lock().unwrap_or_else(|e| e.into_inner());
        let left: Vec<String> = artifacts.values().flat_map(|r| r.left.clone()).collect();
        let undone = undone || artifacts.values().any(|r| r.undone);
        match (left.is_empty(), undone) {
            (false, _) => Rollback::Incomplete { left },
            (true, true) => Rollback::Complete,
            (true, false) => Rollback::NotNeeded,
        }
    }

    /// Runs one step's undo with its events; whether it succeeded.
    async fn undo_step(
        &self,
        step: &Step,
        description: &str,
        data: &serde_json::Value,
        cx: &StepContext<'_>,
        state: &RunState,
    ) -> bool {
        self.reporter.report(&Event::UndoStarted {
            step: step.id.clone(),
            description: description.to_owned(),
        });
        let result = match self.handler(step.action.name()) {
            Some(handler) => handler.undo(step, data, cx).await,
            None => Err(StepError::failure("no handler")),
        };
        let index = cx.plan.steps.iter().position(|s| s.id == step.id);
        match result {
            Ok(()) => {
                self.reporter.report(&Event::UndoFinished {
                    step: step.id.clone(),
                });
                if let Some(artifact) = &step.artifact {
                    state.artifact(artifact, |run| run.undone = true);
                }
                true
            }
            Err(err) => {
                self.reporter.report(&Event::UndoFailed {
                    step: step.id.clone(),
                    error: err.to_string(),
                });
                if let Some(i) = index {
                    left_changed(cx.plan, i, state, &format!("{description} failed: {err}"));
                }
                false
            }
        }
    }
}

/// Once recording started, no work is undone: an artifact whose work is all done (every step
/// its record needs completed) but whose record was not written (its record step refused, say)
/// is released but unrecorded. It gets no failure record, which would contradict what runs,
/// and the run names it as left changed.
fn unrecorded_work(schedule: &Schedule<'_>, state: &RunState) -> Rollback {
    let mut left = Vec::new();
    for step in &schedule.plan.steps {
        let Some(artifact) = step.artifact.as_ref() else {
            continue;
        };
        if !step.action.is::<RecordRelease>() || !schedule.needs_done(step) {
            continue;
        }
        state.artifact(artifact, |run| {
            if run.started_at.is_some() && !run.recorded && !run.unrecorded {
                run.unrecorded = true;
                left.push(format!(
                    "the release of {artifact} is done and stays, but it was not recorded: \
                     the ledger still names the release before it"
                ));
            }
        });
    }
    if left.is_empty() {
        Rollback::NotNeeded
    } else {
        Rollback::Incomplete { left }
    }
}

/// Notes that step `i` left something changed (on its artifact, or on the run).
fn left_changed(plan: &Plan, i: usize, state: &RunState, what: &str) {
    let step = &plan.steps[i];
    let entry = format!("{} ({what})", step.description);
    let artifact = step.artifact_name().to_owned();
    state.artifact(&artifact, |run| run.left.push(entry));
}

fn engine_error(
    plan: &Plan,
    failure: Option<(usize, Failure)>,
    rollback: Rollback,
    cancelled: bool,
) -> EngineError {
    if cancelled {
        return EngineError::Cancelled {
            reason: "the run was cancelled".into(),
            rollback,
        };
    }
    let Some((i, failure)) = failure else {
        return EngineError::Cancelled {
            reason: "the run was cancelled".into(),
            rollback,
        };
    };
    let step = &plan.steps[i];
    let source = match failure {
        Failure::Engine(error) => return error,
        Failure::Step(error) => error,
        Failure::Abandoned => {
            StepError::failure("it did not stop in time after the run was cancelled")
        }
        Failure::Unchanged => StepError::failure("nothing to change"),
    };
    EngineError::StepFailed {
        step: step.id.clone(),
        description: step.description.clone(),
        source: Box::new(source),
        rollback,
    }
}

fn failure_text(failure: &Failure) -> String {
    match failure {
        Failure::Step(error) => error.to_string(),
        Failure::Engine(error) => error.to_string(),
        Failure::Abandoned => "did not stop in time after the run was cancelled".into(),
        Failure::Unchanged => "nothing to change".into(),
    }
}

fn millis(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// A step's status after its undo ran.
fn undo_status(ok: bool) -> StepStatus {
    if ok {
        StepStatus::Undone
    } else {
        StepStatus::UndoFailed
    }
}

/// Whether `step` belongs to an artifact this run leaves alone.
fn left_alone(step: &Step, state: &RunState) -> bool {
    step.artifact.as_ref().is_some_and(|artifact| {
        state
            .unchanged
            .lock()
            .is_ok_and(|set| set.contains(artifact))
    })
}
