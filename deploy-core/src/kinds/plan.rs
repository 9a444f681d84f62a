//! Hands an artifact to its kind's planner.

use super::{ArtifactDetail, ArtifactSpec};
use crate::plan::{Chain, PlanRequest};

impl ArtifactSpec {
    /// Adds this artifact's steps for `request` to `chain`: its kind's publish and gates, and
    /// its rollout strategy's steps.
    pub fn plan_steps(&self, request: &PlanRequest<'_>, chain: &mut Chain<'_>) {
        match &self.detail {
            ArtifactDetail::Image(image) => super::image::plan::steps(image, request, chain),
            ArtifactDetail::Dags(dags) => super::dags::plan::steps(dags, request, chain),
            ArtifactDetail::Lambda(lambda) => super::lambda::plan::steps(lambda, request, chain),
        }
    }
}
