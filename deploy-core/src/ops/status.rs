//! `status`: what the ledger says is live and published, what actually runs in AWS for every
//! kind (read by the kind: a service's task definition, a family's latest revision and the
//! revisions its rules pin, a Lambda alias and its version's code, the DAG prefix's current
//! object versions), and each difference between the two (drift). Bounded cost: the pointers
//! of each artifact and a few reads per artifact.

use serde::Serialize;

use super::{OpsError, clients};
use crate::config::{Config, Environment};
pub use crate::kinds::{Drift, Running};
use crate::ledger::{ArtifactStatus, Ledger};

/// One artifact in one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusRow {
    /// What the ledger says.
    #[serde(flatten)]
    pub ledger: ArtifactStatus,
    /// What runs in AWS and how it drifted; `None` for what nothing runs (an image with
    /// strategy `none`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<Running>,
}

impl StatusRow {
    /// Whether what runs differs from what the ledger says is live.
    pub fn drifted(&self) -> bool {
        self.running.as_ref().is_some_and(|r| !r.drift.is_empty())
    }
}

/// The status of every artifact of `environments` (all when empty), in file order.
pub async fn status(config: &Config, environments: &[String]) -> Result<Vec<StatusRow>, OpsError> {
    let envs: Vec<&Environment> = if environments.is_empty() {
        config.environments_in_order()
    } else {
        environments
            .iter()
            .map(|name| config.environment(name))
            .collect::<Result<_, _>>()?
    };
    let mut rows = Vec::new();
    for env in envs {
        let clients = clients(config, env).await;
        let specs = env.select(&[])?;
        let names: Vec<String> = specs.iter().map(|a| a.name.clone()).collect();
        let ledger = Ledger::new(clients.s3.clone(), &env.target)
            .status(&names)
            .await?;
        for (spec, status) in specs.iter().zip(ledger) {
            let running = match crate::kinds::of(spec) {
                Some(kind) => kind.running(&clients, spec, &status).await,
                None => None,
            };
            rows.push(StatusRow {
                ledger: status,
                running,
            });
        }
    }
    Ok(rows)
}
