//! One function per command: resolve inputs, call deploy-core, render.

mod history;
mod lock;
mod plan;
mod promote;
mod publish;
mod status;
mod validate;

use std::time::Duration;

use anyhow::Context;
use deploy_core::aws::{AwsClients, AwsSettings};
use deploy_core::config::{Config, Environment};

use crate::cli::{Cli, Command};
use crate::output::Output;

pub use history::history;
pub use lock::lock;
pub use plan::plan;
pub use promote::promote;
pub use publish::publish;
pub use status::status;
pub use validate::validate;

/// A usage problem found by the CLI itself (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A change of an environment with `approval = true` without `--approve` (exit code 5).
#[derive(Debug, thiserror::Error)]
#[error(
    "{environment} needs approval: {what}. Review it with --dry-run, then run again with --approve"
)]
pub struct ApprovalRequired {
    /// The environment.
    pub environment: String,
    /// The change.
    pub what: String,
}

/// Refuses to publish into an environment that only receives promotions.
pub fn check_not_promote_only(env: &Environment, command: &str) -> anyhow::Result<()> {
    if let Some(from) = &env.promote_from {
        return Err(UsageError(format!(
            "{} receives only what {from} runs (promote_from = \"{from}\"), so `{command}` cannot target it; \
             run `deploy promote {from} {}`",
            env.target.environment, env.target.environment
        ))
        .into());
    }
    Ok(())
}

pub fn run(cli: &Cli, out: &Output) -> anyhow::Result<()> {
    match &cli.command {
        Command::Validate => validate(cli, out),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(*shell, &mut command, "deploy", &mut std::io::stdout());
            Ok(())
        }
        Command::Plan(args) => {
            with_runtime(args.aws.timeout, cli, |config| plan(cli, out, config, args))
        }
        Command::Publish(args) => with_runtime(args.aws.timeout, cli, |config| {
            publish(out, config, args, deploy_core::ledger::Operation::Publish)
        }),
        Command::Release(args) => with_runtime(args.aws.timeout, cli, |config| {
            publish(out, config, args, deploy_core::ledger::Operation::Release)
        }),
        Command::Promote(args) => {
            with_runtime(args.aws.timeout, cli, |config| promote(out, config, args))
        }
        Command::Status(args) => {
            with_runtime(args.aws.timeout, cli, |config| status(out, config, args))
        }
        Command::History(args) => {
            with_runtime(args.aws.timeout, cli, |config| history(out, config, args))
        }
        Command::Lock(args) => {
            with_runtime(args.aws.timeout, cli, |config| lock(out, config, args))
        }
    }
}

/// Loads the configuration, then runs `body` on a Tokio runtime under the command timeout.
fn with_runtime<F, Fut>(timeout: Option<Duration>, cli: &Cli, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let config = Config::load(&cli.config)?;
    let limit = timeout.unwrap_or(config.settings.timeout);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        tokio::time::timeout(limit, body(config))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "timed out after {}s (raise it with --timeout)",
                    limit.as_secs()
                )
            })?
    })
}

/// AWS clients for an environment, with the configuration's retry settings.
pub async fn clients(config: &Config, env: &Environment) -> AwsClients {
    AwsClients::connect(&env.target, &AwsSettings::from(&config.settings)).await
}

/// The version to release: the flag, else `GITHUB_SHA`, else the git commit of the config's repository.
pub fn resolve_version(flag: Option<&str>, config: &Config) -> anyhow::Result<String> {
    if let Some(version) = flag {
        return Ok(version.to_owned());
    }
    if let Some(sha) = std::env::var("GITHUB_SHA").ok().filter(|s| !s.is_empty()) {
        return Ok(sha);
    }
    let dir = config.base_dir();
    let dir = if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    };
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output();
    match output {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        _ => Err(UsageError(
            "no version to release: pass --version V, set GITHUB_SHA, or run inside a git repository".into(),
        )
        .into()),
    }
}

/// Checks the account, reads the ledger and plans `operation` for `artifacts` (all when empty)
/// of environment `env`; returns the plan and the clients it was made with.
pub async fn make_plan(
    config: &Config,
    env: &str,
    artifacts: &[String],
    version: Option<&str>,
    operation: deploy_core::ledger::Operation,
) -> anyhow::Result<(deploy_core::plan::Plan, AwsClients)> {
    let env = config.environment(env)?;
    let artifacts = env.select(artifacts)?;
    let version = resolve_version(version, config)?;
    let clients = clients(config, env).await;
    clients.verify_account().await?;
    let names: Vec<String> = artifacts.iter().map(|a| a.name.clone()).collect();
    let status = deploy_core::ledger::Ledger::new(clients.s3.clone(), &env.target)
        .status(&names)
        .await?;
    let plan = deploy_core::plan::Plan::build(&deploy_core::plan::PlanRequest {
        environment: env,
        artifacts,
        operation,
        version: Some(version),
        config_sha256: config.sha256(),
        lock_ttl: config.settings.lock_ttl,
        status: &status,
        promote: &[],
    });
    Ok((plan, clients))
}

/// Prints `plan` with `--dry-run`; otherwise applies it with `clients` (and the clients of the
/// environments it reads from) and prints the result: the report as JSON, or one line per
/// release.
pub async fn apply(
    out: &Output,
    config: &Config,
    plan: &deploy_core::plan::Plan,
    clients: AwsClients,
    sources: Vec<AwsClients>,
    change: &crate::cli::ChangeArgs,
) -> anyhow::Result<()> {
    if change.dry_run {
        plan::print_plan(out, plan);
        out.line("dry run: nothing was changed");
        return Ok(());
    }
    use deploy_core::engine::{Engine, EngineOptions};
    let options = EngineOptions {
        lock: deploy_core::lock::LockSettings::with_ttl(config.settings.lock_ttl),
        wait_lock: change.wait_lock,
        actor: deploy_core::ledger::Actor::detect(),
        source_root: config.base_dir().to_path_buf(),
        registry: config.settings.registry(),
        scan_wait: deploy_core::artifact::image::scan::ScanWait {
            timeout: config.settings.scan_timeout,
            poll: config.settings.poll_interval,
        },
    };
    let mut engine = Engine::new(
        clients,
        std::sync::Arc::new(crate::output::CliReporter::new(out)),
        options,
    );
    for source in sources {
        engine.add_source(source);
    }
    let report = match engine.apply(plan).await {
        Ok(report) => report,
        Err(failure) => {
            if out.json() {
                out.result(&failure.report);
            } else {
                print_scans(out, &failure.report.scans);
            }
            return Err(failure.into());
        }
    };
    if out.json() {
        out.result(&report);
        return Ok(());
    }
    print_scans(out, &report.scans);
    let verb = match plan.operation {
        deploy_core::ledger::Operation::Publish => "published",
        deploy_core::ledger::Operation::Promote => "promoted",
        _ => "released",
    };
    for release in &report.releases {
        let image = report
            .images
            .iter()
            .find(|i| i.artifact == release.artifact);
        out.line(format!(
            "{verb} {} to {} as release {}{}",
            release.artifact,
            plan.environment,
            release.release_id,
            image.map_or_else(String::new, |i| format!(" ({})", i.push.reference))
        ));
    }
    Ok(())
}

fn print_scans(out: &Output, scans: &[deploy_core::artifact::image::scan::ScanSummary]) {
    for scan in scans {
        out.line(format!(
            "scan of {}@{}: {}",
            scan.repository,
            scan.digest,
            scan.counts_line()
        ));
        for line in scan.top_lines() {
            out.line(format!("  {line}"));
        }
    }
}
