use anyhow::Context;
use deploy_core::config::Config;
use deploy_core::ledger::Operation;
use deploy_core::plan::Plan;

use super::make_plan;
use crate::cli::{Cli, PlanArgs};
use crate::output::Output;

pub async fn plan(_cli: &Cli, out: &Output, config: Config, args: &PlanArgs) -> anyhow::Result<()> {
    super::check_not_promote_only(config.environment(&args.env)?, "plan")?;
    let (plan, _clients) = make_plan(
        &config,
        &args.env,
        &args.artifacts,
        args.release_version.as_deref(),
        Operation::Release,
    )
    .await?;
    if let Some(path) = &args.out {
        std::fs::write(path, plan.to_json() + "\n")
            .with_context(|| format!("cannot write the plan to {}", path.display()))?;
    }
    print_plan(out, &plan);
    if let Some(path) = &args.out {
        out.line(format!("saved to {}", path.display()));
    }
    Ok(())
}

/// Prints a plan: the JSON document, or numbered steps grouped by stage.
pub fn print_plan(out: &Output, plan: &Plan) {
    if out.json() {
        out.document(&plan);
        return;
    }
    out.line(format!(
        "plan {}: {} {} to {} (account {}, {})",
        plan.id,
        format!("{:?}", plan.operation).to_lowercase(),
        plan.version.as_deref().unwrap_or("-"),
        plan.environment,
        plan.account,
        plan.region
    ));
    let mut summary = format!("### deploy plan for `{}`\n\n", plan.environment);
    let mut last_stage = 0;
    for step in &plan.steps {
        let parallel = plan.steps.iter().filter(|s| s.stage == step.stage).count() > 1;
        let marker = if parallel && step.stage != last_stage {
            " (these run in parallel)"
        } else {
            ""
        };
        if step.stage != last_stage && parallel {
            out.line(format!("  stage {}{marker}", step.stage));
        }
        last_stage = step.stage;
        out.line(format!("  {:>3}. {}", step.id, step.description));
        summary.push_str(&format!("{}. {}\n", step.id, step.description));
    }
    out.summary(&summary);
}
