//! Local sources checked before any AWS call: each kind checks its own (image layouts and
//! archives, DAG folders, Lambda sources); problems point at the `source` key that names them.

use std::path::{Path, PathBuf};

use super::diagnose::Resolver;
use super::source_map::path;
use super::{Config, Diagnostic};
use crate::artifact::ArtifactDetail;

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
            .and_then(|source| crate::artifact::image::config::check_source(base, source)),
        ArtifactDetail::Dags(dags) => crate::artifact::dags::config::check_source(base, dags),
        ArtifactDetail::Lambda(lambda) => {
            crate::artifact::lambda::config::check_source(base, lambda)
        }
    }
}

/// `path` relative to the configuration's directory.
pub(crate) fn absolute(base: &Path, path: &Path) -> PathBuf {
    base.join(path.strip_prefix("./").unwrap_or(path))
}

/// Why `path` is not the directory (`dir`) or regular file `what` should be, if it is not;
/// never opens it (a FIFO would block).
pub(crate) fn kind_problem(path: &Path, what: &str, dir: bool) -> Option<String> {
    match std::fs::metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Some(format!("{what} {} does not exist", path.display()))
        }
        Err(err) => Some(format!("cannot read {what} {}: {err}", path.display())),
        Ok(meta) if dir && !meta.is_dir() => {
            Some(format!("{what} {} is not a directory", path.display()))
        }
        Ok(meta) if !dir && !meta.is_file() => Some(format!(
            "{what} {} is not a regular file (a directory, FIFO or device)",
            path.display()
        )),
        Ok(_) => None,
    }
}
