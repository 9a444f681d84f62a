//! The Lambda kind as the library sees it: its table and its plan.

use std::path::Path;
use std::sync::Arc;

use super::LambdaSpec;
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

/// Lambda functions.
pub(crate) struct Lambda;

impl KindSpec for LambdaSpec {
    fn kind(&self) -> ArtifactKind {
        ArtifactKind::Lambda
    }

    fn strategy(&self) -> Strategy {
        self.rollout.strategy
    }

    fn to_json(&self) -> serde_json::Value {
        json(self)
    }

    fn check_source(&self, base: &Path) -> Option<String> {
        super::config::check_source(base, self)
    }

    fn s3_places(&self) -> Vec<S3Place> {
        let Some(bucket) = &self.artifact_bucket else {
            return Vec::new();
        };
        vec![S3Place {
            bucket: bucket.clone(),
            prefix: super::config::ZIP_PREFIX.to_owned(),
            deletes: false,
            owner: "the zips of Lambda artifact `{name}`",
            keys: &["artifact_bucket"],
        }]
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl KindConfig for Lambda {
    fn kind(&self) -> ArtifactKind {
        ArtifactKind::Lambda
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

impl Kind for Lambda {
    fn grants(&self, spec: &ArtifactSpec, with: &GrantContext<'_>, grants: &mut Grants) {
        if let Some(lambda) = spec.detail_as::<LambdaSpec>() {
            let source = with.source.and_then(|s| s.detail_as::<LambdaSpec>());
            super::iam::grants(lambda, source, with.scope, grants);
        }
    }

    fn plan_steps(&self, spec: &ArtifactSpec, request: &PlanRequest<'_>, chain: &mut Chain<'_>) {
        if let Some(lambda) = spec.detail_as::<LambdaSpec>() {
            super::plan::steps(lambda, request, chain);
        }
    }

    fn running<'a>(
        &'a self,
        clients: &'a AwsClients,
        spec: &'a ArtifactSpec,
        status: &'a ArtifactStatus,
    ) -> BoxFuture<'a, Option<Running>> {
        Box::pin(async move {
            let lambda = spec.detail_as::<LambdaSpec>()?;
            Some(super::status::running(clients, lambda, status).await)
        })
    }

    fn facts<'a>(
        &'a self,
        clients: &'a AwsClients,
        spec: &'a ArtifactSpec,
        _status: &'a ArtifactStatus,
    ) -> BoxFuture<'a, Result<Facts, String>> {
        Box::pin(async move {
            match spec.detail_as::<LambdaSpec>() {
                Some(lambda) => super::facts::facts(clients, lambda).await,
                None => Ok(Facts::new()),
            }
        })
    }
}
