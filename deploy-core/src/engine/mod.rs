//! Applies a [`Plan`]: every step once the steps it needs are done, steps whose needs are met
//! side by side. The engine holds what every plan shares (the account check, the lock, the
//! ledger records, events, failure handling) and hands every other step to the
//! [`StepHandler`] registered for its action type; it knows no artifact kind.
//!
//! When a step fails, or the run is cancelled, the steps still running are asked to stop,
//! nothing new starts, and the undo of every completed step runs, newest first. The ledger
//! then says `rolled-back` for an artifact whose changes were all undone, `failed` otherwise,
//! and the lock is given back.

mod core;
mod journal;
mod outputs;
mod record;
mod run;
mod settle;
mod step;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::aws::{AwsClients, CallerIdentity};
use crate::error::{Classify, ErrorClass};
use crate::events::Reporter;
use crate::ledger::{Actor, Ledger, LedgerError, Outcome};
use crate::lock::LockSettings;
use crate::plan::{InvalidInput, PLAN_FORMAT, Plan};

#[cfg(test)]
pub(crate) use step::TestRun;
pub use step::{
    BoxError, BoxFuture, CheckContext, Done, Preflight, StepContext, StepError, StepHandler,
    StepOutput, Undo, UndoFailed,
};

/// Why a plan was not (completely) applied.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The plan file is of another format version.
    #[error(
        "plan format {found} is not supported; this deploy reads format {PLAN_FORMAT}. Make a new plan"
    )]
    Format {
        /// The plan's format.
        found: u32,
    },
    /// The plan targets another environment or account than the clients.
    #[error("the plan is for {plan}, but the clients are for {clients}")]
    WrongTarget {
        /// The plan's environment/account.
        plan: String,
        /// The clients' environment/account.
        clients: String,
    },
    /// No handler is registered for a step's action type.
    #[error(
        "step {step} ({action}) is not available in this version of deploy; nothing was changed"
    )]
    Unsupported {
        /// Step id.
        step: String,
        /// Action type.
        action: String,
    },
    /// A step's inputs do not fit its action type.
    #[error("step {step}: {source}; nothing was changed. Make a new plan")]
    InvalidStep {
        /// Step id.
        step: String,
        /// What is wrong.
        #[source]
        source: InvalidInput,
    },
    /// A step needs a step that is not before it in the plan.
    #[error(
        "step {step} needs `{need}`, which is not an earlier step of the plan; nothing was changed"
    )]
    BadNeed {
        /// Step id.
        step: String,
        /// The need.
        need: String,
    },
    /// A step reads another environment whose clients were not given ([`Engine::add_source`]).
    #[error(
        "step {step} reads environment `{environment}`, and the engine has no clients for it; nothing was changed"
    )]
    MissingSource {
        /// Step id.
        step: String,
        /// The environment.
        environment: String,
    },
    /// A check before the lock failed; nothing was locked or changed.
    #[error("{artifact}: {source}; nothing was changed")]
    Preflight {
        /// The artifact.
        artifact: String,
        /// The cause.
        #[source]
        source: Box<StepError>,
    },
    /// The ledger moved since the plan was made.
    #[error("the environment changed since the plan was made ({detail}); nothing was changed")]
    Stale {
        /// What changed.
        detail: String,
    },
    /// A step failed; the plan stopped and what it had changed was undone as far as possible.
    #[error("step {step} ({description}) failed: {source}{rollback}")]
    StepFailed {
        /// Step id.
        step: String,
        /// Step description.
        description: String,
        /// The cause.
        #[source]
        source: Box<StepError>,
        /// What the undo achieved.
        rollback: Rollback,
    },
    /// The run was cancelled (a signal, a timeout); what it had changed was undone as far as
    /// possible.
    #[error("{reason}{rollback}")]
    Cancelled {
        /// Why.
        reason: String,
        /// What the undo achieved.
        rollback: Rollback,
    },
    /// The ledger could not be read before starting.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A run that died before this one left changes whose undo failed; this run changed
    /// nothing of its own.
    #[error(
        "the run of plan {plan} died without finishing and what it left could not all be put \
         back: {}; it is recorded as abandoned. Look at these, then run again",
        left.join("; ")
    )]
    Unsettled {
        /// The dead run's plan.
        plan: String,
        /// What stays changed.
        left: Vec<String>,
    },
}

impl EngineError {
    /// The artifact and its key whose value caused the failure (`("dags", "bucket")`), when
    /// the failing step says so.
    pub fn config_key(&self) -> Option<(&str, &'static str)> {
        match self {
            EngineError::Preflight { artifact, source } => Some((artifact, source.config_key()?)),
            EngineError::StepFailed { step, source, .. } => {
                let (artifact, _) = step.split_once('.')?;
                Some((artifact, source.config_key()?))
            }
            _ => None,
        }
    }

    /// What the undo achieved, for failures that ran one.
    pub fn rollback(&self) -> Option<&Rollback> {
        match self {
            EngineError::StepFailed { rollback, .. } | EngineError::Cancelled { rollback, .. } => {
                Some(rollback)
            }
            _ => None,
        }
    }
}

impl Classify for EngineError {
    fn class(&self) -> ErrorClass {
        match self {
            EngineError::StepFailed {
                rollback: Rollback::Complete,
                ..
            }
            | EngineError::Cancelled {
                rollback: Rollback::Complete,
                ..
            } => ErrorClass::RolledBack,
            // Something stays changed: whatever stopped the run, people must look.
            EngineError::StepFailed {
                rollback: Rollback::Incomplete { .. },
                ..
            } => ErrorClass::Failure,
            EngineError::StepFailed { source, .. } | EngineError::Preflight { source, .. } => {
                source.class()
            }
            EngineError::Format { .. }
            | EngineError::WrongTarget { .. }
            | EngineError::InvalidStep { .. }
            | EngineError::BadNeed { .. } => ErrorClass::Usage,
            EngineError::Unsupported { .. }
            | EngineError::MissingSource { .. }
            | EngineError::Stale { .. }
            | EngineError::Unsettled { .. }
            | EngineError::Cancelled { .. }
            | EngineError::Ledger(_) => ErrorClass::Failure,
        }
    }
}

/// What undoing a failed run achieved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Rollback {
    /// Nothing the run completed needed undoing.
    NotNeeded,
    /// Every change was undone (by its step's undo, or by AWS itself).
    Complete,
    /// Some changes stay.
    Incomplete {
        /// What stays changed, one entry per step.
        left: Vec<String>,
    },
}

impl std::fmt::Display for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rollback::NotNeeded => Ok(()),
            Rollback::Complete => f.write_str("; every change was rolled back"),
            Rollback::Incomplete { left } => {
                write!(f, "; left changed: {}", left.join("; "))
            }
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// Completed.
    Done,
    /// Failed.
    Failed,
    /// Not run because an earlier step failed or the run was cancelled.
    Skipped,
    /// Not run: its artifact already runs what the step would put in place (every step of
    /// the artifact said so before the lock), so the artifact is left alone and not recorded.
    Unchanged,
    /// Completed, then undone after a later failure.
    Undone,
    /// Completed; its undo failed or it cannot be undone.
    UndoFailed,
}

/// One step's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// Step id.
    pub step: String,
    /// Step description.
    pub description: String,
    /// How it ended.
    pub status: StepStatus,
    /// Wall time.
    pub elapsed_ms: u64,
}

/// A release record the run wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedRelease {
    /// Artifact.
    pub artifact: String,
    /// Release id.
    pub release_id: String,
    /// Record key in the state bucket.
    pub key: String,
    /// Whether it succeeded.
    pub outcome: Outcome,
    /// The version it recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What identifies the bytes (an image digest, a DAG content hash, a `CodeSha256`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplyReport {
    /// Plan id.
    pub plan_id: String,
    /// Every step, in plan order.
    pub steps: Vec<StepReport>,
    /// Records written.
    pub releases: Vec<RecordedRelease>,
    /// Caller identity, once verified.
    pub identity: Option<CallerIdentity>,
    /// Every step's preflight found nothing to change (the same bytes and configuration
    /// already run and are what the live release recorded): no lock was taken and no record
    /// written. Left out of the JSON when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
    /// Artifacts left alone in a run that changed others: what they would put in place
    /// already runs and is what their live release recorded, so none of their steps ran and
    /// no record was written for them. Left out of the JSON when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unchanged_artifacts: Vec<String>,
    /// What the kinds reported, by section name (each handler declares its own).
    #[serde(flatten)]
    pub sections: std::collections::BTreeMap<String, Vec<serde_json::Value>>,
}

impl ApplyReport {
    /// The items of section `name` read as `T` (items that do not fit are left out).
    pub fn section<T: serde::de::DeserializeOwned>(&self, name: &str) -> Vec<T> {
        self.sections
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|v| serde_json::from_value(v.clone()).ok())
            .collect()
    }
}

/// A failed run: the error and everything done up to it.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ApplyFailure {
    /// The environment the plan ran in.
    pub environment: String,
    /// What was done.
    pub report: ApplyReport,
    /// Why it stopped.
    #[source]
    pub error: EngineError,
}

impl Classify for ApplyFailure {
    fn class(&self) -> ErrorClass {
        self.error.class()
    }
}

/// Engine options.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Lock lease timing.
    pub lock: LockSettings,
    /// Wait this long for a held lock instead of failing at once.
    pub wait_lock: Option<std::time::Duration>,
    /// Who is applying.
    pub actor: Actor,
    /// Directory relative source paths start from (the configuration's directory).
    pub source_root: std::path::PathBuf,
    /// How long a step still running after a cancellation may take to stop before it is
    /// abandoned (and named as possibly left changed).
    pub cancel_grace: std::time::Duration,
}

impl EngineOptions {
    /// Options with the lock lease `lock_ttl`, this process as the actor, sources relative to
    /// `source_root`, no lock wait and a 30-second cancel grace.
    pub fn new(lock_ttl: std::time::Duration, source_root: std::path::PathBuf) -> EngineOptions {
        EngineOptions {
            lock: LockSettings::with_ttl(lock_ttl),
            wait_lock: None,
            actor: Actor::detect(),
            source_root,
            cancel_grace: std::time::Duration::from_secs(30),
        }
    }
}

/// Called before every step, the engine's own included: a policy that refuses a step (or a
/// test that injects a fault) returns an error, and the step fails with it without running.
pub type Intercept = Arc<dyn Fn(&crate::plan::Step) -> Result<(), StepError> + Send + Sync>;

/// Applies plans for one environment.
pub struct Engine {
    intercepts: Vec<Intercept>,
    clients: AwsClients,
    sources: HashMap<String, AwsClients>,
    ledger: Ledger,
    reporter: Arc<dyn Reporter>,
    handlers: HashMap<String, Arc<dyn StepHandler>>,
    options: EngineOptions,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut actions: Vec<&String> = self.handlers.keys().collect();
        actions.sort();
        f.debug_struct("Engine")
            .field("environment", &self.clients.target.environment)
            .field("handlers", &actions)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine for the environment `clients` target, with no handlers yet: register the
    /// built-in kinds with [`crate::kinds::register_builtin`] and your own with
    /// [`Engine::register`].
    pub fn new(clients: AwsClients, reporter: Arc<dyn Reporter>, options: EngineOptions) -> Engine {
        let ledger = Ledger::new(clients.s3.clone(), &clients.target);
        Engine {
            intercepts: Vec::new(),
            clients,
            sources: HashMap::new(),
            ledger,
            reporter,
            handlers: HashMap::new(),
            options,
        }
    }

    /// Registers `handler` for the steps whose action type is `action` (replacing any earlier
    /// one). The engine's own actions (`verify-account`, `acquire-lock`, `record-release`,
    /// `release-lock`) cannot be replaced.
    pub fn register(&mut self, action: &str, handler: Arc<dyn StepHandler>) {
        if !core::is_core(action) {
            self.handlers.insert(action.to_owned(), handler);
        }
    }

    /// Adds `hook`, called before every step ([`Intercept`]).
    pub fn intercept(&mut self, hook: Intercept) {
        self.intercepts.push(hook);
    }

    /// Adds the clients of another environment a plan reads from: the source of a promotion.
    pub fn add_source(&mut self, clients: AwsClients) {
        self.sources
            .insert(clients.target.environment.clone(), clients);
    }

    /// The environment's ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Checks a plan can run here, without any request to AWS.
    pub fn check(&self, plan: &Plan) -> Result<(), EngineError> {
        if plan.format != PLAN_FORMAT {
            return Err(EngineError::Format { found: plan.format });
        }
        let target = &self.clients.target;
        if plan.environment != target.environment || plan.account != target.account.as_str() {
            return Err(EngineError::WrongTarget {
                plan: format!("{} ({})", plan.environment, plan.account),
                clients: format!("{} ({})", target.environment, target.account),
            });
        }
        let cx = CheckContext {
            environment: &target.environment,
            sources: self.sources.keys().map(String::as_str).collect(),
        };
        for (i, step) in plan.steps.iter().enumerate() {
            if let Some(need) = step
                .needs
                .iter()
                .find(|n| !plan.steps[..i].iter().any(|s| &&s.id == n))
            {
                return Err(EngineError::BadNeed {
                    step: step.id.clone(),
                    need: need.clone(),
                });
            }
            if core::is_core(step.action.name()) {
                core::check(step, &cx)?;
                continue;
            }
            match self.handlers.get(step.action.name()) {
                Some(handler) => handler.check(step, &cx)?,
                None => {
                    return Err(EngineError::Unsupported {
                        step: step.id.clone(),
                        action: step.action.name().to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Runs `plan`. On failure the steps still running stop, nothing new starts, what
    /// completed is undone newest first, the artifacts that were started are recorded as
    /// rolled back or failed, and the lock is released.
    pub async fn apply(&self, plan: &Plan) -> Result<ApplyReport, Box<ApplyFailure>> {
        self.apply_until(plan, &CancellationToken::new()).await
    }

    /// [`Engine::apply`], stopping when `cancel` is cancelled (Ctrl-C, SIGTERM, a deadline):
    /// the run then ends as after a failure, with [`EngineError::Cancelled`].
    pub async fn apply_until(
        &self,
        plan: &Plan,
        cancel: &CancellationToken,
    ) -> Result<ApplyReport, Box<ApplyFailure>> {
        // Boxed: the run's state machine is large, and callers nest it in their own futures.
        Box::pin(run::apply(self, plan, cancel)).await
    }

    fn handler(&self, action: &str) -> Option<&Arc<dyn StepHandler>> {
        self.handlers.get(action)
    }
}
