//! The DAG kind as the library sees it: its table and its plan.

use std::path::Path;
use std::sync::Arc;

use super::DagsSpec;
use crate::aws::AwsClients;
use crate::catalog::{ArtifactKind, Strategy};
use crate::config::ArtifactSpec;
use crate::config::kind::ArtifactContext;
use crate::config::raw::RawArtifact;
use crate::config::spec::{KindConfig, KindSpec, S3Place, json};
use crate::engine::BoxFuture;
use crate::iam::{GrantContext, Grants};
use crate::kinds::{Facts, Kind, Running};
use crate::ledger::ArtifactStatus;
use crate::plan::{Chain, PlanRequest};

/// Airflow DAG folders.
pub(crate) struct Dags;

impl KindSpec for DagsSpec {
    fn kind(&self) -> ArtifactKind {
        ArtifactKind::Dags
    }

    fn strategy(&self) -> Strategy {
        Strategy::S3Sync
    }

    fn to_json(&self) -> serde_json::Value {
        json(self)
    }

    fn check_source(&self, base: &Path) -> Option<String> {
        super::config::check_source(base, self)
    }

    fn s3_places(&self) -> Vec<S3Place> {
        vec![S3Place {
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            deletes: true,
            owner: "DAG artifact `{name}` of environment `{env}`",
            keys: &["prefix", "bucket"],
        }]
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl KindConfig for Dags {
    fn kind(&self) -> ArtifactKind {
        ArtifactKind::Dags
    }

    fn resolve(
        &self,
        ctx: &mut ArtifactContext<'_, '_, '_>,
        raw: RawArtifact,
    ) -> Option<Arc<dyn KindSpec>> {
        super::super::spec(super::config::resolve(ctx, raw))
    }

    fn keys(&self) -> &'static [&'static str] {
        super::config::KEYS
    }
}

impl Kind for Dags {
    fn grants(&self, spec: &ArtifactSpec, with: &GrantContext<'_>, grants: &mut Grants) {
        if let Some(dags) = spec.detail_as::<DagsSpec>() {
            let source = with.source.and_then(|s| s.detail_as::<DagsSpec>());
            super::iam::grants(&spec.name, dags, source, with.scope, grants);
        }
    }

    fn plan_steps(&self, spec: &ArtifactSpec, request: &PlanRequest<'_>, chain: &mut Chain<'_>) {
        if let Some(dags) = spec.detail_as::<DagsSpec>() {
            super::plan::steps(dags, request, chain);
        }
    }

    fn running<'a>(
        &'a self,
        clients: &'a AwsClients,
        spec: &'a ArtifactSpec,
        status: &'a ArtifactStatus,
    ) -> BoxFuture<'a, Option<Running>> {
        Box::pin(async move {
            let dags = spec.detail_as::<DagsSpec>()?;
            Some(super::status::running(clients, dags, status).await)
        })
    }

    fn facts<'a>(
        &'a self,
        clients: &'a AwsClients,
        _spec: &'a ArtifactSpec,
        status: &'a ArtifactStatus,
    ) -> BoxFuture<'a, Result<Facts, String>> {
        Box::pin(async move {
            // The files of the live release, each by its content: added, removed or changed
            // files show as facts one side lacks or holds other bytes for.
            let Some(live) = status.live.as_ref().and_then(|p| p.artifact_ref.as_ref()) else {
                return Ok(Facts::new());
            };
            let files = super::manifest::files(&clients.s3, live)
                .await
                .map_err(|e| e.to_string())?;
            Ok(files
                .into_iter()
                .map(|f| (format!("file {}", f.path), format!("sha256:{}", f.sha256)))
                .collect())
        })
    }
}
