//! One function per command: resolve inputs, call deploy-core, render.

mod apply;
mod diff;
mod history;
mod iam_policy;
mod lock;
mod plan;
mod promote;
mod publish;
mod status;
mod validate;

use std::time::Duration;

use deploy_core::config::Config;
use deploy_core::engine::EngineError;
use deploy_core::error::{Classify, ErrorClass};
use deploy_core::ledger::{Operation, PointerKind};
use deploy_core::ops::{self, OwnFailure, Prepared};

use crate::cli::{Cli, Command};
use crate::output::Output;

pub use apply::apply_saved;
pub use diff::diff;
pub use history::history;
pub use iam_policy::iam_policy;
pub use lock::lock;
pub use plan::plan;
pub use promote::{promote, rollback};
pub use publish::publish;
pub use status::status;
pub use validate::validate;

/// A usage problem found by the CLI itself (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl Classify for UsageError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Usage
    }
}

/// The command was stopped by a signal or its `--timeout` (exit code 130, 143 or 1); `run` is
/// how the stopped run ended (what it undid, recorded and unlocked), when it failed.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct Interrupted {
    /// Why.
    pub reason: String,
    /// The exit code.
    pub code: u8,
    /// The stopped run's error.
    #[source]
    pub run: Option<deploy_core::Error>,
}

impl Classify for Interrupted {
    fn class(&self) -> ErrorClass {
        self.run
            .as_ref()
            .map_or(ErrorClass::Failure, deploy_core::Error::class)
    }
}

/// Why a command is being stopped: the first signal or the deadline.
#[derive(Debug, Default)]
pub struct Stop {
    /// Cancelled on the first SIGINT/SIGTERM or at the deadline.
    pub token: tokio_util::sync::CancellationToken,
    cause: std::sync::Mutex<Option<Interrupted>>,
}

impl Stop {
    fn stop(&self, reason: String, code: u8) {
        if let Ok(mut cause) = self.cause.lock() {
            cause.get_or_insert(Interrupted {
                reason,
                code,
                run: None,
            });
        }
        self.token.cancel();
    }

    fn take(&self) -> Option<Interrupted> {
        self.cause.lock().ok().and_then(|mut c| c.take())
    }
}

pub fn run(cli: &Cli, out: &Output) -> deploy_core::Result<()> {
    match &cli.command {
        Command::Validate => validate(cli, out),
        Command::Init(args) => crate::init::init(out, args),
        Command::Man(args) => man(out, &args.out),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(*shell, &mut command, "deploy", &mut std::io::stdout());
            Ok(())
        }
        Command::Plan(args) => with_runtime(args.aws.timeout, cli, false, |config, _| {
            plan(out, config, args)
        }),
        Command::Apply(args) => with_runtime(args.aws.timeout, cli, true, |config, stop| {
            apply_saved(out, config, args, stop)
        }),
        Command::Publish(args) => with_runtime(args.aws.timeout, cli, true, |config, stop| {
            publish(out, config, args, Operation::Publish, stop)
        }),
        Command::Release(args) => with_runtime(args.aws.timeout, cli, true, |config, stop| {
            publish(out, config, args, Operation::Release, stop)
        }),
        Command::Promote(args) => with_runtime(args.aws.timeout, cli, true, |config, stop| {
            promote(out, config, args, stop)
        }),
        Command::Rollback(args) => with_runtime(args.aws.timeout, cli, true, |config, stop| {
            rollback(out, config, args, stop)
        }),
        Command::Diff(args) => with_runtime(args.aws.timeout, cli, false, |config, _| {
            diff(out, config, args)
        }),
        Command::Status(args) => with_runtime(args.aws.timeout, cli, false, |config, _| {
            status(out, config, args)
        }),
        Command::History(args) => with_runtime(args.aws.timeout, cli, false, |config, _| {
            history(out, config, args)
        }),
        Command::IamPolicy(args) => with_runtime(args.aws.timeout, cli, false, |config, _| {
            iam_policy(out, config, args)
        }),
        Command::Lock(args) => with_runtime(args.aws.timeout, cli, false, |config, _| {
            lock(out, config, args)
        }),
    }
}

/// Writes a roff page for `deploy` and for each command into `dir`.
fn man(out: &Output, dir: &std::path::Path) -> deploy_core::Result<()> {
    use clap::CommandFactory;
    let failed = |e: std::io::Error| {
        UsageError(format!(
            "cannot write the manual pages to {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let command = Cli::command();
    let mut pages = vec![("deploy".to_owned(), command.clone())];
    for sub in command.get_subcommands() {
        let name = format!("deploy-{}", sub.get_name());
        // clap names are `&'static str`; this command writes a few pages and exits.
        let title: &'static str = Box::leak(name.clone().into_boxed_str());
        pages.push((name, sub.clone().name(title)));
    }
    for (name, page) in pages {
        let mut roff = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut roff)
            .map_err(failed)?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, roff).map_err(failed)?;
        out.line(format!("wrote {}", path.display()));
    }
    Ok(())
}

/// Loads the configuration, then runs `body` on a Tokio runtime until it ends, the command
/// timeout passes, or SIGINT/SIGTERM arrives. A command that changes AWS (`graceful`) is
/// asked to stop and given the time to undo, record and unlock; a second signal exits at once.
/// A read-only command is dropped.
/// What the configuration accepts but probably does not mean (an unknown region), on stderr.
pub fn warn_config(config: &Config) {
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
}

fn with_runtime<F, Fut>(
    timeout: Option<Duration>,
    cli: &Cli,
    graceful: bool,
    body: F,
) -> deploy_core::Result<()>
where
    F: FnOnce(Config, &'static Stop) -> Fut,
    Fut: std::future::Future<Output = deploy_core::Result<()>>,
{
    let config = Config::load(&cli.config)?;
    warn_config(&config);
    let limit = timeout.unwrap_or(config.settings.timeout);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            deploy_core::Error::new(
                ErrorClass::Failure,
                format!("cannot start the async runtime: {e}"),
            )
        })?;
    // One per process, and the signal watcher outlives the borrow of any one command.
    let stop: &'static Stop = Box::leak(Box::default());
    let result = runtime.block_on(async move {
        tokio::spawn(watch(stop, limit));
        let work = body(config, stop);
        let result = if graceful {
            work.await
        } else {
            tokio::select! {
                result = work => result,
                () = stop.token.cancelled() => Ok(()),
            }
        };
        match (stop.take(), result) {
            (Some(interrupted), Ok(())) if graceful => {
                // The work ended as it would have: the stop came too late to change anything.
                eprintln!("{}: the run had already finished", interrupted.reason);
                Ok(())
            }
            (Some(interrupted), Err(err)) => Err(Interrupted {
                run: Some(err),
                ..interrupted
            }
            .into()),
            (Some(interrupted), Ok(())) => Err(interrupted.into()),
            (None, result) => result,
        }
    });
    // A step abandoned after the cancel grace may still block a thread (a read that never
    // returns): the process ends anyway.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

/// Cancels `stop` at the deadline or on the first SIGINT/SIGTERM; exits on the second.
async fn watch(stop: &'static Stop, limit: Duration) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tokio::time::sleep(limit).await;
        stop.stop(timeout_reason(limit), 1);
        return;
    };
    let first = tokio::select! {
        _ = int.recv() => (130, "interrupted (SIGINT)".to_owned()),
        _ = term.recv() => (143, "terminated (SIGTERM)".to_owned()),
        () = tokio::time::sleep(limit) => (1, timeout_reason(limit)),
    };
    eprintln!("{}: stopping; press Ctrl-C again to exit at once", first.1);
    stop.stop(first.1, first.0);
    let code = tokio::select! {
        _ = int.recv() => 130,
        _ = term.recv() => 143,
    };
    eprintln!("stopped at once; the environment lock expires on its own");
    std::process::exit(code);
}

fn timeout_reason(limit: Duration) -> String {
    format!(
        "timed out after {} (raise it with --timeout)",
        humantime::format_duration(limit)
    )
}

/// Approval and dry run from the flags.
pub fn confirm(change: &crate::cli::ChangeArgs) -> deploy_core::ops::Confirm {
    deploy_core::ops::Confirm {
        approve: change.approve,
        dry_run: change.dry_run,
    }
}

/// Makes a command's plan again, from what the environment holds now.
pub type Replan<'a> = Box<
    dyn FnMut() -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Prepared, ops::OpsError>> + 'a>,
        > + 'a,
>;

/// Prints the plan with `--dry-run`; otherwise applies it and prints the result: the report as
/// JSON, or one line per release. A plan the command made itself comes with `replan`, and is
/// made again when the environment changed before the lock was taken; a saved plan has none.
pub async fn apply(
    out: &Output,
    config: &Config,
    mut prepared: Prepared,
    replan: Option<Replan<'_>>,
    change: &crate::cli::ChangeArgs,
    stop: &Stop,
) -> deploy_core::Result<()> {
    warn_dirty(&prepared.plan);
    if change.dry_run {
        plan::print_plan(out, &prepared.plan);
        out.line("dry run: nothing was changed");
        return Ok(());
    }
    let options = ops::ApplyOptions {
        wait_lock: change.wait_lock,
        cancel: stop.token.clone(),
        skip_verify: change.skip_verify,
        allow_mass_delete: change.allow_mass_delete,
    };
    let slack = crate::notify::start(config, &prepared.plan);
    let terminal = std::sync::Arc::new(crate::output::CliReporter::new(out));
    let reporter = crate::notify::reporter(terminal, slack.as_ref());
    let result = match replan {
        Some(replan) => ops::apply_own(config, &mut prepared, replan, reporter, &options).await,
        None => ops::apply(config, &prepared, reporter, &options)
            .await
            .map_err(OwnFailure::Apply),
    };
    let plan = &prepared.plan;
    let report = match result {
        Ok(report) => report,
        Err(OwnFailure::Replan(err)) => return Err(err.into()),
        Err(OwnFailure::Apply(failure)) => {
            failed(out, plan, &failure, slack).await;
            return Err(failure.into());
        }
    };
    let outcome = if report.unchanged {
        "unchanged"
    } else {
        "succeeded"
    };
    crate::github::publish(plan, &report, outcome);
    crate::notify::finish(slack, &told(&report, outcome)).await;
    if out.json() {
        out.result(&report);
        return Ok(());
    }
    print_report_lines(out, &report);
    if report.unchanged {
        print_unchanged(out, plan);
    } else {
        print_releases(out, plan, &report);
    }
    Ok(())
}

/// Says that the version names a commit the work tree has moved on from.
pub fn warn_dirty(plan: &deploy_core::plan::Plan) {
    if plan.dirty {
        eprintln!(
            "warning: the work tree has uncommitted changes: they are released as version {} \
             (its HEAD commit), and the record says `dirty`; commit first, or pass --version",
            plan.version.as_deref().unwrap_or("-")
        );
    }
}

/// What a failed run prints, writes to the GitHub outputs and tells Slack.
async fn failed(
    out: &Output,
    plan: &deploy_core::plan::Plan,
    failure: &deploy_core::engine::ApplyFailure,
    slack: Option<std::sync::Arc<deploy_core::notify::Slack>>,
) {
    if matches!(failure.error, EngineError::Stale { .. }) && !out.json() {
        // Only a saved plan gets here: a plan of this run's own is made again.
        eprintln!(
            "hint: make a new plan (`deploy plan {} --out FILE`), review it and apply that",
            plan.environment
        );
    }
    if out.json() {
        out.result(&failure.report);
    } else {
        print_report_lines(out, &failure.report);
    }
    let outcome = match failure.class() {
        ErrorClass::RolledBack => "rolled-back",
        _ => "failed",
    };
    crate::github::publish(plan, &failure.report, outcome);
    crate::notify::finish(slack, &format!("{outcome}: {}", failure.error)).await;
}

/// One line per release the run recorded.
fn print_releases(
    out: &Output,
    plan: &deploy_core::plan::Plan,
    report: &deploy_core::engine::ApplyReport,
) {
    let verb = match plan.operation {
        Operation::Publish => "published",
        Operation::Promote => "promoted",
        Operation::Rollback => "rolled back",
        _ => "released",
    };
    let to = if plan.operation == Operation::Rollback {
        "in"
    } else {
        "to"
    };
    for artifact in &report.unchanged_artifacts {
        out.line(format!(
            "{artifact} unchanged in {}: it already runs what this would put in place; not recorded",
            plan.environment
        ));
    }
    for release in &report.releases {
        let reference = deploy_core::kinds::released_as(report, &release.artifact);
        out.line(format!(
            "{verb} {} {to} {} as release {}{}",
            release.artifact,
            plan.environment,
            release.release_id,
            reference.map_or_else(String::new, |r| format!(" ({r})"))
        ));
    }
}

/// The end of a run that succeeded, for Slack: each release and what it runs.
fn told(report: &deploy_core::engine::ApplyReport, outcome: &str) -> String {
    let releases: Vec<String> = report
        .releases
        .iter()
        .map(|r| {
            let what = deploy_core::kinds::released_as(report, &r.artifact)
                .or_else(|| r.content_id.clone())
                .unwrap_or_default();
            format!("{} release {} {what}", r.artifact, r.release_id)
        })
        .collect();
    if releases.is_empty() {
        outcome.to_owned()
    } else {
        format!("{outcome}: {}", releases.join("; "))
    }
}

/// One line per artifact of a run that found nothing to change: the release that stays live.
fn print_unchanged(out: &Output, plan: &deploy_core::plan::Plan) {
    for pre in plan
        .preconditions
        .iter()
        .filter(|p| p.pointer == PointerKind::Live)
    {
        let live = pre.release_id.as_deref().unwrap_or("none");
        out.line(format!(
            "unchanged: {} in {} already runs this (live release {live}); no lock taken, nothing recorded",
            pre.artifact, plan.environment
        ));
    }
}

fn print_report_lines(out: &Output, report: &deploy_core::engine::ApplyReport) {
    for line in deploy_core::kinds::report_lines(report) {
        out.line(line);
    }
}
