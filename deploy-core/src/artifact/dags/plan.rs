//! The steps of a DAG folder: the sync is the rollout.

use serde::{Deserialize, Serialize};

use crate::artifact::DagsSpec;
use crate::plan::{Action, ActionInput, Chain, PlanRequest, s3_object};

/// Upload changed DAG files and delete removed ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDags {
    /// Local folder.
    pub source: String,
    /// DAG bucket.
    pub bucket: String,
    /// Key prefix.
    pub prefix: String,
}

impl ActionInput for SyncDags {
    const TYPE: &'static str = "sync-dags";
}

/// Adds the steps of `dags` to `chain`.
pub fn steps(dags: &DagsSpec, _request: &PlanRequest<'_>, chain: &mut Chain<'_>) {
    chain.then(
        format!(
            "sync {} to s3://{}/{}",
            dags.source.display(),
            dags.bucket,
            dags.prefix
        ),
        Action::new(&SyncDags {
            source: dags.source.display().to_string(),
            bucket: dags.bucket.clone(),
            prefix: dags.prefix.clone(),
        }),
        vec![s3_object(&dags.bucket, &format!("{}*", dags.prefix))],
    );
}
