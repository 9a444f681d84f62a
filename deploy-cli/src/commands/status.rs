use deploy_core::config::Config;
use deploy_core::ledger::{ArtifactRef, ArtifactStatus, Ledger, Pointer};

use super::clients;
use crate::cli::StatusArgs;
use crate::output::Output;

pub async fn status(out: &Output, config: Config, args: &StatusArgs) -> anyhow::Result<()> {
    let envs: Vec<&str> = if args.envs.is_empty() {
        config
            .environments_in_order()
            .into_iter()
            .map(|e| e.name.as_str())
            .collect()
    } else {
        args.envs.iter().map(String::as_str).collect()
    };
    let mut rows: Vec<ArtifactStatus> = Vec::new();
    for name in envs {
        let env = config.environment(name)?;
        let clients = clients(&config, env).await;
        let names: Vec<String> = env.select(&[])?.iter().map(|a| a.name.clone()).collect();
        rows.extend(
            Ledger::new(clients.s3.clone(), &env.target)
                .status(&names)
                .await?,
        );
    }
    if out.json() {
        out.document(&rows);
        return Ok(());
    }
    out.line(format!(
        "{:<10} {:<12} {:<28} {:<28} {}",
        "ENV", "ARTIFACT", "LIVE", "PUBLISHED", "SINCE"
    ));
    for row in &rows {
        out.line(format!(
            "{:<10} {:<12} {:<28} {:<28} {}",
            row.environment,
            row.artifact,
            describe(row.live.as_ref()),
            describe(row.published.as_ref()),
            row.live
                .as_ref()
                .map(|p| deploy_core::lock::rfc3339(p.updated_at))
                .unwrap_or_else(|| "-".into()),
        ));
    }
    Ok(())
}

/// `version (digest prefix)` of a pointer, or `-`.
pub fn describe(pointer: Option<&Pointer>) -> String {
    let Some(pointer) = pointer else {
        return "-".into();
    };
    let version = pointer.version.as_deref().unwrap_or("?");
    let version: String = version.chars().take(12).collect();
    match &pointer.artifact_ref {
        Some(ArtifactRef::Image { digest, .. }) => format!("{version} ({})", short_hash(digest)),
        Some(ArtifactRef::Dags { content_hash, .. }) => {
            format!("{version} ({})", short_hash(content_hash))
        }
        Some(ArtifactRef::Lambda {
            function_version, ..
        }) => {
            format!(
                "{version} (v{})",
                function_version.as_deref().unwrap_or("?")
            )
        }
        None => version,
    }
}

fn short_hash(hash: &str) -> String {
    let hex = hash.trim_start_matches("sha256:");
    hex.chars().take(12).collect()
}
