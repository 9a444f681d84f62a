//! Applies a [`Plan`] step by step: stage after stage, the steps of a stage concurrently,
//! stopping after the first stage with a failure. Whatever happens, the ledger records what was
//! done and the lock is given back.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::aws::{AwsClients, CallerIdentity, TargetError};
use crate::events::{Event, Reporter};
use crate::ledger::{
    Actor, ArtifactRef, AwsObject, Ledger, LedgerError, Operation, Outcome, PointerKind,
    ReleaseRecord, SCHEMA, new_release_id,
};
use crate::lock::{EnvLock, LockError, LockGuard, LockSettings};
use crate::plan::{Action, PLAN_FORMAT, Plan, PromoteSource, Step};

/// A boxed error from an embedder's step handler.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
}

/// Runs [`Action::Custom`] steps registered under a name.
pub trait StepHandler: Send + Sync {
    /// Runs the step with its input.
    fn run<'a>(
        &'a self,
        input: &'a serde_json::Value,
        clients: &'a AwsClients,
    ) -> Pin<Box<dyn Future<Output = Result<StepOutput, BoxError>> + Send + 'a>>;
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The account check or another AWS call failed.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The lock was held or lost.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The ledger could not be written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// An image could not be published.
    #[error(transparent)]
    Publish(#[from] crate::artifact::image::publish::PublishError),
    /// A scan gate stopped the image or could not decide.
    #[error(transparent)]
    Scan(#[from] crate::artifact::image::scan::ScanError),
    /// The step's action is not available in this build (rejected by [`Engine::check`] first).
    #[error("{action} is not available in this version of deploy")]
    Unsupported {
        /// Action name.
        action: &'static str,
    },
    /// The step reads an environment the engine has no clients for.
    #[error("no clients for environment `{environment}` (Engine::add_source)")]
    MissingSource {
        /// The environment.
        environment: String,
    },
    /// The image to scan is not known: nothing was published for the artifact.
    #[error("there is no published image of `{artifact}` in this run to scan")]
    NothingToScan {
        /// The artifact.
        artifact: String,
    },
    /// The source environment no longer runs what the plan promotes.
    #[error(
        "{environment} no longer runs release {planned} of `{artifact}` (it runs {now}); make a new plan"
    )]
    SourceMoved {
        /// Source environment.
        environment: String,
        /// Artifact.
        artifact: String,
        /// The release the plan promotes.
        planned: String,
        /// What is live there now.
        now: String,
    },
    /// An embedder's handler failed.
    #[error("custom step `{name}` failed: {source}")]
    Custom {
        /// Handler name.
        name: String,
        /// Its error.
        #[source]
        source: BoxError,
    },
}

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
    /// A step needs a capability this build does not have.
    #[error(
        "step {step} ({action}) is not available in this version of deploy; nothing was changed"
    )]
    Unsupported {
        /// Step id.
        step: usize,
        /// Action name.
        action: &'static str,
    },
    /// A step reads another environment whose clients were not given ([`Engine::add_source`]).
    #[error(
        "step {step} reads environment `{environment}`, and the engine has no clients for it; nothing was changed"
    )]
    MissingSource {
        /// Step id.
        step: usize,
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
    /// A custom step has no registered handler.
    #[error(
        "step {step} needs a handler named `{name}`, and none is registered; nothing was changed"
    )]
    MissingHandler {
        /// Step id.
        step: usize,
        /// Handler name.
        name: String,
    },
    /// The ledger moved since the plan was made.
    #[error(
        "the environment changed since the plan was made ({detail}); nothing was changed. Make a new plan"
    )]
    Stale {
        /// What changed.
        detail: String,
    },
    /// A step failed; the plan stopped.
    #[error("step {step} ({description}) failed: {source}")]
    StepFailed {
        /// Step id.
        step: usize,
        /// Step description.
        description: String,
        /// The cause.
        #[source]
        source: Box<StepError>,
    },
    /// The ledger could not be read before starting.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// Completed.
    Done,
    /// Failed.
    Failed,
    /// Not run because an earlier step failed.
    Skipped,
}

/// One step's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// Step id.
    pub step: usize,
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
}

/// An image a run pushed or copied, blob by blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageReport {
    /// Artifact.
    pub artifact: String,
    /// Whether the tag already held the image (nothing sent).
    pub unchanged: bool,
    /// Total size of the image's blobs.
    pub size: u64,
    /// The push: reference, digest, each blob's action, bytes sent.
    #[serde(flatten)]
    pub push: crate::registry::PushReport,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Plan id.
    pub plan_id: String,
    /// Every step, in order.
    pub steps: Vec<StepReport>,
    /// Records written.
    pub releases: Vec<RecordedRelease>,
    /// Images pushed or copied.
    pub images: Vec<ImageReport>,
    /// Scan gates passed (or reported).
    pub scans: Vec<crate::artifact::image::scan::ScanSummary>,
    /// Caller identity, once verified.
    pub identity: Option<CallerIdentity>,
}

/// A failed run: the error and everything done up to it.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ApplyFailure {
    /// What was done.
    pub report: ApplyReport,
    /// Why it stopped.
    #[source]
    pub error: EngineError,
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
    /// Registry push tuning.
    pub registry: crate::registry::RegistrySettings,
    /// How long scan gates wait for a scan, and how often they look.
    pub scan_wait: crate::artifact::image::scan::ScanWait,
}

/// Applies plans for one environment.
pub struct Engine {
    clients: AwsClients,
    sources: HashMap<String, AwsClients>,
    ledger: Ledger,
    reporter: Arc<dyn Reporter>,
    handlers: HashMap<String, Arc<dyn StepHandler>>,
    options: EngineOptions,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("environment", &self.clients.target.environment)
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct ArtifactRun {
    started_at: Option<OffsetDateTime>,
    output: StepOutput,
    recorded: bool,
}

#[derive(Default)]
struct RunState {
    identity: Option<CallerIdentity>,
    lock: Option<LockGuard>,
    artifacts: BTreeMap<String, ArtifactRun>,
    releases: Vec<RecordedRelease>,
    images: Vec<ImageReport>,
    scans: Vec<crate::artifact::image::scan::ScanSummary>,
}

impl Engine {
    /// An engine for the environment `clients` target.
    pub fn new(clients: AwsClients, reporter: Arc<dyn Reporter>, options: EngineOptions) -> Engine {
        let ledger = Ledger::new(clients.s3.clone(), &clients.target);
        Engine {
            clients,
            sources: HashMap::new(),
            ledger,
            reporter,
            handlers: HashMap::new(),
            options,
        }
    }

    /// Registers the handler for [`Action::Custom`] steps named `name`.
    pub fn register(&mut self, name: &str, handler: Arc<dyn StepHandler>) {
        self.handlers.insert(name.to_owned(), handler);
    }

    /// Adds the clients of another environment a plan reads from: the source of a promotion.
    pub fn add_source(&mut self, clients: AwsClients) {
        self.sources
            .insert(clients.target.environment.clone(), clients);
    }

    /// The clients of `environment`: this engine's own, or a source's.
    fn clients_of(&self, environment: &str) -> Option<&AwsClients> {
        if environment == self.clients.target.environment {
            Some(&self.clients)
        } else {
            self.sources.get(environment)
        }
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
        for step in &plan.steps {
            match &step.action {
                Action::RolloutImage { .. }
                | Action::SyncDags { .. }
                | Action::PublishLambda { .. }
                | Action::ShiftLambdaAlias { .. } => {
                    return Err(EngineError::Unsupported {
                        step: step.id,
                        action: step.action.name(),
                    });
                }
                Action::PromoteImage {
                    from: PromoteSource { environment, .. },
                    ..
                }
                | Action::ScanImage { environment, .. }
                    if self.clients_of(environment).is_none() =>
                {
                    return Err(EngineError::MissingSource {
                        step: step.id,
                        environment: environment.clone(),
                    });
                }
                Action::Custom { name, .. } if !self.handlers.contains_key(name) => {
                    return Err(EngineError::MissingHandler {
                        step: step.id,
                        name: name.clone(),
                    });
                }
                _ => {}
            }
        }
        Ok(())
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

    /// Runs `plan`. On failure the remaining steps are skipped, artifacts that were started are
    /// recorded as failed, and the lock is released.
    pub async fn apply(&self, plan: &Plan) -> Result<ApplyReport, Box<ApplyFailure>> {
        let started = Instant::now();
        let mut report = ApplyReport {
            plan_id: plan.id.clone(),
            steps: Vec::new(),
            releases: Vec::new(),
            images: Vec::new(),
            scans: Vec::new(),
            identity: None,
        };
        let fail = |report: ApplyReport, error| Err(Box::new(ApplyFailure { report, error }));
        if let Err(error) = self.check(plan) {
            return fail(report, error);
        }
        self.reporter.report(&Event::PlanStarted {
            plan_id: plan.id.clone(),
            environment: plan.environment.clone(),
            steps: plan.steps.len(),
        });
        let state = Mutex::new(RunState::default());
        let mut failure = None;
        let mut stages: Vec<usize> = plan.steps.iter().map(|s| s.stage).collect();
        stages.sort_unstable();
        stages.dedup();
        for stage in stages {
            let steps: Vec<&Step> = plan.steps.iter().filter(|s| s.stage == stage).collect();
            if failure.is_some() {
                report.steps.extend(steps.iter().map(|s| skipped(s)));
                continue;
            }
            if matches!(
                steps.first().map(|s| &s.action),
                Some(Action::AcquireLock { .. })
            ) && let Err(err) = self.preflight(plan).await
            {
                report.steps.extend(steps.iter().map(|s| skipped(s)));
                failure = Some(err);
                continue;
            }
            if let Some(lock) = state.lock().await.lock.as_ref()
                && let Err(err) = lock.check()
            {
                report.steps.extend(steps.iter().map(|s| skipped(s)));
                failure = Some(EngineError::StepFailed {
                    step: steps[0].id,
                    description: steps[0].description.clone(),
                    source: Box::new(err.into()),
                });
                continue;
            }
            let results = futures::future::join_all(
                steps.iter().map(|step| self.run_step(plan, step, &state)),
            )
            .await;
            for (step, (result, elapsed_ms)) in steps.iter().zip(results) {
                let status = if result.is_ok() {
                    StepStatus::Done
                } else {
                    StepStatus::Failed
                };
                report.steps.push(StepReport {
                    step: step.id,
                    description: step.description.clone(),
                    status,
                    elapsed_ms,
                });
                if let Err(source) = result {
                    self.reporter.report(&Event::StepFailed {
                        step: step.id,
                        error: source.to_string(),
                    });
                    if failure.is_none() {
                        failure = Some(EngineError::StepFailed {
                            step: step.id,
                            description: step.description.clone(),
                            source: Box::new(source),
                        });
                    }
                }
            }
            if failure.is_none()
                && matches!(
                    steps.first().map(|s| &s.action),
                    Some(Action::AcquireLock { .. })
                )
                && let Err(err) = self.check_preconditions(plan).await
            {
                failure = Some(err);
            }
        }
        if let Some(error) = &failure {
            self.record_failures(plan, &state, &error.to_string()).await;
        }
        let mut state = state.into_inner();
        if let Some(lock) = state.lock.take() {
            // Only reached on failure: a successful plan releases the lock in its last step.
            if let Err(err) = lock.release().await {
                tracing::warn!(%err, "could not release the lock after a failure; it expires on its own");
            }
            self.reporter.report(&Event::LockReleased {
                environment: plan.environment.clone(),
            });
        }
        report.releases = state.releases;
        report.images = state.images;
        report.scans = state.scans;
        report.identity = state.identity;
        self.reporter.report(&Event::PlanFinished {
            success: failure.is_none(),
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        match failure {
            None => Ok(report),
            Some(error) => fail(report, error),
        }
    }

    async fn run_step(
        &self,
        plan: &Plan,
        step: &Step,
        state: &Mutex<RunState>,
    ) -> (Result<(), StepError>, u64) {
        let started = Instant::now();
        self.reporter.report(&Event::StepStarted {
            step: step.id,
            artifact: step.artifact.clone(),
            description: step.description.clone(),
        });
        let span = tracing::info_span!("step", id = step.id, action = step.action.name());
        let _entered = span.enter();
        if let Some(artifact) = &step.artifact {
            state
                .lock()
                .await
                .artifacts
                .entry(artifact.clone())
                .or_default()
                .started_at
                .get_or_insert_with(OffsetDateTime::now_utc);
        }
        let result = self.execute(plan, step, state).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if result.is_ok() {
            self.reporter.report(&Event::StepFinished {
                step: step.id,
                elapsed_ms,
            });
        }
        (result, elapsed_ms)
    }

    async fn execute(
        &self,
        plan: &Plan,
        step: &Step,
        state: &Mutex<RunState>,
    ) -> Result<(), StepError> {
        match &step.action {
            Action::VerifyAccount { .. } => {
                let identity = self.clients.verify_account().await?;
                state.lock().await.identity = Some(identity);
            }
            Action::AcquireLock { .. } => {
                let lock = EnvLock::new(
                    self.ledger.clone(),
                    &plan.environment,
                    self.options.lock.clone(),
                );
                let actor = self.actor(state).await;
                let operation = format!("{:?} plan {}", plan.operation, plan.id).to_lowercase();
                let guard = lock
                    .acquire(
                        &actor,
                        &operation,
                        self.options.wait_lock,
                        self.reporter.as_ref(),
                    )
                    .await?;
                state.lock().await.lock = Some(guard);
            }
            Action::ReleaseLock { .. } => {
                let guard = state.lock().await.lock.take();
                if let Some(guard) = guard {
                    guard.release().await?;
                    self.reporter.report(&Event::LockReleased {
                        environment: plan.environment.clone(),
                    });
                }
            }
            Action::RecordRelease { kind, operation } => {
                let artifact = step.artifact.clone().unwrap_or_default();
                let record = self
                    .record(
                        plan,
                        state,
                        &artifact,
                        *kind,
                        *operation,
                        Outcome::Succeeded,
                    )
                    .await;
                self.commit(state, record).await?;
            }
            Action::Custom { name, input } => {
                let handler = self.handlers.get(name).cloned();
                let Some(handler) = handler else {
                    return Err(StepError::Custom {
                        name: name.clone(),
                        source: "no handler registered".into(),
                    });
                };
                let output = handler.run(input, &self.clients).await.map_err(|source| {
                    StepError::Custom {
                        name: name.clone(),
                        source,
                    }
                })?;
                if let Some(artifact) = &step.artifact {
                    let mut state = state.lock().await;
                    let run = state.artifacts.entry(artifact.clone()).or_default();
                    run.output.touched.extend(output.touched);
                    if output.artifact_ref.is_some() {
                        run.output.artifact_ref = output.artifact_ref;
                    }
                }
            }
            Action::PublishImage {
                repository,
                source,
                tag,
                create_repository,
            } => {
                let artifact = step.artifact.clone().unwrap_or_default();
                let progress = self.progress(&artifact);
                let request = self.publish_request(repository, source, tag, *create_repository);
                let started = Instant::now();
                let published =
                    crate::artifact::image::publish::publish(&self.clients, &request, &progress)
                        .await?;
                self.published(state, artifact, published, None, started)
                    .await;
            }
            Action::PromoteImage {
                repository,
                from,
                tag,
                create_repository,
            } => {
                let artifact = step.artifact.clone().unwrap_or_default();
                let progress = self.progress(&artifact);
                let request = self.promote_request(repository, from, tag, *create_repository);
                let source = self.source_of(&from.environment)?;
                let started = Instant::now();
                let published = crate::artifact::image::publish::promote(
                    &self.clients,
                    source,
                    &request,
                    &progress,
                )
                .await?;
                self.published(state, artifact, published, Some(from), started)
                    .await;
            }
            Action::ScanImage {
                environment,
                repository,
                digest,
                gate,
            } => {
                let artifact = step.artifact.clone().unwrap_or_default();
                let digest = match digest {
                    Some(digest) => digest.clone(),
                    None => {
                        let state = state.lock().await;
                        match state
                            .artifacts
                            .get(&artifact)
                            .and_then(|r| r.output.artifact_ref.as_ref())
                        {
                            Some(ArtifactRef::Image { digest, .. }) => digest.clone(),
                            _ => return Err(StepError::NothingToScan { artifact }),
                        }
                    }
                };
                let clients = self.source_of(environment)?;
                let result = crate::artifact::image::scan::check(
                    &clients.ecr,
                    repository,
                    &digest,
                    *gate,
                    self.options.scan_wait,
                    self.reporter.as_ref(),
                )
                .await;
                let summary = match &result {
                    Ok(summary) => Some(summary.clone()),
                    Err(crate::artifact::image::scan::ScanError::Blocked { summary, .. }) => {
                        Some(summary.as_ref().clone())
                    }
                    Err(_) => None,
                };
                if let Some(summary) = summary {
                    state.lock().await.scans.push(summary);
                }
                result?;
            }
            Action::RolloutImage { .. }
            | Action::SyncDags { .. }
            | Action::PublishLambda { .. }
            | Action::ShiftLambdaAlias { .. } => {
                return Err(StepError::Unsupported {
                    action: step.action.name(),
                });
            }
        }
        Ok(())
    }

    fn publish_request<'a>(
        &'a self,
        repository: &'a str,
        source: &'a crate::artifact::ImageSource,
        tag: &'a str,
        create_repository: bool,
    ) -> crate::artifact::image::publish::PublishRequest<'a> {
        crate::artifact::image::publish::PublishRequest {
            repository,
            source,
            source_root: &self.options.source_root,
            tag,
            create_repository,
            settings: self.options.registry.clone(),
        }
    }

    fn promote_request<'a>(
        &self,
        repository: &'a str,
        from: &'a PromoteSource,
        tag: &'a str,
        create_repository: bool,
    ) -> crate::artifact::image::publish::PromoteRequest<'a> {
        crate::artifact::image::publish::PromoteRequest {
            repository,
            from,
            tag,
            create_repository,
            settings: self.options.registry.clone(),
        }
    }

    /// Where the byte progress of `artifact`'s push goes.
    fn progress<'a>(&self, artifact: &'a str) -> crate::registry::Progress<'a> {
        crate::registry::Progress {
            artifact,
            reporter: self.reporter.clone(),
        }
    }

    fn source_of(&self, environment: &str) -> Result<&AwsClients, StepError> {
        self.clients_of(environment)
            .ok_or_else(|| StepError::MissingSource {
                environment: environment.to_owned(),
            })
    }

    /// Checks, before the lock is taken, what can be checked without changing anything:
    /// image sources open, repositories exist, a promotion's source environment (its account
    /// verified) still runs the release the plan copies and its registry has the image.
    async fn preflight(&self, plan: &Plan) -> Result<(), EngineError> {
        use crate::artifact::image::publish;
        let mut verified = std::collections::HashSet::new();
        for step in &plan.steps {
            let result: Result<(), StepError> = match &step.action {
                Action::PublishImage {
                    repository,
                    source,
                    tag,
                    create_repository,
                } => {
                    let request = self.publish_request(repository, source, tag, *create_repository);
                    publish::preflight(&self.clients, &request)
                        .await
                        .map(drop)
                        .map_err(StepError::from)
                }
                Action::PromoteImage {
                    repository,
                    from,
                    tag,
                    create_repository,
                } => {
                    async {
                        let source = self.source_of(&from.environment)?;
                        if verified.insert(from.environment.clone()) {
                            source.verify_account().await?;
                        }
                        let live = Ledger::new(source.s3.clone(), &source.target)
                            .pointer(&from.artifact, PointerKind::Live)
                            .await?
                            .map(|p| p.value.release_id);
                        if live.as_deref() != Some(from.release_id.as_str()) {
                            return Err(StepError::SourceMoved {
                                environment: from.environment.clone(),
                                artifact: from.artifact.clone(),
                                planned: from.release_id.clone(),
                                now: live.unwrap_or_else(|| "nothing".into()),
                            });
                        }
                        let request =
                            self.promote_request(repository, from, tag, *create_repository);
                        publish::promote_preflight(&self.clients, source, &request).await?;
                        Ok(())
                    }
                    .await
                }
                _ => Ok(()),
            };
            if let Err(source) = result {
                return Err(EngineError::Preflight {
                    artifact: step.artifact.clone().unwrap_or_default(),
                    source: Box::new(source),
                });
            }
        }
        Ok(())
    }

    /// Reports a push and keeps it for the record and the run's report.
    async fn published(
        &self,
        state: &Mutex<RunState>,
        artifact: String,
        published: crate::artifact::image::publish::Published,
        from: Option<&PromoteSource>,
        started: Instant,
    ) {
        self.reporter.report(&Event::Note {
            message: format!(
                "{artifact}: {}{}",
                published.push.reference,
                if published.unchanged {
                    " (already published, nothing sent)".to_owned()
                } else {
                    let count = |action| {
                        published
                            .push
                            .blobs
                            .iter()
                            .filter(|b| b.action == action)
                            .count()
                    };
                    let seconds = started.elapsed().as_secs_f64().max(0.001);
                    format!(
                        " ({} bytes sent in {seconds:.1}s, {:.1} MiB/s; {} blobs sent, {} skipped, {} mounted)",
                        published.push.bytes_sent,
                        published.push.bytes_sent as f64 / seconds / (1024.0 * 1024.0),
                        count(crate::registry::BlobAction::Sent),
                        count(crate::registry::BlobAction::Skipped),
                        count(crate::registry::BlobAction::Mounted),
                    )
                }
            ),
        });
        let mut state = state.lock().await;
        state.images.push(ImageReport {
            artifact: artifact.clone(),
            unchanged: published.unchanged,
            size: published.push.blobs.iter().map(|b| b.size).sum(),
            push: published.push,
        });
        let run = state.artifacts.entry(artifact).or_default();
        run.output.artifact_ref = Some(published.artifact_ref);
        run.output.touched.extend(published.touched);
        if let Some(from) = from {
            run.output.version.clone_from(&from.version);
            run.output.source_environment = Some(from.environment.clone());
        }
    }

    async fn actor(&self, state: &Mutex<RunState>) -> Actor {
        let mut actor = self.options.actor.clone();
        if let Some(identity) = &state.lock().await.identity {
            actor.aws_arn = Some(identity.arn.clone());
        }
        actor
    }

    async fn record(
        &self,
        plan: &Plan,
        state: &Mutex<RunState>,
        artifact: &str,
        kind: crate::artifact::ArtifactKind,
        operation: Operation,
        outcome: Outcome,
    ) -> ReleaseRecord {
        let actor = self.actor(state).await;
        let state = state.lock().await;
        let run = state.artifacts.get(artifact);
        let now = OffsetDateTime::now_utc();
        ReleaseRecord {
            schema: SCHEMA,
            id: new_release_id(now),
            project: plan.project.clone(),
            environment: plan.environment.clone(),
            artifact: artifact.to_owned(),
            kind,
            operation,
            version: run
                .and_then(|r| r.output.version.clone())
                .or_else(|| plan.version.clone()),
            artifact_ref: run.and_then(|r| r.output.artifact_ref.clone()),
            source_environment: run.and_then(|r| r.output.source_environment.clone()),
            started_at: run.and_then(|r| r.started_at).unwrap_or(now),
            finished_at: now,
            actor,
            touched: run.map(|r| r.output.touched.clone()).unwrap_or_default(),
            outcome,
            previous: None,
            plan_id: Some(plan.id.clone()),
        }
    }

    async fn commit(
        &self,
        state: &Mutex<RunState>,
        mut record: ReleaseRecord,
    ) -> Result<(), LedgerError> {
        let key = self.ledger.commit(&mut record).await?;
        self.reporter.report(&Event::ReleaseRecorded {
            artifact: record.artifact.clone(),
            release_id: record.id.clone(),
            outcome: match &record.outcome {
                Outcome::Succeeded => "succeeded",
                Outcome::Failed { .. } => "failed",
                Outcome::RolledBack { .. } => "rolled-back",
            }
            .into(),
        });
        let mut state = state.lock().await;
        if let Some(run) = state.artifacts.get_mut(&record.artifact) {
            run.recorded = true;
        }
        state.releases.push(RecordedRelease {
            artifact: record.artifact,
            release_id: record.id,
            key,
            outcome: record.outcome,
        });
        Ok(())
    }

    /// Writes a failed record for every artifact whose steps started but was not recorded.
    async fn record_failures(&self, plan: &Plan, state: &Mutex<RunState>, error: &str) {
        let state_now = state.lock().await;
        if state_now.lock.is_none() {
            // Without the lock this run must not write to the ledger.
            return;
        }
        let pending: Vec<(String, crate::artifact::ArtifactKind, Operation)> = plan
            .steps
            .iter()
            .filter_map(|s| match (&s.action, &s.artifact) {
                (Action::RecordRelease { kind, operation }, Some(artifact)) => {
                    Some((artifact.clone(), *kind, *operation))
                }
                _ => None,
            })
            .filter(|(artifact, _, _)| {
                state_now
                    .artifacts
                    .get(artifact)
                    .is_some_and(|r| r.started_at.is_some() && !r.recorded)
            })
            .collect();
        drop(state_now);
        for (artifact, kind, operation) in pending {
            let outcome = Outcome::Failed {
                error: error.to_owned(),
            };
            let record = self
                .record(plan, state, &artifact, kind, operation, outcome)
                .await;
            if let Err(err) = self.commit(state, record).await {
                tracing::warn!(%err, artifact, "could not record the failed release");
            }
        }
    }
}

fn skipped(step: &Step) -> StepReport {
    StepReport {
        step: step.id,
        description: step.description.clone(),
        status: StepStatus::Skipped,
        elapsed_ms: 0,
    }
}
