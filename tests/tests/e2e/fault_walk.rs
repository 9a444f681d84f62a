//! The fault walk: the release plan of every kind and strategy, each of its steps failing in
//! turn (the engine's intercept refuses it), each time in a fresh environment. After every run:
//! the steps after the failing one never started and the failure names it; the undos ran newest
//! first, exactly for the completed steps that declare one; what runs, read back through the
//! AWS APIs (moto and the doubles), is what ran before, except what a completed irreversible
//! step changed (or everything, when only the unlock failed); the ledger says so (nothing
//! before the lock, `rolled-back`, `failed` or `succeeded`), `live.json` moved only when the
//! run committed; and the lock is free. Every step of every plan is walked: a fresh
//! environment costs a second or two, so the whole file runs in well under a minute.
//!
//! Walked: `ecs-rolling` (with a health gate; with a migration), `codedeploy-blue-green` (plain;
//! with a migration and a health gate), `ecs-blue-green` (plain; with a migration),
//! `task-definitions` (with a rule, a schedule and a migration; keeping one revision), `dags`,
//! and Lambda `lambda-all-at-once` (with kept zips, without a bucket, first release, keeping
//! one version), `lambda-canary` (with kept zips, without a bucket) and `lambda-linear`. Images
//! with `strategy = "none"` are walked in `tests/tests/e2e/engine.rs`. Last, a plan of two artifacts
//! whose second record is refused beside the first one's.

use std::future::Future;

use deploy_core::engine::{ApplyFailure, Rollback};
use deploy_core::error::{Classify, ErrorClass};
use deploy_core::events::Event;
use deploy_core::plan::UndoKind;
use deploy_tests::rollout_faults::Ledger;
use deploy_tests::rollout_faults::ecs::Kind;
use deploy_tests::walk::{
    self, INJECTED, JobsExtras, LambdaVariant, Run, ServiceExtras, Truth, Walked,
};

/// What the steps of a plan must declare about their change, by step kind (the id after the
/// artifact): an undo that puts it back, one that puts back part of it, or none possible.
/// The plan's own declarations are checked against it, then each run against both.
#[derive(Debug, Clone, Copy)]
struct Undos {
    compensated: &'static [&'static str],
    partial: &'static [&'static str],
    irreversible: &'static [&'static str],
}

impl Undos {
    /// What a step of `kind` must declare in the plan.
    fn declared(&self, kind: &str) -> UndoKind {
        if self.compensated.contains(&kind) {
            UndoKind::Reversible
        } else if self.partial.contains(&kind) {
            UndoKind::Partial
        } else if self.irreversible.contains(&kind) {
            UndoKind::Irreversible
        } else {
            UndoKind::Nothing
        }
    }

    /// Whether a completed step of `kind` runs an undo.
    fn undoes(&self, kind: &str) -> bool {
        self.compensated.contains(&kind) || self.partial.contains(&kind)
    }

    /// Whether a completed step of `kind` leaves something changed.
    fn leaves(&self, kind: &str) -> bool {
        self.irreversible.contains(&kind) || self.partial.contains(&kind)
    }
}

/// The kind of a step id or a part of what runs: `api.rollout-image` is `rollout-image`,
/// `fn.publish-lambda#code` is `publish-lambda`; the engine's own steps (`verify-account`, ...)
/// are their own kind.
fn kind(id: &str) -> &str {
    let step = id.split_once('#').map_or(id, |(step, _)| step);
    step.split_once('.').map_or(step, |(_, kind)| kind)
}

/// One run of the walk: the plan's ids, the failing step's index and what the steps declare.
struct Case<'a> {
    ids: &'a [String],
    at: usize,
    undos: Undos,
}

impl Case<'_> {
    fn failing(&self) -> &str {
        &self.ids[self.at]
    }

    fn completed(&self) -> impl Iterator<Item = &str> {
        self.ids[..self.at].iter().map(String::as_str)
    }

    /// The unlock failed: everything else completed and was recorded, nothing is undone.
    fn committed(&self) -> bool {
        self.failing() == "release-lock"
    }

    fn locked(&self) -> bool {
        self.completed().any(|id| id == "acquire-lock")
    }

    fn irreversible_done(&self) -> bool {
        self.completed().any(|id| self.undos.leaves(kind(id)))
    }

    /// The undos that must run, in the order they must run.
    fn undone(&self) -> Vec<String> {
        if self.committed() {
            return Vec::new();
        }
        let mut undone: Vec<String> = self
            .completed()
            .filter(|id| self.undos.undoes(kind(id)))
            .map(str::to_owned)
            .collect();
        undone.reverse();
        undone
    }

    /// The outcome of the record the run must write, if any.
    fn outcome(&self) -> Option<&'static str> {
        if !self.locked() {
            None
        } else if self.committed() {
            Some("succeeded")
        } else if self.irreversible_done() || self.undone().is_empty() {
            Some("failed")
        } else {
            Some("rolled-back")
        }
    }

    fn label(&self) -> String {
        format!("failing {}", self.failing())
    }
}

/// What an environment runs and what its ledger says, before a run.
struct Before {
    truth: Truth,
    outcomes: Vec<String>,
    live: Option<serde_json::Value>,
}

impl Before {
    async fn read(env: &Walked) -> Before {
        Before {
            truth: env.truth().await,
            outcomes: env.ledger.outcomes().await,
            live: env.ledger.live().await,
        }
    }
}

/// Walks the release plan of the environments `fresh` makes: first checks the plan is `shape`,
/// then fails each step in turn in a fresh environment.
async fn walk<F, Fut>(shape: &[String], undos: Undos, fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Walked>,
{
    let probe = fresh().await;
    let plan = probe.plan(&probe.clients().await, "v2").await;
    let ids: Vec<String> = plan.steps.iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids, shape, "the plan walked");
    for step in &plan.steps {
        let declared = undos.declared(kind(&step.id));
        assert_eq!(step.undo, declared, "{}: what the plan declares", step.id);
        let says_what_stays = matches!(declared, UndoKind::Partial | UndoKind::Irreversible);
        assert_eq!(step.stays.is_some(), says_what_stays, "{}: stays", step.id);
    }
    for at in 0..ids.len() {
        let case = Case {
            ids: &ids,
            at,
            undos,
        };
        let env = fresh().await;
        let before = Before::read(&env).await;
        let run = env.release("v2", Some(case.failing())).await;
        let label = case.label();
        let Err(failure) = &run.result else {
            panic!("{label}: the run succeeded");
        };
        let context = format!("{label}: {}", failure.error);
        check_steps(&case, &run, &context);
        check_undos(&case, &run, &context);
        check_truth(&case, &before.truth, &env.truth().await, &context);
        check_ledger(&case, &env, &before, failure, &context).await;
        assert_eq!(
            run.events
                .iter()
                .any(|e| matches!(e, Event::LockReleased { .. })),
            case.locked(),
            "{context}: the lock is given back once taken"
        );
    }
}

/// Steps after the failing one never start; the failure names it.
fn check_steps(case: &Case<'_>, run: &Run, context: &str) {
    let expected = &case.ids[..=case.at];
    assert_eq!(run.reached, expected, "{context}: steps the engine came to");
    let started: Vec<&str> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StepStarted { step, .. } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(started, expected, "{context}: steps started");
    let failed: Vec<(&str, &str)> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StepFailed { step, error } => Some((step.as_str(), error.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(failed, [(case.failing(), INJECTED)], "{context}");
    assert!(
        matches!(
            run.events.last(),
            Some(Event::PlanFinished { success: false, .. })
        ),
        "{context}"
    );
}

/// The undos ran newest first, for exactly the completed steps that declare one, and none
/// failed.
fn check_undos(case: &Case<'_>, run: &Run, context: &str) {
    let (mut started, mut finished, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for event in &run.events {
        match event {
            Event::UndoStarted { step, .. } => started.push(step.clone()),
            Event::UndoFinished { step } => finished.push(step.clone()),
            Event::UndoFailed { step, error } => failed.push(format!("{step}: {error}")),
            _ => {}
        }
    }
    let expected = case.undone();
    assert_eq!(started, expected, "{context}: undos started");
    assert!(failed.is_empty(), "{context}: undos failed: {failed:?}");
    assert_eq!(finished, expected, "{context}: undos finished");
}

/// Each part of what runs is what it was, unless the step that changes it completed and its
/// change stays: the run was committed, or the step cannot be undone (a part after `#` is
/// what a partial undo leaves).
fn check_truth(case: &Case<'_>, before: &Truth, after: &Truth, context: &str) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "{context}"
    );
    for (part, was) in before {
        let step = part.split_once('#').map_or(part.as_str(), |(step, _)| step);
        let done = case.completed().any(|id| id == step);
        let stays = case.committed()
            || case.undos.irreversible.contains(&kind(part))
            || (case.undos.partial.contains(&kind(part)) && part.contains('#'));
        let now = &after[part];
        if done && stays {
            assert_ne!(now, was, "{context}: {part} keeps the change");
        } else {
            assert_eq!(now, was, "{context}: {part} is what it was");
        }
    }
}

/// The records the run added say what happened, older records stay, the live pointer moved
/// only to a succeeded record, the lock is free, and the run's class and rollback agree with
/// the record.
async fn check_ledger(
    case: &Case<'_>,
    env: &Walked,
    before: &Before,
    failure: &ApplyFailure,
    context: &str,
) {
    let outcomes = env.ledger.outcomes().await;
    let expected: Vec<String> = case
        .outcome()
        .into_iter()
        .map(str::to_owned)
        .chain(before.outcomes.iter().cloned())
        .collect();
    assert_eq!(outcomes, expected, "{context}: the ledger");
    let live = env.ledger.live().await;
    if case.committed() {
        let newest = env.ledger.newest().await.unwrap_or_default();
        let named = live.as_ref().map(|l| &l["release_id"]);
        assert_eq!(named, Some(&newest["id"]), "{context}: live.json");
    } else {
        assert_eq!(live, before.live, "{context}: live.json stays");
    }
    if let Err(lock) = env.ledger.lock_given_back().await {
        panic!("{context}: the lock is held: {lock}");
    }
    let rolled_back = case.outcome() == Some("rolled-back");
    let class = if rolled_back {
        ErrorClass::RolledBack
    } else {
        ErrorClass::Failure
    };
    assert_eq!(failure.class(), class, "{context}");
    let rollback = failure.error.rollback().expect("a step failed");
    match rollback {
        Rollback::Complete => assert!(rolled_back, "{context}"),
        Rollback::Incomplete { left } => {
            assert!(case.irreversible_done(), "{context}: left {left:?}");
        }
        Rollback::NotNeeded => assert!(case.undone().is_empty(), "{context}"),
    }
}

/// The shape of a release plan of `artifact` whose own steps are `work`.
fn shape(artifact: &str, work: &[&str]) -> Vec<String> {
    let own = work.iter().chain(&["record-release"]);
    ["verify-account", "acquire-lock"]
        .into_iter()
        .map(str::to_owned)
        .chain(own.map(|step| format!("{artifact}.{step}")))
        .chain(["release-lock".to_owned()])
        .collect()
}

const SERVICE: Undos = Undos {
    compensated: &["rollout-image"],
    partial: &[],
    irreversible: &[],
};

const MIGRATED_SERVICE: Undos = Undos {
    compensated: &["rollout-image"],
    partial: &[],
    irreversible: &["run-migration"],
};

/// Walks a service rolled out with `kind` and `extras`.
async fn service(kind: Kind, extras: ServiceExtras) {
    let mut work = vec!["publish-image"];
    work.extend(extras.migration.then_some("run-migration"));
    work.push("rollout-image");
    work.extend(extras.health.then_some("check-health"));
    let undos = if extras.migration {
        MIGRATED_SERVICE
    } else {
        SERVICE
    };
    walk(&shape("api", &work), undos, || walk::service(kind, extras)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_rolling_with_a_health_gate() {
    let extras = ServiceExtras {
        migration: false,
        health: true,
    };
    service(Kind::Rolling, extras).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_rolling_with_a_migration() {
    let extras = ServiceExtras {
        migration: true,
        health: false,
    };
    service(Kind::Rolling, extras).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn codedeploy_blue_green_with_a_migration_and_a_health_gate() {
    let extras = ServiceExtras {
        migration: true,
        health: true,
    };
    service(Kind::CodeDeploy, extras).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn codedeploy_blue_green() {
    let extras = ServiceExtras {
        migration: false,
        health: false,
    };
    service(Kind::CodeDeploy, extras).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_blue_green() {
    let extras = ServiceExtras {
        migration: false,
        health: false,
    };
    service(Kind::BlueGreen, extras).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_blue_green_with_a_migration() {
    let extras = ServiceExtras {
        migration: true,
        health: false,
    };
    service(Kind::BlueGreen, extras).await;
}

/// Walks the jobs with `extras`.
async fn jobs(extras: JobsExtras) {
    let mut work = vec!["publish-image"];
    work.extend(extras.migration.then_some("run-migration"));
    work.push("rollout-image");
    let undos = if extras.migration {
        MIGRATED_SERVICE
    } else {
        SERVICE
    };
    walk(&shape("etl", &work), undos, || walk::jobs(extras)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn task_definitions_with_a_rule_a_schedule_and_a_migration() {
    let extras = JobsExtras {
        migration: true,
        crowded: false,
    };
    jobs(extras).await;
}

/// Someone registered a revision after the one the rule pins, and the rollout keeps one
/// revision besides the newest: the pinned one, which an undo points the rule back at, must
/// stay ACTIVE.
#[tokio::test(flavor = "multi_thread")]
async fn task_definitions_keeping_one_revision() {
    let extras = JobsExtras {
        migration: false,
        crowded: true,
    };
    jobs(extras).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dags_sync() {
    let undos = Undos {
        compensated: &["sync-dags"],
        partial: &[],
        irreversible: &[],
    };
    let shape = shape("dags", &["sync-dags"]);
    walk(&shape, undos, || walk::dags(false)).await;
}

const KEPT_ZIPS: Undos = Undos {
    compensated: &["publish-lambda", "shift-lambda-alias"],
    partial: &[],
    irreversible: &[],
};

/// Without a kept zip, `$LATEST` keeps the new code: the publish's undo puts back only the
/// variables.
const NO_BUCKET: Undos = Undos {
    compensated: &["shift-lambda-alias"],
    partial: &["publish-lambda"],
    irreversible: &[],
};

/// Walks the function released with `rollout`, `variant` and `keys` (see [`walk::lambda`]).
async fn lambda(rollout: &str, variant: LambdaVariant, keys: &str) {
    let undos = match variant {
        LambdaVariant::KeptZips => KEPT_ZIPS,
        LambdaVariant::NoBucket | LambdaVariant::FirstRelease => NO_BUCKET,
    };
    let shape = shape("fn", &["publish-lambda", "shift-lambda-alias"]);
    walk(&shape, undos, || walk::lambda(rollout, variant, keys)).await;
}

const ALL_AT_ONCE: &str = "{ strategy = \"lambda-all-at-once\" }";

#[tokio::test(flavor = "multi_thread")]
async fn lambda_all_at_once_with_kept_zips() {
    lambda(ALL_AT_ONCE, LambdaVariant::KeptZips, "").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_all_at_once_without_a_bucket() {
    lambda(ALL_AT_ONCE, LambdaVariant::NoBucket, "").await;
}

/// The first release: the alias does not exist yet (the shift creates it, its undo deletes
/// it), and the code `$LATEST` ran before was never kept.
#[tokio::test(flavor = "multi_thread")]
async fn lambda_all_at_once_first_release() {
    lambda(ALL_AT_ONCE, LambdaVariant::FirstRelease, "").await;
}

/// `keep_versions = 1`: the versions deleted after the shift must not include the one an undo
/// points the alias back at.
#[tokio::test(flavor = "multi_thread")]
async fn lambda_all_at_once_keeping_one_version() {
    lambda(ALL_AT_ONCE, LambdaVariant::KeptZips, "keep_versions = 1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_canary_with_kept_zips() {
    let rollout = "{ strategy = \"lambda-canary\", steps = [50, 100], interval = \"1s\", alarms = [\"ALARM\"], max_errors = 5 }";
    lambda(rollout, LambdaVariant::KeptZips, "").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_canary_without_a_bucket() {
    let rollout = "{ strategy = \"lambda-canary\", steps = [50, 100], interval = \"1s\" }";
    lambda(rollout, LambdaVariant::NoBucket, "").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_linear_with_kept_zips() {
    let rollout =
        "{ strategy = \"lambda-linear\", increment = 50, interval = \"1s\", alarms = [\"ALARM\"] }";
    lambda(rollout, LambdaVariant::KeptZips, "").await;
}

/// Two DAG artifacts released together, the record of `more` refused while the one of `dags`
/// is written: `dags` is released and recorded, and what the ledger says of `more` is true:
/// either its sync was undone and recorded rolled back, or its files stay and no record
/// contradicts that (ledger rule 3: a run that cannot record says what runs).
#[tokio::test(flavor = "multi_thread")]
async fn a_record_refused_beside_a_written_one_leaves_a_true_ledger() {
    let env = walk::dags(true).await;
    let more = Ledger::new(&env.ledger.bucket, "more");
    let (before, recorded) = (env.truth().await, more.outcomes().await);
    let run = env.release("v2", Some("more.record-release")).await;
    let Err(failure) = &run.result else {
        panic!("the run succeeded");
    };
    let context = failure.error.to_string();
    let after = env.truth().await;
    assert_ne!(
        after["dags.sync-dags"], before["dags.sync-dags"],
        "{context}"
    );
    assert_eq!(env.ledger.outcomes().await[0], "succeeded", "{context}");
    let now = more.outcomes().await;
    if after["more.sync-dags"] == before["more.sync-dags"] {
        assert_eq!(now[0], "rolled-back", "{context}: more was undone");
    } else {
        assert_eq!(
            now, recorded,
            "{context}: more's files stay; no record says otherwise"
        );
        let left = match failure.error.rollback() {
            Some(Rollback::Incomplete { left }) => left.clone(),
            other => panic!("{context}: more's release stays, yet the rollback is {other:?}"),
        };
        assert!(
            left.iter().any(|l| l.contains("more")),
            "the error names what stays: {left:?}"
        );
        assert_eq!(failure.class(), ErrorClass::Failure, "{context}");
    }
    if let Err(lock) = env.ledger.lock_given_back().await {
        panic!("{context}: the lock is held: {lock}");
    }
}
