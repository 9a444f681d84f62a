use std::sync::Arc;

use deploy_core::config::Config;
use deploy_core::engine::{Engine, EngineOptions};
use deploy_core::ledger::{Actor, Ledger, Operation};
use deploy_core::lock::LockSettings;
use deploy_core::plan::{Plan, PlanRequest};
use deploy_core::registry::RegistrySettings;

use super::plan::print_plan;
use super::{clients, resolve_version};
use crate::cli::PublishArgs;
use crate::output::{CliReporter, Output};

pub async fn publish(out: &Output, config: Config, args: &PublishArgs) -> anyhow::Result<()> {
    let env = config.environment(&args.env)?;
    let artifacts = env.select(&args.artifacts)?;
    let version = resolve_version(args.release_version.as_deref(), &config)?;
    let clients = clients(&config, env).await;
    clients.verify_account().await?;
    let names: Vec<String> = artifacts.iter().map(|a| a.name.clone()).collect();
    let status = Ledger::new(clients.s3.clone(), &env.target)
        .status(&names)
        .await?;
    let plan = Plan::build(&PlanRequest {
        environment: env,
        artifacts,
        operation: Operation::Publish,
        version: Some(version),
        config_sha256: config.sha256(),
        lock_ttl: config.settings.lock_ttl,
        status: &status,
    });
    if args.dry_run {
        print_plan(out, &plan);
        out.line("dry run: nothing was changed");
        return Ok(());
    }
    let options = EngineOptions {
        lock: LockSettings::with_ttl(config.settings.lock_ttl),
        wait_lock: args.wait_lock,
        actor: Actor::detect(),
        source_root: config.base_dir().to_path_buf(),
        registry: RegistrySettings::default(),
    };
    let engine = Engine::new(clients, Arc::new(CliReporter::new(out)), options);
    engine.check(&plan)?;
    let report = engine.apply(&plan).await?;
    if out.json() {
        out.document(&report);
    } else {
        for release in &report.releases {
            out.line(format!(
                "published {} to {} as release {}",
                release.artifact, plan.environment, release.release_id
            ));
        }
    }
    Ok(())
}
