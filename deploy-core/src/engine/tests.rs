//! The engine on its own: scheduling by needs, undo newest first, cancellation, checks. Plans
//! here have only probe steps (no account check, lock or record), so nothing reaches AWS;
//! the same paths with the lock and the ledger run against moto in `tests/tests/e2e/engine.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::events::{Event, Recorder};
use crate::ledger::Operation;
use crate::plan::{Action, Step, StepList};
use crate::target::Target;

/// What a probe step does when run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
    /// Completes with an undo.
    Change,
    /// Completes with nothing to undo.
    Gate,
    /// Completes; cannot be undone.
    Irreversible,
    /// Fails.
    Fail,
    /// Fails as a blocking gate.
    Block,
    /// Fails, and AWS already rolled it back.
    FailUndoneByAws,
    /// Completes with an undo that fails.
    ChangeBadUndo,
    /// Waits for the run's cancellation, then fails.
    WaitForCancel,
    /// Waits for the run's cancellation and ignores it.
    Stuck,
}

#[derive(Default)]
struct Probe {
    acts: Mutex<HashMap<String, Act>>,
    log: Mutex<Vec<String>>,
}

impl Probe {
    fn log(&self, line: String) {
        self.log.lock().expect("log").push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    fn act(&self, step: &str) -> Act {
        self.acts
            .lock()
            .expect("acts")
            .get(step)
            .copied()
            .unwrap_or(Act::Change)
    }
}

impl StepHandler for Probe {
    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let act = self.act(&step.id);
            self.log(format!("run {}", step.id));
            match act {
                Act::Fail => return Err(StepError::failure("probe failure")),
                Act::Block => return Err(StepError::blocked("probe gate")),
                Act::FailUndoneByAws => {
                    return Err(StepError::failure("probe failure").rolled_back());
                }
                Act::WaitForCancel => {
                    cx.cancelled().await;
                    self.log(format!("stopped {}", step.id));
                    return Err(StepError::failure("stopped"));
                }
                Act::Stuck => std::future::pending::<()>().await,
                _ => {}
            }
            cx.put(step.artifact.as_deref().unwrap_or(""), step.id.clone());
            let undo = match act {
                Act::Gate => Undo::Nothing,
                Act::Irreversible => Undo::Irreversible {
                    left: "probe change".into(),
                },
                _ => Undo::Compensate {
                    description: format!("revert {}", step.id),
                    data: serde_json::json!({ "bad": act == Act::ChangeBadUndo }),
                },
            };
            Ok(Done {
                undo,
                ..Done::default()
            })
        })
    }

    fn undo<'a>(
        &'a self,
        step: &'a Step,
        data: &'a serde_json::Value,
        _cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            self.log(format!("undo {}", step.id));
            if data["bad"] == true {
                return Err(StepError::failure("probe undo failure"));
            }
            Ok(())
        })
    }
}

fn engine(probe: Arc<Probe>, recorder: Arc<Recorder>) -> Engine {
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .build();
    let clients = AwsClients::from_sdk_config(&Target::for_tests("dev"), &sdk);
    let mut options = EngineOptions::new(Duration::from_secs(60), ".".into());
    options.cancel_grace = Duration::from_millis(200);
    let mut engine = Engine::new(clients, recorder, options);
    engine.register("probe", probe);
    engine
}

/// `a` then `b` and `c` side by side after it, then `d` after both.
fn diamond() -> Plan {
    let mut list = StepList::new();
    let probe = || Action::untyped("probe", serde_json::Value::Null);
    let a = list.add(Some("x"), &[], "a", probe(), vec![]);
    let b = list.add(Some("x"), std::slice::from_ref(&a), "b", probe(), vec![]);
    let c = list.add(Some("y"), std::slice::from_ref(&a), "c", probe(), vec![]);
    list.add(Some("y"), &[b, c], "d", probe(), vec![]);
    Plan::envelope(
        &Target::for_tests("dev"),
        Operation::Custom,
        None,
        "sha",
        vec![],
        list.finish(),
    )
}

async fn run(acts: &[(&str, Act)]) -> (Result<ApplyReport, Box<ApplyFailure>>, Vec<String>) {
    let probe = Arc::new(Probe::default());
    probe
        .acts
        .lock()
        .expect("acts")
        .extend(acts.iter().map(|(s, a)| ((*s).to_owned(), *a)));
    let engine = engine(probe.clone(), Arc::new(Recorder::default()));
    let result = engine.apply(&diamond()).await;
    (result, probe.lines())
}

fn statuses(report: &ApplyReport) -> Vec<(String, StepStatus)> {
    report
        .steps
        .iter()
        .map(|s| (s.step.clone(), s.status))
        .collect()
}

#[tokio::test]
async fn steps_run_after_their_needs() {
    let (result, log) = run(&[]).await;
    let report = result.expect("applied");
    assert_eq!(log.first().map(String::as_str), Some("run x.probe"));
    assert_eq!(log.last().map(String::as_str), Some("run y.probe-2"));
    assert!(report.steps.iter().all(|s| s.status == StepStatus::Done));
}

#[tokio::test]
async fn a_failure_undoes_what_completed_newest_first() {
    let (result, log) = run(&[("y.probe-2", Act::Fail)]).await;
    let failure = result.expect_err("d fails");
    let undos: Vec<&str> = log
        .iter()
        .filter(|l| l.starts_with("undo"))
        .map(String::as_str)
        .collect();
    assert_eq!(undos.len(), 3, "{log:?}");
    assert_eq!(
        undos[2], "undo x.probe",
        "the first step is undone last: {log:?}"
    );
    assert_eq!(failure.error.rollback(), Some(&Rollback::Complete));
    assert_eq!(failure.class(), ErrorClass::RolledBack);
    let status = statuses(&failure.report);
    assert_eq!(status[0], ("x.probe".into(), StepStatus::Undone));
    assert_eq!(status[3], ("y.probe-2".into(), StepStatus::Failed));
}

#[tokio::test]
async fn a_failing_sibling_stops_the_running_one_and_skips_the_rest() {
    let (result, log) = run(&[("x.probe-2", Act::WaitForCancel), ("y.probe", Act::Fail)]).await;
    let failure = result.expect_err("c fails");
    assert!(log.contains(&"stopped x.probe-2".to_owned()), "{log:?}");
    assert!(
        !log.contains(&"run y.probe-2".to_owned()),
        "d never starts: {log:?}"
    );
    assert_eq!(log.last().map(String::as_str), Some("undo x.probe"));
    let status = statuses(&failure.report);
    assert_eq!(status[3].1, StepStatus::Skipped);
}

#[tokio::test]
async fn a_failing_undo_names_what_is_left_changed() {
    let (result, _) = run(&[("x.probe", Act::ChangeBadUndo), ("y.probe-2", Act::Fail)]).await;
    let failure = result.expect_err("d fails");
    let Some(Rollback::Incomplete { left }) = failure.error.rollback() else {
        panic!("expected an incomplete rollback: {}", failure.error);
    };
    assert_eq!(left.len(), 1);
    assert!(left[0].contains("revert x.probe failed"), "{left:?}");
    assert_eq!(failure.class(), ErrorClass::Failure);
    assert!(failure.error.to_string().contains("left changed"));
    assert_eq!(statuses(&failure.report)[0].1, StepStatus::UndoFailed);
}

#[tokio::test]
async fn an_irreversible_step_is_named_and_not_called() {
    let (result, log) = run(&[("x.probe-2", Act::Irreversible), ("y.probe-2", Act::Fail)]).await;
    let failure = result.expect_err("d fails");
    assert!(!log.contains(&"undo x.probe-2".to_owned()));
    assert!(matches!(
        failure.error.rollback(),
        Some(Rollback::Incomplete { left }) if left[0].contains("probe change")
    ));
}

#[tokio::test]
async fn a_change_aws_rolled_back_counts_as_undone() {
    let (result, log) = run(&[
        ("x.probe", Act::Gate),
        ("x.probe-2", Act::Gate),
        ("y.probe", Act::Gate),
        ("y.probe-2", Act::FailUndoneByAws),
    ])
    .await;
    let failure = result.expect_err("d fails");
    assert!(!log.iter().any(|l| l.starts_with("undo")), "{log:?}");
    assert_eq!(failure.error.rollback(), Some(&Rollback::Complete));
    assert_eq!(failure.class(), ErrorClass::RolledBack);
}

#[tokio::test]
async fn a_blocking_gate_with_nothing_to_undo_keeps_its_class() {
    let (result, _) = run(&[
        ("x.probe", Act::Gate),
        ("x.probe-2", Act::Block),
        ("y.probe", Act::Gate),
    ])
    .await;
    let failure = result.expect_err("blocked");
    assert_eq!(failure.error.rollback(), Some(&Rollback::NotNeeded));
    assert_eq!(failure.class(), ErrorClass::Blocked);
}

#[tokio::test]
async fn cancelling_the_run_undoes_it() {
    let probe = Arc::new(Probe::default());
    probe
        .acts
        .lock()
        .expect("acts")
        .insert("x.probe-2".into(), Act::WaitForCancel);
    let recorder = Arc::new(Recorder::default());
    let engine = engine(probe.clone(), recorder.clone());
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        trigger.cancel();
    });
    let failure = engine
        .apply_until(&diamond(), &cancel)
        .await
        .expect_err("cancelled");
    assert!(
        matches!(failure.error, EngineError::Cancelled { .. }),
        "{}",
        failure.error
    );
    assert_eq!(failure.class(), ErrorClass::RolledBack);
    let log = probe.lines();
    assert!(log.contains(&"undo x.probe".to_owned()), "{log:?}");
    assert!(log.contains(&"undo y.probe".to_owned()), "{log:?}");
    let events = recorder.events();
    assert!(events.contains(&Event::UndoFinished {
        step: "x.probe".into()
    }));
    assert!(matches!(
        events.last(),
        Some(Event::PlanFinished { success: false, .. })
    ));
}

#[tokio::test]
async fn a_step_that_ignores_the_cancel_is_abandoned_after_the_grace() {
    let (result, _) = run(&[("x.probe-2", Act::Stuck), ("y.probe", Act::Fail)]).await;
    let failure = result.expect_err("c fails");
    let Some(Rollback::Incomplete { left }) = failure.error.rollback() else {
        panic!("expected an incomplete rollback: {}", failure.error);
    };
    assert!(
        left.iter()
            .any(|l| l.contains("stopped before it finished")),
        "{left:?}"
    );
}

#[tokio::test]
async fn outputs_of_earlier_steps_reach_later_ones() {
    struct Reader(Arc<Mutex<Option<String>>>);
    impl StepHandler for Reader {
        fn run<'a>(
            &'a self,
            _step: &'a Step,
            cx: &'a StepContext<'a>,
        ) -> BoxFuture<'a, Result<Done, StepError>> {
            Box::pin(async move {
                *self.0.lock().expect("seen") = cx.get::<String>("x").map(|s| (*s).clone());
                Ok(Done::nothing())
            })
        }
    }
    let seen = Arc::new(Mutex::new(None));
    let mut engine = engine(Arc::new(Probe::default()), Arc::new(Recorder::default()));
    engine.register("read", Arc::new(Reader(seen.clone())));
    let mut plan = diamond();
    let mut list = StepList::new();
    for step in plan.steps.drain(..) {
        list.add(
            step.artifact.as_deref(),
            &step.needs,
            step.description,
            step.action,
            vec![],
        );
    }
    list.add(
        None,
        &["x.probe-2".to_owned()],
        "read",
        Action::untyped("read", serde_json::Value::Null),
        vec![],
    );
    plan.steps = list.finish();
    engine.apply(&plan).await.expect("applied");
    assert_eq!(seen.lock().expect("seen").as_deref(), Some("x.probe-2"));
}

#[test]
fn check_refuses_unknown_actions_bad_needs_and_keeps_core_actions() {
    let mut engine = engine(Arc::new(Probe::default()), Arc::new(Recorder::default()));
    let mut plan = diamond();
    plan.steps[1].action = Action::untyped("rollout-image", serde_json::Value::Null);
    assert!(matches!(
        engine.check(&plan),
        Err(EngineError::Unsupported { step, action }) if step == "x.probe-2" && action == "rollout-image"
    ));
    let mut plan = diamond();
    plan.steps[1].needs = vec!["y.probe-2".into()];
    assert!(matches!(
        engine.check(&plan),
        Err(EngineError::BadNeed { .. })
    ));
    engine.register("acquire-lock", Arc::new(Probe::default()));
    assert!(!format!("{engine:?}").contains("acquire-lock"));
}
