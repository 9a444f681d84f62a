//! `apply <plan.json>`: a plan saved with `plan --out`, run as it was shown.

use super::{Confirm, OpsError, Prepared, check_not_promote_only, clients};
use crate::config::Config;
use crate::ledger::Operation;
use crate::plan::{PLAN_FORMAT, Plan};

/// The largest plan file read.
pub const MAX_PLAN_BYTES: u64 = 4 * 1024 * 1024;

/// Prepares the saved plan `text` (read from `name`): its environment must be in `config`, it
/// must have been made from this very configuration and not changed since (its seal), an environment with `promote_from` takes
/// only promotions, and `approval = true` needs `confirm.approve`. A promotion gets the clients
/// of every other environment, so it can read its source.
pub async fn saved(
    config: &Config,
    name: &str,
    text: &str,
    confirm: Confirm,
) -> Result<Prepared, OpsError> {
    let plan = Plan::from_json(text).map_err(|err| {
        OpsError::Usage(format!(
            "{name} is not a plan made by `deploy plan --out`: {err}"
        ))
    })?;
    if plan.format != PLAN_FORMAT {
        return Err(OpsError::Usage(format!(
            "{name} is a plan of format {}; this deploy reads format {PLAN_FORMAT}. Make a new plan",
            plan.format
        )));
    }
    let env = config.environment(&plan.environment)?;
    if plan.config_sha256 != config.sha256() {
        return Err(OpsError::Usage(format!(
            "{name} was made from another version of {}; make a new plan with `deploy plan {} --out {name}`",
            config.path().display(),
            plan.environment
        )));
    }
    if plan.seal != plan.expected_seal() {
        return Err(OpsError::Usage(format!(
            "{name} was changed after `deploy plan` made it (its steps, inputs or preconditions \
             no longer match its seal), so it is not what was reviewed; make a new plan with \
             `deploy plan {} --out {name}`",
            plan.environment
        )));
    }
    if plan.operation != Operation::Promote {
        check_not_promote_only(env, "apply")?;
    }
    if plan.operation.changes_live() && env.approval && !confirm.approve && !confirm.dry_run {
        return Err(OpsError::ApprovalRequired {
            environment: plan.environment.clone(),
            what: format!("the plan in {name} changes what runs there"),
        });
    }
    let target = clients(config, env).await;
    target.verify_account().await?;
    let mut sources = Vec::new();
    // Only a promotion reads another environment.
    if plan.operation == Operation::Promote {
        for other in config.environments_in_order() {
            if other.target.environment != plan.environment {
                sources.push(clients(config, other).await);
            }
        }
    }
    Ok(Prepared {
        plan,
        clients: target,
        sources,
    })
}
