use deploy_core::config::Config;
use deploy_core::ledger::{Outcome, Standing};

use crate::cli::HistoryArgs;
use crate::output::Output;

pub async fn history(out: &Output, config: Config, args: &HistoryArgs) -> deploy_core::Result<()> {
    let request = deploy_core::ops::HistoryRequest {
        environment: args.env.as_deref(),
        artifact: args.artifact.as_deref(),
        limit: args.limit,
        since: args.since,
    };
    let history = deploy_core::ops::history(&config, &request).await?;
    if out.json() {
        out.document(&history);
        return Ok(());
    }
    let (records, metrics) = (&history.records, &history.metrics);
    out.line(format!(
        "{:<20} {:<8} {:<8} {:<10} {:<9} {:<8} {:<14} {:<11} {}",
        "STARTED", "RELEASE", "ENV", "ARTIFACT", "OPERATION", "FROM", "VERSION", "RESULT", "BY"
    ));
    for entry in records {
        out.line(history_line(entry));
    }
    let uncounted = records
        .iter()
        .filter(|e| e.standing != Standing::Counted)
        .count();
    if uncounted > 0 {
        out.line(format!(
            "not counted: {uncounted} succeeded record(s) whose pointer never moved \
             (superseded by a later record, or incomplete: the run died or is finishing; \
             see docs/ledger.md)"
        ));
    }
    let since = deploy_core::lock::rfc3339(history.since);
    out.line(format!("\nsince {since}:"));
    out.line(format!(
        "{:<8} {:<12} {:>11} {:>9} {:>12} {:>9} {:>15}",
        "ENV", "ARTIFACT", "DEPLOYMENTS", "PER DAY", "FAILURE RATE", "LEAD TIME", "TIME TO RESTORE"
    ));
    for row in &history.artifacts {
        out.line(metrics_line(&row.environment, &row.artifact, &row.metrics));
    }
    out.line(metrics_line("all", "", metrics));
    Ok(())
}

/// One row of the metrics table.
fn metrics_line(env: &str, artifact: &str, m: &deploy_core::ledger::Metrics) -> String {
    format!(
        "{:<8} {:<12} {:>11} {:>9.2} {:>11.0}% {:>9} {:>15}",
        env,
        artifact,
        m.deployments,
        m.deploys_per_day,
        m.change_failure_rate * 100.0,
        seconds(m.lead_time_seconds),
        seconds(m.time_to_restore_seconds),
    )
}

/// One record as a row of the table.
fn history_line(entry: &deploy_core::ledger::HistoryEntry) -> String {
    let r = &entry.record;
    let started = deploy_core::lock::rfc3339(r.started_at);
    let result = match (&entry.standing, &r.outcome) {
        (Standing::Superseded { .. }, _) => "superseded",
        (Standing::Incomplete, _) => "incomplete",
        (Standing::Counted, Outcome::Succeeded) => "ok",
        (Standing::Counted, outcome) => outcome.name(),
    };
    format!(
        "{:<20} {:<8} {:<8} {:<10} {:<9} {:<8} {:<14} {:<11} {}",
        started.trim_end_matches('Z'),
        deploy_core::ledger::short_release_id(&r.id),
        r.environment,
        r.artifact,
        r.operation.as_str(),
        r.source_environment.as_deref().unwrap_or("-"),
        r.version
            .as_deref()
            .unwrap_or("-")
            .chars()
            .take(14)
            .collect::<String>(),
        result,
        r.actor.user
    )
}

fn seconds(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(s) if s < 120.0 => format!("{s:.0}s"),
        Some(s) if s < 7200.0 => format!("{:.0}m", s / 60.0),
        Some(s) => format!("{:.1}h", s / 3600.0),
    }
}
