use deploy_core::config::Config;
use deploy_core::ledger::Operation;
use deploy_core::ops::{self, Confirm, ReleaseRequest};
use deploy_core::plan::{Plan, UndoKind};

use crate::cli::PlanArgs;
use crate::output::Output;

pub async fn plan(out: &Output, config: Config, args: &PlanArgs) -> deploy_core::Result<()> {
    let prepared = ops::plan(
        &config,
        &ReleaseRequest {
            environment: &args.env,
            artifacts: &args.artifacts,
            version: args.release_version.as_deref(),
            operation: Operation::Release,
            confirm: Confirm::default(),
        },
    )
    .await?;
    let plan = &prepared.plan;
    super::warn_dirty(plan);
    if let Some(path) = &args.out {
        std::fs::write(path, plan.to_json() + "\n").map_err(|err| {
            super::UsageError(format!(
                "cannot write the plan to {}: {err}; choose a writable path with --out",
                path.display()
            ))
        })?;
    }
    print_plan(out, plan);
    crate::github::plan_summary(plan);
    if let Some(path) = &args.out {
        out.line(format!("saved to {}", path.display()));
    }
    Ok(())
}

/// Prints a plan: the JSON document, or numbered steps, those that run side by side grouped.
/// What the plan says of a step's change when a later step fails: put back, partly put back
/// (and what stays), or not (and what stays); nothing for steps that change nothing to undo.
fn undo_note(step: &deploy_core::plan::Step) -> String {
    let stays = step.stays.as_deref().unwrap_or("what it changed");
    match step.undo {
        UndoKind::Nothing => String::new(),
        UndoKind::Reversible => "  (undone if a later step fails)".to_owned(),
        UndoKind::Partial => format!("  (partly undone if a later step fails; stays: {stays})"),
        UndoKind::Irreversible => format!("  (cannot be undone; stays: {stays})"),
    }
}

pub fn print_plan(out: &Output, plan: &Plan) {
    if out.json() {
        out.document(&plan);
        return;
    }
    out.line(format!(
        "plan {}: {} {} to {} (account {}, {})",
        plan.id,
        plan.operation.as_str(),
        plan.version.as_deref().unwrap_or("-"),
        plan.environment,
        plan.account,
        plan.region
    ));
    let depths = depths(plan);
    let mut summary = format!("### deploy plan for `{}`\n\n", plan.environment);
    let mut last = None;
    for (n, step) in plan.steps.iter().enumerate() {
        let depth = depths[n];
        let side_by_side = depths.iter().filter(|d| **d == depth).count() > 1;
        if side_by_side && last != Some(depth) {
            out.line("  these run side by side:");
        }
        last = Some(depth);
        let indent = if side_by_side { "  " } else { "" };
        let undo = undo_note(step);
        out.line(format!(
            "  {indent}{:>3}. {}  [{}]{undo}",
            n + 1,
            step.description,
            step.id
        ));
        summary.push_str(&format!(
            "{}. {} (`{}`){undo}\n",
            n + 1,
            step.description,
            step.id
        ));
    }
    out.summary(&summary);
}

/// Each step's depth: the longest chain of needs before it.
fn depths(plan: &Plan) -> Vec<usize> {
    let mut depths: Vec<usize> = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        let depth = step
            .needs
            .iter()
            .filter_map(|need| plan.steps.iter().position(|s| &s.id == need))
            .filter_map(|i| depths.get(i))
            .map(|d| d + 1)
            .max()
            .unwrap_or(0);
        depths.push(depth);
    }
    depths
}
