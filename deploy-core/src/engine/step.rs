//! The seam between the engine and the kinds: a [`StepHandler`] runs the steps of one action
//! type, says how what it changed is undone, and leaves typed outputs for later steps.
//!
//! Built-in kinds (images with their ECS strategies, DAGs, Lambda) and an embedder's own steps register the
//! same way ([`crate::engine::Engine::register`]); the engine never looks inside an action.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::EngineError;
use super::outputs::{Outputs, Sections};
use crate::aws::AwsClients;
use crate::error::{Classify, ErrorClass};
use crate::events::Reporter;
use crate::ledger::{ArtifactRef, AwsObject};
use crate::plan::{ActionInput, Plan, Step};

/// A boxed error from a step.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A boxed future, as step handlers return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs the steps of one action type.
///
/// `run` changes AWS and returns [`Done`], which carries the facts for the release record and
/// the [`Undo`] of what it changed; `undo` is called with that undo's data, newest step first,
/// when a later step fails or the run is cancelled. Gates change nothing and undo nothing.
pub trait StepHandler: Send + Sync {
    /// Checks, without any request, that the engine can run `step` (inputs parse, the clients
    /// of every environment it reads were given). The default accepts every step.
    fn check(&self, step: &Step, cx: &CheckContext<'_>) -> Result<(), EngineError> {
        let _ = (step, cx);
        Ok(())
    }

    /// Checks before the lock is taken what can be checked without changing anything (sources
    /// open, repositories exist), and says whether the step would change anything. A failure
    /// here changes nothing and writes no record. The default checks nothing and answers
    /// [`Preflight::Follows`] for a gate ([`StepHandler::is_gate`]), [`Preflight::Changes`]
    /// otherwise.
    fn preflight<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Preflight, StepError>> {
        let _ = (step, cx);
        let found = if self.is_gate() {
            Preflight::Follows
        } else {
            Preflight::Changes
        };
        Box::pin(async move { Ok(found) })
    }

    /// Whether the step only checks, or goes with another step of its artifact (a health gate,
    /// a scan gate, the migration of the image rolled out): it runs only when that changes
    /// something. The default is false.
    fn is_gate(&self) -> bool {
        false
    }

    /// Runs the step.
    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>>;

    /// Undoes a completed run of `step`, given the data its [`Undo::Compensate`] carried.
    /// Only called for steps that returned [`Undo::Compensate`] or [`Undo::Partial`].
    fn undo<'a>(
        &'a self,
        step: &'a Step,
        data: &'a serde_json::Value,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        let _ = (step, data, cx);
        Box::pin(async {
            Err(StepError::failure(
                "this step declared an undo but its handler has none",
            ))
        })
    }

    /// Sections this handler adds to the run's report (`images`, `scans`): they are present,
    /// empty, in every report of an engine that has this handler.
    fn report_sections(&self) -> &'static [&'static str] {
        &[]
    }
}

/// What a step's preflight found. When no step of a release or promotion changes anything
/// (each is [`Preflight::Unchanged`] or [`Preflight::Follows`], and one at least is
/// unchanged), the run ends there as unchanged: no lock, no record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Preflight {
    /// The step changes something, or cannot tell before it runs.
    #[default]
    Changes,
    /// What the step would put in place is already there, and it is what the artifact's live
    /// release recorded.
    Unchanged,
    /// The step changes something only when another step of its artifact does: a gate, or
    /// the migration that goes with the image being rolled out.
    Follows,
}

/// What a completed step leaves behind.
#[derive(Debug, Default)]
pub struct Done {
    /// Facts for the artifact's release record.
    pub record: StepOutput,
    /// How what the step changed is undone.
    pub undo: Undo,
}

impl Done {
    /// A step that changed nothing that needs undoing (a gate, a read, a change nothing
    /// points at) and adds nothing to the record.
    pub fn nothing() -> Done {
        Done::default()
    }
}

/// How a completed step is undone when a later step fails.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Undo {
    /// Nothing to undo: the step changed nothing that runs or that the ledger points at.
    #[default]
    Nothing,
    /// Call the handler's [`StepHandler::undo`] with `data`.
    Compensate {
        /// What the undo does, for people (`point service api back at task definition api:41`).
        description: String,
        /// What the undo needs (the previous state the step replaced).
        data: serde_json::Value,
    },
    /// Call the handler's [`StepHandler::undo`] with `data`, which puts back part of the
    /// change; `left` says what stays changed.
    Partial {
        /// What the undo does, for people.
        description: String,
        /// What the undo needs.
        data: serde_json::Value,
        /// What stays changed.
        left: String,
    },
    /// The change cannot be undone; `left` says what stays changed.
    Irreversible {
        /// What stays changed.
        left: String,
    },
}

impl Undo {
    /// [`Undo::Compensate`] with `data` encoded for the handler's [`StepHandler::undo`] (which
    /// decodes it with [`Undo::decode`]). A value that cannot be encoded is an error: a step
    /// must not report a change it cannot undo as undoable.
    pub fn compensate<T: serde::Serialize>(
        description: impl Into<String>,
        data: &T,
    ) -> Result<Undo, StepError> {
        let data = serde_json::to_value(data)
            .map_err(|e| StepError::failure(format!("cannot keep what the undo needs: {e}")))?;
        Ok(Undo::Compensate {
            description: description.into(),
            data,
        })
    }

    /// [`Undo::Partial`]: `data` encoded as for [`Undo::compensate`], and `left` stays changed.
    pub fn partial<T: serde::Serialize>(
        description: impl Into<String>,
        data: &T,
        left: impl Into<String>,
    ) -> Result<Undo, StepError> {
        match Undo::compensate(description, data)? {
            Undo::Compensate { description, data } => Ok(Undo::Partial {
                description,
                data,
                left: left.into(),
            }),
            other => Ok(other),
        }
    }

    /// Decodes the `data` [`Undo::compensate`] encoded.
    pub fn decode<T: serde::de::DeserializeOwned>(
        data: &serde_json::Value,
    ) -> Result<T, StepError> {
        T::deserialize(data).map_err(|e| {
            StepError::failure(format!("the undo's data is not what the step kept: {e}"))
        })
    }
}

/// A step failed, and putting back what it had changed failed too. Both causes are kept: the
/// failure is the [`source`](std::error::Error::source), the undo's error is [`UndoFailed::undo`].
#[derive(Debug, thiserror::Error)]
#[error("{failure}; putting back {what} failed too: {undo}{after}")]
pub struct UndoFailed {
    /// Why the step failed.
    #[source]
    pub failure: BoxError,
    /// What was to be put back (`the alias`, `the previous files under s3://b/p/`).
    pub what: String,
    /// Why it could not be put back.
    pub undo: BoxError,
    /// What the reader should know or do about it (`: rerun to converge`), or empty.
    pub after: String,
}

impl UndoFailed {
    /// The step's error: `failure`, and `undo` of `what` failed too (class `Failure`).
    pub fn error(
        failure: impl Into<BoxError>,
        what: impl Into<String>,
        undo: impl Into<BoxError>,
    ) -> StepError {
        Self::error_then(failure, what, undo, "")
    }

    /// [`UndoFailed::error`] followed by `after` (`": it may hold a mix of both"`).
    pub fn error_then(
        failure: impl Into<BoxError>,
        what: impl Into<String>,
        undo: impl Into<BoxError>,
        after: impl Into<String>,
    ) -> StepError {
        StepError::failure(UndoFailed {
            failure: failure.into(),
            what: what.into(),
            undo: undo.into(),
            after: after.into(),
        })
    }
}

/// What a step produced, for the release record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepOutput {
    /// The exact bytes now published or live.
    pub artifact_ref: Option<ArtifactRef>,
    /// AWS objects created or changed.
    pub touched: Vec<AwsObject>,
    /// The version the record names, when it is not the plan's (a promotion's source version).
    pub version: Option<String>,
    /// The environment the bytes came from (promotions).
    pub source_environment: Option<String>,
    /// The earlier release whose bytes a rollback restored.
    pub restored: Option<String>,
}

impl StepOutput {
    /// The output of a rollback step that restored `from`: its bytes and version are live
    /// again, and the record names the release.
    pub fn restored(from: &crate::plan::PromoteSource) -> StepOutput {
        StepOutput {
            artifact_ref: Some(from.artifact_ref.clone()),
            version: from.version.clone(),
            restored: Some(from.release_id.clone()),
            ..StepOutput::default()
        }
    }

    /// Adds `other`'s facts to these: touched objects accumulate, the rest is replaced when set.
    pub(crate) fn merge(&mut self, other: StepOutput) {
        self.touched.extend(other.touched);
        if other.artifact_ref.is_some() {
            self.artifact_ref = other.artifact_ref;
        }
        if other.version.is_some() {
            self.version = other.version;
        }
        if other.source_environment.is_some() {
            self.source_environment = other.source_environment;
        }
        if other.restored.is_some() {
            self.restored = other.restored;
        }
    }
}

/// Why a step failed: the error, its class (what the exit code will be) and whether the step's
/// change was already rolled back when it failed (by AWS, as the ECS deployment circuit breaker
/// does, or by the step itself, as a rollout that timed out puts the service back).
#[derive(Debug)]
pub struct StepError {
    class: ErrorClass,
    rolled_back: bool,
    left: Option<String>,
    key: Option<&'static str>,
    error: BoxError,
}

impl StepError {
    /// A failure of class `class`.
    pub fn new(class: ErrorClass, error: impl Into<BoxError>) -> StepError {
        StepError {
            class,
            rolled_back: false,
            left: None,
            key: None,
            error: error.into(),
        }
    }

    /// A plain failure (exit code 1).
    pub fn failure(error: impl Into<BoxError>) -> StepError {
        StepError::new(ErrorClass::Failure, error)
    }

    /// A gate that blocked the change (exit code 6).
    pub fn blocked(error: impl Into<BoxError>) -> StepError {
        StepError::new(ErrorClass::Blocked, error)
    }

    /// Marks the failure as already rolled back (by AWS or by the step): the engine counts
    /// the step as undone and does not undo it again.
    #[must_use]
    pub fn rolled_back(mut self) -> StepError {
        self.rolled_back = true;
        self
    }

    /// Says what the failed step may have left changed (a down migration that stopped part
    /// way): the run then cannot call itself rolled back, and names it.
    #[must_use]
    pub fn leaving(mut self, what: impl Into<String>) -> StepError {
        self.left = Some(what.into());
        self
    }

    /// Names the artifact key whose value caused the failure (`bucket`, `rollout.cluster`).
    #[must_use]
    pub fn at_key(mut self, key: &'static str) -> StepError {
        self.key = Some(key);
        self
    }

    /// The artifact key whose value caused the failure, when one did.
    pub fn config_key(&self) -> Option<&'static str> {
        self.key
    }

    /// What the failed step may have left changed, if it says.
    pub fn left(&self) -> Option<&str> {
        self.left.as_deref()
    }

    /// Whether the step's change was already rolled back when it failed.
    pub fn is_rolled_back(&self) -> bool {
        self.rolled_back
    }

    /// The class of the failure.
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// The error itself, for callers that look for a type (`downcast_ref`).
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.error.as_ref()
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for StepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

impl<E> From<E> for StepError
where
    E: Classify + std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> StepError {
        let key = error.config_key();
        StepError {
            key,
            ..StepError::new(error.class(), error)
        }
    }
}

/// What [`StepHandler::check`] can see: which environments the engine has clients for.
#[derive(Debug)]
pub struct CheckContext<'a> {
    pub(crate) environment: &'a str,
    pub(crate) sources: Vec<&'a str>,
}

impl CheckContext<'_> {
    /// Whether the engine has clients for `environment`.
    pub fn has_clients(&self, environment: &str) -> bool {
        environment == self.environment || self.sources.contains(&environment)
    }

    /// [`EngineError::MissingSource`] unless the engine has clients for `environment`.
    pub fn need_clients(&self, step: &Step, environment: &str) -> Result<(), EngineError> {
        if self.has_clients(environment) {
            return Ok(());
        }
        Err(EngineError::MissingSource {
            step: step.id.clone(),
            environment: environment.to_owned(),
        })
    }

    /// The step's inputs as `T`, or [`EngineError::InvalidStep`].
    pub fn input<T: ActionInput>(&self, step: &Step) -> Result<T, EngineError> {
        step.action
            .input()
            .map_err(|source| EngineError::InvalidStep {
                step: step.id.clone(),
                source,
            })
    }
}

/// What a running step can use: the clients, the events, the outputs of earlier steps and the
/// run's cancellation.
pub struct StepContext<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) clients: &'a AwsClients,
    pub(crate) sources: &'a HashMap<String, AwsClients>,
    pub(crate) reporter: &'a Arc<dyn Reporter>,
    pub(crate) outputs: &'a Outputs,
    pub(crate) sections: &'a Sections,
    pub(crate) cancel: &'a CancellationToken,
    pub(crate) source_root: &'a std::path::Path,
    pub(crate) preflight_current: &'a std::sync::atomic::AtomicBool,
    /// The step this context was handed to (none in an undo after the run).
    pub(crate) current: Option<&'a Step>,
    /// The run's journal, once it holds the lock.
    pub(crate) journal: Option<&'a super::journal::Journal>,
}

impl std::fmt::Debug for StepContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepContext")
            .field("plan", &self.plan.id)
            .field("environment", &self.clients.target.environment)
            .finish_non_exhaustive()
    }
}

impl<'a> StepContext<'a> {
    /// The plan being applied.
    pub fn plan(&self) -> &'a Plan {
        self.plan
    }

    /// The clients of the environment the plan changes.
    pub fn clients(&self) -> &'a AwsClients {
        self.clients
    }

    /// The clients of `environment`: the plan's own, or a source's
    /// ([`crate::engine::Engine::add_source`]).
    pub fn clients_of(&self, environment: &str) -> Result<&'a AwsClients, StepError> {
        if environment == self.clients.target.environment {
            return Ok(self.clients);
        }
        self.sources.get(environment).ok_or_else(|| {
            StepError::failure(format!(
                "no clients for environment `{environment}` (Engine::add_source)"
            ))
        })
    }

    /// Where events go.
    pub fn reporter(&self) -> &'a Arc<dyn Reporter> {
        self.reporter
    }

    /// Directory relative source paths start from (the configuration's directory).
    pub fn source_root(&self) -> &'a std::path::Path {
        self.source_root
    }

    /// Whether what the preflights read of things only a holder of the environment's lock
    /// changes (a DAG prefix, the ledger) is still current: true once this run holds the lock
    /// and no one else took it since the preflights started. A step may then use those reads
    /// instead of making them again; while it is false it must read again.
    pub fn preflight_reads_current(&self) -> bool {
        self.preflight_current
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Keeps `value` as `artifact`'s output of type `T` for later steps.
    pub fn put<T: Send + Sync + 'static>(&self, artifact: &str, value: T) {
        self.outputs.put(artifact, value);
    }

    /// `artifact`'s output of type `T`, if an earlier step left one.
    pub fn get<T: Send + Sync + 'static>(&self, artifact: &str) -> Option<Arc<T>> {
        self.outputs.get(artifact)
    }

    /// Adds `item` to the report section `section` (declared in
    /// [`StepHandler::report_sections`]).
    pub fn report_item(&self, section: &str, item: &impl Serialize) {
        self.sections.add(section, item);
    }

    /// Notes in the run's journal how to undo what this step has changed so far, before it
    /// waits on something long (a deployment, a canary's steps, the rest of a sync): if the
    /// process dies while it waits, the next run of the environment settles the change with
    /// this undo. The [`Done::undo`] the step returns replaces the note.
    pub async fn journal(&self, undo: &Undo) {
        if let (Some(journal), Some(step)) = (self.journal, self.current) {
            journal.note(step, undo, self.reporter.as_ref()).await;
        }
    }

    /// Whether the run is being cancelled (a failure elsewhere, a signal, a timeout): long
    /// waits should stop and return.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the run is cancelled.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }
}

/// A run's context for unit tests of step handlers: a plan with no steps, the given clients,
/// events kept in a [`crate::events::Recorder`].
#[cfg(test)]
pub(crate) struct TestRun {
    plan: Plan,
    clients: AwsClients,
    sources: HashMap<String, AwsClients>,
    reporter: Arc<dyn Reporter>,
    pub recorder: Arc<crate::events::Recorder>,
    outputs: Outputs,
    sections: Sections,
    cancel: CancellationToken,
    preflight_current: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
impl TestRun {
    pub(crate) fn new(clients: AwsClients) -> TestRun {
        let recorder = Arc::new(crate::events::Recorder::default());
        TestRun {
            plan: Plan::envelope(
                &clients.target,
                crate::ledger::Operation::Custom,
                None,
                "sha",
                vec![],
                vec![],
            ),
            clients,
            sources: HashMap::new(),
            reporter: recorder.clone(),
            recorder,
            outputs: Outputs::default(),
            sections: Sections::default(),
            cancel: CancellationToken::new(),
            preflight_current: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn cx(&self) -> StepContext<'_> {
        StepContext {
            plan: &self.plan,
            clients: &self.clients,
            sources: &self.sources,
            reporter: &self.reporter,
            outputs: &self.outputs,
            sections: &self.sections,
            cancel: &self.cancel,
            source_root: std::path::Path::new("."),
            preflight_current: &self.preflight_current,
            current: None,
            journal: None,
        }
    }
}
