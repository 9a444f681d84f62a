use deploy_core::config::Config;
use deploy_core::ops::{self, PromoteRequest, RollbackRequest};

use super::{Replan, apply, confirm};
use crate::cli::{PromoteArgs, RollbackArgs};
use crate::output::Output;

/// `promote <from> <to>`: plan and apply, in `to`, the releases live in `from`.
pub async fn promote(
    out: &Output,
    config: Config,
    args: &PromoteArgs,
    stop: &super::Stop,
) -> deploy_core::Result<()> {
    let request = PromoteRequest {
        from: &args.from,
        to: &args.to,
        artifacts: &args.artifacts,
        confirm: confirm(&args.change),
    };
    let prepared = ops::promote(&config, &request).await?;
    let replan: Replan<'_> = Box::new(|| Box::pin(ops::promote(&config, &request)));
    apply(out, &config, prepared, Some(replan), &args.change, stop).await
}

/// `rollback <env>`: plan and apply, in `env`, an earlier release restored from the ledger.
pub async fn rollback(
    out: &Output,
    config: Config,
    args: &RollbackArgs,
    stop: &super::Stop,
) -> deploy_core::Result<()> {
    let request = RollbackRequest {
        environment: &args.env,
        artifacts: &args.artifacts,
        to: args.to.as_deref(),
        gradual: args.gradual,
        confirm: confirm(&args.change),
    };
    let prepared = ops::rollback(&config, &request).await?;
    let replan: Replan<'_> = Box::new(|| Box::pin(ops::rollback(&config, &request)));
    apply(out, &config, prepared, Some(replan), &args.change, stop).await
}
