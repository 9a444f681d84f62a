//! What gets deployed: the artifact kinds, each a folder of its own (its configuration table,
//! plan, steps, rollout strategies, status), behind the [`Kind`] trait, and the registration
//! list ([`all`]) that is the only place naming them all.

mod builtin;
pub mod dags;
pub mod image;
pub mod lambda;

use std::sync::Arc;

use serde::Serialize;

pub use crate::catalog::ArtifactKind;
pub use crate::config::ArtifactSpec;
pub use builtin::{Builtin, register_builtin};
pub use dags::DagsSpec;
pub use image::{ImageSource, ImageSpec, ScanGate};
pub use lambda::LambdaSpec;

use crate::aws::AwsClients;
use crate::config::spec::KindConfig;
use crate::engine::BoxFuture;
use crate::ledger::ArtifactStatus;
use crate::plan::{ArtifactPlanner, Chain, PlanRequest};

/// What the library asks of an artifact kind: read its table of `deploy.toml`
/// ([`KindConfig`]), plan its steps, and say what runs.
pub(crate) trait Kind: KindConfig {
    /// Adds the artifact's steps for `request` to `chain`: its publish and gates, and its
    /// rollout strategy's steps.
    fn plan_steps(&self, spec: &ArtifactSpec, request: &PlanRequest<'_>, chain: &mut Chain<'_>);

    /// What runs now, read from AWS, for `status`; `None` when the kind does not read it.
    fn running<'a>(
        &'a self,
        _clients: &'a AwsClients,
        _spec: &'a ArtifactSpec,
        _status: &'a ArtifactStatus,
    ) -> BoxFuture<'a, Option<Running>> {
        Box::pin(async { None })
    }
}

/// The kinds this build has, one line each.
pub(crate) fn all() -> &'static [&'static dyn Kind] {
    &[
        &image::kind::Image,
        &dags::kind::Dags,
        &lambda::kind::Lambda,
    ]
}

/// The kind of `spec`.
pub(crate) fn of(spec: &ArtifactSpec) -> Option<&'static dyn Kind> {
    all().iter().copied().find(|k| k.kind() == spec.kind())
}

/// The readers of every kind's table, for loading a configuration.
pub(crate) fn configs() -> Vec<&'static dyn KindConfig> {
    all().iter().map(|k| *k as &dyn KindConfig).collect()
}

/// Plans each artifact with its kind.
pub(crate) struct Planner;

impl ArtifactPlanner for Planner {
    fn steps(&self, spec: &ArtifactSpec, request: &PlanRequest<'_>, chain: &mut Chain<'_>) {
        if let Some(kind) = of(spec) {
            kind.plan_steps(spec, request, chain);
        }
    }
}

/// What an ECS service runs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Running {
    /// `cluster/service`.
    pub service: String,
    /// The task definition it runs (ARN), or why it could not be read.
    pub task_definition: Option<String>,
    /// The image of the configured container.
    pub image: Option<String>,
    /// The running image is not the digest the ledger says is live.
    pub drift: bool,
    /// Why the service could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Wraps a kind's resolved settings for [`ArtifactSpec::detail`].
fn spec<T: crate::config::spec::KindSpec>(
    detail: Option<T>,
) -> Option<Arc<dyn crate::config::spec::KindSpec>> {
    detail.map(|d| Arc::new(d) as Arc<dyn crate::config::spec::KindSpec>)
}
