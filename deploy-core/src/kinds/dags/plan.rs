//! The steps of a DAG folder: the sync is the rollout.

use serde::{Deserialize, Serialize};

use super::IgnoreSyntax;
use super::promote::PromoteDags;
use super::sync::Place;
use crate::kinds::DagsSpec;
use crate::plan::{Action, ActionInput, Chain, PlanRequest, s3_object};

/// Upload changed DAG files and delete removed ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncDags {
    /// Local folder.
    pub source: String,
    /// DAG bucket.
    pub bucket: String,
    /// Key prefix.
    pub prefix: String,
    /// How `.airflowignore` files are read.
    #[serde(default)]
    pub ignore_syntax: IgnoreSyntax,
    /// Only files matching one of these globs ship (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Files matching one of these globs never ship.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// The largest share of the managed files a sync deletes without `allow_mass_delete`.
    #[serde(default = "default_share")]
    pub max_delete_share: f64,
    /// Delete whatever share of the files disappeared (also `DEPLOY_ALLOW_MASS_DELETE=1`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_mass_delete: bool,
}

fn default_share() -> f64 {
    super::config::DEFAULT_MAX_DELETE_SHARE
}

impl ActionInput for SyncDags {
    const TYPE: &'static str = "sync-dags";

    fn reversibility(&self) -> crate::plan::Reversibility {
        crate::plan::Reversibility::Reversible
    }
}

impl SyncDags {
    /// The bucket and prefix the files go to.
    pub fn place(&self) -> Place {
        Place {
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
        }
    }
}

/// Adds the steps of `dags` to `chain`: on a promotion, the copy of the source's live file
/// set; otherwise the sync of the local folder.
pub fn steps(dags: &DagsSpec, request: &PlanRequest<'_>, chain: &mut Chain<'_>) {
    let name = chain.artifact().to_owned();
    if let Some(from) = request.promote.iter().find(|p| p.artifact == name) {
        if from.artifact_ref.decode::<super::DagsRef>().is_some() {
            let description = if from.environment == request.environment.target.environment {
                format!(
                    "restore {name} release {} in s3://{}/{}",
                    from.release_id, dags.bucket, dags.prefix
                )
            } else {
                format!(
                    "copy {name} release {} from {} to s3://{}/{}",
                    from.release_id, from.environment, dags.bucket, dags.prefix
                )
            };
            chain.then(
                description,
                Action::new(&PromoteDags {
                    bucket: dags.bucket.clone(),
                    prefix: dags.prefix.clone(),
                    from: from.clone(),
                    max_delete_share: dags.max_delete_share,
                    allow_mass_delete: false,
                }),
                vec![s3_object(&dags.bucket, &format!("{}*", dags.prefix))],
            );
        }
        return;
    }
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
            ignore_syntax: dags.ignore_syntax,
            include: dags.include.clone(),
            exclude: dags.exclude.clone(),
            max_delete_share: dags.max_delete_share,
            allow_mass_delete: false,
        }),
        vec![s3_object(&dags.bucket, &format!("{}*", dags.prefix))],
    );
}
