//! `promote <from> <to>`: in `to`, exactly what is live in `from`, by digest.

use super::release::dedup;
use super::{Confirm, OpsError, Prepared, clients};
use crate::config::Config;
use crate::ledger::{ArtifactStatus, Ledger, Operation, Pointer};
use crate::plan::{Plan, PlanRequest, PromoteSource};

/// A promotion of some artifacts (all when empty) from one environment to another.
#[derive(Debug, Clone, Copy)]
pub struct PromoteRequest<'a> {
    /// The environment whose live releases are copied.
    pub from: &'a str,
    /// The environment that receives them.
    pub to: &'a str,
    /// The artifacts; empty: all of them.
    pub artifacts: &'a [String],
    /// Approval and dry run.
    pub confirm: Confirm,
}

/// Prepares a promotion: `to` must accept promotions from `from` (`promote_from`), needs
/// approval where `approval = true`, and every artifact must be live in `from`.
pub async fn promote(config: &Config, request: &PromoteRequest<'_>) -> Result<Prepared, OpsError> {
    let (from, to) = (request.from, request.to);
    let from_env = config.environment(from)?;
    let to_env = config.environment(to)?;
    if from == to {
        return Err(OpsError::Usage(format!(
            "cannot promote {from} to itself; name the environment that receives the release"
        )));
    }
    if let Some(expected) = &to_env.promote_from
        && expected != from
    {
        return Err(OpsError::Usage(format!(
            "{to} receives only what {expected} runs (promote_from = \"{expected}\"); run `deploy promote {expected} {to}`"
        )));
    }
    let artifacts = to_env.select(&dedup(request.artifacts))?;
    let confirm = request.confirm;
    if to_env.approval && !confirm.approve && !confirm.dry_run {
        return Err(OpsError::ApprovalRequired {
            environment: to.to_owned(),
            what: format!("promoting {from} to it changes what runs there"),
        });
    }
    let names: Vec<String> = artifacts.iter().map(|a| a.name.clone()).collect();
    let source_clients = clients(config, from_env).await;
    let source_status = read_source(&source_clients, from_env, &names)
        .await
        .map_err(|e| OpsError::Source {
            environment: from.to_owned(),
            source: Box::new(e),
        })?;
    let sources = live_releases(from, source_status)?;
    let target_clients = clients(config, to_env).await;
    target_clients.verify_account().await?;
    let status = Ledger::new(target_clients.s3.clone(), &to_env.target)
        .status(&names)
        .await?;
    let plan = Plan::build(&PlanRequest {
        environment: to_env,
        artifacts,
        operation: Operation::Promote,
        version: common_version(&sources),
        config_sha256: config.sha256(),
        lock_ttl: config.settings.lock_ttl,
        status: &status,
        promote: &sources,
        gradual: false,
        commit_time: None,
    });
    Ok(Prepared {
        plan,
        clients: target_clients,
        sources: vec![source_clients],
    })
}

async fn read_source(
    clients: &crate::aws::AwsClients,
    env: &crate::config::Environment,
    names: &[String],
) -> Result<Vec<ArtifactStatus>, OpsError> {
    clients.verify_account().await?;
    Ok(Ledger::new(clients.s3.clone(), &env.target)
        .status(names)
        .await?)
}

/// What is live in `from`, one entry per artifact; an error names those with nothing live.
fn live_releases(from: &str, status: Vec<ArtifactStatus>) -> Result<Vec<PromoteSource>, OpsError> {
    let mut sources = Vec::new();
    let mut missing = Vec::new();
    for status in status {
        match status.live {
            Some(Pointer {
                release_id,
                version,
                artifact_ref: Some(artifact_ref),
                commit_time,
                ..
            }) => sources.push(PromoteSource {
                artifact: status.artifact,
                environment: from.to_owned(),
                release_id,
                version,
                artifact_ref,
                commit_time,
                touched: Vec::new(),
            }),
            _ => missing.push(status.artifact),
        }
    }
    if !missing.is_empty() {
        return Err(OpsError::NothingLive {
            from: from.to_owned(),
            artifacts: missing,
        });
    }
    Ok(sources)
}

/// The one version all promoted releases share, if they share one.
fn common_version(sources: &[PromoteSource]) -> Option<String> {
    let mut versions: Vec<&str> = sources
        .iter()
        .filter_map(|s| s.version.as_deref())
        .collect();
    versions.sort_unstable();
    versions.dedup();
    match versions.as_slice() {
        [one] => Some((*one).to_owned()),
        _ => None,
    }
}
