//! Plans: the ordered, serializable steps a command will take. Every mutating command builds a
//! plan first; `--dry-run` prints it, `plan --out` saves it, `apply` runs a saved one.
//!
//! A plan is made without changing anything. Steps carry their inputs and the AWS objects they
//! will touch, and name the steps they need: a step runs once its needs are done, so the
//! publishes of several artifacts run concurrently. `preconditions` capture what the ledger said
//! when the plan was made; applying refuses if that changed.
//!
//! [`Plan::build`] only assembles: the account check and the lock ([`core`]), each artifact's
//! steps from its kind's planner, then the records and the unlock.

mod action;
mod build;
pub mod core;
mod steps;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::ArtifactSpec;
use crate::config::Environment;
use crate::ledger::{
    ArtifactRef, ArtifactStatus, AwsObject, Operation, PointerKind, new_release_id,
};
use crate::lock::rfc3339;
use crate::target::Target;

pub use action::{Action, ActionInput, InvalidInput};
pub use build::ArtifactPlanner;
pub use steps::{Chain, StepList};

/// The plan document format this library reads and writes.
pub const PLAN_FORMAT: u32 = 3;

/// A command's plan for one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Document format ([`PLAN_FORMAT`]).
    pub format: u32,
    /// Plan id (also the `plan_id` of the records it writes).
    pub id: String,
    /// Project.
    pub project: String,
    /// Environment.
    pub environment: String,
    /// Account the plan may change.
    pub account: String,
    /// Region.
    pub region: String,
    /// What the plan does overall.
    pub operation: Operation,
    /// The version released, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// When each artifact's released commit was made (RFC 3339), where known: the records
    /// carry it, and lead time counts from it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub commit_times: BTreeMap<String, String>,
    /// The version is the HEAD commit of a work tree with uncommitted changes (the records
    /// say `dirty`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dirty: bool,
    /// When the plan was made (RFC 3339).
    pub created_at: String,
    /// SHA-256 of the configuration file the plan was made from.
    pub config_sha256: String,
    /// SHA-256 of `config_sha256` and the rest of the plan ([`Plan::expected_seal`]): a plan
    /// whose steps, inputs or preconditions were edited after it was made no longer matches
    /// it, and `apply` refuses it.
    #[serde(default)]
    pub seal: String,
    /// What the ledger said when the plan was made.
    pub preconditions: Vec<Precondition>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// A ledger pointer value the plan was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precondition {
    /// Artifact.
    pub artifact: String,
    /// Which pointer.
    pub pointer: PointerKind,
    /// The release it pointed at (`null`: none yet).
    pub release_id: Option<String>,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// A name unique in the plan (`acquire-lock`, `api.publish-image`): other steps name it in
    /// `needs`, and adding a step leaves every other id as it was.
    pub id: String,
    /// The steps that must finish first. Steps whose needs are met run concurrently.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// The artifact this step belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// One line for humans.
    pub description: String,
    /// What to do, with its inputs.
    pub action: Action,
    /// AWS objects the step will create or change.
    #[serde(default)]
    pub touches: Vec<AwsObject>,
    /// What becomes of the step's change when a later step fails, as its kind declares it.
    #[serde(default)]
    pub undo: UndoKind,
    /// What stays changed when the step's change is `partial` or `irreversible`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stays: Option<String>,
}

/// How a step's change is undone when a later step of the run fails (as a plan shows it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UndoKind {
    /// The step changes nothing that needs putting back (a check, a gate, the record).
    #[default]
    Nothing,
    /// What the step changes is put back.
    Reversible,
    /// Part of what the step changes is put back; the step's `stays` says what is not.
    Partial,
    /// What the step changes stays changed; the step's `stays` says what.
    Irreversible,
}

/// What a step's kind declares about undoing its change, before it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Reversibility {
    /// It changes nothing that needs putting back.
    #[default]
    Nothing,
    /// What it changes is put back when a later step fails.
    Reversible,
    /// Part of it is put back; this stays changed.
    Partial(String),
    /// Nothing can put it back; this stays changed.
    Irreversible(String),
}

impl Reversibility {
    /// The kind, and what stays changed, as a step keeps them.
    pub fn split(self) -> (UndoKind, Option<String>) {
        match self {
            Reversibility::Nothing => (UndoKind::Nothing, None),
            Reversibility::Reversible => (UndoKind::Reversible, None),
            Reversibility::Partial(stays) => (UndoKind::Partial, Some(stays)),
            Reversibility::Irreversible(stays) => (UndoKind::Irreversible, Some(stays)),
        }
    }
}

impl Step {
    /// The name of the artifact the step belongs to; empty for the engine's own steps.
    pub fn artifact_name(&self) -> &str {
        self.artifact.as_deref().unwrap_or_default()
    }
}

/// The release a promotion copies: what is live in the source environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromoteSource {
    /// Artifact.
    pub artifact: String,
    /// Source environment.
    pub environment: String,
    /// The source's live release.
    pub release_id: String,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its exact bytes.
    pub artifact_ref: ArtifactRef,
    /// When its commit was made, if the release recorded it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub commit_time: Option<OffsetDateTime>,
    /// What the release recorded it created or changed (a rollback restores from it: the
    /// task definition revision a service ran, say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub touched: Vec<AwsObject>,
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    /// The environment.
    pub environment: &'a Environment,
    /// Artifacts to include (all when empty is resolved by the caller with [`Environment::select`]).
    pub artifacts: Vec<&'a ArtifactSpec>,
    /// What to do.
    pub operation: Operation,
    /// Version to publish or roll out.
    pub version: Option<String>,
    /// SHA-256 of the configuration ([`crate::config::Config::sha256`]).
    pub config_sha256: &'a str,
    /// Lock lease length.
    pub lock_ttl: Duration,
    /// What the ledger says now, one entry per artifact.
    pub status: &'a [ArtifactStatus],
    /// For [`Operation::Promote`]: the source environment's live release of each artifact;
    /// for [`Operation::Rollback`]: the release of this environment each artifact goes back to.
    pub promote: &'a [PromoteSource],
    /// For [`Operation::Rollback`]: shift traffic back with the configured canary or linear
    /// steps and gates instead of all at once.
    pub gradual: bool,
    /// When the released commit was made (a release; promotions and rollbacks take their
    /// source release's from [`PromoteSource::commit_time`]).
    pub commit_time: Option<OffsetDateTime>,
}

impl Plan {
    /// The plan of `steps` for `target`: the shared envelope (id, target, time).
    pub fn envelope(
        target: &Target,
        operation: Operation,
        version: Option<String>,
        config_sha256: &str,
        preconditions: Vec<Precondition>,
        steps: Vec<Step>,
    ) -> Plan {
        let now = OffsetDateTime::now_utc();
        let mut plan = Plan {
            format: PLAN_FORMAT,
            id: new_release_id(now),
            project: target.project.clone(),
            environment: target.environment.clone(),
            account: target.account.to_string(),
            region: target.region.clone(),
            operation,
            version,
            commit_times: BTreeMap::new(),
            dirty: false,
            created_at: rfc3339(now),
            config_sha256: config_sha256.to_owned(),
            seal: String::new(),
            preconditions,
            steps,
        };
        plan.seal = plan.expected_seal();
        plan
    }

    /// The seal of this plan as it is now: SHA-256 of the configuration's hash and the plan's
    /// JSON with an empty seal.
    pub fn expected_seal(&self) -> String {
        let unsealed = Plan {
            seal: String::new(),
            ..self.clone()
        };
        let body = serde_json::to_string(&unsealed).unwrap_or_default();
        crate::hash::sha256_hex(format!("{}\n{body}", self.config_sha256).as_bytes())
    }

    /// The step named `id`.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The plan as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a plan saved with `plan --out`.
    pub fn from_json(text: &str) -> Result<Plan, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// An S3 object as a touched AWS object.
pub(crate) fn s3_object(bucket: &str, key: &str) -> AwsObject {
    AwsObject {
        kind: "s3-object".into(),
        id: format!("s3://{bucket}/{key}"),
    }
}
