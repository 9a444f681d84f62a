use deploy_core::config::Config;
use deploy_core::ledger::Operation;
use deploy_core::ops::{self, ReleaseRequest};

use super::{Replan, apply, confirm};
use crate::cli::PublishArgs;
use crate::output::Output;

/// `publish` and `release`: push the artifacts' sources to the environment and record it.
pub async fn publish(
    out: &Output,
    config: Config,
    args: &PublishArgs,
    operation: Operation,
    stop: &super::Stop,
) -> deploy_core::Result<()> {
    let request = ReleaseRequest {
        environment: &args.env,
        artifacts: &args.artifacts,
        version: args.release_version.as_deref(),
        operation,
        confirm: confirm(&args.change),
    };
    let prepared = ops::release(&config, &request).await?;
    let replan: Replan<'_> = Box::new(|| Box::pin(ops::release(&config, &request)));
    apply(out, &config, prepared, Some(replan), &args.change, stop).await
}
