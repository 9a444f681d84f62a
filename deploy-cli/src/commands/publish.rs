use deploy_core::config::Config;
use deploy_core::ledger::Operation;
use deploy_core::ops::{self, ReleaseRequest};

use super::{apply, confirm};
use crate::cli::PublishArgs;
use crate::output::Output;

/// `publish` and `release`: push the artifacts' sources to the environment and record it.
pub async fn publish(
    out: &Output,
    config: Config,
    args: &PublishArgs,
    operation: Operation,
    stop: &super::Stop,
) -> anyhow::Result<()> {
    let prepared = ops::release(
        &config,
        &ReleaseRequest {
            environment: &args.env,
            artifacts: &args.artifacts,
            version: args.release_version.as_deref(),
            operation,
            confirm: confirm(&args.change),
        },
    )
    .await?;
    apply(out, &config, &prepared, &args.change, stop).await
}
