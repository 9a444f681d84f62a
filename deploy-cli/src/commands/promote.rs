use anyhow::Context;
use deploy_core::config::Config;
use deploy_core::ledger::{Ledger, Operation};
use deploy_core::plan::{Plan, PlanRequest, PromoteSource};

use super::{ApprovalRequired, UsageError, apply, clients};
use crate::cli::PromoteArgs;
use crate::output::Output;

/// `promote <from> <to>`: plan and apply, in `to`, the releases live in `from`.
pub async fn promote(out: &Output, config: Config, args: &PromoteArgs) -> anyhow::Result<()> {
    let from = config.environment(&args.from)?;
    let to = config.environment(&args.to)?;
    if args.from == args.to {
        return Err(UsageError(format!(
            "cannot promote {} to itself; name the environment that receives the release",
            args.from
        ))
        .into());
    }
    if let Some(expected) = &to.promote_from
        && *expected != args.from
    {
        return Err(UsageError(format!(
            "{} receives only what {expected} runs (promote_from = \"{expected}\"); run `deploy promote {expected} {}`",
            args.to, args.to
        ))
        .into());
    }
    let artifacts = to.select(&args.artifacts)?;
    if to.approval && !args.change.approve && !args.change.dry_run {
        return Err(ApprovalRequired {
            environment: args.to.clone(),
            what: format!("promoting {} to it changes what runs there", args.from),
        }
        .into());
    }
    let names: Vec<String> = artifacts.iter().map(|a| a.name.clone()).collect();

    let source_clients = clients(&config, from).await;
    source_clients
        .verify_account()
        .await
        .with_context(|| format!("cannot read what {} runs", args.from))?;
    let source_status = Ledger::new(source_clients.s3.clone(), &from.target)
        .status(&names)
        .await?;
    let mut sources = Vec::new();
    let mut missing = Vec::new();
    for status in source_status {
        match status.live {
            Some(deploy_core::ledger::Pointer {
                release_id,
                version,
                artifact_ref: Some(artifact_ref),
                ..
            }) => sources.push(PromoteSource {
                artifact: status.artifact,
                environment: args.from.clone(),
                release_id,
                version,
                artifact_ref,
            }),
            _ => missing.push(status.artifact),
        }
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "nothing of {} is live in {}, so there is nothing to promote; release it there first \
             (`deploy release {} {}`)",
            missing.join(", "),
            args.from,
            args.from,
            missing.join(" ")
        );
    }
    let mut versions: Vec<&str> = sources
        .iter()
        .filter_map(|s| s.version.as_deref())
        .collect();
    versions.sort_unstable();
    versions.dedup();
    let version = match versions.as_slice() {
        [one] => Some((*one).to_owned()),
        _ => None,
    };

    let target_clients = clients(&config, to).await;
    target_clients.verify_account().await?;
    let status = Ledger::new(target_clients.s3.clone(), &to.target)
        .status(&names)
        .await?;
    let plan = Plan::build(&PlanRequest {
        environment: to,
        artifacts,
        operation: Operation::Promote,
        version,
        config_sha256: config.sha256(),
        lock_ttl: config.settings.lock_ttl,
        status: &status,
        promote: &sources,
    });
    apply(
        out,
        &config,
        &plan,
        target_clients,
        vec![source_clients],
        &args.change,
    )
    .await
}
