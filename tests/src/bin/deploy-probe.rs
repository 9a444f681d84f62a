//! A small program built on deploy-core that the end-to-end tests run as separate processes to
//! race each other on the ledger and the lock.
//!
//! ```text
//! deploy-probe record  <config> <env> <artifact> <release-id> <start-at-unix-ms>
//! deploy-probe pointer <config> <env> <artifact> <release-id> <start-at-unix-ms>
//! deploy-probe hold    <config> <env> <hold-ms> <wait-ms> [fail]
//! ```
//! `record` and `pointer` print `won` or `conflict`; `hold` runs a plan (verify account, lock,
//! a custom step that holds for `hold-ms`, record, unlock) and prints the hold interval as JSON.
//! Exit codes follow deploy's: 0 success, 1 failure/conflict, 4 locked.

use std::sync::Arc;
use std::time::Duration;

use deploy_core::aws::{AwsClients, AwsSettings};
use deploy_core::config::Config;
use deploy_core::engine::{
    BoxFuture, Done, Engine, EngineOptions, StepContext, StepError, StepHandler,
};
use deploy_core::error::Classify;
use deploy_core::events::NoReporter;
use deploy_core::kinds::ArtifactKind;
use deploy_core::ledger::{
    Actor, Ledger, LedgerError, Operation, Outcome, Pointer, PointerKind, ReleaseRecord, SCHEMA,
};
use deploy_core::plan::core::RecordRelease;
use deploy_core::plan::{Action, Plan, Step};
use time::OffsetDateTime;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let code = runtime.block_on(run(&args));
    std::process::ExitCode::from(code)
}

async fn run(args: &[String]) -> u8 {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    let config = match Config::load(arg(1).as_ref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{err}");
            return 2;
        }
    };
    let Ok(env) = config.environment(arg(2)) else {
        return 2;
    };
    let clients = AwsClients::connect(&env.target, &AwsSettings::default()).await;
    let ledger = Ledger::new(clients.s3.clone(), &env.target);
    match arg(0) {
        "record" => {
            let record = record(arg(3), arg(4), &env.name);
            wait_until(arg(5)).await;
            report(ledger.put_record(&record).await.map(drop))
        }
        "pointer" => {
            let current = ledger
                .pointer(arg(3), PointerKind::Live)
                .await
                .expect("read pointer");
            let etag = current.as_ref().map(|p| p.etag.clone());
            let pointer = Pointer {
                schema: SCHEMA,
                release_id: arg(4).to_owned(),
                record_key: format!("records/{}", arg(4)),
                operation: Operation::Rollout,
                version: None,
                artifact_ref: None,
                updated_at: OffsetDateTime::now_utc(),
                commit_time: None,
                actor: Actor::detect(),
            };
            wait_until(arg(5)).await;
            report(
                ledger
                    .move_pointer(arg(3), PointerKind::Live, &pointer, etag.as_deref())
                    .await
                    .map(drop),
            )
        }
        "hold" => hold(&config, clients, arg(3), arg(4), arg(5) == "fail").await,
        other => {
            eprintln!("unknown probe command `{other}`");
            2
        }
    }
}

fn record(artifact: &str, id: &str, environment: &str) -> ReleaseRecord {
    let at = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    ReleaseRecord {
        schema: SCHEMA,
        id: id.to_owned(),
        project: "t".into(),
        environment: environment.to_owned(),
        artifact: artifact.to_owned(),
        kind: ArtifactKind::Image,
        operation: Operation::Publish,
        version: Some(format!("pid-{}", std::process::id())),
        artifact_ref: None,
        source_environment: None,
        started_at: at,
        finished_at: at,
        actor: Actor::detect(),
        touched: vec![],
        outcome: Outcome::Succeeded,
        previous: None,
        restored: None,
        commit_time: None,
        dirty: false,
        plan_id: None,
    }
}

async fn wait_until(unix_ms: &str) {
    let target: i128 = unix_ms.parse().unwrap_or(0);
    let now = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    if target > now {
        let ms = u64::try_from(target - now).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn report(result: Result<(), LedgerError>) -> u8 {
    match result {
        Ok(()) => {
            println!("won");
            0
        }
        Err(LedgerError::Conflict { .. }) => {
            println!("conflict");
            1
        }
        Err(err) => {
            eprintln!("{err}");
            1
        }
    }
}

/// Holds the lock for a while, printing when the hold started and ended.
struct Hold {
    millis: u64,
    fail: bool,
}

impl StepHandler for Hold {
    fn run<'a>(
        &'a self,
        _step: &'a Step,
        _cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let start = now_ms();
            say(&format!("{{\"holding\":true,\"start\":{start}}}"));
            tokio::time::sleep(Duration::from_millis(self.millis)).await;
            say(&format!("{{\"start\":{start},\"end\":{}}}", now_ms()));
            if self.fail {
                return Err(StepError::failure("the held step failed on purpose"));
            }
            Ok(Done::nothing())
        })
    }
}

/// Prints a line; a reader that went away (the test read what it needed) is not an error.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn now_ms() -> i128 {
    OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
}

async fn hold(
    config: &Config,
    clients: AwsClients,
    hold_ms: &str,
    wait_ms: &str,
    fail: bool,
) -> u8 {
    let target = clients.target.clone();
    let wait: u64 = wait_ms.parse().unwrap_or(0);
    let mut engine = Engine::new(
        clients,
        Arc::new(NoReporter),
        EngineOptions {
            wait_lock: (wait > 0).then(|| Duration::from_millis(wait)),
            ..EngineOptions::new(config.settings.lock_ttl, config.base_dir().to_path_buf())
        },
    );
    engine.register(
        "hold",
        Arc::new(Hold {
            millis: hold_ms.parse().unwrap_or(0),
            fail,
        }),
    );
    let plan = Plan::locked(
        &target,
        Operation::Custom,
        Some(format!("pid-{}", std::process::id())),
        config.sha256(),
        config.settings.lock_ttl,
        vec![
            (
                Some("app".into()),
                Action::untyped("hold", serde_json::Value::Null),
            ),
            (
                Some("app".into()),
                Action::new(&RecordRelease {
                    kind: ArtifactKind::Image,
                    operation: Operation::Custom,
                }),
            ),
        ],
    );
    match engine.apply(&plan).await {
        Ok(report) => {
            say(&serde_json::json!({ "releases": report.releases }).to_string());
            0
        }
        Err(failure) => {
            eprintln!("{}", failure.error);
            say(&serde_json::json!({ "failed_releases": failure.report.releases }).to_string());
            failure.class().exit_code()
        }
    }
}
