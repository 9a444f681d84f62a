use deploy_core::config::Config;
use deploy_core::ledger::Operation;

use super::{ApprovalRequired, apply, check_not_promote_only, make_plan};
use crate::cli::PublishArgs;
use crate::output::Output;

/// `publish` and `release`: push the artifacts' sources to the environment and record it.
pub async fn publish(
    out: &Output,
    config: Config,
    args: &PublishArgs,
    operation: Operation,
) -> anyhow::Result<()> {
    let env = config.environment(&args.env)?;
    let command = if operation == Operation::Publish {
        "publish"
    } else {
        "release"
    };
    check_not_promote_only(env, command)?;
    if operation.changes_live() && env.approval && !args.change.approve && !args.change.dry_run {
        return Err(ApprovalRequired {
            environment: env.target.environment.clone(),
            what: format!("`{command}` changes what runs there"),
        }
        .into());
    }
    let (plan, clients) = make_plan(
        &config,
        &args.env,
        &args.artifacts,
        args.release_version.as_deref(),
        operation,
    )
    .await?;
    apply(out, &config, &plan, clients, Vec::new(), &args.change).await
}
