//! `history`: the newest release records of one environment or all, newest first, with the
//! delivery metrics they give (deploy frequency, change failure rate, lead time, time to
//! restore). Reads only.

use serde::Serialize;

use super::{OpsError, clients};
use crate::config::Config;
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
}

/// The records, newest first, and the metrics of those records.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// Newest first, at most the request's `limit`.
    pub records: Vec<HistoryEntry>,
    /// Deploy frequency, change failure rate, lead time and time to restore over `records`.
    pub metrics: Metrics,
}

/// The newest records of `request`'s environments and artifacts, and their metrics.
pub async fn history(config: &Config, request: &HistoryRequest<'_>) -> Result<History, OpsError> {
    let names: Vec<&str> = match request.environment {
        Some(env) => vec![env],
        None => config
            .environments_in_order()
            .into_iter()
            .map(|e| e.name.as_str())
            .collect(),
    };
    let mut records = Vec::new();
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
        records.extend(ledger.history_entries(&artifacts, request.limit).await?);
    }
    records.sort_by_key(|e| std::cmp::Reverse(e.record.started_at));
    records.truncate(request.limit);
    let metrics = Metrics::of_history(&records);
    Ok(History { records, metrics })
}
