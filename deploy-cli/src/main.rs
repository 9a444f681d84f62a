//! `deploy`: the command-line front-end of deploy-core.

mod cli;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;
use deploy_core::error::{Classify, ErrorClass};

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
            let class = classify(&err);
            let chain: Vec<String> = err.chain().skip(1).map(ToString::to_string).collect();
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
            // Interrupted is the context of the stopped run's error, so it is found on the
            // error itself, not in its chain of sources.
            let interrupted = err.downcast_ref::<commands::Interrupted>();
            if let Some(interrupted) = interrupted {
                // The reason, then what the stopped run did (undone, recorded, unlocked).
                out.error(&format!("{err:#}"), &class_name, &chain, None);
                return ExitCode::from(interrupted.code);
            }
            out.error(&err.to_string(), &class_name, &chain, diagnostics);
            ExitCode::from(class.exit_code())
        }
    }
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
        .with_target(false)
        .init();
}

/// The class of the first error in the chain that has one.
fn classify(err: &anyhow::Error) -> ErrorClass {
    use deploy_core::{aws, config, engine, ledger, lock, ops};
    for cause in err.chain() {
        if cause.is::<commands::UsageError>() {
            return ErrorClass::Usage;
        }
        let class = cause
            .downcast_ref::<config::ConfigError>()
            .map(Classify::class)
            .or_else(|| cause.downcast_ref::<lock::LockError>().map(Classify::class))
            .or_else(|| cause.downcast_ref::<ops::OpsError>().map(Classify::class))
            .or_else(|| {
                cause
                    .downcast_ref::<engine::ApplyFailure>()
                    .map(Classify::class)
            })
            .or_else(|| {
                cause
                    .downcast_ref::<engine::EngineError>()
                    .map(Classify::class)
            })
            .or_else(|| {
                cause
                    .downcast_ref::<aws::TargetError>()
                    .map(Classify::class)
            })
            .or_else(|| {
                cause
                    .downcast_ref::<ledger::LedgerError>()
                    .map(Classify::class)
            });
        if let Some(class) = class {
            return class;
        }
    }
    ErrorClass::Failure
}
