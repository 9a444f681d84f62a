//! The image kind as the library sees it: its table, its plan, what its services run.

use std::path::Path;
use std::sync::Arc;

use super::ImageSpec;
use super::rollout::ImageRollout;
use crate::aws::AwsClients;
use crate::catalog::{ArtifactKind, Strategy};
use crate::config::ArtifactSpec;
use crate::config::kind::ArtifactContext;
use crate::config::raw::RawArtifact;
use crate::config::spec::{KindConfig, KindSpec, json};
use crate::engine::{ApplyReport, BoxFuture};
use crate::iam::{GrantContext, Grants, Referenced, Scope};
use crate::kinds::{Facts, Kind, Running};
use crate::ledger::ArtifactStatus;
use crate::plan::{Chain, PlanRequest};

/// Container images.
pub(crate) struct Image;

impl KindSpec for ImageSpec {
    fn kind(&self) -> ArtifactKind {
        ArtifactKind::Image
    }

    fn strategy(&self) -> Strategy {
        self.rollout.strategy()
    }

    fn to_json(&self) -> serde_json::Value {
        json(self)
    }

    fn check_source(&self, base: &Path) -> Option<String> {
        let source = self.source.as_ref()?;
        super::config::check_source(base, source)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl KindConfig for Image {
    fn kind(&self) -> ArtifactKind {
        ArtifactKind::Image
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

impl Kind for Image {
    fn grants(&self, spec: &ArtifactSpec, with: &GrantContext<'_>, grants: &mut Grants) {
        if let Some(image) = spec.detail_as::<ImageSpec>() {
            super::iam::grants(image, with, grants);
        }
    }

    fn referenced<'a>(
        &'a self,
        clients: Option<&'a AwsClients>,
        spec: &'a ArtifactSpec,
        scope: &'a Scope<'a>,
    ) -> BoxFuture<'a, Referenced> {
        Box::pin(async move {
            match spec.detail_as::<ImageSpec>() {
                Some(image) => super::iam::read::referenced(clients, image, scope).await,
                None => Referenced::default(),
            }
        })
    }

    fn plan_steps(&self, spec: &ArtifactSpec, request: &PlanRequest<'_>, chain: &mut Chain<'_>) {
        if let Some(image) = spec.detail_as::<ImageSpec>() {
            super::plan::steps(image, request, chain);
        }
    }

    fn running<'a>(
        &'a self,
        clients: &'a AwsClients,
        spec: &'a ArtifactSpec,
        status: &'a ArtifactStatus,
    ) -> BoxFuture<'a, Option<Running>> {
        Box::pin(async move {
            let rollout = &spec.detail_as::<ImageSpec>()?.rollout;
            if let Some(service) = rollout.service() {
                return Some(super::rollout::status::running(clients, service, status).await);
            }
            match rollout {
                ImageRollout::TaskDefinitions(jobs) => {
                    Some(super::rollout::status::families(clients, jobs, status).await)
                }
                _ => None,
            }
        })
    }

    fn facts<'a>(
        &'a self,
        clients: &'a AwsClients,
        spec: &'a ArtifactSpec,
        _status: &'a ArtifactStatus,
    ) -> BoxFuture<'a, Result<Facts, String>> {
        Box::pin(async move {
            let Some(rollout) = spec.detail_as::<ImageSpec>().map(|i| &i.rollout) else {
                return Ok(Facts::new());
            };
            if let Some(service) = rollout.service() {
                return super::rollout::facts::service(clients, service).await;
            }
            match rollout {
                ImageRollout::TaskDefinitions(jobs) => {
                    super::rollout::facts::families(clients, jobs).await
                }
                _ => Ok(Facts::new()),
            }
        })
    }

    fn report_lines(&self, report: &ApplyReport) -> Vec<String> {
        let scans: Vec<super::scan::ScanSummary> = report.section("scans");
        scans
            .iter()
            .flat_map(|scan| {
                let head = format!(
                    "scan of {}@{}: {}",
                    scan.repository,
                    scan.digest,
                    scan.counts_line()
                );
                std::iter::once(head).chain(scan.top_lines().into_iter().map(|l| format!("  {l}")))
            })
            .collect()
    }

    fn released_as(&self, report: &ApplyReport, artifact: &str) -> Option<String> {
        let images: Vec<serde_json::Value> = report.section("images");
        images
            .iter()
            .find(|i| i["artifact"] == artifact)
            .and_then(|i| i["reference"].as_str())
            .map(str::to_owned)
    }
}
