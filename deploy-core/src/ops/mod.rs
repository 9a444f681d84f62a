//! One library operation per command: the policy (what may target an environment, approval,
//! what is live in a promotion's source, the version) lives here, so the `deploy` binary and
//! an embedding tool make the same decisions. Each operation reads what it needs (the account,
//! the ledger), builds the [`Plan`] and returns it [`Prepared`]; [`apply`] runs it.

mod diff;
mod history;
mod iam_policy;
mod promote;
mod release;
mod rollback;
mod saved;
mod status;
mod unlock;
mod version;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::aws::{AwsClients, AwsSettings, TargetError};
use crate::config::{Config, ConfigError, Environment};
use crate::engine::{ApplyFailure, ApplyReport, Engine, EngineOptions};
use crate::error::{Classify, ErrorClass};
use crate::events::Reporter;
use crate::ledger::LedgerError;
use crate::plan::Plan;

pub use diff::{ArtifactDiff, DiffRequest, FieldDiff, Side, diff};
pub use history::{ArtifactMetrics, History, HistoryRequest, history};
pub use iam_policy::{IamPolicyRequest, iam_policy};
pub use promote::{PromoteRequest, promote};
pub use release::{ReleaseRequest, plan, release};
pub use rollback::{ROLLBACK_DEPTH, RollbackRequest, rollback};
pub use saved::{MAX_PLAN_BYTES, saved};
pub use status::{Drift, Running, StatusRow, status};
pub use unlock::{force_unlock, lock_status};
pub use version::{check_version, commit_time, dirty_work_tree, resolve_version};

/// Why an operation refused or could not prepare its plan. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The request cannot be carried out as asked (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The environment needs approval (`approval = true`) and none was given (exit code 5).
    #[error(
        "{environment} needs approval: {what}. Review it with --dry-run, then run again with --approve"
    )]
    ApprovalRequired {
        /// The environment.
        environment: String,
        /// The change.
        what: String,
    },
    /// A promotion's source environment runs nothing of some artifacts.
    #[error(
        "nothing of {} is live in {from}, so there is nothing to promote; release it there first \
         (`deploy release {from} {}`)", artifacts.join(", "), artifacts.join(" ")
    )]
    NothingLive {
        /// The source environment.
        from: String,
        /// The artifacts with no live release there.
        artifacts: Vec<String>,
    },
    /// The configuration does not have what was asked for.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The account check failed.
    #[error(transparent)]
    Target(Box<TargetError>),
    /// The ledger could not be read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The environment lock could not be read or forced.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// Reading the source environment failed.
    #[error("cannot read what {environment} runs: {source}")]
    Source {
        /// The source environment.
        environment: String,
        /// Why.
        #[source]
        source: Box<OpsError>,
    },
}

impl From<TargetError> for OpsError {
    fn from(error: TargetError) -> OpsError {
        OpsError::Target(Box::new(error))
    }
}

impl Classify for OpsError {
    fn class(&self) -> ErrorClass {
        match self {
            OpsError::Usage(_) => ErrorClass::Usage,
            OpsError::ApprovalRequired { .. } => ErrorClass::ApprovalRequired,
            OpsError::NothingLive { .. } => ErrorClass::Failure,
            OpsError::Config(e) => e.class(),
            OpsError::Target(e) => e.class(),
            OpsError::Ledger(e) => e.class(),
            OpsError::Lock(e) => e.class(),
            OpsError::Source { source, .. } => source.class(),
        }
    }
}

/// What a change asks for beyond its plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confirm {
    /// The change is approved (`--approve`).
    pub approve: bool,
    /// The plan is only shown (`--dry-run`): approval is not needed to look.
    pub dry_run: bool,
}

/// A plan ready to apply, with the clients it was made with.
#[derive(Debug)]
pub struct Prepared {
    /// The plan.
    pub plan: Plan,
    /// The clients of the environment it changes.
    pub clients: AwsClients,
    /// The clients of the environments it reads from (a promotion's source).
    pub sources: Vec<AwsClients>,
}

/// How [`apply`] runs a prepared plan.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Wait this long for a held lock instead of failing.
    pub wait_lock: Option<std::time::Duration>,
    /// Stops the run (Ctrl-C, SIGTERM, a deadline): undone, recorded, unlocked.
    pub cancel: CancellationToken,
    /// Skip checking that what task definitions reference exists (`--skip-verify`).
    pub skip_verify: bool,
    /// Let DAG syncs delete more than `max_delete_share` of their files (`--allow-mass-delete`).
    pub allow_mass_delete: bool,
}

/// AWS clients for an environment, with the configuration's retry settings.
pub async fn clients(config: &Config, env: &Environment) -> AwsClients {
    AwsClients::connect(&env.target, &AwsSettings::from(&config.settings)).await
}

/// An engine for `prepared` with every built-in kind registered.
pub fn engine(
    config: &Config,
    prepared: &Prepared,
    reporter: Arc<dyn Reporter>,
    options: &ApplyOptions,
) -> Engine {
    let mut engine_options =
        EngineOptions::new(config.settings.lock_ttl, config.base_dir().to_path_buf());
    engine_options.wait_lock = options.wait_lock;
    let mut engine = Engine::new(prepared.clients.clone(), reporter, engine_options);
    for source in &prepared.sources {
        engine.add_source(source.clone());
    }
    let builtin = crate::kinds::Builtin::for_environment(config, &prepared.plan.environment)
        .with_flags(options.skip_verify, options.allow_mass_delete);
    crate::kinds::register_builtin(&mut engine, builtin);
    engine
}

/// Applies a prepared plan with the built-in kinds.
pub async fn apply(
    config: &Config,
    prepared: &Prepared,
    reporter: Arc<dyn Reporter>,
    options: &ApplyOptions,
) -> Result<ApplyReport, Box<ApplyFailure>> {
    engine(config, prepared, reporter, options)
        .apply_until(&prepared.plan, &options.cancel)
        .await
}

/// Why [`apply_own`] stopped.
#[derive(Debug)]
pub enum OwnFailure {
    /// Making the plan again failed; nothing more was changed.
    Replan(OpsError),
    /// The run failed.
    Apply(Box<ApplyFailure>),
}

/// How many times [`apply_own`] makes its plan again before it gives up.
pub const MAX_REPLANS: u32 = 20;

/// Applies a plan this process made itself (`release`, `promote`, `rollback`). When the
/// environment changed between the plan and the lock, because another run went first while
/// this one waited, the plan is made again with `replan` from what the environment holds now
/// and applied, waiting for the lock for what is left of `options.wait_lock`; only a saved
/// plan (`apply`) refuses a changed environment. `prepared` is left holding the plan that
/// ran last.
pub async fn apply_own<F, Fut>(
    config: &Config,
    prepared: &mut Prepared,
    mut replan: F,
    reporter: Arc<dyn Reporter>,
    options: &ApplyOptions,
) -> Result<ApplyReport, OwnFailure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Prepared, OpsError>>,
{
    let deadline = options
        .wait_lock
        .and_then(|wait| std::time::Instant::now().checked_add(wait));
    let mut options = options.clone();
    for _ in 0..MAX_REPLANS {
        let failure = match apply(config, prepared, reporter.clone(), &options).await {
            Ok(report) => return Ok(report),
            Err(failure) => failure,
        };
        let crate::engine::EngineError::Stale { detail } = &failure.error else {
            return Err(OwnFailure::Apply(failure));
        };
        if options.cancel.is_cancelled() {
            return Err(OwnFailure::Apply(failure));
        }
        reporter.report(&crate::events::Event::Note {
            message: format!(
                "the environment changed since this run made its plan ({detail}); planning again"
            ),
        });
        *prepared = replan().await.map_err(OwnFailure::Replan)?;
        options.wait_lock =
            deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
    }
    Err(OwnFailure::Replan(OpsError::Usage(format!(
        "the environment changed {MAX_REPLANS} times while this run waited for the lock; \
         run it again when fewer deploys are queued"
    ))))
}

/// Refuses `command` into an environment that only receives promotions.
pub fn check_not_promote_only(env: &Environment, command: &str) -> Result<(), OpsError> {
    if let Some(from) = &env.promote_from {
        let name = &env.target.environment;
        return Err(OpsError::Usage(format!(
            "{name} receives only what {from} runs (promote_from = \"{from}\"), so `{command}` cannot target it; \
             run `deploy promote {from} {name}`"
        )));
    }
    Ok(())
}
