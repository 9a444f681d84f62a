//! The engine through the library, against moto and the local registry: a step kind defined
//! here (outside deploy-core) with an undo, and a walk over an image release plan that makes
//! each step fail in turn. Results are read back with plain SDK clients.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use deploy_core::aws::AwsClients;
use deploy_core::config::Config;
use deploy_core::engine::{
    ApplyFailure, BoxFuture, Done, Engine, EngineOptions, StepContext, StepError, StepHandler, Undo,
};
use deploy_core::error::{Classify, ErrorClass};
use deploy_core::events::{Event, Recorder};
use deploy_core::ledger::Operation;
use deploy_core::plan::core::RecordRelease;
use deploy_core::plan::{Action, Plan, PlanRequest, Step};
use deploy_tests::{
    REGION, copy_dir, create_bucket, create_repository, get_json, list_keys, moto, oci_registry,
    scratch_dir, unique, workspace_root,
};

/// A project `t` with environment `dev` whose every endpoint is moto (and the local registry),
/// state in a fresh bucket; `artifacts` is appended as written.
async fn project(artifacts: &str) -> (Config, String) {
    let url = moto().url.clone();
    let bucket = unique("engine");
    create_bucket(&url, &bucket).await;
    let dir = scratch_dir("engine");
    copy_dir(
        &workspace_root().join("examples/planwise/build/api"),
        &dir.join("layout"),
    );
    let text = format!(
        "project = \"t\"\n[settings]\nlock_ttl = \"30s\"\n[environments.dev]\nregion = \"{REGION}\"\n\
         account = \"123456789012\"\nstate_bucket = \"{bucket}\"\n\
         endpoints = {{ sts = \"{url}\", s3 = \"{url}\", ecr = \"{url}\", registry = \"http://{}\" }}\n{artifacts}",
        oci_registry().host
    );
    let path: PathBuf = dir.join("deploy.toml");
    std::fs::write(&path, &text).expect("write config");
    (Config::load(&path).expect("config"), bucket)
}

async fn clients(config: &Config) -> AwsClients {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .load()
        .await;
    let env = config.environment("dev").expect("dev");
    AwsClients::from_sdk_config(&env.target, &sdk)
}

/// The outcome of every record of `artifact`, newest first.
async fn outcomes(bucket: &str, artifact: &str) -> Vec<String> {
    let prefix = format!("deploy/t/dev/artifacts/{artifact}/releases/");
    let mut outcomes = Vec::new();
    for key in list_keys(&moto().url, bucket, &prefix).await {
        let record = get_json(&moto().url, bucket, &key).await;
        outcomes.push(
            record["outcome"]["result"]
                .as_str()
                .unwrap_or("?")
                .to_owned(),
        );
    }
    outcomes
}

/// Whether the environment lock is free: never taken, or released.
async fn lock_free(bucket: &str) -> bool {
    let keys = list_keys(&moto().url, bucket, "deploy/t/dev/lock.json").await;
    if keys.is_empty() {
        return true;
    }
    let lock = get_json(&moto().url, bucket, "deploy/t/dev/lock.json").await;
    !lock["released"].is_null()
}

/// Writes `markers/<step id>` into the bucket named in its input; its undo deletes it (or
/// fails, when the input says `break_undo`).
struct PutMarker;

impl StepHandler for PutMarker {
    fn run<'a>(
        &'a self,
        step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let input = step.action.raw_input();
            let bucket = input["bucket"].as_str().unwrap_or_default();
            let key = format!("markers/{}", step.id);
            cx.clients()
                .s3
                .put_object()
                .bucket(bucket)
                .key(&key)
                .body(b"changed".to_vec().into())
                .send()
                .await
                .map_err(StepError::failure)?;
            Ok(Done {
                undo: Undo::Compensate {
                    description: format!("delete s3://{bucket}/{key}"),
                    data: serde_json::json!({
                        "bucket": bucket,
                        "key": key,
                        "break": input.get("break_undo").is_some(),
                    }),
                },
                ..Done::default()
            })
        })
    }

    fn undo<'a>(
        &'a self,
        _step: &'a Step,
        data: &'a serde_json::Value,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            if data["break"] == true {
                return Err(StepError::failure("the marker store refused the delete"));
            }
            cx.clients()
                .s3
                .delete_object()
                .bucket(data["bucket"].as_str().unwrap_or_default())
                .key(data["key"].as_str().unwrap_or_default())
                .send()
                .await
                .map_err(StepError::failure)?;
            Ok(())
        })
    }
}

/// Always fails, like a health check that never passes.
struct Fails;

impl StepHandler for Fails {
    fn run<'a>(
        &'a self,
        _step: &'a Step,
        _cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async { Err(StepError::blocked("the health check never passed")) })
    }
}

/// Applies: two markers, a failing check, the record; the second marker's undo breaks when
/// `break_second_undo`.
async fn markers_then_failure(break_second_undo: bool) -> (Box<ApplyFailure>, Vec<Event>, String) {
    let (config, bucket) = project("").await;
    let clients = clients(&config).await;
    let target = clients.target.clone();
    let recorder = Arc::new(Recorder::default());
    let options = EngineOptions::new(config.settings.lock_ttl, config.base_dir().to_path_buf());
    let mut engine = Engine::new(clients, recorder.clone(), options);
    engine.register("put-marker", Arc::new(PutMarker));
    engine.register("check-health", Arc::new(Fails));
    let marker = |broken: bool| {
        let mut input = serde_json::json!({ "bucket": bucket });
        if broken {
            input["break_undo"] = true.into();
        }
        (Some("app".to_owned()), Action::untyped("put-marker", input))
    };
    let plan = Plan::locked(
        &target,
        Operation::Custom,
        Some("v1".into()),
        config.sha256(),
        config.settings.lock_ttl,
        vec![
            marker(false),
            marker(break_second_undo),
            (
                Some("app".into()),
                Action::untyped("check-health", serde_json::Value::Null),
            ),
            (
                Some("app".into()),
                Action::new(&RecordRelease {
                    kind: deploy_core::kinds::ArtifactKind::Image,
                    operation: Operation::Custom,
                }),
            ),
        ],
    );
    let failure = engine.apply(&plan).await.expect_err("the check fails");
    (failure, recorder.events(), bucket)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outside_kind_is_undone_in_reverse_and_recorded_rolled_back() {
    let (failure, events, bucket) = markers_then_failure(false).await;
    assert_eq!(failure.class(), ErrorClass::RolledBack, "{}", failure.error);
    assert!(
        list_keys(&moto().url, &bucket, "markers/").await.is_empty(),
        "every marker was deleted"
    );
    let undone: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::UndoFinished { step } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        undone,
        ["app.put-marker-2", "app.put-marker"],
        "newest first"
    );
    assert_eq!(outcomes(&bucket, "app").await, ["rolled-back"]);
    assert!(lock_free(&bucket).await, "the lock was given back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_undo_is_recorded_failed_and_names_what_stays() {
    let (failure, events, bucket) = markers_then_failure(true).await;
    assert_eq!(failure.class(), ErrorClass::Failure);
    let message = failure.error.to_string();
    assert!(message.contains("left changed"), "{message}");
    assert!(message.contains("markers/app.put-marker-2"), "{message}");
    let left = list_keys(&moto().url, &bucket, "markers/").await;
    assert_eq!(
        left,
        ["markers/app.put-marker-2"],
        "the first marker was still undone"
    );
    assert!(events.iter().any(|e| matches!(e, Event::UndoFailed { .. })));
    assert_eq!(outcomes(&bucket, "app").await, ["failed"]);
    assert!(lock_free(&bucket).await);
}

/// One artifact changes something, the other fails before changing anything: the run undoes
/// the change and says every change was rolled back (exit 3), and both records say
/// `rolled-back`, the failing one included (it never changed what runs).
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_that_changed_nothing_in_a_run_rolled_back_is_recorded_rolled_back() {
    let (config, bucket) = project("").await;
    let clients = clients(&config).await;
    let target = clients.target.clone();
    let options = EngineOptions::new(config.settings.lock_ttl, config.base_dir().to_path_buf());
    let mut engine = Engine::new(clients, Arc::new(Recorder::default()), options);
    engine.register("put-marker", Arc::new(PutMarker));
    engine.register("push", Arc::new(Fails));
    let record = || {
        Action::new(&RecordRelease {
            kind: deploy_core::kinds::ArtifactKind::Image,
            operation: Operation::Custom,
        })
    };
    let steps = vec![
        (
            Some("app".to_owned()),
            Action::untyped("put-marker", serde_json::json!({ "bucket": bucket })),
        ),
        (
            Some("job".to_owned()),
            Action::untyped("push", serde_json::Value::Null),
        ),
        (Some("app".to_owned()), record()),
        (Some("job".to_owned()), record()),
    ];
    let plan = Plan::locked(
        &target,
        Operation::Custom,
        Some("v1".into()),
        config.sha256(),
        config.settings.lock_ttl,
        steps,
    );
    let failure = engine.apply(&plan).await.expect_err("the check fails");
    let message = failure.error.to_string();
    assert_eq!(failure.class(), ErrorClass::RolledBack, "{message}");
    assert!(
        message.ends_with("every change was rolled back"),
        "{message}"
    );
    assert!(list_keys(&moto().url, &bucket, "markers/").await.is_empty());
    assert_eq!(outcomes(&bucket, "app").await, ["rolled-back"]);
    assert_eq!(outcomes(&bucket, "job").await, ["rolled-back"], "{message}");
    assert!(lock_free(&bucket).await);
}

const IMAGE: &str = "[artifacts.api]\nkind = \"image\"\nrepository = \"REPO\"\nsource = \"oci:./layout:latest\"\n\
                     rollout = { strategy = \"none\" }\n";

/// The release plan of the image artifact, with clients, in a fresh environment.
async fn image_release() -> (Config, String, AwsClients, Plan) {
    let repo = format!("eng/{}", unique("api"));
    create_repository(&moto().url, &repo).await;
    let (config, bucket) = project(&IMAGE.replace("REPO", &repo)).await;
    let clients = clients(&config).await;
    let env = config.environment("dev").expect("dev");
    let plan = Plan::build(&PlanRequest {
        environment: env,
        artifacts: env.select(&[]).expect("all"),
        operation: Operation::Release,
        version: Some("v1".into()),
        config_sha256: config.sha256(),
        lock_ttl: config.settings.lock_ttl,
        status: &[],
        promote: &[],
        gradual: false,
        commit_time: None,
    });
    (config, bucket, clients, plan)
}

/// Every step of the image release plan fails in turn; each time the lock is free afterwards,
/// the ledger says what happened and the events say which step failed.
#[tokio::test(flavor = "multi_thread")]
async fn each_step_of_an_image_release_failing_leaves_a_consistent_ledger() {
    let (_, _, _, plan) = image_release().await;
    let ids: Vec<String> = plan.steps.iter().map(|s| s.id.clone()).collect();
    assert_eq!(
        ids,
        [
            "verify-account",
            "acquire-lock",
            "api.publish-image",
            "api.record-release",
            "release-lock"
        ]
    );
    for (at, failing) in ids.iter().enumerate() {
        let (config, bucket, clients, plan) = image_release().await;
        let prepared = deploy_core::ops::Prepared {
            plan,
            clients,
            sources: Vec::new(),
        };
        let recorder = Arc::new(Recorder::default());
        let mut engine =
            deploy_core::ops::engine(&config, &prepared, recorder.clone(), &Default::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (target, log) = (failing.clone(), seen.clone());
        engine.intercept(Arc::new(move |step: &Step| {
            log.lock().expect("log").push(step.id.clone());
            if step.id == target {
                return Err(StepError::failure("injected fault"));
            }
            Ok(())
        }));
        let failure = engine
            .apply(&prepared.plan)
            .await
            .expect_err("a step fails");
        let context = format!("failing {failing}: {}", failure.error);
        assert_eq!(failure.class(), ErrorClass::Failure, "{context}");
        let ran = seen.lock().expect("log").clone();
        assert_eq!(ran, ids[..=at], "later steps never start: {context}");

        let events = recorder.events();
        assert!(
            events.contains(&Event::StepFailed {
                step: failing.clone(),
                error: "injected fault".into()
            }),
            "{context}"
        );
        assert!(matches!(
            events.last(),
            Some(Event::PlanFinished { success: false, .. })
        ));
        let locked = at >= 2;
        assert_eq!(
            events
                .iter()
                .any(|e| matches!(e, Event::LockReleased { .. })),
            locked,
            "{context}"
        );
        assert!(lock_free(&bucket).await, "{context}");

        let expected: &[&str] = match failing.as_str() {
            "verify-account" | "acquire-lock" => &[],
            "release-lock" => &["succeeded"],
            _ => &["failed"],
        };
        assert_eq!(outcomes(&bucket, "api").await, expected, "{context}");
        let pointers = list_keys(&moto().url, &bucket, "deploy/t/dev/artifacts/api/").await;
        let moved = pointers.iter().any(|k| k.ends_with("published.json"));
        assert_eq!(moved, failing == "release-lock", "{context}: {pointers:?}");
    }
}
