//! `plan`, `publish` and `release`: what the configuration says, built against the ledger.

use super::{
    Confirm, OpsError, Prepared, check_not_promote_only, clients, commit_time, resolve_version,
};
use crate::config::Config;
use crate::ledger::{Ledger, Operation};
use crate::plan::{Plan, PlanRequest};

/// A publish or release of some artifacts (all when empty) of one environment.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseRequest<'a> {
    /// The environment.
    pub environment: &'a str,
    /// The artifacts; empty: all of them.
    pub artifacts: &'a [String],
    /// The version (`--version`); `None`: `GITHUB_SHA`, else the git commit.
    pub version: Option<&'a str>,
    /// [`Operation::Publish`] or [`Operation::Release`].
    pub operation: Operation,
    /// Approval and dry run.
    pub confirm: Confirm,
}

/// The plan `deploy plan` shows: a release of `request`'s artifacts.
pub async fn plan(config: &Config, request: &ReleaseRequest<'_>) -> Result<Prepared, OpsError> {
    let env = config.environment(request.environment)?;
    check_not_promote_only(env, "plan")?;
    build(config, request, Operation::Release).await
}

/// Prepares a publish or release: refused into an environment that only receives promotions,
/// and without approval where `approval = true` (unless it is a dry run of a publish).
pub async fn release(config: &Config, request: &ReleaseRequest<'_>) -> Result<Prepared, OpsError> {
    let env = config.environment(request.environment)?;
    let command = request.operation.as_str();
    check_not_promote_only(env, command)?;
    let confirm = request.confirm;
    if request.operation.changes_live() && env.approval && !confirm.approve && !confirm.dry_run {
        return Err(OpsError::ApprovalRequired {
            environment: env.target.environment.clone(),
            what: format!("`{command}` changes what runs there"),
        });
    }
    build(config, request, request.operation).await
}

async fn build(
    config: &Config,
    request: &ReleaseRequest<'_>,
    operation: Operation,
) -> Result<Prepared, OpsError> {
    let env = config.environment(request.environment)?;
    let artifacts = env.select(&dedup(request.artifacts))?;
    if operation == Operation::Publish {
        check_publishable(request.environment, &artifacts)?;
    }
    let version = resolve_version(request.version, config)?;
    let clients = clients(config, env).await;
    clients.verify_account().await?;
    let names: Vec<String> = artifacts.iter().map(|a| a.name.clone()).collect();
    let status = Ledger::new(clients.s3.clone(), &env.target)
        .status(&names)
        .await?;
    let mut plan = Plan::build(&PlanRequest {
        environment: env,
        artifacts,
        operation,
        commit_time: commit_time(&version, config),
        version: Some(version),
        config_sha256: config.sha256(),
        lock_ttl: config.settings.lock_ttl,
        status: &status,
        promote: &[],
        gradual: false,
    });
    plan.dirty = super::dirty_work_tree(request.version, config);
    plan.seal = plan.expected_seal();
    Ok(Prepared {
        plan,
        clients,
        sources: Vec::new(),
    })
}

/// Refuses a publish of an artifact whose publish would change what runs (DAGs): the ledger
/// would keep the previous release live while Airflow reads the new files.
fn check_publishable(
    environment: &str,
    artifacts: &[&crate::config::ArtifactSpec],
) -> Result<(), OpsError> {
    let (live, staged): (Vec<_>, Vec<_>) =
        artifacts.iter().partition(|a| a.kind().publish_goes_live());
    let Some(first) = live.first() else {
        return Ok(());
    };
    let names = |list: &[&&crate::config::ArtifactSpec]| {
        list.iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rest = if staged.is_empty() {
        String::new()
    } else {
        format!(
            "; publish the others by name: `deploy publish {environment} {}`",
            names(&staged)
        )
    };
    Err(OpsError::Usage(format!(
        "`{}` ({}) cannot be published apart from its release: its files go live as soon as they are synced,          so `deploy release {environment} {}` syncs and records them as live{rest}",
        first.name,
        first.kind(),
        names(&live)
    )))
}

/// The artifact names once each, in the order first given (`publish dev api api` publishes
/// `api` once).
pub(super) fn dedup(names: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .iter()
        .filter(|n| seen.insert(n.as_str()))
        .cloned()
        .collect()
}
