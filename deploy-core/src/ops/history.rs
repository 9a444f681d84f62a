//! `history`: the newest release records of one environment or all, newest first, and the
//! delivery metrics (deploy frequency, change failure rate, lead time, time to restore) over a
//! window (`--since`, 30 days by default), per environment and artifact and over all of them.
//! Reads only.

use serde::Serialize;

use super::{OpsError, clients};
use crate::config::Config;
use time::OffsetDateTime;

use crate::ledger::{HistoryEntry, Ledger, Metrics};

/// What `history` reads.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRequest<'a> {
    /// One environment, or every environment in file order.
    pub environment: Option<&'a str>,
    /// One artifact, or every artifact.
    pub artifact: Option<&'a str>,
    /// The most records returned.
    pub limit: usize,
    /// The window the metrics cover, back from now.
    pub since: std::time::Duration,
}

/// The metrics of one artifact in one environment.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactMetrics {
    /// The environment.
    pub environment: String,
    /// The artifact.
    pub artifact: String,
    /// Its metrics over the window.
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// The records, newest first, and the metrics of those records.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// Newest first, at most the request's `limit`.
    pub records: Vec<HistoryEntry>,
    /// Where the metrics' window starts.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Deploy frequency, change failure rate, lead time and time to restore over the window,
    /// every environment and artifact asked for together.
    pub metrics: Metrics,
    /// The same for each environment and artifact that has records in the window.
    pub artifacts: Vec<ArtifactMetrics>,
}

/// The newest records of `request`'s environments and artifacts, and the metrics over its
/// window.
pub async fn history(config: &Config, request: &HistoryRequest<'_>) -> Result<History, OpsError> {
    let names: Vec<&str> = match request.environment {
        Some(env) => vec![env],
        None => config
            .environments_in_order()
            .into_iter()
            .map(|e| e.name.as_str())
            .collect(),
    };
    let window = time::Duration::try_from(request.since).unwrap_or(time::Duration::MAX);
    let since = OffsetDateTime::now_utc()
        .checked_sub(window)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let days = (OffsetDateTime::now_utc() - since).as_seconds_f64() / 86_400.0;
    let (mut records, mut in_window) = (Vec::new(), Vec::new());
    for name in names {
        let env = config.environment(name)?;
        let artifacts = match request.artifact {
            Some(artifact) => env
                .select(&[artifact.to_owned()])?
                .into_iter()
                .map(|a| a.name.clone())
                .collect(),
            None => env.artifacts.keys().cloned().collect::<Vec<_>>(),
        };
        let clients = clients(config, env).await;
        let ledger = Ledger::new(clients.s3.clone(), &env.target);
        let window = ledger.history_since(&artifacts, since).await?;
        if window.len() < request.limit {
            records.extend(ledger.history_entries(&artifacts, request.limit).await?);
        } else {
            records.extend(window.iter().take(request.limit).cloned());
        }
        in_window.extend(window);
    }
    records.sort_by_key(|e| std::cmp::Reverse(e.record.started_at));
    records.truncate(request.limit);
    in_window.sort_by_key(|e| std::cmp::Reverse(e.record.started_at));
    Ok(History {
        records,
        since,
        metrics: Metrics::over(&in_window, days),
        artifacts: per_artifact(&in_window, days),
    })
}

/// The metrics of each environment and artifact in `entries` (newest first).
fn per_artifact(entries: &[HistoryEntry], days: f64) -> Vec<ArtifactMetrics> {
    let mut groups: std::collections::BTreeMap<(&str, &str), Vec<HistoryEntry>> =
        std::collections::BTreeMap::new();
    for entry in entries {
        let key = (
            entry.record.environment.as_str(),
            entry.record.artifact.as_str(),
        );
        groups.entry(key).or_default().push(entry.clone());
    }
    groups
        .into_iter()
        .map(|((environment, artifact), group)| ArtifactMetrics {
            environment: environment.to_owned(),
            artifact: artifact.to_owned(),
            metrics: Metrics::over(&group, days),
        })
        .collect()
}
