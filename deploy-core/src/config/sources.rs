//! Local sources checked before any AWS call: each kind checks its own (image layouts and
//! archives, DAG folders, Lambda sources); problems point at the `source` key that names them.

use std::path::Path;

use super::diagnose::Resolver;
use super::source_map::path;
use super::{Config, Diagnostic};
use crate::kinds::ArtifactDetail;

pub(super) fn check_sources(config: &Config) -> Vec<Diagnostic> {
    let mut r = Resolver {
        map: &config.source_map,
        diagnostics: Vec::new(),
    };
    let base = config.base_dir();
    for env in config.environments_in_order() {
        for spec in env.select(&[]).unwrap_or_default() {
            let name = spec.name.as_str();
            let in_override = path([
                "environments",
                env.name.as_str(),
                "overrides",
                name,
                "source",
            ]);
            let at = if config.source_map.contains(&in_override) {
                in_override
            } else {
                path(["artifacts", name, "source"])
            };
            if let Some(problem) = source_problem(base, &spec.detail) {
                r.error(&at, problem, None);
            }
        }
    }
    r.diagnostics
}

fn source_problem(base: &Path, detail: &ArtifactDetail) -> Option<String> {
    match detail {
        ArtifactDetail::Image(image) => image
            .source
            .as_ref()
            .and_then(|source| crate::kinds::image::config::check_source(base, source)),
        ArtifactDetail::Dags(dags) => crate::kinds::dags::config::check_source(base, dags),
        ArtifactDetail::Lambda(lambda) => crate::kinds::lambda::config::check_source(base, lambda),
    }
}
