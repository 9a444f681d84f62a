//! Under GitHub Actions (`GITHUB_ACTIONS=true`): the step outputs a changing command appends
//! to `$GITHUB_OUTPUT` (single-line values, and the whole result as JSON under GitHub's
//! multi-line syntax with a random delimiter), and the job summary it appends to
//! `$GITHUB_STEP_SUMMARY` (the result table, the plan's steps). `deploy plan` writes the plan
//! to the summary. Failing to write either is a warning: the command's outcome stands.

use std::hash::{BuildHasher, Hasher};
use std::io::Write;

use deploy_core::engine::ApplyReport;
use deploy_core::ledger::PointerKind;
use deploy_core::plan::Plan;

/// Whether this process runs as a GitHub Actions step.
fn active() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// Set once a run's outputs are written.
static WRITTEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes the outputs and the summary of a run that ended with `outcome` (`succeeded`,
/// `unchanged`, `rolled-back`, `failed`).
pub fn publish(plan: &Plan, report: &ApplyReport, outcome: &str) {
    if !active() {
        return;
    }
    WRITTEN.store(true, std::sync::atomic::Ordering::SeqCst);
    append("GITHUB_OUTPUT", &outputs(plan, report, outcome));
    append("GITHUB_STEP_SUMMARY", &summary(plan, report, outcome));
}

/// A changing command that failed before its run (no plan applied): `outcome=failed` and the
/// error in the summary, unless the run's own outputs were written.
pub fn refused(error: &str) {
    if !active() || WRITTEN.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    append("GITHUB_OUTPUT", "outcome=failed\nrelease-ids=\n");
    append(
        "GITHUB_STEP_SUMMARY",
        &format!(
            "### deploy: failed\n\n```text\n{}\n```\n\n",
            error.replace("```", "'''")
        ),
    );
}

/// Writes `plan` to the job summary (`deploy plan` on a pull request).
pub fn plan_summary(plan: &Plan) {
    if active() {
        append("GITHUB_STEP_SUMMARY", &plan_markdown(plan, None));
    }
}

/// Appends `text` to the file the environment variable `var` names.
fn append(var: &str, text: &str) {
    let Some(path) = std::env::var_os(var) else {
        return;
    };
    let written = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .and_then(|mut file| file.write_all(text.as_bytes()));
    if let Err(err) = written {
        eprintln!(
            "warning: cannot write ${var} ({}): {err}",
            path.to_string_lossy()
        );
    }
}

/// `name=value` lines, then `result` as JSON between random delimiters.
fn outputs(plan: &Plan, report: &ApplyReport, outcome: &str) -> String {
    let mut lines = vec![("outcome".to_owned(), outcome.to_owned())];
    let ids: Vec<&str> = report
        .releases
        .iter()
        .map(|r| r.release_id.as_str())
        .collect();
    lines.push(("release-ids".into(), ids.join(" ")));
    for release in &report.releases {
        let name = &release.artifact;
        lines.push((format!("{name}-release-id"), release.release_id.clone()));
        lines.extend(
            release
                .version
                .clone()
                .map(|v| (format!("{name}-version"), v)),
        );
        lines.extend((release.content_id.clone()).map(|c| (format!("{name}-content-id"), c)));
    }
    if report.unchanged {
        for pre in live(plan) {
            let id = pre.release_id.clone().unwrap_or_default();
            lines.push((format!("{}-release-id", pre.artifact), id));
        }
    }
    let mut text = String::new();
    for (key, value) in lines {
        // Every value is one line already (ids, versions, digests); one that is not is left
        // out rather than let it write another output.
        if !value.contains(['\n', '\r']) {
            text.push_str(&format!("{key}={value}\n"));
        }
    }
    let json = serde_json::to_string(report).unwrap_or_default();
    let delimiter = delimiter(&json);
    text.push_str(&format!("result<<{delimiter}\n{json}\n{delimiter}\n"));
    text
}

/// A delimiter that does not occur in `body`: GitHub's `ghadelimiter_` and 128 random bits.
fn delimiter(body: &str) -> String {
    loop {
        let random = |seed: u64| {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(seed);
            hasher.finish()
        };
        let candidate = format!("ghadelimiter_{:016x}{:016x}", random(1), random(2));
        if !body.contains(&candidate) {
            return candidate;
        }
    }
}

/// The preconditions on live pointers: what was live when the plan was made.
fn live(plan: &Plan) -> impl Iterator<Item = &deploy_core::plan::Precondition> {
    plan.preconditions
        .iter()
        .filter(|p| p.pointer == PointerKind::Live)
}

/// The result table and the plan's steps with how each ended.
fn summary(plan: &Plan, report: &ApplyReport, outcome: &str) -> String {
    let mut text = format!(
        "### deploy {} to {}: {outcome}\n\n",
        plan.operation.as_str(),
        plan.environment
    );
    if report.unchanged {
        text.push_str("Nothing to change: no lock taken, nothing recorded.\n\n");
        text.push_str("| artifact | live release |\n|---|---|\n");
        for pre in live(plan) {
            let id = pre.release_id.as_deref().unwrap_or("none");
            text.push_str(&format!("| {} | `{id}` |\n", cell(&pre.artifact)));
        }
    } else if !report.releases.is_empty() {
        text.push_str(
            "| artifact | release | version | content | outcome |\n|---|---|---|---|---|\n",
        );
        for r in &report.releases {
            text.push_str(&format!(
                "| {} | `{}` | {} | `{}` | {} |\n",
                cell(&r.artifact),
                r.release_id,
                cell(r.version.as_deref().unwrap_or("-")),
                cell(r.content_id.as_deref().unwrap_or("-")),
                r.outcome.name()
            ));
        }
    }
    text.push('\n');
    text.push_str(&plan_markdown(plan, Some(report)));
    text
}

/// The plan's steps as a table, with their status and time once `report` says.
fn plan_markdown(plan: &Plan, report: Option<&ApplyReport>) -> String {
    let mut text = format!(
        "<details><summary>plan {} ({} steps): {} {} to {}</summary>\n\n",
        plan.id,
        plan.steps.len(),
        plan.operation.as_str(),
        plan.version.as_deref().unwrap_or("-"),
        plan.environment
    );
    text.push_str("| step | what | result |\n|---|---|---|\n");
    for step in &plan.steps {
        let result = report
            .and_then(|r| r.steps.iter().find(|s| s.step == step.id))
            .map_or_else(String::new, |s| {
                let status = serde_json::to_value(s.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                format!("{status} ({:.1}s)", s.elapsed_ms as f64 / 1000.0)
            });
        text.push_str(&format!(
            "| `{}` | {} | {result} |\n",
            step.id,
            cell(&step.description)
        ));
    }
    text.push_str("\n</details>\n\n");
    text
}

/// `text` safe in a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_random_and_not_in_the_body() {
        let a = delimiter("{}");
        let b = delimiter("{}");
        assert!(a.starts_with("ghadelimiter_"));
        assert_ne!(a, b);
        assert_eq!(a.len(), "ghadelimiter_".len() + 32);
    }

    #[test]
    fn cells_escape_pipes_and_newlines() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
