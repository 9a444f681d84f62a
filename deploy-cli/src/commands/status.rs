use deploy_core::config::Config;
use deploy_core::ledger::Pointer;

use crate::cli::StatusArgs;
use crate::output::Output;

pub async fn status(out: &Output, config: Config, args: &StatusArgs) -> deploy_core::Result<()> {
    let rows = deploy_core::ops::status(&config, &args.envs).await?;
    let drifted = rows.iter().filter(|r| r.drifted()).count();
    if out.json() {
        out.document(&rows);
    } else {
        table(out, &rows);
    }
    if args.exit_code && drifted > 0 {
        return Err(deploy_core::Error::failure(format!(
            "{drifted} artifact{} drifted from the live release",
            if drifted == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

fn table(out: &Output, rows: &[deploy_core::ops::StatusRow]) {
    out.line(format!(
        "{:<10} {:<12} {:<28} {:<28} {:<22} {}",
        "ENV", "ARTIFACT", "LIVE", "PUBLISHED", "SINCE", "RUNNING"
    ));
    for row in rows {
        let status = &row.ledger;
        out.line(format!(
            "{:<10} {:<12} {:<28} {:<28} {:<22} {}",
            status.environment,
            status.artifact,
            describe(status.live.as_ref()),
            describe(status.published.as_ref()),
            status
                .live
                .as_ref()
                .map(|p| deploy_core::lock::rfc3339(p.updated_at))
                .unwrap_or_else(|| "-".into()),
            running(row.running.as_ref()),
        ));
        for drift in row.running.iter().flat_map(|r| &r.drift) {
            out.line(format!("    DRIFT {}: {}", drift.object, drift.difference));
        }
    }
}

/// What runs (`api:7`, `version 12`, `14 files`), `DRIFT` when it differs from the live release
/// (each difference is listed under the row), or why it could not be read.
fn running(running: Option<&deploy_core::ops::Running>) -> String {
    let Some(running) = running else {
        return String::new();
    };
    if let Some(problem) = &running.problem {
        return format!("{}: {problem}", running.object);
    }
    let runs = running.runs.as_deref().unwrap_or("nothing");
    if running.drift.is_empty() {
        runs.to_owned()
    } else {
        format!("{runs} DRIFT")
    }
}

/// `version (content id prefix)` of a pointer (the image digest, DAG content hash or Lambda
/// `CodeSha256`), or `-`.
pub fn describe(pointer: Option<&Pointer>) -> String {
    let Some(pointer) = pointer else {
        return "-".into();
    };
    let version = pointer.version.as_deref().unwrap_or("?");
    let version: String = version.chars().take(12).collect();
    match &pointer.artifact_ref {
        Some(artifact_ref) => format!("{version} ({})", short_hash(artifact_ref.content_id())),
        None => version,
    }
}

fn short_hash(hash: &str) -> String {
    let hex = hash.trim_start_matches("sha256:");
    hex.chars().take(12).collect()
}
