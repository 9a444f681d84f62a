//! Lambda rollouts on the alias (`shift-lambda-alias`): all at once, or canary / linear
//! through the alias's routing weights, with the gate (alarms, the new version's `Errors`,
//! the health check) between steps. A failed gate, a timeout or a cancellation puts the alias
//! back on the previous version with no routing; once done, the step's undo does the same
//! when a later step fails.

pub(crate) mod alias;
mod cleanup;
pub(crate) mod config;
pub(crate) mod gate;
pub(crate) mod plan;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::{
    BoxFuture, CheckContext, Done, Engine, EngineError, Preflight, StepContext, StepError,
    StepHandler, StepOutput, Undo, UndoFailed,
};
use crate::error::ErrorClass;
use crate::events::Event;
use crate::kinds::lambda::output::LambdaOutput;
use crate::kinds::lambda::plan::{PromoteLambda, PublishLambda};
use crate::kinds::lambda::publish::LambdaError;
use crate::kinds::lambda::restore::RestoreLambda;
use crate::ledger::AwsObject;
use crate::plan::{ActionInput, Step};
use crate::rollout::{HealthCheck, Strategy};
use alias::Alias;
use gate::GateFailed;
pub use plan::{ShiftLambdaAlias, lambda_steps};

/// Rollout of a Lambda function behind an alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LambdaRollout {
    /// The strategy (one of the `lambda-*` ones).
    pub strategy: Strategy,
    /// Cumulative traffic percentages on the new version, ending at 100.
    pub steps: Vec<u32>,
    /// Wait between steps.
    #[serde(with = "crate::duration_serde")]
    pub interval: Duration,
    /// CloudWatch alarms that must stay OK between steps.
    pub alarms: Vec<String>,
    /// HTTP check between steps.
    pub health_check: Option<HealthCheck>,
    /// The new version's `Errors` (CloudWatch sum over the interval) that stop the rollout
    /// when exceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_errors: Option<u64>,
}

impl LambdaRollout {
    /// This rollout as a rollback runs it: all at once (the gates still checked once) unless
    /// `gradual` (the configured steps and gates).
    pub fn for_rollback(&self, gradual: bool) -> LambdaRollout {
        if gradual {
            return self.clone();
        }
        LambdaRollout {
            strategy: Strategy::LambdaAllAtOnce,
            steps: vec![100],
            ..self.clone()
        }
    }
}

/// Settings of alias shifts.
#[derive(Debug, Clone)]
pub struct ShiftSettings {
    /// First pause between health-check attempts.
    pub poll: Duration,
    /// Replaces every rollout's `interval` when set (tests, embedders).
    pub interval: Option<Duration>,
    /// Each artifact's `keep_versions`; artifacts not listed keep every version.
    pub keep_versions: BTreeMap<String, u32>,
}

impl Default for ShiftSettings {
    fn default() -> Self {
        ShiftSettings {
            poll: Duration::from_secs(5),
            interval: None,
            keep_versions: BTreeMap::new(),
        }
    }
}

/// Registers the alias shift with `engine`.
pub fn register(engine: &mut Engine, settings: ShiftSettings) {
    engine.register(ShiftLambdaAlias::TYPE, Arc::new(ShiftStep(settings)));
}

/// The alias shift has no version to move to: nothing is published or restored for the
/// artifact in this run (a `rollout` of a Lambda function).
#[derive(Debug, thiserror::Error)]
#[error(
    "there is no published version of `{artifact}` in this run to move the alias to; \
     Lambda functions are rolled out by `release`, `promote` and `rollback`"
)]
pub struct NothingPublished {
    /// The artifact.
    pub artifact: String,
}

impl crate::error::Classify for NothingPublished {
    fn class(&self) -> ErrorClass {
        ErrorClass::Usage
    }
}

/// A release of a Lambda artifact that has no `source`: there is no code to publish, so no
/// version to move the alias to.
#[derive(Debug, thiserror::Error)]
#[error(
    "Lambda artifact `{artifact}` has no `source`, so this release publishes no version to \
     move the alias to; set `source` to the function's directory or .zip"
)]
pub struct NoSource {
    /// The artifact.
    pub artifact: String,
}

impl crate::error::Classify for NoSource {
    fn class(&self) -> ErrorClass {
        ErrorClass::Usage
    }
}

/// What the undo of a shift needs: the version the alias pointed at before (none: the shift
/// created the alias).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Previous {
    previous: Option<String>,
}

/// An alias shift, as the report's `lambda_aliases` section lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AliasReport {
    /// Artifact.
    pub artifact: String,
    /// `function:alias`.
    pub alias: String,
    /// The version the alias pointed at before.
    pub previous: Option<String>,
    /// The version it points at now.
    pub version: String,
    /// The traffic weights it went through (percent on the new version).
    pub weights: Vec<u32>,
}

struct ShiftStep(ShiftSettings);

impl StepHandler for ShiftStep {
    fn check(&self, step: &Step, cx: &CheckContext<'_>) -> Result<(), EngineError> {
        cx.input::<ShiftLambdaAlias>(step).map(drop)
    }

    fn preflight<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Preflight, StepError>> {
        Box::pin(async move {
            let input: ShiftLambdaAlias = step.action.input()?;
            let artifact = step.artifact_name();
            let fed = cx.plan().steps.iter().any(|s| {
                s.artifact.as_deref() == Some(artifact)
                    && [
                        PublishLambda::TYPE,
                        PromoteLambda::TYPE,
                        RestoreLambda::TYPE,
                    ]
                    .contains(&s.action.name())
            });
            if !fed && cx.plan().operation.publishes() {
                return Err(StepError::from(NoSource {
                    artifact: artifact.to_owned(),
                }));
            }
            if !fed {
                return Err(StepError::from(NothingPublished {
                    artifact: artifact.to_owned(),
                }));
            }
            gate::check_alarms_exist(cx.clients().cloudwatch(), &input.rollout.alarms).await?;
            super::unchanged::shift(cx, artifact, &input).await
        })
    }

    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input: ShiftLambdaAlias = step.action.input()?;
            let artifact = step.artifact_name();
            let Some(output) = cx.get::<LambdaOutput>(artifact) else {
                return Err(StepError::from(NothingPublished {
                    artifact: artifact.to_owned(),
                }));
            };
            self.shift(cx, artifact, &input, &output.version).await
        })
    }

    fn undo<'a>(
        &'a self,
        step: &'a Step,
        data: &'a serde_json::Value,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let input: ShiftLambdaAlias = step.action.input()?;
            let previous: Previous = Undo::decode(data)?;
            let alias = Alias::new(cx.clients().lambda(), &input.function, &input.alias);
            alias.restore(previous.previous.as_deref()).await?;
            Ok(())
        })
    }

    fn report_sections(&self) -> &'static [&'static str] {
        &["lambda_aliases"]
    }
}

/// One run of a shift: where the alias is and where it goes.
struct Shift<'a> {
    cx: &'a StepContext<'a>,
    artifact: &'a str,
    input: &'a ShiftLambdaAlias,
    alias: Alias<'a>,
    previous: Option<String>,
    version: &'a str,
}

impl ShiftStep {
    async fn shift(
        &self,
        cx: &StepContext<'_>,
        artifact: &str,
        input: &ShiftLambdaAlias,
        version: &str,
    ) -> Result<Done, StepError> {
        let alias = Alias::new(cx.clients().lambda(), &input.function, &input.alias);
        let state = alias.read().await?;
        let weights = match &state {
            Some(s) if s.version == version && s.routing.is_empty() => Vec::new(),
            Some(s) if s.version != version => input.rollout.steps.clone(),
            _ => vec![100],
        };
        let shift = Shift {
            cx,
            artifact,
            input,
            alias,
            previous: state.map(|s| s.version),
            version,
        };
        let mut report = AliasReport {
            artifact: artifact.to_owned(),
            alias: format!("{}:{}", input.function, input.alias),
            previous: shift.previous.clone(),
            version: version.to_owned(),
            weights: Vec::new(),
        };
        let undo = Undo::compensate(
            match &shift.previous {
                Some(p) => format!("point alias {} back at version {p}", report.alias),
                None => format!("delete alias {}", report.alias),
            },
            &Previous {
                previous: shift.previous.clone(),
            },
        )?;
        // A run killed between the canary's steps is settled by putting the alias back.
        cx.journal(&undo).await;
        let result = shift.walk(&self.0, &weights, &mut report.weights).await;
        cx.report_item("lambda_aliases", &report);
        if let Err(err) = result {
            return Err(shift.roll_back(err).await);
        }
        if let Some(keep) = self.0.keep_versions.get(artifact) {
            let undo_target = shift.previous.as_deref();
            prune(cx, artifact, &input.function, *keep, undo_target).await;
        }
        Ok(Done {
            record: StepOutput {
                touched: vec![AwsObject {
                    kind: "lambda-alias".into(),
                    id: report.alias.clone(),
                }],
                ..StepOutput::default()
            },
            undo,
        })
    }
}

impl Shift<'_> {
    /// Moves the alias through `weights`, the gate after each step; `done` gets each weight
    /// reached.
    async fn walk(
        &self,
        settings: &ShiftSettings,
        weights: &[u32],
        done: &mut Vec<u32>,
    ) -> Result<(), StepError> {
        let rollout = &self.input.rollout;
        let interval = settings.interval.unwrap_or(rollout.interval);
        let gate = gate::Gate {
            cloudwatch: self.cx.clients().cloudwatch(),
            function: &self.input.function,
            version: self.version,
            window: interval.max(Duration::from_secs(60)),
            rollout,
            poll: settings.poll,
        };
        for (index, weight) in weights.iter().copied().enumerate() {
            match self.previous.as_deref() {
                Some(previous) if weight < 100 => {
                    self.alias.route(previous, self.version, weight).await?;
                }
                Some(_) => self.alias.point(self.version).await?,
                None => self.alias.create(self.version).await?,
            }
            done.push(weight);
            let next = match weights.get(index + 1) {
                Some(next) => format!("; {next}% in {}", humantime::format_duration(interval)),
                None => String::new(),
            };
            self.cx.reporter().report(&Event::RolloutProgress {
                artifact: self.artifact.to_owned(),
                percent: u8::try_from(weight).unwrap_or(100),
                detail: format!(
                    "of alias {} on version {}{next}",
                    self.input.alias, self.version
                ),
                remaining_ms: None,
            });
            if index + 1 < weights.len() {
                pause(self.cx, interval).await?;
            }
            gate.check(self.cx, self.artifact).await?;
        }
        Ok(())
    }

    /// Puts the alias back after a failed step; the error says whether that worked. An alias
    /// someone else moved meanwhile (a refused `RevisionId`) is left as they set it.
    async fn roll_back(&self, err: StepError) -> StepError {
        if matches!(
            err.inner().downcast_ref(),
            Some(LambdaError::Conflict { .. })
        ) {
            return err;
        }
        let previous = self.previous.as_deref();
        if let Err(undo) = self.alias.restore(previous).await {
            return UndoFailed::error(err, "the alias", undo);
        }
        self.cx.reporter().report(&Event::Note {
            message: format!(
                "{}: alias {} put back on {}",
                self.artifact,
                self.input.alias,
                previous.unwrap_or("nothing (deleted)")
            ),
        });
        let class = if err.inner().is::<GateFailed>() {
            ErrorClass::RolledBack
        } else {
            err.class()
        };
        StepError::new(class, err).rolled_back()
    }
}

/// Deletes old versions (`keep_versions`); a failure is reported, not fatal: the release is
/// done and the next one tries again.
async fn prune(
    cx: &StepContext<'_>,
    artifact: &str,
    function: &str,
    keep: u32,
    previous: Option<&str>,
) {
    let lambda = &cx.clients().lambda();
    let message = match cleanup::prune(lambda, function, keep, previous).await {
        Ok(deleted) if deleted.is_empty() => return,
        Ok(deleted) => format!(
            "{artifact}: deleted versions {} of {function} (keep_versions = {keep})",
            deleted.join(", ")
        ),
        Err(err) => format!("{artifact}: old versions of {function} were not deleted: {err}"),
    };
    cx.reporter().report(&Event::Note { message });
}

/// Waits `interval`, or fails when the run is cancelled.
async fn pause(cx: &StepContext<'_>, interval: Duration) -> Result<(), StepError> {
    crate::wait::sleep(interval, Some(cx.cancel))
        .await
        .map_err(|_| StepError::failure(LambdaError::Stopped))
}
