//! Embedding deploy-core: run your own step inside a locked, recorded change of an environment.
//!
//! ```text
//! cargo run -p deploy-core --example embed -- examples/planwise/deploy.toml dev api
//! ```
//!
//! The plan checks the account, takes the environment lock, runs a `state-check` step of the
//! example's own (it counts the objects this environment keeps in its state bucket), records
//! the change in the ledger and releases the lock. The step is registered on the engine the
//! same way the built-in kinds are. Events are printed as they arrive.

use std::sync::Arc;

use deploy_core::aws::{AwsClients, AwsSettings};
use deploy_core::config::Config;
use deploy_core::engine::{
    BoxFuture, Done, Engine, EngineOptions, StepContext, StepError, StepHandler, StepOutput,
};
use deploy_core::events::{Event, Reporter};
use deploy_core::ledger::{AwsObject, Operation};
use deploy_core::plan::core::RecordRelease;
use deploy_core::plan::{Action, Plan, Step};

struct Print;

impl Reporter for Print {
    fn report(&self, event: &Event) {
        println!("{}", serde_json::to_string(event).unwrap_or_default());
    }
}

struct StateCheck;

impl StepHandler for StateCheck {
    fn run<'a>(
        &'a self,
        _step: &'a Step,
        cx: &'a StepContext<'a>,
    ) -> BoxFuture<'a, Result<Done, StepError>> {
        Box::pin(async move {
            let clients = cx.clients();
            let target = &clients.target;
            let bucket = &target.state_bucket;
            let prefix = target.state_prefix();
            let listing = clients
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(&prefix)
                .send()
                .await
                .map_err(StepError::failure)?;
            println!(
                "state bucket {bucket}: {} objects under {prefix}",
                listing.key_count().unwrap_or(0)
            );
            // Reading changes nothing, so there is nothing to undo.
            Ok(Done {
                record: StepOutput {
                    touched: vec![AwsObject {
                        kind: "s3-bucket".into(),
                        id: bucket.clone(),
                    }],
                    ..StepOutput::default()
                },
                ..Done::default()
            })
        })
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, env, artifact] = args.as_slice() else {
        return Err("usage: embed <deploy.toml> <environment> <artifact>".into());
    };
    let config = Config::load(path.as_ref())?;
    let environment = config.environment(env)?;
    let spec = environment.select(std::slice::from_ref(artifact))?[0];
    let target = environment.target.clone();
    let clients = AwsClients::connect(&target, &AwsSettings::from(&config.settings)).await;
    let options = EngineOptions::new(config.settings.lock_ttl, config.base_dir().to_path_buf());
    let mut engine = Engine::new(clients, Arc::new(Print), options);
    engine.register("state-check", Arc::new(StateCheck));

    let plan = Plan::locked(
        &target,
        Operation::Custom,
        Some("embed-example".into()),
        config.sha256(),
        config.settings.lock_ttl,
        vec![
            (
                Some(spec.name.clone()),
                Action::untyped("state-check", serde_json::Value::Null),
            ),
            (
                Some(spec.name.clone()),
                Action::new(&RecordRelease {
                    kind: spec.kind(),
                    operation: Operation::Custom,
                }),
            ),
        ],
    );
    let report = engine.apply(&plan).await?;
    for release in &report.releases {
        println!(
            "recorded {} for {} at {}",
            release.release_id, release.artifact, release.key
        );
    }
    Ok(())
}
