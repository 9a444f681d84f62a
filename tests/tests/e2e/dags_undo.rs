//! The DAG sync through the library: a sync followed by a step that fails puts the bucket back
//! to the previous release's file set exactly, and a listing made before the lock is not
//! trusted when someone else held the lock meanwhile (read back with a plain S3 client).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use deploy_core::aws::AwsClients;
use deploy_core::config::Config;
use deploy_core::engine::StepHandler;
use deploy_core::engine::{BoxFuture, Done, Engine, EngineOptions, StepContext, StepError};
use deploy_core::error::{Classify, ErrorClass};
use deploy_core::events::{Event, Recorder};
use deploy_core::kinds::dags::IgnoreSyntax;
use deploy_core::kinds::dags::plan::SyncDags;
use deploy_core::ledger::{Actor, Ledger, Operation};
use deploy_core::lock::{EnvLock, LockSettings};
use deploy_core::plan::{Action, Plan, Step};
use deploy_tests::dags::{read_all, versioned_bucket};
use deploy_tests::{REGION, create_bucket, moto, s3, scratch_dir, unique};

struct Fails;

impl StepHandler for Fails {
    fn run<'a>(
        &'a self,
        _step: &'a Step,
        _cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async { Err(StepError::blocked("the DAG import check failed")) })
    }
}

fn write(dir: &Path, path: &str, text: &str) {
    let file = dir.join("dags").join(path);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(file, text).expect("write");
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

/// Runs the sync of `dir/dags` into `dags` then, when `fail_after`, a failing step.
async fn apply(config: &Config, dags: &str, fail_after: bool) -> Result<(), ErrorClass> {
    let options = EngineOptions::new(config.settings.lock_ttl, config.base_dir().to_path_buf());
    run(config, dags, fail_after, options, Arc::default()).await
}

async fn run(
    config: &Config,
    dags: &str,
    fail_after: bool,
    options: EngineOptions,
    recorder: Arc<Recorder>,
) -> Result<(), ErrorClass> {
    let clients = clients(config).await;
    let target = clients.target.clone();
    let mut engine = Engine::new(clients, recorder, options);
    deploy_core::kinds::register_builtin(&mut engine, Default::default());
    engine.register("check-import", Arc::new(Fails));
    let sync = SyncDags {
        source: "./dags".into(),
        bucket: dags.to_owned(),
        prefix: "dags/".into(),
        ignore_syntax: IgnoreSyntax::Regexp,
        include: vec![],
        exclude: vec![],
        max_delete_share: 1.0,
        allow_mass_delete: false,
    };
    let mut steps = vec![(Some("dags".to_owned()), Action::new(&sync))];
    if fail_after {
        steps.push((
            Some("dags".into()),
            Action::untyped("check-import", serde_json::Value::Null),
        ));
    }
    let plan = Plan::locked(
        &target,
        Operation::Custom,
        Some("v".into()),
        config.sha256(),
        config.settings.lock_ttl,
        steps,
    );
    engine.apply(&plan).await.map(drop).map_err(|f| f.class())
}

/// A versioned DAG bucket and a configuration whose state bucket is fresh.
async fn setup() -> (std::path::PathBuf, Config, String) {
    let url = moto().url.clone();
    let state = unique("dags-undo-state");
    create_bucket(&url, &state).await;
    let dags = versioned_bucket("dags-undo").await;
    let dir = scratch_dir("dags-undo");
    let text = format!(
        "project = \"t\"\n[settings]\nlock_ttl = \"30s\"\n[environments.dev]\nregion = \"{REGION}\"\n\
         account = \"123456789012\"\nstate_bucket = \"{state}\"\n\
         endpoints = {{ sts = \"{url}\", s3 = \"{url}\" }}\n"
    );
    std::fs::write(dir.join("deploy.toml"), text).expect("config");
    let config = Config::load(&dir.join("deploy.toml")).expect("config");
    (dir, config, dags)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_step_after_the_sync_restores_the_previous_set_exactly() {
    let (dir, config, dags) = setup().await;
    write(&dir, "a.py", "a = 1\n");
    write(&dir, "b.py", "b = 1\n");
    write(&dir, "sub/c.py", "c = 1\n");
    apply(&config, &dags, false).await.expect("first sync");
    let before = read_all(&dags, "").await;
    assert_eq!(before.len(), 3);

    write(&dir, "a.py", "a = 2\n");
    write(&dir, "new.py", "n = 1\n");
    std::fs::remove_file(dir.join("dags/b.py")).expect("rm");
    let failed = apply(&config, &dags, true)
        .await
        .expect_err("the check fails");
    assert_eq!(failed, ErrorClass::RolledBack);
    assert_eq!(
        read_all(&dags, "").await,
        before,
        "the previous set, byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_made_while_someone_else_held_the_lock_is_made_again() {
    let (dir, config, dags) = setup().await;
    write(&dir, "a.py", "a = 1\n");
    write(&dir, "b.py", "b = 1\n");
    apply(&config, &dags, false).await.expect("first sync");
    let expected = read_all(&dags, "").await;

    // Someone else holds the lock; this run's preflight lists the prefix (both files there,
    // both unchanged), then waits for the lock.
    let clients = clients(&config).await;
    let ledger = Ledger::new(clients.s3.clone(), &clients.target);
    let lock = EnvLock::new(
        ledger,
        "dev",
        LockSettings::with_ttl(Duration::from_secs(30)),
    );
    let held = lock
        .acquire(
            &Actor::detect(),
            "another deploy",
            None,
            &Recorder::default(),
        )
        .await
        .expect("the other lock");
    let mut options = EngineOptions::new(config.settings.lock_ttl, config.base_dir().to_path_buf());
    options.wait_lock = Some(Duration::from_secs(30));
    let recorder = Arc::new(Recorder::default());
    let ours = tokio::spawn({
        let (config, dags, recorder) = (config.clone(), dags.clone(), recorder.clone());
        async move { run(&config, &dags, false, options, recorder).await }
    });
    let waiting = || {
        recorder
            .events()
            .iter()
            .any(|e| matches!(e, Event::LockWaiting { .. }))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !waiting() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run never waited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The holder deletes b.py, then lets go.
    s3(&moto().url)
        .await
        .delete_object()
        .bucket(&dags)
        .key("dags/b.py")
        .send()
        .await
        .expect("delete");
    held.release().await.expect("release");

    ours.await.expect("join").expect("the sync");
    assert_eq!(
        read_all(&dags, "").await,
        expected,
        "b.py is put back: the prefix was listed again after the lock changed hands"
    );
}
