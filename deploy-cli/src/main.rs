//! `deploy`: the command-line front-end of deploy-core.

mod cli;
mod commands;
mod github;
mod init;
mod notify;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::output::Output;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    let out = Output {
        format: cli.output,
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    match commands::run(&cli, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let class = err.class();
            if cli.command.changes_aws() {
                // Refused before it ran (bad input, approval, a held lock): still an outcome.
                github::refused(&err.to_string());
            }
            let chain: Vec<String> =
                std::iter::successors(std::error::Error::source(&err), |e| e.source())
                    .map(ToString::to_string)
                    .collect();
            let class_name = serde_json::to_value(class)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let diagnostics = err
                .downcast_ref::<deploy_core::config::ConfigError>()
                .and_then(|e| match e {
                    deploy_core::config::ConfigError::Invalid { diagnostics } => {
                        serde_json::to_value(diagnostics).ok()
                    }
                    _ => None,
                });
            if let Some(interrupted) = err.downcast_ref::<commands::Interrupted>() {
                // The reason, then what the stopped run did (undone, recorded, unlocked).
                let full = std::iter::once(err.to_string())
                    .chain(chain.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(": ");
                out.error(&full, &class_name, &chain, None);
                return ExitCode::from(interrupted.code);
            }
            let (message, diagnostics) = match placed(&cli, &err) {
                Some(diagnostic) => (
                    diagnostic.to_string(),
                    serde_json::to_value([diagnostic]).ok(),
                ),
                None => (err.to_string(), diagnostics),
            };
            out.error(&message, &class_name, &chain, diagnostics);
            ExitCode::from(class.exit_code())
        }
    }
}

/// A failed run whose cause is the value of an artifact key (a bucket, function, cluster,
/// repository that does not exist): the error at that key's place in the file.
fn placed(cli: &Cli, err: &deploy_core::error::Error) -> Option<deploy_core::config::Diagnostic> {
    use deploy_core::engine::ApplyFailure;
    let failure = err
        .downcast_ref::<Box<ApplyFailure>>()
        .map(AsRef::as_ref)
        .or_else(|| err.downcast_ref::<ApplyFailure>())?;
    let (artifact, key) = failure.error.config_key()?;
    let config = deploy_core::config::Config::load(&cli.config).ok()?;
    Some(deploy_core::config::Diagnostic {
        location: Some(config.locate(&failure.environment, artifact, key)?),
        message: failure.error.to_string(),
        help: None,
    })
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        // aws-config warns about every missing optional file; the errors we print say what matters.
        (false, 0) => "warn,aws_config=error,aws_runtime=error",
        (false, 1) => "deploy_core=debug,info,aws_config=warn,aws_runtime=warn",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DEPLOY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Escapes only where a terminal reads them: a CI log or a file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
