use std::sync::Arc;

use deploy_core::config::Config;
use deploy_core::engine::{Engine, EngineOptions};
use deploy_core::ledger::{Actor, Operation};
use deploy_core::lock::LockSettings;
use deploy_core::registry::RegistrySettings;

use super::make_plan;
use super::plan::print_plan;
use crate::cli::PublishArgs;
use crate::output::{CliReporter, Output};

pub async fn publish(out: &Output, config: Config, args: &PublishArgs) -> anyhow::Result<()> {
    let (plan, clients) = make_plan(
        &config,
        &args.env,
        &args.artifacts,
        args.release_version.as_deref(),
        Operation::Publish,
    )
    .await?;
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
