//! Local sources checked before any AWS call: each kind checks its own (image layouts and
//! archives, DAG folders, Lambda sources); problems point at the `source` key that names them.

use super::diagnose::Resolver;
use super::source_map::path;
use super::{Config, Diagnostic};

pub(super) fn check_sources(config: &Config) -> Vec<Diagnostic> {
    let mut r = Resolver {
        map: &config.source_map,
        diagnostics: Vec::new(),
        warnings: Vec::new(),
        kinds: &[],
        env: None,
        origins: Vec::new(),
    };
    let base = config.base_dir();
    for env in config.environments_in_order() {
        r.env = Some(env.name.clone());
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
            if let Some(problem) = spec.detail.check_source(base) {
                r.error(&at, problem, None);
            }
        }
    }
    r.take_diagnostics(config.environments.len())
}
